"""Field values as the rules compare them, and their hashes.

A value is text, or for structured fields a tuple of (part, text) pairs (addresses, payment
terms) or a tuple of such tuples (contact persons), so that values are hashable and
comparable whatever side they came from. `comparable` folds what does not change the
meaning (surrounding and repeated spaces; case of emails and web addresses; separators in
tax numbers; everything but the digits of a phone number); `digest` hashes that, so the
link stores no customer data.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Union

Value = Union[str, tuple[Any, ...]]
EMPTY: Value = ""
ADDRESS_PARTS = ("lines", "city", "region", "postal_code", "country")


def _text(value: str) -> str:
    return " ".join(value.split())


def comparable(field: str, value: Value) -> Any:
    if isinstance(value, tuple):
        return [comparable(field, v) for v in value]
    text = _text(str(value))
    if field == "email":
        return text.casefold()
    if field == "website":
        host = text.casefold().split("://", 1)[-1]
        return host.removeprefix("www.").rstrip("/")
    if field == "tax_number":
        return re.sub(r"[^0-9A-Za-z]", "", text).upper()
    if field in ("phone", "mobile"):  # "+61 2 5550 1234", "61 (2) 5550-1234": one number
        return re.sub(r"\D", "", text)
    return text


def is_empty(value: Value | None) -> bool:
    if value is None:
        return True
    if isinstance(value, tuple):
        return all(is_empty(v) for v in value)
    return not str(value).strip()


def digest(field: str, value: Value | None) -> str:
    """A short stable hash of what the value means (empty values all hash alike)."""
    if is_empty(value):
        return "empty"
    assert value is not None
    canonical = json.dumps(comparable(field, value), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{field}\0{canonical}".encode()).hexdigest()[:20]


def same(field: str, a: Value | None, b: Value | None) -> bool:
    return digest(field, a) == digest(field, b)


def address(lines: str = "", city: str = "", region: str = "", postal_code: str = "",
            country: str = "") -> Value:
    """An address value; all parts empty is the empty value."""
    parts = (lines, city, region, postal_code, country)
    if all(not p.strip() for p in parts):
        return EMPTY
    return tuple((name, _text(p)) for name, p in zip(ADDRESS_PARTS, parts, strict=True))


def address_parts(value: Value) -> dict[str, str]:
    """An address value back as {part: text} (every part present; "" when empty)."""
    found = dict(value) if isinstance(value, tuple) else {}
    return {p: str(found.get(p, "")) for p in ADDRESS_PARTS}
