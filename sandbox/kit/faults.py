"""Injected faults: what a fake answers instead of doing its work, for the next few calls."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

PathMatch = Callable[[str, str], bool]
"""``(prefix, path)``: whether a fault or a call-count filter on `prefix` covers `path`."""


def prefix_match(prefix: str, path: str) -> bool:
    return path.startswith(prefix)


@dataclass
class Fault:
    """One injected fault; `remaining` counts down (None: until cleared).

    `kind` is the vendor's word ("5xx", "429", "slow", "lost_response"...). `method`,
    `path_prefix` and `scope` (a portal, company, tenant or grant type) narrow which calls
    it hits; None matches all. `skip` lets that many matching calls through first (a fault
    on page 31 of 61). `detail` and `retry_after` are what an injected 429 says (HubSpot's
    policyName, Xero's rate-limit problem).
    """

    kind: str
    method: str | None = None
    path_prefix: str | None = None
    scope: Hashable | None = None
    remaining: int | None = 1
    status: int | None = None
    delay: float | None = None
    detail: str | None = None
    retry_after: int | None = None
    skip: int = 0

    @property
    def live(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def matches(self, method: str, path: str, scope: Hashable,
                path_match: PathMatch = prefix_match) -> bool:
        return (self.live and (self.method is None or self.method.upper() == method.upper())
                and (self.path_prefix is None or path_match(self.path_prefix, path))
                and (self.scope is None or self.scope == scope))


class FaultInjector:
    """Faults waiting for matching calls, first injected first used (caller holds the lock);
    `kinds` are the vendor's, `path_match` how a prefix covers a path (ignoring case...)."""

    def __init__(self, kinds: Sequence[str], *, path_match: PathMatch = prefix_match) -> None:
        self.kinds = tuple(kinds)
        self.path_match = path_match
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in self.kinds:
            raise ValueError(f"fault kind must be one of {self.kinds}, not {fault.kind!r}")
        if fault.kind == "slow" and not fault.delay:
            raise ValueError("a 'slow' fault needs delay= (seconds)")
        if fault.kind == "5xx" and not 500 <= (fault.status or 500) <= 599:
            raise ValueError("a '5xx' fault needs a status between 500 and 599")
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str, scope: Hashable) -> Fault | None:
        """The first matching fault, used once; a fault still skipping lets this call by."""
        for fault in self._faults:
            if fault.matches(method, path, scope, self.path_match):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                self.use(fault)
                return fault
        return None

    def peek(self, method: str, path: str, scope: Hashable) -> Fault | None:
        """The fault `take` would use, left unused (`use` it once the call goes ahead)."""
        return next((f for f in self._faults
                     if f.skip == 0 and f.matches(method, path, scope, self.path_match)), None)

    @staticmethod
    def use(fault: Fault) -> None:
        if fault.remaining is not None:
            fault.remaining -= 1

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if f.live]
