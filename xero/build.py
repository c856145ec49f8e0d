"""Deal + the admin's rules + the organisation's reference data -> one Xero invoice, or the
reasons it cannot be made. Pure: no I/O, so every mapping rule is tested with plain values.

Everything is validated here, before anything is sent, so Xero validation errors are rare.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from domain.deals import Deal, LineItem
from domain.money import cents
from xero.reference import PaymentTerms, ReferenceData

LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")

HUNDRED = Decimal(100)
# Xero keeps 4 decimals of UnitAmount when the write carries unitdp=4 (xero/client.py always
# sends it): tests/specs/xero/xero_accounting.yaml, parameter `unitdp`.
UNIT_DP = Decimal("0.0001")
# Xero's text limits (developer.xero.com/documentation/api/accounting/invoices: LineItems
# Description "max length = 4000"; the xero-python models refuse a Contact Name over 255 and a
# TaxNumber or Phone number over 50 with ValueError before anything is sent).
MAX_DESCRIPTION = 4000


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
    # How far the deal's amount may be from the sum of its lines before it is a review item.
    amount_tolerance: Decimal = Decimal("0.01")


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
    # What Xero will book as LineAmount (its documented arithmetic, see line_amount): kept so
    # the deal amount can be checked against it; not sent (Xero works it out itself).
    line_amount: Decimal = Decimal("0.00")


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
    amount_type = _line_amount_type(deal, rules, problems)
    lines = _lines(deal, rules, ref, amount_type, problems)
    if not problems:
        _check_deal_amount(deal, lines, amount_type, ref, rules.amount_tolerance, problems)
    if problems:
        return problems
    return InvoiceDraft(reference=reference, contact_id=contact_id, currency=currency, date=today,
                        due_date=due_date(today, contact_terms or _terms(rules, ref)), status=status,
                        line_amount_type=amount_type, lines=tuple(lines))


def line_amount(quantity: Decimal, unit_amount: Decimal, discount_rate: Decimal | None = None,
                discount_amount: Decimal | None = None) -> Decimal:
    """Xero's LineAmount: Quantity x UnitAmount x ((100 - DiscountRate)/100), or
    (Quantity x UnitAmount) - DiscountAmount, to the cent (tests/specs/xero/xero_accounting.yaml,
    LineItem.LineAmount). Half-up rounding is Xero's "round half away from zero" for positives
    (unverified for exact halves: Xero's docs do not state the rule)."""
    gross = quantity * unit_amount
    if discount_rate:
        gross = gross * (HUNDRED - discount_rate) / HUNDRED
    if discount_amount:
        gross -= discount_amount
    return cents(gross)


def _line_amount_type(deal: Deal, rules: InvoiceRules, problems: list[Problem]) -> str:
    """Exclusive/Inclusive/NoTax: the CRM's own tax method where its lines carry one (Pipedrive),
    else the admin's setting. One per invoice: Xero lines cannot mix LineAmountTypes."""
    stated = [item for item in deal.lines if item.tax_method]
    if not stated:
        return rules.line_amount_type
    taxed = {item.tax_method for item in stated if _crm_percent(item)}
    if len(taxed) > 1:
        names = ", ".join(f"{item.name or 'a line'}: {item.tax_method}" for item in stated)
        problems.append(Problem("mixed_tax_methods", "the deal mixes tax-inclusive and "
                                f"tax-exclusive lines ({names}); one Xero invoice cannot "
                                "(LineAmountTypes is one per invoice)"))
        return rules.line_amount_type
    if not taxed:
        return "NoTax"
    return "Inclusive" if taxed == {"inclusive"} else "Exclusive"


def _crm_percent(item: LineItem) -> Decimal:
    """The tax percentage the CRM puts on the line: 0 for a `none` line."""
    if item.tax_method == "none" or item.tax_percent is None:
        return Decimal(0)
    return item.tax_percent


def _check_deal_amount(deal: Deal, lines: Sequence[DraftLine], amount_type: str,
                       ref: ReferenceData, tolerance: Decimal, problems: list[Problem]) -> None:
    """The deal's amount against the sum of the invoice's LineAmounts (net of discounts; the
    tax inside an Inclusive line stays in it). Where the CRM may count exclusive tax in its
    amount (Deal.amount_includes_tax None), the sum with Xero's tax is accepted too."""
    if deal.amount is None or not deal.lines:
        return
    net = sum((line.line_amount for line in lines), Decimal("0.00"))
    accepted = [net]
    if amount_type == "Exclusive" and deal.amount_includes_tax is not False:
        tax = sum((cents(line.line_amount * _rate(line, ref) / HUNDRED) for line in lines),
                  Decimal("0.00"))
        accepted = [net + tax] if deal.amount_includes_tax else [net, net + tax]
    if min(abs(deal.amount - figure) for figure in accepted) > tolerance:
        shown = " or ".join(f"{figure:,.2f}" for figure in accepted)
        problems.append(Problem("amount_mismatch", f"the deal amount {deal.amount:,.2f} differs "
                                f"from the sum of its lines {shown} by more than "
                                f"{tolerance:,.2f}"))


def _rate(line: DraftLine, ref: ReferenceData) -> Decimal:
    rate = ref.tax_rates.get(line.tax_type or "")
    return rate.rate if rate else Decimal(0)


def _lines(deal: Deal, rules: InvoiceRules, ref: ReferenceData, amount_type: str,
           problems: list[Problem]) -> list[DraftLine]:
    items = deal.lines
    if not items:
        if not (rules.allow_single_line_from_amount and deal.amount and deal.amount > 0):
            why = ("the deal has no line items" + ("" if rules.allow_single_line_from_amount else
                   " (single-line invoices from the deal amount are turned off)"))
            problems.append(Problem("no_line_items", why))
            return []
        items = (LineItem(name=deal.name, quantity=Decimal(1), unit_price=deal.amount),)
    return [line for item in items
            if (line := _line(item, rules, ref, amount_type, problems)) is not None]


def _line(item: LineItem, rules: InvoiceRules, ref: ReferenceData, amount_type: str,
          problems: list[Problem]) -> DraftLine | None:
    product = rules.products.get(item.product_id or "", ProductRule())
    label = item.name or item.sku or item.product_id or "a line"
    amounts = _amounts(item, label, problems)
    description = item.description or item.name
    if len(description) > MAX_DESCRIPTION:
        problems.append(Problem("text_too_long", f"{label}: the line description is "
                                f"{len(description):,} characters; Xero allows {MAX_DESCRIPTION:,}"))
        amounts = None
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
                         rules, ref, amount_type, label, problems)
    if not account_ok or tax_type is False or amounts is None:
        return None
    assert account is not None
    quantity, unit, rate, discount, booked = amounts
    return DraftLine(description=description, quantity=quantity, unit_amount=unit,
                     account_code=account, tax_type=tax_type or None,
                     item_code=xero_item.code if xero_item else None,
                     discount_rate=rate, discount_amount=discount, line_amount=booked)


