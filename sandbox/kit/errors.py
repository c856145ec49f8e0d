"""Error answers in each vendor's own shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from werkzeug.wrappers import Response


class VendorError(Exception):
    """Abort the current API call with `response`, the vendor's error document."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class ErrorShape:
    """How one vendor writes an error: ``body(status, **fields)`` builds the document."""

    body: Callable[..., Mapping[str, Any]]
    encode: Callable[[Any], str] = json.dumps
    content_type: str = "application/json"

    def response(self, status: int, /, *, headers: Mapping[str, str] | None = None,
                 **fields: Any) -> Response:
        document = self.encode(dict(self.body(status, **fields)))
        return Response(document, status=status, headers=dict(headers or {}),
                        content_type=self.content_type)

    def error(self, status: int, /, **fields: Any) -> VendorError:
        return VendorError(self.response(status, **fields))

    def fail(self, status: int, /, **fields: Any) -> NoReturn:
        raise self.error(status, **fields)
