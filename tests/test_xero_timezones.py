"""Organisation.Timezone (Windows-style) -> IANA, from CLDR's windowsZones.xml."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from xero.timezones import WINDOWS_TO_IANA, iana_zone, local_date, xero_key

SPEC = Path(__file__).parent / "specs" / "xero" / "xero_accounting.yaml"


def _spec_timezones() -> list[str]:
    spec = yaml.safe_load(SPEC.read_text())
    return spec["components"]["schemas"]["TimeZone"]["enum"]


def test_every_name_xeros_spec_lists_maps_except_the_two_cldr_dropped():
    names = _spec_timezones()
    unknown = [n for n in names if iana_zone(n) is None]
    # "Kamchatka Standard Time" and "Mid-Atlantic Standard Time" are not in CLDR's table:
    # they stay unknown (a review item), never a guess.
    assert unknown == ["KAMCHATKASTANDARDTIME", "MIDATLANTICSTANDARDTIME"]
    assert {xero_key(k) for k in WINDOWS_TO_IANA} <= set(names)  # no name Xero never sends


@pytest.mark.parametrize(("xero_name", "moment", "expected"), [
    # 14:30Z + 10 h (AEST, no DST in June) = 00:30 on 1 July in Sydney.
    ("AUSEASTERNSTANDARDTIME", datetime(2026, 6, 30, 14, 30, tzinfo=timezone.utc), date(2026, 7, 1)),
    # January is AEDT (UTC+11): 13:30Z = 00:30 next day; 12:30Z = 23:30 the same day.
    ("AUSEASTERNSTANDARDTIME", datetime(2026, 1, 31, 13, 30, tzinfo=timezone.utc), date(2026, 2, 1)),
    ("AUSEASTERNSTANDARDTIME", datetime(2026, 1, 31, 12, 30, tzinfo=timezone.utc), date(2026, 1, 31)),
    # Brisbane keeps UTC+10 all year: 13:30Z in January = 23:30, still 31 January.
    ("EAUSTRALIASTANDARDTIME", datetime(2026, 1, 31, 13, 30, tzinfo=timezone.utc), date(2026, 1, 31)),
    # NZST (UTC+12) on 30 June: 12:30Z = 00:30 on 1 July in Auckland.
    ("NEWZEALANDSTANDARDTIME", datetime(2026, 6, 30, 12, 30, tzinfo=timezone.utc), date(2026, 7, 1)),
    # London in BST (UTC+1) on 31 March: 23:30Z = 00:30 on 1 April, the UK tax year's eve.
    ("GMTSTANDARDTIME", datetime(2026, 3, 31, 23, 30, tzinfo=timezone.utc), date(2026, 4, 1)),
    # Los Angeles PST (UTC-8) on 1 January: 05:00Z = 21:00 on 31 December.
    ("PACIFICSTANDARDTIME", datetime(2027, 1, 1, 5, 0, tzinfo=timezone.utc), date(2026, 12, 31)),
    # The spec spells "UTC-02" as UTC02 and keeps "+": UTC+12 = Etc/GMT-12.
    ("UTC02", datetime(2026, 7, 1, 1, 0, tzinfo=timezone.utc), date(2026, 6, 30)),
    ("UTC+12", datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc), date(2026, 7, 1)),
])
def test_local_dates_worked_by_hand(xero_name, moment, expected):
    zone = iana_zone(xero_name)
    assert zone is not None
    assert local_date(moment, zone) == expected


def test_unknown_and_empty_names_are_unknown_and_naive_moments_refused():
    assert iana_zone("") is None and iana_zone("ATLANTISSTANDARDTIME") is None
    with pytest.raises(ValueError):
        local_date(datetime(2026, 6, 30, 14, 30), iana_zone("UTC"))  # type: ignore[arg-type]
