"""RQ jobs. Each takes ids only, is safe to run twice, and has a timeout."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import delete, or_, select

from app import presence
from app.runtime import get_settings
from app.connections import revoke_grant
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    Installation,
    InstallationStatus,
    WebhookReceipt,
    XeroConnection,
)
from app.redis_conn import get_redis
from app.tokens import ReconnectNeeded, TokenUnavailable, access_token

log = logging.getLogger(__name__)

QUEUE = "default"


def queue() -> Queue:
    return Queue(QUEUE, connection=get_redis())


def enqueue_once(func: Callable[..., Any], *args: Any, job_id: str, delay: float | None = None,
                 follow_up: bool = False, **options: Any) -> Job | None:
    """Enqueue unless a job with this id is already waiting.

    Finished jobs are not kept (result_ttl=0); a failed or stopped one with the id is replaced,
    and so is one a killed worker left behind (see `_abandoned`): at once, not after RQ's own
    cleanup (an abandoned job's heartbeat lapses after 90 s and the registries are cleaned
    every 10 minutes: rq/defaults.py, rq/worker/base.py `get_heartbeat_ttl`). A waiting
    scheduled job is brought forward if this call wants it sooner. If the job is running and
    `follow_up`, one follow-up job (id + "-next") is queued, so work that arrived while it
    ran is not left behind.
    """
    q = queue()
    for _attempt in range(3):
        try:
            if delay:
                return q.enqueue_in(timedelta(seconds=delay), func, *args, job_id=job_id,
                                    unique=True, result_ttl=0, **options)
            return q.enqueue(func, *args, job_id=job_id, unique=True, result_ttl=0, **options)
        except DuplicateJobError:
            state = _existing_job(q, job_id, delay)
        if state == "running" and follow_up:
            return enqueue_once(func, *args, job_id=f"{job_id}-next", delay=delay, **options)
        if state in ("waiting", "running"):
            return None
    return None


def _existing_job(q: Queue, job_id: str, delay: float | None) -> str:
    """What holds `job_id` now: "waiting", "running", or "gone" (deleted or replaced here:
    enqueue again)."""
    try:
        job = Job.fetch(job_id, connection=q.connection)
        status = job.get_status()
    except (NoSuchJobError, InvalidJobOperation):
        return "gone"  # it finished (and, with result_ttl=0, vanished) between our calls
    if status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        job.delete()
        return "gone"
    if _abandoned(q, job, status):
        return "gone" if _replace(q, job) else "waiting"
    if status == JobStatus.SCHEDULED:
        # Bring it forward, never back (ZADD XX LT: only if still scheduled, only if sooner).
        when = int(time.time() + (delay or 0))
        q.connection.zadd(q.scheduled_job_registry.key, {job_id: when}, xx=True, lt=True)
    return "running" if status == JobStatus.STARTED else "waiting"


def _abandoned(q: Queue, job: Job, status: JobStatus) -> bool:
    """True if no process will ever run or finish this job: it is in no queue or registry, or
    the worker that took it is gone. Being wrong costs little: the run itself takes the
    installation's lock, so a replaced job that was in fact alive cannot run twice at once."""
    redis = q.connection
    if status == JobStatus.QUEUED:
        if redis.lpos(q.key, job.id) is not None:
            return False
        if redis.lpos(q.intermediate_queue_key, job.id) is None:
            # In no queue: nothing will ever dequeue it - unless a worker took it and started
            # it while we looked (RQ sets STARTED and leaves the intermediate list atomically).
            return _still(job, status)
        return not _being_run(redis, job, unknown=True)  # dequeued by a worker: is it alive?
    if status == JobStatus.SCHEDULED:
        return redis.zscore(q.scheduled_job_registry.key, job.id) is None and _still(job, status)
    if status == JobStatus.STARTED:
        return not _being_run(redis, job, unknown=False)
    return False


def _still(job: Job, status: JobStatus) -> bool:
    try:
        return job.get_status(refresh=True) == status
    except (NoSuchJobError, InvalidJobOperation):
        return True  # finished and gone meanwhile: deleting it again is harmless, enqueue anew


def _being_run(redis: Any, job: Job, *, unknown: bool) -> bool:
    """Is a live process performing (or about to perform) `job`? `unknown` answers when no
    worker has put its name on the job yet (between RQ's dequeue and its execution record)."""
    if presence.present(redis, presence.job_name(job.id)):
        return True  # a Paydeck work horse holds it (even one whose parent worker died)
    workers = {job.worker_name or ""} | {e.worker_name for e in job.get_executions()}
    workers.discard("")
    if not workers:
        return unknown
    return any(presence.worker_alive(redis, name) for name in workers)


def _replace(q: Queue, job: Job) -> bool:
    """Delete an abandoned job so its id can be enqueued again; False if another process is
    replacing it right now (its new job will do)."""
    guard = f"paydeck:job-replace:{job.id}"
    if not q.connection.set(guard, "1", nx=True, ex=10):
        return False
    try:
        log.warning("job %s was abandoned (status %s, worker %s): replacing it", job.id,
                    job.get_status(refresh=False), job.worker_name or "none")
        job.delete()
        # RQ's intermediate-queue cleanup would otherwise fail the new job of the same id.
        q.connection.lrem(q.intermediate_queue_key, 0, job.id)
    finally:
        q.connection.delete(guard)
    return True


def enqueue_revoke_xero(installation_id: int) -> None:
    """Revoke an installation's Xero grant in the background (the request must not wait)."""
    enqueue_once(revoke_xero, installation_id, job_id=f"revoke-xero-{installation_id}",
                 job_timeout=120, retry=Retry(max=5, interval=[30, 120, 600, 1800, 3600]))


