"""The installation's sync job: under its lease, batch after batch of waiting deals; a batch
that fails as a whole is postponed, given up or waits for a reconnect (app.engine.outcomes)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from redis.exceptions import LockError
from sqlalchemy import or_, select

from app.engine import clock
from app.engine.context import RunContext
from app.engine.outcomes import give_up, postpone, reconnect_review
from app.engine.run import execute
from app.extensions import db
from app.lifecycle import confirm_crm_grant
from app.models import (
    ConnectionStatus,
    DealSyncRequest,
    Installation,
    InstallationStatus,
    XeroConnection,
)
from app.presence import Lease
from app.queueing import enqueue_once
from app.redis_conn import get_redis
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from crm_adapters.base import CrmError, CrmReconnectNeeded, CrmRetryLater
from xero.errors import FixData, ReconnectNeeded, RetryLater

log = logging.getLogger(__name__)

MAX_DEALS_PER_RUN = 200
# Seconds a killed run keeps the installation locked; a live run's lease is renewed by a
# thread every third of it, however long a Xero call takes.
SYNC_LOCK_TTL = 15
# The sweep (every minute) wakes installations whose deals waited this long: a batch whose
# worker was killed is picked up at the next tick, even if no new webhook comes.
SWEEP_AFTER = timedelta(seconds=30)

# TokenUnavailable: a refresh failed (not invalid_grant); its backoff grows with the grant's
# consecutive failures. The deals keep waiting, never dropped.
RETRY_LATER = (RetryLater, CrmRetryLater, TokenUnavailable)
RECONNECT = (ReconnectNeeded, TokenReconnectNeeded, CrmReconnectNeeded)
# The CRM refused a read, or Xero a whole call: no retry can help, a person must look.
GIVE_UP = (CrmError, FixData)


def enqueue_sync(installation_id: int, delay: float | None = None) -> None:
    """Wake the installation's job. One waiting job per installation (unique id) plus one
    follow-up while it runs; the run itself holds a lock, so two never overlap."""
    enqueue_once(sync_installation, installation_id, job_id=f"invoice-sync-{installation_id}",
                 delay=delay, follow_up=True, job_timeout=900)


def sync_installation(installation_id: int) -> dict[str, int]:
    """Work through the installation's waiting deals, in batches. Returns counts.

    One run per installation at a time, under a lease (app.presence.Lease) renewed while the
    run lives: a killed run's lease lapses within SYNC_LOCK_TTL. A run that finds the lease
    held by a dead run waits that out; held by a live one, it tries again shortly.
    """
    lease = Lease(get_redis(), f"paydeck:invoice-sync:{installation_id}", SYNC_LOCK_TTL)
    if not lease.acquire() and not (lease.wait_out_dead_holder(SYNC_LOCK_TTL) and lease.acquire()):
        enqueue_sync(installation_id, delay=5)
        return {}
    try:
        return _sync_installation(installation_id, lease.renew)
    finally:
        try:
            lease.release()
        except LockError:
            log.warning("invoice sync lock for installation %s expired", installation_id)


def sweep_waiting_requests() -> int:
    """Safety net (cron): wake the job of every installation with deals still waiting - after
    a worker was killed, or a wake-up was lost."""
    stale = clock.now() - SWEEP_AFTER
    ids = db.session.scalars(select(DealSyncRequest.installation_id).join(
        Installation, Installation.id == DealSyncRequest.installation_id).where(
        Installation.status == InstallationStatus.ACTIVE,  # the others' requests wait
        DealSyncRequest.requested_at < stale,
        or_(DealSyncRequest.not_before.is_(None), DealSyncRequest.not_before <= clock.now()),
    ).distinct()).all()
    for installation_id in ids:
        enqueue_sync(installation_id)
    return len(ids)


def _sync_installation(installation_id: int, keep_lock: Callable[[], object]) -> dict[str, int]:
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return {}
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        reconnect_review(installation_id, "Xero is not connected")
        return {}
    return _batches(installation, connection, keep_lock)


def _batches(installation: Installation, connection: XeroConnection,
             keep_lock: Callable[[], object]) -> dict[str, int]:
    """Batch after batch until no deal waits, or one batch says stop."""
    totals: dict[str, int] = {}
    while requests := _waiting(installation.id):
        versions = {r.id: r.version for r in requests}  # before any commit re-reads them
        ctx = RunContext.start(installation, connection, list(requests),
                               before_call=lambda: _between_calls(keep_lock))
        try:
            counts = execute(ctx)
        except RETRY_LATER + RECONNECT + GIVE_UP as exc:
            if _failed(installation.id, requests, versions, exc):
                continue
            return totals
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        if ctx.retry_in is not None:  # some deals wait: wake up for them
            enqueue_sync(installation.id, delay=max(ctx.retry_in, 1.0))
    return totals


def _waiting(installation_id: int) -> Sequence[DealSyncRequest]:
    """The oldest requests that are due, at most MAX_DEALS_PER_RUN."""
    return db.session.scalars(select(DealSyncRequest).where(
        DealSyncRequest.installation_id == installation_id,
        or_(DealSyncRequest.not_before.is_(None), DealSyncRequest.not_before <= clock.now()),
    ).order_by(DealSyncRequest.requested_at).limit(MAX_DEALS_PER_RUN)).all()


def _failed(installation_id: int, requests: Sequence[DealSyncRequest], versions: dict[int, int],
            exc: Exception) -> bool:
    """The outcome of a batch that failed as a whole; True if the next batch may go on."""
    if isinstance(exc, RETRY_LATER):
        soonest = postpone(requests, exc, str(exc))
        enqueue_sync(installation_id, delay=max(soonest, 1.0))
        return False
    if isinstance(exc, RECONNECT):
        db.session.rollback()
        if isinstance(exc, CrmReconnectNeeded):
            confirm_crm_grant(installation_id)  # an uninstall? then no job serves it again
        reconnect_review(installation_id, str(exc))
        return False
    if isinstance(exc, CrmError):
        give_up(requests, versions, f"the CRM refused: {exc}")
    else:
        assert isinstance(exc, FixData)
        give_up(requests, versions, "Xero refused: " + ("; ".join(exc.messages) or str(exc)))
    return True


def _between_calls(keep_lock: Callable[[], object]) -> None:
    """Before each Xero call: hold no database transaction across the network (and let the
    token code write), and renew the run's lock lease."""
    db.session.commit()
    keep_lock()

