"""A wall clock that tests can move forward."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    """Seconds since the epoch from `source`, plus an offset added by `advance()`: fakes read
    every expiry from it, so a test can jump 31 minutes ahead without sleeping."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._source() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
