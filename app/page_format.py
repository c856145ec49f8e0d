"""The formatting filters every page uses (`{{ link.total|money(link.currency) }}`), in the
locale and timezone chosen for this request. A view that knows the viewer (the CRM user's
locale and timezone, else the organisation's) calls `use_locale`; otherwise pages format
in English and UTC. The rules themselves are in app/formatting.py."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import Flask, g, has_request_context

from app import formatting

_LOCALE = "paydeck_locale"
_ZONE = "paydeck_zone"


def use_locale(locale: str, tz: str | None) -> None:
    """Format this request's pages in `locale` and show times in `tz` (IANA name)."""
    setattr(g, _LOCALE, locale)
    setattr(g, _ZONE, tz)


def current_locale() -> str:
    return str(g.get(_LOCALE) or formatting.DEFAULT_LOCALE) if has_request_context() \
        else formatting.DEFAULT_LOCALE


def current_zone() -> str | None:
    return g.get(_ZONE) if has_request_context() else None


def _money(amount: Decimal | int | str | None, currency: str | None = None) -> str:
    return formatting.money(amount, currency, current_locale())


def _unit_money(amount: Decimal | int | str | None, currency: str | None = None) -> str:
    return formatting.unit_money(amount, currency, current_locale())


def _quantity(value: Decimal | int | str | None) -> str:
    return formatting.quantity(value, current_locale())


def _percent(value: Decimal | int | str | None) -> str:
    return formatting.percent(value, current_locale())


def _when(moment: datetime | None) -> str:
    return formatting.when(moment, current_zone(), current_locale())


def _day(value: date | None) -> str:
    return formatting.day(value, current_locale())


def register(app: Flask) -> None:
    app.jinja_env.filters.update(money=_money, unit_money=_unit_money, quantity=_quantity, percent=_percent, when=_when,
                                 day=_day)
