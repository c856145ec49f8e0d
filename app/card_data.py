"""What the CRM cards and pages show: a deal's invoice and open review items, a company's
invoices and what it owes, the review queue and activity log. Database reads only (fast), in
the shapes the card JSON and the page templates take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select

from app.access import AMOUNTS_HIDDEN, may_act, may_see_money, viewer_for
from app.connection_state import connection_state
from app.extensions import db
from app.invoice_view import cached_names, card_json, whole_invoice
from app.models import AuditEvent, Installation, InvoiceLink, ReviewItem, ReviewReason, ReviewStatus
from app.page_format import current_locale, current_zone
from xero.status import LABELS

# The card lists this many open review items (newest first); `open_review_items` counts them all.
CARD_REVIEW_ITEMS = 5
# What a viewer who may not see money is not sent: amounts, and review details (which quote
# amounts, e.g. a deal amount that differs from its lines).
MONEY_KEYS = ("total", "amount_due", "amount_paid", "currency", "invoice_url", "invoice", "pdf_url")
COMPANY_INVOICES = 10  # the company page lists its newest invoices
QUEUE_ROWS = 100  # the review page lists at most this many items, and as many events


def card_facts(installation: Installation, user: str, object_type: str,
               object_id: str) -> dict[str, Any]:
    """The HubSpot card's facts for a verified caller: a deal's invoice (its amounts only if
    they may see them), whether they may act, and the connections' state."""
    viewer = viewer_for(installation, user)
    facts: dict[str, Any] = {}
    if object_type == "deal":
        link = deal_link(installation.id, object_id)
        summary = deal_summary(installation.id, object_id, link)
        if summary["invoiced"] and link is not None:  # the whole invoice: lines, totals, payments (amounts: see below)
            summary["invoice"] = whole_invoice_json(link)
        facts.update(summary if may_see_money(viewer, "deal", object_id) else without_money(summary))
    facts["may_act"] = may_act(viewer, object_type, object_id)
    facts["connection"] = connection_state(installation)
    facts["installation_alerts"] = installation_alerts(installation)
    return facts


def installation_alerts(installation: Installation) -> list[dict[str, Any]]:
    """Open `reconnect_needed` review items that name no deal: they hold up every deal of the
    installation, so every card and page shows them as a banner until a person closes them in
    the review queue. `fixed`: the connection works again now (the item is still open)."""
    items = db.session.scalars(select(ReviewItem).where(
        ReviewItem.installation_id == installation.id, ReviewItem.deal_id.is_(None),
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.reason == ReviewReason.RECONNECT_NEEDED)
        .order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc()).limit(CARD_REVIEW_ITEMS)).all()
    if not items:
        return []
    state = connection_state(installation)
    healthy = state["crm"]["state"] == "ok" and state["xero"]["state"] == "connected"
    return [{"id": i.id, "reason": i.reason.value, "title": _alert_title(installation, i.detail, healthy),
             "detail": i.detail.split(": ", 1)[1] if i.detail.startswith(_PARTIES) else i.detail,
             "fixed": healthy, "created_at": i.created_at.isoformat()} for i in items]


_PARTIES = ("xero_reconnect_needed: ", "crm_reconnect_needed: ")


def _alert_title(installation: Installation, detail: str, fixed: bool) -> str:
    """The banner's headline; in the past tense once both connections work again."""
    crm = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}.get(installation.crm.value, "the CRM")
    if detail.startswith("crm_reconnect_needed: "):
        return (f"Paydeck lost access to {crm} and was reconnected since" if fixed
                else f"Paydeck lost access to {crm}: an admin installs Paydeck again")
    if detail.startswith("xero_reconnect_needed: "):
        return ("Xero needed reconnecting and was reconnected since" if fixed
                else "Xero needs reconnecting: an admin reconnects it in Paydeck's settings")
    return ("A connection needed reconnecting and works again now" if fixed
            else "A connection needs reconnecting: invoices are waiting")


def deal_summary(installation_id: int, deal_id: str,
                 link: InvoiceLink | None | bool = False) -> dict[str, Any]:
    """The card's facts about one deal's invoice (database only: fast); `link`: the deal's
    link if the caller already read it."""
    if link is False:
        link = deal_link(installation_id, deal_id)
    assert link is None or isinstance(link, InvoiceLink)
    open_q = _open_items(installation_id, deal_id)
    open_items = db.session.scalar(select(db.func.count()).select_from(open_q.subquery())) or 0
    newest = db.session.scalars(open_q.order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc())
                                .limit(CARD_REVIEW_ITEMS)).all()
    review = {"open_review_items": open_items, "review_items": [_card_item(i) for i in newest]}
    if link is None or not link.xero_invoice_id:
        return {"invoiced": False, "status": "Not invoiced", **review}
    return {"invoiced": True, "status": LABELS.get(link.deal_status or "", link.status or ""),
            "deal_status": link.deal_status,
            "invoice_number": link.invoice_number, "currency": link.currency,
            "total": money(link.total), "amount_due": money(link.amount_due),
            "amount_paid": money(link.amount_paid),
            "due_date": link.due_date.isoformat() if link.due_date else None,
            "invoice_url": link.online_url, **review}


