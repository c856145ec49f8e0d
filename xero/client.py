"""The one place that calls Xero's Accounting API (through xero-python).

Every call: waits for the shared rate limiter, carries a timeout, reports Xero's limit headers
back to the limiter, and turns any failure into one of xero.errors' types.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

from xero_python.accounting import AccountingApi
from xero_python.accounting.models import (
    Contact,
    Contacts,
    CurrencyCode,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
    Phone,
    Address,
)
from xero_python.api_client import Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import ApiException

from domain.money import to_decimal
from xero.build import InvoiceDraft
from xero.contacts import name_key
from xero.detail import InvoiceDetail, detail_of
from xero.errors import SDK_ERRORS, BatchMismatch, FixData, from_sdk_exception
from xero.limits import XeroLimiter
from xero.reference import Account, ContactTerms, Item, PaymentTerms, ReferenceData, TaxRate
from xero.wire import XeroApiClient

log = logging.getLogger(__name__)

BATCH_SIZE = 50  # Xero recommends about 50 elements per PUT/POST (platform-facts)
T = TypeVar("T")
PDF_CHUNK = 64 * 1024
PAGE_SIZE = 1000  # GET /Contacts and /Invoices accept pageSize up to 1000
# Every invoice write asks for 4-decimal unit amounts: without it Xero rounds UnitAmount to 2
# (10,000 x 0.0125 would book 100.00, not 125.00). tests/specs/xero/xero_accounting.yaml `unitdp`.
UNIT_DP = 4
# Xero's contact text limits, as the xero-python models enforce them (a longer value raises
# ValueError in the model's setter, before any request): Contact.Name, FirstName, LastName,
# EmailAddress 255; TaxNumber 50; Phone.PhoneNumber 50.
CONTACT_LIMITS = {"name": ("Name", 255), "first_name": ("FirstName", 255),
                  "last_name": ("LastName", 255), "email": ("EmailAddress", 255),
                  "tax_number": ("TaxNumber", 50), "phone": ("PhoneNumber", 50)}


@dataclass(frozen=True)
class NewContact:
    name: str
    email: str = ""
    tax_number: str = ""
    phone: str = ""
    first_name: str = ""
    last_name: str = ""


def contact_too_long(c: NewContact) -> list[str]:
    """Each field of the new contact that is over Xero's limit, named as Xero names it."""
    return [f"the contact's {xero_name} is {len(getattr(c, attr)):,} characters; Xero allows "
            f"{limit:,}" for attr, (xero_name, limit) in CONTACT_LIMITS.items()
            if len(getattr(c, attr)) > limit]


@dataclass(frozen=True)
class ContactResult:
    contact_id: str | None
    name: str
    email: str
    tax_number: str
    errors: tuple[str, ...] = ()
    active: bool = True
    updated_at: datetime | None = None  # UpdatedDateUTC (summary answers carry it too)


@dataclass(frozen=True)
class ContactGroupInfo:
    group_id: str
    name: str
    status: str = "ACTIVE"


@dataclass(frozen=True)
class ContactDetails:
    """One contact's details, as the company page copies them into a CRM company."""

    contact_id: str
    name: str
    email: str = ""
    tax_number: str = ""
    phone: str = ""
    street: str = ""  # the address lines, joined
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    website: str = ""
    active: bool = True


