"""Xero's call limits, shared by every worker process through Redis.

Per tenant Xero allows 60 calls a minute, 5,000 a day and 5 in flight; per app 10,000 a
minute over all tenants (platform-facts "Limits"). Xero's windows are fixed and reset at
tenant-specific times we cannot see, so we enforce SLIDING windows - never more than N
calls in any 60 s / 24 h span - which stays under the limit whatever Xero's alignment.

Every check-and-reserve is one Lua script, so concurrent workers cannot both take the
last call. Keys start with `paydeck:xero-limit:`:

    tenant:<id>:minute / :day   hash {bucket -> calls}   the tenant's windows
    app:minute                  hash {bucket -> calls}   the app-wide window
    tenant:<id>:slots           zset {token -> expiry}   calls in flight
    tenant:<id>:blocked         hash {until, problem}    after a 429 (app:blocked likewise)

A window counts calls in time buckets (1 s for minute windows, 5 min for the day) and
treats each call as made at the END of its bucket (bucket k holds ((k-1)*size, k*size]).
A call therefore stays counted at least as long as it really would - the count may
over-state a true sliding count by less than a bucket, never under-state it - and a
window holds a bounded number of fields however many calls it counts, so Xero's answer
"only 3 left" costs one field, not 57 entries.

Time comes from `clock` (passed to the scripts; tests inject a fake one) or, by default,
from Redis's own TIME, so workers on hosts with drifting clocks share one time line.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import redis

from xero.errors import RetryLater, header_number, rate_limit_wait

PREFIX = "paydeck:xero-limit:"
MINUTE = 60.0
DAY = 86_400.0
MINUTE_BUCKET = 1.0
DAY_BUCKET = 300.0
# How long to wait for a free in-flight slot: calls end at no predictable time, so poll.
CONCURRENT_POLL = 0.2
# Window buckets are deleted this long after they stop counting, so that a process whose
# clock lags the others' by less than this still sees them.
PRUNE_SLACK = 60.0
# Between a slot token's holder name and its random part.
HOLDER_SEP = "|"
# Shortest pause in call(), so that a zero wait cannot turn into a busy loop.
MIN_PAUSE = 0.01

Problem = Literal["minute", "day", "concurrent", "appminute", "blocked"]

# --- Lua ---------------------------------------------------------------------------------

_LUA_COMMON = (
    f"local MINUTE, DAY = {MINUTE}, {DAY}\n"
    f"local MINUTE_BUCKET, DAY_BUCKET = {MINUTE_BUCKET}, {DAY_BUCKET}\n"
    f"local PRUNE_SLACK, CONCURRENT_POLL = {PRUNE_SLACK}, {CONCURRENT_POLL}\n"
) + """
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  -- Redis < 5 refuses writes after TIME unless the script replicates by effects.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function fmt(x) return string.format('%.6f', x) end

