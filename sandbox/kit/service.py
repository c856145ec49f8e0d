"""One request pipeline for every fake vendor API (`VendorApi.serve`); vendors supply the hooks."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from sandbox.kit.calls import Call, CallLog
from sandbox.kit.clock import Clock
from sandbox.kit.errors import VendorError
from sandbox.kit.faults import Fault, FaultInjector
from sandbox.kit.jsonio import Invalid
from sandbox.kit.routing import FakeService
from sandbox.kit.windows import ADMITTED, Admission

CallerT = TypeVar("CallerT")
CallT = TypeVar("CallT", bound=Call)


@dataclass(frozen=True)
class ApiRoute:
    """One endpoint: `policy` is the vendor's data about it (a rate policy, scopes)."""

    rule: str
    methods: tuple[str, ...]
    handler: Callable[..., Response]
    policy: Any = None


@dataclass
class Exchange(Generic[CallerT]):
    """One call on its way through the pipeline."""

    request: Request
    route: ApiRoute
    path_values: dict[str, str]
    arrived: float
    caller: CallerT | None = None
    scope: Hashable | None = None
    admission: Admission = ADMITTED
    fault: Fault | None = None
    log: dict[str, Any] = field(default_factory=dict)
    """Vendor fields for this call's log entry (tokens spent, a replay...)."""

    @property
    def fault_kind(self) -> str | None:
        return self.fault.kind if self.fault is not None else None


class VendorApi(ABC, Generic[CallerT, CallT]):
    """A vendor's API endpoints on a `FakeService`, with faults, limits and a call log."""

    call_type: ClassVar[type[Call]] = Call
    log_response_bodies: ClassVar[bool] = False

    def __init__(self, service: FakeService, clock: Clock, faults: FaultInjector) -> None:
        self.service = service
        self.lock = service.lock
        self.clock = clock
        self.faults = faults
        self.call_log: CallLog[CallT] = CallLog(service.lock, path_match=faults.path_match)

    def mount(self, routes: Iterable[ApiRoute], prefix: str = "") -> None:
        for route in routes:
            self.service.route(prefix + route.rule, self._view(route), methods=route.methods)

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            return self.faults.add(fault)

    # ----- the pipeline ---------------------------------------------------------

    def serve(self, request: Request, route: ApiRoute, path_values: dict[str, str]) -> Response:
        ex: Exchange[CallerT] = Exchange(request, route, path_values, self.clock.now())
        try:
            ex.caller = self.authenticate(ex)
        except HTTPException as exc:
            self.log(ex, exc.code or 401)
            raise
        ex.scope = self.scope_of(ex)
        with self.lock:
            self.gate(ex)
        try:
            response = self.respond(ex)
        finally:
            self.release(ex)
        response.headers.update(self.rate_headers(ex))
        self.log(ex, response.status_code, response)
        self.after(ex, response)
        return response

    def gate(self, ex: Exchange[CallerT]) -> None:
        """Admit the call, then take a fault for it (caller holds the lock)."""
        ex.admission = self.admit(ex)
        if ex.admission.allowed:
            ex.fault = self.faults.take(ex.request.method, ex.request.path, ex.scope)

    def respond(self, ex: Exchange[CallerT]) -> Response:
        if not ex.admission.allowed:
            return self.render_refusal(ex)
        if ex.fault is not None:
            answer = self.render_fault(ex, ex.fault)
            if answer is not None:
                return answer
            if ex.fault.kind == "slow" and ex.fault.delay:
                time.sleep(ex.fault.delay)  # real seconds: lets calls overlap, clients time out
        with self.lock:
            try:
                return self.handle(ex)
            except VendorError as err:
                return err.response
            except Invalid as err:
                return self.render_invalid(ex, err)

    def log(self, ex: Exchange[CallerT], status: int, response: Response | None = None) -> None:
        body = response.get_data() if response is not None and self.log_response_bodies else b""
        request = ex.request
        fields = {"method": request.method, "path": request.path,
                  "query": request.query_string.decode("latin-1"),
                  "body": request.get_data(cache=True), "scope": ex.scope, "status": status,
                  "time": ex.arrived, "fault": ex.fault_kind, "limited": ex.admission.refused,
                  "response_body": body, **ex.log}
        self.call_log.append(self.call_type(**fields))  # type: ignore[arg-type]

    # ----- hooks --------------------------------------------------------------------

    @abstractmethod
    def authenticate(self, ex: Exchange[CallerT]) -> CallerT:
        """Who is calling; raise an HTTPException (the vendor's 401) to refuse."""

    @abstractmethod
    def scope_of(self, ex: Exchange[CallerT]) -> Hashable:
        """The portal, company or tenant the call runs in (faults, limits, log)."""

    def admit(self, ex: Exchange[CallerT]) -> Admission:
        return ADMITTED

    @abstractmethod
    def render_refusal(self, ex: Exchange[CallerT]) -> Response:
        """The vendor's 429 when its own limits refuse the call."""

    def render_fault(self, ex: Exchange[CallerT], fault: Fault) -> Response | None:
        """The answer an injected fault gives instead of the handler's; None: go on."""
        return None

    def render_invalid(self, ex: Exchange[CallerT], err: Invalid) -> Response:
        """The vendor's 400 for input a `sandbox.kit.jsonio` reader refused."""
        raise NotImplementedError

    def handle(self, ex: Exchange[CallerT]) -> Response:
        """Run the endpoint's handler (caller holds the lock)."""
        return ex.route.handler(ex, **ex.path_values)

    def rate_headers(self, ex: Exchange[CallerT]) -> dict[str, str]:
        """Headers every answer carries (limit counts)."""
        return dict(ex.admission.headers)

    def release(self, ex: Exchange[CallerT]) -> None:
        """After the answer is made, even if the handler raised (e.g. a concurrency slot)."""

    def after(self, ex: Exchange[CallerT], response: Response) -> None:
        """After the call is logged (e.g. wake webhook delivery, drop the connection)."""

    def _view(self, route: ApiRoute) -> Callable[..., Response]:
        def view(request: Request, **path_values: str) -> Response:
            return self.serve(request, route, path_values)

        return view
