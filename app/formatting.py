"""Money, quantities and times as a finance tool shows them, one way on every page (Babel).

- Money: `money(Decimal("3036"), "AUD", "en_AU")` -> "AUD 3,036.00". The locale's own
  currency pattern (CLDR, through Babel) places the currency and the separators; the ISO
  code stands in for the symbol everywhere, because "$" alone is AUD, NZD, USD or CAD
  depending on who reads it. Decimals are the currency's own (ISO 4217 through CLDR: 2
  for AUD, 0 for JPY), so Xero's 2-decimal totals show exactly.
- The locale: the CRM user's where the CRM gives it, else the organisation's (its Xero
  country), else English (`locale_for`).
- Times: in the viewer's timezone with the zone shown ("3 Dec 2026, 1:05 am AEDT"); dates
  alone (an invoice date is a calendar date in the organisation's timezone) unshifted.

Floats are refused: an amount that went through a float may already be wrong.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.numbers import NumberPattern, format_currency, format_decimal, parse_pattern

DEFAULT_LOCALE = "en"
NO_VALUE = "\u2014"  # an em dash where there is nothing to show
_NBSP = "\u00a0"


def locale_for(crm_locale: str | None = None, country: str | None = None) -> str:
    """The locale to format for: the CRM user's ("en-US", "de_DE", "fr"), else English as
    spoken in the organisation's country (Xero's CountryCode, e.g. "AU" -> "en_AU"), else
    "en". Unknown or malformed values fall through to the next source."""
    for candidate in (crm_locale, f"en_{country}" if country else None):
        if candidate and (known := _known(candidate.strip().replace("-", "_"))):
            return known
    return DEFAULT_LOCALE


@lru_cache(maxsize=256)
def _known(identifier: str) -> str | None:
    if not identifier or len(identifier) > 20:
        return None
    try:
        return str(Locale.parse(identifier))
    except (ValueError, UnknownLocaleError):
        return None


@lru_cache(maxsize=64)
def _iso_pattern(locale: str) -> str:
    """The locale's currency pattern with the ISO code for the symbol, spaced from the
    digits by a no-break space where the symbol touched them ("¤#,##0.00" -> "¤¤ #,##0.00")."""
    pattern = Locale.parse(locale).currency_formats["standard"].pattern
    if "¤¤" in pattern:
        return pattern
    pattern = pattern.replace("¤", "¤¤")
    if pattern.startswith("¤¤") and not pattern[2:3].isspace():
        pattern = f"¤¤{_NBSP}{pattern[2:]}"
    elif pattern.endswith("¤¤") and not pattern[-3:-2].isspace():
        pattern = f"{pattern[:-2]}{_NBSP}¤¤"
    return pattern


def _decimal(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float):
        raise TypeError("money and quantities are Decimal, never float")
    return value if isinstance(value, Decimal) else Decimal(value)


def money(amount: Decimal | int | str | None, currency: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """`amount` in `currency` for `locale` (see the module notes); an em dash for none.
    Without a currency, the number alone with 2 decimals."""
    if amount is None:
        return NO_VALUE
    value = _decimal(amount)
    if not currency:
        return format_decimal(value, format="#,##0.00", locale=locale)
    return format_currency(value, currency.upper(), format=_parsed_iso_pattern(locale),
                           locale=_locale(locale), currency_digits=True)


@lru_cache(maxsize=64)
def _parsed_iso_pattern(locale: str) -> NumberPattern:
    """`_iso_pattern` parsed once (Babel parses a pattern string on every call otherwise:
    the card formats a few dozen amounts per request)."""
    return parse_pattern(_iso_pattern(locale))


@lru_cache(maxsize=64)
def _locale(locale: str) -> Locale:
    return Locale.parse(locale)


def unit_money(amount: Decimal | int | str | None, currency: str | None,
               locale: str = DEFAULT_LOCALE) -> str:
    """A unit price: like `money`, but keeping up to Xero's 4 unit decimals (`unitdp=4`), so
    0.0125 is not shown as 0.01 ("AUD 0.0125", "AUD 150.00")."""
    if amount is None:
        return NO_VALUE
    value = _decimal(amount)
    if not currency or value == value.quantize(Decimal("0.01")):
        return money(value, currency, locale)
    pattern = _iso_pattern(locale).replace("0.00", "0.00##")
    return format_currency(value, currency.upper(), format=pattern, locale=locale,
                           currency_digits=False)


def quantity(value: Decimal | int | str | None, locale: str = DEFAULT_LOCALE) -> str:
    """A line's quantity: as many decimals as it has, up to Xero's 4 ("1.5", "2", "0.3333")."""
    if value is None:
        return NO_VALUE
    return format_decimal(_decimal(value), format="#,##0.####", locale=locale)


def percent(value: Decimal | int | str | None, locale: str = DEFAULT_LOCALE) -> str:
    """A rate given in percent (Xero's DiscountRate 10 -> "10%", TaxRate 12.5 -> "12.5%")."""
    if value is None:
        return NO_VALUE
    return f"{format_decimal(_decimal(value), format='#,##0.####', locale=locale)}%"


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name` (a CRM user's or the organisation's), UTC if unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when(moment: datetime | None, tz: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """A moment in `tz` with the zone shown. A naive datetime is UTC (how Paydeck stores)."""
    if moment is None:
        return NO_VALUE
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    local = moment.astimezone(zone(tz))
    return (f"{format_date(local.date(), 'medium', locale=locale)}, "
            f"{format_time(local, 'short', tzinfo=local.tzinfo, locale=locale)} "
            f"{format_time(local, 'zzz', tzinfo=local.tzinfo, locale=locale)}")


def day(value: date | None, locale: str = DEFAULT_LOCALE) -> str:
    """A calendar date (invoice, due, payment date) as it is: no timezone shift."""
    if value is None:
        return NO_VALUE
    if isinstance(value, datetime):
        value = value.date()
    return format_date(value, "medium", locale=locale)
