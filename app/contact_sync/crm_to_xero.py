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
from datetime import datetime, timezone

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
from app.queueing import enqueue_once
from app.redis_conn import get_redis
from app.tokens import TokenUnavailable
from crm_adapters.base import CrmRetryLater
from xero.errors import RetryLater

log = logging.getLogger(__name__)
_CHANGED = "paydeck:crm-companies-changed:{}"


def sync_enabled(installation_id: int) -> bool:
    settings = db.session.get(ContactSyncSettings, installation_id)
    return settings is not None and settings.enabled


def echoed_versions(installation_id: int,
                    versions: Mapping[str, datetime | None]) -> set[str]:
    """The companies whose version (from the webhook) is the one Paydeck's own last write
    produced: Paydeck's echo."""
    wanted = {c: v for c, v in versions.items() if v is not None}
    if not wanted:
        return set()
    rows = db.session.execute(select(ContactLink.crm_object_id, ContactLink.crm_written_version)
                              .where(ContactLink.installation_id == installation_id,
                                     ContactLink.crm_object_id.in_(wanted)))
    return {company for company, written in rows
            if written is not None and _utc(written) == _utc(wanted[company])}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def note_changed_companies(installation_id: int, company_ids: Iterable[str]) -> bool:
    """From a CRM webhook: remember the company ids and wake the installation's contact sync
    job, if contact sync is on. Whether a job was woken."""
    ids = sorted(set(company_ids))
    if not ids or not sync_enabled(installation_id):
        return False
    get_redis().sadd(_CHANGED.format(installation_id), *ids)
    _wake(installation_id)
    return True


def _wake(installation_id: int, delay: float | None = None) -> None:
    enqueue_once(sync_from_crm, installation_id, job_id=f"contact-sync-crm-{installation_id}",
                 follow_up=True, delay=delay, job_timeout=300)


def sync_from_crm(installation_id: int) -> int:
    """Job: the changed companies' linked Xero contacts brought up to date per the mapping.
    Returns how many contacts were written to Xero."""
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return 0
    connection = installation.xero_connection
    key = _CHANGED.format(installation_id)
    redis = get_redis()
    ids = [i.decode() if isinstance(i, bytes) else i for i in redis.smembers(key)]
    if not ids:
        return 0
    settings = db.session.get(ContactSyncSettings, installation_id)
    if (settings is None or not settings.enabled or connection is None
            or connection.status != ConnectionStatus.CONNECTED):
        redis.srem(key, *ids)  # nothing to sync to: the next change brings them again
        return 0
    links = list(db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation_id,
        ContactLink.crm_object_type == "company",  # person links: a later part of #15
        ContactLink.crm_status.is_(None),  # deleted, merged or waiting in the CRM: no sync
        ContactLink.crm_object_id.in_(ids))))
    try:
        written = reconcile(installation, connection, settings, links,
                            f"{installation.crm.value}:company").xero_written if links else 0
    except (RetryLater, CrmRetryLater, TokenUnavailable) as exc:
        _wake(installation_id, delay=max(getattr(exc, "seconds", 1.0), 1.0))
        db.session.rollback()
        return 0
    redis.srem(key, *ids)  # only once handled: a crash leaves them for the next run
    if redis.scard(key):
        _wake(installation_id)
    return written
