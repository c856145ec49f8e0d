"""The invoice engine: deals waiting for an invoice -> exactly one Xero invoice each -> the
invoice's number, status and link written back onto the deal.

Exactly once, whatever happens:
- a request per deal is stored (repeats merge), and one job per installation works through
  them under a Redis lock, so concurrent jobs for a deal never race;
- the InvoiceLink row (unique per deal and trigger) is committed *before* Xero is called,
  with a deterministic Reference and Idempotency-Key;
- a link left PENDING (crash, timeout, lost response) is looked up in Xero by Reference
  before anything is created again (idempotency keys only live minutes);
- a later, stronger rule (authorise after draft) updates the existing draft - but only a
  DRAFT exactly as Paydeck last wrote it (Xero's UpdatedDateUTC, read just before): what
  finance changed or approved in Xero is never overwritten unasked (a review item offers
  "keep Xero's" or "re-send the deal");
- a request merged into the row while a run works on it bumps the row's version, and the run
  deletes only the version it handled, so the newer request (an approval) is never lost;
- a webhook's request follows the stage the deal is in when the job reads it, not the one it
  passed through.

The invoice date is the deal's date in the organisation's timezone (see `invoice_date`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from redis.exceptions import LockError
from rq import Retry
from sqlalchemy import case, delete, event, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.connections import xero_client
from domain.deals import Deal
from app.lifecycle import confirm_crm_grant
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    ContactLink,
    DealSyncRequest,
    Installation,
    InstallationSettings,
    InstallationStatus,
    InvoiceLink,
    InvoiceLinkState,
    ProductMapping,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
    StageAction,
    StageRule,
    SyncCursor,
    TaxMapping,
    XeroConnection,
    XeroContact,
)
from app.presence import Lease
from app.redis_conn import get_redis
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.wiring import NoAdapter, adapter_for
from domain.crm import InvoiceFields
from crm_adapters.base import CrmError, CrmReconnectNeeded, CrmRetryLater
from xero.build import InvoiceDraft, InvoiceRules, Problem, ProductRule, build_invoice
from xero.client import (BATCH_SIZE, ContactResult, InvoiceResult, NewContact, XeroClient,
                         contact_too_long)
from xero.contacts import Candidate, Customer, email_key, match_contact, name_key, tax_key
from xero.errors import BatchMismatch, FixData, ReconnectNeeded, RetryLater, standard_backoff
from xero.reference import ContactTerms, PaymentTerms, ReferenceData
from xero.status import LABELS, deal_status
from xero.timezones import iana_zone, local_date

log = logging.getLogger(__name__)

TRIGGER = "deal"  # one invoice per deal; later rules update it
MAX_DEALS_PER_RUN = 200
# Seconds a killed run keeps the installation locked; a live run's lease is renewed by a
# thread every third of it, however long a Xero call takes.
SYNC_LOCK_TTL = 15
REFERENCE_TTL = 3600
# The sweep (every minute) wakes installations whose deals waited this long: a batch whose
# worker was killed is picked up at the next tick, even if no new webhook comes.
SWEEP_AFTER = timedelta(seconds=30)
STRENGTH = {StageAction.NONE: 0, StageAction.DRAFT: 1, StageAction.AUTHORISE: 2,
            StageAction.AUTHORISE_AND_EMAIL: 3}
XERO_STATUS_STRENGTH = {"DRAFT": 1, "SUBMITTED": 1, "AUTHORISED": 2, "PAID": 3}


# --- asking for invoices ----------------------------------------------------------------------

def request_invoice(installation_id: int, deal_id: str, action: StageAction, source: str) -> None:
    """Remember that `deal_id` wants `action` (merging with a waiting request) and wake the
    installation's job."""
    request_invoices(installation_id, [(deal_id, action, source)])


def request_invoices(installation_id: int, wanted: Sequence[tuple[str, StageAction, str]]) -> int:
    """Bulk `request_invoice` for one installation: one statement, one commit, one wake-up.
    Returns how many deals were asked for."""
    count = stage_requests(installation_id, wanted)
    db.session.commit()
    if count:
        enqueue_sync(installation_id)
    return count


# Request sources that are a person asking now (see stage_requests).
PERSON_SOURCES = ("card", "retry", "resend")


def stage_requests(installation_id: int, wanted: Sequence[tuple[str, StageAction, str]]) -> int:
    """Upsert DealSyncRequests in the current transaction (the caller commits, then calls
    enqueue_sync). Repeats merge; the strongest action wins - in the database, so concurrent
    webhooks for one deal cannot race."""
    merged: dict[str, tuple[StageAction, str]] = {}
    for deal_id, action, source in wanted:
        if action != StageAction.NONE and (deal_id not in merged
                                           or STRENGTH[action] > STRENGTH[merged[deal_id][0]]):
            merged[deal_id] = (action, source)
    if not merged:
        return 0
    now = _now()
    rows = [{"installation_id": installation_id, "deal_id": deal_id, "action": action.value,
             "source": source, "attempts": 0, "requested_at": now, "version": 0}
            for deal_id, (action, source) in merged.items()]
    table = DealSyncRequest.__table__
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table)
    strength = {a.value: n for a, n in STRENGTH.items()}
    stronger = (case(strength, value=statement.excluded.action, else_=0)
                > case(strength, value=table.c.action, else_=0))
    # A person asking (the card's push, a review retry or re-send) means now: a deal backing
    # off is tried at once (Xero's own waits still hold: the shared limiter answers for them).
    by_person = or_(*(statement.excluded.source.like(f"{kind}:%") for kind in PERSON_SOURCES))
    # Every merge bumps the version, even a weaker one: a run already working on the row
    # then leaves it in place (see InvoiceRun._finish), and the next run re-reads the deal.
    statement = statement.on_conflict_do_update(
        index_elements=["installation_id", "deal_id"],
        set_={"action": case((stronger, statement.excluded.action), else_=table.c.action),
              "source": case((stronger, statement.excluded.source), else_=table.c.source),
              "not_before": case((by_person, None), else_=table.c.not_before),
              "version": table.c.version + 1})
    db.session.connection().execute(statement, rows)
    return len(merged)


def stage_actions(installation_id: int) -> dict[str, StageAction]:
    """The admin's rules by stage id. Stage ids are unique across pipelines in both HubSpot
    and Pipedrive, so the stage alone decides; the pipeline is kept for the settings page."""
    return {r.stage_id: r.action for r in db.session.scalars(select(StageRule).where(
        StageRule.installation_id == installation_id)) if r.action != StageAction.NONE}


def action_for_stage(installation_id: int, stage_id: str) -> StageAction:
    """The admin's rule for a deal entering this stage (none when there is no rule)."""
    return stage_actions(installation_id).get(stage_id, StageAction.NONE)


def enqueue_sync(installation_id: int, delay: float | None = None) -> None:
    from app.jobs import enqueue_once

    # One waiting job per installation (unique id) plus one follow-up while it runs; the
    # run itself holds a lock, so two never overlap.
    enqueue_once(sync_installation, installation_id, job_id=f"invoice-sync-{installation_id}",
                 delay=delay, follow_up=True, job_timeout=900)


