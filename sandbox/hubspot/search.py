"""CRM search (``POST /crm/v3/objects/{type}/search``): filter groups, text query, sorts."""

from __future__ import annotations

import operator as op
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sandbox.hubspot.errors import fail
from sandbox.hubspot.schema import (
    JsonObject, ObjectType, PropertyDef, id_key, parse_timestamp_ms, to_decimal,
)
from sandbox.hubspot.state import CrmObject

_SEARCH_OPERATORS = (
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
    "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
)
_MAX_FILTER_GROUPS = 5
_MAX_FILTERS = 18
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": op.eq, "NEQ": op.ne, "LT": op.lt, "LTE": op.le, "GT": op.gt, "GTE": op.ge}


def _comparable(defn: PropertyDef | None, value: str) -> Decimal | str:
    """A value in the property's own order: numbers and timestamps numerically."""
    if defn is not None and defn.type == "number":
        number = to_decimal(value)
        if number is not None:
            return number
    if defn is not None and defn.type in ("datetime", "date"):
        try:
            return Decimal(parse_timestamp_ms(value))
        except ValueError:
            return value.lower()
    return value.lower()


def _filter_matches(obj: CrmObject, flt: JsonObject, defs: Mapping[str, PropertyDef]) -> bool:
    name = str(flt.get("propertyName", ""))
    operator = str(flt.get("operator", "EQ"))
    actual = obj.properties.get(name)
    if operator == "HAS_PROPERTY":
        return actual is not None
    if operator == "NOT_HAS_PROPERTY":
        return actual is None
    if operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN") and actual is None:
        return True
    if actual is None:
        return False
    defn = defs.get(name)
    have = _comparable(defn, actual)
    if operator in ("IN", "NOT_IN"):
        wanted = {_comparable(defn, str(v)) for v in flt.get("values") or []}
        return (have in wanted) == (operator == "IN")
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(flt.get("value", "")).lower().strip("*")
        return (token in actual.lower()) == (operator == "CONTAINS_TOKEN")
    want = _comparable(defn, str(flt.get("value", "")))
    if type(want) is not type(have):
        return operator == "NEQ"
    if operator == "BETWEEN":
        high = _comparable(defn, str(flt.get("highValue", "")))
        return type(high) is type(have) and want <= have <= high  # type: ignore[operator]
    return _COMPARE[operator](have, want)


def search_records(records: Sequence[CrmObject], defs: Mapping[str, PropertyDef],
                   filter_groups: object, query: object, otype: ObjectType) -> list[CrmObject]:
    """Records matching any filter group (all filters of a group) and the text query."""
    groups = _checked_filter_groups(filter_groups)
    matched = [o for o in records if not groups
               or any(all(_filter_matches(o, f, defs) for f in g["filters"]) for g in groups)]
    if isinstance(query, str) and query.strip():
        needle = query.strip().lower()
        matched = [o for o in matched
                   if any(needle in (o.properties.get(n) or "").lower() for n in otype.defaults)]
    return matched


def _checked_filter_groups(raw: object) -> list[JsonObject]:
    if not isinstance(raw, list) or not all(
            isinstance(g, dict) and isinstance(g.get("filters"), list) for g in raw):
        fail(400, "VALIDATION_ERROR", "filterGroups must be an array of {filters: [...]}")
    total = sum(len(g["filters"]) for g in raw)
    if len(raw) > _MAX_FILTER_GROUPS or total > _MAX_FILTERS:
        fail(400, "VALIDATION_ERROR",
             f"at most {_MAX_FILTER_GROUPS} filter groups and {_MAX_FILTERS} filters")
    for group in raw:
        for flt in group["filters"]:
            if not isinstance(flt, dict) or flt.get("operator") not in _SEARCH_OPERATORS:
                fail(400, "VALIDATION_ERROR", f"invalid filter {flt!r}")
    return raw


def sort_records(records: list[CrmObject], sorts: object,
                 defs: Mapping[str, PropertyDef]) -> list[CrmObject]:
    """Sort by `sorts` ({propertyName, direction} or "-name"); default by id."""
    ordered = sorted(records, key=lambda o: id_key(o.id))
    if not isinstance(sorts, list):
        return ordered
    for spec in reversed(sorts):
        if isinstance(spec, str):
            name, descending = spec.lstrip("-"), spec.startswith("-")
        elif isinstance(spec, dict):
            name = str(spec.get("propertyName", ""))
            descending = spec.get("direction") == "DESCENDING"
        else:
            continue
        ordered.sort(key=_sort_key(name, defs), reverse=descending)
    return ordered


def _sort_key(name: str, defs: Mapping[str, PropertyDef]) -> Callable[[CrmObject], Any]:
    def key(obj: CrmObject) -> tuple[int, Any]:
        value = obj.properties.get(name)
        if value is None:
            return (1, "")
        comparable = _comparable(defs.get(name), value)
        return (0, comparable) if isinstance(comparable, Decimal) else (0, str(comparable))

    return key
