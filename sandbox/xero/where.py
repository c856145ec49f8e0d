"""Xero's ``where`` and ``order`` query parameters (the subset Paydeck uses), and the
listings that apply them with ``If-Modified-Since``.

``where`` is recursive descent over ``or := and (OR and)*; and := term (AND term)*``,
``term := "(" or ")" | Field ("=="|"!=") value``, with string comparison exact
(case-sensitive) as in Xero, guids compared as guids.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from sandbox.kit.errors import VendorError
from sandbox.xero.wire import is_guid, parse_http_timestamp, post_data_invalid

FieldKind = Literal["string", "guid"]
Predicate = Callable[[Mapping[str, str | None]], bool]
"""Tests a record's where-able fields (lower-cased Xero name -> value)."""
SortKey = Callable[[Any], Any]
Token = tuple[str, str, int]
"""(kind, text, position); kinds: string, op, word, AND, OR, end."""

_WHERE_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|&&|\|\||\(|\))'
                          r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)|(?P<bad>\S))")
_SUPPORTED_WHERE = (
    'supported: Field=="text", Field!="text", Field==guid("..."), Field==null, '
    "joined by AND/OR (or &&/||) with parentheses"
)
_JOINERS = {"AND": "AND", "&&": "AND", "OR": "OR", "||": "OR"}
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class QueryError(ValueError):
    """A ``where``/``order`` expression Xero (and this fake) cannot parse."""


def _tokenize(text: str) -> list[Token]:
    text = text.rstrip()
    tokens: list[Token] = []
    for match in _WHERE_TOKEN.finditer(text):
        kind = match.lastgroup or "bad"
        value, start = match.group(kind), match.start(kind)
        if kind == "bad":
            raise QueryError(f"Syntax error: unexpected '{value}' at position {start}")
        if kind in ("word", "op") and value.upper() in _JOINERS:
            kind = _JOINERS[value.upper()]
        tokens.append((kind, value, start))
    return [*tokens, ("end", "", len(text))]


class _WhereParser:
    def __init__(self, text: str, fields: Mapping[str, FieldKind], type_name: str) -> None:
        self._tokens = _tokenize(text)
        self._pos = 0
        self._fields = fields
        self._type_name = type_name

    def parse(self) -> Predicate:
        predicate = self._joined("OR")
        if self._peek()[0] != "end":
            raise self._error("')' or operator expected")
        return predicate

    def _peek(self) -> Token:
        return self._tokens[self._pos]

    def _take(self, kind: str, text: str | None = None) -> bool:
        """Step over the next token if it is `kind` (and `text`)."""
        token_kind, token_text, _ = self._peek()
        if token_kind != kind or text not in (None, token_text):
            return False
        self._pos += 1
        return True

    def _expect(self, text: str) -> None:
        if not self._take("op", text):
            raise self._error(f"'{text}' expected")

    def _error(self, what: str) -> QueryError:
        _, text, pos = self._peek()
        near = f"'{text}'" if text else "end of expression"
        return QueryError(f"{what} (near {near} at position {pos}; {_SUPPORTED_WHERE})")

    def _joined(self, joiner: str) -> Predicate:
        """``OR`` of ``AND``s of terms: AND binds tighter."""
        part = self._term if joiner == "AND" else lambda: self._joined("AND")
        parts = [part()]
        while self._take(joiner):
            parts.append(part())
        combine = all if joiner == "AND" else any
        return parts[0] if len(parts) == 1 else lambda values: combine(p(values) for p in parts)

    def _term(self) -> Predicate:
        if self._take("op", "("):
            inner = self._joined("OR")
            self._expect(")")
            return inner
        name = self._peek()[1]
        if not self._take("word"):
            raise self._error("Field name expected")
        field_kind = self._fields.get(name.lower())
        if field_kind is None:
            raise QueryError(f"No property or field '{name}' exists in type '{self._type_name}'")
        op = self._peek()[1]
        if not (self._take("op", "==") or self._take("op", "!=")):
            raise self._error("'==' or '!=' expected")
        expected, key, wanted = self._value(field_kind, op), name.lower(), op == "=="
        return lambda values: (_normalise(values.get(key), field_kind) == expected) == wanted

    def _value(self, kind: FieldKind, op: str) -> str | None:
        token_kind, text, _ = self._peek()
        word = text.lower() if token_kind == "word" else None
        if token_kind != "string" and word not in ("null", "guid"):
            raise self._error("Literal expected")
        self._pos += 1
        if word == "null":
            return None
        if word == "guid":
            return self._guid_literal(kind, op)
        if kind == "guid":
            raise _incompatible(op, "Guid", "String")
        return _unquote(text)

    def _guid_literal(self, kind: FieldKind, op: str) -> str:
        self._expect("(")
        token_kind, text, _ = self._peek()
        if token_kind != "string" or not is_guid(_unquote(text)):
            raise self._error('guid("...") needs a quoted GUID')
        self._pos += 1
        self._expect(")")
        if kind != "guid":
            raise _incompatible(op, "String", "Guid")
        return str(uuid.UUID(_unquote(text)))


