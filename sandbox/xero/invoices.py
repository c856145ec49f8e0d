"""Saving one ACCREC invoice element: Xero's validation rules and its line arithmetic."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import sandbox.xero.render as render
from sandbox.xero.limits import (INVOICE_LIMITS, LINE_LIMITS, TRACKING_LIMITS, length_problems,
                                 nested_length_problems, too_long)
from sandbox.xero.lines import invoice_totals, line_tax, price_line
from sandbox.xero.regions import Item
from sandbox.xero.state import (CREATABLE_STATUSES, LINE_AMOUNT_TYPES, TRANSITIONS,
                                UNCODEABLE_SYSTEM_ACCOUNTS, Invoice, Ledger, LineItem, Saved)
from sandbox.xero.wire import ZERO_GUID, is_guid, parse_xero_date, to_decimal

_LINE_NUMBERS = ("Quantity", "UnitAmount", "LineAmount", "DiscountRate", "DiscountAmount",
                 "TaxAmount")


def save_element(ledger: Ledger, raw: Any, created_by_app: bool, unit_dp: int) -> Saved:
    """Create (no InvoiceID) or update (InvoiceID) one ACCREC invoice element."""
    if not isinstance(raw, dict):
        return render.failed_invoice({}, None, ["An invoice must be a JSON object"]), None
    existing: Invoice | None = None
    invoice_id = raw.get("InvoiceID")
    if invoice_id:
        existing = ledger.find_invoice(str(invoice_id))
        if existing is None:
            message = f"Invoice with InvoiceID '{invoice_id}' could not be found"
            return render.failed_invoice(raw, None, [message]), None
    builder = _InvoiceBuilder(ledger, raw, existing, unit_dp)
    invoice = builder.build(created_by_app)
    if invoice is None:
        return render.failed_invoice(raw, existing, builder.errors), None
    if existing is None and "InvoiceNumber" not in raw:
        ledger.next_number += 1  # consume the auto-number only on success
    owner = ledger.contact_by_id.get(invoice.contact_id)
    return render.invoice(ledger.keep(invoice), owner, unit_dp=unit_dp), invoice.invoice_id


class _InvoiceBuilder:
    """Turns one request element (plus the invoice it updates) into a valid `Invoice`, or
    None with every problem in `errors` (Xero reports them all at once)."""

    def __init__(self, ledger: Ledger, raw: Mapping[str, Any], existing: Invoice | None,
                 unit_dp: int) -> None:
        self.ledger = ledger
        self.raw = raw
        self.existing = existing
        self.unit_dp = unit_dp
        self.errors: list[str] = []

    def _was(self, attr: str, default: Any = None) -> Any:
        """The updated invoice's value, or `default` for a new one."""
        return getattr(self.existing, attr) if self.existing else default

    def build(self, created_by_app: bool) -> Invoice | None:
        status = self._status()
        self._check_editable(status)
        fields: dict[str, Any] = {
            "status": status,
            "contact_id": self._contact_id(),
            "date": self._date("Date", self._was("date", self.ledger.today())),
            "due_date": self._date("DueDate", self._was("due_date")),
            "line_amount_types": self._choice(
                "LineAmountTypes", self._was("line_amount_types", "Exclusive"), LINE_AMOUNT_TYPES,
                "LineAmountTypes '{}' is not one of " + ", ".join(LINE_AMOUNT_TYPES) + "."),
            "currency_code": self._choice(
                "CurrencyCode", self._was("currency_code", self.ledger.base_currency),
                self.ledger.currency_codes, "Organisation is not subscribed to currency {}"),
            "invoice_number": self._invoice_number(),
            "reference": self._text("Reference"),
            "url": self._text("Url"),
        }
        if status == "AUTHORISED" and fields["due_date"] is None:
            self.errors.append("Due Date is required for an AUTHORISED invoice.")
        self.errors.extend(length_problems(self.raw, {"Reference": INVOICE_LIMITS["Reference"]}))
        lines = self._lines(status)
        if self.errors or lines is None:
            return None
        priced, totals = price_lines(lines, fields["line_amount_types"], self._rate_of)
        if totals["total"] < 0:
            self.errors.append("The invoice total cannot be negative.")
            return None
        base = self.existing or Invoice(str(uuid.uuid4()), created_by_app=created_by_app, **fields)
        return replace(base, **fields, **totals, line_items=priced,
                       updated_ms=self.ledger.stamp())

    def _text(self, key: str) -> str | None:
        value = self.raw.get(key, self._was(key.lower()))
        return value if isinstance(value, str) else None

    def _status(self) -> str:
        current = self._was("status")
        wanted = self.raw.get("Status", current or "DRAFT")
        if wanted not in TRANSITIONS:
            self.errors.append(f"Status '{wanted}' is not a valid invoice status.")
            return current or "DRAFT"
        if current is None and wanted not in CREATABLE_STATUSES:
            self.errors.append(f"An invoice cannot be created with a status of {wanted}.")
        elif current is not None and wanted not in TRANSITIONS[current]:
            message = f"Invoice not of valid status for modification ({current} to {wanted})."
            self.errors.append(message)
        return str(wanted)

    def _check_editable(self, status: str) -> None:
        if not self._was("payments"):
            return
        if "LineItems" in self.raw:
            self.errors.append("This document cannot be edited as it has a payment or credit note "
                               "allocated to it.")
        if status == "VOIDED":
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
        found = self.ledger.find_contact(contact_id) if is_guid(contact_id) else None
        if found is None:
            self.errors.append(f"Contact with ContactID '{contact_id}' could not be found.")
            return ZERO_GUID
        if found.contact_status != "ACTIVE":
            self.errors.append(f"The contact '{found.name}' is archived and cannot be used.")
        return found.contact_id

    def _date(self, key: str, default: date | None) -> date | None:
        if self.raw.get(key) is None:
            return default
        try:
            return parse_xero_date(self.raw[key])
        except ValueError:
            self.errors.append(f"{key} '{self.raw[key]}' is not a valid date.")
            return default

    def _choice(self, key: str, current: str, allowed: Sequence[str], problem: str) -> str:
        """`key`'s value if it is one of `allowed`, else `current` and the `problem`."""
        value = self.raw.get(key, current)
        if value not in allowed:
            self.errors.append(problem.format(value))
            return current
        return str(value)

    def _invoice_number(self) -> str:
        number = self.raw.get("InvoiceNumber")
        if number is None:
            return self._was("invoice_number") or self.ledger.next_invoice_number()
        if not isinstance(number, str) or not number.strip():
            self.errors.append("InvoiceNumber must be 1 to 255 characters.")
            return ""
        limit = INVOICE_LIMITS["InvoiceNumber"][0]  # spec maxLength 255
        if len(number) > limit:
            self.errors.append(too_long("InvoiceNumber", limit))
            return ""
        if self.ledger.number_taken(number, self._was("invoice_id")):
            self.errors.append("Invoice # must be unique.")
        return number

    def _lines(self, status: str) -> tuple[LineItem, ...] | None:
        raw_lines = self.raw.get("LineItems")
        if raw_lines is None:
            lines: tuple[LineItem, ...] = self._was("line_items", ())
        elif not isinstance(raw_lines, list):
            self.errors.append("LineItems must be a list.")
            return None
        else:
            parsed = [self._line(raw) for raw in raw_lines]
            if any(line is None for line in parsed):
                return None
            lines = tuple(line for line in parsed if line is not None)
        if status != "DRAFT" and not lines:
            self.errors.append("At least one line item is required.")
        coded = status not in ("DRAFT", "DELETED", "VOIDED")
        if coded and any(line.account_code is None for line in lines):
            self.errors.append("Account code must be specified for each line item.")
        return lines

    def _line(self, raw: Any) -> LineItem | None:
        if not isinstance(raw, dict):
            self.errors.append("Each line item must be a JSON object.")
            return None
        item = self._item(raw.get("ItemCode"))
        numbers = self._line_numbers(raw, item)
        if numbers is None:
            return None
        priced = price_line(numbers, self.unit_dp)  # sandbox/xero/lines.py
        if isinstance(priced, list):
            self.errors.extend(priced)
            return None
        self.errors.extend(length_problems(raw, LINE_LIMITS))
        tracking = tuple(t for t in raw.get("Tracking") or () if isinstance(t, dict))
        self.errors.extend(nested_length_problems(tracking, TRACKING_LIMITS, "Tracking "))
        account_code = _text_or_none(raw.get("AccountCode", item.account_code if item else None))
        self._check_account(account_code)
        tax_type = _text_or_none(raw.get("TaxType", item.tax_type if item else None))
        tax_type = self._check_tax_type(tax_type, account_code)
        description = raw.get("Description", item.description if item else None)
        line_id = raw.get("LineItemID")
        return LineItem(
            line_id if isinstance(line_id, str) and is_guid(line_id) else str(uuid.uuid4()),
            description if isinstance(description, str) else None, account_code=account_code,
            tax_type=tax_type, item_code=item.code if item else None, tracking=tracking,
            **priced)

    def _line_numbers(self, raw: Mapping[str, Any], item: Item | None) -> dict[str, Any] | None:
        """The line's numbers as sent; an item supplies a missing UnitAmount (Items doc)."""
        try:
            numbers = {key: _number_or_none(raw.get(key)) for key in _LINE_NUMBERS}
        except (ValueError, TypeError) as exc:
            self.errors.append(f"Line item amounts must be numbers ({exc}).")
            return None
        if numbers["UnitAmount"] is None and item is not None:
            numbers["UnitAmount"] = item.unit_price
        return numbers

    def _item(self, code: Any) -> Item | None:
        if code is None:
            return None
        item = self.ledger.item_by_code.get(str(code))
        if item is None:
            self.errors.append(f"Item code '{code}' is not valid.")
        return item

    def _check_account(self, code: str | None) -> None:
        if code is None:
            return
        account = self.ledger.account_by_code.get(code)
        if (account is None or account.status != "ACTIVE" or account.type == "BANK"
                or account.system_account in UNCODEABLE_SYSTEM_ACCOUNTS):
            self.errors.append(f"Account code '{code}' is not a valid code for this document.")

    def _check_tax_type(self, tax_type: str | None, account_code: str | None) -> str | None:
        """The line's tax type (defaulting to the account's); records a problem if unusable.

        A TaxType must be one of the organisation's ACTIVE rates - the set differs per
        region (sandbox/xero/regions.py) - and allowed on the line's account class.
        """
        account = self.ledger.account_by_code.get(account_code) if account_code else None
        if tax_type is None:
            return account.tax_type if account else None
        rate = self.ledger.rate_by_type.get(tax_type)
        if rate is None or rate.status != "ACTIVE":
            # Observed wording: "The TaxType code 'GST on Income' is not valid"
            # (XeroAPI/xero-mcp-server#210, 2026).
            problem = f"The TaxType code '{tax_type}' is not valid"
        elif account is not None and not rate.can_apply_to(account.account_class):
            # TaxRates doc, "Tax Rate Constraints": "Sending a line item with a tax rate
            # that can't be used with the line's account code will generate the error".
            problem = (f"The TaxType code '{tax_type}' cannot be used with account code "
                       f"'{account.code}'.")
        elif account is None and not rate.can_apply_to_revenue:
            # No account yet (a draft line): judged as the sales line it is (wording
            # unverified).
            problem = f"The TaxType code '{tax_type}' cannot be used with this type of transaction."
        else:
            return rate.tax_type
        self.errors.append(problem)
        return None

    def _rate_of(self, tax_type: str | None) -> Decimal:
        rate = self.ledger.rate_by_type.get(tax_type) if tax_type else None
        return rate.rate if rate else Decimal(0)


