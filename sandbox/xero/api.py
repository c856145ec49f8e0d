"""The Accounting API's production behaviour around each handler.

Each call runs: bearer + ``xero-tenant-id`` check -> rate limits -> injected
fault -> Idempotency-Key replay -> handler (under the fake's lock) -> headers,
call log, and for a "lost_response" fault a dropped connection.
"""

from __future__ import annotations

import json
import math
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NoReturn, Protocol

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from sandbox.kit.clock import Clock
from sandbox.xero.books import TenantBooks
from sandbox.xero.errors import ApiError, post_data_invalid, problem, query_parse_exception
from sandbox.xero.errors import too_many_requests
from sandbox.xero.handlers import ROUTES, Handler
from sandbox.xero.where import QueryError
from sandbox.xero.wire import API_ROOT, json_body

DEFAULT_IDEMPOTENCY_TTL_S = 360.0  # platform-facts: keys live "about 6 minutes" (unverified)
MAX_IDEMPOTENCY_KEY = 128  # platform-facts: Idempotency-Key max 128 chars
MINUTE_S = 60.0
DAY_S = 86_400.0


class Host(Protocol):
    """What the API needs of the fake it is installed on."""

    lock: AbstractContextManager[Any]
    clock: Clock

    def route(self, rule: str, handler: Callable[..., Response], methods: tuple[str, ...]) -> None:
        ...

    def tenant_of(self, request: Request) -> str:
        ...

    def accounting(self, tenant_id: str) -> TenantBooks:
        ...


RateLimitProblem = Literal["minute", "day", "concurrent", "appminute"]


@dataclass
class RateLimits:
    """Xero's API limits (platform-facts: Limits). Mutable: tests may lower them live."""

    per_minute: int = 60
    per_day: int = 5000
    concurrent: int = 5
    app_per_minute: int = 10_000


@dataclass
class _Window:
    """A fixed window that starts at its first call (so resets are tenant-specific)."""

    length: float
    start: float | None = None
    count: int = 0

    def roll(self, now: float) -> None:
        if self.start is None or now >= self.start + self.length:
            self.start, self.count = now, 0

    def retry_after(self, now: float) -> int:
        start = self.start if self.start is not None else now
        return max(1, math.ceil(start + self.length - now))


@dataclass
class _TenantUsage:
    minute: _Window = field(default_factory=lambda: _Window(MINUTE_S))
    day: _Window = field(default_factory=lambda: _Window(DAY_S))
    in_flight: int = 0


@dataclass(frozen=True)
class Admission:
    """The limiter's answer to one call: remaining counts, or why it was refused."""

    remaining: dict[str, str]
    problem: RateLimitProblem | None = None
    retry_after: int | None = None


class RateLimiter:
    """Per-tenant minute/day/concurrent windows and the app-wide minute window."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._tenants: dict[str, _TenantUsage] = {}
        self._app_minute = _Window(MINUTE_S)

    def reset(self) -> None:
        self._tenants.clear()
        self._app_minute = _Window(MINUTE_S)

    def admit(self, tenant_id: str) -> Admission:
        """Count a call in (caller holds the lock); a refused call is not counted."""
        now = self._clock.now()
        usage = self._tenants.setdefault(tenant_id, _TenantUsage())
        for window in (usage.minute, usage.day, self._app_minute):
            window.roll(now)
        refused = self._refusal(usage, now)
        if refused is not None:
            return Admission(self._remaining(usage), *refused)
        usage.minute.count += 1
        usage.day.count += 1
        self._app_minute.count += 1
        usage.in_flight += 1
        return Admission(self._remaining(usage))

    def release(self, tenant_id: str) -> None:
        self._tenants[tenant_id].in_flight -= 1

    def remaining(self, tenant_id: str) -> dict[str, str]:
        """The ``X-*Limit-Remaining`` headers for the tenant as things stand."""
        return self._remaining(self._tenants.setdefault(tenant_id, _TenantUsage()))

    def _refusal(
        self, usage: _TenantUsage, now: float
    ) -> tuple[RateLimitProblem, int | None] | None:
        limits = self.limits
        if usage.day.count >= limits.per_day:
            return "day", usage.day.retry_after(now)
        if usage.minute.count >= limits.per_minute:
            return "minute", usage.minute.retry_after(now)
        if self._app_minute.count >= limits.app_per_minute:
            return "appminute", self._app_minute.retry_after(now)
        if usage.in_flight >= limits.concurrent:
            return "concurrent", None
        return None

    def _remaining(self, usage: _TenantUsage) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(max(0, self.limits.per_day - usage.day.count)),
            "X-MinLimit-Remaining": str(max(0, self.limits.per_minute - usage.minute.count)),
            "X-AppMinLimit-Remaining": str(
                max(0, self.limits.app_per_minute - self._app_minute.count)
            ),
        }



FaultKind = Literal["5xx", "429", "slow", "lost_response", "short_answer"]
_FAULT_KINDS: tuple[FaultKind, ...] = ("5xx", "429", "slow", "lost_response", "short_answer")
_DEFAULT_RETRY_AFTER = {"minute": 60, "day": 3600}


@dataclass
class Fault:
    """One injected fault; `remaining` counts down (None: until cleared)."""

    kind: FaultKind
    method: str | None = None
    path_prefix: str | None = None
    tenant_id: str | None = None
    remaining: int | None = 1
    status: int | None = None
    delay: float | None = None
    problem: RateLimitProblem = "minute"
    retry_after: int | None = None
    skip: int = 0  # let this many matching calls through first (a fault on page 31 of 61)

    def matches(self, method: str, path: str, tenant_id: str) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and (self.method is None or self.method.upper() == method.upper())
            and (self.path_prefix is None or path.lower().startswith(self.path_prefix.lower()))
            and (self.tenant_id is None or self.tenant_id == tenant_id)
        )



def api_path(prefix: str) -> str:
    """``/Invoices`` -> ``/api.xro/2.0/Invoices``; full API paths pass through."""
    cleaned = "/" + prefix.lstrip("/")
    return cleaned if cleaned.lower().startswith(API_ROOT) else API_ROOT + cleaned


class FaultInjector:
    """Faults waiting to hit matching calls, first injected first used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in _FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {_FAULT_KINDS}, not {fault.kind!r}")
        if fault.kind == "slow" and not fault.delay:
            raise ValueError("a 'slow' fault needs delay= (seconds)")
        if fault.kind == "5xx" and not 500 <= (fault.status or 500) <= 599:
            raise ValueError("a '5xx' fault needs a status between 500 and 599")
        if fault.path_prefix is not None:
            fault.path_prefix = api_path(fault.path_prefix)
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str, tenant_id: str) -> Fault | None:
        """The first matching fault, used once (caller holds the lock)."""
        for fault in self._faults:
            if fault.matches(method, path, tenant_id):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if f.remaining is None or f.remaining > 0]


