"""The one drain loop both contact sync jobs share (xero_to_crm.sync_from_xero and
crm_to_xero.sync_from_crm): read the Redis set of changed ids, handle them, remove them only
once handled (a crash leaves them for the next run), wake the job again if more arrived
meanwhile, and on a "come back later" (either side's limits, a token refresh failing) keep
the ids and wake the job again after the delay asked for.
"""

from __future__ import annotations

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


def drain(key: str, handle: Callable[[list[str]], int],
          wake: Callable[[float | None], None]) -> int:
    """Handle the ids noted under `key` once; `handle(ids)` returns what it wrote, `wake(delay)`
    enqueues the job again (delay None: now). Returns what `handle` returned (0 if it had to
    wait)."""
    ids = noted_ids(key)
    if not ids:
        return 0
    try:
        written = handle(ids)
    except LATER as exc:
        db.session.rollback()
        wake(max(float(getattr(exc, "seconds", 1.0) or 1.0), 1.0))
        return 0
    redis = get_redis()
    redis.srem(key, *ids)  # only once handled: a crash leaves them for the next run
    if redis.scard(key):  # more arrived while this ran: make sure a run will see them
        wake(None)
    return written