-- Calls in a window. A call at time t goes in bucket k = ceil(t/size) and counts as made
-- at k*size (>= t), so it stays counted while k*size > now - span. Buckets are deleted
-- only PRUNE_SLACK after that: a process whose clock lags ours still counts them.
local function window(key, now, span, size, prune)
  local raw = redis.call('HGETALL', key)
  local live, total, dead = {}, 0, {}
  for i = 1, #raw, 2 do
    local k, n = tonumber(raw[i]), tonumber(raw[i + 1])
    if k * size > now - span then
      live[#live + 1] = {k, n}
      total = total + n
    elseif k * size <= now - span - PRUNE_SLACK then
      dead[#dead + 1] = raw[i]
    end
  end
  if prune and #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  return live, total
end

-- Seconds until one more call fits under `limit`: the oldest buckets leave first.
local function wait_for(live, total, limit, now, span, size)
  local excess = total + 1 - limit
  if excess <= 0 then return 0 end
  table.sort(live, function(x, y) return x[1] < y[1] end)
  local freed = 0
  for _, bucket in ipairs(live) do
    freed = freed + bucket[2]
    if freed >= excess then return bucket[1] * size + span - now end
  end
  return span
end

local function add(key, now, span, size, n)
  redis.call('HINCRBY', key, string.format('%d', math.ceil(now / size)), n)
  redis.call('PEXPIRE', key, math.ceil((span + size + PRUNE_SLACK) * 1000))
end

local function blocked_for(key, now)
  local v = redis.call('HMGET', key, 'until', 'problem')
  local until_ = tonumber(v[1])
  if until_ and until_ > now then return until_ - now, v[2] or '' end
  return 0, ''
end
"""

# KEYS: tenant minute, tenant day, app minute, tenant slots, tenant blocked, app blocked
# ARGV: now, per_minute, per_day, app_per_minute, concurrent, slot_ttl, token
_ACQUIRE = _LUA_COMMON + """
local now = clock(ARGV[1])
local b1, p1 = blocked_for(KEYS[5], now)
local b2, p2 = blocked_for(KEYS[6], now)
if b2 > b1 then b1, p1 = b2, p2 end
if b1 > 0 then return {'blocked', fmt(b1), p1} end

local windows = {
  {'minute', KEYS[1], MINUTE, tonumber(ARGV[2]), MINUTE_BUCKET},
  {'day', KEYS[2], DAY, tonumber(ARGV[3]), DAY_BUCKET},
  {'appminute', KEYS[3], MINUTE, tonumber(ARGV[4]), MINUTE_BUCKET},
}
local problem, wait = '', 0
for _, w in ipairs(windows) do
  local live, total = window(w[2], now, w[3], w[5], true)
  local s = wait_for(live, total, w[4], now, w[3], w[5])
  if s > wait then problem, wait = w[1], s end
end

redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', fmt(now))
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then
  local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  local s = math.min(tonumber(first[2]) - now, CONCURRENT_POLL)
  if s > wait then problem, wait = 'concurrent', s end
end
if problem ~= '' then return {problem, fmt(wait), ''} end

for _, w in ipairs(windows) do add(w[2], now, w[3], w[5], 1) end
local ttl = tonumber(ARGV[6])
redis.call('ZADD', KEYS[4], fmt(now + ttl), ARGV[7])
redis.call('PEXPIRE', KEYS[4], math.ceil(ttl * 1000) + 1000)
return {'ok', fmt(now), ''}
"""

# Raise a window's count to what Xero says it has used: limit - remaining.
# KEYS: tenant minute, tenant day, app minute
# ARGV: now, per_minute, per_day, app_per_minute,
#       remaining minute, remaining day, remaining app ('' = not reported)
_SYNC = _LUA_COMMON + """
local now = clock(ARGV[1])
local spans = {MINUTE, DAY, MINUTE}
local sizes = {MINUTE_BUCKET, DAY_BUCKET, MINUTE_BUCKET}
for i = 1, 3 do
  local remaining = tonumber(ARGV[4 + i])
  if remaining then
    local _, total = window(KEYS[i], now, spans[i], sizes[i], true)
    local missing = math.floor(tonumber(ARGV[1 + i]) - remaining - total)
    if missing > 0 then add(KEYS[i], now, spans[i], sizes[i], missing) end
  end
end
return 'ok'
"""

# Block until now + seconds, unless already blocked for longer.
# KEYS: blocked key; ARGV: now, seconds, problem
_BLOCK = _LUA_COMMON + """
local now = clock(ARGV[1])
local seconds = tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], 'until'))
if current and current >= now + seconds then return fmt(current) end
redis.call('HSET', KEYS[1], 'until', fmt(now + seconds), 'problem', ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(seconds * 1000) + 1000)
return fmt(now + seconds)
"""

# Read-only: calls left in each window, free slots, seconds blocked.
# KEYS: as _ACQUIRE; ARGV: now, per_minute, per_day, app_per_minute, concurrent
_STATUS = _LUA_COMMON + """
local now = clock(ARGV[1])
local _, m = window(KEYS[1], now, MINUTE, MINUTE_BUCKET, false)
local _, d = window(KEYS[2], now, DAY, DAY_BUCKET, false)
local _, a = window(KEYS[3], now, MINUTE, MINUTE_BUCKET, false)
local held = redis.call('ZCOUNT', KEYS[4], '(' .. fmt(now), '+inf')
local b1 = blocked_for(KEYS[5], now)
local b2 = blocked_for(KEYS[6], now)
return {tonumber(ARGV[2]) - m, tonumber(ARGV[3]) - d, tonumber(ARGV[4]) - a,
        tonumber(ARGV[5]) - held, fmt(math.max(b1, b2))}
