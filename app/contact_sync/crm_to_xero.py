"""The CRM's side of the wake-up: HubSpot company.creation / company.propertyChange events and
Pipedrive organization create / change webhooks name changed companies; one job per
installation (coalesced, like the Xero side) takes the noted ids and reconciles their links
both ways (app.contact_sync.reconcile): the CRM's changes reach Xero in POST /Contacts
batches of 50, and anything Xero changed meanwhile reaches the company.

Loop prevention starts at the webhook: Paydeck's own writes are dropped there (HubSpot:
changeSource INTEGRATION with Paydeck's app id; Pipedrive: an API change at the version
Paydeck's own write produced, `echoed_versions`), and the rules compare versions and hashes
again for whatever gets through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select

from app.contact_sync.reconcile import reconcile
from app.extensions import db
from app.models import (
    ConnectionStatus,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationStatus,
)
from app.contact_sync.drain import drain, forget, wake_job
from app.queueing import note_and_wake, noted_ids
from domain.dates import as_utc

log = logging.getLogger(__name__)
_CHANGED = "paydeck:crm-companies-changed:{}"
# Persons (B2C deals' contacts: HubSpot contact.* events, Pipedrive person webhooks).
_CHANGED_BY_TYPE = {"company": _CHANGED, "person": "paydeck:crm-persons-changed:{}"}


def sync_enabled(installation_id: int, object_type: str = "company") -> bool:
    settings = db.session.get(ContactSyncSettings, installation_id)
    return _syncs(settings, object_type)


def _syncs(settings: ContactSyncSettings | None, object_type: str) -> bool:
    """Contact sync is on, and (for persons) the admin chose to sync persons too."""
    return (settings is not None and settings.enabled
            and (object_type == "company" or bool(settings.persons)))


def echoed_versions(installation_id: int, versions: Mapping[str, datetime | None],
                    object_type: str = "company") -> set[str]:
    """The companies whose version (from the webhook) is the one Paydeck's own last write
    produced: Paydeck's echo."""
    wanted = {c: v for c, v in versions.items() if v is not None}
    if not wanted:
        return set()
    rows = db.session.execute(select(ContactLink.crm_object_id, ContactLink.crm_written_version)
                              .where(ContactLink.installation_id == installation_id,
                                     ContactLink.crm_object_type == object_type,
                                     ContactLink.crm_object_id.in_(wanted)))
    return {company for company, written in rows
            if written is not None and as_utc(written) == as_utc(wanted[company])}


def note_changed_companies(installation_id: int, company_ids: Iterable[str],
                           object_type: str = "company") -> bool:
    """From a CRM webhook: remember the company (or person) ids and wake the installation's
    contact sync job, if contact sync is on (for persons: and persons sync). Whether a job
    was woken."""
    ids = sorted(set(company_ids))
    if not ids or not sync_enabled(installation_id, object_type):
        return False
    return bool(note_and_wake(_CHANGED_BY_TYPE[object_type].format(installation_id), ids,
                              [installation_id], _wake))


def _wake(installation_id: int, delay: float | None = None) -> None:
    wake_job(sync_from_crm, installation_id, job_id=f"contact-sync-crm-{installation_id}",
             delay=delay)


def sync_from_crm(installation_id: int) -> int:
    """Job: the changed companies' (and persons') linked Xero contacts brought up to date per
    the mapping. Returns how many contacts were written to Xero."""
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return 0
    written = 0
    for object_type, key_format in _CHANGED_BY_TYPE.items():
        written += _sync_type(installation, object_type, key_format.format(installation_id))
    return written


def _sync_type(installation: Installation, object_type: str, key: str) -> int:
    """One object type's noted ids, drained (app.contact_sync.drain: a "come back later"
    keeps them and wakes the job after the delay asked for)."""
    installation_id = installation.id
    connection = installation.xero_connection
    settings = db.session.get(ContactSyncSettings, installation_id)
    if (not _syncs(settings, object_type) or connection is None
            or connection.status != ConnectionStatus.CONNECTED):
        forget(key, noted_ids(key))  # nothing to sync to: the next change brings them again
        return 0
    assert settings is not None

    def handle(ids: list[str]) -> int:
        links = list(db.session.scalars(select(ContactLink).where(
            ContactLink.installation_id == installation_id,
            ContactLink.crm_object_type == object_type,
            ContactLink.crm_status.is_(None),  # deleted, merged or waiting in the CRM: no sync
            ContactLink.crm_object_id.in_(ids))))
        if not links:
            return 0
        return reconcile(installation, connection, settings, links,
                         f"{installation.crm.value}:{object_type}", object_type).xero_written

    return drain(key, handle, lambda delay: _wake(installation_id, delay=delay))
