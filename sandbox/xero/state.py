"""One organisation's books: its records (frozen snapshots, changed by `replace`), the
ledger holding them, seeded for its region, and the batch mechanics of saving."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from sandbox.kit.clock import Clock
from sandbox.xero.regions import Account, Item, RegionSetup, TaxRate, region_setup, zone_of
from sandbox.xero.wire import is_guid

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
    **{final: frozenset() for final in ("PAID", "VOIDED", "DELETED")},
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
    # MergedToContactID: "ID for the destination of a merged contact" (the spec's Contact,
    # tests/specs/xero/xero_accounting.yaml); set by merging in Xero's UI (merge_contact).
    merged_to: str | None = None

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
    discount_amount: Decimal | None = None  # as sent; None with a DiscountRate or no discount
    discount: Decimal = ZERO  # Q x U (to cents) less LineAmount: its part of TotalDiscount
    tax_override: Decimal | None = None  # a TaxAmount sent (spec: it "can be overriden")


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
class Overpayment:
    """Money a customer paid beyond what an invoice asked (Type RECEIVE-OVERPAYMENT): a credit
    on the contact, not on the invoice (developer.xero.com/documentation/api/overpayments:
    Type, Contact, Date, Status AUTHORISED|PAID|VOIDED, Total, RemainingCredit, Allocations).
    Created in Xero's UI by reconciling a bank line to the invoice plus a Receive Money
    "Overpayment" for the excess (help.xero.com/au/BankAccounts_Overpayment_Rec)."""

    overpayment_id: str
    contact_id: str
    date: Day
    currency_code: str
    total: Decimal
    reference: str | None
    remaining_credit: Decimal
    invoice_id: str  # the invoice whose bank line it came with (the console's bookkeeping)
    updated_ms: int
    type: str = "RECEIVE-OVERPAYMENT"

    @property
    def status(self) -> str:
        # Overpayment Status Codes: AUTHORISED while credit remains, PAID once all of it is
        # allocated or refunded.
        return "AUTHORISED" if self.remaining_credit > 0 else "PAID"


@dataclass(frozen=True)
class EmailRecord:
    """One successful ``POST /Invoices/{id}/Email``."""

    invoice_id: str
    invoice_number: str
    to: str
    time: float


# ----- the ledger ----------------------------------------------------------------------

T = TypeVar("T")
Saved = tuple[dict[str, Any], str | None]
"""One saved element: what the answer shows, and the record's id (None: refused)."""


@dataclass
class SaveResult:
    """What a batch save produced: one rendered element per input, in order."""

    elements: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    saved_ids: list[str] = field(default_factory=list)


class Snapshot(Generic[T]):
    """A read-only attribute: a list copy, taken under the lock, of a ledger collection."""

    def __init__(self, collection: str) -> None:
        self.collection = collection

    def __get__(self, ledger: Ledger, owner: type | None = None) -> list[T]:
        with ledger.lock:
            values = getattr(ledger, self.collection)
            return list(values.values() if isinstance(values, dict) else values)