def _amounts(item: LineItem, label: str, problems: list[Problem]
             ) -> tuple[Decimal, Decimal, Decimal | None, Decimal | None, Decimal] | None:
    """(UnitAmount, DiscountRate, DiscountAmount, LineAmount) that book exactly the CRM's line,
    or None with the reason recorded."""
    def refuse(reason: str, why: str) -> None:
        problems.append(Problem(reason, f"{label}: {why}"))

    if item.problem:
        return refuse("line_amounts", item.problem)
    rate, discount = item.discount_percent or None, item.discount_amount or None
    if rate is not None and discount is not None:
        return refuse("line_amounts", "both a discount percentage and a discount amount")
    if rate is not None and not Decimal(0) <= rate <= HUNDRED:
        return refuse("line_amounts", f"a discount of {rate}% (Xero allows 0 to 100)")
    if discount is not None:
        discount = cents(discount)  # DiscountAmount is money: cents
    unit = item.unit_price.quantize(UNIT_DP, rounding=ROUND_HALF_UP)
    # Xero keeps Quantity to 4 decimals too (Invoices doc, LineItems; sandbox/xero/lines.py):
    # 0.33333 x 300 would book 99.99 there, not the 100.00 the CRM computed.
    quantity = item.quantity.quantize(UNIT_DP, rounding=ROUND_HALF_UP)
    booked = line_amount(quantity, unit, rate, discount)
    exact = line_amount(item.quantity, item.unit_price, rate, discount)
    if booked != exact:
        what = (f"the unit price {item.unit_price}" if quantity == item.quantity
                else f"the quantity {item.quantity}")
        return refuse("line_amounts", f"{what} has more decimals than Xero keeps (4): Xero "
                      f"would book {booked}, not {exact}")
    if discount is not None and booked < 0 <= booked + discount:  # a positive line gone negative
        return refuse("line_amounts", f"the discount is more than the line ({booked})")
    if item.crm_total is not None and cents(item.crm_total) != booked:
        return refuse("amount_mismatch", f"the CRM's line total is {cents(item.crm_total)} but "
                      f"quantity x price less discount books {booked} in Xero")
    return quantity, unit, rate, discount, booked


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
              ref: ReferenceData, amount_type: str, label: str,
              problems: list[Problem]) -> str | None | bool:
    """The line's TaxType; None for NoTax invoices; False if a problem was recorded."""
    if amount_type == "NoTax":
        return None
    if item.tax_method:
        return _crm_tax_type(item, rules, ref, label, problems)
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


def _crm_tax_type(item: LineItem, rules: InvoiceRules, ref: ReferenceData, label: str,
                  problems: list[Problem]) -> str | bool:
    """The tax rate for a line whose CRM states its percentage (Pipedrive `tax`): the admin's
    mapping of that label if there is one, else the one active sales rate with that
    percentage (EffectiveRate, what Xero charges). None or several: a review item."""
    percent = _crm_percent(item)
    shown = f"{percent.normalize():f}%"
    mapped = rules.taxes.get((item.tax_label or shown).casefold())
    sales = {t: r for t, r in ref.tax_rates.items() if r.usable_on_sales}
    if mapped:
        rate = sales.get(mapped)
        if rate is None or rate.rate != percent:
            problems.append(Problem("unknown_tax", f"{label}: the CRM charges {shown} but the "
                                    f"mapped Xero tax rate {mapped!r} is "
                                    + (f"{rate.rate.normalize():f}%" if rate else
                                       "not an active sales tax rate")))
            return False
        return mapped
    matches = sorted(t for t, r in sales.items() if r.rate == percent)
    if len(matches) == 1:
        return matches[0]
    why = ("no active sales tax rate in Xero has" if not matches else
           f"several Xero tax rates ({', '.join(matches)}) have")
    problems.append(Problem("unknown_tax", f"{label}: {why} the CRM's {shown}: map "
                            f"{shown!r} to one in the tax mapping"))
    return False


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
