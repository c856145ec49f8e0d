"""Pipedrive's token-based rate limits (platform-facts; core-api-concepts-rate-limiting): a
daily token budget per company and a burst limit per user over a rolling window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sandbox.kit.clock import Clock
from sandbox.kit.windows import Admission, FixedWindow, RollingWindows

DAY_S = 86_400.0
DAILY_BUDGET_HEADER = "x-daily-requests-left"
"""Remaining daily tokens. Unverified: the name is the pre-token-era daily header; the
token-based docs we have do not name a daily-budget header."""


@dataclass
class RateLimits:
    """Token-based limits (platform-facts; token costs: routes.py). Mutable: tests may change
    them live.

    `daily_budget` is per company and resets at 00:00 UTC; the burst limit is per
    user (a user's OAuth tokens share it) over a rolling `burst_window`. Pipedrive's
    docs state the burst limit in requests; set `burst_unit="tokens"` to count tokens.
    """

    daily_budget: int = 30_000
    burst_limit: int = 80
    burst_window: float = 2.0
    burst_unit: Literal["requests", "tokens"] = "requests"


class RateLimiter:
    """Daily token spend per company and rolling burst windows per (company, user)."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._daily: dict[int, FixedWindow] = {}
        self._burst: RollingWindows[tuple[int, int]] = RollingWindows(clock)

    def reset(self) -> None:
        self._daily.clear()
        self._burst.reset()

    def admit(self, company_id: int, user_id: int, cost: int) -> Admission:
        """Charge `cost` tokens, or refuse ("daily", "burst") without charging (lock held)."""
        limits, now = self.limits, self._clock.now()
        day = self._day(company_id)
        weight = cost if limits.burst_unit == "tokens" else 1
        if day.count + cost > limits.daily_budget:
            return Admission(self.headers(company_id, user_id), "daily", day.retry_after(now))
        key = (company_id, user_id)
        if not self._burst.admit(key, limits.burst_window, limits.burst_limit, weight):
            headers = self.headers(company_id, user_id)
            return Admission(headers, "burst", int(headers["x-ratelimit-reset"]))
        day.count += cost
        return Admission(self.headers(company_id, user_id))

    def headers(self, company_id: int, user_id: int) -> dict[str, str]:
        limits = self.limits
        burst = self._burst.state((company_id, user_id), limits.burst_window, limits.burst_limit)
        daily_left = max(0, limits.daily_budget - self.spent_today(company_id))
        return {
            "x-ratelimit-limit": str(burst.limit),
            "x-ratelimit-remaining": str(burst.remaining),
            "x-ratelimit-reset": str(burst.reset_in),
            DAILY_BUDGET_HEADER: str(daily_left),
        }

    def spent_today(self, company_id: int) -> int:
        return self._day(company_id).count

    def _day(self, company_id: int) -> FixedWindow:
        day = self._daily.setdefault(company_id, FixedWindow(DAY_S, aligned=True))
        day.roll(self._clock.now())
        return day
