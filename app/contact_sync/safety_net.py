"""Contact sync's safety nets: a lost webhook is caught within CONTACT_POLL_MINUTES.

The minute cron `contact-net` (app/schedule.py) starts, per connected organisation with
contact sync on, whichever pass is due (each one CONTACT_POLL_MINUTES after that side's last
pass, so organisations stay spread over the interval as the invoice poll's do,
app.payments.poll_due_connections):

- Xero -> CRM (`catch_up_xero`): the contact mirror brought up to date with
  If-Modified-Since on the net's own SyncCursor ("contact-net"; one GET /Contacts when
  nothing changed), and the linked contacts whose UpdatedDateUTC is newer than the link's
  xero_version (and is not the version Paydeck's own write produced, xero_written_version)
  fed to `note_changed_contacts`, the webhook's own path (contacts linked to persons too,
  when the admin syncs persons).
- CRM -> Xero (`catch_up_crm`): the companies changed since the "crm-companies" cursor
  (HubSpot search on hs_lastmodifieddate, Pipedrive v2 organizations?updated_since:
  crm_adapters.changes), the linked ones newer than crm_version and not Paydeck's own write
  (crm_written_version) fed to `note_changed_companies`; then, when the admin syncs persons,
  the persons the same way from their own "crm-persons" cursor (HubSpot contacts search on
  lastmodifieddate, Pipedrive v2 persons?updated_since).

Both save their place after every page, so a pass that fails resumes where it stopped, and
both wake the sync job for ids a webhook noted but no job took (a lost wake-up).
Cost at the default 10 minutes, when nothing changed: 144 Xero calls a day per organisation
(2.9% of Xero's 5,000; with the invoice poll's 96, 4.8%), 144 HubSpot searches or 144
Pipedrive list calls (1,440 tokens) a day per account, twice that with persons synced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from app.connections import xero_client
from app.contact_sync.crm_to_xero import _CHANGED_BY_TYPE as CRM_CHANGED_BY_TYPE
from app.contact_sync.crm_to_xero import note_changed_companies
from app.contact_sync.reconcile import CONTACT_SYNC_RESERVE
from app.contact_sync.xero_to_crm import _CHANGED as XERO_CHANGED
from app.contact_sync.xero_to_crm import note_changed_contacts
from app.engine.steps.mirror import refresh_mirror
from app.extensions import db
from app.models import (
    ConnectionStatus,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationStatus,
    SyncCursor,
    XeroConnection,
)
from app.queueing import enqueue_once, noted_ids
from app.runtime import get_settings
from app.tokens import TokenUnavailable
from app.wiring import adapter_for
from crm_adapters.base import CrmRetryLater
from crm_adapters.changes import Changed
from domain.dates import as_utc, utc_now
from xero.client import ContactResult
from xero.errors import RetryLater

log = logging.getLogger(__name__)
XERO_KIND, CRM_KIND = "contact-net", "crm-companies"
# Each CRM object type reads from its own cursor; CRM_KIND's `updated_at` marks the pass.
CRM_CURSORS = {"company": CRM_KIND, "person": "crm-persons"}
# A cursor's first pass looks back this far (the webhooks carried what came before; a day is
# what a Xero or CRM outage plus their retries might have lost).
FIRST_LOOKBACK = timedelta(days=1)
# The CRM cursor stays this far behind the newest change read, so a change the CRM's search
# index shows a little late is still read next pass (Unverified: how far HubSpot's search
# index trails an edit; re-reading a minute is harmless, the versions filter it).
CRM_OVERLAP = timedelta(minutes=1)


def poll_contact_sync() -> int:
    """Cron (every minute): start each side's pass whose last one is older than
    CONTACT_POLL_MINUTES. Returns passes started."""
    due_before = utc_now() - timedelta(minutes=get_settings().contact_poll_minutes)
    last = {(c.xero_connection_id, c.kind): as_utc(c.updated_at) for c in db.session.scalars(
        select(SyncCursor).where(SyncCursor.kind.in_((XERO_KIND, CRM_KIND))))}
    rows = db.session.execute(
        select(XeroConnection.id, Installation.id).join(Installation)
        .join(ContactSyncSettings, ContactSyncSettings.installation_id == Installation.id)
        .where(XeroConnection.status == ConnectionStatus.CONNECTED,
               Installation.status == InstallationStatus.ACTIVE,
               ContactSyncSettings.enabled.is_(True))).all()
    started = 0
    for connection_id, installation_id in rows:
        if (when := last.get((connection_id, XERO_KIND))) is None or when < due_before:
            enqueue_once(catch_up_xero, connection_id, job_id=f"contact-net-xero-{connection_id}",
                         job_timeout=900)
            started += 1
        if (when := last.get((connection_id, CRM_KIND))) is None or when < due_before:
            enqueue_once(catch_up_crm, installation_id, job_id=f"contact-net-crm-{installation_id}",
                         job_timeout=900)
            started += 1
    return started


def _serving(connection: XeroConnection | None) -> ContactSyncSettings | None:
    """The installation's contact sync settings, if the net may run for this connection."""
    if (connection is None or connection.status != ConnectionStatus.CONNECTED
            or connection.installation.status != InstallationStatus.ACTIVE):
        return None
    settings = db.session.get(ContactSyncSettings, connection.installation_id)
    return settings if settings is not None and settings.enabled else None


