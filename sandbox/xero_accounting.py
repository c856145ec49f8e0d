"""Stateful fake of Xero's Accounting API (``/api.xro/2.0/...``), installed on `FakeXero`.

Served on the fake's root, so xero-python works against it unchanged::

    AccountingApi(api_client, base_url=f"{server.url}/api.xro/2.0")

What it models (sources: shared/notes/platform-facts.md "Xero Accounting API", the
vendored spec shared/specs/xero/xero_accounting.yaml, the xero-python 15.x source):

- per-tenant books seeded with a realistic AU, NZ, UK or US organisation (its region's
  default tax rates, chart of accounts, items, base currency and timezone: see
  sandbox/xero_regions.py), reachable by tests through ``fake.accounting(tenant_id)``;
- contacts and ACCREC invoices: batch PUT/POST with the two ``summarizeErrors``
  modes, Xero's validation rules and field limits (sandbox/xero_limits.py),
  auto-numbering, Xero's line arithmetic - discounts, ``unitdp``, LineAmountTypes, tax
  rounded per line (sandbox/xero_lines.py) - status transitions, payments,
  online-invoice links and emailing;
- reads with ``IDs``/``where``/``order``/``page``/``pageSize``/``searchTerm``/
  ``If-Modified-Since``; a small ``where`` parser for the subset Paydeck uses;
- requests held to the spec: query booleans only as ``true``/``false``, and PUT/POST
  bodies refused (400 ValidationException) with a ``readOnly`` field, a value of the wrong
  type or a field required to create missing (sandbox/xero_schema.py, generated from the
  vendored spec);
- production behaviour: ``Idempotency-Key`` replay, per-tenant and app-wide rate
  limits with Xero's headers, injected faults (5xx, 429, slow, lost response, an answer
  one element short) and a
  call log for tests and benchmarks.

Wire formats follow real Xero, not the spec's ``format`` hints: dates are
``"/Date(1700000000000+0000)/"`` (what xero-python's ``date[ms-format]`` and
``datetime[ms-format]`` deserializers expect) and money is a JSON number written
from a `Decimal`, never from a float.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar, cast

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from sandbox import xero_schema
from sandbox.kit.clock import Clock
from sandbox.xero_limits import (
    ADDRESS_LIMITS,
    CONTACT_LIMITS,
    INVOICE_LIMITS,
    LINE_LIMITS,
    PHONE_LIMITS,
    TRACKING_LIMITS,
    length_problems,
    nested_length_problems,
    too_long,
)
from sandbox.xero_lines import (
    LineRequest,
    Totals,
    invoice_totals,
    line_tax,
    price_line,
    unit_quantum,
)
from sandbox.xero_regions import (
    WINDOWS_TO_IANA,
    ACCOUNT_CLASS_OF_TYPE,
    Account,
    Item,
    RegionSetup,
    TaxComponent,
    TaxRate,
    region_setup,
    zone_of,
)

if TYPE_CHECKING:
    from sandbox.xero import FakeXero

API_ROOT = "/api.xro/2.0"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
PROVIDER_NAME = "Paydeck Xero sandbox"
DEFAULT_IDEMPOTENCY_TTL_S = 360.0  # platform-facts: keys live "about 6 minutes" (unverified)
MAX_IDEMPOTENCY_KEY = 128  # platform-facts: Idempotency-Key max 128 chars
DEFAULT_PAGE_SIZE = 100  # platform-facts: page = 100 records
MAX_PAGE_SIZE = 1000
MINUTE_S = 60.0
DAY_S = 86_400.0

CENT = Decimal("0.01")
UNIT_4DP = Decimal("0.0001")
HUNDRED = Decimal(100)

T = TypeVar("T")
R = TypeVar("R")
Day = date
"""`datetime.date` under a name the dataclasses below (with fields called `date`) can use."""

# ======================================================================================
# Wire formats
# ======================================================================================


def ms_datetime(ms: int) -> str:
    """Xero's JSON timestamp: ``/Date(<ms since epoch>+0000)/``."""
    return f"/Date({ms}+0000)/"


def ms_date(value: date) -> str:
    """A calendar date as Xero sends it: UTC midnight in ``/Date()/`` form."""
    midnight = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return ms_datetime(int(midnight.timestamp()) * 1000)


def date_string(value: date) -> str:
    """The ``DateString``/``DueDateString`` companions Xero adds ("2024-01-31T00:00:00")."""
    return f"{value.isoformat()}T00:00:00"


_MS_DATE = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)/$")


def parse_xero_date(value: object) -> date:
    """A request date: ``/Date(ms[+hhmm])/`` (what xero-python sends) or ISO 8601.

    Raises ValueError for anything else.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    text = value.strip()
    match = _MS_DATE.match(text)
    if match is not None:
        return datetime.fromtimestamp(int(match["ms"]) / 1000, tz=UTC).date()
    return datetime.fromisoformat(text).date() if "T" in text else date.fromisoformat(text)


def parse_http_timestamp(value: str) -> int:
    """An ``If-Modified-Since`` value in ms since the epoch.

    xero-python sends ``datetime.isoformat()`` (naive means UTC, as Xero reads it);
    HTTP clients send RFC 7231 dates. Raises ValueError for anything else.
    """
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a timestamp: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def to_decimal(value: object) -> Decimal:
    """An exact number from JSON/helper input; floats are refused (money is Decimal)."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, float):
        raise TypeError("floats are not accepted for money; pass Decimal, int or str")
    if isinstance(value, Decimal | int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    else:
        raise ValueError(f"not a number: {value!r}")
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def money(value: Decimal) -> Decimal:
    """Round to cents, half away from zero (as Xero rounds amounts)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def dumps(value: Any) -> str:
    """JSON with `Decimal` written as an exact number ("110.00"), never via float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("the accounting fake never writes floats")
    return json.dumps(value)


def json_body(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, content_type="application/json; charset=utf-8")


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# ======================================================================================
# Xero's error responses
# ======================================================================================


class ApiError(Exception):
    """Abort the current API call with `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class QueryError(ValueError):
    """A ``where``/``order`` expression Xero (and this fake) cannot parse."""


def validation_exception(elements: list[dict[str, Any]], message: str | None = None) -> Response:
    """Xero's 400 for a batch with a bad element (platform-facts: Batches)."""
    body: dict[str, Any] = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": message or "A validation exception occurred",
        "Elements": elements,
    }
    return json_body(body, status=400)


def query_parse_exception(message: str) -> Response:
    """Xero answers an unparsable ``where``/``order`` with ErrorNumber 16."""
    body = {"ErrorNumber": 16, "Type": "QueryParseException", "Message": message}
    return json_body(body, status=400)


def post_data_invalid(message: str) -> Response:
    """Xero's 400 for a body it cannot read (ErrorNumber 14)."""
    body = {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": message}
    return json_body(body, status=400)


def not_found() -> Response:
    """Xero's 404 is plain text, not JSON (XeroAPI/Xero-OpenAPI#163, "wontfix")."""
    return Response(
        "The resource you're looking for cannot be found",
        status=404,
        content_type="text/plain; charset=utf-8",
    )


def problem(status: int, title: str, detail: str) -> Response:
    body = {"Type": None, "Title": title, "Status": status, "Detail": detail}
    return json_body(body, status=status)


# ======================================================================================
# `where` and `order`
# ======================================================================================

FieldKind = Literal["string", "guid"]
WhereValues = Mapping[str, str | None]
"""A record's where-able fields: lower-cased Xero field name -> value."""
Predicate = Callable[[WhereValues], bool]

_WHERE_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|&&|\|\||\(|\))
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_SUPPORTED_WHERE = (
    'supported: Field=="text", Field!="text", Field==guid("..."), Field==null, '
    "joined by AND/OR (or &&/||) with parentheses"
)


@dataclass(frozen=True)
class _Token:
    kind: str  # string | op | word | AND | OR | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _WHERE_TOKEN.match(stripped, pos)
        if match is None or match.lastgroup is None:
            break
        kind, value, start = (
            match.lastgroup,
            match.group(match.lastgroup),
            match.start(match.lastgroup),
        )
        if kind == "bad":
            raise QueryError(f"Syntax error: unexpected '{value}' at position {start}")
        if kind in ("word", "op") and value.upper() in ("AND", "&&", "OR", "||"):
            kind = "AND" if value.upper() in ("AND", "&&") else "OR"
        tokens.append(_Token(kind, value, start))
        pos = match.end()
    tokens.append(_Token("end", "", len(stripped)))
    return tokens