def dismiss_review_item(item_id: int) -> bool:
    """A person decided nothing should be done."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.status != ReviewStatus.OPEN:
        return False
    _close(item, ReviewStatus.DISMISSED, "review_dismissed")
    return True


def _close(item: ReviewItem, status: ReviewStatus, action: str) -> None:
    """Close a review item as a person decided, with its audit event."""
    item.status, item.resolved_at = status, _now()
    db.session.add(AuditEvent(installation_id=item.installation_id, deal_id=item.deal_id,
                              action=action, outcome="ok",
                              detail={"review_item": item.id, "reason": item.reason.value}))
    db.session.commit()


def forget_reference_data(installation_id: int) -> None:
    """Drop the cached accounts/tax rates/items (settings changed, or Xero said they moved).
    One known key per installation: no scan of Redis's keyspace on this hot path."""
    get_redis().delete(_reference_key(installation_id))


def _reference_key(installation_id: int) -> str:
    return f"paydeck:xero-ref:{installation_id}"


def retry_review_item(item_id: int, source_kind: str = "retry") -> bool:
    """The one-click retry: resolve the item and ask for the deal's invoice again."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.status != ReviewStatus.OPEN or not item.deal_id:
        return False
    if item.reason == ReviewReason.XERO_EDITED and source_kind != RESEND:
        return False  # keep Xero's or re-send the deal: a plain retry would decide neither
    item.status, item.resolved_at = ReviewStatus.RESOLVED, _now()
    item.attempts += 1
    action = StageAction(item.action) if item.action else StageAction.DRAFT
    db.session.commit()
    request_invoice(item.installation_id, item.deal_id, action, f"{source_kind}:review:{item.id}")
    return True


def resend_deal(item_id: int) -> bool:
    """Finance's edit loses: overwrite Xero's version with the deal (the "re-send the deal"
    choice of a XERO_EDITED item). Only the version shown on the item is overwritten; if
    Xero changed again since, the run opens a new item instead."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.reason != ReviewReason.XERO_EDITED:
        return False
    return retry_review_item(item_id, RESEND)


def keep_xero_version(item_id: int) -> bool:
    """Finance's edit stays (the "keep Xero's" choice): close the item, send nothing."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.reason != ReviewReason.XERO_EDITED or item.status != ReviewStatus.OPEN:
        return False
    _close(item, ReviewStatus.RESOLVED, "review_kept_xero")
    return True


# --- the job ----------------------------------------------------------------------------------

def sync_installation(installation_id: int) -> dict[str, int]:
    """Work through the installation's waiting deals, in batches. Returns counts.

    One run per installation at a time, under a lease (app.presence.Lease) renewed while the
    run lives: a killed run's lease lapses within SYNC_LOCK_TTL. A run that finds the lease
    held by a dead run waits that out; held by a live one, it tries again shortly.
    """
    lease = Lease(get_redis(), f"paydeck:invoice-sync:{installation_id}", SYNC_LOCK_TTL)
    if not lease.acquire() and not (lease.wait_out_dead_holder(SYNC_LOCK_TTL) and lease.acquire()):
        enqueue_sync(installation_id, delay=5)
        return {}
    try:
        return _sync_installation(installation_id, lease.renew)
    finally:
        try:
            lease.release()
        except LockError:
            log.warning("invoice sync lock for installation %s expired", installation_id)


def sweep_waiting_requests() -> int:
    """Safety net (cron): wake the job of every installation with deals still waiting - after
    a worker was killed, or a wake-up was lost."""
    stale = _now() - SWEEP_AFTER
    ids = db.session.scalars(select(DealSyncRequest.installation_id).join(
        Installation, Installation.id == DealSyncRequest.installation_id).where(
        Installation.status == InstallationStatus.ACTIVE,  # the others' requests wait
        DealSyncRequest.requested_at < stale,
        or_(DealSyncRequest.not_before.is_(None), DealSyncRequest.not_before <= _now()),
    ).distinct()).all()
    for installation_id in ids:
        enqueue_sync(installation_id)
    return len(ids)


def _sync_installation(installation_id: int, keep_lock: Callable[[], object]) -> dict[str, int]:
    totals: dict[str, int] = {}
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return totals
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        _reconnect_review(installation_id, "Xero is not connected")
        return totals
    while True:
        requests = db.session.scalars(select(DealSyncRequest).where(
            DealSyncRequest.installation_id == installation_id,
            or_(DealSyncRequest.not_before.is_(None), DealSyncRequest.not_before <= _now()),
        ).order_by(DealSyncRequest.requested_at).limit(MAX_DEALS_PER_RUN)).all()
        if not requests:
            return totals
        versions = {r.id: r.version for r in requests}  # before any commit re-reads them
        run = InvoiceRun(installation, connection, list(requests),
                         before_call=lambda: _between_calls(keep_lock))
        try:
            counts = run.execute()
        except (RetryLater, CrmRetryLater, TokenUnavailable) as exc:
            # TokenUnavailable: a refresh failed (not invalid_grant); its backoff grows with
            # the grant's consecutive failures. The deals keep waiting, never dropped.
            soonest = _postpone(requests, exc, str(exc))
            enqueue_sync(installation_id, delay=max(soonest, 1.0))
            return totals
        except (ReconnectNeeded, TokenReconnectNeeded, CrmReconnectNeeded) as exc:
            db.session.rollback()
            if isinstance(exc, CrmReconnectNeeded):
                confirm_crm_grant(installation_id)  # an uninstall? then no job serves it again
            _reconnect_review(installation_id, str(exc))
            return totals
        except CrmError as exc:  # the CRM refused a read: a person must look
            _give_up(requests, versions, f"the CRM refused: {exc}")
            continue
        except FixData as exc:  # Xero refused a whole call: no retry can help, a person must
            _give_up(requests, versions, "Xero refused: " + ("; ".join(exc.messages) or str(exc)))
            continue
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        if run.retry_in is not None:  # some deals wait: wake up for them
            enqueue_sync(installation_id, delay=max(run.retry_in, 1.0))


def _between_calls(keep_lock: Callable[[], object]) -> None:
    """Before each Xero call: hold no database transaction across the network (and let the
    token code write), and renew the run's lock lease."""
    db.session.commit()
    keep_lock()


def _postpone(requests: Sequence[DealSyncRequest],
              exc: RetryLater | CrmRetryLater | TokenUnavailable, why: str) -> float:
    """Count a failed try on each deal and hold it back by its own backoff: a deal that rode
    along in a batch with a much-retried one starts at its first retry. Returns the soonest
    wait, for the wake-up."""
    db.session.rollback()
    now, soonest = _now(), None
    for request in requests:
        request = db.session.merge(request)
        request.attempts += 1
        seconds = _retry_wait(exc, request.attempts)
        request.not_before = now + timedelta(seconds=seconds)
        soonest = seconds if soonest is None else min(soonest, seconds)
    db.session.commit()
    log.info("postponed %d deals (%.0f s or more): %s", len(requests), soonest or 0, why)
    return soonest or 0.0


