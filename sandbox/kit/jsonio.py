"""JSON in and out of the fakes, and the query parameters they parse. The readers raise
`Invalid`, naming the check that failed; each vendor words the message and shapes the error."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response


def dumps(value: Any) -> str:
    """JSON with `Decimal` written as an exact number ("110.00"), never via float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("the fakes never write floats (money is Decimal)")
    return json.dumps(value)


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None, *,
                  content_type: str = "application/json",
                  encode: Callable[[Any], str] = json.dumps) -> Response:
    return Response(encode(body), status=status, headers=dict(headers or {}), content_type=content_type)


exact_json_response = partial(json_response, encode=dumps)
"""`json_response` written with `dumps`: Decimal amounts go out exactly."""


class Invalid(ValueError):
    """Input a fake refuses. `problem` names the check: "json", "object", "bool", "int",
    "range"; `name`, `value` and `facts` fill the vendor's message template."""

    def __init__(self, problem: str, name: str = "", value: object = None, **facts: Any) -> None:
        super().__init__(f"{problem}: {name}={value!r}")
        self.problem = problem
        self.name = name
        self.value = value
        self.facts = facts

    def message(self, templates: Mapping[str, str]) -> str:
        """The vendor's wording: ``templates[problem]`` formatted with name, value, facts."""
        return templates[self.problem].format(name=self.name, value=self.value, **self.facts)


def read_json(request: Request, *, empty: Any = None, strip: bool = False) -> Any:
    """The body parsed with fractions as Decimal; `empty` if there is none (with `strip`,
    whitespace counts as none)."""
    raw = request.get_data(as_text=True)
    if not (raw.strip() if strip else raw):
        return empty
    try:
        return json.loads(raw, parse_float=Decimal)
    except ValueError as exc:
        raise Invalid("json", error=str(exc)) from None


def read_object(request: Request, *, empty: Any = None, strip: bool = False) -> dict[str, Any]:
    """`read_json` that must give a JSON object."""
    body = read_json(request, empty=empty, strip=strip)
    if not isinstance(body, dict):
        raise Invalid("object", value=body)
    return body


def query_list(args: MultiDict[str, str], name: str) -> list[str]:
    """A list parameter, repeated (``?a=1&a=2``) and/or comma-separated (``?a=1,2``)."""
    return [part.strip() for value in args.getlist(name) for part in value.split(",") if part.strip()]


def query_bool(args: Mapping[str, str], name: str, default: bool = False) -> bool:
    """``true`` or ``false``, the wire form of an OpenAPI boolean; anything else is Invalid."""
    value = args.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise Invalid("bool", name, value)
    return value == "true"


def query_int(args: Mapping[str, str], name: str, default: int | None = None, *,
              minimum: int | None = None, maximum: int | None = None) -> int | None:
    """A whole number within the bounds given, or `default` when absent."""
    text = args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise Invalid("int", name, text) from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise Invalid("range", name, value, minimum=minimum, maximum=maximum)
    return value