@dataclass(frozen=True)
class ContactRecord:
    """A contact whole, as two-way contact sync compares it (GET /Contacts?IDs=, not summary
    only). Phones by PhoneType ("+61 2 5550 1234"), addresses by AddressType as
    {lines, city, region, postal_code, country}; empty slots left out."""

    contact_id: str
    name: str
    updated_at: datetime | None
    active: bool = True
    email: str = ""
    tax_number: str = ""
    account_number: str = ""
    currency: str = ""
    website: str = ""
    phones: Mapping[str, str] = field(default_factory=dict)
    addresses: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # PaymentTerms.Sales as {"day", "type"} ({} when the contact has none of its own).
    sales_terms: Mapping[str, str] = field(default_factory=dict)
    # ContactPersons: ({"first_name", "last_name", "email"}, ...)
    persons: tuple[Mapping[str, str], ...] = ()
    group_ids: frozenset[str] = frozenset()
    is_customer: bool = False
    is_supplier: bool = False
    merged_to: str = ""  # MergedToContactID: this contact was merged into that one
    # FirstName / LastName: the contact's own person (a B2C contact is one person).
    first_name: str = ""
    last_name: str = ""
    # Phones and Addresses as Xero holds them (SDK attribute names), so that an update can
    # send the slots it does not change exactly as they were.
    raw_phones: tuple[Mapping[str, str], ...] = ()
    raw_addresses: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class ContactPatch:
    """Changed fields of an existing contact (POST /Contacts with its ContactID). None: not
    sent. `phones` / `addresses`: the whole list to send, by PhoneType / AddressType, in SDK
    attribute names (phone_number, address_line1, city...)."""

    contact_id: str
    name: str | None = None
    email: str | None = None
    tax_number: str | None = None
    account_number: str | None = None
    currency: str | None = None
    phones: tuple[Mapping[str, str], ...] | None = None
    addresses: tuple[Mapping[str, str], ...] | None = None
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True)
class ContactSaved:
    """One contact's answer to an update: its new version, or Xero's messages."""

    contact_id: str
    updated_at: datetime | None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class InvoiceResult:
    reference: str
    invoice_id: str | None
    invoice_number: str | None
    status: str | None
    currency: str | None
    total: Decimal | None
    amount_due: Decimal | None
    amount_paid: Decimal | None
    due_date: date | None
    updated_at: datetime | None
    errors: tuple[str, ...] = ()
    amount_credited: Decimal | None = None
    paid_on: date | None = None
    sent_to_contact: bool | None = None
    # Prepayments + Overpayments applied (Xero's AmountCredited includes them: spec
    # Invoice.AmountCredited "Sum of all credit notes, over-payments and pre-payments applied
    # to invoice"). None when the read did not carry the arrays (summaryOnly).
    amount_prepaid: Decimal | None = None
    # Lines, totals, payments and allocations; None when the read carried no lines.
    detail: InvoiceDetail | None = None