def _retry_wait(exc: RetryLater | CrmRetryLater | TokenUnavailable, attempts: int) -> float:
    """Seconds before this deal's next try after `attempts` failed ones: Xero's own wait
    (Retry-After, a limit window) for everyone, or our backoff by the deal's own count."""
    grows = getattr(exc, "wait_for_attempt", None)
    return max(exc.seconds if grows is None else grows(attempts), 0.0)


def _give_up(requests: Sequence[DealSyncRequest], versions: dict[int, int], why: str) -> None:
    db.session.rollback()
    for request in requests:
        request = db.session.merge(request)
        db.session.add(ReviewItem(installation_id=request.installation_id, deal_id=request.deal_id,
                                  reason=ReviewReason.SYNC_FAILED, detail=why,
                                  action=request.action.value))
    _delete_handled(versions)
    db.session.commit()


def _delete_handled(versions: dict[int, int]) -> None:
    """Delete these requests if still at the version the run read: one merged in since
    (a Closed Won arriving mid-run) stays for the next run."""
    pairs = list(versions.items())
    for start in range(0, len(pairs), 500):
        db.session.execute(delete(DealSyncRequest).where(
            tuple_(DealSyncRequest.id, DealSyncRequest.version).in_(pairs[start:start + 500])))


def _reconnect_review(installation_id: int, why: str) -> None:
    open_item = db.session.scalar(select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.status == ReviewStatus.OPEN,
        ReviewItem.reason == ReviewReason.RECONNECT_NEEDED))
    if open_item is None:
        db.session.add(ReviewItem(installation_id=installation_id,
                                  reason=ReviewReason.RECONNECT_NEEDED,
                                  detail=f"Invoices are waiting: {why}. Reconnect to continue."))
        db.session.commit()


# --- one batch --------------------------------------------------------------------------------

RESEND = "resend"  # request source prefix of the "re-send the deal" choice


@dataclass
class _Work:
    request: DealSyncRequest
    # Read once, before any commit: the row itself may change while the run works.
    action: StageAction = StageAction.NONE
    source: str = ""
    version: int = 0
    deal: Deal | None = None
    link: InvoiceLink | None = None
    customer: Customer | None = None
    contact_id: str | None = None
    draft: InvoiceDraft | None = None
    update_of: str | None = None  # invoice id of the draft this updates
    email_only: bool = False  # approved already; only the email is still owed
    contact_terms: PaymentTerms | None = None  # the Xero contact's own sales terms
    done: bool = False
    retry_in: float | None = None  # this deal alone waits and runs again (BatchMismatch)
    audit: dict[str, object] = field(default_factory=dict)


# A deal Xero's batch answers keep leaving out goes to review after this many tries.
MAX_MISMATCH_TRIES = 6