def revoke_xero(installation_id: int) -> bool:
    connection = db.session.scalar(
        select(XeroConnection).where(XeroConnection.installation_id == installation_id))
    if connection is None or connection.status == ConnectionStatus.DISCONNECTED:
        return False
    if not revoke_grant(connection, forget_on_failure=False):
        raise TokenUnavailable(f"installation {installation_id}: Xero did not confirm revocation")
    db.session.commit()
    return True


def enqueue_setup_crm(installation_id: int) -> None:
    """After an install: create Paydeck's deal fields (and Pipedrive webhooks), off the request."""
    enqueue_once(setup_crm, installation_id, job_id=f"setup-crm-{installation_id}",
                 job_timeout=300, retry=Retry(max=5, interval=[10, 60, 300, 900, 3600]))


def setup_crm(installation_id: int) -> dict[str, str]:
    from app.models import Installation, InstallationStatus
    from app.wiring import adapter_for

    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return {}
    source = adapter_for(installation.crm.value)
    installation.crm_fields = source.ensure_deal_fields(installation)
    if installation.crm.value == "pipedrive":
        url = f"{get_settings().public_url}/webhooks/pipedrive/{installation.id}"
        source.register_webhooks(installation, url)  # type: ignore[attr-defined]
    db.session.add(AuditEvent(installation_id=installation.id, action="crm_setup", outcome="ok",
                              detail={"fields": installation.crm_fields}))
    db.session.commit()
    return installation.crm_fields


def keep_xero_connections_alive() -> dict[str, int]:
    """Refresh idle Xero grants well before their 60-day expiry (platform-facts, OAuth2)."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=get_settings().xero_keepalive_days)
    ids = db.session.scalars(select(XeroConnection.id).join(Installation).where(
        XeroConnection.status == ConnectionStatus.CONNECTED,
        Installation.status == InstallationStatus.ACTIVE,  # no Xero call for a departed customer
        or_(XeroConnection.token_refreshed_at.is_(None),
            XeroConnection.token_refreshed_at < cutoff),
    )).all()
    counts = {"checked": len(ids), "refreshed": 0, "reconnect_needed": 0, "unavailable": 0}
    for connection_id in ids:
        try:
            access_token(XeroConnection, connection_id, refresh_older_than=cutoff)
            counts["refreshed"] += 1
        except ReconnectNeeded:
            counts["reconnect_needed"] += 1  # marked and reported by access_token
        except TokenUnavailable as exc:
            counts["unavailable"] += 1
            log.warning("keep-alive for Xero connection %s deferred: %s", connection_id, exc)
    log.info("Xero keep-alive: %s", counts)
    return counts


PRUNE_BATCH = 1000  # rows per DELETE: short transactions, no long lock on a busy table
PRUNE_MAX_BATCHES = 500  # per table per run; a backlog beyond that goes on the next day


def prune_history() -> dict[str, int]:
    """Delete webhook receipts older than WEBHOOK_RECEIPT_RETENTION_DAYS and, only if
    AUDIT_RETENTION_DAYS is set, audit events older than that, in bounded batches.

    Dropping a receipt cannot let a repeat through that matters: a receipt only catches a
    vendor's retry of the same event, and HubSpot and Xero stop retrying after 24 h,
    Pipedrive after about 3 minutes (platform-facts "Webhooks"); the setting cannot go
    below 2 days.
    """
    settings = get_settings()
    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(days=settings.webhook_receipt_retention_days)
    counts = {"webhook_receipts": _prune(WebhookReceipt, WebhookReceipt.received_at, cutoff)}
    if settings.audit_retention_days:
        cutoff = now - timedelta(days=settings.audit_retention_days)
        counts["audit_events"] = _prune(AuditEvent, AuditEvent.created_at, cutoff)
    log.info("pruned history: %s", counts)
    return counts


def _prune(model: type[WebhookReceipt] | type[AuditEvent], column: Any, cutoff: datetime) -> int:
    deleted = 0
    for _batch in range(PRUNE_MAX_BATCHES):
        ids = db.session.scalars(select(model.id).where(column < cutoff)
                                 .order_by(model.id).limit(PRUNE_BATCH)).all()
        if not ids:
            break
        db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)
    return deleted


@dataclass(frozen=True)
class Periodic:
    """A job the RQ cron scheduler enqueues (see app/cron_config.py)."""

    func: Callable[..., Any]
    cron: str
    timeout: int
    name: str


def sweep_invoice_requests() -> int:
    from app.engine import sweep_waiting_requests

    return sweep_waiting_requests()


def poll_xero() -> int:
    from app.payments import poll_due_connections

    return poll_due_connections()


def overdue_follow_up() -> int:
    from app.payments import overdue_sweep

    return overdue_sweep()


def email_alerts() -> int:
    from app.payments import alert_admins

    return alert_admins()


PERIODIC: list[Periodic] = [
    Periodic(keep_xero_connections_alive, cron="17 3 * * *", timeout=900, name="xero-keepalive"),
    Periodic(sweep_invoice_requests, cron="* * * * *", timeout=120, name="invoice-sweep"),
    # Starts each connection's poll when XERO_POLL_MINUTES have passed since its last one.
    Periodic(poll_xero, cron="* * * * *", timeout=120, name="xero-poll"),
    Periodic(overdue_follow_up, cron="7 8 * * *", timeout=1800, name="overdue-sweep"),
    Periodic(email_alerts, cron="*/5 * * * *", timeout=300, name="admin-alerts"),
    Periodic(prune_history, cron="41 4 * * *", timeout=1800, name="prune-history"),
]
