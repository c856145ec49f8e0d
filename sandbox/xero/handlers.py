"""The Accounting API's endpoints: ``handler(request, books, **path_values)`` under the lock."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

import sandbox.xero.groups as groups
import sandbox.xero.pdf as pdf
import sandbox.xero.render as render
import sandbox.xero.schema as schema
from sandbox.kit.errors import VendorError
from sandbox.kit.jsonio import Invalid, query_bool, query_int, read_json, read_object
from sandbox.xero.books import TenantBooks
from sandbox.xero.state import CURRENCY_NAMES, ONLINE_INVOICE_STATUSES, Invoice, SaveResult
from sandbox.xero.where import Listing
from sandbox.xero.wire import (json_body, ms_datetime, not_found, post_data_invalid, refused_invoice,
                               validation_exception)

PROVIDER_NAME = "Paydeck Xero sandbox"
DEFAULT_PAGE_SIZE = 100  # platform-facts: page = 100 records
MAX_PAGE_SIZE = 1000
Handler = Callable[..., Response]


class _Args(dict[str, str]):
    """Query parameters, looked up case-insensitively as Xero does.

    Booleans are ``true`` or ``false`` only: the spec types summarizeErrors, summaryOnly,
    includeArchived... ``boolean`` (xero_accounting.yaml ``schema: {type: boolean}``), whose
    wire form is lowercase. Real Xero also takes xero-python's ``False``/``True``
    (tests/specs/README.md); the fake holds clients to the documented form.
    """

    def __init__(self, request: Request) -> None:
        super().__init__((key.lower(), value) for key, value in request.args.items())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def flag(self, name: str, default: bool = False) -> bool:
        return query_bool(self, name, default)

    def unit_dp(self) -> int:
        return query_int(self, "unitdp") or 2

    def ids(self, name: str, fold: Callable[[str], str] = str.lower) -> set[str]:
        """A comma-separated list parameter (``IDs``, ``Statuses``...), each part folded."""
        return {fold(part.strip()) for part in (self.get(name) or "").split(",") if part.strip()}


def _ok(books: TenantBooks, key: str, records: list[dict[str, Any]], **extra: Any) -> Response:
    """Xero's response wrapper; the SDK reads only `key` (and `pagination`)."""
    body = {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": PROVIDER_NAME,
            "DateTimeUTC": ms_datetime(int(books.clock.now() * 1000))}
    return json_body(body | extra | {key: records})


def _select(request: Request, listing: Listing, records: Iterable[Any]) -> list[Any]:
    args = _Args(request)
    header = request.headers.get("If-Modified-Since")
    return listing.select(records, args.get("where") or "", args.get("order") or "", header)