def whole_invoice_json(link: InvoiceLink) -> dict[str, Any]:
    """The whole invoice for the card's JSON (app/invoice_view.py), in this request's locale."""
    locale = current_locale()
    return card_json(whole_invoice(link, cached_names(link.installation_id), locale), locale,
                     current_zone())


def without_money(summary: dict[str, Any]) -> dict[str, Any]:
    """The card's summary with the amounts left out, saying why."""
    hidden = {k: v for k, v in summary.items() if k not in MONEY_KEYS}
    hidden["review_items"] = [{k: v for k, v in item.items() if k != "detail"}
                              for item in summary.get("review_items", [])]
    hidden["amounts_hidden"] = AMOUNTS_HIDDEN
    return hidden


def _card_item(item: ReviewItem) -> dict[str, Any]:
    """One open review item as the HubSpot card shows it: why it stopped, in words."""
    return {"id": item.id, "reason": item.reason.value,
            "reason_label": item.reason.value.replace("_", " ").capitalize(),
            "detail": item.detail, "created_at": item.created_at.isoformat()}


def deal_link(installation_id: int, deal_id: str) -> InvoiceLink | None:
    """The deal's invoice link (its `deal` trigger: one per deal and trigger)."""
    return db.session.scalar(select(InvoiceLink).where(
        InvoiceLink.installation_id == installation_id, InvoiceLink.deal_id == deal_id,
        InvoiceLink.trigger == "deal"))


def open_review_items(installation_id: int, deal_id: str) -> list[ReviewItem]:
    """The deal's open review items, newest first."""
    return list(db.session.scalars(_open_items(installation_id, deal_id)
                                   .order_by(ReviewItem.created_at.desc())).all())


def _open_items(installation_id: int, deal_id: str) -> Select[tuple[ReviewItem]]:
    return select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.deal_id == deal_id,
        ReviewItem.status == ReviewStatus.OPEN)


@dataclass(frozen=True)
class CompanyInvoices:
    """A company's newest invoices (those to its linked Xero contact) and what they leave owed."""

    invoices: list[InvoiceLink]
    outstanding: Decimal
    overdue: Decimal


def company_invoices(installation_id: int, contact_id: str | None) -> CompanyInvoices:
    invoices: list[InvoiceLink] = []
    if contact_id:
        invoices = list(db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == installation_id,
            InvoiceLink.xero_contact_id == contact_id).order_by(
            InvoiceLink.created_at.desc()).limit(COMPANY_INVOICES)).all())
    outstanding = sum((l.amount_due or 0 for l in invoices if l.status == "AUTHORISED"), Decimal(0))
    overdue = sum((l.amount_due or 0 for l in invoices if l.deal_status == "overdue"), Decimal(0))
    return CompanyInvoices(invoices, outstanding, overdue)


def review_queue(installation_id: int, deal: str, status: str,
                 since: datetime | None) -> tuple[list[ReviewItem], list[AuditEvent]]:
    """The queue's items and the activity log, newest first, filtered by deal ("" = every
    deal), status ("all" or a ReviewStatus value) and the day they start from."""
    items_q = select(ReviewItem).where(ReviewItem.installation_id == installation_id)
    audit_q = select(AuditEvent).where(AuditEvent.installation_id == installation_id)
    if deal:
        items_q, audit_q = items_q.where(ReviewItem.deal_id == deal), audit_q.where(AuditEvent.deal_id == deal)
    if status != "all":
        items_q = items_q.where(ReviewItem.status == ReviewStatus(status))
    if since is not None:
        items_q = items_q.where(ReviewItem.created_at >= since)
        audit_q = audit_q.where(AuditEvent.created_at >= since)
    items = db.session.scalars(items_q.order_by(ReviewItem.created_at.desc()).limit(QUEUE_ROWS)).all()
    events = db.session.scalars(audit_q.order_by(AuditEvent.created_at.desc()).limit(QUEUE_ROWS)).all()
    return list(items), list(events)


def money(value: Decimal | None) -> str | None:
    """An amount as the card and pages show it: 2 decimals."""
    return None if value is None else str(value.quantize(Decimal("0.01")))