class XeroClient:
    """Accounting API for one connection (tenant). `calls` counts requests sent to Xero."""

    def __init__(self, *, tenant_id: str, access_token: Callable[[], str], api_base: str,
                 timeout: float, limiter: XeroLimiter, max_wait: float = 5.0,
                 attempt: int = 1, before_call: Callable[[], object] = lambda: None) -> None:
        self.tenant_id = tenant_id
        self.attempt = attempt  # how many times this work was tried: backoff grows with it
        self.before_call = before_call  # e.g. renew the caller's lock lease
        self.timeout = timeout
        self.limiter = limiter
        self.max_wait = max_wait
        self.calls = 0
        # XeroApiClient: query booleans as `true`/`false`, no read-only fields in bodies.
        api_client = XeroApiClient(
            Configuration(oauth2_token=OAuth2Token()),
            # A fresh token every call, from app.tokens (which refreshes under a lock); with no
            # expiry given, the SDK never tries its own unlocked refresh.
            oauth2_token_getter=lambda: {"access_token": access_token(), "scope": None,
                                         "expires_in": None, "token_type": "Bearer"},
        )
        # urllib3 would otherwise re-send a PUT whose connection dropped (a duplicate invoice)
        # and sleep through 429s inside the call: retries belong to the limiter and the job.
        api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
        self.api = AccountingApi(api_client, base_url=f"{api_base}/api.xro/2.0")

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.api, operation)
        self.before_call()
        with self.limiter.call(self.tenant_id, self.max_wait):
            self.calls += 1
            try:
                data, status, headers = method(self.tenant_id, *args, _return_http_data_only=False,
                                               _request_timeout=self.timeout, **kwargs)
            except ApiException as exc:
                self.limiter.observe(self.tenant_id, exc.status or 0, exc.headers or {})
                raise from_sdk_exception(exc, method=_http_method(operation),
                                         attempt=self.attempt) from exc
            except SDK_ERRORS as exc:  # urllib3 errors the SDK lets through
                raise from_sdk_exception(exc, method=_http_method(operation),
                                         attempt=self.attempt) from exc
        self.limiter.observe(self.tenant_id, status, headers or {})
        return data

    # --- reference data ---------------------------------------------------------------------

    def reference_data(self) -> ReferenceData:
        org = self._call("get_organisations").organisations[0]
        accounts = self._call("get_accounts").accounts or []
        rates = self._call("get_tax_rates").tax_rates or []
        items = self._call("get_items").items or []
        currencies = self._call("get_currencies").currencies or []
        base = _enum_value(org.base_currency)
        sales = getattr(getattr(org, "payment_terms", None), "sales", None)
        return ReferenceData(
            base_currency=base,
            currencies=frozenset({base} | {_enum_value(c.code) for c in currencies}),
            accounts={a.code: Account(a.code, a.name or "", _enum_value(a.type),
                                      _enum_value(a.status) or "ACTIVE")
                      for a in accounts if a.code},
            tax_rates={t.tax_type: TaxRate(t.tax_type, t.name or "", Decimal(str(t.effective_rate or 0)),
                                           bool(t.can_apply_to_revenue),
                                           _enum_value(t.status) or "ACTIVE",
                                           to_decimal(t.display_tax_rate))
                       for t in rates if t.tax_type},
            items={i.code: Item(i.code, i.name or "",
                                getattr(i.sales_details, "account_code", None),
                                getattr(i.sales_details, "tax_type", None))
                   for i in items if i.code},
            sales_terms=_terms(sales),
            organisation_name=org.name or "",
            timezone=_enum_value(getattr(org, "timezone", None)),
            country_code=_enum_value(getattr(org, "country_code", None)),
        )

    # --- contacts ---------------------------------------------------------------------------

    def contacts_changed_since(self, since: datetime | None) -> Iterator[ContactResult]:
        """Every contact (archived too) updated after `since`, oldest first, page by page."""
        for _page, contacts in self.contact_pages(since):
            yield from contacts

    def contact_pages(self, since: datetime | None, first_page: int = 1,
                      ) -> Iterator[tuple[int, list[ContactResult]]]:
        """(page number, contacts) from `first_page` on, until a short page: so a caller can
        save its place after each page and resume there after a failure."""
        page = max(first_page, 1)
        while True:
            kwargs: dict[str, Any] = {"page": page, "page_size": PAGE_SIZE, "include_archived": True,
                                      "summary_only": True, "order": "UpdatedDateUTC ASC"}
            if since is not None:
                kwargs["if_modified_since"] = since
            contacts = self._call("get_contacts", **kwargs).contacts or []
            yield page, [_contact_result(c) for c in contacts]
            if len(contacts) < PAGE_SIZE:
                return
            page += 1

    def search_contacts(self, term: str, limit: int = 20) -> list[ContactResult]:
        """Active contacts whose name, email or contact number contain `term` (searchTerm);
        a tax number is matched on the ContactNumber/TaxNumber the result carries."""
        contacts = self._call("get_contacts", search_term=term, page=1, page_size=limit,
                              summary_only=True).contacts or []
        return [_contact_result(c) for c in contacts][:limit]

    def search_contacts_by_tax_number(self, tax_number: str, limit: int = 20) -> list[ContactResult]:
        """Active contacts whose TaxNumber is `tax_number` as typed or without its spaces and
        dots. `searchTerm` does not cover TaxNumber (the spec: "Name, FirstName, LastName,
        ContactNumber and EmailAddress"), so this is a `where` filter (exact, as Xero compares)."""
        forms = sorted({tax_number.strip(), re.sub(r"[\s.\-]", "", tax_number)} - {""})
        if not forms:
            return []
        where = " OR ".join(f'TaxNumber=="{_quote(f)}"' for f in forms)
        contacts = self._call("get_contacts", where=where, page=1, page_size=limit,
                              summary_only=True).contacts or []
        return [_contact_result(c) for c in contacts][:limit]

    def get_contact(self, contact_id: str) -> ContactDetails:
        """One contact with its phones and addresses (GET /Contacts/{ContactID}); Xero's 404
        for an id it does not know is FixData with error_type "NotFound"."""
        contacts = self._call("get_contact", contact_id).contacts or []
        if not contacts:
            raise FixData([f"Xero returned no contact for {contact_id}"], error_type="NotFound",
                          status=404)
        return _contact_details(contacts[0])

    def contact_terms(self, contact_ids: Sequence[str]) -> dict[str, ContactTerms]:
        """Status and own sales terms of these contacts, 50 ids a call (GET /Contacts?IDs=,
        archived included: an archived one must be seen, not missed)."""
        found: dict[str, ContactTerms] = {}
        for chunk in _chunks(sorted(set(contact_ids)), 50):
            contacts = self._call("get_contacts", i_ds=chunk, include_archived=True, page=1,
                                  page_size=len(chunk)).contacts or []
            for c in contacts:
                terms = _terms(getattr(getattr(c, "payment_terms", None), "sales", None))
                found[str(c.contact_id)] = ContactTerms(
                    str(c.contact_id), _enum_value(c.contact_status) in ("", "ACTIVE"),
                    c.name or "", terms)
        return found

    def contact_records(self, contact_ids: Sequence[str]) -> dict[str, ContactRecord]:
        """These contacts whole, archived too, 50 ids a call (GET /Contacts?IDs=); an id Xero
        does not return is left out."""
        found: dict[str, ContactRecord] = {}
        for chunk in _chunks(sorted(set(contact_ids)), 50):
            contacts = self._call("get_contacts", i_ds=chunk, include_archived=True, page=1,
                                  page_size=len(chunk)).contacts or []
            for c in contacts:
                found[str(c.contact_id)] = _contact_record(c)
        return found

    def contact_groups(self) -> list[ContactGroupInfo]:
        """The organisation's contact groups (GET /ContactGroups: "the contact Id and name of
        each contact group"; only ACTIVE ones are returned), by name."""
        groups = self._call("get_contact_groups", order="Name ASC").contact_groups or []
        return [ContactGroupInfo(str(g.contact_group_id), g.name or "", _enum_value(g.status))
                for g in groups if g.contact_group_id]

    def contact_group_members(self, group_id: str) -> frozenset[str] | None:
        """The ContactIDs in one group (GET /ContactGroups/{id}: its Contacts are "Returned on
        GETs when the ContactGroupID is supplied in the URL"); None if Xero has no such active
        group (deleted, or never was)."""
        try:
            groups = self._call("get_contact_group", group_id).contact_groups or []
        except FixData as exc:
            if exc.error_type == "NotFound":
                return None
            raise
        return frozenset(str(c.contact_id) for g in groups for c in g.contacts or []
                         if c.contact_id)

    def contact_record_pages(self, first_page: int = 1,
                             ) -> Iterator[tuple[int, list[ContactRecord]]]:
        """(page number, whole contacts) of every contact, archived too, PAGE_SIZE a call,
        oldest change first (new and edited contacts move to the end, so they are read last),
        from `first_page` until a short page; the caller saves its place per page. Not
        summaryOnly: matching and scope need IsCustomer/IsSupplier and ContactGroups."""
        page = max(first_page, 1)
        while True:
            contacts = self._call("get_contacts", page=page, page_size=PAGE_SIZE,
                                  include_archived=True,
                                  order="UpdatedDateUTC ASC").contacts or []
            yield page, [_contact_record(c) for c in contacts]
            if len(contacts) < PAGE_SIZE:
                return
            page += 1

    def contacts_named(self, names: Sequence[str]) -> dict[str, list[ContactResult]]:
        """Active contacts by exact Name (as Xero compares it), `where` Name=="a" OR ..., ten
        names a call; {name_key: contacts}. A create that may have reached Xero before a crash
        is looked up here before it is sent again."""
        found: dict[str, list[ContactResult]] = {}
        for chunk in _chunks(sorted(set(n for n in names if n.strip())), 10):
            where = " OR ".join(f'Name=="{_quote(n)}"' for n in chunk)
            for c in self._call("get_contacts", where=where, page=1,
                                page_size=PAGE_SIZE).contacts or []:
                result = _contact_result(c)
                if result.active:
                    found.setdefault(name_key(result.name), []).append(result)
        return found

    def create_contacts_whole(self, contacts: Sequence[ContactPatch], key: str,
                              ) -> list[ContactSaved | BatchMismatch]:
        """POST /Contacts creating these (their `contact_id` unused), summarizeErrors=false, up
        to BATCH_SIZE a call, with the caller's Idempotency-Key (a quick retry of the same
        batch replays Xero's answer). One answer per contact, matched by Name (unique among
        active contacts), carrying its new ContactID or Xero's messages."""
        if len(contacts) > BATCH_SIZE:
            raise ValueError(f"at most {BATCH_SIZE} contacts a call, not {len(contacts)}")
        models = []
        for c in contacts:
            model = _patch_model(c)
            model.contact_id = None
            models.append(model)
        result = self._call("update_or_create_contacts", Contacts(contacts=models),
                            summarize_errors=False, idempotency_key=key[:128])
        answers = [(name_key(c.name or ""),
                    ContactSaved(str(c.contact_id or ""), _utc(c.updated_date_utc),
                                 tuple(e.message for e in (c.validation_errors or [])
                                       if e.message)))
                   for c in result.contacts or []]
        lined = line_up([name_key(c.name or "") for c in contacts], answers, lambda a: a[0],
                        "contact")
        return [a if isinstance(a, BatchMismatch) else a[1] for a in lined]

    def create_contacts(self, contacts: Sequence[NewContact]) -> list[ContactResult | BatchMismatch]:
        """PUT /Contacts in one call; each element succeeds or carries Xero's messages.

        One answer per contact sent, in the order sent, matched by Name (Xero echoes it, also
        on a refused element); a contact the answer does not carry exactly once is a
        BatchMismatch, never a shifted neighbour's result."""
        body = Contacts(contacts=[_contact_model(c) for c in contacts])
        key = _batch_key("contacts", self.tenant_id, [c.name for c in contacts])
        result = self._call("create_contacts", body, summarize_errors=False, idempotency_key=key)
        return line_up([name_key(c.name) for c in contacts],
                       [_contact_result(c) for c in result.contacts or []],
                       lambda r: name_key(r.name), "contact")

    def update_contacts(self, patches: Sequence[ContactPatch]) -> list[ContactSaved | BatchMismatch]:
        """POST /Contacts (update by ContactID), summarizeErrors=false, up to BATCH_SIZE a call
        (Xero recommends about 50 elements per call: platform-facts "Batches"); one answer
        per patch in the order sent, matched by ContactID."""
        if len(patches) > BATCH_SIZE:
            raise ValueError(f"at most {BATCH_SIZE} contacts a call, not {len(patches)}")
        body = Contacts(contacts=[_patch_model(p) for p in patches])
        key = _batch_key("contact-updates", self.tenant_id,
                         [repr(p) for p in patches])
        result = self._call("update_or_create_contacts", body, summarize_errors=False,
                            idempotency_key=key)
        answers = [ContactSaved(str(c.contact_id or ""), _utc(c.updated_date_utc),
                                tuple(e.message for e in (c.validation_errors or []) if e.message))
                   for c in result.contacts or []]
        return line_up([p.contact_id.lower() for p in patches], answers,
                       lambda a: a.contact_id.lower(), "contact")

    # --- invoices ---------------------------------------------------------------------------

    def create_invoices(self, drafts: Sequence[InvoiceDraft],
                        idempotency_key: str) -> list[InvoiceResult | BatchMismatch]:
        """PUT /Invoices (create only), summarizeErrors=false: per-element outcomes, one per
        draft in the order sent, matched by Reference (ours, unique per deal)."""
        body = Invoices(invoices=[_invoice_model(d) for d in drafts])
        result = self._call("create_invoices", body, summarize_errors=False, unitdp=UNIT_DP,
                            idempotency_key=idempotency_key)
        return line_up([d.reference for d in drafts],
                       [_invoice_result(i) for i in result.invoices or []],
                       lambda r: r.reference, "invoice")

    def update_invoices(self, updates: Sequence[tuple[str, InvoiceDraft]],
                        idempotency_key: str) -> list[InvoiceResult | BatchMismatch]:
        """POST /Invoices with InvoiceIDs: new lines and status for existing drafts; one
        outcome per update in the order sent, matched by InvoiceID."""
        models = []
        for invoice_id, draft in updates:
            model = _invoice_model(draft)
            model.invoice_id = invoice_id
            models.append(model)
        result = self._call("update_or_create_invoices", Invoices(invoices=models),
                            summarize_errors=False, unitdp=UNIT_DP, idempotency_key=idempotency_key)
        return line_up([invoice_id.lower() for invoice_id, _ in updates],
                       [_invoice_result(i) for i in result.invoices or []],
                       lambda r: (r.invoice_id or "").lower(), "invoice")

    def invoices_by_reference(self, references: Sequence[str]) -> dict[str, list[InvoiceResult]]:
        """ACCREC invoices (not deleted/voided) whose Reference is one of these."""
        found: dict[str, list[InvoiceResult]] = {}
        for chunk in _chunks(list(references), 25):  # keep the URL well under Xero's limit
            clause = " OR ".join(f'Reference=="{_quote(r)}"' for r in chunk)
            where = f'Type=="ACCREC" AND ({clause})'
            for inv in self._call("get_invoices", where=where, page=1).invoices or []:
                result = _invoice_result(inv)
                if result.status not in ("DELETED", "VOIDED"):
                    found.setdefault(result.reference, []).append(result)
        return found

    def invoices_by_ids(self, invoice_ids: Sequence[str]) -> list[InvoiceResult]:
        """GET /Invoices?IDs=... 50 at a time (more makes the URL too long: platform-facts)."""
        found: list[InvoiceResult] = []
        for chunk in _chunks(list(invoice_ids), 50):
            found += [_invoice_result(i) for i in self._call(
                "get_invoices", i_ds=chunk, page=1, page_size=len(chunk),
                unitdp=UNIT_DP).invoices or []]  # unit prices as written, not rounded to 2
        return found

    def invoices_changed_since(self, since: datetime) -> Iterator[list[InvoiceResult]]:
        """Sales invoices updated after `since`, oldest first, a page (up to 1000) at a time:
        the safety net behind webhooks (If-Modified-Since, order UpdatedDateUTC ASC). Full
        elements, not summaryOnly: a paged read carries each invoice's lines, payments and
        allocations (spec `page`: "with line items shown for each invoice"), which the deal
        card shows, in the same one call a page."""
        page = 1
        while True:
            invoices = self._call("get_invoices", if_modified_since=since, where='Type=="ACCREC"',
                                  order="UpdatedDateUTC ASC", page=page,
                                  page_size=PAGE_SIZE, unitdp=UNIT_DP).invoices or []
            yield [_invoice_result(i) for i in invoices]
            if len(invoices) < PAGE_SIZE:
                return
            page += 1

    def online_invoice_url(self, invoice_id: str) -> str | None:
        """The customer's link to view and pay the invoice (GET /Invoices/{id}/OnlineInvoice;
        Xero refuses it for drafts)."""
        result = self._call("get_online_invoice", invoice_id)
        invoices = result.online_invoices or []
        return invoices[0].online_invoice_url if invoices else None

    def invoice_pdf(self, invoice_id: str) -> Iterator[bytes]:
        """Xero's PDF of the invoice (GET /Invoices/{id} with `Accept: application/pdf`, spec
        operationId getInvoiceAsPdf), streamed in 64 KiB pieces: the urllib3 response is not
        preloaded, so the file never sits whole in memory. Xero's answer status is checked
        (and any failure typed) before the first piece; the timeout covers the connect and
        each read. The caller must exhaust or close the iterator (the connection goes back
        to the pool either way)."""
        response = self._call("get_invoice_as_pdf", invoice_id, _preload_content=False)

        def pieces() -> Iterator[bytes]:
            try:
                yield from response.stream(PDF_CHUNK, decode_content=True)
            finally:
                response.release_conn()

        return pieces()

    def email_invoice(self, invoice_id: str, attempt: str = "") -> None:
        """POST /Invoices/{id}/Email. `attempt` names the try: a quick repeat of it replays
        Xero's answer (Idempotency-Key), a new one (a retry after the contact was fixed) must
        not be answered with the old refusal."""
        from xero_python.accounting.models import RequestEmpty

        self._call("email_invoice", invoice_id, RequestEmpty(),
                   idempotency_key=_batch_key("email", self.tenant_id, [invoice_id, attempt]))