class InvoiceRun:
    """One batch of deals for one installation. Public entry point: `execute()`."""

    def __init__(self, installation: Installation, connection: XeroConnection,
                 requests: list[DealSyncRequest], before_call: Callable[[], object] = lambda: None,
                 ) -> None:
        self.installation = installation
        self.connection = connection
        self.work = [_Work(r, action=r.action, source=r.source, version=r.version)
                      for r in requests]
        self.settings_row = installation.settings or InstallationSettings(
            installation_id=installation.id)
        # The batch's call is the first try for the deal tried least; each deal's wait after
        # a failure is worked out from its own count (_postpone).
        self.xero = xero_client(connection, before_call=before_call,
                                attempt=1 + min((r.attempts for r in requests), default=0))
        self.linked: set[tuple[str, str]] = set()
        self.counts = {"created": 0, "updated": 0, "recovered": 0, "review": 0, "unchanged": 0,
                       "retry": 0}

    def execute(self) -> dict[str, int]:
        try:
            source = adapter_for(self.installation.crm.value)
        except NoAdapter as exc:
            for w in self.work:
                self._review(w, ReviewReason.SYNC_FAILED, str(exc))
            return self._finish([])
        deals = source.fetch_deals(self.installation, [w.request.deal_id for w in self.work])
        for w in self.work:
            w.deal = deals.get(w.request.deal_id)
            if w.deal is None:
                self._review(w, ReviewReason.SYNC_FAILED, "the deal no longer exists in the CRM")
        self._follow_current_stage()
        self._load_links()
        self._recover_uncertain()
        pending = [w for w in self.work if not w.done]
        if pending:
            ref = self._reference_data()
            self._plan_updates(pending, ref)
            self._resolve_contacts([w for w in pending if not w.done and w.update_of is None
                                    and not w.email_only])
            self._check_contacts([w for w in pending if not w.done and not w.email_only])
            self._build(ref)
            self._send()
        return self._finish(self._writebacks())

    def _follow_current_stage(self) -> None:
        """A webhook's request acts on the stage the deal is in now (just fetched), not the
        one it passed through: dragged to Closed Won and straight back gets the rule of where
        it is. Manual pushes and retries keep their action; so does a deal whose CRM did not
        say its stage."""
        prefix = f"{self.installation.crm.value}:"
        followed = [w for w in self.work if not w.done and w.deal is not None
                    and w.deal.stage_id and w.source.startswith(prefix)]
        if not followed:
            return
        rules = stage_actions(self.installation.id)
        for w in followed:
            assert w.deal is not None
            now = rules.get(w.deal.stage_id, StageAction.NONE)
            w.audit["stage_now"] = w.deal.stage_id
            if now == StageAction.NONE:
                self._finish_unchanged(w, f"the deal is now in stage {w.deal.stage_id}, "
                                          "which has no invoice rule")
            else:
                w.action = now

    # -- links and recovery ----------------------------------------------------------------

    def _load_links(self) -> None:
        ids = [w.request.deal_id for w in self.work]
        links = {l.deal_id: l for l in db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == self.installation.id, InvoiceLink.trigger == TRIGGER,
            InvoiceLink.deal_id.in_(ids)))}
        for w in self.work:
            w.link = links.get(w.request.deal_id)

    def _recover_uncertain(self) -> None:
        """A PENDING link may have been created in Xero by a run that died: look before acting."""
        uncertain = [w for w in self.work if not w.done and w.link is not None
                     and w.link.state == InvoiceLinkState.PENDING]
        if not uncertain:
            return
        found = self.xero.invoices_by_reference([w.link.reference for w in uncertain])  # type: ignore[union-attr]
        claimed = self._claimed_elsewhere([r.invoice_id for rs in found.values() for r in rs
                                           if r.invoice_id])
        for w in uncertain:
            assert w.link is not None
            matches = [m for m in found.get(w.link.reference, []) if m.invoice_id not in claimed]
            if len(matches) == 1:
                self._apply_result(w.link, matches[0])
                w.link.paydeck_written_at = matches[0].updated_at
                w.audit["recovered"] = True
                self.counts["recovered"] += 1
            elif len(matches) > 1:  # e.g. finance used "Copy to": never guess, never a third
                numbers = ", ".join(m.invoice_number or m.invoice_id or "?" for m in matches)
                self._review(w, ReviewReason.DUPLICATE_INVOICES,
                             f"{len(matches)} invoices in Xero carry the reference "
                             f"{w.link.reference!r}: {numbers}. Void or delete the extra "
                             "one(s) in Xero, then retry.",
                             [_invoice_candidate(m) for m in matches])

    def _claimed_elsewhere(self, invoice_ids: list[str]) -> set[str]:
        """Invoices another installation's link holds: never adopted, whatever their
        Reference says (links from before 0008 used "HubSpot deal <id>", shared by every
        account of that CRM)."""
        if not invoice_ids:
            return set()
        return set(db.session.scalars(select(InvoiceLink.xero_invoice_id).where(
            InvoiceLink.installation_id != self.installation.id,
            InvoiceLink.xero_invoice_id.in_(invoice_ids))))

    def _plan_updates(self, pending: list[_Work], ref: ReferenceData) -> None:
        """Deals that already have an invoice: read it from Xero as it is now (status and
        UpdatedDateUTC), then update Paydeck's own untouched draft, or leave Xero's alone."""
        existing = [w for w in pending if w.link is not None and w.link.xero_invoice_id
                    and w.link.state == InvoiceLinkState.CREATED]
        if not existing:
            return
        live = {r.invoice_id: r for r in self.xero.invoices_by_ids(
            [w.link.xero_invoice_id for w in existing])}  # type: ignore[union-attr,misc]
        for w in existing:
            assert w.link is not None
            self._plan_update(w, w.link, live.get(w.link.xero_invoice_id))

    def _plan_update(self, w: _Work, link: InvoiceLink, now: InvoiceResult | None) -> None:
        if now is None:
            self._finish_unchanged(w, f"invoice {link.invoice_number} is no longer in Xero")
            return
        self._apply_result(link, now)  # the link shows Xero's state, whatever happens next
        wanted, current = self._xero_status(w.action), now.status or "DRAFT"
        if current not in ("DRAFT", "SUBMITTED"):  # approved, paid, voided: Xero's is the truth
            if w.action == StageAction.AUTHORISE_AND_EMAIL and current == "AUTHORISED" \
                    and now.sent_to_contact is False:
                w.email_only = True  # an email that failed (or was postponed) before
                return
            self._finish_unchanged(w, f"invoice {link.invoice_number} is already {current}")
            return
        if wanted == "DRAFT" and current == "SUBMITTED":  # never back to DRAFT
            self._finish_unchanged(w, f"invoice {link.invoice_number} awaits approval in Xero")
            return
        if not self._may_overwrite(w, link, now):
            self._review(w, ReviewReason.XERO_EDITED,
                         f"Xero has edits: invoice {link.invoice_number} ({current}) changed in "
                         "Xero after Paydeck wrote it. Keep Xero's, or re-send the deal "
                         "(overwrites Xero's version).", [_invoice_candidate(now)])
            return
        w.update_of, w.contact_id = link.xero_invoice_id, None
        w.audit["update_of"] = link.xero_invoice_id
        if XERO_STATUS_STRENGTH.get(wanted, 1) < XERO_STATUS_STRENGTH.get(current, 1):
            wanted = current
        w.audit["wanted_status"] = wanted

    @staticmethod
    def _may_overwrite(w: _Work, link: InvoiceLink, now: InvoiceResult) -> bool:
        """Paydeck's own DRAFT, unchanged since Paydeck wrote it; or the exact version a
        person chose to overwrite ("re-send the deal")."""
        if w.source.startswith(f"{RESEND}:review:"):
            item = db.session.get(ReviewItem, int(w.source.rsplit(":", 1)[1]))
            seen = item.candidates[0].get("updated_at") if item and item.candidates else None
            return seen is not None and seen == _stamp(now.updated_at)
        written = link.paydeck_written_at or link.xero_updated_at  # rows from before 0008
        return now.status == "DRAFT" and (written is None or _stamp(written) == _stamp(now.updated_at))

    def _xero_status(self, action: StageAction) -> str:
        if self.settings_row.draft_first or action == StageAction.DRAFT:
            return "DRAFT"
        return "AUTHORISED"

    # -- reference data --------------------------------------------------------------------

    def _reference_data(self) -> ReferenceData:
        return reference_data(self.installation, self.connection, self.xero)

    # -- contacts ----------------------------------------------------------------------------

    def _resolve_contacts(self, needing: list[_Work]) -> None:
        for w in needing:
            w.customer = _customer(self.installation.crm.value, w.deal)  # type: ignore[arg-type]
            if w.customer is None:
                self._review(w, ReviewReason.AMBIGUOUS_CONTACT,
                             "the deal has no company or contact to invoice")
        needing = [w for w in needing if not w.done]
        if not needing:
            return
        self._link_known(needing)
        unlinked = [w for w in needing if w.contact_id is None]
        if not unlinked:
            return
        self._sync_contact_mirror()
        to_create: dict[str, list[_Work]] = {}
        for w in unlinked:
            assert w.customer is not None
            match = match_contact(w.customer, self.settings_row.dedupe_order, self._lookup)
            if match.outcome == "matched":
                w.contact_id = match.contact_id
                self._link_contact(w.customer, match.contact_id, "match")  # type: ignore[arg-type]
            elif match.outcome == "ambiguous":
                self._review(w, ReviewReason.AMBIGUOUS_CONTACT, match.detail,
                             [vars(c) for c in match.candidates])
            else:
                to_create.setdefault(name_key(w.customer.name), []).append(w)
        self._create_contacts(to_create)

    def _check_contacts(self, building: list[_Work]) -> None:
        """Just before invoicing: is each contact still active in Xero, and has it its own
        sales terms? One GET /Contacts?IDs= call per 50 contacts."""
        # A contact created in this run is active and has no terms of its own: not asked.
        contact_of = {id(w): None if w.audit.get("contact_created")
                      else w.contact_id or (w.link.xero_contact_id if w.link else None)
                      for w in building}
        ids = sorted({c for c in contact_of.values() if c})
        if not ids:
            return
        found = self.xero.contact_terms(ids)
        for w in building:
            contact_id = contact_of[id(w)]
            if contact_id is None:
                continue
            terms = found.get(contact_id)
            if terms is None or not terms.active:
                self._review_archived(w, contact_id, terms)
            elif self.settings_row.use_contact_terms is not False:
                w.contact_terms = terms.sales_terms

    def _review_archived(self, w: _Work, contact_id: str, terms: ContactTerms | None) -> None:
        """Xero refuses invoices to an archived contact; a person picks: relink (the company
        page) or unarchive (in Xero), then the one-click retry."""
        name = terms.name if terms else contact_id
        customer = w.customer
        who = customer.name if customer else "the deal's company"
        state = "archived in Xero" if terms else "archived or no longer in Xero"
        self._review(w, ReviewReason.CONTACT_ARCHIVED,
                     f"The Xero contact {name!r} linked to {who} is {state}. Relink the "
                     f"{customer.crm_type if customer else 'company'} to another Xero contact, "
                     "or unarchive the contact in Xero, then retry.",
                     [{"contact_id": contact_id, "name": name,
                       "crm_object_type": customer.crm_type if customer else None,
                       "crm_object_id": customer.crm_id if customer else None}])

    def _link_known(self, needing: list[_Work]) -> None:
        keys = {(w.customer.crm_type, w.customer.crm_id) for w in needing if w.customer}
        links = db.session.scalars(select(ContactLink).where(
            ContactLink.installation_id == self.installation.id,
            ContactLink.crm_object_id.in_([k[1] for k in keys])))
        known = {(l.crm_object_type, l.crm_object_id): l.xero_contact_id for l in links}
        for w in needing:
            assert w.customer is not None
            w.contact_id = known.get((w.customer.crm_type, w.customer.crm_id))

    def _lookup(self, field_name: str, key: str) -> list[Candidate]:
        column = {"email": XeroContact.email_key, "tax_number": XeroContact.tax_number_key,
                  "name": XeroContact.name_key}[field_name]
        rows = db.session.scalars(select(XeroContact).where(
            XeroContact.xero_connection_id == self.connection.id, XeroContact.active.is_(True),
            column == key))
        return [Candidate(r.contact_id, r.name, r.email_key, r.tax_number_key) for r in rows]

    def _sync_contact_mirror(self) -> None:
        """Bring the local mirror up to date: one call when little changed (If-Modified-Since).

        The place is saved after every page (SyncCursor.page), so a first sync of a big
        organisation that fails on page 31 resumes at page 31, not page 1. A pass keeps the
        `since` it started with until its last page; the next pass starts 5 minutes before
        this one began (Xero's clock and ours may differ; re-reading is harmless, and it also
        catches contacts that moved between pages while the pass read them)."""
        cursor = db.session.scalar(select(SyncCursor).where(
            SyncCursor.xero_connection_id == self.connection.id, SyncCursor.kind == "contacts"))
        if cursor is None:
            cursor = SyncCursor(xero_connection_id=self.connection.id, kind="contacts")
            db.session.add(cursor)
        if cursor.page is None:
            cursor.page, cursor.pass_started_at = 1, _now()
        for page, contacts in self.xero.contact_pages(cursor.position, first_page=cursor.page):
            for contact in contacts:
                self._mirror(contact)
            cursor.page = page + 1
            db.session.commit()
        cursor.position = (cursor.pass_started_at or _now()) - timedelta(minutes=5)
        cursor.page = cursor.pass_started_at = None
        db.session.commit()

    def _mirror(self, c: ContactResult) -> None:
        if not c.contact_id:
            return
        row = db.session.scalar(select(XeroContact).where(
            XeroContact.xero_connection_id == self.connection.id,
            XeroContact.contact_id == c.contact_id))
        if row is None:
            row = XeroContact(xero_connection_id=self.connection.id, contact_id=c.contact_id)
            db.session.add(row)
        row.name, row.name_key = c.name, name_key(c.name)
        row.email_key, row.tax_number_key = email_key(c.email), tax_key(c.tax_number)
        row.active = c.active

    def _create_contacts(self, to_create: dict[str, list[_Work]]) -> None:
        groups = list(to_create.values())
        groups = [g for g in groups if self._contact_fits(g)]
        for start in range(0, len(groups), BATCH_SIZE):
            chunk = groups[start:start + BATCH_SIZE]
            results = self.xero.create_contacts([_new_contact(g[0]) for g in chunk])
            # The client lines Xero's answer up with what was sent: one result per group.
            for group, result in zip(chunk, results, strict=True):
                if isinstance(result, BatchMismatch):
                    for w in group:
                        self._retry(w, result)
                    continue
                if result.errors or not result.contact_id:
                    for w in group:
                        self._review(w, ReviewReason.AMBIGUOUS_CONTACT,
                                     "Xero refused the new contact: " + "; ".join(result.errors))
                    continue
                self._mirror(result)
                for w in group:
                    w.contact_id = result.contact_id
                    assert w.customer is not None
                    self._link_contact(w.customer, result.contact_id, "created")
                    w.audit["contact_created"] = result.contact_id
            db.session.commit()

    def _contact_fits(self, group: list[_Work]) -> bool:
        """Xero's text limits, checked before the SDK would raise ValueError mid-batch (which
        crashed the job, and the oldest deal then blocked every later batch)."""
        too_long = contact_too_long(_new_contact(group[0]))
        if not too_long:
            return True
        for w in group:
            self._review(w, ReviewReason.TEXT_TOO_LONG, "; ".join(too_long))
        return False

    def _link_contact(self, customer: Customer, contact_id: str, how: str) -> None:
        key = (customer.crm_type, customer.crm_id)
        if key in self.linked:  # two deals of one company in the batch: one link
            return
        self.linked.add(key)
        db.session.add(ContactLink(installation_id=self.installation.id,
                                   crm_object_type=customer.crm_type,
                                   crm_object_id=customer.crm_id, xero_contact_id=contact_id,
                                   linked_by=how))
        db.session.flush()

    # -- building and sending ----------------------------------------------------------------

    def _build(self, ref: ReferenceData) -> None:
        rules = _rules(self.installation.id, self.settings_row)
        zone, now = iana_zone(ref.timezone), _now()
        for w in self.work:
            if w.done or w.email_only or (w.contact_id is None and w.update_of is None):
                continue
            if zone is None:  # a date in the wrong zone can land in the wrong period
                self._review(w, ReviewReason.UNKNOWN_TIMEZONE,
                             f"Xero's organisation timezone {ref.timezone!r} is not in Paydeck's "
                             "table (CLDR windowsZones), so the invoice date would be a guess.")
                continue
            assert w.deal is not None
            status = str(w.audit.get("wanted_status") or self._xero_status(w.action))
            reference = w.link.reference if w.link else _reference(self.installation, w.request.deal_id)
            # An update keeps the draft's contact: no ContactID is sent for it.
            result = build_invoice(w.deal, rules, ref, contact_id=w.contact_id or "",
                                   status=status, today=invoice_date(w.deal, zone, now),
                                   reference=reference, contact_terms=w.contact_terms)
            if isinstance(result, list):
                self._review_problems(w, result)
            else:
                w.draft = result

    def _send(self) -> None:
        creates = [w for w in self.work if w.draft is not None and w.update_of is None]
        updates = [w for w in self.work if w.draft is not None and w.update_of is not None]
        for w in creates:
            self._ensure_pending_link(w)
        db.session.commit()  # the links exist before Xero hears of the invoices
        for start in range(0, len(creates), BATCH_SIZE):
            chunk = creates[start:start + BATCH_SIZE]
            key = _key("create", [w.link.idempotency_key for w in chunk])  # type: ignore[union-attr]
            try:
                results = self.xero.create_invoices([w.draft for w in chunk], key)  # type: ignore[misc]
            except FixData as exc:  # the whole batch refused (should not happen with summarizeErrors=false)
                results = [_failed(w.draft.reference, exc.messages) for w in chunk]  # type: ignore[union-attr,misc]
            self._apply_all(chunk, results, "created")
        for start in range(0, len(updates), BATCH_SIZE):
            chunk = updates[start:start + BATCH_SIZE]
            key = _key("update", [f"{w.update_of}:{w.draft.status}:{_draft_hash(w.draft)}" for w in chunk])  # type: ignore[union-attr]
            results = self.xero.update_invoices([(w.update_of, w.draft) for w in chunk], key)  # type: ignore[misc]
            self._apply_all(chunk, results, "updated")
        emails = [w for w in self.work if w.email_only and not w.done]
        for w in creates + updates + emails:
            if w.action == StageAction.AUTHORISE_AND_EMAIL and w.link and \
                    w.link.status == "AUTHORISED" and not w.audit.get("errors"):
                self._email(w, w.link)
        for w in emails:
            if not w.done:
                w.done = True
                self.counts["updated"] += 1

    def _email(self, w: _Work, link: InvoiceLink) -> None:
        """One refused email is that deal's review item (e.g. a contact with no address); it
        does not fail the rest of the run."""
        try:
            self.xero.email_invoice(link.xero_invoice_id, attempt=w.source)  # type: ignore[arg-type]
        except FixData as exc:
            why = ("; ".join(exc.messages) or str(exc)).rstrip(".")
            self._review(w, ReviewReason.EMAIL_FAILED,
                         f"Invoice {link.invoice_number} is approved, but Xero did not email it: "
                         f"{why}. Fix the contact's email address in Xero, then retry.")
            return
        w.audit["emailed"] = True

    def _ensure_pending_link(self, w: _Work) -> None:
        if w.link is None:
            reference = w.draft.reference  # type: ignore[union-attr]
            w.link = InvoiceLink(installation_id=self.installation.id, deal_id=w.request.deal_id,
                                 trigger=TRIGGER, reference=reference,
                                 idempotency_key=_key("invoice", [str(self.installation.id),
                                                                  w.request.deal_id, TRIGGER]))
            db.session.add(w.link)
        w.link.state = InvoiceLinkState.PENDING

    def _apply_all(self, chunk: list[_Work], results: Sequence[InvoiceResult | BatchMismatch],
                   verb: str) -> None:
        """`results` line up with `chunk` (xero.client.line_up matched them by key)."""
        for w, result in zip(chunk, results, strict=True):
            assert w.draft is not None and w.link is not None
            if isinstance(result, BatchMismatch):
                # Created or not, we cannot tell: a create keeps its PENDING link, so the next
                # run looks the invoice up by Reference before sending it again.
                self._retry(w, result)
                continue
            if result.errors or not result.invoice_id:
                messages = list(result.errors) or ["Xero returned no invoice id"]
                w.link.state = (InvoiceLinkState.CREATED if w.update_of else InvoiceLinkState.FAILED)
                w.audit["errors"] = messages
                self._review(w, ReviewReason.XERO_VALIDATION, "; ".join(messages))
                # Our checks passed but Xero disagreed: our copy of its settings may be stale.
                forget_reference_data(self.installation.id)
                continue
            self._apply_result(w.link, result)
            w.link.paydeck_written_at = result.updated_at
            w.link.owner_id = w.deal.owner_id if w.deal else None
            w.link.xero_contact_id = w.link.xero_contact_id or w.contact_id
            w.audit.update(xero_invoice_id=result.invoice_id, invoice_number=result.invoice_number,
                           status=result.status)
            self.counts[verb] += 1
            w.done = True
        db.session.commit()

    @staticmethod
    def _apply_result(link: InvoiceLink, r: InvoiceResult) -> None:
        apply_invoice_result(link, r)

    # -- review, audit, writeback --------------------------------------------------------------

    def _review_problems(self, w: _Work, problems: list[Problem]) -> None:
        self._review(w, ReviewReason(problems[0].reason), "; ".join(p.detail for p in problems))

    def _review(self, w: _Work, reason: ReviewReason, detail: str,
                candidates: list[dict[str, object]] | None = None) -> None:
        db.session.add(ReviewItem(installation_id=self.installation.id, deal_id=w.request.deal_id,
                                  reason=reason, detail=detail, candidates=candidates or [],
                                  action=w.action.value))
        w.audit.setdefault("review", []).append({"reason": reason.value, "detail": detail})  # type: ignore[union-attr]
        w.done = True
        self.counts["review"] += 1

    def _retry(self, w: _Work, why: BatchMismatch) -> None:
        """This deal alone runs again later, by its own backoff; the rest of the batch goes
        on. After MAX_MISMATCH_TRIES answers in a row that left it out, a person looks."""
        attempt = w.request.attempts + 1
        if attempt >= MAX_MISMATCH_TRIES:
            self._review(w, ReviewReason.SYNC_FAILED,
                         f"Xero's answer left this deal out {attempt} times ({why.describe()}); "
                         "check Xero for its Reference, then retry (nothing is created twice)")
            return
        w.retry_in, w.done = max(why.seconds, standard_backoff(attempt)), True
        w.audit["retry"] = why.describe()
        self.counts["retry"] += 1

    @property
    def retry_in(self) -> float | None:
        """When the deals left for later (BatchMismatch) are due, if any."""
        waits = [w.retry_in for w in self.work if w.retry_in is not None]
        return min(waits) if waits else None

    def _finish_unchanged(self, w: _Work, why: str) -> None:
        w.audit["unchanged"] = why
        w.done = True
        self.counts["unchanged"] += 1

    def _writebacks(self) -> list[InvoiceFields]:
        updates = []
        for w in self.work:
            link = w.link
            if link is not None and link.state == InvoiceLinkState.CREATED:
                updates.append(link_fields(link))
            elif w.audit.get("review"):
                detail = w.audit["review"][-1]["detail"]  # type: ignore[index]
                updates.append(InvoiceFields(deal_id=w.request.deal_id,
                                             last_sync_error=str(detail)[:250]))
        return updates

    def _finish(self, writebacks: list[InvoiceFields]) -> dict[str, int]:
        for w in self.work:
            db.session.add(AuditEvent(
                installation_id=self.installation.id, deal_id=w.request.deal_id,
                action="invoice_sync", trigger=w.request.source,
                outcome=_outcome(w), detail={k: v for k, v in w.audit.items()
                                             if k not in ("xero_invoice_id",)} | {
                    "requested": w.action.value},
                xero_ids={"invoice_id": w.link.xero_invoice_id} if w.link and w.link.xero_invoice_id else {}))
        handled = {w.request.id: w.version for w in self.work if w.retry_in is None and (
            w.done or w.link is None or w.link.state != InvoiceLinkState.PENDING)}
        _delete_handled(handled)
        for w in self.work:
            if w.retry_in is not None:
                w.request.not_before = _now() + timedelta(seconds=w.retry_in)
                w.request.attempts += 1
        db.session.commit()
        if writebacks:
            write_back(self.installation, writebacks)
        return self.counts


