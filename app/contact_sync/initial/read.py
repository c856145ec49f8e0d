"""A match run's reading: every CRM company (HubSpot GET /crm/v3/objects/companies, 100 a
page by `after`; Pipedrive v2 GET /organizations, 500 a page by cursor) and every Xero contact
(GET /Contacts, xero.client.PAGE_SIZE a page, whole records, archived too) into
`contact_match_record`, the run's place saved after every page; then the match (`match`) into
`contact_match_row`. Nothing is written to either vendor.

The job is resumable: a crash, a kill, a CRM or Xero failure, or Xero's quota resumes at the
saved page (a page read twice is stored once). A Xero page is read only while the tenant's
shared quota keeps CONTACT_SYNC_RESERVE calls for invoicing, as contact sync does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select

from app.connections import xero_client
from app.contact_sync.initial.match import Side, match_all
from app.contact_sync.mapping import mapping_for
from app.contact_sync.reconcile import CONTACT_SYNC_RESERVE, QuotaReserved
from app.contact_sync.scope import in_scope
from app.contact_sync.sides import extra_properties, xero_scope, xero_snapshot
from app.extensions import db
from app.models import (
    ConnectionStatus,
    ContactLink,
    ContactMatchRecord,
    ContactMatchRow,
    ContactMatchRun,
    ContactSyncSettings,
    Installation,
    InstallationSettings,
)
from app.queueing import enqueue_once
from app.tokens import TokenUnavailable
from app.wiring import adapter_for
from crm_adapters.base import CrmError, CrmRetryLater
from domain.crm import CompanyRecord
from xero.client import ContactRecord
from xero.contacts import DEFAULT_ORDER
from xero.errors import FixData, ReconnectNeeded, RetryLater

log = logging.getLogger(__name__)
BUSY = ("reading", "applying")


class MatchUnavailable(Exception):
    """A run cannot start now (no Xero connection, or a run is applying): the page says why."""


def start_run(installation: Installation, user: str) -> ContactMatchRun:
    """A new run (older unapplied runs are superseded), its reading job queued."""
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        raise MatchUnavailable("Connect Xero first: the match reads its contacts.")
    if db.session.scalar(select(ContactMatchRun.id).where(
            ContactMatchRun.installation_id == installation.id,
            ContactMatchRun.status == "applying")) is not None:
        raise MatchUnavailable("A match is being applied: wait until it finishes.")
    for old in db.session.scalars(select(ContactMatchRun).where(
            ContactMatchRun.installation_id == installation.id,
            ContactMatchRun.status.in_(("reading", "ready", "failed")))):
        old.status = "superseded"
    run = ContactMatchRun(installation_id=installation.id, xero_connection_id=connection.id,
                          status="reading", started_by=user, counts={})
    db.session.add(run)
    db.session.commit()
    wake(run.id)
    return run


def wake(run_id: int, delay: float | None = None) -> None:
    enqueue_once(read_run, run_id, job_id=f"contact-match-read-{run_id}", delay=delay,
                 job_timeout=3600)


def read_run(run_id: int) -> str:
    """Job: read what is left to read, then match. Returns the run's status."""
    run = db.session.get(ContactMatchRun, run_id)
    if run is None or run.status != "reading":
        return run.status if run else "gone"
    installation = db.session.get(Installation, run.installation_id)
    connection = installation.xero_connection
    if connection is None or connection.id != run.xero_connection_id \
            or connection.status != ConnectionStatus.CONNECTED:
        return _fail(run, "Xero was disconnected while the match read its contacts.")
    settings = db.session.get(ContactSyncSettings, installation.id) or ContactSyncSettings(
        installation_id=installation.id, fields={}, contact_groups=[],
        xero_roles=["customer", "unassigned"])
    crm = installation.crm.value
    tax_property = _tax_property(installation.id)
    extra = extra_properties(crm, mapping_for(crm, settings.fields, tax_property), tax_property)
    try:
        _read_crm(run, installation, extra)
        _read_xero(run, connection, settings)
    except (RetryLater, CrmRetryLater, TokenUnavailable) as exc:
        db.session.rollback()
        wake(run_id, delay=max(float(getattr(exc, "seconds", 30.0) or 30.0), 1.0))
        return "reading"
    except (CrmError, FixData, ReconnectNeeded) as exc:
        db.session.rollback()
        return _fail(db.session.get(ContactMatchRun, run_id), f"Reading failed: {exc}")
    build_rows(run, installation)
    return run.status


def _read_crm(run: ContactMatchRun, installation: Installation, extra: dict[str, str]) -> None:
    adapter: Any = adapter_for(installation.crm.value)
    while not run.crm_done:
        before = adapter.calls
        companies, after = adapter.company_page(installation, run.crm_cursor, extra)
        _store(run, "crm", [_crm_values(c) for c in companies])
        run.crm_calls += adapter.calls - before
        run.crm_cursor, run.crm_done = after, after is None
        db.session.commit()  # the place is saved with the page


