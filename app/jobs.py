"""RQ jobs. Each takes ids only, is safe to run twice, and has a timeout."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import or_, select

from app import get_settings
from app.connections import revoke_grant
from app.extensions import db
from app.models import ConnectionStatus, Installation, InstallationStatus, XeroConnection
from app.redis_conn import get_redis
from app.tokens import ReconnectNeeded, TokenUnavailable, access_token

log = logging.getLogger(__name__)

QUEUE = "default"


def queue() -> Queue:
    return Queue(QUEUE, connection=get_redis())


def enqueue_once(func: Callable[..., Any], *args: Any, job_id: str, delay: float | None = None,
                 follow_up: bool = False, **options: Any) -> Job | None:
    """Enqueue unless a job with this id is already waiting.

    Finished jobs are not kept (result_ttl=0); a failed or stopped one with the id is replaced.
    If the job is running and `follow_up`, one follow-up job (id + "-next") is queued, so work
    that arrived while it ran is not left behind.
    """
    q = queue()
    for _attempt in range(2):
        try:
            if delay:
                return q.enqueue_in(timedelta(seconds=delay), func, *args, job_id=job_id,
                                    unique=True, result_ttl=0, **options)
            return q.enqueue(func, *args, job_id=job_id, unique=True, result_ttl=0, **options)
        except DuplicateJobError:
            try:
                status = Job.fetch(job_id, connection=q.connection).get_status()
            except (NoSuchJobError, InvalidJobOperation):
                continue  # it finished (and, with result_ttl=0, vanished) between our calls
            if status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED,
                          JobStatus.CANCELED):
                Job.fetch(job_id, connection=q.connection).delete()
                continue
            if status == JobStatus.STARTED and follow_up:
                return enqueue_once(func, *args, job_id=f"{job_id}-next", delay=delay, **options)
            return None
    return None


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
    from app.models import AuditEvent, Installation, InstallationStatus
    from crm_adapters import adapter_for

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
]