def line_up(sent: Sequence[Hashable], answers: Sequence[T], key_of: Callable[[T], Hashable],
            what: str) -> list[T | BatchMismatch]:
    """Xero's batch answer lined up with what was sent, by each element's key: an element the
    answer has no result for, or several, is a BatchMismatch of its own. Xero answers in the
    order sent (platform-facts "Batches"), but nothing here depends on that."""
    found: dict[Hashable, list[T]] = {}
    for answer in answers:
        found.setdefault(key_of(answer), []).append(answer)
    unexpected = set(found) - set(sent)
    if unexpected or len(answers) != len(sent):
        log.warning("Xero answered %d %ss for %d sent (%d unexpected)", len(answers), what,
                    len(sent), len(unexpected))
    lined: list[T | BatchMismatch] = []
    for key in sent:
        matches = found.get(key, [])
        if len(matches) == 1:
            lined.append(matches[0])
        else:
            lined.append(BatchMismatch(str(key), f"Xero's answer carried {len(matches)} results "
                                                 f"for the {what} {key!r} (1 expected)"))
    return lined


# --- mapping between our types and the SDK's models -------------------------------------------

def _contact_model(c: NewContact) -> Contact:
    model = Contact(name=c.name, email_address=c.email or None, tax_number=c.tax_number or None,
                    first_name=c.first_name or None, last_name=c.last_name or None)
    if c.phone:
        model.phones = [Phone(phone_type="DEFAULT", phone_number=c.phone)]
    return model


