"""Vendor state kept per scope (portal, company, tenant), made on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class ScopedState(Generic[K, T]):
    """`factory(key)` builds a scope's state the first time it is asked for."""

    def __init__(self, lock: threading.RLock, factory: Callable[[K], T]) -> None:
        self._lock = lock
        self._factory = factory
        self._states: dict[K, T] = {}

    def __getitem__(self, key: K) -> T:
        with self._lock:
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = self._factory(key)
            return state

    def get(self, key: K) -> T | None:
        """The state if the scope has been used, without making it."""
        with self._lock:
            return self._states.get(key)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._states))

    def reset(self) -> None:
        with self._lock:
            self._states.clear()