def _read_xero(run: ContactMatchRun, connection: Any, settings: ContactSyncSettings) -> None:
    if run.xero_done:
        return
    client = xero_client(connection)
    _keep_reserve(client, connection.tenant_id)
    for page, contacts in client.contact_record_pages(run.xero_page):
        _store(run, "xero", [_xero_values(c, settings) for c in contacts])
        run.xero_page, run.xero_calls = page + 1, run.xero_calls + 1
        db.session.commit()
        _keep_reserve(client, connection.tenant_id)  # before the generator reads on
    run.xero_done = True
    db.session.commit()


def _keep_reserve(client: Any, tenant_id: str) -> None:
    if client.limiter.available(tenant_id) < 1 + CONTACT_SYNC_RESERVE:
        raise QuotaReserved(60.0, "Xero quota kept for invoicing")


def _crm_values(company: CompanyRecord) -> dict[str, Any]:
    fields = dict(company.fields)
    return {"record_id": company.company_id, "name": fields.get("name", ""),
            "email": fields.get("email", ""), "tax_number": fields.get("tax_number", ""),
            "active": True, "in_scope": True,
            "fields": {"values": fields, "version": _iso(company.updated_at)}}


def _xero_values(contact: ContactRecord, settings: ContactSyncSettings) -> dict[str, Any]:
    scoped = in_scope(xero_scope(contact), settings.xero_roles, settings.contact_groups)
    return {"record_id": contact.contact_id, "name": contact.name, "email": contact.email,
            "tax_number": contact.tax_number, "active": contact.active, "in_scope": scoped,
            "fields": {"values": dict(xero_snapshot(contact).values),
                       "version": _iso(contact.updated_at)}}


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _store(run: ContactMatchRun, side: str, values: Sequence[dict[str, Any]]) -> None:
    """Insert the page's records, replacing any this run already stored (a page read again
    after a crash, or a record that moved pages)."""
    if not values:
        return
    ids = [v["record_id"] for v in values]
    db.session.execute(delete(ContactMatchRecord).where(
        ContactMatchRecord.run_id == run.id, ContactMatchRecord.side == side,
        ContactMatchRecord.record_id.in_(ids)))
    unique = {v["record_id"]: v for v in values}
    db.session.execute(insert(ContactMatchRecord), [
        {**v, "run_id": run.id, "side": side, "name": v["name"][:255],
         "email": v["email"][:255], "tax_number": v["tax_number"][:64]}
        for v in unique.values()])


def build_rows(run: ContactMatchRun, installation: Installation) -> None:
    """Match what was read into the review's rows (again from scratch if a crash left some)."""
    records = list(db.session.scalars(select(ContactMatchRecord).where(
        ContactMatchRecord.run_id == run.id)))
    sides = {"crm": [], "xero": []}
    for r in records:
        sides[r.side].append(Side(r.record_id, r.name, r.email, r.tax_number, r.active,
                                  r.in_scope))
    links = dict(db.session.execute(select(ContactLink.crm_object_id, ContactLink.xero_contact_id)
                                    .where(ContactLink.installation_id == installation.id,
                                           ContactLink.crm_object_type == "company")).all())
    row = db.session.get(InstallationSettings, installation.id)
    order = tuple(row.dedupe_order) if row is not None and row.dedupe_order else DEFAULT_ORDER
    matched = match_all(sides["crm"], sides["xero"], links, order)
    db.session.execute(delete(ContactMatchRow).where(ContactMatchRow.run_id == run.id))
    if matched.rows:
        db.session.execute(insert(ContactMatchRow), [
            {"run_id": run.id, "kind": p.kind, "crm_id": p.crm_id, "xero_id": p.xero_id,
             "crm_name": p.crm_name[:255], "xero_name": p.xero_name[:255],
             "matched_on": p.matched_on, "detail": p.detail,
             "candidates": [{"contact_id": c.record_id, "name": c.name, "email": c.email,
                             "tax_number": c.tax_number} for c in p.candidates],
             "state": "skipped" if p.kind == "linked" else "open", "result": {}}
            for p in matched.rows])
    run.counts = matched.counts
    run.status = "ready"
    db.session.commit()


def _fail(run: ContactMatchRun, why: str) -> str:
    run.status, run.error = "failed", why
    db.session.commit()
    log.warning("contact match run %s failed: %s", run.id, why)
    return "failed"


def _tax_property(installation_id: int) -> str | None:
    row = db.session.get(InstallationSettings, installation_id)
    return row.tax_number_property if row is not None else None
