"""The review queue's items, and the deal names and invoice numbers it and the activity log
show. Database reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from collections.abc import Iterable

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, InvoiceLink, ReviewItem, ReviewStatus

QUEUE_ROWS = 100  # the review page lists at most this many items, and as many events


def review_items(installation_id: int, deal: str, status: str,
                 since: datetime | None) -> list[ReviewItem]:
    """The queue's items, newest first, filtered by deal ("" = every deal), status ("all" or a
    ReviewStatus value) and the day they start from; at most QUEUE_ROWS."""
    items_q = select(ReviewItem).where(ReviewItem.installation_id == installation_id)
    if deal:
        items_q = items_q.where(ReviewItem.deal_id == deal)
    if status != "all":
        items_q = items_q.where(ReviewItem.status == ReviewStatus(status))
    if since is not None:
        items_q = items_q.where(ReviewItem.created_at >= since)
    return list(db.session.scalars(items_q.order_by(ReviewItem.created_at.desc(),
                                                    ReviewItem.id.desc()).limit(QUEUE_ROWS)).all())


@dataclass(frozen=True)
class DealNames:
    """What the log shows for a deal and an invoice: the deal's name (from the engine's audit
    of it), its invoice number (from its invoice link)."""

    deals: dict[str, str]  # deal id -> name
    invoices_by_deal: dict[str, str]  # deal id -> invoice number
    invoices_by_id: dict[str, str]  # Xero InvoiceID -> invoice number

    def deal(self, deal_id: str | None) -> str:
        return self.deals.get(deal_id or "", "")

    def invoice(self, deal_id: str | None, invoice_id: str | None = None) -> str:
        return (self.invoices_by_id.get(invoice_id or "")
                or self.invoices_by_deal.get(deal_id or "", ""))


def deal_names(installation_id: int, deal_ids: Iterable[str | None],
               invoice_ids: Iterable[str | None] = ()) -> DealNames:
    """Names and invoice numbers for these deals and Xero invoices: two queries."""
    ids = sorted({d for d in deal_ids if d})
    xero_ids = sorted({i for i in invoice_ids if i})
    if not ids and not xero_ids:
        return DealNames({}, {}, {})
    names: dict[str, str] = {}
    for deal_id, detail in db.session.execute(
            select(AuditEvent.deal_id, AuditEvent.detail).where(
                AuditEvent.installation_id == installation_id, AuditEvent.deal_id.in_(ids),
                AuditEvent.action == "invoice_sync").order_by(AuditEvent.id.desc())):
        name = (detail or {}).get("deal_name")
        if deal_id and name and deal_id not in names:
            names[deal_id] = str(name)
    by_deal: dict[str, str] = {}
    by_id: dict[str, str] = {}
    for link in db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == installation_id,
            db.or_(InvoiceLink.deal_id.in_(ids), InvoiceLink.xero_invoice_id.in_(xero_ids)))):
        if link.invoice_number:
            by_deal.setdefault(link.deal_id, link.invoice_number)
            if link.xero_invoice_id:
                by_id[link.xero_invoice_id] = link.invoice_number
    return DealNames(names, by_deal, by_id)
