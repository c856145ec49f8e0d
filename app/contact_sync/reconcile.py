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
from app.contact_sync.groups import group_members, scoped
from app.contact_sync.mapping import rules_for
from app.contact_sync.rules import Action, Decision, Snapshot, SyncPlan, decide, resolve, settle
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
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationSettings,
    ReviewItem,
    ReviewReason,
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
LABELS = {"name": "name", "email": "email", "phone": "phone", "mobile": "mobile",
          "street_address": "street address", "billing_address": "billing address",
          "website": "website", "tax_number": "tax number", "contact_persons": "contact persons",
          "payment_terms": "payment terms", "currency": "currency",
          "account_number": "account number"}


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
    records = _follow_merges(installation, client, links, records, trigger)
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
            _flag_archived(installation, link, record.name, trigger)
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
        conflicts = {d.field: _open_conflict(installation, link, d, trigger)
                     for d in plan.conflicts}
        settled = settle(state_of(link), plan, xero, crm_now, written=written,
                         conflict_items=conflicts)
        if "name" in plan.to_xero and "xero" not in written and _name_taken(saved):
            # Xero's unique-name rule: the same rename would fail on every pass. A person
            # decides (keep Xero's name, or the CRM's once the other contact is renamed).
            item = _name_collision(installation, link, plan.of("name"), saved, trigger)
            settled = replace(settled, open_conflicts={**settled.open_conflicts, "name": item})
        store(link, settled, now)
        _close_resolved(link, plan, written)
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


# Xero's answer to a save whose Name another active contact has (platform-facts: Name unique
# among active contacts): "The contact name X is already assigned to another contact. The
# contact name must be unique across all active contacts."
NAME_TAKEN = "already assigned to another contact"
MERGE_HOPS = 5  # a contact merged into one merged since: followed this many times at most


def _follow_merges(installation: Installation, client: Any, links: Sequence[ContactLink],
                   records: dict[str, Any], trigger: str) -> dict[str, Any]:
    """A Xero contact merged into another (MergedToContactID on the merged one, which Xero
    keeps archived): its links move to the surviving contact (audited), whose record is read
    too, so the pass compares the company with the contact Xero kept. Nothing is created."""
    for _ in range(MERGE_HOPS):
        moved = [link for link in links
                 if (r := records.get(link.xero_contact_id)) is not None and r.merged_to]
        if not moved:
            break
        for link in moved:
            _move_link(installation, link, records[link.xero_contact_id], trigger)
        wanted = sorted({link.xero_contact_id for link in moved} - set(records))
        if wanted:
            records = {**records, **client.contact_records(wanted)}
    return records


def _move_link(installation: Installation, link: ContactLink, merged: Any,
               trigger: str) -> None:
    before = link.xero_contact_id
    link.xero_contact_id = merged.merged_to
    # The survivor's record is another version history: no version of it was seen or written
    # yet. The hashes stay (what both sides last agreed on), so what the survivor holds
    # differently counts as a change in Xero, carried out by the mapping's rules.
    link.xero_version = link.xero_written_version = None
    link.xero_status = None
    db.session.add(AuditEvent(
        installation_id=installation.id, action="contact_link_moved", trigger=trigger,
        outcome="ok",
        detail={link.crm_object_type: link.crm_object_id, "why": "merged_in_xero",
                "before": {"contact_id": before, "name": merged.name},
                "after": {"contact_id": merged.merged_to}},
        xero_ids={"contact_id": merged.merged_to}))


def _flag_archived(installation: Installation, link: ContactLink, name: str,
                   trigger: str) -> None:
    """The linked contact is archived in Xero: the link is flagged and one open review item
    says so (not one per pass); nothing is written to either side, nothing created."""
    from app.models import ReviewStatus

    if link.xero_status == "archived":
        return
    link.xero_status = "archived"
    open_item = db.session.query(ReviewItem).filter_by(
        contact_link_id=link.id, reason=ReviewReason.CONTACT_ARCHIVED,
        status=ReviewStatus.OPEN).first()
    if open_item is None:
        db.session.add(ReviewItem(
            installation_id=installation.id, contact_link_id=link.id,
            reason=ReviewReason.CONTACT_ARCHIVED,
            detail=(f"The Xero contact {name or link.xero_contact_id} linked to "
                    f"{objects.NOUN[link.crm_object_type]} {link.crm_object_id} is archived in Xero, so the two no longer sync. "
                    "Restore it in Xero, or link the {objects.NOUN[link.crm_object_type]} to another contact.")))
    db.session.add(AuditEvent(
        installation_id=installation.id, action="contact_archived", trigger=trigger,
        outcome="review",
        detail={link.crm_object_type: link.crm_object_id, "before": {"xero_status": None},
                "after": {"xero_status": "archived"}},
        xero_ids={"contact_id": link.xero_contact_id}))


def _name_taken(saved: Any) -> bool:
    return isinstance(saved, ContactSaved) and any(NAME_TAKEN in e for e in saved.errors)


def _name_collision(installation: Installation, link: ContactLink, d: Decision, saved: Any,
                    trigger: str) -> int:
    """A review item for a CRM rename Xero refused because another active contact has that
    name; its id (kept on the link, so the name waits for a person)."""
    item = ReviewItem(
        installation_id=installation.id, contact_link_id=link.id,
        reason=ReviewReason.CONTACT_CONFLICT,
        detail=(f"The {objects.NOUN[link.crm_object_type]} was renamed to {shown(d.crm_value)} "
                "in the CRM, but another Xero contact already has that name (Xero's contact "
                "names are unique): keep Xero's name, or rename the other contact in Xero and keep the CRM's."),
        candidates=[{"field": "name", "side": "xero", "value": shown(d.xero_value)},
                    {"field": "name", "side": "crm", "value": shown(d.crm_value)}])
    db.session.add(item)
    db.session.flush()
    db.session.add(AuditEvent(installation_id=installation.id, action="contact_conflict",
                              trigger=trigger, outcome="review",
                              detail={link.crm_object_type: link.crm_object_id, "field": "name",
                                      "xero": shown(d.xero_value), "crm": shown(d.crm_value),
                                      "why": "name_taken_in_xero",
                                      "error": "; ".join(saved.errors)},
                              xero_ids={"contact_id": link.xero_contact_id}))
    return item.id


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


def _close_resolved(link: ContactLink, plan: SyncPlan, written: Mapping[str, Any]) -> None:
    """A chosen conflict carried out: its review item is resolved."""
    from app.engine import clock
    from app.models import ReviewStatus

    for d in plan.decisions:
        target = "crm" if d.action == Action.WRITE_CRM else "xero"
        if d.reason != "resolved_by_person" or target not in written:
            continue
        for item in db.session.query(ReviewItem).filter_by(
                contact_link_id=link.id, reason=ReviewReason.CONTACT_CONFLICT,
                status=ReviewStatus.OPEN):
            if any(c.get("field") == d.field for c in item.candidates or []):
                item.status, item.resolved_at = ReviewStatus.RESOLVED, clock.now()


def _open_conflict(installation: Installation, link: ContactLink, d: Decision,
                   trigger: str) -> int:
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
                              trigger=trigger, outcome="review",
                              detail={link.crm_object_type: link.crm_object_id, "field": d.field,
                                      "xero": shown(d.xero_value), "crm": shown(d.crm_value),
                                      "why": d.reason},
                              xero_ids={"contact_id": link.xero_contact_id}))
    return item.id
