"""Xero's side of the wake-up: a Xero CONTACT webhook names changed contacts; one job per
connection (coalesced) takes the noted ids and reconciles their links both ways
(app.contact_sync.reconcile): Xero's changes reach the companies (HubSpot batch update,
Pipedrive v2 PATCH), and anything the CRM changed meanwhile reaches Xero.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select

from app.contact_sync.reconcile import reconcile
from app.extensions import db
from app.models import (
    ConnectionStatus,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationStatus,
    XeroConnection,
)
from app.contact_sync.drain import drain, forget, wake_job
from app.queueing import note_and_wake, noted_ids

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
        woken += note_and_wake(_CHANGED.format(tenant_id), contact_ids, connection_ids, _wake)
    return woken


def _wake(connection_id: int, delay: float | None = None) -> None:
    wake_job(sync_from_xero, connection_id, job_id=f"contact-sync-xero-{connection_id}",
             delay=delay)


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
    if settings is None or not settings.enabled:
        forget(key, noted_ids(key))
        return 0
    # Company links, and person links (B2C deals' contacts) if the admin syncs persons.
    types = ["company", "person"] if settings.persons else ["company"]

    def handle(ids: list[str]) -> int:
        links = list(db.session.scalars(select(ContactLink).where(
            ContactLink.installation_id == installation.id,
            ContactLink.crm_object_type.in_(types),
            ContactLink.crm_status.is_(None),  # deleted, merged or waiting in the CRM: no sync
            ContactLink.xero_contact_id.in_(ids)).order_by(ContactLink.id)))
        return _sync(installation, connection, settings, links) if links else 0

    return drain(key, handle, lambda delay: _wake(connection_id, delay=delay))


def _sync(installation: Installation, connection: XeroConnection,
          settings: ContactSyncSettings, links: list[ContactLink]) -> int:
    """One reconcile pass per object type (each has its own mapping and CRM calls)."""
    written = 0
    for object_type in ("company", "person"):
        these = [link for link in links if link.crm_object_type == object_type]
        if these:
            written += reconcile(installation, connection, settings, these, "xero:contact",
                                 object_type).crm_written
    return written
