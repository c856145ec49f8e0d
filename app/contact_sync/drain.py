"""The one drain loop both contact sync jobs share (xero_to_crm.sync_from_xero and
crm_to_xero.sync_from_crm): read the Redis set of changed ids, handle them, remove them only
once handled (a crash leaves them for the next run), wake the job again if more arrived
meanwhile, and on a "come back later" (either side's limits, a token refresh failing) keep
the ids and wake the job again after the delay asked for.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from app.extensions import db
from app.queueing import enqueue_once, noted_ids
from app.redis_conn import get_redis
from app.tokens import TokenUnavailable
from crm_adapters.base import CrmRetryLater
from xero.errors import RetryLater

# What a handler raises to say "not now": the ids stay in the set.
LATER = (RetryLater, CrmRetryLater, TokenUnavailable)


SWEEP_SECONDS = 2.0


def wake_job(func: Callable[..., object], arg: int, *, job_id: str,
             delay: float | None = None) -> None:
    """Enqueue the drain job (coalesced: one waiting at a time, one follow-up while it runs),
    and a sweep a moment later under its own id. A job that has returned is still "running"
    to RQ for a few milliseconds; a webhook arriving just then, while the job and its
    follow-up both finish, would enqueue nothing and its ids would wait for the safety net
    (seen in bench/contact_latency.py with two workers). The sweep runs the same drain: with
    nothing left it costs one Redis read."""
    enqueue_once(func, arg, job_id=job_id, follow_up=True, delay=delay, job_timeout=300)
    enqueue_once(func, arg, job_id=f"{job_id}-sweep", delay=(delay or 0.0) + SWEEP_SECONDS,
                 job_timeout=300)


def forget(key: str, ids: list[str]) -> None:
    """Drop ids nothing will handle (sync switched off, nothing to sync to): the next change
    notes them again."""
    if ids:
        get_redis().srem(key, *ids)


# One drain per key at a time (the job's own timeout is 300 s; a crashed holder's lock lapses).
LOCK_SECONDS = 330
LOCK_STEP, LOCK_STEPS = 0.02, 500  # a second drain waits up to 10 s for the one at work
MAX_ROUNDS = 20  # then the job wakes itself again rather than run for ever


def drain(key: str, handle: Callable[[list[str]], int],
          wake: Callable[[float | None], None], *,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Handle the ids noted under `key` until none are left; `handle(ids)` returns what it
    wrote, `wake(delay)` enqueues the job again (delay None: now). Returns what `handle`
    wrote.

    Why a lock and a loop: with two workers a job and its follow-up can both be running; a
    webhook arriving then finds both busy and enqueues nothing (app.queueing.enqueue_once
    queues one follow-up), and a job waking itself while still running is no help either. So
    one drain at a time holds the key, and it looks at the set again after letting go: a job
    relies on a new job only for a "come back later". A second drain waits for the first and
    then looks too. The safety net (app.contact_sync.safety_net) wakes the job for any ids
    still left in the set."""
    redis = get_redis()
    lock, token = f"{key}:drain", secrets.token_hex(8)
    written, rounds, waits = 0, 0, 0
    while redis.scard(key):
        if not redis.set(lock, token, nx=True, ex=LOCK_SECONDS):
            if waits >= LOCK_STEPS:
                return written  # the drain at work looks at the set again when it lets go
            sleep(LOCK_STEP)
            waits += 1
            continue
        try:
            while (ids := noted_ids(key)) and rounds < MAX_ROUNDS:
                rounds += 1
                try:
                    written += handle(ids)
                except LATER as exc:
                    db.session.rollback()
                    _release(lock, token)
                    wake(max(float(getattr(exc, "seconds", 1.0) or 1.0), 1.0))
                    return written
                redis.srem(key, *ids)  # only once handled: a crash leaves them for the next run
        finally:
            _release(lock, token)
        if rounds >= MAX_ROUNDS:
            if redis.scard(key):
                wake(None)
            return written
    return written


def _release(lock: str, token: str) -> None:
    redis = get_redis()
    held = redis.get(lock)
    if held is not None and (held.decode() if isinstance(held, bytes) else held) == token:
        redis.delete(lock)
