"""Webhook delivery as the vendors do it: queued events, signed POSTs, retries and bans."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from sandbox.kit.clock import Clock

E = TypeVar("E")
R = TypeVar("R")


def hmac_sha256(key: str, message: bytes) -> str:
    """base64(HMAC-SHA256(key, message)), the signature HubSpot (v3) and Xero send."""
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Reply:
    """How a receiver answered one POST; `status` None: no answer at all."""

    status: int | None
    error: str | None
    """Why there was no usable answer (a timeout, a refused connection); None otherwise."""
    elapsed: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float,
         connect_timeout: float | None = None, auth: tuple[str, str] | None = None,
         deadline: bool = False) -> Reply:
    """POST `body` to `url`, never following a redirect. `timeout` bounds each wait for the
    receiver (`connect_timeout`, if given, the connection); with `deadline` an answer later
    than `timeout` in total also counts as a timeout. `auth` is sent as HTTP Basic."""
    parts = urlsplit(url)
    started = time.monotonic()
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=connect_timeout or timeout)
    sent = dict(headers)
    if auth is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode("latin-1")).decode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.request("POST", target, body=body, headers=sent)
        with conn.getresponse() as response:
            response.read()
            status = response.status
    except TimeoutError:
        status = None
    except (OSError, http.client.HTTPException) as exc:
        return Reply(None, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    if status is None or (deadline and elapsed > timeout):
        return Reply(status, f"timeout after {timeout:g}s", elapsed, True)
    return Reply(status, None, elapsed)


@dataclass(eq=False)  # compared by identity: each queued attempt is its own item
class Pending(Generic[E]):
    """One event waiting for its next attempt at `due` (fake clock)."""

    seq: int
    target: Hashable
    """Who receives it: a webhook, or an app in one portal."""
    event: E
    attempt: int
    due: float


@dataclass(frozen=True)
class Dropped(Generic[E]):
    """An event its target will never receive, and why (the vendor's word)."""

    target: Hashable
    event: E
    attempt: int
    reason: str
    time: float


@dataclass
class Ban:
    """First-attempt failures of one target in a row, and the ban they earn."""

    counter: int = 0
    until: float | None = None

    def active(self, now: float) -> bool:
        """Whether the ban is on; an expired ban is lifted and the counter zeroed."""
        if self.until is not None and now >= self.until:
            self.until, self.counter = None, 0
        return self.until is not None

    def strike(self, now: float, threshold: int, seconds: float) -> bool:
        """Count a failure; True if it reached `threshold` and the ban began."""
        self.counter += 1
        if self.counter >= threshold:
            self.until = now + seconds
        return self.counter >= threshold


class DeliveryLoop(ABC, Generic[E, R]):
    """Queued events of one fake, delivered by `deliver()` or a background thread.

    Events due on the fake clock are posted oldest first (by queue order, or with
    `by_due` by due time), `max_batch` to a POST for targets in one `group_of`. One run
    at a time, so each target gets its events in order; HTTP goes out without the lock.
    After attempt n fails, `retry` waits ``retry_delays[n-1]`` (the last one repeats)
    until `max_attempts` (None: one more than there are delays), then drops the event.
    """

    first_attempt: ClassVar[int] = 1
    by_due: ClassVar[bool] = False
    thread_name: ClassVar[str] = "webhooks"

    def __init__(self, lock: threading.RLock, clock: Clock, *, retry_delays: tuple[float, ...],
                 max_attempts: int | None = None, max_batch: int = 1) -> None:
        self.lock = lock
        self.clock = clock
        self.retry_delays = retry_delays
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self._queue: list[Pending[E]] = []
        self._seq = itertools.count(1)
        self._results: list[R] = []
        self._dropped: list[Dropped[E]] = []
        self._run_lock = threading.Lock()
        self._auto = False
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    # ----- hooks ------------------------------------------------------------------------

    def ready(self, item: Pending[E]) -> bool:
        """Whether a due item can go now (e.g. its target has a URL); lock held."""
        return True

    def group_of(self, item: Pending[E]) -> Hashable:
        """Items of one group may share a POST (up to `max_batch`)."""
        return item.seq

    @abstractmethod
    def prepare(self, items: list[Pending[E]]) -> Any:
        """What `send` needs, read under the lock (URL, secret, the body's events)."""

    @abstractmethod
    def send(self, items: list[Pending[E]], prepared: Any, *, duplicate: bool) -> R:
        """POST one batch (no lock held) and describe the outcome."""

    @abstractmethod
    def settle(self, items: list[Pending[E]], result: R) -> R:
        """Apply the vendor's policy to a sent batch (`retry`, `drop`); lock held."""

    # ----- the queue (each takes the lock) ------------------------------------------------

    def enqueue(self, target: Hashable, event: E, *, attempt: int | None = None,
                due: float | None = None) -> Pending[E]:
        with self.lock:
            first = self.first_attempt if attempt is None else attempt
            when = self.clock.now() if due is None else due
            item = Pending(next(self._seq), target, event, first, when)
            self._queue.append(item)
        self.wake()
        return item

    def queued(self) -> list[Pending[E]]:
        with self.lock:
            return self._ordered(self._queue)

    def retry(self, item: Pending[E]) -> float | None:
        """Queue the next attempt of a failed one; None if it was the last (dropped)."""
        with self.lock:
            made = item.attempt - self.first_attempt + 1
            limit = self.max_attempts or len(self.retry_delays) + 1
            if made >= limit:
                self.drop(item, "retries_exhausted")
                return None
            delays = self.retry_delays or (0.0,)
            due = self.clock.now() + delays[min(made - 1, len(delays) - 1)]
            self._queue.append(Pending(next(self._seq), item.target, item.event, item.attempt + 1, due))
            return due

    def drop(self, item: Pending[E], reason: str) -> None:
        with self.lock:
            if item in self._queue:
                self._queue.remove(item)
            self._dropped.append(Dropped(item.target, item.event, item.attempt, reason, self.clock.now()))

    def drop_target(self, target: Hashable, reason: str) -> None:
        """Drop every queued event of `target`."""
        with self.lock:
            for item in [i for i in self._queue if i.target == target]:
                self.drop(item, reason)

    def clear(self) -> None:
        with self.lock:
            self._queue.clear()

    @property
    def results(self) -> list[R]:
        with self.lock:
            return list(self._results)

    @property
    def dropped(self) -> list[Dropped[E]]:
        with self.lock:
            return list(self._dropped)

    # ----- delivery -----------------------------------------------------------------------

    def deliver(self, *, force: bool = False, duplicate: bool = False) -> list[R]:
        """POST what is due (with `force`, every queued event); one result per POST.
        `duplicate` posts every batch twice, as vendors may; only the first answer counts."""
        with self._run_lock:
            with self.lock:
                batches = self._batches(force)
            return [r for batch in batches for r in self._deliver_batch(batch, duplicate)]

    def _batches(self, force: bool) -> list[list[Pending[E]]]:
        now = self.clock.now()
        due = [i for i in self._ordered(self._queue) if (force or i.due <= now) and self.ready(i)]
        groups: dict[Hashable, list[Pending[E]]] = {}
        for item in due:
            groups.setdefault(self.group_of(item), []).append(item)
        size = max(1, self.max_batch)
        return [items[n:n + size] for items in groups.values() for n in range(0, len(items), size)]

    def _deliver_batch(self, batch: list[Pending[E]], duplicate: bool) -> list[R]:
        with self.lock:
            items = [i for i in batch if i in self._queue]  # not dropped meanwhile
            if not items:
                return []
            for item in items:
                self._queue.remove(item)
            prepared = self.prepare(items)
        first = self.send(items, prepared, duplicate=False)
        copies = [self.send(items, prepared, duplicate=True)] if duplicate else []
        with self.lock:
            sent = [self.settle(items, first), *copies]
            self._results.extend(sent)
        return sent

    def _ordered(self, items: list[Pending[E]]) -> list[Pending[E]]:
        return sorted(items, key=lambda i: (i.due, i.seq)) if self.by_due else list(items)

    # ----- background delivery ---------------------------------------------------------------

    @property
    def auto(self) -> bool:
        return self._auto

    @auto.setter
    def auto(self, enabled: bool) -> None:
        with self.lock:
            self._auto = enabled
            self._wake.set()
            if enabled and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(target=self._run_worker, name=self.thread_name, daemon=True)
                self._worker.start()

    def wake(self) -> None:
        """With auto delivery on, deliver now rather than at the next poll."""
        if self._auto:
            self._wake.set()

    def _run_worker(self) -> None:
        while True:
            self._wake.wait(timeout=self._idle_wait())
            self._wake.clear()
            with self.lock:
                if not self._auto:
                    self._worker = None
                    return
            self.deliver()

    def _idle_wait(self) -> float:
        """Until the next retry is due, polled at least every half second."""
        with self.lock:
            if not self._queue:
                return 0.5
            wait = min(i.due for i in self._queue) - self.clock.now()
        return min(max(wait, 0.01), 0.5)