class _WhereParser:
    """Recursive descent over ``or := and (OR and)*; and := term (AND term)*``.

    ``term := "(" or ")" | Field ("=="|"!=") value``, with string comparison exact
    (case-sensitive) as in Xero, guids compared as guids.
    """

    def __init__(self, text: str, fields: Mapping[str, FieldKind], type_name: str) -> None:
        self._tokens = _tokenize(text)
        self._pos = 0
        self._fields = fields
        self._type_name = type_name

    def parse(self) -> Predicate:
        predicate = self._or()
        if self._peek().kind != "end":
            raise self._error("')' or operator expected")
        return predicate

    def _peek(self) -> _Token:
        return self._tokens[self._pos]

    def _next(self) -> _Token:
        token = self._tokens[self._pos]
        if token.kind != "end":
            self._pos += 1
        return token

    def _accept(self, kind: str, text: str | None = None) -> bool:
        token = self._peek()
        if token.kind == kind and (text is None or token.text == text):
            self._next()
            return True
        return False

    def _error(self, what: str) -> QueryError:
        token = self._peek()
        near = f"'{token.text}'" if token.text else "end of expression"
        return QueryError(f"{what} (near {near} at position {token.pos}; {_SUPPORTED_WHERE})")

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._accept("OR"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else _any_of(parts)

    def _and(self) -> Predicate:
        parts = [self._term()]
        while self._accept("AND"):
            parts.append(self._term())
        return parts[0] if len(parts) == 1 else _all_of(parts)

    def _term(self) -> Predicate:
        if self._accept("op", "("):
            inner = self._or()
            if not self._accept("op", ")"):
                raise self._error("')' expected")
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        token = self._peek()
        if token.kind != "word":
            raise self._error("Field name expected")
        self._next()
        name = token.text.lower()
        kind = self._fields.get(name)
        if kind is None:
            raise QueryError(
                f"No property or field '{token.text}' exists in type '{self._type_name}'"
            )
        op = self._peek()
        if op.kind != "op" or op.text not in ("==", "!="):
            raise self._error("'==' or '!=' expected")
        self._next()
        expected = self._value(kind, op.text)
        if op.text == "==":
            return lambda values: _normalise(values.get(name), kind) == expected
        return lambda values: _normalise(values.get(name), kind) != expected

    def _value(self, kind: FieldKind, op: str) -> str | None:
        token = self._peek()
        if token.kind == "word" and token.text.lower() == "null":
            self._next()
            return None
        if token.kind == "string":
            self._next()
            if kind == "guid":
                raise QueryError(
                    f"Operator '{op}' incompatible with operand types 'Guid' and 'String'"
                )
            return _unquote(token.text)
        if token.kind == "word" and token.text.lower() == "guid":
            self._next()
            return self._guid_literal(kind, op)
        raise self._error("Literal expected")

    def _guid_literal(self, kind: FieldKind, op: str) -> str:
        if not self._accept("op", "("):
            raise self._error("'(' expected")
        token = self._peek()
        if token.kind != "string" or not is_guid(_unquote(token.text)):
            raise self._error('guid("...") needs a quoted GUID')
        self._next()
        if not self._accept("op", ")"):
            raise self._error("')' expected")
        if kind != "guid":
            raise QueryError(f"Operator '{op}' incompatible with operand types 'String' and 'Guid'")
        return str(uuid.UUID(_unquote(token.text)))


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _normalise(value: str | None, kind: FieldKind) -> str | None:
    if value is None or kind == "string":
        return value
    return str(uuid.UUID(value)) if is_guid(value) else value


def _any_of(parts: list[Predicate]) -> Predicate:
    return lambda values: any(part(values) for part in parts)


def _all_of(parts: list[Predicate]) -> Predicate:
    return lambda values: all(part(values) for part in parts)


def parse_where(text: str, fields: Mapping[str, FieldKind], type_name: str) -> Predicate:
    """Compile a Xero ``where`` expression over `fields` (lower-cased names)."""
    if not text.strip():
        return lambda values: True
    return _WhereParser(text, fields, type_name).parse()


SortKey = Callable[[T], Any]


def parse_order(
    text: str, keys: Mapping[str, SortKey[T]], type_name: str
) -> list[tuple[SortKey[T], bool]]:
    """``"UpdatedDateUTC ASC, Name DESC"`` -> [(key, descending), ...]."""
    order: list[tuple[SortKey[T], bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        direction = words[1].upper() if len(words) > 1 else "ASC"
        if len(words) > 2 or direction not in ("ASC", "DESC"):
            raise QueryError(f"Invalid order clause '{part.strip()}'")
        key = keys.get(words[0].lower())
        if key is None:
            raise QueryError(f"No property or field '{words[0]}' exists in type '{type_name}'")
        order.append((key, direction == "DESC"))
    return order


def sort_records(records: list[T], order: Sequence[tuple[SortKey[T], bool]]) -> list[T]:
    """Stable multi-key sort; missing values sort first (ascending)."""
    result = list(records)
    for key, descending in reversed(order):
        result.sort(key=_none_first(key), reverse=descending)
    return result


def _none_first(key: SortKey[T]) -> Callable[[T], tuple[bool, Any]]:
    def wrapped(record: T) -> tuple[bool, Any]:
        value = key(record)
        return value is not None, value

    return wrapped


# ======================================================================================
# Books: the records of one organisation
# ======================================================================================

InvoiceStatus = Literal["DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"]
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
# Xero's invoice status changes (developer.xero.com invoices docs); PAID only via payments.
_TRANSITIONS: dict[str, frozenset[str]] = {
    "DRAFT": frozenset({"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"}),
    "SUBMITTED": frozenset({"SUBMITTED", "DRAFT", "AUTHORISED", "DELETED"}),
    "AUTHORISED": frozenset({"AUTHORISED", "VOIDED"}),
    "PAID": frozenset(),
    "VOIDED": frozenset(),
    "DELETED": frozenset(),
}
_CREATABLE_STATUSES = frozenset({"DRAFT", "SUBMITTED", "AUTHORISED"})
_ONLINE_INVOICE_STATUSES = frozenset({"AUTHORISED", "PAID", "VOIDED"})
_EMAILABLE_STATUSES = frozenset({"AUTHORISED", "PAID"})
_UNCODEABLE_SYSTEM_ACCOUNTS = frozenset({"DEBTORS", "CREDITORS", "GST"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

CURRENCY_NAMES: dict[str, str] = {
    "AUD": "Australian Dollar",
    "CAD": "Canadian Dollar",
    "EUR": "Euro",
    "GBP": "British Pound",
    "JPY": "Japanese Yen",
    "NZD": "New Zealand Dollar",
    "SGD": "Singapore Dollar",
    "USD": "United States Dollar",
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

    def where_values(self) -> WhereValues:
        return {
            "contactid": self.contact_id,
            "name": self.name,
            "firstname": self.first_name,
            "lastname": self.last_name,
            "emailaddress": self.email_address,
            "contactnumber": self.contact_number,
            "accountnumber": self.account_number,
            "taxnumber": self.tax_number,
            "contactstatus": self.contact_status,
        }


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
    line_amount: Decimal = Decimal("0.00")
    tax_amount: Decimal = Decimal("0.00")
    discount_amount: Decimal | None = None
    """As sent (to cents); None when the line has a DiscountRate or no discount."""
    discount: Decimal = Decimal("0.00")
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

    kind: Literal["CreditNote", "Prepayment", "Overpayment"]
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
    sub_total: Decimal = Decimal("0.00")
    total_tax: Decimal = Decimal("0.00")
    total: Decimal = Decimal("0.00")
    total_discount: Decimal = Decimal("0.00")
    amount_paid: Decimal = Decimal("0.00")
    amount_credited: Decimal = Decimal("0.00")
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

    def where_values(self, contact: Contact | None) -> WhereValues:
        return {
            "invoiceid": self.invoice_id,
            "contactid": self.contact_id,
            "contact.contactid": self.contact_id,
            "contact.name": contact.name if contact else None,
            "invoicenumber": self.invoice_number,
            "reference": self.reference,
            "status": self.status,
            "type": self.type,
            "currencycode": self.currency_code,
        }


@dataclass(frozen=True)
class EmailRecord:
    """One successful ``POST /Invoices/{id}/Email``."""

    invoice_id: str
    invoice_number: str
    to: str
    time: float


@dataclass
class _Snapshot:
    contacts: dict[str, Contact]
    invoices: dict[str, Invoice]
    next_number: int


@dataclass
class SaveResult:
    """What a batch save produced: one rendered element per input, in order."""

    elements: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    saved_ids: list[str]


class _RegionDefault:
    """Marks an argument that defaults to the organisation's region (e.g. its sales tax)."""

    def __repr__(self) -> str:
        return "REGION_DEFAULT"


REGION_DEFAULT: Any = _RegionDefault()


class TenantBooks:
    """The accounting records of one tenant, plus the helpers tests seed and tune with.

    Every method takes the owning fake's lock, so a test may call them while the
    server is handling requests. Returned records are frozen snapshots.

    `region` ("AU", "NZ", "UK", "US") picks the starting tax rates, accounts, items,
    base currency and timezone (sandbox/xero_regions.py); `timezone` overrides the
    region's Organisation.Timezone (one of Xero's Windows-style names).
    """

    def __init__(
        self,
        tenant_id: str,
        name: str,
        lock: AbstractContextManager[Any],
        clock: Clock,
        *,
        region: str = "AU",
        timezone: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self._lock = lock
        self._clock = clock
        self._last_ms = 0
        self.setup: RegionSetup = region_setup(region)
        self.region = self.setup.version
        self.timezone = timezone or self.setup.timezone
        self._zone = zone_of(self.timezone)
        self.base_currency = self.setup.base_currency
        created = self._stamp()
        self.organisation_id = str(uuid.uuid4())
        self.organisation_name = name
        self.short_code = "!" + secrets.token_hex(3)[:5]
        self._created_ms = created
        self._tax_rates: dict[str, TaxRate] = {t.tax_type: t for t in self.setup.tax_rates()}
        self._accounts: dict[str, Account] = {a.code: a for a in self.setup.accounts(created)}
        self._items: dict[str, Item] = {i.code: i for i in self.setup.items(created)}
        self._currencies: list[str] = [self.base_currency]
        self._contacts: dict[str, Contact] = {}
        self._invoices: dict[str, Invoice] = {}
        self._next_number = 1
        self._emailed: list[EmailRecord] = []

    # ----- snapshots for tests -----------------------------------------------

    @property
    def contacts(self) -> list[Contact]:
        with self._lock:
            return list(self._contacts.values())

    @property
    def invoices(self) -> list[Invoice]:
        with self._lock:
            return list(self._invoices.values())

    @property
    def items(self) -> list[Item]:
        with self._lock:
            return list(self._items.values())

    @property
    def accounts(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    @property
    def tax_rates(self) -> list[TaxRate]:
        with self._lock:
            return list(self._tax_rates.values())

    @property
    def currencies(self) -> list[str]:
        with self._lock:
            return list(self._currencies)

    @property
    def emailed(self) -> list[EmailRecord]:
        with self._lock:
            return list(self._emailed)

    def contact(self, contact_id: str) -> Contact:
        with self._lock:
            found = self._find_contact(contact_id)
            if found is None:
                raise KeyError(contact_id)
            return found

    def invoice(self, invoice_id: str) -> Invoice:
        with self._lock:
            found = self._find_invoice(invoice_id)
            if found is None:
                raise KeyError(invoice_id)
            return found

    # ----- seeding and tuning helpers ---------------------------------------

    def add_contact(self, name: str, **fields: Any) -> Contact:
        """Create a contact as if typed into Xero; `fields` use Xero's JSON names.

        Example: ``add_contact("Acme", EmailAddress="ap@acme.test", ContactNumber="D-1")``.
        Raises ValueError with Xero's messages if it would be rejected.
        """
        return self._save_one_contact({"Name": name, **fields})

    def archive_contact(self, contact_id: str) -> Contact:
        return self._save_one_contact({"ContactID": contact_id, "ContactStatus": "ARCHIVED"})

    def set_contact_website(self, contact_id: str, website: str) -> Contact:
        """Type a website into the contact in Xero's UI. The API cannot: the spec marks
        Contact.Website "read only", so saves through the API leave it alone."""
        with self._lock:
            contact = self._find_contact(contact_id)
            if contact is None:
                raise KeyError(contact_id)
            updated = replace(contact, website=website, updated_ms=self._stamp())
            self._contacts[contact.contact_id] = updated
            return updated

    def add_item(
        self,
        code: str,
        name: str,
        unit_price: Decimal | int | str,
        *,
        account_code: str = "200",
        tax_type: str = REGION_DEFAULT,
        description: str | None = None,
    ) -> Item:
        """An item (Xero: Products and services); `tax_type` defaults to the region's sales
        rate (AU OUTPUT, NZ/UK OUTPUT2, US OUTPUT)."""
        if tax_type is REGION_DEFAULT:
            tax_type = self.setup.sales_tax_type
        with self._lock:
            if code in self._items:
                raise ValueError(f"item code {code!r} already exists")
            item = Item(
                str(uuid.uuid4()),
                code,
                name,
                money(to_decimal(unit_price)),
                account_code,
                tax_type,
                description or name,
                self._stamp(),
            )
            self._items[code] = item
            return item

    def add_account(
        self, code: str, name: str, type_: str = "REVENUE", *, tax_type: str | None = REGION_DEFAULT
    ) -> Account:
        """An account of Xero Type `type_`; its Class follows the Types doc. `tax_type`
        defaults to the region's sales rate; pass None for an account without one."""
        if tax_type is REGION_DEFAULT:
            tax_type = self.setup.sales_tax_type
        account_class = ACCOUNT_CLASS_OF_TYPE.get(type_, "ASSET")
        with self._lock:
            if code in self._accounts:
                raise ValueError(f"account code {code!r} already exists")
            account = Account(
                str(uuid.uuid4()),
                code,
                name,
                type_,
                account_class,
                tax_type=tax_type,
                updated_ms=self._stamp(),
            )
            self._accounts[code] = account
            return account

    def set_account_status(self, code: str, status: Literal["ACTIVE", "ARCHIVED"]) -> Account:
        """Archive (or reactivate) an account, e.g. to provoke "not a valid code"."""
        with self._lock:
            account = replace(self._accounts[code], status=status, updated_ms=self._stamp())
            self._accounts[code] = account
            return account

    def enable_currency(self, code: str) -> None:
        """Subscribe the organisation to a currency (Xero: Settings > Currencies)."""
        if code not in CURRENCY_NAMES:
            raise ValueError(f"unknown currency {code!r}; known: {sorted(CURRENCY_NAMES)}")
        with self._lock:
            if code not in self._currencies:
                self._currencies.append(code)

    def add_tax_rate(
        self,
        name: str,
        components: Sequence[tuple[str, Decimal | int | str]] | Decimal | int | str,
        *,
        report_tax_type: str | None = REGION_DEFAULT,
        applies_to: Iterable[str] = ("ASSET", "EQUITY", "LIABILITY", "REVENUE"),
    ) -> TaxRate:
        """A rate the organisation adds (Xero: Settings > Tax rates), as POST /TaxRates would.

        Xero numbers custom rates TAX001, TAX002, ... (TaxRates doc). `components` is a
        rate ("8.5") or (name, rate) pairs, e.g. ``[("State Tax", "7.5"), ("Local", "1")]``.
        `report_tax_type` is required for AU, NZ and UK orgs and unsupported for US ones
        (TaxRates doc, POST): it defaults to OUTPUT there and to None for US.
        `applies_to` are account classes; the default is a sales rate's.
        """
        if report_tax_type is REGION_DEFAULT:
            report_tax_type = None if self.region == "US" else "OUTPUT"
        if isinstance(components, Decimal | int | str):
            components = [(self.setup.tax_component, components)]
        parts = tuple(
            TaxComponent(part, to_decimal(rate).quantize(UNIT_4DP)) for part, rate in components
        )
        with self._lock:
            number = 1
            while f"TAX{number:03d}" in self._tax_rates:
                number += 1
            rate = TaxRate(f"TAX{number:03d}", name, parts, report_tax_type, frozenset(applies_to))
            self._tax_rates[rate.tax_type] = rate
            return rate

    def set_tax_rate_status(
        self, tax_type: str, status: Literal["ACTIVE", "ARCHIVED", "DELETED"]
    ) -> TaxRate:
        """Archive or delete a rate (then Xero refuses it on new lines), or restore it."""
        with self._lock:
            rate = replace(self._tax_rates[tax_type], status=status)
            self._tax_rates[tax_type] = rate
            return rate

    def today(self) -> date:
        """Today in the organisation's timezone: what Xero puts in an invoice's missing Date."""
        with self._lock:
            return self._today()

    def add_invoice(self, invoice: Mapping[str, Any]) -> Invoice:
        """Create an invoice as if entered in Xero's UI (not "created by my app").

        `invoice` is a Xero JSON element (``{"Type": "ACCREC", "Contact": {...}, ...}``).
        Raises ValueError with the validation messages if Xero would reject it.
        """
        with self._lock:
            result = self.save_invoices([dict(invoice)], summarize=True, created_by_app=False)
            if result.failed:
                raise ValueError(_messages(result.failed[0]))
            return self._invoices[result.saved_ids[0]]

    def pay(
        self,
        invoice_id: str,
        amount: Decimal | int | str,
        paid_on: date | None = None,
        *,
        reference: str | None = None,
    ) -> Payment:
        """Record a payment on an AUTHORISED invoice (as a bank feed reconciliation would).

        Updates AmountPaid/AmountDue, flips Status to PAID with FullyPaidOnDate when
        nothing is left due, and bumps UpdatedDateUTC.
        """
        value = money(to_decimal(amount))
        with self._lock:
            invoice = self._require_invoice(invoice_id)
            if invoice.status != "AUTHORISED":
                raise ValueError(f"payments need an AUTHORISED invoice, not {invoice.status}")
            if value <= 0 or value > invoice.amount_due:
                raise ValueError(f"payment {value} must be > 0 and <= due {invoice.amount_due}")
            stamp = self._stamp()
            day = paid_on or self._today()
            payment = Payment(str(uuid.uuid4()), day, value, reference, stamp)
            paid = replace(
                invoice,
                amount_paid=invoice.amount_paid + value,
                payments=(*invoice.payments, payment),
                updated_ms=stamp,
            )
            if paid.amount_due == 0:
                paid = replace(paid, status="PAID", fully_paid_on=day)
            self._invoices[paid.invoice_id] = paid
            return payment

    def delete_payment(self, invoice_id: str, payment_id: str) -> Invoice:
        """Remove a payment (a mistaken reconciliation): a PAID invoice goes back to AUTHORISED."""
        with self._lock:
            invoice = self._require_invoice(invoice_id)
            payment = next((p for p in invoice.payments if p.payment_id == payment_id), None)
            if payment is None:
                raise ValueError(f"no payment {payment_id} on {invoice_id}")
            changed = replace(invoice, amount_paid=invoice.amount_paid - payment.amount,
                              payments=tuple(p for p in invoice.payments if p is not payment),
                              status="AUTHORISED", fully_paid_on=None, updated_ms=self._stamp())
            self._invoices[changed.invoice_id] = changed
            return changed

    def credit(self, invoice_id: str, amount: Decimal | int | str) -> Invoice:
        """Allocate a credit note to an AUTHORISED invoice (AmountCredited; PAID when nothing
        is left due)."""
        value = money(to_decimal(amount))
        with self._lock:
            invoice = self._require_invoice(invoice_id)
            if invoice.status != "AUTHORISED" or value <= 0 or value > invoice.amount_due:
                raise ValueError(f"cannot credit {value} to a {invoice.status} invoice")
            return self._allocate(invoice, "CreditNote", value)

    def allocate_prepayment(self, invoice_id: str, amount: Decimal | int | str) -> Invoice:
        """Apply a customer's prepayment (money received before the invoice) to an AUTHORISED
        invoice: listed in Prepayments, counted in AmountCredited, PAID when nothing is due."""
        return self._allocate_to(invoice_id, "Prepayment", amount)

    def allocate_overpayment(self, invoice_id: str, amount: Decimal | int | str) -> Invoice:
        """Apply a customer's overpayment of another invoice to this one (as above)."""
        return self._allocate_to(invoice_id, "Overpayment", amount)

    def _allocate_to(self, invoice_id: str, kind: Literal["CreditNote", "Prepayment", "Overpayment"],
                     amount: Decimal | int | str) -> Invoice:
        value = money(to_decimal(amount))
        with self._lock:
            invoice = self._require_invoice(invoice_id)
            if invoice.status != "AUTHORISED" or value <= 0 or value > invoice.amount_due:
                raise ValueError(f"cannot allocate {value} to a {invoice.status} invoice")
            return self._allocate(invoice, kind, value)

    def _allocate(self, invoice: Invoice, kind: Literal["CreditNote", "Prepayment", "Overpayment"],
                  value: Decimal) -> Invoice:
        allocation = Allocation(kind, str(uuid.uuid4()), value, self._today())
        changed = replace(invoice, amount_credited=invoice.amount_credited + value,
                          allocations=(*invoice.allocations, allocation), updated_ms=self._stamp())
        if changed.amount_due == 0:
            changed = replace(changed, status="PAID", fully_paid_on=self._today())
        self._invoices[changed.invoice_id] = changed
        return changed

    def edit_invoice(self, invoice_id: str, changes: Mapping[str, Any]) -> Invoice:
        """Finance edits the invoice in Xero's UI (`changes` in Xero's JSON names, e.g.
        ``{"Status": "AUTHORISED"}`` or new ``LineItems``). Xero bumps UpdatedDateUTC on
        every save (spec: Invoice.UpdatedDateUTC "Last modified date UTC format")."""
        with self._lock:
            result = self.save_invoices([{**changes, "InvoiceID": invoice_id}], summarize=True,
                                        created_by_app=False)
            if result.failed:
                raise ValueError(_messages(result.failed[0]))
            return self._invoices[result.saved_ids[0]]

    def set_timezone(self, name: str) -> None:
        """Set Organisation.Timezone (Xero: Settings > Organisation details). A name the fake
        cannot place (one of the spec's enum values CLDR no longer maps) is still reported;
        the fake's own "today" then stays in the previous zone."""
        with self._lock:
            self.timezone = name
            if name in WINDOWS_TO_IANA:  # only dates the fake makes up itself use the zone
                self._zone = zone_of(name)

    def void(self, invoice_id: str) -> Invoice:
        """Void an AUTHORISED invoice without payments (Xero's only way to cancel one)."""
        with self._lock:
            invoice = self._require_invoice(invoice_id)
            if invoice.status != "AUTHORISED" or invoice.payments:
                raise ValueError(
                    f"only an unpaid AUTHORISED invoice can be voided ({invoice.status})"
                )
            voided = replace(invoice, status="VOIDED", updated_ms=self._stamp())
            self._invoices[voided.invoice_id] = voided
            return voided

    # ----- internals shared with the HTTP layer ------------------------------

    def _stamp(self) -> int:
        """Now in ms, strictly increasing per tenant so UpdatedDateUTC orders changes."""
        self._last_ms = max(int(self._clock.now() * 1000), self._last_ms + 1)
        return self._last_ms

    def _today(self) -> date:
        """The organisation's local date now. Spec, Invoice.Date: "If the Date element is
        not specified it will default to the current date based on the timezone setting
        of the organisation"; Organisation.Timezone names that zone."""
        return datetime.fromtimestamp(self._clock.now(), tz=self._zone).date()

    def _find_contact(self, key: str) -> Contact | None:
        """By ContactID (any case) or, as Xero allows, by ContactNumber."""
        if is_guid(key):
            return self._contacts.get(str(uuid.UUID(key)))
        return next((c for c in self._contacts.values() if c.contact_number == key), None)

    def _find_invoice(self, key: str) -> Invoice | None:
        """By InvoiceID (any case) or, as Xero allows, by InvoiceNumber."""
        if is_guid(key):
            return self._invoices.get(str(uuid.UUID(key)))
        return next((i for i in self._invoices.values() if i.invoice_number == key), None)

    def _require_invoice(self, invoice_id: str) -> Invoice:
        invoice = self._find_invoice(invoice_id)
        if invoice is None:
            raise KeyError(invoice_id)
        return invoice

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(dict(self._contacts), dict(self._invoices), self._next_number)

    def _restore(self, snap: _Snapshot) -> None:
        """Undo a batch (timestamps stay monotonic: `_last_ms` is not rewound)."""
        self._contacts, self._invoices = snap.contacts, snap.invoices
        self._next_number = snap.next_number

    def _batch(
        self,
        elements: Sequence[Any],
        summarize: bool,
        save: Callable[[Any], tuple[dict[str, Any], str | None]],
    ) -> SaveResult:
        """Save each element in order; with `summarize`, any failure undoes the lot."""
        snap = self._snapshot()
        result = SaveResult([], [], [])
        for element in elements:
            rendered, saved_id = save(element)
            result.elements.append(rendered)
            if saved_id is None:
                result.failed.append(rendered)
            else:
                result.saved_ids.append(saved_id)
        if summarize and result.failed:
            self._restore(snap)
            result.saved_ids = []
        return result

    # ----- contacts ---------------------------------------------------------

    def save_contacts(self, elements: Sequence[Any], *, summarize: bool) -> SaveResult:
        """Create (no ContactID) or update (ContactID) each contact element."""
        with self._lock:
            return self._batch(elements, summarize, self._save_contact_element)

    def _save_one_contact(self, element: Mapping[str, Any]) -> Contact:
        with self._lock:
            result = self.save_contacts([dict(element)], summarize=True)
            if result.failed:
                raise ValueError(_messages(result.failed[0]))
            return self._contacts[result.saved_ids[0]]

    def _save_contact_element(self, raw: Any) -> tuple[dict[str, Any], str | None]:
        if not isinstance(raw, dict):
            return _failed_contact({}, None, ["A contact must be a JSON object"]), None
        existing, errors = None, []
        contact_id = raw.get("ContactID")
        if contact_id:
            existing = self._find_contact(str(contact_id))
            if existing is None:
                errors.append(f"Contact with ContactID '{contact_id}' could not be found")
        contact = self._merge_contact(raw, existing, errors)
        if contact is not None:
            errors.extend(self._contact_problems(contact))
        if errors or contact is None:
            return _failed_contact(raw, existing, errors), None
        self._contacts[contact.contact_id] = contact
        return self.render_contact(contact), contact.contact_id

    def _merge_contact(
        self, raw: Mapping[str, Any], existing: Contact | None, errors: list[str]
    ) -> Contact | None:
        """`existing` with the fields `raw` carries, or a new contact; None if unreadable."""
        base = existing or Contact(str(uuid.uuid4()), name="")
        changes: dict[str, Any] = {}
        for key, attr in _CONTACT_TEXT_FIELDS.items():
            if key in raw:
                value = raw[key]
                if value is not None and not isinstance(value, str):
                    errors.append(f"{key} must be a string")
                    continue
                changes[attr] = value.strip() if isinstance(value, str) else None
                if attr == "name" and changes[attr] is None:
                    changes[attr] = ""
        for key, attr in (("Phones", "phones"), ("Addresses", "addresses")):
            if isinstance(raw.get(key), list):
                changes[attr] = tuple(p for p in raw[key] if isinstance(p, dict))
        if isinstance(raw.get("PaymentTerms"), dict):
            changes["payment_terms"] = raw["PaymentTerms"]
        if errors:
            return None
        return replace(base, **changes, updated_ms=self._stamp())

    def _contact_problems(self, contact: Contact) -> list[str]:
        problems: list[str] = []
        if not contact.name:
            problems.append("The contact name must be specified.")
        fields = {key: getattr(contact, attr) for key, attr in _CONTACT_TEXT_FIELDS.items()}
        problems.extend(length_problems(fields, CONTACT_LIMITS))  # sandbox/xero_limits.py
        problems.extend(nested_length_problems(contact.phones, PHONE_LIMITS, "Phone "))
        problems.extend(nested_length_problems(contact.addresses, ADDRESS_LIMITS, "Address "))
        if contact.email_address and not _EMAIL.match(contact.email_address):
            problems.append("Email address must be valid.")
        if contact.contact_status not in ("ACTIVE", "ARCHIVED"):
            problems.append(
                f"ContactStatus '{contact.contact_status}' cannot be set through the API."
            )
        if contact.default_currency and contact.default_currency not in self._currencies:
            problems.append(
                f"Organisation is not subscribed to currency {contact.default_currency}"
            )
        if contact.name and contact.contact_status == "ACTIVE" and self._name_taken(contact):
            problems.append(
                f"The contact name {contact.name} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            )  # platform-facts: Name unique among active contacts
        return problems

    def _name_taken(self, contact: Contact) -> bool:
        wanted = contact.name.casefold()
        return any(
            other.contact_id != contact.contact_id
            and other.contact_status == "ACTIVE"
            and other.name.casefold() == wanted
            for other in self._contacts.values()
        )

    def render_contact(self, contact: Contact, *, summary: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ContactID": contact.contact_id,
            "ContactStatus": contact.contact_status,
            "Name": contact.name,
        }
        for key, attr in _CONTACT_TEXT_FIELDS.items():
            value = getattr(contact, attr)
            if value is not None and key not in body:
                body[key] = value
        body.update(
            {
                "UpdatedDateUTC": ms_datetime(contact.updated_ms),
                "IsSupplier": False,
                "IsCustomer": any(
                    i.contact_id == contact.contact_id and i.status != "DELETED"
                    for i in self._invoices.values()
                ),
                "HasAttachments": False,
                "HasValidationErrors": False,
            }
        )
        if contact.website:
            body["Website"] = contact.website
        if not summary:
            body["Addresses"] = list(contact.addresses) or _DEFAULT_ADDRESSES
            body["Phones"] = list(contact.phones) or _DEFAULT_PHONES
            body["ContactGroups"] = []
            body["ContactPersons"] = []
            if contact.payment_terms is not None:
                body["PaymentTerms"] = contact.payment_terms
        return body

    # ----- invoices ---------------------------------------------------------

    def save_invoices(
        self,
        elements: Sequence[Any],
        *,
        summarize: bool,
        created_by_app: bool = True,
        unit_dp: int = 2,
    ) -> SaveResult:
        """Create (no InvoiceID) or update (InvoiceID) each ACCREC invoice element."""

        def save(raw: Any) -> tuple[dict[str, Any], str | None]:
            return self._save_invoice_element(raw, created_by_app, unit_dp)

        with self._lock:
            return self._batch(elements, summarize, save)

    def _save_invoice_element(
        self, raw: Any, created_by_app: bool, unit_dp: int
    ) -> tuple[dict[str, Any], str | None]:
        if not isinstance(raw, dict):
            return _failed_invoice({}, None, ["An invoice must be a JSON object"]), None
        existing: Invoice | None = None
        invoice_id = raw.get("InvoiceID")
        if invoice_id:
            existing = self._find_invoice(str(invoice_id))
            if existing is None:
                message = f"Invoice with InvoiceID '{invoice_id}' could not be found"
                return _failed_invoice(raw, None, [message]), None
        builder = _InvoiceBuilder(self, raw, existing, unit_dp)
        invoice = builder.build(created_by_app)
        if invoice is None:
            return _failed_invoice(raw, existing, builder.errors), None
        if existing is None and "InvoiceNumber" not in raw:
            self._next_number += 1  # consume the auto-number only on success
        self._invoices[invoice.invoice_id] = invoice
        return self.render_invoice(invoice, unit_dp=unit_dp), invoice.invoice_id

    def next_invoice_number(self) -> str:
        """Xero's default numbering: INV-0001, INV-0002, ... skipping numbers in use."""
        number = self._next_number
        while self._number_taken(f"INV-{number:04d}", None):
            number += 1
            self._next_number = number
        return f"INV-{number:04d}"

    def _number_taken(self, number: str, invoice_id: str | None) -> bool:
        return any(
            i.invoice_number == number and i.invoice_id != invoice_id and i.status != "DELETED"
            for i in self._invoices.values()
        )

    def render_invoice(
        self, invoice: Invoice, *, lines: bool = True, unit_dp: int = 2
    ) -> dict[str, Any]:
        contact = self._contacts.get(invoice.contact_id)
        body: dict[str, Any] = {
            "Type": invoice.type,
            "InvoiceID": invoice.invoice_id,
            "InvoiceNumber": invoice.invoice_number,
            "Reference": invoice.reference or "",
            "AmountDue": invoice.amount_due,
            "AmountPaid": invoice.amount_paid,
            "AmountCredited": invoice.amount_credited,
            "CurrencyRate": Decimal("1.000000"),
            "IsDiscounted": invoice.total_discount > 0,
            "HasAttachments": False,
            "HasErrors": False,
            "SentToContact": invoice.sent_to_contact,
            "Contact": _contact_summary(contact, invoice.contact_id),
            "DateString": date_string(invoice.date),
            "Date": ms_date(invoice.date),
            "Status": invoice.status,
            "LineAmountTypes": invoice.line_amount_types,
            "SubTotal": invoice.sub_total,
            "TotalTax": invoice.total_tax,
            "Total": invoice.total,
            "UpdatedDateUTC": ms_datetime(invoice.updated_ms),
            "CurrencyCode": invoice.currency_code,
        }
        if invoice.due_date is not None:
            body["DueDateString"] = date_string(invoice.due_date)
            body["DueDate"] = ms_date(invoice.due_date)
        if invoice.fully_paid_on is not None:
            body["FullyPaidOnDate"] = ms_date(invoice.fully_paid_on)
        if invoice.total_discount > 0:
            body["TotalDiscount"] = invoice.total_discount
        if invoice.url:
            body["Url"] = invoice.url
        if lines:
            body["LineItems"] = [_render_line(line, unit_dp) for line in invoice.line_items]
            body["Payments"] = [_render_payment(p) for p in invoice.payments]
            body.update(_render_allocations(invoice.allocations))
        return body

    def email_invoice(self, invoice_id: str) -> str | None:
        """Send the invoice to its contact; the problem text if Xero would refuse."""
        with self._lock:
            return self._email(self._require_invoice(invoice_id))

    def _email(self, invoice: Invoice) -> str | None:
        contact = self._contacts.get(invoice.contact_id)
        if invoice.status not in _EMAILABLE_STATUSES:
            return f"Invoices with a status of {invoice.status} cannot be emailed."
        if contact is None or not contact.email_address:
            return "The contact does not have a valid email address."
        self._emailed.append(
            EmailRecord(
                invoice.invoice_id, invoice.invoice_number, contact.email_address, self._clock.now()
            )
        )
        sent = replace(invoice, sent_to_contact=True, updated_ms=self._stamp())
        self._invoices[sent.invoice_id] = sent
        return None


_CONTACT_TEXT_FIELDS: dict[str, str] = {
    "Name": "name",
    "FirstName": "first_name",
    "LastName": "last_name",
    "EmailAddress": "email_address",
    "ContactNumber": "contact_number",
    "AccountNumber": "account_number",
    "TaxNumber": "tax_number",
    "ContactStatus": "contact_status",
    "DefaultCurrency": "default_currency",
}
# Xero always returns these placeholder entries for a contact created without them.
_DEFAULT_ADDRESSES: list[dict[str, str]] = [{"AddressType": "STREET"}, {"AddressType": "POBOX"}]
_DEFAULT_PHONES: list[dict[str, str]] = [
    {"PhoneType": t} for t in ("DEFAULT", "DDI", "FAX", "MOBILE")
]


def _messages(element: Mapping[str, Any]) -> str:
    return "; ".join(e["Message"] for e in element.get("ValidationErrors", []))


def _echo_text(raw: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: raw[k] for k in keys if isinstance(raw.get(k), str)}


def _failed_contact(
    raw: Mapping[str, Any], existing: Contact | None, errors: list[str]
) -> dict[str, Any]:
    """A rejected contact as Xero echoes it: the input, a zero id, the messages."""
    body = _echo_text(
        raw,
        (
            "Name",
            "FirstName",
            "LastName",
            "EmailAddress",
            "ContactNumber",
            "AccountNumber",
            "TaxNumber",
        ),
    )
    if raw.get("ContactStatus") in ("ACTIVE", "ARCHIVED"):
        body["ContactStatus"] = raw["ContactStatus"]
    body["ContactID"] = existing.contact_id if existing else ZERO_GUID
    body["HasValidationErrors"] = True
    body["StatusAttributeString"] = "ERROR"
    body["ValidationErrors"] = [{"Message": m} for m in errors]
    return body


def _failed_invoice(
    raw: Mapping[str, Any], existing: Invoice | None, errors: list[str]
) -> dict[str, Any]:
    """A rejected invoice as Xero echoes it: the readable input, a zero id, the messages."""
    body = _echo_text(raw, ("InvoiceNumber", "Reference"))
    for key, allowed in (
        ("Type", ("ACCREC",)),
        ("Status", tuple(_TRANSITIONS)),
        ("LineAmountTypes", LINE_AMOUNT_TYPES),
        ("CurrencyCode", tuple(CURRENCY_NAMES)),
    ):
        if raw.get(key) in allowed:
            body[key] = raw[key]
    contact = raw.get("Contact")
    if isinstance(contact, dict) and isinstance(contact.get("ContactID"), str):
        body["Contact"] = {"ContactID": contact["ContactID"]}
    for key in ("Date", "DueDate"):
        # Unreadable dates are reported in ValidationErrors, not echoed.
        with contextlib.suppress(ValueError):
            body[key] = ms_date(parse_xero_date(raw.get(key)))
    body["InvoiceID"] = existing.invoice_id if existing else ZERO_GUID
    body["HasErrors"] = True
    body["StatusAttributeString"] = "ERROR"
    body["ValidationErrors"] = [{"Message": m} for m in errors]
    return body


def _contact_summary(contact: Contact | None, contact_id: str) -> dict[str, Any]:
    if contact is None:
        return {"ContactID": contact_id}
    body: dict[str, Any] = {
        "ContactID": contact.contact_id,
        "ContactStatus": contact.contact_status,
        "Name": contact.name,
        "HasValidationErrors": False,
    }
    if contact.email_address:
        body["EmailAddress"] = contact.email_address
    if contact.contact_number:
        body["ContactNumber"] = contact.contact_number
    return body


def _render_line(line: LineItem, unit_dp: int) -> dict[str, Any]:
    """A booked line as Xero returns it: UnitAmount at the read's unitdp (4 dp only when
    asked: "Rounding in Xero" guide), every amount at 2 dp."""
    unit = unit_quantum(unit_dp)
    body: dict[str, Any] = {
        "LineItemID": line.line_item_id,
        "Description": line.description or "",
        "Quantity": line.quantity.quantize(UNIT_4DP),
        "UnitAmount": line.unit_amount.quantize(unit, rounding=ROUND_HALF_UP),
        "TaxAmount": line.tax_amount,
        "LineAmount": line.line_amount,
        "Tracking": list(line.tracking),
    }
    for key, value in (
        ("ItemCode", line.item_code),
        ("AccountCode", line.account_code),
        ("TaxType", line.tax_type),
    ):
        if value is not None:
            body[key] = value
    if line.discount_rate is not None:
        body["DiscountRate"] = line.discount_rate.quantize(CENT)
    if line.discount_amount is not None or line.discount_rate is not None:
        # Reads carry DiscountAmount beside DiscountRate for a discounted line
        # (XeroAPI/xero-php-oauth2#152: "the XML returns a discountAmount AND
        # discountRate"). For a DiscountRate line it is derived, Q x U less LineAmount
        # (unverified); a DiscountAmount line does not get a derived rate echoed
        # (xero-node#592 says Xero keeps one internally, precision unknown).
        amount = line.discount_amount if line.discount_amount is not None else line.discount
        body["DiscountAmount"] = amount
    return body


def _render_allocations(allocations: Sequence[Allocation]) -> dict[str, list[dict[str, Any]]]:
    """CreditNotes / Prepayments / Overpayments on a full invoice read, each element with its
    id and AppliedAmount (OpenAPI CreditNote/Prepayment/Overpayment.AppliedAmount "The amount
    of applied to an invoice")."""
    body: dict[str, list[dict[str, Any]]] = {"CreditNotes": [], "Prepayments": [], "Overpayments": []}
    for a in allocations:
        body[f"{a.kind}s"].append({f"{a.kind}ID": a.allocation_id, "AppliedAmount": a.amount,
                                   "Date": ms_date(a.day)})
    return body


def _render_payment(payment: Payment) -> dict[str, Any]:
    body: dict[str, Any] = {
        "PaymentID": payment.payment_id,
        "Date": ms_date(payment.date),
        "Amount": payment.amount,
        "CurrencyRate": Decimal("1.000000"),
        "HasAccount": False,
        "HasValidationErrors": False,
    }
    if payment.reference:
        body["Reference"] = payment.reference
    return body


# ----- invoice validation and arithmetic ------------------------------------------------


class _InvoiceBuilder:
    """Turns one request element (plus the invoice it updates) into a valid `Invoice`.

    Collects every problem in `errors` (Xero reports them all at once) and returns
    None from `build` if there are any.
    """

    def __init__(
        self, books: TenantBooks, raw: Mapping[str, Any], existing: Invoice | None, unit_dp: int
    ) -> None:
        self.books = books
        self.raw = raw
        self.existing = existing
        self.unit_dp = unit_dp
        self.errors: list[str] = []

    def build(self, created_by_app: bool) -> Invoice | None:
        status = self._status()
        self._check_editable(status)
        existing = self.existing
        fields: dict[str, Any] = {
            "status": status,
            "contact_id": self._contact_id(),
            "date": self._date("Date", existing.date if existing else self.books._today()),
            "due_date": self._date("DueDate", existing.due_date if existing else None),
            "line_amount_types": self._line_amount_types(),
            "currency_code": self._currency(),
            "invoice_number": self._invoice_number(),
            "reference": self._text("Reference", existing.reference if existing else None),
            "url": self._text("Url", existing.url if existing else None),
        }
        if status == "AUTHORISED" and fields["due_date"] is None:
            self.errors.append("Due Date is required for an AUTHORISED invoice.")
        self.errors.extend(length_problems(self.raw, {"Reference": INVOICE_LIMITS["Reference"]}))
        lines = self._lines(status)
        if self.errors or lines is None:
            return None
        priced, totals = price_lines(lines, fields["line_amount_types"], self._rate_of)
        if totals.total < 0:
            self.errors.append("The invoice total cannot be negative.")
            return None
        base = existing or Invoice(
            invoice_id=str(uuid.uuid4()), created_by_app=created_by_app, **fields
        )
        return replace(
            base,
            **fields,
            line_items=priced,
            sub_total=totals.sub_total,
            total_tax=totals.total_tax,
            total=totals.total,
            total_discount=totals.total_discount,
            updated_ms=self.books._stamp(),
        )

    def _text(self, key: str, default: str | None) -> str | None:
        value = self.raw.get(key, default)
        return value if isinstance(value, str) else None

    def _status(self) -> str:
        current = self.existing.status if self.existing else None
        wanted = self.raw.get("Status", current or "DRAFT")
        if wanted not in _TRANSITIONS:
            self.errors.append(f"Status '{wanted}' is not a valid invoice status.")
            return current or "DRAFT"
        if current is None and wanted not in _CREATABLE_STATUSES:
            self.errors.append(f"An invoice cannot be created with a status of {wanted}.")
        elif current is not None and wanted not in _TRANSITIONS[current]:
            self.errors.append(
                f"Invoice not of valid status for modification ({current} to {wanted})."
            )
        return str(wanted)

    def _check_editable(self, status: str) -> None:
        existing = self.existing
        if existing is None:
            return
        if existing.payments and "LineItems" in self.raw:
            self.errors.append(
                "This document cannot be edited as it has a payment or credit note allocated to it."
            )
        if status == "VOIDED" and existing.payments:
            self.errors.append("Payments must be removed before an invoice can be voided.")

    def _contact_id(self) -> str:
        contact = self.raw.get("Contact")
        if contact is None and self.existing is not None:
            return self.existing.contact_id
        contact_id = contact.get("ContactID") if isinstance(contact, dict) else None
        if not isinstance(contact_id, str) or not contact_id:
            # Real Xero would create a contact from {"Name": ...}; Paydeck always sends ids.
            self.errors.append("A Contact with a ContactID must be specified.")
            return ZERO_GUID
        found = self.books._find_contact(contact_id) if is_guid(contact_id) else None
        if found is None:
            self.errors.append(f"Contact with ContactID '{contact_id}' could not be found.")
            return ZERO_GUID
        if found.contact_status != "ACTIVE":
            self.errors.append(f"The contact '{found.name}' is archived and cannot be used.")
        return found.contact_id

    def _date(self, key: str, default: date | None) -> date | None:
        if key not in self.raw or self.raw[key] is None:
            return default
        try:
            return parse_xero_date(self.raw[key])
        except ValueError:
            self.errors.append(f"{key} '{self.raw[key]}' is not a valid date.")
            return default

    def _line_amount_types(self) -> str:
        current = self.existing.line_amount_types if self.existing else "Exclusive"
        value = self.raw.get("LineAmountTypes", current)
        if value not in LINE_AMOUNT_TYPES:
            self.errors.append(
                f"LineAmountTypes '{value}' is not one of {', '.join(LINE_AMOUNT_TYPES)}."
            )
            return current
        return str(value)

    def _currency(self) -> str:
        current = self.existing.currency_code if self.existing else self.books.base_currency
        code = self.raw.get("CurrencyCode", current)
        if code not in self.books._currencies:
            self.errors.append(f"Organisation is not subscribed to currency {code}")
            return current
        return str(code)

    def _invoice_number(self) -> str:
        number = self.raw.get("InvoiceNumber")
        if number is None:
            return (
                self.existing.invoice_number if self.existing else self.books.next_invoice_number()
            )
        if not isinstance(number, str) or not number.strip():
            self.errors.append("InvoiceNumber must be 1 to 255 characters.")
            return ""
        limit = INVOICE_LIMITS["InvoiceNumber"][0]  # spec maxLength 255
        if len(number) > limit:
            self.errors.append(too_long("InvoiceNumber", limit))
            return ""
        invoice_id = self.existing.invoice_id if self.existing else None
        if self.books._number_taken(number, invoice_id):
            self.errors.append("Invoice # must be unique.")
        return number

    def _lines(self, status: str) -> tuple[LineItem, ...] | None:
        raw_lines = self.raw.get("LineItems")
        if raw_lines is None:
            lines = self.existing.line_items if self.existing else ()
        elif not isinstance(raw_lines, list):
            self.errors.append("LineItems must be a list.")
            return None
        else:
            parsed = [self._line(raw) for raw in raw_lines]
            if any(line is None for line in parsed):
                return None
            lines = tuple(cast(LineItem, line) for line in parsed)
        if status != "DRAFT" and not lines:
            self.errors.append("At least one line item is required.")
        if status not in ("DRAFT", "DELETED", "VOIDED"):
            for line in lines:
                if line.account_code is None:
                    self.errors.append("Account code must be specified for each line item.")
                    break
        return lines

    def _line(self, raw: Any) -> LineItem | None:
        if not isinstance(raw, dict):
            self.errors.append("Each line item must be a JSON object.")
            return None
        item = self._item(raw.get("ItemCode"))
        request = self._line_request(raw, item)
        if request is None:
            return None
        priced = price_line(request, self.unit_dp)  # sandbox/xero_lines.py
        if isinstance(priced, list):
            self.errors.extend(priced)
            return None
        self.errors.extend(length_problems(raw, LINE_LIMITS))
        tracking = tuple(t for t in raw.get("Tracking") or () if isinstance(t, dict))
        self.errors.extend(nested_length_problems(tracking, TRACKING_LIMITS, "Tracking "))
        account_code = _text_or_none(raw.get("AccountCode", item.account_code if item else None))
        self._check_account(account_code)
        tax_type = self._check_tax_type(
            _text_or_none(raw.get("TaxType", item.tax_type if item else None)), account_code
        )
        description = raw.get("Description", item.description if item else None)
        line_id = raw.get("LineItemID")
        return LineItem(
            line_id if isinstance(line_id, str) and is_guid(line_id) else str(uuid.uuid4()),
            description if isinstance(description, str) else None,
            priced.quantity,
            priced.unit_amount,
            account_code,
            tax_type,
            item_code=item.code if item else None,
            discount_rate=priced.discount_rate,
            tracking=tracking,
            line_amount=priced.line_amount,
            discount_amount=priced.discount_amount,
            discount=priced.discount,
            tax_override=priced.tax_override,
        )

    def _line_request(self, raw: Mapping[str, Any], item: Item | None) -> LineRequest | None:
        """The line's numbers as sent; an item supplies a missing UnitAmount (Items doc)."""
        try:
            numbers = {key: _number_or_none(raw.get(key)) for key in _LINE_NUMBERS}
        except (ValueError, TypeError) as exc:
            self.errors.append(f"Line item amounts must be numbers ({exc}).")
            return None
        unit = numbers["UnitAmount"]
        if unit is None and item is not None:
            unit = item.unit_price
        return LineRequest(
            quantity=numbers["Quantity"],
            unit_amount=unit,
            line_amount=numbers["LineAmount"],
            discount_rate=numbers["DiscountRate"],
            discount_amount=numbers["DiscountAmount"],
            tax_amount=numbers["TaxAmount"],
        )

    def _item(self, code: Any) -> Item | None:
        if code is None:
            return None
        item = self.books._items.get(str(code))
        if item is None:
            self.errors.append(f"Item code '{code}' is not valid.")
        return item

    def _check_account(self, code: str | None) -> None:
        if code is None:
            return
        account = self.books._accounts.get(code)
        if (
            account is None
            or account.status != "ACTIVE"
            or account.type == "BANK"
            or account.system_account in _UNCODEABLE_SYSTEM_ACCOUNTS
        ):
            self.errors.append(f"Account code '{code}' is not a valid code for this document.")

    def _check_tax_type(self, tax_type: str | None, account_code: str | None) -> str | None:
        """The line's tax type (defaulting to the account's); records a problem if unusable.

        A TaxType must be one of the organisation's ACTIVE rates - the set differs per
        region (sandbox/xero_regions.py) - and allowed on the line's account class.
        """
        account = self.books._accounts.get(account_code) if account_code else None
        if tax_type is None:
            return account.tax_type if account else None
        rate = self.books._tax_rates.get(tax_type)
        if rate is None or rate.status != "ACTIVE":
            # Observed wording: "The TaxType code 'GST on Income' is not valid"
            # (XeroAPI/xero-mcp-server#210, 2026).
            self.errors.append(f"The TaxType code '{tax_type}' is not valid")
            return None
        if account is not None and not rate.can_apply_to(account.account_class):
            # TaxRates doc, "Tax Rate Constraints": "Sending a line item with a tax rate
            # that can't be used with the line's account code will generate the error".
            self.errors.append(
                f"The TaxType code '{tax_type}' cannot be used with account code '{account.code}'."
            )
            return None
        if account is None and not rate.can_apply_to_revenue:
            # No account yet (a draft line): judged as the sales line it is (wording
            # unverified).
            self.errors.append(
                f"The TaxType code '{tax_type}' cannot be used with this type of transaction."
            )
            return None
        return rate.tax_type

    def _rate_of(self, tax_type: str | None) -> Decimal:
        rate = self.books._tax_rates.get(tax_type) if tax_type else None
        return rate.rate if rate else Decimal(0)


def price_lines(
    lines: Sequence[LineItem], amount_types: str, rate_of: Callable[[str | None], Decimal]
) -> tuple[tuple[LineItem, ...], Totals]:
    """Each line's TaxAmount, rounded on that line, and the invoice totals (all Decimal).

    LineAmounts were fixed when each line was read (`price_line`). Tax follows the
    "Rounding in Xero" guide: per line, to cents, then summed - never worked out on a
    total (sandbox/xero_lines.py). A TaxAmount the request carried replaces the
    calculated one (spec LineItem.TaxAmount: "This value can be overriden"; how far it
    may differ is undocumented, so any value is taken - unverified); a NoTax invoice has
    no tax whatever was sent (unverified).
    """
    priced = tuple(replace(line, tax_amount=_tax_of(line, amount_types, rate_of)) for line in lines)
    totals = invoice_totals(
        [line.line_amount for line in priced],
        [line.tax_amount for line in priced],
        [line.discount for line in priced],
        amount_types,
    )
    return priced, totals


def _tax_of(line: LineItem, amount_types: str, rate_of: Callable[[str | None], Decimal]) -> Decimal:
    if amount_types == "NoTax":
        return Decimal("0.00")
    if line.tax_override is not None:
        return line.tax_override
    return line_tax(line.line_amount, rate_of(line.tax_type), amount_types)


_LINE_NUMBERS = (
    "Quantity",
    "UnitAmount",
    "LineAmount",
    "DiscountRate",
    "DiscountAmount",
    "TaxAmount",
)


def _number_or_none(value: object) -> Decimal | None:
    return None if value is None else to_decimal(value)


def _text_or_none(value: object) -> str | None:
    """JSON codes may arrive as numbers (``"AccountCode": 200``); Xero reads them as text."""
    return None if value is None else str(value)


# ----- reference data rendering --------------------------------------------------------


def render_organisation(books: TenantBooks) -> dict[str, Any]:
    """GET /Organisation for the books' region (spec `Organisation`; values per region in
    sandbox/xero_regions.py)."""
    setup = books.setup
    fy_day, fy_month = setup.financial_year_end
    return {
        "OrganisationID": books.organisation_id,
        "APIKey": "",
        "Name": books.organisation_name,
        "LegalName": f"{books.organisation_name} {setup.legal_suffix}",
        "PaysTax": True,
        "Version": setup.version,
        "OrganisationType": "COMPANY",
        "BaseCurrency": books.base_currency,
        "CountryCode": setup.country_code,
        "IsDemoCompany": False,
        "OrganisationStatus": "ACTIVE",
        "TaxNumber": setup.tax_number,
        "FinancialYearEndDay": fy_day,
        "FinancialYearEndMonth": fy_month,
        "SalesTaxBasis": setup.sales_tax_basis,
        "SalesTaxPeriod": setup.sales_tax_period,
        "DefaultSalesTax": "Tax Exclusive",
        "DefaultPurchasesTax": "Tax Inclusive",
        "CreatedDateUTC": ms_datetime(books._created_ms),
        "OrganisationEntityType": "COMPANY",
        "Timezone": books.timezone,
        "ShortCode": books.short_code,
        "Class": "STANDARD",
        "Edition": "BUSINESS",
        "LineOfBusiness": "Professional services",
        "Addresses": [],
        "Phones": [],
        "ExternalLinks": [],
        "PaymentTerms": {
            "Sales": {"Day": 30, "Type": "DAYSAFTERBILLDATE"},
            "Bills": {"Day": 30, "Type": "DAYSAFTERBILLDATE"},
        },
    }


def render_tax_rate(rate: TaxRate) -> dict[str, Any]:
    """GET /TaxRates element (TaxRates doc: CanApplyTo* per account class, DisplayTaxRate
    and EffectiveRate to 4 dp, TaxComponents). US orgs have no ReportTaxType."""
    body: dict[str, Any] = {
        "Name": rate.name,
        "TaxType": rate.tax_type,
        "CanApplyToAssets": rate.can_apply_to("ASSET"),
        "CanApplyToEquity": rate.can_apply_to("EQUITY"),
        "CanApplyToExpenses": rate.can_apply_to("EXPENSE"),
        "CanApplyToLiabilities": rate.can_apply_to("LIABILITY"),
        "CanApplyToRevenue": rate.can_apply_to("REVENUE"),
        "DisplayTaxRate": rate.display_rate,
        "EffectiveRate": rate.rate,
        "Status": rate.status,
        "TaxComponents": [
            {
                "Name": c.name,
                "Rate": c.rate,
                "IsCompound": c.is_compound,
                "IsNonRecoverable": False,  # "only applicable to Canadian organisations"
            }
            for c in rate.components
        ],
    }
    if rate.report_tax_type is not None:
        body["ReportTaxType"] = rate.report_tax_type
    return body


def render_account(account: Account, currency: str = "AUD") -> dict[str, Any]:
    body: dict[str, Any] = {
        "AccountID": account.account_id,
        "Code": account.code,
        "Name": account.name,
        "Status": account.status,
        "Type": account.type,
        "Class": account.account_class,
        "EnablePaymentsToAccount": False,
        "ShowInExpenseClaims": False,
        "HasAttachments": False,
        "UpdatedDateUTC": ms_datetime(account.updated_ms),
        "AddToWatchlist": False,
    }
    if account.tax_type:
        body["TaxType"] = account.tax_type
    if account.system_account:
        body["SystemAccount"] = account.system_account
    if account.bank_account_number:
        body.update(
            BankAccountNumber=account.bank_account_number,
            BankAccountType="BANK",
            CurrencyCode=currency,
        )
    return body


def render_item(item: Item) -> dict[str, Any]:
    return {
        "ItemID": item.item_id,
        "Code": item.code,
        "Name": item.name,
        "Description": item.description or item.name,
        "IsSold": True,
        "IsPurchased": False,
        "IsTrackedAsInventory": False,
        "SalesDetails": {
            "UnitPrice": item.unit_price,
            "AccountCode": item.account_code,
            "TaxType": item.tax_type,
        },
        "UpdatedDateUTC": ms_datetime(item.updated_ms),
    }


# ======================================================================================
# Rate limits, faults, idempotency, call log
# ======================================================================================

RateLimitProblem = Literal["minute", "day", "concurrent", "appminute"]


@dataclass
class RateLimits:
    """Xero's API limits (platform-facts: Limits). Mutable: tests may lower them live."""

    per_minute: int = 60
    per_day: int = 5000
    concurrent: int = 5
    app_per_minute: int = 10_000


@dataclass
class _Window:
    """A fixed window that starts at its first call (so resets are tenant-specific)."""

    length: float
    start: float | None = None
    count: int = 0

    def roll(self, now: float) -> None:
        if self.start is None or now >= self.start + self.length:
            self.start, self.count = now, 0

    def retry_after(self, now: float) -> int:
        start = self.start if self.start is not None else now
        return max(1, math.ceil(start + self.length - now))


@dataclass
class _TenantUsage:
    minute: _Window = field(default_factory=lambda: _Window(MINUTE_S))
    day: _Window = field(default_factory=lambda: _Window(DAY_S))
    in_flight: int = 0


@dataclass(frozen=True)
class Admission:
    """The limiter's answer to one call: remaining counts, or why it was refused."""

    remaining: dict[str, str]
    problem: RateLimitProblem | None = None
    retry_after: int | None = None


class RateLimiter:
    """Per-tenant minute/day/concurrent windows and the app-wide minute window."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._tenants: dict[str, _TenantUsage] = {}
        self._app_minute = _Window(MINUTE_S)

    def reset(self) -> None:
        self._tenants.clear()
        self._app_minute = _Window(MINUTE_S)

    def admit(self, tenant_id: str) -> Admission:
        """Count a call in (caller holds the lock); a refused call is not counted."""
        now = self._clock.now()
        usage = self._tenants.setdefault(tenant_id, _TenantUsage())
        for window in (usage.minute, usage.day, self._app_minute):
            window.roll(now)
        refused = self._refusal(usage, now)
        if refused is not None:
            return Admission(self._remaining(usage), *refused)
        usage.minute.count += 1
        usage.day.count += 1
        self._app_minute.count += 1
        usage.in_flight += 1
        return Admission(self._remaining(usage))

    def release(self, tenant_id: str) -> None:
        self._tenants[tenant_id].in_flight -= 1

    def remaining(self, tenant_id: str) -> dict[str, str]:
        """The ``X-*Limit-Remaining`` headers for the tenant as things stand."""
        return self._remaining(self._tenants.setdefault(tenant_id, _TenantUsage()))

    def _refusal(
        self, usage: _TenantUsage, now: float
    ) -> tuple[RateLimitProblem, int | None] | None:
        limits = self.limits
        if usage.day.count >= limits.per_day:
            return "day", usage.day.retry_after(now)
        if usage.minute.count >= limits.per_minute:
            return "minute", usage.minute.retry_after(now)
        if self._app_minute.count >= limits.app_per_minute:
            return "appminute", self._app_minute.retry_after(now)
        if usage.in_flight >= limits.concurrent:
            return "concurrent", None
        return None

    def _remaining(self, usage: _TenantUsage) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(max(0, self.limits.per_day - usage.day.count)),
            "X-MinLimit-Remaining": str(max(0, self.limits.per_minute - usage.minute.count)),
            "X-AppMinLimit-Remaining": str(
                max(0, self.limits.app_per_minute - self._app_minute.count)
            ),
        }


def too_many_requests(
    problem_kind: str, retry_after: int | None, remaining: Mapping[str, str]
) -> Response:
    """Xero's 429 (platform-facts: Limits): the problem header, Retry-After for windows."""
    response = problem(429, "Too Many Requests", f"Rate limit exceeded: {problem_kind}")
    response.headers.update(remaining)
    response.headers["X-Rate-Limit-Problem"] = problem_kind
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


FaultKind = Literal["5xx", "429", "slow", "lost_response", "short_answer"]
_FAULT_KINDS: tuple[FaultKind, ...] = ("5xx", "429", "slow", "lost_response", "short_answer")
_DEFAULT_RETRY_AFTER = {"minute": 60, "day": 3600}


@dataclass
class Fault:
    """One injected fault; `remaining` counts down (None: until cleared)."""

    kind: FaultKind
    method: str | None = None
    path_prefix: str | None = None
    tenant_id: str | None = None
    remaining: int | None = 1
    status: int | None = None
    delay: float | None = None
    problem: RateLimitProblem = "minute"
    retry_after: int | None = None
    skip: int = 0  # let this many matching calls through first (a fault on page 31 of 61)

    def matches(self, method: str, path: str, tenant_id: str) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and (self.method is None or self.method.upper() == method.upper())
            and (self.path_prefix is None or path.lower().startswith(self.path_prefix.lower()))
            and (self.tenant_id is None or self.tenant_id == tenant_id)
        )


def api_path(prefix: str) -> str:
    """``/Invoices`` -> ``/api.xro/2.0/Invoices``; full API paths pass through."""
    cleaned = "/" + prefix.lstrip("/")
    return cleaned if cleaned.lower().startswith(API_ROOT) else API_ROOT + cleaned


class FaultInjector:
    """Faults waiting to hit matching calls, first injected first used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in _FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {_FAULT_KINDS}, not {fault.kind!r}")
        if fault.kind == "slow" and not fault.delay:
            raise ValueError("a 'slow' fault needs delay= (seconds)")
        if fault.kind == "5xx" and not 500 <= (fault.status or 500) <= 599:
            raise ValueError("a '5xx' fault needs a status between 500 and 599")
        if fault.path_prefix is not None:
            fault.path_prefix = api_path(fault.path_prefix)
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str, tenant_id: str) -> Fault | None:
        """The first matching fault, used once (caller holds the lock)."""
        for fault in self._faults:
            if fault.matches(method, path, tenant_id):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if f.remaining is None or f.remaining > 0]


@dataclass(frozen=True)
class _StoredResponse:
    status: int
    body: bytes
    content_type: str
    stored_at: float

    def response(self) -> Response:
        return Response(self.body, status=self.status, content_type=self.content_type)


class IdempotencyCache:
    """Responses to PUT/POST calls by (tenant, method, path, Idempotency-Key)."""

    def __init__(self, clock: Clock, ttl: float) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str, str, str], _StoredResponse] = {}

    def get(self, key: tuple[str, str, str, str]) -> Response | None:
        entry = self._entries.get(key)
        if entry is None or self._clock.now() >= entry.stored_at + self.ttl:
            self._entries.pop(key, None)
            return None
        return entry.response()

    def put(self, key: tuple[str, str, str, str], response: Response) -> None:
        now = self._clock.now()
        for old in [k for k, v in self._entries.items() if now >= v.stored_at + self.ttl]:
            del self._entries[old]
        self._entries[key] = _StoredResponse(
            response.status_code,
            response.get_data(),
            response.content_type or "",
            self._clock.now(),
        )


@dataclass(frozen=True)
class ApiCall:
    """One accounting API call as the fake saw it.

    `status` is what the fake produced even when the response was then dropped
    (`fault == "lost_response"`); `replayed` marks an Idempotency-Key replay.
    """

    method: str
    path: str
    query: str
    tenant_id: str | None
    status: int
    time: float
    idempotency_key: str | None
    fault: FaultKind | None = None
    replayed: bool = False
    rate_limit_problem: RateLimitProblem | None = None
    body: bytes = b""  # the request body exactly as it arrived (what the client wrote)


# ======================================================================================
# The HTTP layer
# ======================================================================================

ApiHandler = Callable[..., Response]
"""Called as ``handler(request, books, **path_values)`` under the fake's lock."""


@dataclass(frozen=True)
class _Call:
    """One authenticated accounting request on its way through the pipeline."""

    request: Request
    tenant_id: str
    handler: ApiHandler
    path_values: dict[str, str]
    key: str | None
    """Its Idempotency-Key (PUT/POST only)."""


class _Args:
    """Query parameters looked up case-insensitively, parsed the way Xero parses them."""

    def __init__(self, request: Request) -> None:
        self._values = {key.lower(): value for key, value in request.args.items()}

    def text(self, name: str) -> str | None:
        return self._values.get(name.lower())

    def flag(self, name: str, default: bool = False) -> bool:
        """``true`` or ``false``: the spec types summarizeErrors, summaryOnly,
        includeArchived... ``boolean`` (xero_accounting.yaml ``schema: {type: boolean}``),
        whose wire form is lowercase. Real Xero also takes xero-python's ``False``/``True``
        (tests/specs/README.md); the fake holds clients to the documented form."""
        value = self.text(name)
        if value is None:
            return default
        if value not in ("true", "false"):
            raise ApiError(post_data_invalid(
                f"'{value}' is not a valid value for {name}: the API documents true or false"))
        return value == "true"

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise ApiError(
                post_data_invalid(f"'{value}' is not a valid value for {name}")
            ) from None

    def csv(self, name: str) -> list[str]:
        value = self.text(name)
        return [part.strip() for part in value.split(",") if part.strip()] if value else []


@dataclass(frozen=True)
class _Listing(Generic[R]):
    """How one resource is filtered and ordered by the generic list parameters."""

    type_name: str
    where_fields: Mapping[str, FieldKind]
    where_values: Callable[[R], WhereValues]
    order_keys: Mapping[str, SortKey[R]]
    updated_ms: Callable[[R], int] | None = None


def _string_fields(*names: str) -> dict[str, FieldKind]:
    return {name.lower(): "string" for name in names}


def _envelope(key: str, records: list[dict[str, Any]], now: float, **extra: Any) -> dict[str, Any]:
    """Xero's response wrapper; the SDK reads only `key` (and `pagination`)."""
    body: dict[str, Any] = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": PROVIDER_NAME,
        "DateTimeUTC": ms_datetime(int(now * 1000)),
    }
    body.update(extra)
    body[key] = records
    return body


def _read_elements(request: Request, key: str, *, updating: bool = False) -> list[Any]:
    """The ``{"<key>": [...]}`` batch of a PUT/POST body (a bare object counts as one),
    refused whole (400 ValidationException) if an element breaks the spec's schema: a
    read-only field, a wrong type, a field required to create (sandbox/xero_schema.py)."""
    try:
        body = json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal)
    except ValueError as exc:
        raise ApiError(post_data_invalid(f"The request body is not valid JSON: {exc}")) from None
    if isinstance(body, dict) and isinstance(body.get(key), list):
        elements = cast(list[Any], body[key])
    elif isinstance(body, dict) and body and key not in body:
        elements = [body]
    else:  # the spec: `requestBody: required: true` for PUT/POST /Contacts and /Invoices
        raise ApiError(post_data_invalid(f'The request body must be {{"{key}": [...]}}'))
    _refuse_schema_problems(key, elements, updating)
    return elements


def _refuse_schema_problems(key: str, elements: list[Any], updating: bool) -> None:
    schema = xero_schema.ROOTS[key]
    failed = []
    for element in elements:
        found = xero_schema.problems(schema, element, updating=updating)
        if found:
            echo = dict(element) if isinstance(element, dict) else {}
            failed.append({**echo, "ValidationErrors": [{"Message": m} for m in found]})
    if failed:
        raise ApiError(validation_exception(failed))


class XeroAccountingApi:
    """The accounting endpoints, their state per tenant and the production behaviours.

    Created by `FakeXero` (see sandbox/xero.py), which exposes the helpers tests use.
    Each call runs: bearer + ``xero-tenant-id`` check -> rate limits -> injected
    fault -> Idempotency-Key replay -> handler (under the fake's lock) -> headers,
    call log, and for a "lost_response" fault a dropped connection.
    """

    def __init__(
        self,
        fake: FakeXero,
        *,
        limits: RateLimits | None = None,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL_S,
    ) -> None:
        self._fake = fake
        self._lock = fake.lock
        self._clock = fake.clock
        self._books: dict[str, TenantBooks] = {}
        self.limiter = RateLimiter(limits or RateLimits(), fake.clock)
        self.faults = FaultInjector()
        self.idempotency = IdempotencyCache(fake.clock, idempotency_ttl)
        self._calls: list[ApiCall] = []
        self._register_routes()

    # ----- state and test helpers -------------------------------------------

    def books(self, tenant_id: str) -> TenantBooks:
        """The tenant's books, created and seeded on first use."""
        with self._lock:
            books = self._books.get(tenant_id)
            if books is None:
                tenant = next((t for t in self._fake.tenants if t.tenant_id == tenant_id), None)
                if tenant is None:
                    raise KeyError(f"unknown tenant {tenant_id}")
                books = TenantBooks(
                    tenant.tenant_id,
                    tenant.name,
                    self._lock,
                    self._clock,
                    region=getattr(tenant, "region", "AU"),
                    timezone=getattr(tenant, "timezone", None),
                )
                self._books[tenant_id] = books
            return books

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            return self.faults.add(fault)

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def count_calls(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        tenant_id: str | None = None,
    ) -> int:
        prefix = api_path(path_prefix).lower() if path_prefix else None
        return sum(
            1
            for call in self.calls
            if (method is None or call.method == method.upper())
            and (prefix is None or call.path.lower().startswith(prefix))
            and (status is None or call.status == status)
            and (tenant_id is None or call.tenant_id == tenant_id)
        )

    # ----- routing and the per-call pipeline ---------------------------------

    def _register_routes(self) -> None:
        routes: list[tuple[str, ApiHandler, tuple[str, ...]]] = [
            ("/Organisation", self._get_organisation, ("GET",)),
            ("/TaxRates", self._get_tax_rates, ("GET",)),
            ("/Accounts", self._get_accounts, ("GET",)),
            ("/Items", self._get_items, ("GET",)),
            ("/Currencies", self._get_currencies, ("GET",)),
            ("/Contacts", self._get_contacts, ("GET",)),
            ("/Contacts", self._save_contacts, ("PUT", "POST")),
            ("/Contacts/<contact_id>", self._get_contact, ("GET",)),
            ("/Contacts/<contact_id>", self._update_contact, ("POST",)),
            ("/Invoices", self._get_invoices, ("GET",)),
            ("/Invoices", self._save_invoices, ("PUT", "POST")),
            ("/Invoices/<invoice_id>", self._get_invoice, ("GET",)),
            ("/Invoices/<invoice_id>", self._update_invoice, ("POST",)),
            ("/Invoices/<invoice_id>/OnlineInvoice", self._get_online_invoice, ("GET",)),
            ("/Invoices/<invoice_id>/Email", self._email_invoice, ("POST",)),
        ]
        for rule, handler, methods in routes:
            self._fake.route(API_ROOT + rule, self._endpoint(handler), methods=methods)

    def _endpoint(self, handler: ApiHandler) -> Callable[..., Response]:
        def view(request: Request, **path_values: str) -> Response:
            return self._serve(request, handler, path_values)

        return view

    def _serve(
        self, request: Request, handler: ApiHandler, path_values: dict[str, str]
    ) -> Response:
        arrived = self._clock.now()
        key = request.headers.get("Idempotency-Key") if request.method in ("PUT", "POST") else None
        try:
            _, tenant = self._fake.connected_tenant(request)
        except HTTPException as exc:
            self._log(request, None, exc.code or 500, arrived, key)
            raise
        tenant_id = tenant.tenant_id
        with self._lock:
            admission = self.limiter.admit(tenant_id)
            fault = (
                None
                if admission.problem
                else self.faults.take(request.method, request.path, tenant_id)
            )
        if admission.problem is not None:
            self._log(request, tenant_id, 429, arrived, key, limit=admission.problem)
            return too_many_requests(admission.problem, admission.retry_after, admission.remaining)
        call = _Call(request, tenant_id, handler, path_values, key)
        try:
            response, replayed = self._run(call, fault)
        finally:
            with self._lock:
                self.limiter.release(tenant_id)
        response.headers.update(admission.remaining)
        response.headers["Xero-Correlation-Id"] = str(uuid.uuid4())
        self._log(
            request,
            tenant_id,
            response.status_code,
            arrived,
            key,
            fault=fault.kind if fault else None,
            replayed=replayed,
        )
        if fault is not None and fault.kind == "lost_response":
            _drop_connection(request)
        return response

    def _run(self, call: _Call, fault: Fault | None) -> tuple[Response, bool]:
        """Apply the fault, then replay or handle; returns (response, replayed)."""
        if fault is not None and fault.kind == "5xx":
            status = fault.status or 500
            title = "Service Unavailable" if status == 503 else "Internal Server Error"
            return problem(status, title, "injected fault: the call was not processed"), False
        if fault is not None and fault.kind == "429":
            retry = fault.retry_after or _DEFAULT_RETRY_AFTER.get(fault.problem)
            with self._lock:
                remaining = self.limiter.remaining(call.tenant_id)
            return too_many_requests(fault.problem, retry, remaining), False
        if fault is not None and fault.kind == "slow" and fault.delay:
            time.sleep(fault.delay)  # real seconds: lets calls overlap and clients time out
        if call.key is not None and len(call.key) > MAX_IDEMPOTENCY_KEY:
            return post_data_invalid("Idempotency-Key must be 128 characters or fewer"), False
        response, replayed = self._handle(call)
        if fault is not None and fault.kind == "short_answer":
            response = _without_last_element(response)
        return response, replayed

    def _handle(self, call: _Call) -> tuple[Response, bool]:
        """Replay the stored answer to an Idempotency-Key, or run the handler and store it."""
        request = call.request
        cache_key = (call.tenant_id, request.method, request.path.lower(), call.key or "")
        with self._lock:
            if call.key is not None:
                stored = self.idempotency.get(cache_key)
                if stored is not None:
                    return stored, True
            try:
                response = call.handler(request, self.books(call.tenant_id), **call.path_values)
            except ApiError as err:
                response = err.response
            except QueryError as err:
                response = query_parse_exception(str(err))
            if call.key is not None:
                self.idempotency.put(cache_key, response)
        return response, False

    def _log(
        self,
        request: Request,
        tenant_id: str | None,
        status: int,
        arrived: float,
        key: str | None,
        *,
        fault: FaultKind | None = None,
        replayed: bool = False,
        limit: RateLimitProblem | None = None,
    ) -> None:
        call = ApiCall(
            request.method,
            request.path,
            request.query_string.decode("latin-1"),
            tenant_id,
            status,
            arrived,
            key,
            fault,
            replayed,
            limit,
            request.get_data(cache=True),
        )
        with self._lock:
            self._calls.append(call)

    # ----- generic list handling -------------------------------------------

    def _ok(self, key: str, records: list[dict[str, Any]], **extra: Any) -> Response:
        return json_body(_envelope(key, records, self._clock.now(), **extra))

    def _listed(self, request: Request, records: Iterable[R], listing: _Listing[R]) -> list[R]:
        """Apply ``where``, ``If-Modified-Since`` and ``order`` to `records`."""
        args = _Args(request)
        predicate = parse_where(args.text("where") or "", listing.where_fields, listing.type_name)
        order = parse_order(args.text("order") or "", listing.order_keys, listing.type_name)
        since = self._if_modified_since(request)
        selected = [
            r
            for r in records
            if predicate(listing.where_values(r))
            and (since is None or listing.updated_ms is None or listing.updated_ms(r) > since)
        ]
        return sort_records(selected, order)

    @staticmethod
    def _if_modified_since(request: Request) -> int | None:
        header = request.headers.get("If-Modified-Since")
        if not header:
            return None
        try:
            return parse_http_timestamp(header)
        except ValueError:
            raise ApiError(
                post_data_invalid(f"If-Modified-Since '{header}' is not a valid date")
            ) from None

    @staticmethod
    def _page(args: _Args, records: list[R]) -> tuple[list[R], dict[str, Any]]:
        """One page and Xero's ``pagination`` block, or everything when not paging."""
        page, size = args.integer("page"), args.integer("pageSize")
        if page is None and size is None:
            return records, {}
        page = max(1, page or 1)
        size = min(MAX_PAGE_SIZE, max(1, size or DEFAULT_PAGE_SIZE))
        start = (page - 1) * size
        info = {
            "page": page,
            "pageSize": size,
            "pageCount": math.ceil(len(records) / size),
            "itemCount": len(records),
        }
        return records[start : start + size], {"pagination": info}

    # ----- reference data ------------------------------------------------------

    def _get_organisation(self, request: Request, books: TenantBooks) -> Response:
        return self._ok("Organisations", [render_organisation(books)])

    def _get_tax_rates(self, request: Request, books: TenantBooks) -> Response:
        listing: _Listing[TaxRate] = _Listing(
            "TaxRate",
            _string_fields("Name", "TaxType", "Status", "ReportTaxType"),
            lambda r: {
                "name": r.name,
                "taxtype": r.tax_type,
                "status": r.status,
                "reporttaxtype": r.report_tax_type,
            },
            {"name": lambda r: r.name, "taxtype": lambda r: r.tax_type},
        )
        rates = self._listed(request, books._tax_rates.values(), listing)
        return self._ok("TaxRates", [render_tax_rate(r) for r in rates])

    def _get_accounts(self, request: Request, books: TenantBooks) -> Response:
        listing: _Listing[Account] = _Listing(
            "Account",
            {
                **_string_fields(
                    "Code", "Name", "Type", "Status", "Class", "TaxType", "SystemAccount"
                ),
                "accountid": "guid",
            },
            lambda a: {
                "code": a.code,
                "name": a.name,
                "type": a.type,
                "status": a.status,
                "class": a.account_class,
                "taxtype": a.tax_type,
                "systemaccount": a.system_account,
                "accountid": a.account_id,
            },
            {
                "code": lambda a: a.code,
                "name": lambda a: a.name,
                "type": lambda a: a.type,
                "updateddateutc": lambda a: a.updated_ms,
            },
            lambda a: a.updated_ms,
        )
        accounts = self._listed(request, books._accounts.values(), listing)
        return self._ok("Accounts", [render_account(a, books.base_currency) for a in accounts])

    def _get_items(self, request: Request, books: TenantBooks) -> Response:
        listing: _Listing[Item] = _Listing(
            "Item",
            {**_string_fields("Code", "Name"), "itemid": "guid"},
            lambda i: {"code": i.code, "name": i.name, "itemid": i.item_id},
            {
                "code": lambda i: i.code,
                "name": lambda i: i.name,
                "updateddateutc": lambda i: i.updated_ms,
            },
            lambda i: i.updated_ms,
        )
        items = self._listed(request, books._items.values(), listing)
        return self._ok("Items", [render_item(i) for i in items])

    def _get_currencies(self, request: Request, books: TenantBooks) -> Response:
        listing: _Listing[str] = _Listing(
            "Currency",
            _string_fields("Code", "Description"),
            lambda c: {"code": c, "description": CURRENCY_NAMES[c]},
            {"code": lambda c: c},
        )
        codes = self._listed(request, books._currencies, listing)
        records = [{"Code": c, "Description": CURRENCY_NAMES[c]} for c in codes]
        return self._ok("Currencies", records)

    # ----- contacts ------------------------------------------------------------

    _CONTACTS: _Listing[Contact] = _Listing(
        "Contact",
        {
            **_string_fields(
                "Name",
                "FirstName",
                "LastName",
                "EmailAddress",
                "ContactNumber",
                "AccountNumber",
                "TaxNumber",
                "ContactStatus",
            ),
            "contactid": "guid",
        },
        Contact.where_values,
        {
            "name": lambda c: c.name,
            "updateddateutc": lambda c: c.updated_ms,
            "emailaddress": lambda c: c.email_address,
            "contactnumber": lambda c: c.contact_number,
            "firstname": lambda c: c.first_name,
            "lastname": lambda c: c.last_name,
        },
        lambda c: c.updated_ms,
    )

    def _get_contacts(self, request: Request, books: TenantBooks) -> Response:
        args = _Args(request)
        contacts = list(books._contacts.values())
        ids = {i.lower() for i in args.csv("IDs")}
        if ids:
            contacts = [c for c in contacts if c.contact_id in ids]
        if not args.flag("includeArchived"):
            contacts = [c for c in contacts if c.contact_status != "ARCHIVED"]
        term = (args.text("searchTerm") or "").casefold()
        if term:
            contacts = [c for c in contacts if _contact_matches(c, term)]
        listed = self._listed(request, contacts, self._CONTACTS)
        page, extra = self._page(args, listed)
        summary = args.flag("summaryOnly")
        rendered = [books.render_contact(c, summary=summary) for c in page]
        return self._ok("Contacts", rendered, **extra)

    def _get_contact(self, request: Request, books: TenantBooks, contact_id: str) -> Response:
        contact = books._find_contact(contact_id)
        if contact is None:
            return not_found()
        return self._ok("Contacts", [books.render_contact(contact)])

    def _save_contacts(self, request: Request, books: TenantBooks) -> Response:
        summarize = _Args(request).flag("summarizeErrors", default=True)
        result = books.save_contacts(_read_elements(request, "Contacts"), summarize=summarize)
        return self._batch_response("Contacts", result, summarize)

    def _update_contact(self, request: Request, books: TenantBooks, contact_id: str) -> Response:
        contact = books._find_contact(contact_id)
        if contact is None:
            return not_found()
        elements = _read_elements(request, "Contacts", updating=True)[:1]
        for element in elements:
            if isinstance(element, dict):
                element["ContactID"] = contact.contact_id
        return self._batch_response("Contacts", books.save_contacts(elements, summarize=True), True)

    def _batch_response(self, key: str, result: SaveResult, summarize: bool) -> Response:
        """200 with every element, or Xero's 400 when summarizing a failed batch."""
        if summarize and result.failed:
            return validation_exception(result.failed)
        return self._ok(key, result.elements)

    # ----- invoices --------------------------------------------------------------

    def _invoice_listing(self, books: TenantBooks) -> _Listing[Invoice]:
        return _Listing(
            "Invoice",
            {
                **_string_fields(
                    "InvoiceNumber", "Reference", "Status", "Type", "CurrencyCode", "Contact.Name"
                ),
                "invoiceid": "guid",
                "contactid": "guid",
                "contact.contactid": "guid",
            },
            lambda i: i.where_values(books._contacts.get(i.contact_id)),
            {
                "updateddateutc": lambda i: i.updated_ms,
                "invoicenumber": lambda i: i.invoice_number,
                "date": lambda i: i.date,
                "duedate": lambda i: i.due_date,
                "reference": lambda i: i.reference,
                "status": lambda i: i.status,
                "total": lambda i: i.total,
                "amountdue": lambda i: i.amount_due,
            },
            lambda i: i.updated_ms,
        )

    def _get_invoices(self, request: Request, books: TenantBooks) -> Response:
        args = _Args(request)
        invoices = self._filter_invoices(args, list(books._invoices.values()))
        listed = self._listed(request, invoices, self._invoice_listing(books))
        page, extra = self._page(args, listed)
        # Xero returns line items in a list only when paging (spec: `page` "with line
        # items shown for each invoice"); a single GET /Invoices/{id} always has them.
        summary = args.flag("summaryOnly")  # parsed (and refused if not true/false) always
        lines = bool(extra) and not summary
        unit_dp = args.integer("unitdp") or 2
        rendered = [books.render_invoice(i, lines=lines, unit_dp=unit_dp) for i in page]
        return self._ok("Invoices", rendered, **extra)

    @staticmethod
    def _filter_invoices(args: _Args, invoices: list[Invoice]) -> list[Invoice]:
        ids = {i.lower() for i in args.csv("IDs")}
        numbers = set(args.csv("InvoiceNumbers"))
        contact_ids = {i.lower() for i in args.csv("ContactIDs")}
        statuses = {s.upper() for s in args.csv("Statuses")}
        term = (args.text("searchTerm") or "").casefold()
        mine = args.flag("createdByMyApp")
        return [
            i
            for i in invoices
            if (not ids or i.invoice_id in ids)
            and (not numbers or i.invoice_number in numbers)
            and (not contact_ids or i.contact_id in contact_ids)
            and (not statuses or i.status in statuses)
            and (not mine or i.created_by_app)
            and (
                not term
                or term in i.invoice_number.casefold()
                or term in (i.reference or "").casefold()
            )
        ]

    def _get_invoice(self, request: Request, books: TenantBooks, invoice_id: str) -> Response:
        invoice = books._find_invoice(invoice_id)
        if invoice is None:
            return not_found()
        unit_dp = _Args(request).integer("unitdp") or 2
        return self._ok("Invoices", [books.render_invoice(invoice, unit_dp=unit_dp)])

    def _save_invoices(self, request: Request, books: TenantBooks) -> Response:
        args = _Args(request)
        summarize = args.flag("summarizeErrors", default=True)
        result = books.save_invoices(
            _read_elements(request, "Invoices"),
            summarize=summarize,
            unit_dp=args.integer("unitdp") or 2,
        )
        return self._batch_response("Invoices", result, summarize)

    def _update_invoice(self, request: Request, books: TenantBooks, invoice_id: str) -> Response:
        invoice = books._find_invoice(invoice_id)
        if invoice is None:
            return not_found()
        elements = _read_elements(request, "Invoices", updating=True)[:1]
        for element in elements:
            if isinstance(element, dict):
                element["InvoiceID"] = invoice.invoice_id
        unit_dp = _Args(request).integer("unitdp") or 2
        result = books.save_invoices(elements, summarize=True, unit_dp=unit_dp)
        return self._batch_response("Invoices", result, True)

    def _get_online_invoice(
        self, request: Request, books: TenantBooks, invoice_id: str
    ) -> Response:
        invoice = books._find_invoice(invoice_id)
        if invoice is None:
            return not_found()
        if invoice.status not in _ONLINE_INVOICE_STATUSES:
            # platform-facts: the online invoice link is not available for drafts.
            message = (
                f"The online invoice is not available for an invoice with status {invoice.status}."
            )
            return validation_exception(
                [{"InvoiceID": invoice.invoice_id, "ValidationErrors": [{"Message": message}]}],
                message,
            )
        url = f"https://in.xero.com/{invoice.online_token}"
        return json_body({"OnlineInvoices": [{"OnlineInvoiceUrl": url}]})

    def _email_invoice(self, request: Request, books: TenantBooks, invoice_id: str) -> Response:
        invoice = books._find_invoice(invoice_id)
        if invoice is None:
            return not_found()
        # The spec: POST /Invoices/{InvoiceID}/Email has `requestBody: required: true`, a
        # RequestEmpty object (`{}`); xero-python sends RequestEmpty() as {}.
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return post_data_invalid("The request body must be a JSON object (RequestEmpty: {})")
        refusal = books.email_invoice(invoice.invoice_id)
        if refusal is not None:
            return validation_exception(
                [{"InvoiceID": invoice.invoice_id, "ValidationErrors": [{"Message": refusal}]}],
                refusal,
            )
        return Response(status=204)


def _without_last_element(response: Response) -> Response:
    """The answer with its batch list one element short (the work itself was all done)."""
    body = json.loads(response.get_data(as_text=True), parse_float=Decimal)
    for key in ("Invoices", "Contacts"):
        if isinstance(body.get(key), list) and body[key]:
            body[key] = body[key][:-1]
    return json_body(body, response.status_code)


def _drop_connection(request: Request) -> NoReturn:
    """Close the client's socket without an answer, after the work was done.

    werkzeug's dev server hands the socket to the app as ``werkzeug.socket`` and
    treats a ConnectionError from the app as a client disconnect: it writes
    nothing. It closes the socket only after writing a response, so we shut it
    down ourselves; the client then sees the peer hang up (RemoteDisconnected).
    """
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:  # the client already went away: nothing left to drop
            raise ConnectionAbortedError("client disconnected first") from exc
    raise ConnectionAbortedError("injected fault: response lost after the call succeeded")


def _contact_matches(contact: Contact, term: str) -> bool:
    """Xero's contact ``searchTerm``: case-insensitive contains over five fields."""
    fields = (
        contact.name,
        contact.first_name,
        contact.last_name,
        contact.contact_number,
        contact.email_address,
    )
    return any(term in value.casefold() for value in fields if value)


__all__ = [
    "API_ROOT",
    "Account",
    "ApiCall",
    "Contact",
    "EmailRecord",
    "Fault",
    "FaultKind",
    "Invoice",
    "Item",
    "LineItem",
    "Payment",
    "QueryError",
    "RateLimitProblem",
    "RateLimits",
    "REGION_DEFAULT",
    "TaxComponent",
    "TaxRate",
    "TenantBooks",
    "Totals",
    "XeroAccountingApi",
    "dumps",
    "ms_date",
    "ms_datetime",
    "parse_where",
    "parse_xero_date",
    "price_lines",
]
