"""The fakes' WSGI base: a route table on a thread-safe app."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from sandbox.kit.server import LoopbackServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Handler = Callable[..., Response]
"""A view: called as ``handler(request, **path_values)``."""

_PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


def compile_rule(rule: str, case_insensitive: bool) -> re.Pattern[str]:
    """Turn ``/connections/<id>`` into a regex; each ``<name>`` matches one path segment.
    With `case_insensitive` only the literal parts ignore case (ids keep their spelling)."""
    pattern, pos = "", 0
    for match in _PLACEHOLDER.finditer(rule):
        pattern += re.escape(rule[pos : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
        pos = match.end()
    pattern += re.escape(rule[pos:])
    return re.compile(f"^{pattern}$", re.IGNORECASE if case_insensitive else 0)


class FakeService:
    """Base of the fake vendor apps: a thread-safe WSGI app whose endpoints are registered
    with `route()` (also by modules adding an API later, guarding shared state with `lock`).
    The first rule whose path and method match wins."""

    case_insensitive_paths = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._routes: list[tuple[re.Pattern[str], frozenset[str], Handler]] = []

    def route(self, rule: str, handler: Handler, methods: Iterable[str] = ("GET",)) -> None:
        pattern = compile_rule(rule, self.case_insensitive_paths)
        self._routes.append((pattern, frozenset(m.upper() for m in methods), handler))

    def serve(self) -> LoopbackServer:
        """Start this app on a loopback port; stop the returned server when done."""
        return LoopbackServer(self).start()

    def dispatch(self, request: Request) -> Response:
        allowed: set[str] = set()
        for pattern, methods, handler in self._routes:
            match = pattern.match(request.path)
            if match is not None and request.method in methods:
                return handler(request, **match.groupdict())
            if match is not None:
                allowed |= methods
        if allowed:
            raise MethodNotAllowed(valid_methods=sorted(allowed))
        raise NotFound()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self.dispatch(Request(environ))
        except HTTPException as exc:
            return exc(environ, start_response)
        return response(environ, start_response)
