"""Rate windows on the fake clock, and the answer a limiter gives one call.

Each vendor keeps its own limits and limit-header names, rendered from a `WindowState`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sandbox.kit.clock import Clock

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Admission:
    """A limiter's answer: the limit headers as things stand, or why the call was refused."""

    headers: dict[str, str] = field(default_factory=dict)
    refused: str | None = None
    """The vendor's word for the limit hit (a policy name, "burst", "day"); None: admitted."""
    retry_after: int | None = None

    @property
    def allowed(self) -> bool:
        return self.refused is None


ADMITTED = Admission()


@dataclass(frozen=True)
class WindowState:
    """One window as a vendor's limit headers describe it."""

    limit: int
    used: int
    length: float
    reset_in: int
    """Whole seconds until the oldest call leaves the window (at least 1)."""

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class RollingWindows(Generic[K]):
    """A rolling window per key (a scope, or a scope and a limit's name) of the weighted calls
    of the last `length` seconds. `length` and `limit` come with every call, so tests may
    change a vendor's limits live. The caller holds the fake's lock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[K, deque[tuple[float, int]]] = {}

    def reset(self) -> None:
        self._windows.clear()

    def used(self, key: K, length: float) -> int:
        return sum(weight for _, weight in self._pruned(key, length))

    def admit(self, key: K, length: float, limit: int, weight: int = 1) -> bool:
        """Count the call in if it fits; a refused call is not counted."""
        if self.used(key, length) + weight > limit:
            return False
        self._windows[key].append((self._clock.now(), weight))
        return True

    def state(self, key: K, length: float, limit: int) -> WindowState:
        now = self._clock.now()
        window = self._pruned(key, length)
        oldest = window[0][0] if window else now
        reset_in = max(1, math.ceil(oldest + length - now))
        return WindowState(limit, sum(w for _, w in window), length, reset_in)

    def _pruned(self, key: K, length: float) -> deque[tuple[float, int]]:
        now = self._clock.now()
        window = self._windows.setdefault(key, deque())
        while window and window[0][0] <= now - length:
            window.popleft()
        return window


@dataclass
class FixedWindow:
    """A counter that empties every `length` seconds from its first call (so per scope), or
    with `aligned` on multiples of `length` since the epoch (a day resetting at 00:00 UTC)."""

    length: float
    aligned: bool = False
    start: float | None = None
    count: int = 0

    def roll(self, now: float) -> None:
        if self.start is None or now >= self.start + self.length:
            self.start = now - now % self.length if self.aligned else now
            self.count = 0

    def retry_after(self, now: float) -> int:
        start = self.start if self.start is not None else now
        return max(1, math.ceil(start + self.length - now))
