"""sandbox.kit on its own: each piece the fakes share, without any vendor."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from werkzeug.exceptions import Unauthorized
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from sandbox.kit.calls import Call, CallLog
from sandbox.kit.clock import Clock
from sandbox.kit.errors import ErrorShape, VendorError
from sandbox.kit.faults import Fault, FaultInjector
from sandbox.kit.jsonio import (
    Invalid,
    dumps,
    exact_json_response,
    json_response,
    query_bool,
    query_int,
    query_list,
    read_json,
    read_object,
)
from sandbox.kit.routing import FakeService
from sandbox.kit.server import LoopbackServer
from sandbox.kit.service import ApiRoute, Exchange, VendorApi
from sandbox.kit.state import ScopedState
from sandbox.kit.webhooks import Ban, DeliveryLoop, Pending, Reply, hmac_sha256, post
from sandbox.kit.windows import Admission, FixedWindow, RollingWindows

# ----- faults ------------------------------------------------------------------------


def test_a_fault_hits_matching_calls_and_counts_down() -> None:
    faults = FaultInjector(("5xx", "slow"))
    fault = faults.add(Fault("5xx", method="post", path_prefix="/deals", scope=7, remaining=2))

    assert faults.take("GET", "/deals/1", 7) is None  # another method
    assert faults.take("POST", "/contacts", 7) is None  # another path
    assert faults.take("POST", "/deals/1", 8) is None  # another scope
    assert faults.take("POST", "/deals/1", 7) is fault
    assert faults.take("POST", "/deals/batch", 7) is fault
    assert faults.take("POST", "/deals/1", 7) is None and faults.pending == []


def test_a_fault_without_a_count_lasts_until_cleared() -> None:
    faults = FaultInjector(("5xx",))
    faults.add(Fault("5xx", remaining=None))
    assert all(faults.take("GET", f"/{n}", None) for n in range(5))
    faults.clear()
    assert faults.take("GET", "/", None) is None


def test_a_skipping_fault_lets_calls_through_first() -> None:
    faults = FaultInjector(("5xx",))
    fault = faults.add(Fault("5xx", skip=2))
    assert [faults.take("GET", "/", 1) for _ in range(4)] == [None, None, fault, None]


def test_peek_leaves_the_fault_for_use() -> None:
    faults = FaultInjector(("429",))
    fault = faults.add(Fault("429"))
    assert faults.peek("GET", "/", 1) is fault and faults.peek("GET", "/", 1) is fault
    faults.use(fault)
    assert faults.peek("GET", "/", 1) is None


def test_a_vendor_path_match_decides_what_a_prefix_covers() -> None:
    faults = FaultInjector(("5xx",), path_match=lambda p, path: path.lower().startswith(p.lower()))
    fault = faults.add(Fault("5xx", path_prefix="/INVOICES"))
    assert faults.take("GET", "/invoices/1", None) is fault


@pytest.mark.parametrize("fault,message", [
    (Fault("teapot"), "fault kind must be one of"),
    (Fault("slow"), "needs delay="),
    (Fault("5xx", status=404), "between 500 and 599"),
])
def test_unknown_or_incomplete_faults_are_refused(fault: Fault, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultInjector(("5xx", "slow")).add(fault)


# ----- the call log ------------------------------------------------------------------


def call(method: str = "GET", path: str = "/a", status: int = 200, scope: Hashable = 1,
         **fields: Any) -> Call:
    return Call(method, path, "", scope, status, 0.0, **fields)


def test_count_calls_filters_by_method_path_status_and_scope() -> None:
    log: CallLog[Call] = CallLog(threading.RLock())
    for entry in (call(), call("POST", "/a/b", 201), call(path="/b", status=429, scope=2)):
        log.append(entry)

    assert log.count() == 3 and log.count("post") == 1 and log.count(path_prefix="/a") == 2
    assert log.count(status=429) == 1 and log.count(scope=2) == 1
    assert log.count("GET", "/a", 200, 1) == 1
    log.clear()
    assert log.calls == []


def test_a_call_decodes_its_json_bodies() -> None:
    entry = call(body=b'{"a": 1}', response_body=b"[2]")
    assert (entry.json(), entry.response_json()) == ({"a": 1}, [2])
    assert call().json() is None and call().response_json() is None


# ----- rate windows ------------------------------------------------------------------


def test_a_rolling_window_refuses_past_its_limit_until_calls_age_out() -> None:
    clock = Clock(lambda: 1000.0)
    windows: RollingWindows[str] = RollingWindows(clock)
    assert [windows.admit("p", 10.0, 2) for _ in range(3)] == [True, True, False]
    assert windows.used("p", 10.0) == 2  # the refused call is not counted
    state = windows.state("p", 10.0, 2)
    assert (state.remaining, state.reset_in) == (0, 10)
    clock.advance(4)
    assert windows.state("p", 10.0, 2).reset_in == 6
    clock.advance(6)
    assert windows.admit("p", 10.0, 2) and windows.used("other", 10.0) == 0


def test_a_rolling_window_weighs_calls() -> None:
    windows: RollingWindows[str] = RollingWindows(Clock(lambda: 0.0))
    assert windows.admit("p", 2.0, 10, weight=6) and not windows.admit("p", 2.0, 10, weight=5)
    assert windows.admit("p", 2.0, 10, weight=4) and windows.used("p", 2.0) == 10
    windows.reset()
    assert windows.used("p", 2.0) == 0


def test_a_fixed_window_starts_at_its_first_call_or_on_the_boundary() -> None:
    window = FixedWindow(60.0)
    window.roll(1030.0)
    window.count = 5
    window.roll(1089.0)
    assert window.count == 5 and window.retry_after(1089.0) == 1
    window.roll(1090.0)
    assert (window.start, window.count) == (1090.0, 0)
    day = FixedWindow(86_400.0, aligned=True)
    day.roll(86_400.0 * 3 + 5)
    assert day.start == 86_400.0 * 3 and day.retry_after(86_400.0 * 4 - 0.5) == 1


def test_an_admission_is_allowed_unless_refused() -> None:
    assert Admission().allowed and not Admission(refused="day", retry_after=3).allowed


# ----- JSON and query parameters -----------------------------------------------------


def test_dumps_writes_decimals_exactly_and_refuses_floats() -> None:
    assert dumps({"a": [Decimal("110.00"), 1, None, "x"]}) == '{"a":[110.00,1,null,"x"]}'
    with pytest.raises(TypeError):
        dumps({"a": 1.5})
    assert exact_json_response({"n": Decimal("0.10")}).get_data() == b'{"n":0.10}'
    response = json_response({"a": 1}, 201, {"X-A": "b"}, content_type="application/json; x=1")
    assert (response.status_code, response.headers["X-A"]) == (201, "b")
    assert response.content_type == "application/json; x=1"


def make_request(body: bytes = b"", query: str = "") -> Request:
    return Request.from_values(f"/?{query}", method="POST", data=body)


def test_read_json_parses_fractions_as_decimal_and_names_what_is_wrong() -> None:
    assert read_json(make_request(b'{"a": 1.50}')) == {"a": Decimal("1.50")}
    assert read_json(make_request()) is None and read_object(make_request(), empty={}) == {}
    assert read_json(make_request(b"  "), strip=True, empty=[]) == []
    with pytest.raises(Invalid) as bad:
        read_json(make_request(b"{nope"))
    assert bad.value.problem == "json" and "Expecting" in bad.value.facts["error"]
    with pytest.raises(Invalid) as not_object:
        read_object(make_request(b"[1]"))
    assert not_object.value.message({"object": "expected an object, not {value}"}) == (
        "expected an object, not [1]")


def test_query_readers() -> None:
    args = make_request(query="p=a,b&p=c&flag=true&bad=True&n=7").args
    assert query_list(args, "p") == ["a", "b", "c"] and query_list(args, "none") == []
    assert query_bool(args, "flag") and not query_bool(args, "missing")
    assert query_int(args, "n", 1, minimum=1, maximum=10) == 7 and query_int(args, "x", 3) == 3
    with pytest.raises(Invalid) as bad_bool:
        query_bool(args, "bad")
    assert bad_bool.value.message({"bool": "{name}={value!r}"}) == "bad='True'"
    with pytest.raises(Invalid) as bad_range:
        query_int(args, "n", maximum=5)
    assert (bad_range.value.problem, bad_range.value.facts["maximum"]) == ("range", 5)
    with pytest.raises(Invalid, match="int"):
        query_int(args, "p")


# ----- error shapes ------------------------------------------------------------------

SHAPE = ErrorShape(lambda status, message, **extra: {"code": status, "msg": message, **extra})


def test_an_error_shape_renders_the_vendors_document() -> None:
    response = SHAPE.response(404, message="gone", id=3, headers={"X-Why": "test"})
    assert response.status_code == 404 and response.headers["X-Why"] == "test"
    assert response.get_json() == {"code": 404, "msg": "gone", "id": 3}
    with pytest.raises(VendorError) as failed:
        SHAPE.fail(400, message="bad")
    assert failed.value.response.get_json() == {"code": 400, "msg": "bad"}


# ----- scoped state ------------------------------------------------------------------


def test_scoped_state_is_made_once_per_scope_and_forgotten_on_reset() -> None:
    made: list[int] = []
    state: ScopedState[int, list[int]] = ScopedState(threading.RLock(),
                                                      lambda k: made.append(k) or [k])
    assert state[1] is state[1] and state.get(2) is None and list(state) == [1]
    state.reset()
    state[1]
    assert made == [1, 1]


# ----- the request pipeline ----------------------------------------------------------


class TinyApi(VendorApi[str, Call]):
    """A vendor: callers name themselves in X-User, scopes in X-Scope, 2 calls a minute."""

    log_response_bodies = True

    def __init__(self, service: FakeService, clock: Clock) -> None:
        super().__init__(service, clock, FaultInjector(("5xx", "slow")))
        self.windows: RollingWindows[Hashable] = RollingWindows(clock)
        self.released: list[Hashable] = []
        self.mount([ApiRoute("/things/<thing_id>", ("GET",), self.get_thing),
                    ApiRoute("/things", ("POST",), self.post_thing)], prefix="/v1")

    def authenticate(self, ex: Exchange[str]) -> str:
        user = ex.request.headers.get("X-User")
        if not user:
            raise Unauthorized(response=SHAPE.response(401, message="who are you"))
        return user

    def scope_of(self, ex: Exchange[str]) -> Hashable:
        return ex.request.headers.get("X-Scope", "s")

    def admit(self, ex: Exchange[str]) -> Admission:
        allowed = self.windows.admit(ex.scope, 60.0, 2)
        left = self.windows.state(ex.scope, 60.0, 2).remaining
        return Admission({"X-Left": str(left)}, None if allowed else "minute")

    def render_refusal(self, ex: Exchange[str]) -> Response:
        return SHAPE.response(429, message="slow down", headers=ex.admission.headers)

    def render_fault(self, ex: Exchange[str], fault: Fault) -> Response | None:
        return SHAPE.response(fault.status or 500, message="injected") if fault.kind == "5xx" \
            else None

    def render_invalid(self, ex: Exchange[str], err: Invalid) -> Response:
        return SHAPE.response(400, message=err.message({"object": "send an object"}))

    def release(self, ex: Exchange[str]) -> None:
        self.released.append(ex.scope)

    def get_thing(self, ex: Exchange[str], thing_id: str) -> Response:
        if thing_id == "missing":
            SHAPE.fail(404, message="no such thing")
        ex.log["limited"] = None
        return json_response({"id": thing_id, "by": ex.caller})

    def post_thing(self, ex: Exchange[str]) -> Response:
        return json_response(read_object(ex.request), 201)


@pytest.fixture
def tiny() -> Iterator[tuple[TinyApi, Client]]:
    service = FakeService()
    api = TinyApi(service, Clock(lambda: 50.0))
    yield api, Client(service)


def test_the_pipeline_runs_the_handler_and_logs_the_call(tiny: tuple[TinyApi, Client]) -> None:
    api, client = tiny
    response = client.get("/v1/things/7?x=1", headers={"X-User": "ann", "X-Scope": "p1"})
    assert response.get_json() == {"id": "7", "by": "ann"} and response.headers["X-Left"] == "1"
    (entry,) = api.call_log.calls
    assert (entry.method, entry.path, entry.query, entry.scope, entry.status, entry.time) == (
        "GET", "/v1/things/7", "x=1", "p1", 200, 50.0)
    assert entry.response_json() == {"id": "7", "by": "ann"} and api.released == ["p1"]


def test_an_unauthenticated_call_is_refused_and_logged(tiny: tuple[TinyApi, Client]) -> None:
    api, client = tiny
    response = client.get("/v1/things/7")
    assert response.status_code == 401 and response.get_json()["msg"] == "who are you"
    assert [(c.scope, c.status) for c in api.call_log.calls] == [(None, 401)]


def test_the_limits_refuse_before_any_fault_is_taken(tiny: tuple[TinyApi, Client]) -> None:
    api, client = tiny
    fault = api.inject(Fault("5xx", remaining=None, status=503))
    user = {"X-User": "ann"}
    statuses = [client.get("/v1/things/1", headers=user).status_code for _ in range(3)]
    assert statuses == [503, 503, 429]
    calls = api.call_log.calls
    assert [(c.fault, c.limited) for c in calls] == [("5xx", None), ("5xx", None), (None, "minute")]
    assert fault.remaining is None and api.released == ["s", "s", "s"]


def test_a_slow_fault_delays_then_answers(tiny: tuple[TinyApi, Client]) -> None:
    api, client = tiny
    api.inject(Fault("slow", delay=0.2))
    started = time.monotonic()
    response = client.get("/v1/things/1", headers={"X-User": "ann"})
    assert response.status_code == 200 and time.monotonic() - started >= 0.2
    assert api.call_log.calls[0].fault == "slow"


def test_vendor_errors_and_invalid_input_take_the_vendors_shape(
        tiny: tuple[TinyApi, Client]) -> None:
    api, client = tiny
    user = {"X-User": "ann", "X-Scope": "a"}
    missing = client.get("/v1/things/missing", headers=user)
    assert (missing.status_code, missing.get_json()["msg"]) == (404, "no such thing")
    bad = client.post("/v1/things", data=b"[1]", headers={**user, "X-Scope": "b"})
    assert (bad.status_code, bad.get_json()["msg"]) == (400, "send an object")
    assert api.call_log.calls[1].json() == [1]


# ----- webhook delivery --------------------------------------------------------------


class Receiver:
    """A webhook target on a loopback port: answers from `statuses`, then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay = 0.0
        self.received: list[tuple[bytes, dict[str, str]]] = []

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.received.append((request.get_data(), dict(request.headers)))
        time.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status=status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    target = Receiver()
    with LoopbackServer(target) as server:
        yield target, server.url + "/hook"


