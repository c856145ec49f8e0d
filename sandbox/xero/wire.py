"""Xero's wire formats: ``/Date(ms+0000)/`` dates, exact JSON numbers, GUIDs; and its error
responses, in the shapes the real API answers with.

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

from sandbox.kit.jsonio import Invalid, exact_json_response, json_response

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


# ----- error responses ------------------------------------------------------------------

_INVALID = {
    "bool": "'{value}' is not a valid value for {name}: the API documents true or false",
    "int": "'{value}' is not a valid value for {name}",
    "json": "The request body is not valid JSON: {error}",
}


def _exception(number: int, kind: str, message: str, **extra: Any) -> Response:
    """Xero's 400 ``{"ErrorNumber", "Type", "Message", ...}`` document."""
    return json_body({"ErrorNumber": number, "Type": kind, "Message": message, **extra}, 400)


def validation_exception(elements: list[dict[str, Any]], message: str | None = None) -> Response:
    """Xero's 400 for a batch with a bad element (platform-facts: Batches)."""
    message = message or "A validation exception occurred"
    return _exception(10, "ValidationException", message, Elements=elements)


def refused_invoice(invoice_id: str, message: str) -> Response:
    """A ValidationException naming one invoice (online link, email)."""
    element = {"InvoiceID": invoice_id, "ValidationErrors": [{"Message": message}]}
    return validation_exception([element], message)


def query_parse_exception(message: str) -> Response:
    """Xero answers an unparsable ``where``/``order`` with ErrorNumber 16."""
    return _exception(16, "QueryParseException", message)


def post_data_invalid(message: str) -> Response:
    """Xero's 400 for a body it cannot read (ErrorNumber 14)."""
    return _exception(14, "PostDataInvalidException", message)


def invalid(err: Invalid) -> Response:
    """A query parameter or body the kit's readers refused."""
    return post_data_invalid(err.message(_INVALID))


def not_found() -> Response:
    """Xero's 404 is plain text, not JSON (XeroAPI/Xero-OpenAPI#163, "wontfix")."""
    return Response(
        "The resource you're looking for cannot be found",
        status=404,
        content_type="text/plain; charset=utf-8",
    )


def problem(status: int, title: str, detail: str) -> Response:
    """An Accounting API problem document (5xx, 429)."""
    return json_body({"Type": None, "Title": title, "Status": status, "Detail": detail}, status)


def identity_problem(status: int, title: str, detail: str,
                     headers: dict[str, str] | None = None) -> Response:
    """Xero's identity and auth errors are RFC 7807-style problem documents."""
    body = {"Type": None, "Title": title, "Status": status, "Detail": detail,
            "Instance": str(uuid.uuid4()), "Extensions": {}}
    return json_response(body, status, headers)


def too_many_requests(kind: str, retry_after: int | None, remaining: dict[str, str]) -> Response:
    """Xero's 429 (platform-facts: Limits): the problem header, Retry-After for windows."""
    response = problem(429, "Too Many Requests", f"Rate limit exceeded: {kind}")
    response.headers.update(remaining)
    response.headers["X-Rate-Limit-Problem"] = kind
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
