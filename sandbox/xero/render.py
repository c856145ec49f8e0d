"""Records as Xero's JSON renders them, and rejected elements as Xero echoes them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.xero.lines import unit_quantum
from sandbox.xero.regions import Account, Item, TaxRate
from sandbox.xero.state import (CONTACT_TEXT_FIELDS, CURRENCY_NAMES, LINE_AMOUNT_TYPES, TRANSITIONS,
                                Allocation, Contact, Invoice, LineItem, Payment)
from sandbox.xero.wire import (CENT, UNIT_4DP, ZERO_GUID, date_string, ms_date, ms_datetime,
                               parse_xero_date)

RATE = Decimal("1.000000")
# Xero always returns these placeholder entries for a contact created without them.
_DEFAULT_ADDRESSES: list[dict[str, str]] = [{"AddressType": "STREET"}, {"AddressType": "POBOX"}]
_DEFAULT_PHONES: list[dict[str, str]] = [{"PhoneType": t} for t in ("DEFAULT", "DDI", "FAX", "MOBILE")]


def fields(record: object, table: Mapping[str, str], *, present: bool = False) -> dict[str, Any]:
    """Xero name -> the record's attribute, per `table`; `present`: only those set."""
    values = {key: getattr(record, attr) for key, attr in table.items()}
    return {k: v for k, v in values.items() if v} if present else values


def contact(record: Contact, *, is_customer: bool, summary: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"ContactID": record.contact_id, "ContactStatus": record.contact_status,
                            "Name": record.name}
    body |= {k: v for k, v in fields(record, CONTACT_TEXT_FIELDS).items()
             if v is not None and k not in body}
    body |= {"UpdatedDateUTC": ms_datetime(record.updated_ms), "IsSupplier": False,
             "IsCustomer": is_customer, "HasAttachments": False, "HasValidationErrors": False}
    if record.website:
        body["Website"] = record.website
    if record.merged_to and not summary:
        # The spec: "Only returned when using paging or when fetching a contact by ContactId".
        body["MergedToContactID"] = record.merged_to
    if not summary:
        body |= {"Addresses": list(record.addresses) or _DEFAULT_ADDRESSES,
                 "Phones": list(record.phones) or _DEFAULT_PHONES,
                 "ContactGroups": [], "ContactPersons": []}
        if record.payment_terms is not None:
            body["PaymentTerms"] = record.payment_terms
    return body


def contact_summary(record: Contact | None, contact_id: str) -> dict[str, Any]:
    """The Contact inside an invoice."""
    if record is None:
        return {"ContactID": contact_id}
    body = fields(record, {"ContactID": "contact_id", "ContactStatus": "contact_status",
                           "Name": "name"}) | {"HasValidationErrors": False}
    return body | fields(record, {"EmailAddress": "email_address",
                                  "ContactNumber": "contact_number"}, present=True)


_INVOICE_FIELDS = {
    "Type": "type", "InvoiceID": "invoice_id", "InvoiceNumber": "invoice_number",
    "AmountDue": "amount_due", "AmountPaid": "amount_paid", "AmountCredited": "amount_credited",
    "SentToContact": "sent_to_contact", "Status": "status",
    "LineAmountTypes": "line_amount_types", "SubTotal": "sub_total", "TotalTax": "total_tax",
    "Total": "total", "CurrencyCode": "currency_code",
}


def invoice(record: Invoice, owner: Contact | None, *, lines: bool = True,
            unit_dp: int = 2) -> dict[str, Any]:
    body = fields(record, _INVOICE_FIELDS) | {
        "Reference": record.reference or "", "CurrencyRate": RATE,
        "IsDiscounted": record.total_discount > 0, "HasAttachments": False, "HasErrors": False,
        "Contact": contact_summary(owner, record.contact_id),
        "DateString": date_string(record.date), "Date": ms_date(record.date),
        "UpdatedDateUTC": ms_datetime(record.updated_ms),
    }
    if record.due_date is not None:
        body |= {"DueDateString": date_string(record.due_date), "DueDate": ms_date(record.due_date)}
    if record.fully_paid_on is not None:
        body["FullyPaidOnDate"] = ms_date(record.fully_paid_on)
    if record.total_discount > 0:
        body["TotalDiscount"] = record.total_discount
    if record.url:
        body["Url"] = record.url
    if lines:
        body |= {"LineItems": [line(item, unit_dp) for item in record.line_items],
                 "Payments": [payment(p) for p in record.payments], **allocations(record.allocations)}
    return body