# --- reference data and previews ---------------------------------------------------------------

def reference_data(installation: Installation, connection: XeroConnection,
                   client: XeroClient) -> ReferenceData:
    """The organisation's accounts, tax rates, items, currencies and terms, cached an hour.
    The cache names the tenant it came from: after a reconnect to another organisation it is
    not used."""
    key, tenant = _reference_key(installation.id), connection.tenant_id or ""
    cached_tenant, cached = get_redis().hmget(key, ["tenant", "data"])
    if cached and (cached_tenant or b"").decode() == tenant:
        ref = ReferenceData.from_json(cached)
        if ref.timezone:  # a copy cached before Paydeck read Organisation.Timezone is stale
            return ref
    ref = client.reference_data()
    with get_redis().pipeline() as pipe:
        pipe.delete(key).hset(key, mapping={"tenant": tenant, "data": ref.to_json()})
        pipe.expire(key, REFERENCE_TTL).execute()
    return ref


@dataclass
class Preview:
    """What a push would send: for the card, before the first push."""

    deal: Deal | None
    customer: Customer | None
    linked_contact: str | None
    draft: InvoiceDraft | None
    problems: list[Problem]


def preview_invoice(installation: Installation, deal_id: str) -> Preview:
    """Build (not send) the deal's invoice with the admin's rules and Xero's reference data."""
    deal = adapter_for(installation.crm.value).fetch_deals(installation, [deal_id]).get(deal_id)
    if deal is None:
        return Preview(None, None, None, None, [Problem("sync_failed", "the deal no longer exists")])
    customer = _customer(installation.crm.value, deal)
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        return Preview(deal, customer, None, None,
                       [Problem("reconnect_needed", "connect Xero to see the invoice")])
    client = xero_client(connection)
    linked = None
    if customer is not None:
        linked = db.session.scalar(select(ContactLink.xero_contact_id).where(
            ContactLink.installation_id == installation.id,
            ContactLink.crm_object_type == customer.crm_type,
            ContactLink.crm_object_id == customer.crm_id))
    row = installation.settings or InstallationSettings(installation_id=installation.id)
    status = "DRAFT" if row.draft_first else "AUTHORISED"
    ref = reference_data(installation, connection, client)
    zone = iana_zone(ref.timezone)
    if zone is None:
        return Preview(deal, customer, linked, None, [Problem(
            "unknown_timezone", f"Xero's organisation timezone {ref.timezone!r} is not known")])
    result = build_invoice(deal, _rules(installation.id, row), ref,
                           contact_id=linked or "", status=status,
                           today=invoice_date(deal, zone, _now()),
                           reference=_reference(installation, deal_id))
    if isinstance(result, list):
        return Preview(deal, customer, linked, None, result)
    return Preview(deal, customer, linked, result, [])


