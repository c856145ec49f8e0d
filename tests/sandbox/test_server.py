"""LoopbackServer: real sockets, threaded, quick to start and stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest
import requests
from werkzeug.wrappers import Request, Response

from sandbox import LoopbackServer

from .support import TIMEOUT, run_concurrently

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def hello_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    return Response(f"hello {Request(environ).path}")(environ, start_response)


def test_serves_the_app_on_a_loopback_url() -> None:
    with LoopbackServer(hello_app) as server:
        assert server.url.startswith("http://127.0.0.1:")
        response = requests.get(server.url + "/ping", timeout=TIMEOUT)
    assert response.text == "hello /ping"


def test_stop_closes_the_port() -> None:
    server = LoopbackServer(hello_app).start()
    url = server.url
    server.stop()
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=TIMEOUT)
    server.stop()  # idempotent


def test_url_needs_a_running_server_and_start_is_not_reentrant() -> None:
    server = LoopbackServer(hello_app)
    with pytest.raises(RuntimeError):
        _ = server.url
    with server, pytest.raises(RuntimeError):
        server.start()


def test_servers_get_distinct_ports_and_start_and_stop_quickly() -> None:
    began = time.monotonic()
    servers = [LoopbackServer(hello_app).start() for _ in range(5)]
    try:
        assert len({s.url for s in servers}) == 5
    finally:
        for server in servers:
            server.stop()
    assert time.monotonic() - began < 2.0


def test_requests_are_handled_concurrently() -> None:
    """Four requests that each wait for the others can only finish on a threaded server."""
    barrier = threading.Barrier(4)

    def rendezvous_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        barrier.wait(timeout=TIMEOUT)
        return Response("met")(environ, start_response)

    with LoopbackServer(rendezvous_app) as server:
        responses = run_concurrently(4, lambda _: requests.get(server.url, timeout=2 * TIMEOUT))
    assert [r.text for r in responses] == ["met"] * 4
