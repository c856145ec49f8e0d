"""Deal + the admin's rules + the organisation's reference data -> one Xero invoice, or the
reasons it cannot be made. Pure: no I/O, so every mapping rule is tested with plain values.

Everything is validated here, before anything is sent, so Xero validation errors are rare.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from app.deals import Deal, LineItem
from xero.reference import PaymentTerms, ReferenceData

LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")


@dataclass(frozen=True)
class ProductRule:
    xero_item_code: str | None = None
    account_code: str | None = None
    tax_type: str | None = None


@dataclass(frozen=True)
class InvoiceRules:
    """The admin's settings for one installation, as the builder needs them."""

    default_account_code: str | None = None
    default_tax_type: str | None = None
    line_amount_type: str = "Exclusive"
    allow_single_line_from_amount: bool = False
    # {"type": "org_default"} or {"type": <Xero PaymentTermType>, "days": N}
    payment_terms: dict[str, object] = field(default_factory=lambda: {"type": "org_default"})
    products: dict[str, ProductRule] = field(default_factory=dict)
    # CRM tax label (case-folded) -> Xero TaxType
    taxes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """Why a deal cannot be invoiced; `reason` is an app.models.ReviewReason value."""

    reason: str
    detail: str


@dataclass(frozen=True)
class DraftLine:
    description: str
    quantity: Decimal
    unit_amount: Decimal
    account_code: str
    tax_type: str | None = None
    item_code: str | None = None
    discount_rate: Decimal | None = None
    discount_amount: Decimal | None = None


@dataclass(frozen=True)
class InvoiceDraft:
    reference: str
    contact_id: str
    currency: str
    date: date
    due_date: date
    status: str  # DRAFT | AUTHORISED
    line_amount_type: str
    lines: tuple[DraftLine, ...]


def build_invoice(deal: Deal, rules: InvoiceRules, ref: ReferenceData, *, contact_id: str,
                  status: str, today: date, reference: str,
                  contact_terms: PaymentTerms | None = None) -> InvoiceDraft | list[Problem]:
    """The invoice for `deal`, or every problem found (all of them, so one review fixes all).

    `today` is the invoice date: a local date in the organisation's timezone (the caller
    works it out). `contact_terms` are the Xero contact's own sales terms, which win over the
    installation's default (the engine passes None when the admin turned that off)."""
    problems: list[Problem] = []
    if rules.line_amount_type not in LINE_AMOUNT_TYPES:
        problems.append(Problem("xero_validation",
                                f"line amount type {rules.line_amount_type!r} is not one of Xero's"))
    currency = (deal.currency or ref.base_currency).upper()
    if currency not in ref.currencies:
        problems.append(Problem("currency_not_enabled", f"{currency} is not enabled in "
                                f"{ref.organisation_name or 'the Xero organisation'}"))
    lines = _lines(deal, rules, ref, problems)
    if problems:
        return problems
    return InvoiceDraft(reference=reference, contact_id=contact_id, currency=currency, date=today,
                        due_date=due_date(today, contact_terms or _terms(rules, ref)), status=status,
                        line_amount_type=rules.line_amount_type, lines=tuple(lines))


def _lines(deal: Deal, rules: InvoiceRules, ref: ReferenceData,
           problems: list[Problem]) -> list[DraftLine]:
    items = deal.lines
    if not items:
        if not (rules.allow_single_line_from_amount and deal.amount and deal.amount > 0):
            why = ("the deal has no line items" + ("" if rules.allow_single_line_from_amount else
                   " (single-line invoices from the deal amount are turned off)"))
            problems.append(Problem("no_line_items", why))
            return []
        items = (LineItem(name=deal.name, quantity=Decimal(1), unit_price=deal.amount),)
    return [line for item in items if (line := _line(item, rules, ref, problems)) is not None]