def line(item: LineItem, unit_dp: int) -> dict[str, Any]:
    """A booked line as Xero returns it: UnitAmount at the read's unitdp (4 dp only when
    asked: "Rounding in Xero" guide), every amount at 2 dp."""
    body: dict[str, Any] = {
        "LineItemID": item.line_item_id, "Description": item.description or "",
        "Quantity": item.quantity.quantize(UNIT_4DP),
        "UnitAmount": item.unit_amount.quantize(unit_quantum(unit_dp), rounding=ROUND_HALF_UP),
        "TaxAmount": item.tax_amount, "LineAmount": item.line_amount,
        "Tracking": list(item.tracking),
    }
    codes = {"ItemCode": item.item_code, "AccountCode": item.account_code, "TaxType": item.tax_type}
    body |= {key: value for key, value in codes.items() if value is not None}
    if item.discount_rate is not None:
        body["DiscountRate"] = item.discount_rate.quantize(CENT)
    if item.discount_amount is not None or item.discount_rate is not None:
        # Reads carry DiscountAmount beside DiscountRate for a discounted line
        # (XeroAPI/xero-php-oauth2#152: "the XML returns a discountAmount AND
        # discountRate"). For a DiscountRate line it is derived, Q x U less LineAmount
        # (unverified); a DiscountAmount line does not get a derived rate echoed
        # (xero-node#592 says Xero keeps one internally, precision unknown).
        amount = item.discount_amount if item.discount_amount is not None else item.discount
        body["DiscountAmount"] = amount
    return body


def allocations(applied: Sequence[Allocation]) -> dict[str, list[dict[str, Any]]]:
    """CreditNotes / Prepayments / Overpayments on a full invoice read, each element with its
    id and AppliedAmount (OpenAPI CreditNote/Prepayment/Overpayment.AppliedAmount "The amount
    of applied to an invoice")."""
    body: dict[str, list[dict[str, Any]]] = {"CreditNotes": [], "Prepayments": [], "Overpayments": []}
    for a in applied:
        body[f"{a.kind}s"].append({f"{a.kind}ID": a.allocation_id, "AppliedAmount": a.amount,
                                   "Date": ms_date(a.day)})
    return body


def payment(record: Payment) -> dict[str, Any]:
    body: dict[str, Any] = {"PaymentID": record.payment_id, "Date": ms_date(record.date),
                            "Amount": record.amount, "CurrencyRate": RATE,
                            "HasAccount": False, "HasValidationErrors": False}
    return body | fields(record, {"Reference": "reference"}, present=True)


# ----- rejected elements ---------------------------------------------------------------


def _failed(raw: Mapping[str, Any], keys: Iterable[str], errors: list[str]) -> dict[str, Any]:
    """The readable text of a rejected element; the caller adds its id and flags."""
    body = {k: raw[k] for k in keys if isinstance(raw.get(k), str)}
    return body | {"StatusAttributeString": "ERROR",
                   "ValidationErrors": [{"Message": m} for m in errors]}


def failed_contact(raw: Mapping[str, Any], existing: Contact | None,
                   errors: list[str]) -> dict[str, Any]:
    """A rejected contact as Xero echoes it: the input, a zero id, the messages."""
    keys = [k for k in CONTACT_TEXT_FIELDS if k not in ("ContactStatus", "DefaultCurrency")]
    body = _failed(raw, keys, errors)
    if raw.get("ContactStatus") in ("ACTIVE", "ARCHIVED"):
        body["ContactStatus"] = raw["ContactStatus"]
    return body | {"ContactID": existing.contact_id if existing else ZERO_GUID,
                   "HasValidationErrors": True}


_ECHOED_CHOICES = {"Type": ("ACCREC",), "Status": tuple(TRANSITIONS),
                   "LineAmountTypes": LINE_AMOUNT_TYPES, "CurrencyCode": tuple(CURRENCY_NAMES)}


def failed_invoice(raw: Mapping[str, Any], existing: Invoice | None,
                   errors: list[str]) -> dict[str, Any]:
    """A rejected invoice as Xero echoes it: the readable input, a zero id, the messages."""
    body = _failed(raw, ("InvoiceNumber", "Reference"), errors)
    body |= {key: raw[key] for key, allowed in _ECHOED_CHOICES.items() if raw.get(key) in allowed}
    owner = raw.get("Contact")
    if isinstance(owner, dict) and isinstance(owner.get("ContactID"), str):
        body["Contact"] = {"ContactID": owner["ContactID"]}
    for key in ("Date", "DueDate"):
        # Unreadable dates are reported in ValidationErrors, not echoed.
        with contextlib.suppress(ValueError):
            body[key] = ms_date(parse_xero_date(raw.get(key)))
    return body | {"InvoiceID": existing.invoice_id if existing else ZERO_GUID, "HasErrors": True}


