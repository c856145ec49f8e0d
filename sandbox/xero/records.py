"""The records of one Xero organisation's books: frozen snapshots, changed by `replace`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

Day = date
"""`datetime.date` under a name the dataclasses below (with fields called `date`) can use."""
ZERO = Decimal("0.00")
AllocationKind = Literal["CreditNote", "Prepayment", "Overpayment"]

LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
# Xero's invoice status changes (developer.xero.com invoices docs); PAID only via payments.
TRANSITIONS: dict[str, frozenset[str]] = {
    "DRAFT": frozenset({"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"}),
    "SUBMITTED": frozenset({"SUBMITTED", "DRAFT", "AUTHORISED", "DELETED"}),
    "AUTHORISED": frozenset({"AUTHORISED", "VOIDED"}),
    "PAID": frozenset(),
    "VOIDED": frozenset(),
    "DELETED": frozenset(),
}
CREATABLE_STATUSES = frozenset({"DRAFT", "SUBMITTED", "AUTHORISED"})
ONLINE_INVOICE_STATUSES = frozenset({"AUTHORISED", "PAID", "VOIDED"})
EMAILABLE_STATUSES = frozenset({"AUTHORISED", "PAID"})
UNCODEABLE_SYSTEM_ACCOUNTS = frozenset({"DEBTORS", "CREDITORS", "GST"})
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

CURRENCY_NAMES: dict[str, str] = {
    "AUD": "Australian Dollar", "CAD": "Canadian Dollar", "EUR": "Euro", "GBP": "British Pound",
    "JPY": "Japanese Yen", "NZD": "New Zealand Dollar", "SGD": "Singapore Dollar",
    "USD": "United States Dollar",
}
# A contact's text fields: Xero's JSON name -> attribute.
CONTACT_TEXT_FIELDS: dict[str, str] = {
    "Name": "name", "FirstName": "first_name", "LastName": "last_name",
    "EmailAddress": "email_address", "ContactNumber": "contact_number",
    "AccountNumber": "account_number", "TaxNumber": "tax_number",
    "ContactStatus": "contact_status", "DefaultCurrency": "default_currency",
}


@dataclass(frozen=True)
class Contact:
    contact_id: str
    name: str
    contact_status: str = "ACTIVE"
    first_name: str | None = None
    last_name: str | None = None
    email_address: str | None = None
    contact_number: str | None = None
    account_number: str | None = None
    tax_number: str | None = None
    phones: tuple[Mapping[str, Any], ...] = ()
    addresses: tuple[Mapping[str, Any], ...] = ()
    default_currency: str | None = None
    payment_terms: Mapping[str, Any] | None = None
    updated_ms: int = 0
    website: str | None = None  # read only in the API: set in Xero's UI (set_contact_website)

    def matches(self, term: str) -> bool:
        """Xero's contact ``searchTerm``: case-insensitive contains over five fields."""
        fields = (self.name, self.first_name, self.last_name, self.contact_number,
                  self.email_address)
        return any(term in value.casefold() for value in fields if value)


@dataclass(frozen=True)
class LineItem:
    line_item_id: str
    description: str | None
    quantity: Decimal
    unit_amount: Decimal
    account_code: str | None
    tax_type: str | None
    item_code: str | None = None
    discount_rate: Decimal | None = None
    tracking: tuple[Mapping[str, Any], ...] = ()
    line_amount: Decimal = ZERO
    tax_amount: Decimal = ZERO
    discount_amount: Decimal | None = None
    """As sent (to cents); None when the line has a DiscountRate or no discount."""
    discount: Decimal = ZERO
    """Quantity x UnitAmount (to cents) less LineAmount: the line's part of TotalDiscount."""
    tax_override: Decimal | None = None
    """A TaxAmount the request carried (spec: it "can be overriden")."""


@dataclass(frozen=True)
class Payment:
    payment_id: str
    date: Day
    amount: Decimal
    reference: str | None
    updated_ms: int


@dataclass(frozen=True)
class Allocation:
    """A credit note, prepayment or overpayment applied to an invoice. Xero lists them on
    the invoice as CreditNotes / Prepayments / Overpayments, each with AppliedAmount, and
    counts all three in AmountCredited (OpenAPI Invoice.AmountCredited: "Sum of all credit
    notes, over-payments and pre-payments applied to invoice")."""

    kind: AllocationKind
    allocation_id: str
    amount: Decimal
    day: Day


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    contact_id: str
    invoice_number: str
    status: str
    date: Day
    line_amount_types: str
    currency_code: str
    type: str = "ACCREC"
    reference: str | None = None
    due_date: Day | None = None
    line_items: tuple[LineItem, ...] = ()
    sub_total: Decimal = ZERO
    total_tax: Decimal = ZERO
    total: Decimal = ZERO
    total_discount: Decimal = ZERO
    amount_paid: Decimal = ZERO
    amount_credited: Decimal = ZERO
    payments: tuple[Payment, ...] = ()
    fully_paid_on: Day | None = None
    sent_to_contact: bool = False
    created_by_app: bool = True
    url: str | None = None
    online_token: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    updated_ms: int = 0
    allocations: tuple[Allocation, ...] = ()

    @property
    def amount_due(self) -> Decimal:
        return self.total - self.amount_paid - self.amount_credited


@dataclass(frozen=True)
class EmailRecord:
    """One successful ``POST /Invoices/{id}/Email``."""

    invoice_id: str
    invoice_number: str
    to: str
    time: float
