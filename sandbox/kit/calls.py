"""The call log: every API call a fake answered, for assertions and benchmarks."""

from __future__ import annotations

import json
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sandbox.kit.faults import Fault, PathMatch, prefix_match


@dataclass(frozen=True)
class Call:
    """One API call as the fake saw it.

    The log is in completion order; `time` is when the call arrived (fake clock). `scope`
    is the portal, company or tenant it ran in (None: refused before one was known);
    `limited` is why the fake's own limits refused it (the vendor's word). A vendor may
    subclass it to log more fields.
    """

    method: str
    path: str
    query: str
    scope: Hashable | None
    status: int
    time: float
    body: bytes = b""
    fault: str | None = None
    limited: str | None = None
    response_body: bytes = b""

    def json(self) -> Any:
        """The request body, decoded."""
        return json.loads(self.body) if self.body else None

    def response_json(self) -> Any:
        return json.loads(self.response_body) if self.response_body else None


CallT = TypeVar("CallT", bound=Call)


class CallLog(Generic[CallT]):
    """Calls in completion order; every method takes the fake's lock."""

    def __init__(self, lock: threading.RLock, *, path_match: PathMatch = prefix_match) -> None:
        self._lock = lock
        self.path_match = path_match
        self._calls: list[CallT] = []

    def append(self, call: CallT) -> None:
        with self._lock:
            self._calls.append(call)

    @property
    def calls(self) -> list[CallT]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def count(self, method: str | None = None, path_prefix: str | None = None,
              status: int | None = None, scope: Hashable | None = None) -> int:
        """Calls matching every filter given (the method, path and scope as a fault's would)."""
        probe = Fault("count", method, path_prefix, scope, remaining=None)
        return sum(1 for c in self.calls if probe.matches(c.method, c.path, c.scope, self.path_match)
                   and (status is None or c.status == status))
