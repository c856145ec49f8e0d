"""What Xero says about an invoice, copied onto our link: used by the engine (after a send,
a recovery or a live read) and by payments (webhooks and the poll)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from app.models import InvoiceLink, InvoiceLinkState
from app.runtime import get_settings
from app.writeback import link_fields
from xero.client import InvoiceResult
from xero.status import deal_status


def apply_invoice_result(link: InvoiceLink, r: InvoiceResult, today: date | None = None) -> bool:
    """Copy Xero's view of the invoice onto the link; True if what the deal shows changed."""
    before = link_fields(link)
    link.state = InvoiceLinkState.CREATED
    link.xero_invoice_id, link.invoice_number, link.status = (
        r.invoice_id, r.invoice_number or link.invoice_number, r.status)
    link.currency, link.total = r.currency or link.currency, r.total if r.total is not None else link.total
    link.amount_due, link.amount_paid, link.amount_credited = r.amount_due, r.amount_paid, r.amount_credited
    link.due_date, link.paid_on = r.due_date or link.due_date, r.paid_on
    link.xero_updated_at = r.updated_at
    if r.amount_prepaid is not None:  # a summaryOnly read leaves what a full read said
        link.amount_prepaid = r.amount_prepaid
    if r.detail is not None:  # likewise the lines, payments and allocations
        link.detail = r.detail.to_json()
    link.synced_at = datetime.now(timezone.utc)
    link.online_url = (f"{get_settings().xero_app_base}/AccountsReceivable/View.aspx"
                       f"?InvoiceID={r.invoice_id}")
    link.deal_status = deal_status(r.status, total=link.total, amount_due=r.amount_due,
                                   amount_paid=r.amount_paid, amount_credited=r.amount_credited,
                                   due_date=link.due_date,
                                   today=today or datetime.now(timezone.utc).date(),
                                   amount_prepaid=link.amount_prepaid)
    if link.deal_status != "overdue":
        link.overdue_notified_at = None  # the overdue episode (if any) is over
    return link_fields(link) != before
