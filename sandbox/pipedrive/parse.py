"""Pipedrive's wire: its answers (success envelopes, the error shape) and reading requests:
JSON and form bodies, typed values, ids, cursor pages, sorting."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.kit.errors import ErrorShape, VendorError
from sandbox.kit.jsonio import dumps, exact_json_response, query_list, read_object
from sandbox.pipedrive.records import DealField

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
# What the kit's JSON readers refuse, in this fake's words.
INVALID = {"json": "Request body is not valid JSON: {error}",
           "object": "Request body must be a JSON object"}


def _error_body(status: int, *, message: str, code: str, **extra: Any) -> dict[str, Any]:
    """Unverified: the `code` strings. The shape (`success: false`, `error`, `error_info`)
    follows the v1/v2 errors we have seen; `extra` adds fields, e.g. the `errors` object
    of the webhooks endpoints' 400 (pipedrive/client-nodejs
    src/versions/v1/models/webhooks-bad-request-response.ts)."""
    return {"success": False, "error": message, "code": code, "errorCode": status,
            "error_info": ERROR_INFO, "data": None, "additional_data": None, **extra}


SHAPE = ErrorShape(_error_body, encode=dumps)


def ok(data: Any, additional: dict[str, Any] | None = None, status: int = 200) -> Response:
    """The v2 envelope ``{"success", "data", "additional_data"}`` (v1: no additional_data)."""
    extra = {} if additional is None else {"additional_data": additional}
    return exact_json_response({"success": True, "data": data, **extra}, status)


def webhook_ok(data: Any, status: int = 200) -> Response:
    """The v1 webhooks endpoints' envelope, which adds ``"status": "ok"``."""
    return exact_json_response({"status": "ok", "success": True, "data": data}, status)


def bad_request(message: str, **extra: Any) -> VendorError:
    return SHAPE.error(400, message=message, code="ERR_SCHEMA_VALIDATION_FAILED", **extra)


def not_found(what: str) -> VendorError:
    return SHAPE.error(404, message=f"{what} not found", code="ERR_NOT_FOUND")


def too_many_requests(daily: bool, headers: Mapping[str, str], retry: int) -> Response:
    """The 429 of the burst limit or of the daily token budget, with Retry-After."""
    what = "Daily token budget exhausted" if daily else "Request over limit"
    response = SHAPE.response(429, headers=headers, message=what, code="ERR_RATE_LIMIT_EXCEEDED")
    response.headers["Retry-After"] = str(retry)
    return response


DEFAULT_PAGE_LIMIT = 100  # v2 docs: "If not provided, 100 items will be returned"
MAX_PAGE_LIMIT = 500  # v2 docs: "a maximum value of 500 is allowed"
MAX_IDS = 100  # v2 GET /deals `ids` and GET /deals/products `deal_ids`: up to 100
MAX_CUSTOM_FIELD_KEYS = 15  # v2 GET /deals `custom_fields`: "A maximum of 15 keys"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
_TEXT_TYPES = frozenset({"varchar", "varchar_auto", "text", "phone", "address", "time"})


def to_decimal(value: object, name: str = "value") -> Decimal:
    """An exact number from a helper argument; floats are refused (money is Decimal)."""
    if isinstance(value, float):
        raise TypeError(f"{name}: floats are not accepted; pass Decimal, int or str")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"{name}: not a number: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{name}: not a number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"{name}: not a finite number: {value!r}")
    return number


def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body (numbers with fractions as Decimal); {} if empty."""
    return read_object(request, empty={}, strip=True)


def read_v1_body(request: Request) -> dict[str, Any]:
    """v1 endpoints take JSON or a form; both end up as one dict."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.to_dict()
    return read_body(request)


def path_id(value: str, what: str) -> int:
    if not value.isdigit():
        raise bad_request(f"{what} must be a positive integer")
    return int(value)


