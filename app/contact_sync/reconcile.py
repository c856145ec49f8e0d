"""One pass of two-way contact sync over some links, whichever side's webhook woke it.

Reads the linked Xero contacts (GET /Contacts?IDs=, 50 a call) and CRM companies (one CRM
batch read), lets the rules decide per field, then writes each side's changed fields in
batches: the CRM (HubSpot batch update, Pipedrive v2 PATCH) and Xero (POST /Contacts, 50 a
call, only while the tenant's shared minute/day quota keeps CONTACT_SYNC_RESERVE calls for
invoicing). A conflict the mapping says to ask about becomes a review item; a person's
choice on it (kept on the link) is carried out here through `rules.resolve`. Every company
or contact written is audited with its before and after values.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from app.connections import xero_client
from app.contact_sync import objects
from app.contact_sync.conflicts import close_resolved, name_collision, name_taken, open_conflict
from app.contact_sync.groups import group_members, scoped
from app.contact_sync.mapping import rules_for
from app.contact_sync.rules import Action, Snapshot, SyncPlan, decide, resolve, settle
from app.contact_sync.scope import in_scope
from app.contact_sync.sides import (
    crm_fields,
    crm_snapshot,
    extra_properties,
    shown,
    xero_patch,
    xero_scope,
    xero_snapshot,
)
from app.contact_sync.state import state_of, store
from app.contact_sync.user_changes import changed_by_users
from app.contact_sync.xero_merges import flag_archived, follow_merges
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationSettings,
    XeroConnection,
)
from app.wiring import adapter_for
from crm_adapters.base import CrmError, CrmRetryLater
from xero.client import BATCH_SIZE, ContactSaved
from xero.errors import FixData, RetryLater

log = logging.getLogger(__name__)

# Xero calls per minute (and per day) contact sync leaves for invoicing: it starts a pass
# only if the tenant's quota has this many calls spare beyond the pass's own.
CONTACT_SYNC_RESERVE = 20


class QuotaReserved(RetryLater):
    """The tenant's Xero quota is kept for invoicing now: try the pass again later."""


@dataclass
class Outcome:
    crm_written: int = 0
    xero_written: int = 0
    xero_calls: int = 0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def chosen(state_conflicts: Mapping[str, Any]) -> dict[str, str]:
    """field -> the side a person chose for an open conflict ("xero" / "crm")."""
    return {name: waiting["choice"] for name, waiting in state_conflicts.items()
            if isinstance(waiting, Mapping) and waiting.get("choice") in ("xero", "crm")}


def with_choices(plan: SyncPlan, choices: Mapping[str, str]) -> SyncPlan:
    """The plan with each chosen conflict carried out as the person chose (unless the two
    sides agree by now: then there is nothing left to write)."""
    if not choices:
        return plan
    decisions = tuple(
        resolve(d.field, choices[d.field], d.xero_value or "", d.crm_value or "")
        if d.field in choices and d.action == Action.NOTHING and d.reason == "waiting_for_review"
        else d for d in plan.decisions)
    return replace(plan, decisions=decisions)


