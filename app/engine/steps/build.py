"""Step: build each deal's invoice (xero.build does the arithmetic and the checks); what it
refuses goes to review with its problems."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from app.engine import clock
from app.engine.context import DealWork, RunContext
from app.engine.keys import reference
from app.engine.rules import invoice_rules, xero_status
from app.models import ReviewReason
from domain.deals import Deal
from xero.build import InvoiceDraft, Problem, build_invoice
from xero.timezones import iana_zone, local_date


def build(ctx: RunContext) -> None:
    for w in ctx.items:
        if w.done or w.email_only or (w.contact_id is None and w.update_of is None):
            continue
        draft = try_build(ctx, w, w.contact_id or "")
        if draft is not None:
            w.draft = draft


# What a contact Paydeck has yet to create is called while checking that the deal would build.
NOT_YET_CREATED = "00000000-0000-0000-0000-000000000000"


def try_build(ctx: RunContext, w: DealWork, contact_id: str) -> InvoiceDraft | None:
    """The deal's invoice for `contact_id` ("" for an update: it keeps its draft's contact),
    or None when it cannot be built: then the deal is in review with the problems."""
    assert ctx.ref is not None
    rules = invoice_rules(ctx.installation.id, ctx.settings)
    zone, now = iana_zone(ctx.ref.timezone), clock.now()
    if zone is None:  # a date in the wrong zone can land in the wrong period
        ctx.review(w, ReviewReason.UNKNOWN_TIMEZONE,
                   f"Xero's organisation timezone {ctx.ref.timezone!r} is not in Paydeck's "
                   "table (CLDR windowsZones), so the invoice date would be a guess.")
        return None
    assert w.deal is not None
    status = str(w.audit.get("wanted_status") or xero_status(ctx.settings, w.action))
    ref = w.link.reference if w.link else reference(ctx.installation, w.request.deal_id)
    # An update keeps the draft's contact: no ContactID is sent for it.
    result = build_invoice(w.deal, rules, ctx.ref, contact_id=contact_id,
                           status=status, today=invoice_date(w.deal, zone, now),
                           reference=ref, contact_terms=w.contact_terms)
    if isinstance(result, list):
        _review_problems(ctx, w, result)
        return None
    return result


def _review_problems(ctx: RunContext, w: DealWork, problems: list[Problem]) -> None:
    ctx.review(w, ReviewReason(problems[0].reason), "; ".join(p.detail for p in problems))


def invoice_date(deal: Deal, zone: ZoneInfo, now: datetime) -> date:
    """The deal's date in the organisation's timezone.

    The deal's date is the moment the CRM says it was won (`Deal.closed_at`: HubSpot
    `closedate` of a deal that `hs_is_closed_won` - HubSpot sets it when the deal enters a
    closed stage; Pipedrive `won_time`). Not the moment of the stage change we were told of:
    a webhook can arrive late or be retried for hours, and a rep may backdate the close.
    With no such moment (an open deal under a draft rule), or one in the future (clock
    skew), it is now. Xero's Date is a local calendar date of the organisation (platform-facts), so
    2026-06-30T14:30Z is 1 July 2026 in Sydney (AEST, UTC+10), not 30 June.
    """
    moment = deal.closed_at if deal.closed_at is not None and deal.closed_at <= now else now
    return local_date(moment, zone)
