"""Xero -> CRM: a Xero CONTACT webhook names changed contacts; the job reads those linked to
a company (GET /Contacts?IDs=) and the companies (one CRM batch read), lets the rules decide
per field, writes the changed fields onto the companies in CRM batches (HubSpot batch
update, Pipedrive v2 PATCH), opens a review item per "ask" conflict, and audits each
company's change with its before and after values.

Only this direction writes here: a field the rules would write to Xero is left unsettled for
the CRM -> Xero direction (not built yet), so nothing is lost meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from app.connections import xero_client
from app.contact_sync.mapping import mapping_for
from app.contact_sync.rules import Action, Decision, Snapshot, decide, settle
from app.contact_sync.scope import in_scope
from app.contact_sync.sides import (
    crm_fields,
    crm_snapshot,
    extra_properties,
    shown,
    xero_scope,
    xero_snapshot,
)
from app.contact_sync.state import state_of, store
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationSettings,
    InstallationStatus,
    ReviewItem,
    ReviewReason,
    XeroConnection,
)
from app.queueing import enqueue_once
from app.redis_conn import get_redis
from app.tokens import TokenUnavailable
from app.wiring import adapter_for
from crm_adapters.base import CrmError, CrmRetryLater
from xero.errors import RetryLater

log = logging.getLogger(__name__)
_CHANGED = "paydeck:xero-contacts-changed:{}"
LABELS = {"name": "name", "email": "email", "phone": "phone", "mobile": "mobile",
          "street_address": "street address", "billing_address": "billing address",
          "website": "website", "tax_number": "tax number", "contact_persons": "contact persons",
          "payment_terms": "payment terms", "currency": "currency",
          "account_number": "account number"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


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
    crm = installation.crm.value
    row = db.session.get(InstallationSettings, installation.id)
    tax_property = row.tax_number_property if row is not None else None
    rules = mapping_for(crm, settings.fields, tax_property)
    extra = extra_properties(crm, rules, tax_property)
    records = xero_client(connection).contact_records([link.xero_contact_id for link in links])
    adapter = adapter_for(crm)
    companies = adapter.fetch_companies(installation, [link.crm_object_id for link in links],
                                        extra)
    now = _now()
    planned: list[tuple[ContactLink, Any, Snapshot, Snapshot]] = []
    for link in links:
        record = records.get(link.xero_contact_id)
        company = companies.get(link.crm_object_id)
        if record is None or company is None:
            # Merged, deleted or gone on one side: the merge rules (a later part of #15) decide.
            continue
        if not in_scope(xero_scope(record), settings.xero_roles, settings.contact_groups):
            continue
        xero, crm_now = xero_snapshot(record), crm_snapshot(crm, company, rules, tax_property)
        plan = decide(rules, state_of(link), xero, crm_now)
        planned.append((link, plan, xero, crm_now))
    updates = {link.crm_object_id: crm_fields(plan.to_crm)
               for link, plan, _, _ in planned if plan.to_crm}
    versions: dict[str, Any] = {}
    failure = ""
    if updates:
        try:
            versions = adapter.update_companies(installation, updates, extra)
        except CrmRetryLater:
            raise
        except CrmError as exc:
            failure = str(exc)
    written = 0
    for link, plan, xero, crm_now in planned:
        wrote = bool(plan.to_crm) and not failure and link.crm_object_id in versions
        conflicts = {d.field: _open_conflict(installation, link, d) for d in plan.conflicts}
        store(link, settle(state_of(link), plan, xero, crm_now,
                           written={"crm": versions.get(link.crm_object_id)} if wrote else {},
                           conflict_items=conflicts), now)
        if plan.to_crm:
            written += wrote
            db.session.add(AuditEvent(
                installation_id=installation.id, action="contact_synced",
                trigger="xero:contact", outcome="ok" if wrote else "failed",
                detail={"company": link.crm_object_id, "direction": "xero_to_crm",
                        "fields": {d.field: {"before": shown(d.crm_value),
                                             "after": shown(d.value), "why": d.reason}
                                   for d in plan.decisions if d.action == Action.WRITE_CRM},
                        **({"error": failure or "the CRM did not answer for this company"}
                           if not wrote else {})},
                xero_ids={"contact_id": link.xero_contact_id}))
    db.session.commit()
    return written


def _open_conflict(installation: Installation, link: ContactLink, d: Decision) -> int:
    """A review item with both values (a person picks one); its id."""
    label = LABELS.get(d.field, d.field)
    item = ReviewItem(
        installation_id=installation.id, contact_link_id=link.id,
        reason=ReviewReason.CONTACT_CONFLICT,
        detail=(f"The {label} changed in both Xero and the CRM since they were last in sync, "
                "and the mapping says to ask: choose which value to keep."),
        candidates=[{"field": d.field, "side": "xero", "value": shown(d.xero_value)},
                    {"field": d.field, "side": "crm", "value": shown(d.crm_value)}])
    db.session.add(item)
    db.session.flush()
    db.session.add(AuditEvent(installation_id=installation.id, action="contact_conflict",
                              trigger="xero:contact", outcome="review",
                              detail={"company": link.crm_object_id, "field": d.field,
                                      "xero": shown(d.xero_value), "crm": shown(d.crm_value),
                                      "why": d.reason},
                              xero_ids={"contact_id": link.xero_contact_id}))
    return item.id
