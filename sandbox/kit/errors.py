"""Error answers in each vendor's own shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from werkzeug.wrappers import Response

from sandbox.kit.jsonio import json_response


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

    def response(self, status: int, /, *, headers: Mapping[str, str] | None = None,
                 **fields: Any) -> Response:
        return json_response(dict(self.body(status, **fields)), status, headers, encode=self.encode)

    def error(self, status: int, /, **fields: Any) -> VendorError:
        return VendorError(self.response(status, **fields))

    def fail(self, status: int, /, **fields: Any) -> NoReturn:
        raise self.error(status, **fields)