def price_lines(lines: Sequence[LineItem], amount_types: str,
                rate_of: Callable[[str | None], Decimal]) -> tuple[tuple[LineItem, ...], dict[str, Decimal]]:
    """Each line's TaxAmount, rounded on that line, and the invoice totals (all Decimal).

    LineAmounts were fixed when each line was read (`price_line`). Tax follows the
    "Rounding in Xero" guide: per line, to cents, then summed - never worked out on a
    total (sandbox/xero/lines.py). A TaxAmount the request carried replaces the
    calculated one (spec LineItem.TaxAmount: "This value can be overriden"; how far it
    may differ is undocumented, so any value is taken - unverified); a NoTax invoice has
    no tax whatever was sent (unverified).
    """
    priced = tuple(replace(line, tax_amount=_tax_of(line, amount_types, rate_of)) for line in lines)
    totals = invoice_totals([line.line_amount for line in priced],
                            [line.tax_amount for line in priced],
                            [line.discount for line in priced], amount_types)
    return priced, totals


def _tax_of(line: LineItem, amount_types: str, rate_of: Callable[[str | None], Decimal]) -> Decimal:
    if amount_types == "NoTax":
        return Decimal("0.00")
    if line.tax_override is not None:
        return line.tax_override
    return line_tax(line.line_amount, rate_of(line.tax_type), amount_types)


def _number_or_none(value: object) -> Decimal | None:
    return None if value is None else to_decimal(value)


def _text_or_none(value: object) -> str | None:
    """JSON codes may arrive as numbers (``"AccountCode": 200``); Xero reads them as text."""
    return None if value is None else str(value)