def _incompatible(op: str, left: str, right: str) -> QueryError:
    return QueryError(f"Operator '{op}' incompatible with operand types '{left}' and '{right}'")


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _normalise(value: str | None, kind: FieldKind) -> str | None:
    if value is None or kind == "string":
        return value
    return str(uuid.UUID(value)) if is_guid(value) else value


def parse_where(text: str, fields: Mapping[str, FieldKind], type_name: str) -> Predicate:
    """Compile a Xero ``where`` expression over `fields` (lower-cased names)."""
    if not text.strip():
        return lambda values: True
    return _WhereParser(text, fields, type_name).parse()


def parse_order(text: str, keys: Mapping[str, SortKey],
                type_name: str) -> list[tuple[SortKey, bool]]:
    """``"UpdatedDateUTC ASC, Name DESC"`` -> [(key, descending), ...]."""
    order: list[tuple[SortKey, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        direction = words[1].upper() if len(words) > 1 else "ASC"
        if len(words) > 2 or direction not in ("ASC", "DESC"):
            raise QueryError(f"Invalid order clause '{part.strip()}'")
        key = keys.get(words[0].lower())
        if key is None:
            raise QueryError(f"No property or field '{words[0]}' exists in type '{type_name}'")
        order.append((key, direction == "DESC"))
    return order


def sort_records(records: list[Any], order: Sequence[tuple[SortKey, bool]]) -> list[Any]:
    """Stable multi-key sort; missing values sort first (ascending)."""
    result = list(records)
    for key, descending in reversed(order):
        result.sort(key=lambda r, key=key: (key(r) is not None, key(r)), reverse=descending)
    return result


def _getters(names: str, special: Mapping[str, SortKey]) -> dict[str, SortKey]:
    """``"Code Class=account_class"`` -> {"code": <.code>, "class": <.account_class>}: each
    Xero name read from its snake_case attribute unless named after ``=`` (or in `special`)."""
    fields: dict[str, SortKey] = {}
    for name in names.split():
        xero, _, attr = name.partition("=")
        fields[xero.lower()] = special.get(xero) or attrgetter(attr or _SNAKE.sub("_", xero).lower())
    return fields


@dataclass(frozen=True)
class Listing:
    """How one resource is filtered (``where``, ``If-Modified-Since``) and ordered. `where` and
    `order` name the Xero fields (see `_getters`); a field named ...ID is a GUID, as all of
    Xero's ids are. `dated`: the records have ``updated_ms``, which If-Modified-Since compares."""

    type_name: str
    where: str
    order: str
    special: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    dated: bool = True

    def select(self, records: Iterable[Any], where: str, order: str,
               modified_since: str | None) -> list[Any]:
        getters = _getters(self.where, self.special)
        kinds: dict[str, FieldKind] = {n: "guid" if n.endswith("id") else "string" for n in getters}
        predicate = parse_where(where, kinds, self.type_name)
        sort = parse_order(order, _getters(self.order, self.special), self.type_name)
        since = _since(modified_since)
        selected = [r for r in records
                    if predicate({name: get(r) for name, get in getters.items()})
                    and (since is None or not self.dated or r.updated_ms > since)]
        return sort_records(selected, sort)


def _since(header: str | None) -> int | None:
    if not header:
        return None
    try:
        return parse_http_timestamp(header)
    except ValueError:
        message = f"If-Modified-Since '{header}' is not a valid date"
        raise VendorError(post_data_invalid(message)) from None