class Loop(DeliveryLoop[str, tuple[list[str], Reply, bool]]):
    """Events are strings; a POST's body joins them; group: the event's first letter."""

    def __init__(self, clock: Clock, url: str, **options: Any) -> None:
        super().__init__(threading.RLock(), clock, **options)
        self.url = url

    def group_of(self, item: Pending[str]) -> Hashable:
        return item.event[0]

    def prepare(self, items: list[Pending[str]]) -> Any:
        return ",".join(i.event for i in items).encode()

    def send(self, items: list[Pending[str]], prepared: Any, *, duplicate: bool
             ) -> tuple[list[str], Reply, bool]:
        reply = post(self.url, prepared, {"X-Sig": hmac_sha256("k", prepared)}, timeout=2)
        return [i.event for i in items], reply, duplicate

    def settle(self, items: list[Pending[str]], result: tuple[list[str], Reply, bool]
               ) -> tuple[list[str], Reply, bool]:
        if not result[1].ok:
            for item in items:
                self.retry(item)
        return result


def test_due_events_are_batched_per_group_and_signed(receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    loop = Loop(Clock(), url, retry_delays=(60.0,), max_batch=2)
    for event in ("a1", "b1", "a2", "a3"):
        loop.enqueue("t", event)

    results = loop.deliver()

    assert [(r[0], r[1].status) for r in results] == [
        (["a1", "a2"], 200), (["a3"], 200), (["b1"], 200)]
    body, headers = target.received[0]
    assert body == b"a1,a2" and headers["X-Sig"] == hmac_sha256("k", b"a1,a2")
    assert loop.queued() == [] and loop.results == results


def test_failed_events_retry_on_the_fake_clock_then_drop(receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    clock = Clock()
    loop = Loop(clock, url, retry_delays=(10.0, 20.0))
    target.statuses = [500, 500, 500]
    loop.enqueue("t", "a")

    loop.deliver()
    (waiting,) = loop.queued()
    assert waiting.attempt == 2 and waiting.due == pytest.approx(clock.now() + 10, abs=1)
    assert loop.deliver() == []  # not due yet
    clock.advance(10)
    loop.deliver()
    clock.advance(20)
    loop.deliver()  # the third and last attempt (one more than there are delays)

    assert loop.queued() == [] and len(target.received) == 3
    (dropped,) = loop.dropped
    assert (dropped.event, dropped.attempt, dropped.reason) == ("a", 3, "retries_exhausted")


def test_force_and_duplicate(receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    loop = Loop(Clock(), url, retry_delays=(), max_attempts=5)
    loop.enqueue("t", "a", due=loop.clock.now() + 999)
    assert loop.deliver() == []
    results = loop.deliver(force=True, duplicate=True)
    assert [r[2] for r in results] == [False, True] and len(target.received) == 2


def test_by_due_orders_by_due_time() -> None:
    class Due(Loop):
        by_due = True

    loop = Due(Clock(lambda: 100.0), "http://127.0.0.1:9/", retry_delays=())
    loop.enqueue("t", "late", due=50.0)
    loop.enqueue("t", "early", due=10.0)
    assert [i.event for i in loop.queued()] == ["early", "late"]


def test_drop_target_and_clear() -> None:
    loop = Loop(Clock(), "http://127.0.0.1:9/", retry_delays=())
    loop.enqueue("x", "a")
    loop.enqueue("y", "b")
    loop.drop_target("x", "removed")
    assert [i.event for i in loop.queued()] == ["b"] and loop.dropped[0].reason == "removed"
    loop.clear()
    assert loop.queued() == []


def test_auto_delivery_posts_soon_after_an_event(receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    loop = Loop(Clock(), url, retry_delays=())
    loop.auto = True
    try:
        loop.enqueue("t", "a")
        deadline = time.monotonic() + 5
        while not target.received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        loop.auto = False
    assert target.received[0][0] == b"a"


def test_post_reports_timeouts_refusals_and_sends_basic_auth(
        receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    target.delay = 0.3
    slow = post(url, b"{}", {}, timeout=0.1)
    assert slow.timed_out and slow.status is None and slow.error == "timeout after 0.1s"
    late = post(url, b"{}", {}, timeout=0.25, connect_timeout=1, deadline=True)
    assert late.timed_out and not late.ok
    target.delay = 0.0
    answered = post(url, b"{}", {"Content-Type": "application/json"}, timeout=2,
                    auth=("user", "pw"))
    assert answered.ok and target.received[-1][1]["Authorization"] == "Basic dXNlcjpwdw=="
    refused = post("http://127.0.0.1:9/hook", b"{}", {}, timeout=1)
    assert refused.status is None and refused.error and not refused.timed_out


def test_post_does_not_follow_redirects() -> None:
    def redirect(environ: Any, start_response: Any) -> Any:
        return Response(status=302, headers={"Location": "/elsewhere"})(environ, start_response)

    with LoopbackServer(redirect) as server:
        reply = post(server.url + "/hook", b"", {}, timeout=2)
    assert reply.status == 302 and not reply.ok


def test_hmac_sha256_is_base64_of_the_digest() -> None:
    # RFC 4231 test case 2
    assert hmac_sha256("Jefe", b"what do ya want for nothing?") == (
        "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=")


def test_a_ban_starts_at_the_threshold_and_lifts_when_it_expires() -> None:
    ban = Ban()
    assert [ban.strike(0.0, 3, 60.0) for _ in range(3)] == [False, False, True]
    assert ban.active(59.0) and not ban.active(60.0) and ban.counter == 0
