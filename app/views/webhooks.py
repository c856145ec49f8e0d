"""CRM webhooks: verify over the raw bytes, record, enqueue, answer. No CRM or Xero call here.

Decisions (docs/webhooks.md): forged or stale -> 401, nothing recorded; malformed -> 400;
unknown or uninstalled account, a stage with no rule, Paydeck's own change, a repeat ->
2xx (so the CRM stops retrying), nothing enqueued, counted in the response and the log.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.runtime import get_settings
from app.engine.intake import stage_requests
from app.engine.job import enqueue_sync
from app.engine.rules import stage_actions
from app.payments import note_changed_invoices
from app.contact_sync.crm_merges import apply_company_events, revive_changed
from app.contact_sync.crm_to_xero import echoed_versions, note_changed_companies
from app.contact_sync.user_changes import note_user_versions
from app.contact_sync.xero_to_crm import note_changed_contacts
from app.extensions import db
from app.views.common import called_url
from app.models import CrmKind, Installation, InstallationStatus, WebhookReceipt
from app.wiring import adapter_for
from domain.crm import CompanyEvent, ParsedWebhook, StageEvent, WebhookRejected, WebhookRequest
from xero import webhooks as xero_webhooks

_Event = TypeVar("_Event", StageEvent, CompanyEvent)

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# Every event is one of these: a job, or a deliberate drop (answered 2xx either way).
# "contact_changes": company events handed to two-way contact sync (app.contact_sync).
OUTCOMES = ("enqueued", "duplicates", "no_rule", "ignored", "own_change", "unknown_account",
            "contact_changes")


@bp.post("/webhooks/hubspot")
def hubspot_webhook() -> tuple[Response, int]:
    adapter = adapter_for("hubspot")
    try:
        adapter.verify_webhook_headers(request.headers, None)  # before reading the body
        req = _as_webhook_request()
        adapter.verify_webhook(req, None)  # the app-level signature over the raw bytes
        parsed = adapter.parse_webhook(req)
    except WebhookRejected as exc:
        return _rejected("hubspot", exc)
    return _accept(CrmKind.HUBSPOT, parsed)


@bp.post("/webhooks/pipedrive/<int:installation_id>")
def pipedrive_webhook(installation_id: int) -> tuple[Response, int]:
    """Each installation's own URL: its Basic credentials are checked before the body is
    read. An unknown or inactive id answers exactly as a wrong password does (401), so ids
    cannot be enumerated; Pipedrive removes an app's webhooks at uninstall anyway."""
    installation = db.session.get(Installation, installation_id)
    if installation is not None and (installation.crm != CrmKind.PIPEDRIVE
                                     or installation.status != InstallationStatus.ACTIVE):
        installation = None
    adapter = adapter_for("pipedrive")
    try:
        adapter.verify_webhook_headers(request.headers, installation)
        assert installation is not None  # no credentials to match otherwise
        req = _as_webhook_request()
        adapter.verify_webhook(req, installation)
        parsed = adapter.parse_webhook(req)
    except WebhookRejected as exc:
        return _rejected("pipedrive", exc)
    return _accept(CrmKind.PIPEDRIVE, parsed, only_account=installation.account_id)


@bp.post("/webhooks/xero")
def xero_webhook() -> tuple[str, int]:
    """Xero wants 200 with an empty body within 5 s, and 401 for any bad signature - including
    the signed and mis-signed `events: []` posts of its intent-to-receive check."""
    signature = request.headers.get("x-xero-signature", "")
    if not signature:  # nothing to check a body against: don't read it
        log.warning("xero webhook rejected (401): no signature")
        return "", 401
    body = request.get_data(cache=False)
    try:
        xero_webhooks.verify(get_settings().xero_webhook_key, body, signature)
        changed = xero_webhooks.changed_invoices(body)
        contacts = xero_webhooks.changed_contacts(body)
    except xero_webhooks.XeroWebhookRejected as exc:
        log.warning("xero webhook rejected (%s): %s", exc.status, exc)
        return "", exc.status
    woken = note_changed_invoices(changed)
    contact_jobs = note_changed_contacts(contacts)
    log.info("xero webhook: %d invoices, %d refresh jobs; %d contacts, %d contact sync jobs",
             sum(map(len, changed.values())), woken, sum(map(len, contacts.values())),
             contact_jobs)
    return "", 200


def _as_webhook_request() -> WebhookRequest:
    return WebhookRequest(method=request.method, url=called_url(),
                          headers=request.headers, body=request.get_data(cache=False))


def _rejected(source: str, exc: WebhookRejected) -> tuple[Response, int]:
    log.warning("%s webhook rejected (%s): %s", source, exc.status, exc.reason)
    return jsonify({"error": exc.reason}), exc.status


def _accept(crm: CrmKind, parsed: ParsedWebhook, only_account: str | None = None) -> tuple[Response, int]:
    counts: Counter[str] = Counter({k: 0 for k in OUTCOMES})
    counts["ignored"] = parsed.ignored
    for installation_id, batch in _by_installation(crm, parsed.events, counts, only_account).items():
        _enqueue(crm, installation_id, batch, counts)
    if parsed.companies:
        _companies(crm, parsed.companies, counts, only_account)
    log.info("%s webhook: %s", crm.value, dict(counts))
    return jsonify(dict(counts)), 200


