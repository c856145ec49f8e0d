"""Upkeep jobs: revoke a Xero grant, set up a CRM after an install, keep idle Xero grants
alive, prune old history. Each takes ids only, is safe to run twice, and has a timeout."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from rq import Retry
from sqlalchemy import delete, or_, select

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
from app.queueing import enqueue_once
from app.runtime import get_settings
from app.tokens import ReconnectNeeded, TokenUnavailable, access_token
from app.wiring import adapter_for

log = logging.getLogger(__name__)


def enqueue_revoke_xero(installation_id: int) -> None:
    """Revoke an installation's Xero grant in the background (the request must not wait)."""
    enqueue_once(revoke_xero, installation_id, job_id=f"revoke-xero-{installation_id}",
                 job_timeout=120, retry=Retry(max=5, interval=[30, 120, 600, 1800, 3600]))


def revoke_xero(installation_id: int) -> bool:
    """Job: revoke the installation's Xero grant; False if there was none to revoke."""
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
    """Job: create Paydeck's deal fields (and Pipedrive's webhooks); returns the field names."""
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
