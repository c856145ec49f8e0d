"""The Accounting API on the kit's pipeline, on the fake's root: xero-python works against it
unchanged (``AccountingApi(api_client, base_url=f"{server.url}/api.xro/2.0")``).

Each call: bearer + ``xero-tenant-id`` -> rate limits -> injected fault -> Idempotency-Key
replay -> handler (under the lock) -> headers, call log; a "lost_response" fault then drops
the connection. Sources: shared/notes/platform-facts.md "Xero Accounting API", the vendored
spec shared/specs/xero/xero_accounting.yaml, the xero-python 15.x source.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from werkzeug.wrappers import Request, Response

from sandbox.kit.calls import Call
from sandbox.kit.clock import Clock
from sandbox.kit.errors import VendorError
from sandbox.kit.faults import Fault, FaultInjector
from sandbox.kit.jsonio import Invalid
from sandbox.kit.routing import FakeService
from sandbox.kit.service import ApiRoute, Exchange, VendorApi
from sandbox.kit.windows import Admission
from sandbox.xero.books import TenantBooks
from sandbox.xero.handlers import ROUTES
from sandbox.xero.limits import RateLimiter, RateLimits
from sandbox.xero.where import QueryError
from sandbox.xero.wire import (API_ROOT, invalid, json_body, post_data_invalid, problem,
                               query_parse_exception, too_many_requests)

DEFAULT_IDEMPOTENCY_TTL_S = 360.0  # platform-facts: keys live "about 6 minutes" (unverified)
MAX_IDEMPOTENCY_KEY = 128  # platform-facts: Idempotency-Key max 128 chars
FAULT_KINDS = ("5xx", "429", "slow", "lost_response", "short_answer")
_DEFAULT_RETRY_AFTER = {"minute": 60, "day": 3600}


def api_path(prefix: str) -> str:
    """``/Invoices`` -> ``/api.xro/2.0/Invoices``; full API paths pass through."""
    cleaned = "/" + prefix.lstrip("/")
    return cleaned if cleaned.lower().startswith(API_ROOT) else API_ROOT + cleaned


def path_match(prefix: str, path: str) -> bool:
    """A fault's or a count's prefix covers a path: API root optional, any case."""
    return path.lower().startswith(api_path(prefix).lower())


@dataclass(frozen=True)
class ApiCall(Call):
    """One accounting API call as the fake saw it (`scope` is the tenant id; `limited` the
    X-Rate-Limit-Problem of a refusal). `status` is what the fake produced even when the
    response was then dropped (`fault == "lost_response"`); `replayed` marks an
    Idempotency-Key replay; `body` is the request body exactly as it arrived."""

    idempotency_key: str | None = None
    replayed: bool = False

    @property
    def tenant_id(self) -> str | None:
        return self.scope  # type: ignore[return-value]


class IdempotencyCache:
    """Responses to PUT/POST calls by (tenant, method, path, Idempotency-Key), kept `ttl` s."""

    def __init__(self, now: Callable[[], float], ttl: float) -> None:
        self.ttl = ttl
        self._now = now
        self._entries: dict[tuple[Hashable, ...], tuple[float, bytes, int, str]] = {}

    def get(self, key: tuple[Hashable, ...]) -> Response | None:
        entry = self._live().get(key)
        return None if entry is None else Response(entry[1], entry[2], content_type=entry[3])

    def put(self, key: tuple[Hashable, ...], response: Response) -> None:
        self._live()[key] = (self._now(), response.get_data(), response.status_code,
                             response.content_type or "")

    def _live(self) -> dict[tuple[Hashable, ...], tuple[float, bytes, int, str]]:
        now = self._now()
        self._entries = {k: e for k, e in self._entries.items() if now < e[0] + self.ttl}
        return self._entries


class XeroAccountingApi(VendorApi[str, ApiCall]):
    """The accounting endpoints (sandbox/xero/handlers.py) and Xero's production behaviour.

    `tenant_of` authenticates a call (bearer and ``xero-tenant-id``: the fake's 401/403)
    and `books_of` gives a tenant's books; `FakeXero` exposes the helpers tests use.
    """

    call_type = ApiCall

    def __init__(self, service: FakeService, clock: Clock, tenant_of: Callable[[Request], str],
                 books_of: Callable[[str], TenantBooks], *, limits: RateLimits | None = None,
                 idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL_S) -> None:
        super().__init__(service, clock, FaultInjector(FAULT_KINDS, path_match=path_match))
        self._tenant_of = tenant_of
        self._books_of = books_of
        self.limiter = RateLimiter(limits or RateLimits(), clock, self.lock)
        self.idempotency = IdempotencyCache(clock.now, idempotency_ttl)
        self.mount((ApiRoute(rule, methods, handler) for rule, handler, methods in ROUTES),
                   API_ROOT)

    # ----- the pipeline's hooks -----------------------------------------------------------

    def authenticate(self, ex: Exchange[str]) -> str:
        request = ex.request
        key = request.headers.get("Idempotency-Key") if request.method in ("PUT", "POST") else None
        ex.log["idempotency_key"] = key
        return self._tenant_of(request)

    def scope_of(self, ex: Exchange[str]) -> Hashable:
        return ex.caller

    def admit(self, ex: Exchange[str]) -> Admission:
        return self.limiter.admit(str(ex.scope))

    def render_refusal(self, ex: Exchange[str]) -> Response:
        refusal = ex.admission
        return too_many_requests(refusal.refused or "", refusal.retry_after, refusal.headers)

    def render_fault(self, ex: Exchange[str], fault: Fault) -> Response | None:
        if fault.kind == "5xx":
            status = fault.status or 500
            title = "Service Unavailable" if status == 503 else "Internal Server Error"
            return problem(status, title, "injected fault: the call was not processed")
        if fault.kind == "429":
            kind = fault.detail or "minute"
            retry = fault.retry_after or _DEFAULT_RETRY_AFTER.get(kind)
            with self.lock:
                remaining = self.limiter.remaining(str(ex.scope))
            return too_many_requests(kind, retry, remaining)
        return None

    def handle(self, ex: Exchange[str]) -> Response:
        """Replay the stored answer to an Idempotency-Key, or run the handler and store it."""
        request, key = ex.request, ex.log["idempotency_key"]
        if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
            return post_data_invalid("Idempotency-Key must be 128 characters or fewer")
        cache_key = (ex.scope, request.method, request.path.lower(), key or "")
        response = self.idempotency.get(cache_key) if key is not None else None
        ex.log["replayed"] = response is not None
        if response is None:
            try:
                books = self._books_of(str(ex.scope))
                response = ex.route.handler(request, books, **ex.path_values)
            except VendorError as err:
                response = err.response
            except QueryError as err:
                response = query_parse_exception(str(err))
            except Invalid as err:
                response = invalid(err)
            if key is not None:
                self.idempotency.put(cache_key, response)
        if ex.fault_kind == "short_answer":
            response = _without_last_element(response)
        return response

    def rate_headers(self, ex: Exchange[str]) -> dict[str, str]:
        if not ex.admission.allowed:
            return {}  # the 429 carries its own
        return {**ex.admission.headers, "Xero-Correlation-Id": str(uuid.uuid4())}

    def release(self, ex: Exchange[str]) -> None:
        if ex.admission.allowed:
            with self.lock:
                self.limiter.release(str(ex.scope))

    def after(self, ex: Exchange[str], response: Response) -> None:
        if ex.fault_kind == "lost_response":
            _drop_connection(ex.request)


def _without_last_element(response: Response) -> Response:
    """The answer with its batch list one element short (the work itself was all done)."""
    body = json.loads(response.get_data(as_text=True), parse_float=Decimal)
    for key in ("Invoices", "Contacts"):
        if isinstance(body.get(key), list) and body[key]:
            body[key] = body[key][:-1]
    return json_body(body, response.status_code)


def _drop_connection(request: Request) -> NoReturn:
    """Close the client's socket without an answer, after the work was done. werkzeug's dev
    server hands the app the socket (``werkzeug.socket``), writes nothing after a
    ConnectionError and closes the socket only after a response, so we shut it down: the
    client sees the peer hang up (RemoteDisconnected)."""
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:  # the client already went away: nothing left to drop
            raise ConnectionAbortedError("client disconnected first") from exc
    raise ConnectionAbortedError("injected fault: response lost after the call succeeded")