@dataclass(frozen=True)
class _StoredResponse:
    status: int
    body: bytes
    content_type: str
    stored_at: float

    def response(self) -> Response:
        return Response(self.body, status=self.status, content_type=self.content_type)


class IdempotencyCache:
    """Responses to PUT/POST calls by (tenant, method, path, Idempotency-Key)."""

    def __init__(self, clock: Clock, ttl: float) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, str, str, str], _StoredResponse] = {}

    def get(self, key: tuple[str, str, str, str]) -> Response | None:
        entry = self._entries.get(key)
        if entry is None or self._clock.now() >= entry.stored_at + self.ttl:
            self._entries.pop(key, None)
            return None
        return entry.response()

    def put(self, key: tuple[str, str, str, str], response: Response) -> None:
        now = self._clock.now()
        for old in [k for k, v in self._entries.items() if now >= v.stored_at + self.ttl]:
            del self._entries[old]
        self._entries[key] = _StoredResponse(
            response.status_code,
            response.get_data(),
            response.content_type or "",
            self._clock.now(),
        )


@dataclass(frozen=True)
class ApiCall:
    """One accounting API call as the fake saw it.

    `status` is what the fake produced even when the response was then dropped
    (`fault == "lost_response"`); `replayed` marks an Idempotency-Key replay.
    """

    method: str
    path: str
    query: str
    tenant_id: str | None
    status: int
    time: float
    idempotency_key: str | None
    fault: FaultKind | None = None
    replayed: bool = False
    rate_limit_problem: RateLimitProblem | None = None
    body: bytes = b""  # the request body exactly as it arrived (what the client wrote)



@dataclass(frozen=True)
class _Call:
    """One authenticated accounting request on its way through the pipeline."""

    request: Request
    tenant_id: str
    handler: Handler
    path_values: dict[str, str]
    key: str | None
    """Its Idempotency-Key (PUT/POST only)."""



