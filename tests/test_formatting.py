"""Issue #14 point 5: amounts, quantities and times shown one way everywhere (Babel, CLDR).

Expected strings are worked out from CLDR's patterns, not from the code: en_AU's currency
pattern is "¤#,##0.00" (symbol before, comma groups, point decimal); de_DE's is
"#,##0.00 ¤" (point groups, comma decimal, symbol after a no-break space). ISO 4217 gives
AUD 2 minor digits and JPY 0. The ISO code replaces the symbol so "$" is never ambiguous."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from app.formatting import day, locale_for, money, percent, quantity, when

NBSP = "\u00a0"


@pytest.mark.parametrize(("amount", "currency", "locale", "shown"), [
    (Decimal("3036"), "AUD", "en_AU", f"AUD{NBSP}3,036.00"),
    (Decimal("1880.0000"), "AUD", "en_AU", f"AUD{NBSP}1,880.00"),  # Xero's 4-dp unit price
    (Decimal("2400.0"), "NZD", "en_NZ", f"NZD{NBSP}2,400.00"),
    (Decimal("1234567.5"), "EUR", "de_DE", f"1.234.567,50{NBSP}EUR"),
    (Decimal("-40.5"), "AUD", "en_AU", f"-AUD{NBSP}40.50"),
    (Decimal("1500"), "JPY", "en_AU", f"JPY{NBSP}1,500"),  # yen have no minor unit
])
def test_money_places_the_iso_code_and_decimals_as_the_locale_and_currency_say(amount, currency, locale, shown):
    assert money(amount, currency, locale) == shown


def test_money_without_a_value_or_currency():
    assert money(None, "AUD") == "\u2014"
    assert money(Decimal("2760"), None, "en_AU") == "2,760.00"


def test_a_float_is_refused():
    with pytest.raises(TypeError):
        money(3036.0, "AUD")  # type: ignore[arg-type]


def test_quantities_and_rates_keep_their_decimals_up_to_xeros_four():
    assert quantity(Decimal("2.0000"), "en_AU") == "2"
    assert quantity(Decimal("1.5"), "en_AU") == "1.5"
    assert quantity(Decimal("0.33333"), "en_AU") == "0.3333"
    assert quantity(Decimal("1.5"), "de_DE") == "1,5"
    assert percent(Decimal("12.5"), "en_AU") == "12.5%"


@pytest.mark.parametrize(("crm", "country", "chosen"), [
    ("en-US", "AU", "en_US"),   # the CRM user's locale first
    ("de_DE", None, "de_DE"),
    (None, "NZ", "en_NZ"),       # else English as in the organisation's country
    ("xx-not-a-locale", "GB", "en_GB"),
    ("", None, "en"),
])
def test_the_locale_is_the_crm_users_else_the_organisations(crm, country, chosen):
    assert locale_for(crm, country) == chosen


def test_times_show_in_the_viewers_zone_with_the_zone_named():
    moment = datetime(2026, 12, 2, 14, 5, tzinfo=timezone.utc)
    # Sydney is UTC+11 in December (AEDT): 14:05 UTC is 01:05 the next day. CLDR en_AU:
    # medium date "d MMM y", short time "h:mm a" with lower-case day periods.
    assert when(moment, "Australia/Sydney", "en_AU") == "3 Dec 2026, 1:05\u202fam AEDT"
    assert when(moment.replace(tzinfo=None), "Australia/Sydney", "en_AU") == "3 Dec 2026, 1:05\u202fam AEDT"
    assert when(moment, "Not/AZone", "en_AU").endswith("UTC")


def test_a_calendar_date_is_not_shifted():
    assert day(date(2026, 12, 31), "en_AU") == "31 Dec 2026"


def test_pages_format_in_the_locale_and_zone_the_view_chose(app):
    from flask import render_template_string

    from app.page_format import use_locale

    page = "{{ a|money('AUD') }} | {{ q|quantity }} | {{ t|when }} | {{ d|day }}"
    values = dict(a=Decimal("3036"), q=Decimal("1.5000"), d=date(2026, 12, 31),
                  t=datetime(2026, 12, 2, 14, 5, tzinfo=timezone.utc))
    with app.test_request_context("/"):
        assert render_template_string(page, **values) == (
            f"AUD{NBSP}3,036.00 | 1.5 | Dec 2, 2026, 2:05\u202fPM UTC | Dec 31, 2026")  # CLDR en
    with app.test_request_context("/"):
        use_locale("de_DE", "Europe/Berlin")
        assert render_template_string(page, **values) == (
            f"3.036,00{NBSP}AUD | 1,5 | 02.12.2026, 15:05 MEZ | 31.12.2026")