def _patch_model(p: ContactPatch) -> Contact:
    model = Contact(contact_id=p.contact_id)
    for attr, sdk in (("name", "name"), ("email", "email_address"), ("tax_number", "tax_number"),
                      ("account_number", "account_number"), ("first_name", "first_name"),
                      ("last_name", "last_name")):
        value = getattr(p, attr)
        if value is not None:
            setattr(model, sdk, value)
    if p.currency is not None:
        model.default_currency = CurrencyCode(p.currency) if p.currency else None
    if p.phones is not None:
        model.phones = [Phone(**dict(phone)) for phone in p.phones]
    if p.addresses is not None:
        model.addresses = [Address(**dict(a)) for a in p.addresses]
    return model


def _contact_result(c: Contact) -> ContactResult:
    errors = tuple(e.message for e in (c.validation_errors or []) if e.message)
    return ContactResult(c.contact_id and str(c.contact_id), c.name or "", c.email_address or "",
                         c.tax_number or "", errors,
                         active=_enum_value(c.contact_status) in ("", "ACTIVE"),
                         updated_at=_utc(getattr(c, "updated_date_utc", None)))


# Which of a contact's numbers is "the" phone: Xero keeps four typed slots (FAX is no phone).
_PHONE_ORDER = ("DEFAULT", "DDI", "MOBILE")


