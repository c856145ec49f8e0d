"""xero.limits against a real Redis, with a fake clock passed to the scripts (no sleeping)."""

from __future__ import annotations

import multiprocessing
import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from app.redis_conn import connect
from xero.errors import RetryLater
from xero.limits import CONCURRENT_POLL, PREFIX, LimitConfig, Slot, Wait, XeroLimiter

T0 = 999_900.0  # a multiple of the 1 s and 300 s buckets, so counts are exact
TENANT = "tenant-a"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = connect(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """Keys of one test only, so tests (and concurrent suites on db 15) do not meet."""
    value = f"{PREFIX}test-{uuid.uuid4().hex}:"
    yield value
    keys = list(client.scan_iter(f"{value}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeLimiter = Callable[..., XeroLimiter]


@pytest.fixture
def make_limiter(client: redis.Redis, prefix: str, clock: FakeClock) -> MakeLimiter:
    def make(config: LimitConfig | None = None, **kwargs: Any) -> XeroLimiter:
        kwargs.setdefault("clock", clock)
        return XeroLimiter(client, config, prefix=prefix, **kwargs)
    return make


def take(limiter: XeroLimiter, n: int, tenant: str = TENANT) -> None:
    """Make n calls that end at once (the slots are released)."""
    for _ in range(n):
        limiter.acquire(tenant).release()


def wait_of(limiter: XeroLimiter, tenant: str = TENANT) -> Wait:
    with pytest.raises(Wait) as caught:
        limiter.acquire(tenant)
    return caught.value


def assert_wait(wait: Wait, problem: str, seconds: float, detail: str | None = None) -> None:
    assert wait.problem == problem
    assert wait.seconds == pytest.approx(seconds)
    if detail is not None:
        assert wait.detail == detail


# --- windows ------------------------------------------------------------------------------

def test_sixty_calls_then_wait_for_the_minute(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter()
    take(limiter, 60)
    clock.advance(12.0)
    wait = wait_of(limiter)
    assert_wait(wait, "minute", 48.0)
    clock.advance(47.9)
    assert wait_of(limiter).problem == "minute"
    clock.advance(0.1)
    take(limiter, 60)


def test_calls_count_from_the_end_of_their_one_second_bucket(make_limiter: MakeLimiter,
                                                             clock: FakeClock) -> None:
    limiter = make_limiter(LimitConfig(per_minute=1))
    clock.advance(0.25)
    take(limiter, 1)
    assert wait_of(limiter).seconds == pytest.approx(60.75)  # never less than the true 60


def test_window_slides_instead_of_resetting(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter()
    take(limiter, 30)
    clock.advance(30)
    take(limiter, 30)
    assert wait_of(limiter).seconds == pytest.approx(30.0)  # the first 30 leave at T0 + 60
    clock.advance(30)
    assert limiter.available(TENANT) == 30
    take(limiter, 30)
    assert wait_of(limiter).seconds == pytest.approx(30.0)


def test_no_burst_across_what_could_be_xeros_fixed_minute(make_limiter: MakeLimiter,
                                                          clock: FakeClock) -> None:
    limiter = make_limiter()
    clock.advance(59)
    take(limiter, 60)
    clock.advance(2)  # a fixed window aligned on T0 + 60 would allow 60 more here
    wait = wait_of(limiter)
    assert_wait(wait, "minute", 58.0)


def test_day_limit(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(LimitConfig(per_day=5))
    for _ in range(5):
        take(limiter, 1)
        clock.advance(600)
    wait = wait_of(limiter)
    assert_wait(wait, "day", 86_400 - 3000)
    assert limiter.remaining(TENANT)["day"] == 0
    clock.advance(wait.seconds)
    take(limiter, 1)
    assert wait_of(limiter).seconds == pytest.approx(600.0)  # the second call leaves next


def test_the_longest_wait_wins(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(LimitConfig(per_minute=3, per_day=3))
    take(limiter, 3)
    assert wait_of(limiter).problem == "day"


def test_app_wide_limit_spans_tenants(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(LimitConfig(app_per_minute=3))
    take(limiter, 2, "tenant-a")
    take(limiter, 1, "tenant-b")
    for tenant in ("tenant-a", "tenant-b", "tenant-c"):
        wait = wait_of(limiter, tenant)
        assert_wait(wait, "appminute", 60.0)
    clock.advance(60)
    take(limiter, 3, "tenant-c")


# --- calls in flight ----------------------------------------------------------------------

def test_five_in_flight_then_wait_and_release_frees_one(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    slots = [limiter.acquire(TENANT) for _ in range(5)]
    wait = wait_of(limiter)
    assert wait.problem == "concurrent"
    assert 0 < wait.seconds <= CONCURRENT_POLL
    limiter.acquire("tenant-b").release()  # other tenants are not affected
    with slots[0]:
        pass
    with limiter.acquire(TENANT) as slot:
        assert isinstance(slot, Slot)
        assert wait_of(limiter).problem == "concurrent"
    slots[1].release()
    slots[1].release()  # twice is harmless and frees nothing more
    assert limiter.remaining(TENANT)["concurrent"] == 2


def test_a_crashed_holders_slot_expires(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(LimitConfig(slot_ttl=120))
    for _ in range(5):
        limiter.acquire(TENANT)  # never released: the worker died
    clock.advance(119)
    assert wait_of(limiter).problem == "concurrent"
    clock.advance(1.5)
    limiter.acquire(TENANT).release()


# --- learning from Xero -------------------------------------------------------------------

def test_429_minute_blocks_every_worker_until_retry_after(make_limiter: MakeLimiter,
                                                          clock: FakeClock) -> None:
    one, other = make_limiter(), make_limiter()
    one.observe(TENANT, 429, {"X-Rate-Limit-Problem": "minute", "Retry-After": "17"})
    wait = wait_of(other)
    assert_wait(wait, "blocked", 17, detail="minute")
    assert other.available(TENANT) == 0
    take(other, 1, "tenant-b")  # a tenant's minute 429 leaves the others alone
    clock.advance(16.9)
    assert wait_of(other).seconds == pytest.approx(0.1)
    clock.advance(0.1)
    take(other, 1)


def test_429_day_blocks_until_retry_after(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter()
    limiter.observe(TENANT, 429, {"x-rate-limit-problem": "day", "retry-after": "40000"})
    wait = wait_of(limiter)
    assert_wait(wait, "blocked", 40000, detail="day")
    limiter.observe(TENANT, 429, {"X-Rate-Limit-Problem": "minute", "Retry-After": "5"})
    assert wait_of(limiter).seconds == pytest.approx(40000)  # a shorter block never shortens it
    clock.advance(40000)
    take(limiter, 1)


def test_429_appminute_blocks_all_tenants(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limiter.observe(TENANT, 429, {"X-Rate-Limit-Problem": "appminute", "Retry-After": "30"})
    assert wait_of(limiter, "tenant-b").seconds == pytest.approx(30)


def test_429_without_retry_after_still_backs_off(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limiter.observe(TENANT, 429, {"X-Rate-Limit-Problem": "concurrent"})
    assert wait_of(limiter).seconds == pytest.approx(1.0)


def test_xeros_remaining_lowers_our_budget_never_raises_it(make_limiter: MakeLimiter,
                                                           clock: FakeClock) -> None:
    limiter = make_limiter()
    take(limiter, 2)
    assert limiter.available(TENANT) == 58
    limiter.observe(TENANT, 200, {"X-MinLimit-Remaining": "3", "X-DayLimit-Remaining": "4990"})
    assert limiter.available(TENANT) == 3
    assert limiter.remaining(TENANT)["day"] == 4990
    limiter.observe(TENANT, 200, {"X-MinLimit-Remaining": "3"})  # the same news twice
    limiter.observe(TENANT, 200, {"X-MinLimit-Remaining": "50"})  # stale or higher: ignored
    take(limiter, 3)
    assert wait_of(limiter).problem == "minute"
    clock.advance(60)
    assert limiter.available(TENANT) == 60


def test_app_remaining_is_shared(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(LimitConfig(app_per_minute=100))
    limiter.observe(TENANT, 200, {"X-AppMinLimit-Remaining": "1", "X-MinLimit-Remaining": "x"})
    take(limiter, 1, "tenant-b")
    assert wait_of(limiter, "tenant-c").problem == "appminute"


def test_remaining_reports_every_limit(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    slot = limiter.acquire(TENANT)
    assert limiter.remaining(TENANT) == {"minute": 59, "day": 4999, "appminute": 9999,
                                         "concurrent": 4, "blocked": 0.0}
    slot.release()


# --- call(): short waits inside, long ones out --------------------------------------------

def test_call_sleeps_through_a_short_wait(make_limiter: MakeLimiter) -> None:
    held: list[Slot] = []
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        held.pop().release()  # meanwhile another worker's call ends

    limiter = make_limiter(sleep=sleep)
    held.extend(limiter.acquire(TENANT) for _ in range(5))
    with limiter.call(TENANT, max_wait=2.0) as slot:
        assert limiter.remaining(TENANT)["concurrent"] == 0
    assert slept == [pytest.approx(CONCURRENT_POLL)]
    assert limiter.remaining(TENANT)["concurrent"] == 1
    assert isinstance(slot, Slot)


def test_call_raises_a_long_wait_at_once(make_limiter: MakeLimiter) -> None:
    def sleep(seconds: float) -> None:
        raise AssertionError("must not sleep through a minute")

    limiter = make_limiter(LimitConfig(per_minute=1), sleep=sleep)
    with limiter.call(TENANT, max_wait=5):
        pass
    with pytest.raises(Wait) as caught, limiter.call(TENANT, max_wait=5):
        pass
    assert caught.value.problem == "minute"


def test_call_gives_up_after_max_wait(make_limiter: MakeLimiter) -> None:
    slept: list[float] = []
    limiter = make_limiter(sleep=slept.append)
    for _ in range(5):
        limiter.acquire(TENANT)
    with pytest.raises(Wait), limiter.call(TENANT, max_wait=1.0):
        pass
    assert sum(slept) <= 1.0 and len(slept) == int(1.0 / CONCURRENT_POLL + 1e-9)


def test_wait_is_a_retry_later_and_pickles() -> None:
    wait = Wait(3.5, "blocked", "day")
    assert isinstance(wait, RetryLater)
    copy = pickle.loads(pickle.dumps(wait))
    assert (copy.seconds, copy.problem, copy.detail, str(copy)) == (3.5, "blocked", "day",
                                                                    str(wait))


def test_redis_clock_by_default(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(clock=None)
    before = time.time()
    with limiter.acquire(TENANT) as slot:
        assert before - 1 < slot.granted_at < time.time() + 1  # same host: clocks agree
    assert limiter.remaining(TENANT)["minute"] == 59


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        LimitConfig(concurrent=0)


# --- many processes -----------------------------------------------------------------------

SPEED = 60.0  # one real second is a fake minute, so windows slide within the test


@dataclass(frozen=True)
class ScaledClock:
    """The same fast clock in every process (they share the host's time.time())."""

    origin: float

    def __call__(self) -> float:
        return T0 + (time.time() - self.origin) * SPEED


def hammer(redis_url: str, prefix: str, config: LimitConfig, clock: ScaledClock,
           start: Any, seconds: float, results: Any) -> None:
    """One worker process: acquire as fast as it can, hold each slot briefly."""
    limiter = XeroLimiter(connect(redis_url), config, clock, prefix=prefix)
    grants: list[tuple[float, float, float]] = []
    start.wait(30)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            slot = limiter.acquire(TENANT)
        except Wait as wait:
            time.sleep(min(wait.seconds / SPEED, 0.002))
            continue
        held_from = clock()  # after the grant: inside the real holding time
        time.sleep(0.001)
        held_to = clock()    # before the release: inside it too
        slot.release()
        grants.append((slot.granted_at, held_from, held_to))
    results.put(grants)


def test_processes_sharing_redis_never_exceed_the_limits(redis_url: str, prefix: str) -> None:
    config = LimitConfig(per_minute=60, per_day=100, concurrent=2)
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    clock = ScaledClock(time.time())
    workers = [context.Process(target=hammer, args=(redis_url, prefix, config, clock, start,
                                                    2.0, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    grants = [grant for _ in workers for grant in results.get(timeout=60)]
    for worker in workers:
        worker.join(10)

    times = sorted(granted for granted, _, _ in grants)
    assert 60 <= len(times) <= config.per_day
    in_any_minute = max(sum(1 for t in times if end - 60 < t <= end) for end in times)
    assert in_any_minute <= config.per_minute
    assert _max_overlap([(start_, end) for _, start_, end in grants]) <= config.concurrent


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak
