"""The one drain loop both contact sync jobs share (xero_to_crm.sync_from_xero and
crm_to_xero.sync_from_crm): read the Redis set of changed ids, handle them, remove them only
once handled (a crash leaves them for the next run), wake the job again if more arrived
meanwhile, and on a "come back later" (either side's limits, a token refresh failing) keep
the ids and wake the job again after the delay asked for.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from app.extensions import db
from app.redis_conn import get_redis
from app.tokens import TokenUnavailable
from crm_adapters.base import CrmRetryLater
from xero.errors import RetryLater

# What a handler raises to say "not now": the ids stay in the set.
LATER = (RetryLater, CrmRetryLater, TokenUnavailable)


def noted_ids(key: str) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else i for i in get_redis().smembers(key)]


def forget(key: str, ids: list[str]) -> None:
    """Drop ids nothing will handle (sync switched off, nothing to sync to): the next change
    notes them again."""
    if ids:
        get_redis().srem(key, *ids)


# One drain per key at a time (the job's own timeout is 300 s; a crashed holder's lock lapses).
LOCK_SECONDS = 330
MAX_ROUNDS = 20  # then the job wakes itself again rather than run for ever


def drain(key: str, handle: Callable[[list[str]], int],
          wake: Callable[[float | None], None]) -> int:
    """Handle the ids noted under `key` until none are left; `handle(ids)` returns what it
    wrote, `wake(delay)` enqueues the job again (delay None: now). Returns what `handle`
    wrote (0 if another drain of the key is at work: it handles these ids too).

    Why a lock and a loop: with two workers, a job and its follow-up can both be running; a
    webhook arriving then finds both busy and enqueues nothing (app.queueing.enqueue_once
    queues one follow-up), and a job that woke itself while still running was no help either.
    So one drain holds the key and loops until the set is empty; only ids arriving after its
    last look (or a "come back later") need a new job. The safety net (app.contact_sync.
    safety_net) wakes the job for any ids left in the set all the same."""
    redis = get_redis()
    lock, token = f"{key}:drain", secrets.token_hex(8)
    if not redis.set(lock, token, nx=True, ex=LOCK_SECONDS):
        return 0
    written, rounds = 0, 0
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
    if redis.scard(key):  # arrived after the last look, or too many rounds: a new run
        wake(None)
    return written


def _release(lock: str, token: str) -> None:
    redis = get_redis()
    held = redis.get(lock)
    if held is not None and (held.decode() if isinstance(held, bytes) else held) == token:
        redis.delete(lock)