def _page(args: _Args, records: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """One page and Xero's ``pagination`` block, or everything when not paging."""
    page, size = query_int(args, "page"), query_int(args, "pageSize")
    if page is None and size is None:
        return records, {}
    page = max(1, page or 1)
    size = min(MAX_PAGE_SIZE, max(1, size or DEFAULT_PAGE_SIZE))
    info = {"page": page, "pageSize": size, "pageCount": math.ceil(len(records) / size),
            "itemCount": len(records)}
    return records[(page - 1) * size : page * size], {"pagination": info}


def _read_elements(request: Request, key: str, *, updating: bool = False) -> list[Any]:
    """The ``{"<key>": [...]}`` batch of a PUT/POST body (a bare object counts as one),
    refused whole (400 ValidationException) if an element breaks the spec's schema: a
    read-only field, a wrong type, a field required to create (sandbox/xero/schema.py)."""
    body = read_json(request)
    if isinstance(body, dict) and isinstance(body.get(key), list):
        elements: list[Any] = body[key]
    elif isinstance(body, dict) and body and key not in body:
        elements = [body]
    else:  # the spec: `requestBody: required: true` for PUT/POST /Contacts and /Invoices
        raise VendorError(post_data_invalid(f'The request body must be {{"{key}": [...]}}'))
    failed = []
    for element in elements:
        found = schema.problems(schema.ROOTS[key], element, updating=updating)
        if found:
            echo = dict(element) if isinstance(element, dict) else {}
            failed.append({**echo, "ValidationErrors": [{"Message": m} for m in found]})
    if failed:
        raise VendorError(validation_exception(failed))
    return elements


# ----- reference data -----------------------------------------------------------------

_TAX_RATES = Listing("TaxRate", "Name TaxType Status ReportTaxType", "Name TaxType", dated=False)
_ACCOUNTS = Listing("Account", "Code Name Type Status Class=account_class TaxType SystemAccount "
                    "AccountID", "Code Name Type UpdatedDateUTC=updated_ms")
_ITEMS = Listing("Item", "Code Name ItemID", "Code Name UpdatedDateUTC=updated_ms")
_CURRENCIES = Listing("Currency", "Code Description", "Code", dated=False,
                      special={"Code": str, "Description": CURRENCY_NAMES.__getitem__})


def _reference(key: str, listing: Listing, records: Callable[[TenantBooks], Iterable[Any]],
               shown: Callable[[TenantBooks, Any], dict[str, Any]]) -> Handler:
    """GET of one kind of reference data, with ``where``/``order``/If-Modified-Since."""

    def handler(request: Request, books: TenantBooks) -> Response:
        selected = _select(request, listing, records(books))
        return _ok(books, key, [shown(books, record) for record in selected])

    return handler


def _organisation(request: Request, books: TenantBooks) -> Response:
    return _ok(books, "Organisations", [render.organisation(books)])


# ----- contacts and invoices ---------------------------------------------------------------

_CONTACTS = Listing("Contact", "Name FirstName LastName EmailAddress ContactNumber AccountNumber "
                    "TaxNumber ContactStatus ContactID",
                    "Name UpdatedDateUTC=updated_ms EmailAddress ContactNumber FirstName LastName")


def _invoices_listing(books: TenantBooks) -> Listing:
    def contact_name(invoice: Invoice) -> str | None:
        contact = books.contact_by_id.get(invoice.contact_id)
        return contact.name if contact else None

    return Listing("Invoice", "InvoiceNumber Reference Status Type CurrencyCode Contact.Name "
                   "InvoiceID ContactID Contact.ContactID=contact_id",
                   "UpdatedDateUTC=updated_ms InvoiceNumber Date DueDate Reference Status Total "
                   "AmountDue", special={"Contact.Name": contact_name})


def _get_contacts(request: Request, books: TenantBooks) -> Response:
    args = _Args(request)
    ids, archived = args.ids("IDs"), args.flag("includeArchived")
    term = (args.get("searchTerm") or "").casefold()
    contacts = [c for c in books.contact_by_id.values() if (not ids or c.contact_id in ids)
                and (archived or c.contact_status != "ARCHIVED") and (not term or c.matches(term))]
    page, extra = _page(args, _select(request, _CONTACTS, contacts))
    summary = args.flag("summaryOnly")
    return _ok(books, "Contacts", [books.render_contact(c, summary=summary) for c in page], **extra)


def _get_invoices(request: Request, books: TenantBooks) -> Response:
    args = _Args(request)
    invoices = _filter_invoices(args, list(books.invoice_by_id.values()))
    page, extra = _page(args, _select(request, _invoices_listing(books), invoices))
    # Xero returns line items in a list only when paging (spec: `page` "with line
    # items shown for each invoice"); a single GET /Invoices/{id} always has them.
    summary = args.flag("summaryOnly")  # parsed (and refused if not true/false) always
    lines, unit_dp = bool(extra) and not summary, args.unit_dp()
    rendered = [books.render_invoice(i, lines=lines, unit_dp=unit_dp) for i in page]
    return _ok(books, "Invoices", rendered, **extra)


def _filter_invoices(args: _Args, invoices: list[Invoice]) -> list[Invoice]:
    ids, numbers = args.ids("IDs"), args.ids("InvoiceNumbers", str)
    contact_ids, statuses = args.ids("ContactIDs"), args.ids("Statuses", str.upper)
    term = (args.get("searchTerm") or "").casefold()
    mine = args.flag("createdByMyApp")
    return [i for i in invoices
            if (not ids or i.invoice_id in ids) and (not numbers or i.invoice_number in numbers)
            and (not contact_ids or i.contact_id in contact_ids)
            and (not statuses or i.status in statuses) and (not mine or i.created_by_app)
            and (not term or term in i.invoice_number.casefold()
                 or term in (i.reference or "").casefold())]


@dataclass(frozen=True)
class _Batch:
    """Contacts or Invoices: how one record is found, shown and saved in a batch."""

    key: str
    id_field: str
    id_attr: str
    find: Callable[[TenantBooks, str], Any]
    show: Callable[[TenantBooks, Any, _Args], dict[str, Any]]
    save: Callable[[TenantBooks, list[Any], bool, _Args], SaveResult]

    def get(self, request: Request, books: TenantBooks, record_id: str) -> Response:
        record = self.find(books, record_id)
        if record is None:
            return not_found()
        return _ok(books, self.key, [self.show(books, record, _Args(request))])

    def put(self, request: Request, books: TenantBooks) -> Response:
        args = _Args(request)
        summarize = args.flag("summarizeErrors", default=True)
        result = self.save(books, _read_elements(request, self.key), summarize, args)
        return self._answer(books, result, summarize)

    def update(self, request: Request, books: TenantBooks, record_id: str) -> Response:
        record = self.find(books, record_id)
        if record is None:
            return not_found()
        elements = _read_elements(request, self.key, updating=True)[:1]
        for element in elements:
            if isinstance(element, dict):
                element[self.id_field] = getattr(record, self.id_attr)
        return self._answer(books, self.save(books, elements, True, _Args(request)), True)

    def _answer(self, books: TenantBooks, result: SaveResult, summarize: bool) -> Response:
        """200 with every element, or Xero's 400 when summarizing a failed batch."""
        if summarize and result.failed:
            return validation_exception(result.failed)
        return _ok(books, self.key, result.elements)


_CONTACT_BATCH = _Batch(
    "Contacts", "ContactID", "contact_id", TenantBooks.find_contact,
    lambda books, contact, args: books.render_contact(contact),
    lambda books, elements, summarize, args: books.save_contacts(elements, summarize=summarize),
)
_INVOICE_BATCH = _Batch(
    "Invoices", "InvoiceID", "invoice_id", TenantBooks.find_invoice,
    lambda books, invoice, args: books.render_invoice(invoice, unit_dp=args.unit_dp()),
    lambda books, elements, summarize, args: books.save_invoices(
        elements, summarize=summarize, unit_dp=args.unit_dp()),
)


def _online_invoice(request: Request, books: TenantBooks, record_id: str) -> Response:
    invoice = books.find_invoice(record_id)
    if invoice is None:
        return not_found()
    if invoice.status not in ONLINE_INVOICE_STATUSES:
        # platform-facts: the online invoice link is not available for drafts.
        message = f"The online invoice is not available for an invoice with status {invoice.status}."
        return refused_invoice(invoice.invoice_id, message)
    url = f"{books.online_invoice_base}/{invoice.online_token}"
    return json_body({"OnlineInvoices": [{"OnlineInvoiceUrl": url}]})


def _email_invoice(request: Request, books: TenantBooks, record_id: str) -> Response:
    invoice = books.find_invoice(record_id)
    if invoice is None:
        return not_found()
    # The spec: POST /Invoices/{InvoiceID}/Email has `requestBody: required: true`, a
    # RequestEmpty object (`{}`); xero-python sends RequestEmpty() as {}.
    try:
        read_object(request)
    except Invalid:
        return post_data_invalid("The request body must be a JSON object (RequestEmpty: {})")
    refusal = books.email_invoice(invoice.invoice_id)
    if refusal is not None:
        return refused_invoice(invoice.invoice_id, refusal)
    return Response(status=204)


ROUTES: list[tuple[str, Handler, tuple[str, ...]]] = [
    ("/Organisation", _organisation, ("GET",)),
    ("/TaxRates", _reference("TaxRates", _TAX_RATES, lambda b: b.rate_by_type.values(),
                             lambda b, rate: render.tax_rate(rate)), ("GET",)),
    ("/Accounts", _reference("Accounts", _ACCOUNTS, lambda b: b.account_by_code.values(),
                             lambda b, a: render.account(a, b.base_currency)), ("GET",)),
    ("/Items", _reference("Items", _ITEMS, lambda b: b.item_by_code.values(),
                          lambda b, item: render.item(item)), ("GET",)),
    ("/Currencies", _reference("Currencies", _CURRENCIES, lambda b: b.currency_codes,
                               lambda b, c: {"Code": c, "Description": CURRENCY_NAMES[c]}),
     ("GET",)),
    ("/Contacts", _get_contacts, ("GET",)),
    ("/Contacts", _CONTACT_BATCH.put, ("PUT", "POST")),
    ("/Contacts/<record_id>", _CONTACT_BATCH.get, ("GET",)),
    ("/Contacts/<record_id>", _CONTACT_BATCH.update, ("POST",)),
    ("/ContactGroups", groups.get_groups, ("GET",)),  # sandbox/xero/groups.py
    ("/ContactGroups/<record_id>", groups.get_group, ("GET",)),
    ("/Invoices", _get_invoices, ("GET",)),
    ("/Invoices", _INVOICE_BATCH.put, ("PUT", "POST")),
    ("/Invoices/<record_id>", pdf.or_json(_INVOICE_BATCH.get), ("GET",)),  # Accept: PDF too
    ("/Invoices/<record_id>", _INVOICE_BATCH.update, ("POST",)),
    ("/Invoices/<record_id>/OnlineInvoice", _online_invoice, ("GET",)),
    ("/Invoices/<record_id>/Email", _email_invoice, ("POST",)),
]
"""Paths under ``/api.xro/2.0``: (rule, handler, methods)."""
