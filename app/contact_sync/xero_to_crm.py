"""Xero's side of the wake-up: a Xero CONTACT webhook names changed contacts; one job per
connection (coalesced) takes the noted ids and reconciles their links both ways
(app.contact_sync.reconcile): Xero's changes reach the companies (HubSpot batch update,
Pipedrive v2 PATCH), and anything the CRM changed meanwhile reaches Xero.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select

from app.contact_sync.reconcile import LABELS, reconcile  # noqa: F401 - LABELS re-exported
from app.extensions import db
from app.models import (
    ConnectionStatus,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationStatus,
    XeroConnection,
)
from app.queueing import enqueue_once
from app.redis_conn import get_redis
from app.tokens import TokenUnavailable
from crm_adapters.base import CrmRetryLater
from xero.errors import RetryLater

log = logging.getLogger(__name__)
_CHANGED = "paydeck:xero-contacts-changed:{}"


def note_changed_contacts(changed: Mapping[str, set[str]]) -> int:
    """From a Xero webhook: remember the contact ids per tenant and wake one contact sync job
    per connection whose installation has contact sync on. Returns jobs woken."""
    woken = 0
    for tenant_id, contact_ids in changed.items():
        connection_ids = db.session.scalars(
            select(XeroConnection.id).join(Installation)
            .join(ContactSyncSettings, ContactSyncSettings.installation_id == Installation.id)
            .where(XeroConnection.tenant_id == tenant_id,
                   XeroConnection.status == ConnectionStatus.CONNECTED,
                   Installation.status == InstallationStatus.ACTIVE,
                   ContactSyncSettings.enabled.is_(True))).all()
        if not connection_ids or not contact_ids:
            continue
        get_redis().sadd(_CHANGED.format(tenant_id), *contact_ids)
        for connection_id in connection_ids:
            _wake(connection_id)
            woken += 1
    return woken


def _wake(connection_id: int, delay: float | None = None) -> None:
    enqueue_once(sync_from_xero, connection_id, job_id=f"contact-sync-xero-{connection_id}",
                 follow_up=True, delay=delay, job_timeout=300)


def sync_from_xero(connection_id: int) -> int:
    """Job: the changed contacts' linked companies brought up to date per the mapping.
    Returns how many companies were written."""
    connection = db.session.get(XeroConnection, connection_id)
    if (connection is None or connection.status != ConnectionStatus.CONNECTED
            or connection.installation.status != InstallationStatus.ACTIVE):
        return 0
    installation = connection.installation
    settings = db.session.get(ContactSyncSettings, installation.id)
    key = _CHANGED.format(connection.tenant_id)
    redis = get_redis()
    ids = [i.decode() if isinstance(i, bytes) else i for i in redis.smembers(key)]
    if not ids:
        return 0
    if settings is None or not settings.enabled:
        redis.srem(key, *ids)
        return 0
    links = list(db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation.id,
        ContactLink.crm_object_type == "company",  # person links: a later part of #15
        ContactLink.crm_status.is_(None),  # deleted, merged or waiting in the CRM: no sync
        ContactLink.xero_contact_id.in_(ids))))
    try:
        written = _sync(installation, connection, settings, links) if links else 0
    except (RetryLater, CrmRetryLater, TokenUnavailable) as exc:
        # Either side's limits, or a token refresh failing: the ids stay; come back later.
        _wake(connection_id, delay=max(getattr(exc, "seconds", 1.0), 1.0))
        db.session.rollback()
        return 0
    redis.srem(key, *ids)  # only once handled: a crash leaves them for the next run
    if redis.scard(key):
        _wake(connection_id)
    return written


def _sync(installation: Installation, connection: XeroConnection,
          settings: ContactSyncSettings, links: list[ContactLink]) -> int:
    return reconcile(installation, connection, settings, links, "xero:contact").crm_written