# --- what Xero says about an invoice, on our link ----------------------------------------------

def apply_invoice_result(link: InvoiceLink, r: InvoiceResult, today: date | None = None) -> bool:
    """Copy Xero's view of the invoice onto the link; True if what the deal shows changed."""
    before = link_fields(link)
    link.state = InvoiceLinkState.CREATED
    link.xero_invoice_id, link.invoice_number, link.status = (
        r.invoice_id, r.invoice_number or link.invoice_number, r.status)
    link.currency, link.total = r.currency or link.currency, r.total if r.total is not None else link.total
    link.amount_due, link.amount_paid, link.amount_credited = r.amount_due, r.amount_paid, r.amount_credited
    link.due_date, link.paid_on = r.due_date or link.due_date, r.paid_on
    link.xero_updated_at = r.updated_at
    if r.amount_prepaid is not None:  # a summaryOnly read leaves what a full read said
        link.amount_prepaid = r.amount_prepaid
    link.online_url = f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={r.invoice_id}"
    link.deal_status = deal_status(r.status, total=link.total, amount_due=r.amount_due,
                                   amount_paid=r.amount_paid, amount_credited=r.amount_credited,
                                   due_date=link.due_date, today=today or _now().date(),
                                   amount_prepaid=link.amount_prepaid)
    if link.deal_status != "overdue":
        link.overdue_notified_at = None  # the overdue episode (if any) is over
    return link_fields(link) != before


