"""Is the process behind a job or a lock still alive? Known at once, not after a TTL.

A process that runs something subscribes to a pub/sub channel of its own first. Redis drops
the subscription the moment the process's socket closes (SIGKILL, OOM kill, crash, host
gone), so `PUBSUB NUMSUB <channel>` tells a dead holder from a live one with no heartbeat
to wait out. RQ's workers do the same for their command channel `rq:pubsub:<worker name>`
(rq/worker/base.py `subscribe`), which `worker_alive` reads.

Idle pub/sub connections are never closed by Redis's `timeout` setting ("the timeout does
not apply to Pub/Sub clients": redis.io/docs/latest/develop/reference/clients/, "Client
timeouts"; redis src/timeout.c `clientsCronHandleTimeout` skips CLIENT_PUBSUB).

A presence can also be lost while its process lives (a dropped connection, a Redis restart),
so an absent presence is only ever used where being wrong is cheap: replacing an RQ job id
(the run itself is guarded by the installation lock) and choosing to wait for a lock's lease
rather than come back later. Nothing is ever broken into on presence alone.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError, LockNotOwnedError
from rq.command import PUBSUB_CHANNEL_TEMPLATE

PREFIX = "paydeck:presence:"
_CONFIRM_TIMEOUT = 5.0


def channel(name: str) -> str:
    return f"{PREFIX}{name}"


@contextmanager
def hold(client: redis.Redis, name: str | None = None) -> Iterator[str]:
    """Be present as `name` (a fresh random name if None) until the block ends; yields it.

    Returns only once Redis has confirmed the subscription, so whatever the caller does next
    (take a lock, start a job) is never visible without its presence.
    """
    name = name or uuid.uuid4().hex
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(channel(name))
        deadline = time.monotonic() + _CONFIRM_TIMEOUT
        while True:
            message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is not None and message.get("type") == "subscribe":
                break
            if time.monotonic() >= deadline:
                raise redis.TimeoutError(f"Redis did not confirm the presence channel {name}")
        yield name
    finally:
        pubsub.close()


def present(client: redis.Redis, name: str) -> bool:
    """True while some process holds presence `name`."""
    return _subscribers(client, channel(name)) > 0


def worker_alive(client: redis.Redis, worker_name: str) -> bool:
    """True while the RQ worker `worker_name` is connected (its command-channel subscription)."""
    return bool(worker_name) and _subscribers(client, PUBSUB_CHANNEL_TEMPLATE % worker_name) > 0


def _subscribers(client: redis.Redis, name: str) -> int:
    ((_, count),) = client.pubsub_numsub(name)
    return int(count)


def job_name(job_id: str) -> str:
    """The presence a Paydeck worker holds while it performs RQ job `job_id`."""
    return f"rq-job:{job_id}"


class Lease:
    """A Redis lock with a short TTL that a background thread renews while its holder lives.

    A killed holder's lease lapses within `ttl` seconds, however long one of its calls may
    take when it is alive (the thread renews through a slow Xero call). The lock's value is
    the holder's presence name, so a contender can tell a dead holder - then waiting out the
    rest of its lease is worth it - from a live one (come back later). The lease is never
    broken: a live holder whose presence connection dropped keeps its lock.
    """

    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self.client, self.key, self.ttl = client, key, ttl
        self._lock = client.lock(key, timeout=ttl, blocking=False, thread_local=False)
        self._presence: contextlib.ExitStack | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def acquire(self) -> bool:
        stack = contextlib.ExitStack()
        name = stack.enter_context(hold(self.client))
        if not self._lock.acquire(token=name):
            stack.close()
            return False
        self._presence = stack
        self._renewer = threading.Thread(target=self._keep, name=f"lease {self.key}", daemon=True)
        self._renewer.start()
        return True

    def wait_out_dead_holder(self, max_wait: float) -> bool:
        """If the holder is dead, sleep until its lease lapses (at most `max_wait` s) and say
        True; False if the lock is held by a live process."""
        holder = self.client.get(self.key)
        if holder is None:
            return True
        if present(self.client, holder.decode() if isinstance(holder, bytes) else str(holder)):
            return False
        left = self.client.pttl(self.key)
        if left > max_wait * 1000:
            return False
        time.sleep(max(left, 0) / 1000 + 0.05)
        return True

    def renew(self) -> None:
        """Renew now (before a call that must not run unlocked); raises LockError if lost."""
        if self.lost:
            raise LockNotOwnedError(f"lease {self.key} was lost")
        self._lock.reacquire()

    def release(self) -> None:
        """Stop renewing and let go; raises LockError if the lease had already lapsed."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.ttl)
        try:
            self._lock.release()
        finally:
            if self._presence is not None:
                self._presence.close()

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._lock.reacquire()
            except LockError:
                self.lost = True  # the run notices at its next renew() and stops
                return
            except redis.RedisError:
                continue  # a blip: the lease may still be ours; the next tick will tell