# ----- reference data ------------------------------------------------------------------


def organisation(books: Any) -> dict[str, Any]:
    """GET /Organisation for the books' region (spec `Organisation`; values per region in
    sandbox/xero/regions.py)."""
    setup = books.setup
    fy_day, fy_month = setup.financial_year_end
    terms = {"Day": 30, "Type": "DAYSAFTERBILLDATE"}
    return {
        "OrganisationID": books.organisation_id, "APIKey": "", "Name": books.organisation_name,
        "LegalName": f"{books.organisation_name} {setup.legal_suffix}", "PaysTax": True,
        "Version": setup.version, "OrganisationType": "COMPANY",
        "BaseCurrency": books.base_currency, "CountryCode": setup.country_code,
        "IsDemoCompany": False, "OrganisationStatus": "ACTIVE", "TaxNumber": setup.tax_number,
        "FinancialYearEndDay": fy_day, "FinancialYearEndMonth": fy_month,
        "SalesTaxBasis": setup.sales_tax_basis, "SalesTaxPeriod": setup.sales_tax_period,
        "DefaultSalesTax": "Tax Exclusive", "DefaultPurchasesTax": "Tax Inclusive",
        "CreatedDateUTC": ms_datetime(books.created_ms), "OrganisationEntityType": "COMPANY",
        "Timezone": books.timezone, "ShortCode": books.short_code, "Class": "STANDARD",
        "Edition": "BUSINESS", "LineOfBusiness": "Professional services",
        "Addresses": [], "Phones": [], "ExternalLinks": [],
        "PaymentTerms": {"Sales": terms, "Bills": dict(terms)},
    }


_APPLY_TO = {"Assets": "ASSET", "Equity": "EQUITY", "Expenses": "EXPENSE",
             "Liabilities": "LIABILITY", "Revenue": "REVENUE"}


def tax_rate(rate: TaxRate) -> dict[str, Any]:
    """GET /TaxRates element (TaxRates doc: CanApplyTo* per account class, DisplayTaxRate
    and EffectiveRate to 4 dp, TaxComponents). US orgs have no ReportTaxType."""
    body: dict[str, Any] = {"Name": rate.name, "TaxType": rate.tax_type}
    body |= {f"CanApplyTo{name}": rate.can_apply_to(cls) for name, cls in _APPLY_TO.items()}
    body |= {"DisplayTaxRate": rate.display_rate, "EffectiveRate": rate.rate, "Status": rate.status}
    # IsNonRecoverable is "only applicable to Canadian organisations"
    body["TaxComponents"] = [{"Name": c.name, "Rate": c.rate, "IsCompound": c.is_compound,
                              "IsNonRecoverable": False} for c in rate.components]
    return body | fields(rate, {"ReportTaxType": "report_tax_type"}, present=True)


def account(record: Account, currency: str = "AUD") -> dict[str, Any]:
    table = {"AccountID": "account_id", "Code": "code", "Name": "name", "Status": "status",
             "Type": "type", "Class": "account_class"}
    body = fields(record, table) | {
        "EnablePaymentsToAccount": False, "ShowInExpenseClaims": False, "HasAttachments": False,
        "UpdatedDateUTC": ms_datetime(record.updated_ms), "AddToWatchlist": False,
    }
    body |= fields(record, {"TaxType": "tax_type", "SystemAccount": "system_account"},
                   present=True)
    if record.bank_account_number:
        body |= {"BankAccountNumber": record.bank_account_number, "BankAccountType": "BANK",
                 "CurrencyCode": currency}
    return body


def item(record: Item) -> dict[str, Any]:
    details = fields(record, {"UnitPrice": "unit_price", "AccountCode": "account_code",
                              "TaxType": "tax_type"})
    return {"ItemID": record.item_id, "Code": record.code, "Name": record.name,
            "Description": record.description or record.name, "IsSold": True,
            "IsPurchased": False, "IsTrackedAsInventory": False, "SalesDetails": details,
            "UpdatedDateUTC": ms_datetime(record.updated_ms)}