def expect_int(value: Any, name: str, *, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer")
    return value


def optional_int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit():  # v1 form bodies carry strings
        return int(value)
    return expect_int(value, name)


def expect_number(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise bad_request(f"{name} must be a number")
    return Decimal(value)


def expect_text(value: Any, name: str, *, nullable: bool = False, max_len: int = 255) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    if len(value) > max_len:
        raise bad_request(f"{name} must be at most {max_len} characters")
    return value


def expect_name(value: Any, name: str) -> str:
    """A text that must not be empty (a title, a name, a subject)."""
    text = expect_text(value, name)
    if not text:
        raise bad_request(f"{name} must not be empty")
    return text


def expect_currency(value: Any, name: str) -> str:
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise bad_request(f"{name} must be a 3-letter currency code")
    return value


def expect_won_time(value: Any, name: str) -> float:
    """A deal's won_time as a user may backdate it: UTC, "YYYY-MM-DD HH:MM:SS" (v1,
    pipedrive/client-nodejs docs/BasicDeal.md) or RFC 3339 "...Z" as v2 renders it."""
    text = value if isinstance(value, str) else ""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise bad_request(f"{name} must be a UTC time YYYY-MM-DD HH:MM:SS")


def expect_date(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not DATE.match(value):
        raise bad_request(f"{name} must be a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} must be a valid date") from None
    return value


def parse_rfc3339(value: str, name: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an RFC 3339 time, e.g. 2025-01-01T10:20:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def query_ints(request: Request, name: str) -> list[int]:
    """A comma list and/or repeated parameter of ids (``?ids=1,2`` or ``?ids=1&ids=2``)."""
    parts = query_list(request.args, name)
    if not all(p.isdigit() for p in parts):
        raise bad_request(f"{name} must be a comma separated list of integers")
    if len(parts) > MAX_IDS:
        raise bad_request(f"{name} accepts at most {MAX_IDS} ids")
    return [int(p) for p in parts]


def query_int(request: Request, name: str) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise bad_request(f"{name} must be an integer")
    return int(value)


def custom_field_filter(request: Request) -> set[str] | None:
    """GET /deals `custom_fields`: the keys to return (None: all of them)."""
    raw = request.args.get("custom_fields")
    if raw is None:
        return None
    keys = {k.strip() for k in raw.split(",") if k.strip()}
    if len(keys) > MAX_CUSTOM_FIELD_KEYS:
        raise bad_request(f"custom_fields accepts at most {MAX_CUSTOM_FIELD_KEYS} keys")
    return keys


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise bad_request("cursor is not valid") from None
    prefix, _, number = text.partition(":")
    if prefix != "offset" or not number.isdigit():
        raise bad_request("cursor is not valid")
    return int(number)


def page(request: Request, items: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
    """One page by ``limit``/``cursor`` and v2's ``additional_data``."""
    limit = query_int(request, "limit") or DEFAULT_PAGE_LIMIT
    if limit > MAX_PAGE_LIMIT:
        raise bad_request(f"limit must be at most {MAX_PAGE_LIMIT}")
    start = decode_cursor(request.args.get("cursor"))
    end = start + limit
    cursor = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode().rstrip("=")
    return list(items[start:end]), {"next_cursor": cursor if end < len(items) else None}


SORT_KEYS: dict[str, Callable[[Any], Any]] = {
    "id": lambda item: item.id,
    "update_time": lambda item: (item.update_time, item.id),
    "add_time": lambda item: (item.add_time, item.id),
}
LINE_SORT_KEYS = {key: SORT_KEYS[key] for key in ("id", "add_time", "update_time")}


def sort_items(
    request: Request, items: list[Any], keys: Mapping[str, Callable[[Any], Any]] = SORT_KEYS
) -> None:
    sort_by = request.args.get("sort_by", "id")
    direction = request.args.get("sort_direction", "asc")
    if sort_by not in keys:
        raise bad_request(f"sort_by must be one of {', '.join(keys)}")
    if direction not in ("asc", "desc"):
        raise bad_request("sort_direction must be asc or desc")
    items.sort(key=keys[sort_by], reverse=direction == "desc")


def custom_value(deal_field: DealField, value: Any) -> Any:
    """Validate one custom-field value the way v2 types it; None clears the field."""
    if value is None:
        return None
    kind, name = deal_field.field_type, f"custom field {deal_field.field_code}"
    if kind in _TEXT_TYPES:
        return expect_text(value, name, max_len=65_535 if kind == "text" else 255)
    if kind in ("enum", "set"):
        return _options_value(deal_field, value, name)
    readers: dict[str, Callable[[Any, str], Any]] = {
        "double": expect_number, "monetary": _monetary, "date": expect_date,
        "user": expect_int, "org": expect_int, "people": expect_int,
    }
    return readers[kind](value, name) if kind in readers else copy.deepcopy(value)


def custom_values(fields: Mapping[str, DealField], value: Any) -> dict[str, Any]:
    """A `custom_fields` object of a PATCH: every code must name one of `fields`."""
    if not isinstance(value, dict):
        raise bad_request("custom_fields must be an object of field code -> value")
    parsed: dict[str, Any] = {}
    for code, item in value.items():
        known = fields.get(code)
        if known is None or not known.is_custom_field:
            raise bad_request(f"Unknown custom field: {code}")
        parsed[code] = custom_value(known, item)
    return parsed


def _monetary(value: Any, name: str) -> dict[str, Any]:
    """v2 monetary custom fields are ``{"value": number, "currency": "AUD"}``."""
    if not isinstance(value, dict) or set(value) - {"value", "currency"}:
        raise bad_request(f"{name} must be an object {{value, currency}}")
    currency = value.get("currency")
    if currency is not None:
        expect_currency(currency, f"{name}.currency")
    return {"value": expect_number(value.get("value"), f"{name}.value"), "currency": currency}


def _options_value(deal_field: DealField, value: Any, name: str) -> Any:
    allowed = {o["id"] for o in deal_field.options or []}
    chosen = value if deal_field.field_type == "set" else [value]
    if not isinstance(chosen, list):
        raise bad_request(f"{name} must be a list of option ids")
    for option in chosen:
        if expect_int(option, name) not in allowed:
            raise bad_request(f"{name}: {option} is not one of its option ids")
    return list(chosen) if deal_field.field_type == "set" else value


def refuse_unknown(body: Mapping[str, Any], known: frozenset[str], hint: str = "") -> None:
    unknown = set(body) - known
    if unknown:
        raise bad_request(f"Unknown field(s): {', '.join(sorted(unknown))}{hint}")


def read_fields(body: Mapping[str, Any], known: frozenset[str], unmodelled: frozenset[str],
                readers: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """A v2 create or PATCH body, field by field: a documented field the sandbox does not model
    is refused by name, an unknown one as Pipedrive refuses it, each value checked by its
    reader."""
    skipped = set(body) & unmodelled
    if skipped:
        raise bad_request(f"sandbox: {', '.join(sorted(skipped))} not modelled")
    refuse_unknown(body, known | unmodelled)
    return {key: read(body[key]) for key, read in readers.items() if key in body}