def _by_installation(crm: CrmKind, events: Sequence[_Event], counts: Counter[str],
                     only_account: str | None) -> dict[int, list[_Event]]:
    """The events that are not Paydeck's own changes, by the active installation of their CRM
    account (counted: `own_change`, and `unknown_account` for an account with none, or not
    the one a per-installation endpoint serves)."""
    theirs = [e for e in events if not e.own_change]
    counts["own_change"] += len(events) - len(theirs)
    if only_account is not None:
        counts["unknown_account"] += sum(e.account_id != only_account for e in theirs)
        theirs = [e for e in theirs if e.account_id == only_account]
    installations = _active_installations(crm, {e.account_id for e in theirs})
    by_installation: dict[int, list[_Event]] = defaultdict(list)
    for event in theirs:
        installation_id = installations.get(event.account_id)
        if installation_id is None:
            counts["unknown_account"] += 1
        else:
            by_installation[installation_id].append(event)
    return by_installation


def _companies(crm: CrmKind, events: list[CompanyEvent], counts: Counter[str],
               only_account: str | None) -> None:
    """Company events: Paydeck's own writes dropped (HubSpot INTEGRATION with our app id;
    Pipedrive API changes at the version Paydeck wrote), the rest noted for the
    installation's contact sync job, one job per installation however many events. Deletions,
    restores and merges update the links at once, whether or not contact sync is on: invoices
    use the links too (app.contact_sync.crm_merges)."""
    for installation_id, events_of in _by_installation(crm, events, counts, only_account).items():
        lifecycle = [e for e in events_of if e.kind != "change"]
        if lifecycle:  # deletions, restores, merges: the links change now (database only)
            events_of = [e for e in events_of if e.kind == "change"]
            installation = db.session.get(Installation, installation_id)
            assert installation is not None
            woken = apply_company_events(installation, lifecycle)
            counts["contact_changes"] += len(lifecycle)
            note_changed_companies(installation_id, woken)
        for object_type in ("company", "person"):  # persons: B2C deals' contacts
            batch = [e for e in events_of if e.object_type == object_type]
            if not batch:
                continue
            if object_type == "company" and (
                    installation := db.session.get(Installation, installation_id)):
                revive_changed(installation, batch)  # a deleted company announced again
            echoes = echoed_versions(installation_id, {e.company_id: e.version for e in batch
                                                       if e.via_api}, object_type)
            mine = [e for e in batch if e.via_api and e.company_id in echoes]
            counts["own_change"] += len(mine)
            note_user_versions(installation_id, object_type,
                               {e.company_id: e.version for e in batch if not e.via_api})
            rest = [e for e in batch if e not in mine]
            if note_changed_companies(installation_id, (e.company_id for e in rest), object_type):
                counts["contact_changes"] += len(rest)
            else:
                counts["ignored"] += len(rest)


def _active_installations(crm: CrmKind, accounts: set[str]) -> dict[str, int]:
    if not accounts:
        return {}
    rows = db.session.execute(select(Installation.account_id, Installation.id).where(
        Installation.crm == crm, Installation.account_id.in_(accounts),
        Installation.status == InstallationStatus.ACTIVE))
    return {account: installation_id for account, installation_id in rows}


def _enqueue(crm: CrmKind, installation_id: int, events: list[StageEvent],
             counts: Counter[str]) -> None:
    """Receipts (drop repeats) and deal requests in one transaction, then one wake-up."""
    rules = stage_actions(installation_id)
    acting = [e for e in events if e.stage_id in rules]
    counts["no_rule"] += len(events) - len(acting)
    if not acting:
        return
    fresh = _record_receipts(crm.value, installation_id, acting)
    stage_requests(installation_id, [(e.deal_id, rules[e.stage_id], f"{crm.value}:{e.event_key}")
                                     for e in acting if e.event_key in fresh])
    db.session.commit()  # both, or neither: an event is never marked seen but not requested
    counts["duplicates"] += len(acting) - len(fresh)
    counts["enqueued"] += len(fresh)
    if fresh:
        enqueue_sync(installation_id)


def _record_receipts(source: str, installation_id: int, events: list[StageEvent]) -> set[str]:
    """Insert one receipt per event, skipping keys already stored: the keys that are new."""
    now = datetime.now(timezone.utc)
    rows = [{"source": source, "event_key": key, "installation_id": installation_id,
             "outcome": "enqueued", "received_at": now}
            for key in dict.fromkeys(e.event_key for e in events)]
    insert: Callable[..., Any] = (pg_insert if db.engine.dialect.name == "postgresql"
                                  else sqlite_insert)
    # Core, executemany with RETURNING (SQLAlchemy's insertmanyvalues): one cached statement,
    # one round trip for the batch; no ORM unit of work for rows we never load.
    table = WebhookReceipt.__table__
    statement = insert(table).on_conflict_do_nothing(
        index_elements=["source", "event_key"]).returning(table.c.event_key)
    return set(db.session.connection().execute(statement, rows).scalars())