# --- writeback ----------------------------------------------------------------------------------

def write_back(installation: Installation, updates: list[InvoiceFields]) -> None:
    """Write invoice fields onto deals; if the CRM is busy or down, a job retries later (the
    fields are derived from our links, so nothing is lost meanwhile). Nothing is written for
    an installation that is not active: no CRM call for a customer who left."""
    if installation.status != InstallationStatus.ACTIVE:
        return
    try:
        adapter_for(installation.crm.value).write_invoice_fields(installation, updates)
    except NoAdapter:
        log.info("no writeback for %s yet", installation.crm.value)
    except (CrmReconnectNeeded, TokenReconnectNeeded) as exc:
        # Nothing is lost (the fields derive from our links); if the grant is gone the
        # installation stops being served, if not the next change writes them.
        log.warning("writeback for installation %s refused: %s", installation.id, exc)
        if isinstance(exc, CrmReconnectNeeded):
            confirm_crm_grant(installation.id)
    except (CrmRetryLater, TokenUnavailable) as exc:
        # Busy or down, or its token refresh failing (the grant shows "failing" meanwhile):
        # a job writes the fields later. Never raised: the caller has committed its work.
        from app.jobs import enqueue_once

        deal_ids = sorted({u.deal_id for u in updates})
        log.warning("writeback for installation %s deferred: %s", installation.id, exc)
        enqueue_once(write_back_deals, installation.id, deal_ids, delay=max(exc.seconds, 5.0),
                     job_id=f"writeback-{installation.id}-{_key('wb', deal_ids)[-16:]}",
                     job_timeout=300, retry=Retry(max=5, interval=[30, 120, 600, 1800, 3600]))
    except CrmError as exc:  # the CRM refused the write itself (a 4xx): a person must look
        deal_ids = sorted({u.deal_id for u in updates})
        log.warning("writeback for installation %s refused: %s", installation.id, exc)
        db.session.add(AuditEvent(installation_id=installation.id, action="writeback",
                                  outcome="failed", detail={"deals": deal_ids[:200],
                                                            "error": str(exc)[:500]}))
        db.session.commit()


def write_back_deals(installation_id: int, deal_ids: list[str]) -> int:
    """Job: write the current invoice fields of these deals onto the CRM."""
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return 0
    links = db.session.scalars(select(InvoiceLink).where(
        InvoiceLink.installation_id == installation_id, InvoiceLink.trigger == TRIGGER,
        InvoiceLink.deal_id.in_(deal_ids), InvoiceLink.state == InvoiceLinkState.CREATED)).all()
    updates = [link_fields(link) for link in links]
    if updates:
        adapter_for(installation.crm.value).write_invoice_fields(installation, updates)
    return len(updates)