def _contact_details(c: Contact) -> ContactDetails:
    address = _company_address(c.addresses or [])
    return ContactDetails(
        contact_id=str(c.contact_id), name=c.name or "", email=c.email_address or "",
        tax_number=c.tax_number or "", phone=_phone(c.phones or []),
        street=", ".join(_address_parts(address, _ADDRESS_LINES)),
        city=_address_part(address, "city"), region=_address_part(address, "region"),
        postal_code=_address_part(address, "postal_code"),
        country=_address_part(address, "country"), website=c.website or "",
        active=_enum_value(c.contact_status) in ("", "ACTIVE"))


def _contact_record(c: Contact) -> ContactRecord:
    sales = getattr(getattr(c, "payment_terms", None), "sales", None)
    terms = ({"day": str(sales.day), "type": _enum_value(sales.type)}
             if sales is not None and sales.day is not None else {})
    addresses = {}
    for a in c.addresses or []:
        lines = ", ".join(_address_parts(a, _ADDRESS_LINES))
        parts = {"lines": lines, "city": _address_part(a, "city"),
                 "region": _address_part(a, "region"),
                 "postal_code": _address_part(a, "postal_code"),
                 "country": _address_part(a, "country")}
        if any(parts.values()):
            addresses[_enum_value(a.address_type)] = parts
    phones = {}
    for p in c.phones or []:
        if p.phone_number and p.phone_number.strip():
            code = (p.phone_country_code or "").strip()
            text = " ".join(x.strip() for x in (p.phone_area_code, p.phone_number) if x and x.strip())
            phones[_enum_value(p.phone_type)] = f"+{code.lstrip('+')} {text}" if code else text
    persons = tuple({"first_name": p.first_name or "", "last_name": p.last_name or "",
                     "email": p.email_address or ""} for p in c.contact_persons or [])
    return ContactRecord(
        contact_id=str(c.contact_id), name=c.name or "", updated_at=_utc(c.updated_date_utc),
        active=_enum_value(c.contact_status) in ("", "ACTIVE"), email=c.email_address or "",
        tax_number=c.tax_number or "", account_number=c.account_number or "",
        currency=_enum_value(c.default_currency), website=c.website or "",
        phones=phones, addresses=addresses, sales_terms=terms, persons=persons,
        group_ids=frozenset(str(g.contact_group_id) for g in c.contact_groups or []
                            if g.contact_group_id),
        is_customer=bool(c.is_customer), is_supplier=bool(c.is_supplier),
        merged_to=str(c.merged_to_contact_id or ""),
        first_name=c.first_name or "", last_name=c.last_name or "",
        raw_phones=tuple(_raw(p, _PHONE_FIELDS) for p in c.phones or []),
        raw_addresses=tuple(_raw(a, ("address_type", *_ADDRESS_FIELDS, "attention_to"))
                            for a in c.addresses or []))