def reconcile(installation: Installation, connection: XeroConnection,
              settings: ContactSyncSettings, links: Sequence[ContactLink],
              trigger: str, object_type: str = "company") -> Outcome:
    """Bring these links' two records into line per the mapping (the caller commits nothing:
    this commits once at the end). Raises RetryLater / CrmRetryLater when either side's
    limits say to come back later; nothing is stored then. The links are all of
    `object_type` (companies, or persons: app.contact_sync.objects)."""
    crm = installation.crm.value
    row = db.session.get(InstallationSettings, installation.id)
    tax_property = row.tax_number_property if row is not None else None
    rules = rules_for(object_type, crm, settings, tax_property)
    extra = extra_properties(crm, rules, tax_property, object_type)
    client = xero_client(connection)
    assert connection.tenant_id
    # The contacts (50 a call), and each chosen contact group's members (one call a group).
    reads = math.ceil(len(links) / BATCH_SIZE) + len(settings.contact_groups or [])
    if client.limiter.available(connection.tenant_id) < reads + CONTACT_SYNC_RESERVE:
        raise QuotaReserved(60.0, "Xero quota kept for invoicing")
    records = client.contact_records([link.xero_contact_id for link in links])
    records = follow_merges(installation, client, links, records, trigger)
    members = group_members(client, settings.contact_groups) if settings.contact_groups else None
    adapter = adapter_for(crm)
    companies = objects.fetch(adapter, object_type, installation,
                              [link.crm_object_id for link in links], extra)
    by_users = changed_by_users(installation.id, object_type, {
        i: c.updated_at for i, c in companies.items() if c is not None})
    now = _now()
    planned: list[tuple[ContactLink, SyncPlan, Snapshot, Snapshot, Any]] = []
    for link in links:
        record = records.get(link.xero_contact_id)
        company = companies.get(link.crm_object_id)
        if record is None or company is None:
            continue  # deleted or gone on one side: the CRM-side merge rules (later) decide
        if not record.active:
            flag_archived(installation, link, record.name, trigger)
            continue
        if link.xero_status is not None:  # restored in Xero: it syncs again
            link.xero_status = None
        scope = xero_scope(record)
        if members is not None:  # membership as the groups list it (app.contact_sync.groups)
            scope = scoped(scope, record.contact_id, members)
        if not in_scope(scope, settings.xero_roles, settings.contact_groups):
            continue
        xero, crm_now = xero_snapshot(record), crm_snapshot(crm, company, rules, tax_property,
                                                                  object_type)
        state = state_of(link)
        if link.crm_object_id in by_users:
            state = replace(state, crm_written_version=None)  # a person's edit, not our echo
        plan = with_choices(decide(rules, state, xero, crm_now), chosen(state.open_conflicts))
        planned.append((link, plan, xero, crm_now, record))

    crm_versions, crm_failure = _write_crm(installation, adapter, planned, extra, object_type)
    xero_saved, xero_failure, calls = _write_xero(client, connection, planned)
    outcome = Outcome(xero_calls=calls)
    for link, plan, xero, crm_now, _ in planned:
        written: dict[str, Any] = {}
        if plan.to_crm and not crm_failure and link.crm_object_id in crm_versions:
            written["crm"] = crm_versions[link.crm_object_id]
        saved = xero_saved.get(link.xero_contact_id)
        if plan.to_xero and isinstance(saved, ContactSaved) and not saved.errors:
            written["xero"] = saved.updated_at
        conflicts = {d.field: open_conflict(installation, link, d, trigger)
                     for d in plan.conflicts}
        settled = settle(state_of(link), plan, xero, crm_now, written=written,
                         conflict_items=conflicts)
        if "name" in plan.to_xero and "xero" not in written and name_taken(saved):
            # Xero's unique-name rule: the same rename would fail on every pass. A person
            # decides (keep Xero's name, or the CRM's once the other contact is renamed).
            item = name_collision(installation, link, plan.of("name"), saved, trigger)
            settled = replace(settled, open_conflicts={**settled.open_conflicts, "name": item})
        store(link, settled, now)
        close_resolved(link, plan, written)
        if plan.to_crm:
            outcome.crm_written += "crm" in written
            _audit(installation, link, plan, Action.WRITE_CRM, "xero_to_crm", trigger,
                   None if "crm" in written else
                   crm_failure or f"the CRM did not answer for this {object_type}")
        if plan.to_xero:
            outcome.xero_written += "xero" in written
            _audit(installation, link, plan, Action.WRITE_XERO, "crm_to_xero", trigger,
                   None if "xero" in written else _xero_error(saved, xero_failure))
    db.session.commit()
    return outcome


def _write_crm(installation: Installation, adapter: Any, planned: list[Any],
               extra: Mapping[str, str], object_type: str) -> tuple[dict[str, Any], str]:
    updates = {link.crm_object_id: crm_fields(plan.to_crm)
               for link, plan, _, _, _ in planned if plan.to_crm}
    if not updates:
        return {}, ""
    try:
        return objects.update(adapter, object_type, installation, updates, extra), ""
    except CrmRetryLater:
        raise
    except CrmError as exc:
        return {}, str(exc)


def _write_xero(client: Any, connection: XeroConnection,
                planned: list[Any]) -> tuple[dict[str, Any], str, int]:
    """POST /Contacts, BATCH_SIZE contacts a call. A batch the quota cannot take now (or a
    call Xero refuses as a whole) leaves its contacts unwritten: they stay unsettled and the
    next pass tries them again."""
    patches = [xero_patch(record, plan.to_xero) for _, plan, _, _, record in planned
               if plan.to_xero]
    saved: dict[str, Any] = {}
    failure, calls = "", 0
    for start in range(0, len(patches), BATCH_SIZE):
        chunk = patches[start:start + BATCH_SIZE]
        if client.limiter.available(connection.tenant_id) < 1 + CONTACT_SYNC_RESERVE:
            failure = "Xero's quota is kept for invoicing now; tried again later"
            break
        try:
            answers = client.update_contacts(chunk)
        except RetryLater as exc:
            failure = f"Xero asked to wait: {exc}"
            break
        except FixData as exc:  # Xero refused the batch's data: audited, tried again later
            log.warning("POST /Contacts refused: %s", exc)
            failure = str(exc) or type(exc).__name__
            calls += 1
            continue
        calls += 1
        for patch, answer in zip(chunk, answers, strict=True):
            saved[patch.contact_id] = answer
    return saved, failure, calls


def _xero_error(saved: Any, failure: str) -> str:
    if isinstance(saved, ContactSaved) and saved.errors:
        return "; ".join(saved.errors)
    if saved is not None:
        return str(getattr(saved, "reason", saved))
    return failure or "Xero did not answer for this contact"


def _audit(installation: Installation, link: ContactLink, plan: SyncPlan, action: Action,
           direction: str, trigger: str, error: str | None) -> None:
    db.session.add(AuditEvent(
        installation_id=installation.id, action="contact_synced", trigger=trigger,
        outcome="ok" if error is None else "failed",
        detail={link.crm_object_type: link.crm_object_id, "direction": direction,
                "fields": {d.field: {"before": shown(d.crm_value if action == Action.WRITE_CRM
                                                     else d.xero_value),
                                     "after": shown(d.value), "why": d.reason}
                           for d in plan.decisions if d.action == action},
                **({"error": error} if error is not None else {})},
        xero_ids={"contact_id": link.xero_contact_id}))