def link_fields(link: InvoiceLink, error: str = "") -> InvoiceFields:
    """What the deal shows of its invoice."""
    status = LABELS.get(link.deal_status or "", link.status)
    return InvoiceFields(
        deal_id=link.deal_id, invoice_number=link.invoice_number, invoice_status=status,
        amount_due=_text(link.amount_due), amount_paid=_text(link.amount_paid),
        due_date=link.due_date.isoformat() if link.due_date else None,
        paid_date=link.paid_on.isoformat() if link.paid_on else None,
        invoice_url=link.customer_url or link.online_url, last_sync_error=error)


# --- helpers ----------------------------------------------------------------------------------

def _customer(crm: str, deal: Deal) -> Customer | None:
    if deal.organisation is not None and deal.organisation.name:
        org = deal.organisation
        # Companies often have no email of their own: the deal's contact is who gets billed.
        email = org.email or (deal.person.email if deal.person else "")
        return Customer("company", org.id, org.name, email, org.tax_number)
    if deal.person is not None and deal.person.name:
        return Customer("person", deal.person.id, deal.person.name, deal.person.email)
    return None


def _new_contact(w: _Work) -> NewContact:
    deal, customer = w.deal, w.customer
    assert deal is not None and customer is not None
    person = deal.person
    first, _, last = (person.name.partition(" ") if person else ("", "", ""))
    phone = (deal.organisation.phone if deal.organisation else "") or (person.phone if person else "")
    email = customer.email or (person.email if person else "")
    return NewContact(name=customer.name, email=email, tax_number=customer.tax_number,
                      phone=phone, first_name=first, last_name=last)


def _rules(installation_id: int, s: InstallationSettings) -> InvoiceRules:
    products = {p.crm_product_id: ProductRule(p.xero_item_code, p.account_code, p.tax_type)
                for p in db.session.scalars(select(ProductMapping).where(
                    ProductMapping.installation_id == installation_id))}
    taxes = {t.crm_tax_label.casefold(): t.xero_tax_type for t in db.session.scalars(
        select(TaxMapping).where(TaxMapping.installation_id == installation_id))}
    terms = s.payment_terms or {"type": "org_default"}
    return InvoiceRules(default_account_code=s.default_account_code,
                        default_tax_type=s.default_tax_type,
                        line_amount_type=(s.line_amount_type.value if s.line_amount_type else "Exclusive"),
                        allow_single_line_from_amount=bool(s.allow_single_line_from_amount),
                        payment_terms=_terms(terms), products=products, taxes=taxes,
                        amount_tolerance=(Decimal("0.01") if s.amount_tolerance is None
                                          else Decimal(s.amount_tolerance)))


def _terms(terms: dict[str, object]) -> dict[str, object]:
    # Settings speak of "days_after_invoice"; Xero calls it DAYSAFTERBILLDATE.
    aliases = {"days_after_invoice": "DAYSAFTERBILLDATE", "day_of_following_month": "OFFOLLOWINGMONTH",
               "days_after_end_of_month": "DAYSAFTERBILLMONTH", "day_of_current_month": "OFCURRENTMONTH"}
    kind = str(terms.get("type", "org_default"))
    return {**terms, "type": aliases.get(kind, kind)}


def _reference(installation: Installation, deal_id: str) -> str:
    """Deterministic and unique per CRM account: the key for finding the invoice again in
    Xero. Two CRM accounts may invoice into one organisation, and deal ids are only unique
    within an account, so the account id is part of it ("HubSpot 4711 deal 123"). Links made
    before keep the reference they stored ("HubSpot deal 123"): the engine always reuses a
    link's own reference, so those invoices are still found by the installation that made
    them, and never by another."""
    label = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}.get(installation.crm.value,
                                                                 installation.crm.value)
    return f"{label} {installation.account_id} deal {deal_id}"


def invoice_date(deal: Deal, zone: ZoneInfo, now: datetime) -> date:
    """The deal's date in the organisation's timezone.

    The deal's date is the moment the CRM says it was won (`Deal.closed_at`: HubSpot
    `closedate` of a deal that `hs_is_closed_won` - HubSpot sets it when the deal enters a
    closed stage; Pipedrive `won_time`). Not the moment of the stage change we were told of:
    a webhook can arrive late or be retried for hours, and a rep may backdate the close.
    With no such moment (an open deal under a draft rule), or one in the future (clock
    skew), it is now. Xero's Date is a local calendar date of the organisation (platform-facts), so
    2026-06-30T14:30Z is 1 July 2026 in Sydney (AEST, UTC+10), not 30 June.
    """
    moment = deal.closed_at if deal.closed_at is not None and deal.closed_at <= now else now
    return local_date(moment, zone)


def _invoice_candidate(r: InvoiceResult) -> dict[str, object]:
    """An invoice as a review item lists it."""
    return {"invoice_id": r.invoice_id, "invoice_number": r.invoice_number, "status": r.status,
            "updated_at": _stamp(r.updated_at)}


def _stamp(moment: datetime | None) -> str | None:
    """UpdatedDateUTC as comparable text (ms; Xero's precision), aware or naive-UTC alike."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _key(kind: str, parts: Sequence[str]) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"paydeck-{kind}-{digest[:48]}"


def _draft_hash(draft: InvoiceDraft) -> str:
    return hashlib.sha256(repr(draft).encode()).hexdigest()[:16]


def _failed(reference: str, messages: Sequence[str]) -> InvoiceResult:
    return InvoiceResult(reference, None, None, None, None, None, None, None, None, None,
                         tuple(messages))


def _outcome(w: _Work) -> str:
    if w.retry_in is not None:
        return "retry"
    if w.audit.get("review"):
        return "review"
    if w.audit.get("unchanged"):
        return "unchanged"
    if w.link is not None and w.link.state == InvoiceLinkState.PENDING:
        return "pending"
    return "ok"


def _text(value: Decimal | None) -> str | None:
    """Money as CRM number text with Xero's two decimals (the column keeps four)."""
    return None if value is None else str(value.quantize(Decimal("0.01")))


def _now() -> datetime:
    return datetime.now(timezone.utc)




# --- the cached reference data follows the admin's settings ------------------------------------

_SETTINGS_MODELS = (InstallationSettings, ProductMapping, TaxMapping)


@event.listens_for(Session, "before_flush")
def _note_settings_change(session: Session, flush_context: object, instances: object) -> None:
    changed = {o.installation_id for o in (*session.new, *session.dirty, *session.deleted)
               if isinstance(o, _SETTINGS_MODELS)}
    if changed:
        session.info.setdefault("paydeck_settings_changed", set()).update(changed)


@event.listens_for(Session, "after_commit")
def _refresh_reference_after_settings_change(session: Session) -> None:
    """New mappings are checked against Xero as it is now (the admin may just have added a
    tax rate there), not against an hour-old copy."""
    for installation_id in session.info.pop("paydeck_settings_changed", set()):
        forget_reference_data(installation_id)