class XeroAccountingApi:
    """The accounting endpoints (sandbox/xero/handlers.py) and the production behaviours.

    Created by `FakeXero` (sandbox/xero/__init__.py), which exposes the helpers tests use.
    """

    def __init__(
        self,
        host: Host,
        *,
        limits: RateLimits | None = None,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL_S,
    ) -> None:
        self._host = host
        self._lock = host.lock
        self._clock = host.clock
        self.limiter = RateLimiter(limits or RateLimits(), host.clock)
        self.faults = FaultInjector()
        self.idempotency = IdempotencyCache(host.clock, idempotency_ttl)
        self._calls: list[ApiCall] = []
        for rule, handler, methods in ROUTES:
            host.route(API_ROOT + rule, self._endpoint(handler), methods)

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            return self.faults.add(fault)

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def count_calls(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        tenant_id: str | None = None,
    ) -> int:
        prefix = api_path(path_prefix).lower() if path_prefix else None
        return sum(
            1
            for call in self.calls
            if (method is None or call.method == method.upper())
            and (prefix is None or call.path.lower().startswith(prefix))
            and (status is None or call.status == status)
            and (tenant_id is None or call.tenant_id == tenant_id)
        )

    # ----- routing and the per-call pipeline ---------------------------------

    def _endpoint(self, handler: Handler) -> Callable[..., Response]:
        def view(request: Request, **path_values: str) -> Response:
            return self._serve(request, handler, path_values)

        return view

    def _serve(
        self, request: Request, handler: Handler, path_values: dict[str, str]
    ) -> Response:
        arrived = self._clock.now()
        key = request.headers.get("Idempotency-Key") if request.method in ("PUT", "POST") else None
        try:
            tenant_id = self._host.tenant_of(request)
        except HTTPException as exc:
            self._log(request, None, exc.code or 500, arrived, key)
            raise
        with self._lock:
            admission = self.limiter.admit(tenant_id)
            fault = (
                None
                if admission.problem
                else self.faults.take(request.method, request.path, tenant_id)
            )
        if admission.problem is not None:
            self._log(request, tenant_id, 429, arrived, key, limit=admission.problem)
            return too_many_requests(admission.problem, admission.retry_after, admission.remaining)
        call = _Call(request, tenant_id, handler, path_values, key)
        try:
            response, replayed = self._run(call, fault)
        finally:
            with self._lock:
                self.limiter.release(tenant_id)
        response.headers.update(admission.remaining)
        response.headers["Xero-Correlation-Id"] = str(uuid.uuid4())
        self._log(
            request,
            tenant_id,
            response.status_code,
            arrived,
            key,
            fault=fault.kind if fault else None,
            replayed=replayed,
        )
        if fault is not None and fault.kind == "lost_response":
            _drop_connection(request)
        return response

    def _run(self, call: _Call, fault: Fault | None) -> tuple[Response, bool]:
        """Apply the fault, then replay or handle; returns (response, replayed)."""
        if fault is not None and fault.kind == "5xx":
            status = fault.status or 500
            title = "Service Unavailable" if status == 503 else "Internal Server Error"
            return problem(status, title, "injected fault: the call was not processed"), False
        if fault is not None and fault.kind == "429":
            retry = fault.retry_after or _DEFAULT_RETRY_AFTER.get(fault.problem)
            with self._lock:
                remaining = self.limiter.remaining(call.tenant_id)
            return too_many_requests(fault.problem, retry, remaining), False
        if fault is not None and fault.kind == "slow" and fault.delay:
            time.sleep(fault.delay)  # real seconds: lets calls overlap and clients time out
        if call.key is not None and len(call.key) > MAX_IDEMPOTENCY_KEY:
            return post_data_invalid("Idempotency-Key must be 128 characters or fewer"), False
        response, replayed = self._handle(call)
        if fault is not None and fault.kind == "short_answer":
            response = _without_last_element(response)
        return response, replayed

    def _handle(self, call: _Call) -> tuple[Response, bool]:
        """Replay the stored answer to an Idempotency-Key, or run the handler and store it."""
        request = call.request
        cache_key = (call.tenant_id, request.method, request.path.lower(), call.key or "")
        with self._lock:
            if call.key is not None:
                stored = self.idempotency.get(cache_key)
                if stored is not None:
                    return stored, True
            try:
                response = call.handler(request, self._host.accounting(call.tenant_id), **call.path_values)
            except ApiError as err:
                response = err.response
            except QueryError as err:
                response = query_parse_exception(str(err))
            if call.key is not None:
                self.idempotency.put(cache_key, response)
        return response, False

    def _log(
        self,
        request: Request,
        tenant_id: str | None,
        status: int,
        arrived: float,
        key: str | None,
        *,
        fault: FaultKind | None = None,
        replayed: bool = False,
        limit: RateLimitProblem | None = None,
    ) -> None:
        call = ApiCall(
            request.method,
            request.path,
            request.query_string.decode("latin-1"),
            tenant_id,
            status,
            arrived,
            key,
            fault,
            replayed,
            limit,
            request.get_data(cache=True),
        )
        with self._lock:
            self._calls.append(call)



def _without_last_element(response: Response) -> Response:
    """The answer with its batch list one element short (the work itself was all done)."""
    body = json.loads(response.get_data(as_text=True), parse_float=Decimal)
    for key in ("Invoices", "Contacts"):
        if isinstance(body.get(key), list) and body[key]:
            body[key] = body[key][:-1]
    return json_body(body, response.status_code)


def _drop_connection(request: Request) -> NoReturn:
    """Close the client's socket without an answer, after the work was done.

    werkzeug's dev server hands the socket to the app as ``werkzeug.socket`` and
    treats a ConnectionError from the app as a client disconnect: it writes
    nothing. It closes the socket only after writing a response, so we shut it
    down ourselves; the client then sees the peer hang up (RemoteDisconnected).
    """
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:  # the client already went away: nothing left to drop
            raise ConnectionAbortedError("client disconnected first") from exc
    raise ConnectionAbortedError("injected fault: response lost after the call succeeded")