"""


# --- configuration and results -----------------------------------------------------------

@dataclass(frozen=True)
class LimitConfig:
    """Xero's limits (platform-facts "Limits"); every process sharing Redis must agree.

    A "Starter" tier may allow only 1,000 calls a day (unverified): set `per_day`, or let
    observe() learn it from X-DayLimit-Remaining.
    """

    per_minute: int = 60
    per_day: int = 5000
    concurrent: int = 5
    app_per_minute: int = 10_000
    slot_ttl: float = 120.0  # a crashed holder's slot frees after this; > the HTTP timeout

    def __post_init__(self) -> None:
        for name in ("per_minute", "per_day", "concurrent", "app_per_minute", "slot_ttl"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LimitConfig.{name} must be positive")


class Wait(RetryLater):
    """No call may be made now; `seconds` until one could, `problem` says which limit.

    `problem` "blocked" means Xero answered 429 recently (`detail` holds its
    X-Rate-Limit-Problem). For "concurrent" the wait is a polling hint: in-flight calls
    end when they end. A RetryLater, so a job that lets it escape is re-enqueued like any
    other retry.
    """

    def __init__(self, seconds: float, problem: Problem, detail: str = "") -> None:
        why = f"Xero {problem} limit" + (f" ({detail})" if detail else "")
        super().__init__(seconds, why)
        self.args = (seconds, problem, detail)  # pickles as Wait(seconds, problem, detail)
        self.problem: Problem = problem
        self.detail = detail


class Slot:
    """One reserved call. Leaving the `with` block (or release()) frees the in-flight
    slot; the call still counts in the minute and day windows."""

    def __init__(self, limiter: XeroLimiter, tenant_id: str, token: str,
                 granted_at: float) -> None:
        self.tenant_id = tenant_id
        self.token = token
        self.granted_at = granted_at  # the limiter's clock at the grant
        self._limiter = limiter
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self.tenant_id, self.token)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


# --- the limiter -------------------------------------------------------------------------

class XeroLimiter:
    """Reserve Xero calls against limits shared by every process using the same Redis."""

    def __init__(self, redis_client: redis.Redis, config: LimitConfig | None = None,
                 clock: Callable[[], float] | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, prefix: str = PREFIX,
                 holder: str = "", holder_alive: Callable[[str], bool] | None = None) -> None:
        """`clock=None` uses Redis's clock; `prefix` separates deployments (or tests).

        `holder` names the process making the calls and `holder_alive` says whether a named
        process still lives: then an in-flight slot left by a killed process is freed as soon
        as the tenant runs out of slots, not after `slot_ttl`.
        """
        self.redis = redis_client
        self.config = config or LimitConfig()
        self.clock = clock
        self.prefix = prefix
        self.holder, self.holder_alive = holder, holder_alive
        self._sleep = sleep
        self._acquire_script = redis_client.register_script(_ACQUIRE)
        self._sync_script = redis_client.register_script(_SYNC)
        self._block_script = redis_client.register_script(_BLOCK)
        self._status_script = redis_client.register_script(_STATUS)

    def acquire(self, tenant_id: str) -> Slot:
        """Reserve one call in every window and one in-flight slot, or raise Wait.

        Never sleeps. Use the Slot as a context manager around the HTTP call.
        """
        cfg = self.config
        token = f"{self.holder}{HOLDER_SEP}{uuid.uuid4().hex}" if self.holder else uuid.uuid4().hex
        result = self._acquire_script(keys=self._keys(tenant_id), args=[
            self._now(), cfg.per_minute, cfg.per_day, cfg.app_per_minute, cfg.concurrent,
            cfg.slot_ttl, token])
        outcome, number, detail = (_str(part) for part in result)
        if outcome != "ok":
            raise Wait(float(number), outcome, detail)  # type: ignore[arg-type]
        return Slot(self, tenant_id, token, float(number))

    @contextmanager
    def call(self, tenant_id: str, max_wait: float) -> Iterator[Slot]:
        """Hold a slot for one call, sleeping up to `max_wait` seconds in all to get it.

        For SHORT waits only (style point 5): a Wait longer than what is left of
        `max_wait` is raised at once, so the job can re-enqueue itself instead.
        """
        with self._acquire_within(tenant_id, max_wait) as slot:
            yield slot

    def _acquire_within(self, tenant_id: str, max_wait: float) -> Slot:
        waited = 0.0
        while True:
            try:
                return self.acquire(tenant_id)
            except Wait as wait:
                if wait.problem == "concurrent" and self._free_dead_slots(tenant_id):
                    continue
                pause = max(wait.seconds, MIN_PAUSE)
                if waited + pause > max_wait:
                    raise
                self._sleep(pause)
                waited += pause

    def observe(self, tenant_id: str, status: int, headers: Mapping[str, str] | None) -> None:
        """Learn from a Xero response's headers, so every worker sees what Xero sees.

        X-MinLimit-Remaining / X-DayLimit-Remaining / X-AppMinLimit-Remaining can only
        LOWER our budget (Xero counted calls we did not: other apps, lost responses). A 429
        blocks the tenant - or the whole app for "appminute" - until Retry-After, so no
        worker keeps knocking (platform-facts "Limits").
        """
        remaining = [header_number(headers, name) for name in
                     ("X-MinLimit-Remaining", "X-DayLimit-Remaining", "X-AppMinLimit-Remaining")]
        if any(value is not None for value in remaining):
            cfg = self.config
            self._sync_script(keys=self._keys(tenant_id)[:3], args=[
                self._now(), cfg.per_minute, cfg.per_day, cfg.app_per_minute,
                *("" if v is None else v for v in remaining)])
        if status == 429:
            problem, seconds = rate_limit_wait(headers)
            self.block(tenant_id, seconds, problem or "unspecified")

    def block(self, tenant_id: str, seconds: float, problem: str) -> None:
        """Refuse every acquire() for this tenant (the app, for "appminute") for a while."""
        keys = self._keys(tenant_id)
        key = keys[5] if problem == "appminute" else keys[4]
        self._block_script(keys=[key], args=[self._now(), seconds, problem])

    def remaining(self, tenant_id: str) -> dict[str, float]:
        """What is left right now: calls per window, free slots, seconds still blocked."""
        cfg = self.config
        result = self._status_script(keys=self._keys(tenant_id), args=[
            self._now(), cfg.per_minute, cfg.per_day, cfg.app_per_minute, cfg.concurrent])
        minute, day, app, slots, blocked = result
        return {"minute": max(0, int(minute)), "day": max(0, int(day)),
                "appminute": max(0, int(app)), "concurrent": max(0, int(slots)),
                "blocked": float(_str(blocked))}

    def available(self, tenant_id: str) -> int:
        """How many calls a batch planner could make now (windows only; in-flight slots
        free up as calls end, so they bound parallelism, not the count)."""
        left = self.remaining(tenant_id)
        if left["blocked"] > 0:
            return 0
        return int(min(left["minute"], left["day"], left["appminute"]))

    def _free_dead_slots(self, tenant_id: str) -> bool:
        """Drop in-flight slots whose holder is known to be dead; True if any were."""
        if self.holder_alive is None:
            return False
        key = self._keys(tenant_id)[3]
        dead = [token for token in (_str(t) for t in self.redis.zrange(key, 0, -1))
                if HOLDER_SEP in token and not self.holder_alive(token.rsplit(HOLDER_SEP, 1)[0])]
        return bool(dead) and bool(self.redis.zrem(key, *dead))

    def _release(self, tenant_id: str, token: str) -> None:
        self.redis.zrem(self._keys(tenant_id)[3], token)

    def _keys(self, tenant_id: str) -> list[str]:
        tenant = f"{self.prefix}tenant:{tenant_id}:"
        return [f"{tenant}minute", f"{tenant}day", f"{self.prefix}app:minute",
                f"{tenant}slots", f"{tenant}blocked", f"{self.prefix}app:blocked"]

    def _now(self) -> str:
        """The time for the scripts: our clock, or "" for Redis's TIME."""
        return "" if self.clock is None else f"{self.clock():.6f}"


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

