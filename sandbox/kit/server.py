"""Run a WSGI app on an ephemeral loopback port in a background thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# serve_forever() checks for shutdown this often; it bounds how long stop() takes.
_POLL_INTERVAL_S = 0.01
_JOIN_TIMEOUT_S = 5.0


class _QuietRequestHandler(WSGIRequestHandler):
    """Request handler that skips the per-request access log (errors still log)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class LoopbackServer:
    """A threaded werkzeug server for `app` (which must be thread-safe) on 127.0.0.1 and a free
    port; `with LoopbackServer(app) as server: server.url`, or `start()` / `stop()`."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Root URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("LoopbackServer is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LoopbackServer:
        if self._server is not None:
            raise RuntimeError("LoopbackServer is already running")
        server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietRequestHandler)
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={"poll_interval": _POLL_INTERVAL_S},
                                  name=f"loopback-server-{server.server_port}", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; a no-op when not running."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        thread.join(timeout=_JOIN_TIMEOUT_S)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