_PHONE_FIELDS = ("phone_type", "phone_number", "phone_area_code", "phone_country_code")


def _raw(model: Any, names: Sequence[str]) -> dict[str, str]:
    """An SDK phone or address as {attribute: text}, empty parts left out."""
    out = {}
    for name in names:
        value = getattr(model, name, None)
        text = _enum_value(value) if name.endswith("_type") else (value or "")
        if text:
            out[name] = str(text)
    return out


def _utc(moment: Any) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else \
        moment.astimezone(timezone.utc)


_ADDRESS_LINES = ("address_line1", "address_line2", "address_line3", "address_line4")
_ADDRESS_FIELDS = (*_ADDRESS_LINES, "city", "region", "postal_code", "country")


def _company_address(addresses: Sequence[Any]) -> Any | None:
    """The street address if it has anything in it, else the postal (PO box) one. Xero answers
    with an empty placeholder of each type when a contact has no address."""
    by_type = {_enum_value(a.address_type): a for a in addresses}
    for kind in ("STREET", "POBOX"):
        address = by_type.get(kind)
        if address is not None and _address_parts(address, _ADDRESS_FIELDS):
            return address
    return None


def _address_part(address: Any | None, name: str) -> str:
    return (getattr(address, name, None) or "").strip()


def _address_parts(address: Any | None, names: Sequence[str]) -> list[str]:
    return [part for part in (_address_part(address, n) for n in names) if part]


