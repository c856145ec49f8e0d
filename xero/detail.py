"""The whole invoice as Xero returned it: lines, totals, payments and what was allocated to
it, for the card and the deal page to show from Paydeck's own database.

Which reads carry what (tests/specs/xero/xero_accounting.yaml):
- `GET /Invoices/{InvoiceID}` (operationId getInvoice): the example answer carries
  `LineItems`, `Payments` (PaymentID, Date, Amount, Reference), `Prepayments`,
  `Overpayments`.
- `GET /Invoices` with `page`: "Up to 100 invoices will be returned in a single API call with
  line items shown for each invoice"; its example lists `Payments`, `CreditNotes`,
  `Prepayments`, `Overpayments` on every element. Paydeck's `invoices_by_ids` always sends
  `page=1`, so it gets the lines.
- `summaryOnly=true` "returns only lightweight fields, excluding computation-heavy fields":
  the spec does not list which. Paydeck treats an answer without `LineItems` as carrying no
  detail at all (None here), so a summary read never blanks what a full read stored.
- `PUT /Invoices` answers with the created invoices (schema `Invoices`, the same `Invoice`
  model), lines included.
What the documents leave open: whether a list read without `page` carries Payments; whether
CreditNotes inside an invoice carry `AppliedAmount` as in the spec's CreditNote model (the
fake says yes, per the model); when an invoice was emailed (`SentToContact` is a boolean
with no date: the date Paydeck shows is that of its own email action).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from domain.money import to_decimal

ALLOCATION_KINDS = ("credit_note", "prepayment", "overpayment")


@dataclass(frozen=True)
class Line:
    description: str
    quantity: Decimal | None
    unit_amount: Decimal | None
    discount_rate: Decimal | None  # percent (10 = 10%)
    discount_amount: Decimal | None
    account_code: str
    tax_type: str
    tax_amount: Decimal | None
    line_amount: Decimal | None
    item_code: str = ""


@dataclass(frozen=True)
class Payment:
    payment_id: str
    day: date | None
    amount: Decimal | None
    reference: str


@dataclass(frozen=True)
class Allocation:
    """A credit note, prepayment or overpayment applied to the invoice."""

    kind: str  # one of ALLOCATION_KINDS
    allocation_id: str
    number: str  # a credit note's number ("" for the others)
    day: date | None
    amount: Decimal | None


@dataclass(frozen=True)
class InvoiceDetail:
    line_amount_types: str  # Exclusive, Inclusive or NoTax
    invoice_date: date | None
    sub_total: Decimal | None
    total_tax: Decimal | None
    total_discount: Decimal | None
    lines: tuple[Line, ...]
    payments: tuple[Payment, ...]
    allocations: tuple[Allocation, ...]
    contact_name: str = ""
    contact_email: str = ""
    sent_to_contact: bool = False

    def to_json(self) -> dict[str, Any]:
        """For a JSON column: Decimals and dates as exact strings (never a float)."""
        return _plain(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InvoiceDetail:
        return cls(
            line_amount_types=data.get("line_amount_types", ""),
            invoice_date=_date(data.get("invoice_date")),
            sub_total=to_decimal(data.get("sub_total")), total_tax=to_decimal(data.get("total_tax")),
            total_discount=to_decimal(data.get("total_discount")),
            lines=tuple(Line(l["description"], to_decimal(l["quantity"]), to_decimal(l["unit_amount"]),
                             to_decimal(l["discount_rate"]), to_decimal(l["discount_amount"]),
                             l["account_code"], l["tax_type"], to_decimal(l["tax_amount"]),
                             to_decimal(l["line_amount"]), l.get("item_code", ""))
                        for l in data.get("lines", [])),
            payments=tuple(Payment(p["payment_id"], _date(p["day"]), to_decimal(p["amount"]),
                                   p["reference"]) for p in data.get("payments", [])),
            allocations=tuple(Allocation(a["kind"], a["allocation_id"], a["number"], _date(a["day"]),
                                         to_decimal(a["amount"])) for a in data.get("allocations", [])),
            contact_name=data.get("contact_name", ""), contact_email=data.get("contact_email", ""),
            sent_to_contact=bool(data.get("sent_to_contact")))


def detail_of(invoice: Any) -> InvoiceDetail | None:
    """The detail of an SDK `Invoice`; None when the answer did not carry its lines (a
    summaryOnly or unpaged list read)."""
    if invoice.line_items is None:
        return None
    allocations = [
        *(Allocation("credit_note", _text(c.credit_note_id), c.credit_note_number or "", _day(c.date),
                     to_decimal(c.applied_amount)) for c in invoice.credit_notes or ()),
        *(Allocation("prepayment", _text(p.prepayment_id), "", _day(p.date), to_decimal(p.applied_amount))
          for p in invoice.prepayments or ()),
        *(Allocation("overpayment", _text(o.overpayment_id), "", _day(o.date), to_decimal(o.applied_amount))
          for o in invoice.overpayments or ()),
    ]
    contact = invoice.contact
    return InvoiceDetail(
        line_amount_types=_enum(invoice.line_amount_types), invoice_date=_day(invoice.date),
        sub_total=to_decimal(invoice.sub_total), total_tax=to_decimal(invoice.total_tax),
        total_discount=to_decimal(invoice.total_discount),
        lines=tuple(Line(l.description or "", to_decimal(l.quantity), to_decimal(l.unit_amount),
                         to_decimal(l.discount_rate), to_decimal(l.discount_amount),
                         l.account_code or "", l.tax_type or "", to_decimal(l.tax_amount),
                         to_decimal(l.line_amount), l.item_code or "")
                    for l in invoice.line_items),
        payments=tuple(Payment(_text(p.payment_id), _day(p.date), to_decimal(p.amount), p.reference or "")
                       for p in invoice.payments or ()),
        allocations=tuple(allocations),
        contact_name=(getattr(contact, "name", None) or "") if contact else "",
        contact_email=(getattr(contact, "email_address", None) or "") if contact else "",
        sent_to_contact=bool(invoice.sent_to_contact))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (Decimal, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    return value


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _enum(value: Any) -> str:
    return "" if value is None else str(getattr(value, "value", value))
