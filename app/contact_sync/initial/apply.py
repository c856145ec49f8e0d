"""The apply job: the approved rows of a match run carried out, in the background, resumable.

Order: rows a crash left mid-call are settled first (`creates.resume`), then links, Xero
creates, CRM creates, then one contact sync pass (app.contact_sync.reconcile, 50 links a
pass) over every new link that is not in sync yet, so ongoing sync starts from "in sync".
Each row ends `done` (with what was made) or `failed` (with the reason shown on the review
screen); Xero's quota, a busy CRM or a token refresh re-enqueue the job, which picks up where
it stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from app.contact_sync.initial import creates
from app.contact_sync.initial.links import Context, fail, make_link
from app.contact_sync.mapping import mapping_for
from app.contact_sync.reconcile import reconcile
from app.contact_sync.sides import extra_properties
from app.extensions import db
from app.models import (
    ConnectionStatus,
    ContactLink,
    ContactMatchRow,
    ContactMatchRun,
    ContactSyncSettings,
    Installation,
    InstallationSettings,
    InstallationStatus,
)
from app.queueing import enqueue_once
from app.tokens import TokenUnavailable
from crm_adapters.base import CrmError, CrmRetryLater
from xero.errors import FixData, ReconnectNeeded, RetryLater

log = logging.getLogger(__name__)
SYNC_CHUNK = 50  # links per contact sync pass: one GET /Contacts?IDs= and one POST at most
PASSES = 3  # rows a resume sends back to the queue are tried again in the same job


def wake(run_id: int, delay: float | None = None) -> None:
    enqueue_once(apply_run, run_id, job_id=f"contact-match-apply-{run_id}", follow_up=True,
                 delay=delay, job_timeout=3600)


def apply_run(run_id: int) -> int:
    """Job: carry out the run's queued rows. Returns how many rows are done in all."""
    run = db.session.get(ContactMatchRun, run_id)
    if run is None or run.status != "applying":
        return 0
    ctx = _context(run)
    if ctx is None:
        for row in _queued(run, ("queued", "sending")):
            row.state, row.error = "failed", "Xero or the CRM was disconnected before this ran"
        run.status = "ready"
        db.session.commit()
        return 0
    try:
        for _ in range(PASSES):
            creates.resume(ctx)
            _links(ctx)
            creates.to_xero(ctx)
            creates.to_crm(ctx)
            if not _queued(run, ("queued",)):
                break
        _first_sync(ctx)
    except (RetryLater, CrmRetryLater, TokenUnavailable) as exc:
        db.session.rollback()
        wake(run_id, delay=max(float(getattr(exc, "seconds", 30.0) or 30.0), 1.0))
        return 0
    run = db.session.get(ContactMatchRun, run_id)
    if not _queued(run, ("queued", "sending")):
        run.status = "ready"
    db.session.commit()
    return len(_queued(run, ("done",)))


def _context(run: ContactMatchRun) -> Context | None:
    installation = db.session.get(Installation, run.installation_id)
    connection = installation.xero_connection if installation else None
    if (installation is None or installation.status != InstallationStatus.ACTIVE
            or connection is None or connection.id != run.xero_connection_id
            or connection.status != ConnectionStatus.CONNECTED):
        return None
    settings = db.session.get(ContactSyncSettings, installation.id)
    row = db.session.get(InstallationSettings, installation.id)
    tax = row.tax_number_property if row is not None else None
    crm = installation.crm.value
    rules = mapping_for(crm, settings.fields if settings else {}, tax)
    return Context(run, installation, connection, settings, crm, tax, rules,
                   extra_properties(crm, rules, tax))


def _queued(run: ContactMatchRun, states: tuple[str, ...]) -> list[ContactMatchRow]:
    return list(db.session.scalars(select(ContactMatchRow).where(
        ContactMatchRow.run_id == run.id, ContactMatchRow.state.in_(states),
        ContactMatchRow.batch.is_not(None)).order_by(ContactMatchRow.id)))


def _links(ctx: Context) -> None:
    rows = [r for r in _queued(ctx.run, ("queued",)) if r.choice == "link"]
    for start in range(0, len(rows), 500):
        for row in rows[start:start + 500]:
            if not row.crm_id or not row.xero_id:
                fail(ctx, row, "nothing to link: no company or no Xero contact")
                continue
            make_link(ctx, row, row.crm_id, row.xero_id, "match")
        db.session.commit()


def _first_sync(ctx: Context) -> None:
    """One contact sync pass over the run's new links not yet in sync (contact sync on only:
    with it off, links carry no state until it is turned on)."""
    if ctx.settings is None or not ctx.settings.enabled:
        return
    waiting = [r.id for r in _queued(ctx.run, ("done",)) if (r.result or {}).get("synced") is False]
    for start in range(0, len(waiting), SYNC_CHUNK):
        rows = list(db.session.scalars(select(ContactMatchRow).where(
            ContactMatchRow.id.in_(waiting[start:start + SYNC_CHUNK]))))
        links = {link.id: link for link in db.session.scalars(select(ContactLink).where(
            ContactLink.id.in_([r.result["link_id"] for r in rows])))}
        outcome: Any = None
        try:
            outcome = reconcile(ctx.installation, ctx.connection, ctx.settings,
                                list(links.values()), ctx.trigger)
        except (FixData, ReconnectNeeded, CrmError) as exc:
            if isinstance(exc, CrmRetryLater):
                raise
            db.session.rollback()
            for row in rows:
                row.error = f"linked, but the first sync failed: {exc}"
        for row in rows:
            row.result = {**row.result, "synced": True if outcome is not None else "failed"}
        db.session.commit()