def _cursor(connection_id: int, kind: str) -> SyncCursor:
    cursor = db.session.scalar(select(SyncCursor).where(
        SyncCursor.xero_connection_id == connection_id, SyncCursor.kind == kind))
    if cursor is None:
        cursor = SyncCursor(xero_connection_id=connection_id, kind=kind)
        db.session.add(cursor)
    return cursor


def _newer(found: Mapping[str, datetime | None], seen: datetime | None,
           written: datetime | None, key: str) -> bool:
    version, seen, written = as_utc(found.get(key)), as_utc(seen), as_utc(written)
    if version is not None and written is not None and version == written:
        return False  # Paydeck's own write: never a change to carry back
    return version is None or seen is None or version > seen


def newer_links(installation_id: int, versions: Mapping[str, datetime | None],
                side: str, object_types: Sequence[str] = ("company",)) -> set[str]:
    """The linked records among `versions` changed since their link's last sync, by someone
    other than Paydeck, among links to CRM records of `object_types` ("company", "person").
    `side` "xero": {contact id: UpdatedDateUTC}; "crm": {company or person id: the CRM's
    version}."""
    if not versions:
        return set()
    id_column = ContactLink.xero_contact_id if side == "xero" else ContactLink.crm_object_id
    links = db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation_id,
        ContactLink.crm_object_type.in_(object_types), id_column.in_(list(versions))))
    return {getattr(link, id_column.key) for link in links
            if _newer(versions, getattr(link, f"{side}_version"),
                      getattr(link, f"{side}_written_version"), getattr(link, id_column.key))}


def catch_up_xero(connection_id: int) -> dict[str, int]:
    """Job: the Xero side's pass (see the module's docstring). {"calls", "fed"}."""
    connection = db.session.get(XeroConnection, connection_id)
    settings = _serving(connection)
    if settings is None:
        return {}
    assert connection is not None and connection.tenant_id
    tenant, installation_id = connection.tenant_id, connection.installation_id
    linked_types = ("company", "person") if settings.persons else ("company",)
    client = xero_client(connection)
    if client.limiter.available(tenant) < 1 + CONTACT_SYNC_RESERVE:
        return {"calls": 0, "fed": 0}  # the quota is invoicing's now: the next minute's cron
    fed: set[str] = set()

    def on_page(contacts: list[ContactResult]) -> None:
        ids = newer_links(installation_id, {c.contact_id: c.updated_at for c in contacts
                                            if c.contact_id}, "xero", linked_types)
        if ids:
            note_changed_contacts({tenant: ids})
            fed.update(ids)

    left = set(noted_ids(XERO_CHANGED.format(tenant)))
    if left:  # noted by a webhook whose job never came (a lost wake-up): wake it now
        note_changed_contacts({tenant: left})
    try:
        refresh_mirror(connection, client, kind=XERO_KIND, on_page=on_page,
                       first_since=utc_now() - FIRST_LOOKBACK)
    except (RetryLater, TokenUnavailable) as exc:  # the cursor keeps the pages done
        db.session.rollback()
        log.info("contact net of connection %s paused: %s", connection_id, exc)
    _cursor(connection_id, XERO_KIND).updated_at = utc_now()
    db.session.commit()
    return {"calls": client.calls, "fed": len(fed)}


def catch_up_crm(installation_id: int) -> dict[str, int]:
    """Job: the CRM side's pass (see the module's docstring): companies, then persons if the
    admin syncs persons. {"pages", "fed"}, both object types together."""
    installation = db.session.get(Installation, installation_id)
    connection = installation.xero_connection if installation is not None else None
    settings = _serving(connection)
    if installation is None or settings is None:
        return {}
    assert connection is not None
    counts = {"pages": 0, "fed": 0}
    adapter = adapter_for(installation.crm.value)
    readers = {"company": adapter.companies_changed_since}
    if settings.persons:
        readers["person"] = adapter.persons_changed_since
    try:
        for object_type, changed_since in readers.items():
            _catch_up_type(installation_id, connection.id, object_type, changed_since, counts)
    except (CrmRetryLater, TokenUnavailable) as exc:
        db.session.rollback()
        log.info("CRM contact net of installation %s paused: %s", installation_id, exc)
    _cursor(connection.id, CRM_KIND).updated_at = utc_now()
    db.session.commit()
    return counts


def _catch_up_type(installation_id: int, connection_id: int, object_type: str,
                   changed_since: Callable[[Installation, datetime], Iterable[list[Changed]]],
                   counts: dict[str, int]) -> None:
    """One object type's read from its own cursor, the linked records newer than their link's
    crm_version (and not Paydeck's own write) fed to the webhook's own path."""
    left = noted_ids(CRM_CHANGED_BY_TYPE[object_type].format(installation_id))
    if left:  # noted by a webhook whose job never came (a lost wake-up): wake it now
        note_changed_companies(installation_id, left, object_type)
    cursor = _cursor(connection_id, CRM_CURSORS[object_type])
    since = as_utc(cursor.position) or utc_now() - FIRST_LOOKBACK
    installation = db.session.get(Installation, installation_id)
    for page in changed_since(installation, since):
        counts["pages"] += 1
        ids = newer_links(installation_id, {c.company_id: c.version for c in page}, "crm",
                          (object_type,))
        if ids:
            note_changed_companies(installation_id, ids, object_type)
            counts["fed"] += len(ids)
        newest = max(as_utc(c.modified) or since for c in page)
        cursor.position = max(as_utc(cursor.position) or since, newest - CRM_OVERLAP)
        db.session.commit()  # resumable: the next pass starts from this page's place
