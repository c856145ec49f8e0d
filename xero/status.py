"""One deal status from a Xero invoice. Pure: Xero is the source of truth for money; this only
names what Xero says, for the sales team."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

LABELS = {
    "draft": "Draft",
    "awaiting_approval": "Awaiting approval",
    "awaiting_payment": "Awaiting payment",
    "partially_paid": "Partially paid",
    "overdue": "Overdue",
    "paid": "Paid",
    "credited": "Credited",
    "voided": "Voided",
    "deleted": "Deleted",
}


def deal_status(status: str | None, *, total: Decimal | None, amount_due: Decimal | None,
                amount_paid: Decimal | None, amount_credited: Decimal | None,
                due_date: date | None, today: date, amount_prepaid: Decimal | None = None) -> str:
    """Xero's Status plus its amounts -> one of LABELS' keys.

    Xero's AmountCredited is "Sum of all credit notes, over-payments and pre-payments applied
    to invoice" (OpenAPI Invoice.AmountCredited). Money the customer paid in advance
    (`amount_prepaid`: the Prepayments and Overpayments allocated) is a payment to the sales
    team, so only the credit-note part counts as credited.
    """
    prepaid = amount_prepaid or Decimal(0)
    paid = (amount_paid or Decimal(0)) + prepaid
    credited = (amount_credited or Decimal(0)) - prepaid
    due = amount_due if amount_due is not None else (total or Decimal(0)) - paid - credited
    if status in ("VOIDED", "DELETED"):
        return status.lower() if status == "DELETED" else "voided"
    if status == "DRAFT":
        return "draft"
    if status == "SUBMITTED":
        return "awaiting_approval"
    if status == "PAID" or (status == "AUTHORISED" and due <= 0):
        return "credited" if credited > 0 and paid == 0 else "paid"
    if due_date is not None and due_date < today and due > 0:
        return "overdue"
    if paid > 0 or credited > 0:
        return "partially_paid"
    return "awaiting_payment"
