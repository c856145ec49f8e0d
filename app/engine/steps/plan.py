"""Steps: Xero's reference data for the batch, and a plan for each deal that already has an
invoice: read it from Xero as it is now, then update Paydeck's own untouched draft, send the
email still owed, or leave Xero's alone."""

from __future__ import annotations

from app.engine import clock
from app.engine.context import DealWork, RunContext
from app.engine.keys import RESEND, stamp
from app.engine.reference import reference_data
from app.engine.rules import xero_status
from app.engine.steps.links import invoice_candidate
from app.extensions import db
from app.invoice_results import apply_invoice_result
from app.models import InvoiceLink, InvoiceLinkState, ReviewItem, ReviewReason, StageAction
from xero.client import InvoiceResult

XERO_STATUS_STRENGTH = {"DRAFT": 1, "SUBMITTED": 1, "AUTHORISED": 2, "PAID": 3}


def load_reference_data(ctx: RunContext) -> None:
    ctx.ref = reference_data(ctx.installation, ctx.connection, ctx.xero)


def plan_updates(ctx: RunContext) -> None:
    """Deals that already have an invoice: read it from Xero as it is now (status and
    UpdatedDateUTC), then update Paydeck's own untouched draft, or leave Xero's alone."""
    existing = [w for w in ctx.open() if w.link is not None and w.link.xero_invoice_id
                and w.link.state == InvoiceLinkState.CREATED]
    if not existing:
        return
    live = {r.invoice_id: r for r in ctx.xero.invoices_by_ids(
        [w.link.xero_invoice_id for w in existing])}  # type: ignore[union-attr,misc]
    for w in existing:
        assert w.link is not None
        _plan_update(ctx, w, w.link, live.get(w.link.xero_invoice_id))


def _plan_update(ctx: RunContext, w: DealWork, link: InvoiceLink, now: InvoiceResult | None) -> None:
    if now is None:
        ctx.unchanged(w, f"invoice {link.invoice_number} is no longer in Xero")
        return
    apply_invoice_result(link, now, clock.today())  # the link shows Xero's state, whatever happens next
    wanted, current = xero_status(ctx.settings, w.action), now.status or "DRAFT"
    if current not in ("DRAFT", "SUBMITTED"):  # approved, paid, voided: Xero's is the truth
        if w.action == StageAction.AUTHORISE_AND_EMAIL and current == "AUTHORISED" \
                and now.sent_to_contact is False:
            w.email_only = True  # an email that failed (or was postponed) before
            return
        ctx.unchanged(w, f"invoice {link.invoice_number} is already {current}")
        return
    if wanted == "DRAFT" and current == "SUBMITTED":  # never back to DRAFT
        ctx.unchanged(w, f"invoice {link.invoice_number} awaits approval in Xero")
        return
    if not _may_overwrite(w, link, now):
        ctx.review(w, ReviewReason.XERO_EDITED,
                   f"Xero has edits: invoice {link.invoice_number} ({current}) changed in "
                   "Xero after Paydeck wrote it. Keep Xero's, or re-send the deal "
                   "(overwrites Xero's version).", [invoice_candidate(now)])
        return
    w.update_of, w.contact_id = link.xero_invoice_id, None
    w.audit["update_of"] = link.xero_invoice_id
    if XERO_STATUS_STRENGTH.get(wanted, 1) < XERO_STATUS_STRENGTH.get(current, 1):
        wanted = current
    w.audit["wanted_status"] = wanted


def _may_overwrite(w: DealWork, link: InvoiceLink, now: InvoiceResult) -> bool:
    """Paydeck's own DRAFT, unchanged since Paydeck wrote it; or the exact version a
    person chose to overwrite ("re-send the deal")."""
    if w.source.startswith(f"{RESEND}:review:"):
        item = db.session.get(ReviewItem, int(w.source.rsplit(":", 1)[1]))
        seen = item.candidates[0].get("updated_at") if item and item.candidates else None
        return seen is not None and seen == stamp(now.updated_at)
    written = link.paydeck_written_at or link.xero_updated_at  # rows from before 0008
    return now.status == "DRAFT" and (written is None or stamp(written) == stamp(now.updated_at))
