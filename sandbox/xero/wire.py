"""Xero's wire formats: ``/Date(ms+0000)/`` dates, exact JSON numbers, GUIDs.

Wire formats follow real Xero, not the spec's ``format`` hints: dates are
``"/Date(1700000000000+0000)/"`` (what xero-python's ``date[ms-format]`` and
``datetime[ms-format]`` deserializers expect) and money is a JSON number written
from a `Decimal`, never from a float.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from werkzeug.wrappers import Response

from sandbox.kit.jsonio import exact_json_response

API_ROOT = "/api.xro/2.0"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
CENT = Decimal("0.01")
UNIT_4DP = Decimal("0.0001")
_MS_DATE = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)/$")


def ms_datetime(ms: int) -> str:
    """Xero's JSON timestamp: ``/Date(<ms since epoch>+0000)/``."""
    return f"/Date({ms}+0000)/"


def ms_date(value: date) -> str:
    """A calendar date as Xero sends it: UTC midnight in ``/Date()/`` form."""
    midnight = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return ms_datetime(int(midnight.timestamp()) * 1000)


def date_string(value: date) -> str:
    """The ``DateString``/``DueDateString`` companions Xero adds ("2024-01-31T00:00:00")."""
    return f"{value.isoformat()}T00:00:00"


def xero_utc(timestamp: float) -> str:
    """Xero's UTC timestamp style: 7 fractional digits, no offset ("...T18:46:19.5165400")."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def parse_xero_date(value: object) -> date:
    """A request date: ``/Date(ms[+hhmm])/`` (what xero-python sends) or ISO 8601.

    Raises ValueError for anything else.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    text = value.strip()
    match = _MS_DATE.match(text)
    if match is not None:
        return datetime.fromtimestamp(int(match["ms"]) / 1000, tz=UTC).date()
    return datetime.fromisoformat(text).date() if "T" in text else date.fromisoformat(text)


def parse_http_timestamp(value: str) -> int:
    """An ``If-Modified-Since`` value in ms since the epoch.

    xero-python sends ``datetime.isoformat()`` (naive means UTC, as Xero reads it);
    HTTP clients send RFC 7231 dates. Raises ValueError for anything else.
    """
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a timestamp: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def to_decimal(value: object) -> Decimal:
    """An exact number from JSON/helper input; floats are refused (money is Decimal)."""
    if isinstance(value, float):
        raise TypeError("floats are not accepted for money; pass Decimal, int or str")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def money(value: Decimal) -> Decimal:
    """Round to cents, half away from zero (as Xero rounds amounts)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def json_body(body: Any, status: int = 200) -> Response:
    return exact_json_response(body, status, content_type="application/json; charset=utf-8")


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