class Ledger:
    """The records of one tenant, seeded for its `region` (sandbox/xero/regions.py); callers
    hold `lock` (an RLock) around every change. `timezone`: see `Tenant`."""

    # Where GET /Invoices/{id}/OnlineInvoice links point: Xero's customer-facing invoice site
    # in production; the sandbox points it at its console's mock of that page.
    online_invoice_base = "https://in.xero.com"

    def __init__(self, tenant_id: str, name: str, lock: AbstractContextManager[Any], clock: Clock,
                 *, region: str = "AU", timezone: str | None = None) -> None:
        self.tenant_id = tenant_id
        self.lock = lock
        self.clock = clock
        self._last_ms = 0
        self.setup: RegionSetup = region_setup(region)
        self.region = self.setup.version
        self.timezone = timezone or self.setup.timezone
        self.zone = zone_of(self.timezone)
        self.base_currency = self.setup.base_currency
        self.created_ms = self.stamp()
        self.organisation_id = str(uuid.uuid4())
        self.organisation_name = name
        self.short_code = "!" + secrets.token_hex(3)[:5]
        self.rate_by_type: dict[str, TaxRate] = {t.tax_type: t for t in self.setup.tax_rates()}
        self.account_by_code: dict[str, Account] = {
            a.code: a for a in self.setup.accounts(self.created_ms)
        }
        self.item_by_code: dict[str, Item] = {i.code: i for i in self.setup.items(self.created_ms)}
        self.currency_codes: list[str] = [self.base_currency]
        self.contact_by_id: dict[str, Contact] = {}
        self.invoice_by_id: dict[str, Invoice] = {}
        self.next_number = 1
        self.emails: list[EmailRecord] = []
        self.overpayment_by_id: dict[str, Overpayment] = {}
        self.contact_group_by_id: dict[str, Any] = {}  # sandbox/xero/groups.py

    def stamp(self) -> int:
        """Now in ms, strictly increasing per tenant so UpdatedDateUTC orders changes."""
        self._last_ms = max(int(self.clock.now() * 1000), self._last_ms + 1)
        return self._last_ms

    def today(self) -> date:
        """The organisation's local date now. Spec, Invoice.Date: "If the Date element is
        not specified it will default to the current date based on the timezone setting
        of the organisation"; Organisation.Timezone names that zone."""
        with self.lock:
            return datetime.fromtimestamp(self.clock.now(), tz=self.zone).date()

    def find_contact(self, key: str) -> Contact | None:
        """By ContactID (any case) or, as Xero allows, by ContactNumber."""
        if is_guid(key):
            return self.contact_by_id.get(str(uuid.UUID(key)))
        return next((c for c in self.contact_by_id.values() if c.contact_number == key), None)

    def find_invoice(self, key: str) -> Invoice | None:
        """By InvoiceID (any case) or, as Xero allows, by InvoiceNumber."""
        if is_guid(key):
            return self.invoice_by_id.get(str(uuid.UUID(key)))
        return next((i for i in self.invoice_by_id.values() if i.invoice_number == key), None)

    def contact(self, contact_id: str) -> Contact:  # KeyError if there is none
        with self.lock:
            return _required(self.find_contact(contact_id), contact_id)

    def invoice(self, invoice_id: str) -> Invoice:  # KeyError if there is none
        with self.lock:
            return _required(self.find_invoice(invoice_id), invoice_id)

    def keep(self, invoice: Invoice) -> Invoice:
        self.invoice_by_id[invoice.invoice_id] = invoice
        return invoice

    def next_invoice_number(self) -> str:
        """Xero's default numbering: INV-0001, INV-0002, ... skipping numbers in use."""
        number = self.next_number
        while self.number_taken(f"INV-{number:04d}", None):
            number += 1
            self.next_number = number
        return f"INV-{number:04d}"

    def number_taken(self, number: str, invoice_id: str | None) -> bool:
        return any(
            i.invoice_number == number and i.invoice_id != invoice_id and i.status != "DELETED"
            for i in self.invoice_by_id.values()
        )

    def batch(self, elements: Sequence[Any], summarize: bool,
              save: Callable[[Any], Saved]) -> SaveResult:
        """Save each element in order; with `summarize`, any failure undoes the lot
        (timestamps stay monotonic: the clock of `stamp` is not rewound)."""
        with self.lock:
            undo = (dict(self.contact_by_id), dict(self.invoice_by_id), self.next_number)
            result = SaveResult()
            for element in elements:
                rendered, saved_id = save(element)
                result.elements.append(rendered)
                if saved_id is None:
                    result.failed.append(rendered)
                else:
                    result.saved_ids.append(saved_id)
            if summarize and result.failed:
                self.contact_by_id, self.invoice_by_id, self.next_number = undo
                result.saved_ids = []
            return result


def _required(found: T | None, key: str) -> T:
    if found is None:
        raise KeyError(key)
    return found