def _line(item: LineItem, rules: InvoiceRules, ref: ReferenceData,
          problems: list[Problem]) -> DraftLine | None:
    product = rules.products.get(item.product_id or "", ProductRule())
    label = item.name or item.sku or item.product_id or "a line"
    xero_item = None
    if product.xero_item_code:
        xero_item = ref.items.get(product.xero_item_code)
        if xero_item is None:
            problems.append(Problem("unmapped_product", f"{label}: Xero item "
                                    f"{product.xero_item_code!r} does not exist"))
            return None
    account = (product.account_code or (xero_item.sales_account_code if xero_item else None)
               or rules.default_account_code)
    account_ok = _check_account(account, ref, label, problems)
    tax_type = _tax_type(item, product, xero_item.sales_tax_type if xero_item else None,
                         rules, ref, label, problems)
    if not account_ok or tax_type is False:
        return None
    assert account is not None
    return DraftLine(description=item.description or item.name, quantity=item.quantity,
                     unit_amount=item.unit_price, account_code=account, tax_type=tax_type or None,
                     item_code=xero_item.code if xero_item else None,
                     discount_rate=item.discount_percent or None,
                     discount_amount=item.discount_amount or None)


def _check_account(account: str | None, ref: ReferenceData, label: str,
                   problems: list[Problem]) -> bool:
    if not account:
        problems.append(Problem("unmapped_product", f"{label}: no account code (map the product "
                                "or set a default sales account)"))
        return False
    if account not in ref.accounts or not ref.accounts[account].usable:
        problems.append(Problem("unmapped_product", f"{label}: account {account!r} is not an "
                                "active account in Xero"))
        return False
    return True


def _tax_type(item: LineItem, product: ProductRule, item_tax: str | None, rules: InvoiceRules,
              ref: ReferenceData, label: str, problems: list[Problem]) -> str | None | bool:
    """The line's TaxType; None for NoTax invoices; False if a problem was recorded."""
    if rules.line_amount_type == "NoTax":
        return None
    if item.tax_label:
        mapped = rules.taxes.get(item.tax_label.casefold())
        if mapped is None:
            problems.append(Problem("unknown_tax", f"{label}: CRM tax {item.tax_label!r} has no "
                                    "Xero tax rate mapped"))
            return False
        tax_type: str | None = mapped
    else:
        tax_type = product.tax_type or item_tax or rules.default_tax_type
    if not tax_type:
        problems.append(Problem("unknown_tax", f"{label}: no tax rate (map one or set a default)"))
        return False
    rate = ref.tax_rates.get(tax_type)
    if rate is None or not rate.usable_on_sales:
        problems.append(Problem("unknown_tax", f"{label}: tax rate {tax_type!r} is not an active "
                                "sales tax rate in this Xero organisation"))
        return False
    return tax_type


def _terms(rules: InvoiceRules, ref: ReferenceData) -> PaymentTerms:
    kind = str(rules.payment_terms.get("type", "org_default"))
    if kind == "org_default":
        return ref.sales_terms or PaymentTerms("DAYSAFTERBILLDATE", 30)
    return PaymentTerms(kind, int(rules.payment_terms.get("days", 0)))  # type: ignore[call-overload]


def due_date(invoice_date: date, terms: PaymentTerms) -> date:
    """Xero's PaymentTermType semantics (help: 'Set default payment terms')."""
    if terms.type == "DAYSAFTERBILLDATE":
        return invoice_date + timedelta(days=terms.day)
    if terms.type == "DAYSAFTERBILLMONTH":
        last = calendar.monthrange(invoice_date.year, invoice_date.month)[1]
        return invoice_date.replace(day=last) + timedelta(days=terms.day)
    if terms.type == "OFCURRENTMONTH":  # never before the invoice itself
        return max(invoice_date, _day_of_month(invoice_date.year, invoice_date.month, terms.day))
    if terms.type == "OFFOLLOWINGMONTH":
        year, month = (invoice_date.year + 1, 1) if invoice_date.month == 12 else (
            invoice_date.year, invoice_date.month + 1)
        return _day_of_month(year, month, terms.day)
    raise ValueError(f"unknown payment term type {terms.type!r}")


def _day_of_month(year: int, month: int, day: int) -> date:
    """Day `day` of the month, or its last day if the month is shorter (the 31st in June)."""
    return date(year, month, min(max(day, 1), calendar.monthrange(year, month)[1]))