def _phone(phones: Sequence[Any]) -> str:
    by_type = {_enum_value(p.phone_type): p for p in phones if p.phone_number}
    for kind in _PHONE_ORDER:
        p = by_type.get(kind)
        if p is not None:
            return " ".join(part.strip() for part in (p.phone_country_code, p.phone_area_code,
                                                       p.phone_number) if part and part.strip())
    return ""


def _invoice_model(d: InvoiceDraft) -> Invoice:
    lines = [LineItem(description=l.description, quantity=l.quantity, unit_amount=l.unit_amount,
                      account_code=l.account_code, tax_type=l.tax_type, item_code=l.item_code,
                      discount_rate=l.discount_rate, discount_amount=l.discount_amount)
             for l in d.lines]
    contact = Contact(contact_id=d.contact_id) if d.contact_id else None  # updates keep theirs
    # Enum-typed fields want the SDK's enum members, not strings (platform-facts, SDK quirks).
    return Invoice(type="ACCREC", contact=contact, line_items=lines,
                   date=d.date, due_date=d.due_date, reference=d.reference,
                   currency_code=CurrencyCode(d.currency), status=d.status,
                   line_amount_types=LineAmountTypes(d.line_amount_type))


def _invoice_result(i: Invoice) -> InvoiceResult:
    errors = tuple(e.message for e in (i.validation_errors or []) if e.message)
    return InvoiceResult(
        reference=i.reference or "", invoice_id=i.invoice_id and str(i.invoice_id),
        invoice_number=i.invoice_number, status=_enum_value(i.status) or None,
        currency=_enum_value(i.currency_code) or None, total=to_decimal(i.total),
        amount_due=to_decimal(i.amount_due), amount_paid=to_decimal(i.amount_paid),
        due_date=i.due_date, updated_at=i.updated_date_utc, errors=errors,
        amount_credited=to_decimal(i.amount_credited), paid_on=_day(i.fully_paid_on_date),
        sent_to_contact=i.sent_to_contact, amount_prepaid=_prepaid(i), detail=detail_of(i))


def _prepaid(i: Invoice) -> Decimal | None:
    """Prepayments and overpayments applied to the invoice; None if the response left both
    arrays out (a summaryOnly read)."""
    if i.prepayments is None and i.overpayments is None:
        return None
    return sum((to_decimal(p.applied_amount) or Decimal(0)
                for p in (*(i.prepayments or ()), *(i.overpayments or ()))), Decimal(0))


def _terms(sales: Any) -> PaymentTerms | None:
    """A PaymentTerms.Sales element (organisation or contact), if it names a type and day."""
    if sales is None or not sales.type or sales.day is None:
        return None
    return PaymentTerms(_enum_value(sales.type), int(sales.day))


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def _enum_value(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _batch_key(kind: str, tenant_id: str, parts: Sequence[str]) -> str:
    """Deterministic: a quick retry of the same batch replays Xero's answer (max 128 chars)."""
    digest = hashlib.sha256("\x1f".join([kind, tenant_id, *parts]).encode()).hexdigest()
    return f"paydeck-{kind}-{digest[:48]}"


def _http_method(operation: str) -> str:
    if operation.startswith(("create_", "update_or_create_")):
        return "PUT" if operation.startswith("create_") else "POST"
    if operation.startswith(("update_", "email_")):
        return "POST"
    return "GET"
