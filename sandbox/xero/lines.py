"""Xero's line and invoice arithmetic, in `Decimal`, as the fake Accounting API books it.

Sources (each rule below cites the one it follows):
- [GUIDE] developer.xero.com/documentation/guides/how-to-guides/rounding-in-xero: "Xero
  calculates tax on a per line basis, rounding to two decimal places, and then sums the tax
  totals of each line to calculate the total invoice tax"; "By default, the API accepts unit
  prices (UnitAmount) to two decimals places ... opt-in to 4 decimal places by adding the
  querystring parameter unitdp=4"; "All summary values such as Total, LineAmount etc will
  remain at two decimal places only".
- [SPEC] tests/specs/xero/xero_accounting.yaml, LineItem: "LineAmount = Quantity * Unit Amount
  * ((100 - DiscountRate)/100) or LineAmount = (Quantity * UnitAmount) - DiscountAmount"; "If
  you wish to omit either the Quantity or UnitAmount you can provide a LineAmount and Xero will
  calculate the missing amount for you"; TaxAmount "can be overriden if the calculated
  <TaxAmount> is not correct". Invoice: Total = SubTotal + TotalTax; TotalDiscount = "Total of
  discounts applied on the invoice line items".
- Observed answers of the real API, quoted in public issue threads (cited where used).

No setting switches Xero to invoice-level tax rounding, so the fake has none: it is an open
feature request (productideas.xero.com "Invoice: Round GST on subtotal only rather than
line-by-line", "Set tax treatment on transactions": "Currently, Xero calculates the tax on
each line item, rounded to 2 decimal places, then sums the tax").

Rounding mode - the docs never name one:
- Tax: half away from zero. Both worked examples with an exact half cent say so: the GUIDE's
  76.30 x 15 % = 11.445 -> "11.45", and 34.25 x 10 % = 3.425 -> 3.43 for Xero's stated total
  117.57 (kb.clouddepot.com, "rounding issues in Xero invoices"). A third-party page claiming
  banker's rounding (help.file.ai) contradicts its own examples.
- LineAmount: half away from zero too, but UNCLEAR. A discounted line of exactly half a cent
  was refused with "expected line total 0.00" (1 x 0.01 at 50 %: XeroAPI/Xero-NetStandard#147),
  like half-even or truncation, while xeroizer's rounding (BigDecimal half-up,
  waynerobinson/xeroizer#23: "duplicates what Xero does") and every non-half example agree
  with half-up. Paydeck should treat a discounted line whose exact amount ends in a half cent
  as one Xero may book a cent lower.
- UnitAmount (to 2 or 4 dp) and Quantity (to 4 dp): half away from zero (unverified).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal

from sandbox.xero.wire import CENT, UNIT_4DP

HUNDRED = Decimal(100)
ZERO = Decimal("0.00")

LINE_ROUNDING = ROUND_HALF_UP  # see the module docstring: unclear
TAX_ROUNDING = ROUND_HALF_UP  # GUIDE example 11.445 -> 11.45
UNIT_ROUNDING = ROUND_HALF_UP  # (unverified)


def to_cents(value: Decimal, rounding: str = LINE_ROUNDING) -> Decimal:
    """Two decimal places (every money total Xero stores: GUIDE)."""
    return value.quantize(CENT, rounding=rounding)


def unit_quantum(unit_dp: int) -> Decimal:
    """UnitAmount keeps 2 dp, or 4 with ``unitdp=4`` (GUIDE)."""
    return UNIT_4DP if unit_dp == 4 else CENT


Numbers = Mapping[str, Decimal | None]
"""The numbers one request line carries, by Xero name (None: the element was absent)."""


def price_line(req: Numbers, unit_dp: int) -> dict[str, Decimal | None] | list[str]:
    """LineAmount from Quantity, UnitAmount and a discount, or the problems Xero reports; the
    answer holds the line's `LineItem` numbers, rounded as stored.

    Both discounts on one line: DiscountRate wins and DiscountAmount is dropped. The docs
    are silent; that is what waynerobinson/xeroizer#483 observed ("DiscountRate will take
    precedence over DiscountAmount") (unverified beyond that report).
    """
    problems: list[str] = []
    rate = req["DiscountRate"]
    amount = None if rate is not None else _cents_or_none(req["DiscountAmount"])
    if rate is not None and not 0 <= rate <= HUNDRED:
        problems.append("DiscountRate must be between 0 and 100.")  # wording unverified
    quantity, unit = _quantity_and_unit(req, rate, amount, unit_dp)
    gross = quantity * unit
    if amount is not None and (amount > gross or amount < 0):
        # Observed wording (XeroAPI/Xero-OpenAPI#429, XeroAPI/xero-php-oauth2#288, the
        # amount shown to 2 dp). Compared with the unrounded Quantity x UnitAmount: that
        # reproduces both reports - #429 (even 0 is refused on a negative line) and #288
        # (27.8260 sent as UnitAmount and DiscountAmount under unitdp=4: 27.83 > 27.826).
        # A negative DiscountAmount is refused too (unverified).
        problems.append(f"The discount rate '{amount:.2f}' is invalid. "
                        "Discount must not be greater than the line total.")
    expected = _line_amount(gross, rate, amount)
    sent = req["LineAmount"]
    derived = req["Quantity"] is None or req["UnitAmount"] is None
    if sent is not None and (not derived or gross == 0):
        # A LineAmount sent beside both Quantity and UnitAmount is checked, not trusted:
        # "The line total 1.00 does not match the expected line total 0.00"
        # (XeroAPI/Xero-NetStandard#74, #147; #412 "The line total 0 does not match ...").
        # So is one that no derived amount can produce (Quantity 0, or UnitAmount 0).
        if to_cents(sent) != expected:
            problems.append(f"The line total {to_cents(sent):.2f} does not match the expected "
                            f"line total {expected:.2f}")
    if problems:
        return problems
    line_amount = expected if sent is None else to_cents(sent)
    tax = None if req["TaxAmount"] is None else to_cents(req["TaxAmount"], TAX_ROUNDING)
    return {"quantity": quantity, "unit_amount": unit, "line_amount": line_amount,
            "discount_rate": rate, "discount_amount": amount,
            "discount": to_cents(gross) - line_amount, "tax_override": tax}


def _cents_or_none(value: Decimal | None) -> Decimal | None:
    # DiscountAmount is money: 2 dp ("27.8260" was reported as '27.83': xero-php-oauth2#288).
    return None if value is None else to_cents(value)


def _quantity_and_unit(req: Numbers, rate: Decimal | None, amount: Decimal | None,
                       unit_dp: int) -> tuple[Decimal, Decimal]:
    """Quantity (4 dp) and UnitAmount (unit dp), deriving a missing one from LineAmount.

    SPEC: with LineAmount given, Xero "will calculate the missing amount". The derivation
    undoes the discount (LineAmount / (1 - rate/100), or + DiscountAmount) and divides by
    the other factor (unverified beyond the SPEC sentence). With neither Quantity nor a
    LineAmount, Quantity is 1 (unverified; the fake's behaviour since it was written).
    """
    quantum = unit_quantum(unit_dp)
    quantity = _round(req["Quantity"], UNIT_4DP)
    unit = _round(req["UnitAmount"], quantum)
    if req["LineAmount"] is None or (quantity is not None and unit is not None):
        return quantity if quantity is not None else Decimal("1.0000"), unit or Decimal(0)
    gross = _undiscounted(to_cents(req["LineAmount"]), rate, amount)
    if unit is None:
        q = quantity if quantity is not None else Decimal("1.0000")
        if q == 0:
            return q, Decimal(0).quantize(quantum)
        return q, (gross / q).quantize(quantum, rounding=UNIT_ROUNDING)
    if unit == 0:
        return Decimal("1.0000"), unit
    return (gross / unit).quantize(UNIT_4DP, rounding=UNIT_ROUNDING), unit


def _round(value: Decimal | None, quantum: Decimal) -> Decimal | None:
    return None if value is None else value.quantize(quantum, rounding=UNIT_ROUNDING)


def _undiscounted(line_amount: Decimal, rate: Decimal | None, amount: Decimal | None) -> Decimal:
    if rate is not None and rate != HUNDRED:
        return line_amount * HUNDRED / (HUNDRED - rate)
    return line_amount + (amount or 0)


def _line_amount(gross: Decimal, rate: Decimal | None, amount: Decimal | None) -> Decimal:
    """SPEC: Q x U x ((100 - DiscountRate)/100), or (Q x U) - DiscountAmount; to cents."""
    if rate is not None:
        return to_cents(gross * (HUNDRED - rate) / HUNDRED)
    if amount is not None:
        return to_cents(gross - amount)
    return to_cents(gross)


def line_tax(line_amount: Decimal, rate: Decimal, amount_types: str) -> Decimal:
    """Tax on one line, rounded on that line (GUIDE: "on a per line basis").

    Exclusive: LineAmount x rate/100. Inclusive: the tax inside the amount,
    LineAmount x rate/(100 + rate). NoTax: none.
    """
    if amount_types == "NoTax" or rate == 0:
        return ZERO
    if amount_types == "Inclusive":
        return to_cents(line_amount * rate / (HUNDRED + rate), TAX_ROUNDING)
    return to_cents(line_amount * rate / HUNDRED, TAX_ROUNDING)


def invoice_totals(amounts: Sequence[Decimal], taxes: Sequence[Decimal],
                   discounts: Sequence[Decimal], amount_types: str) -> dict[str, Decimal]:
    """SubTotal, TotalTax, Total and TotalDiscount (as `Invoice` fields) from the lines' values.

    TotalTax is the sum of the line taxes (GUIDE). Exclusive: SubTotal = sum(LineAmount),
    Total = SubTotal + TotalTax. Inclusive: the LineAmounts include the tax, so Total =
    sum(LineAmount) and SubTotal = Total - TotalTax (SPEC: SubTotal "excluding taxes",
    Total "i.e. SubTotal + TotalTax").
    """
    net, total_tax, discount = sum(amounts, ZERO), sum(taxes, ZERO), sum(discounts, ZERO)
    sub_total = net - total_tax if amount_types == "Inclusive" else net
    return {"sub_total": sub_total, "total_tax": total_tax, "total": sub_total + total_tax,
            "total_discount": discount}
