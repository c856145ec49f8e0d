"""Money as Decimal: reading a vendor's number, and rounding to the cent."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")


def to_decimal(value: Any) -> Decimal | None:
    """A vendor's number (string or JSON number) as Decimal; None when empty or not a number."""
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def cents(value: Decimal) -> Decimal:
    """`value` to the cent, halves away from zero (how Xero books a line, and how the CRMs
    compute the totals Paydeck compares with)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
