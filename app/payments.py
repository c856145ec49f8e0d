"""Payment status back on the deal: Xero webhooks (seconds) and a safety-net poll (minutes).
The daily overdue follow-up and the admin alerts are in app/followup.py.

Xero webhook -> `note_changed_invoices` (Redis set per tenant + one refresh job per
connection) -> `refresh_invoices` (GET /Invoices?IDs=, 50 a call) -> links updated ->
changed deals written back in CRM batches. The poll reads /Invoices with If-Modified-Since
from a stored cursor, so changes made while webhooks were down, banned or lost are caught.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import Select, select

from app.connections import xero_client
from app.extensions import db
from app.invoice_results import apply_invoice_result
from app.models import (
    AuditEvent,
    ConnectionStatus,
    Installation,
    InstallationStatus,
    InvoiceLink,
    InvoiceLinkState,
    SyncCursor,
    XeroConnection,
)
from app.queueing import enqueue_once, note_and_wake, noted_ids
from app.redis_conn import get_redis
from app.runtime import get_settings
from app.tokens import TokenUnavailable
from app.writeback import link_fields, write_back
from xero.client import InvoiceResult, XeroClient
from xero.errors import FixData, RetryLater

log = logging.getLogger(__name__)
_CHANGED = "paydeck:xero-changed:{}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- webhooks ---------------------------------------------------------------------------------

def note_changed_invoices(changed: dict[str, set[str]]) -> int:
    """From a Xero webhook: remember the invoice ids per tenant and wake one refresh job per
    connection (events for the same tenant coalesce into that job). Returns jobs woken."""
    woken = 0
    for tenant_id, invoice_ids in changed.items():
        connection_ids = db.session.scalars(_serving_connections().where(
            XeroConnection.tenant_id == tenant_id)).all()
        woken += note_and_wake(_CHANGED.format(tenant_id), invoice_ids, connection_ids,
                               _wake_refresh)
    return woken


def refresh_invoices(connection_id: int) -> int:
    """Job: read the invoices Xero said changed (only those Paydeck created or linked) and
    put their status on the deals. Returns how many deals changed."""
    connection = _serving(connection_id)
    if connection is None:
        return 0
    key = _CHANGED.format(connection.tenant_id)
    ids = noted_ids(key)
    if not ids:
        return 0
    links = _links(connection, ids)
    changed = 0
    if links:
        try:
            results = xero_client(connection).invoices_by_ids(list(links))
        except (RetryLater, TokenUnavailable) as exc:
            # Xero's limits, or a token refresh failing (backoff grows with the failures):
            # the ids stay in the set; come back later.
            enqueue_once(refresh_invoices, connection_id, job_id=f"xero-refresh-{connection_id}",
                         follow_up=True, delay=max(exc.seconds, 1.0), job_timeout=300)
            return 0
        changed = _apply(connection, links, results)
        _add_customer_links(connection, [links[r.invoice_id] for r in results if r.invoice_id in links])
    redis = get_redis()
    redis.srem(key, *ids)  # only once handled: a crash leaves them for the next run
    if redis.scard(key):  # more arrived while this ran: make sure a run will see them
        _wake_refresh(connection_id)
    return changed


def _serving_connections() -> Select[tuple[int]]:
    """Ids of the Xero connections jobs may use: connected, of an active installation (an
    uninstalled or reconnect-needed one gets no Xero call and no CRM writeback)."""
    return select(XeroConnection.id).join(Installation).where(
        XeroConnection.status == ConnectionStatus.CONNECTED,
        Installation.status == InstallationStatus.ACTIVE)


def _serving(connection_id: int) -> XeroConnection | None:
    """The connection, if jobs may use it now (see `_serving_connections`)."""
    connection = db.session.get(XeroConnection, connection_id)
    if (connection is None or connection.status != ConnectionStatus.CONNECTED
            or connection.installation.status != InstallationStatus.ACTIVE):
        return None
    return connection


def _wake_refresh(connection_id: int) -> None:
    enqueue_once(refresh_invoices, connection_id, job_id=f"xero-refresh-{connection_id}",
                 follow_up=True, job_timeout=300)


def _links(connection: XeroConnection, invoice_ids: Sequence[str]) -> dict[str, InvoiceLink]:
    found: dict[str, InvoiceLink] = {}
    for start in range(0, len(invoice_ids), 500):
        chunk = list(invoice_ids[start:start + 500])
        found.update({link.xero_invoice_id: link for link in db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == connection.installation_id,
            InvoiceLink.state == InvoiceLinkState.CREATED,
            InvoiceLink.xero_invoice_id.in_(chunk)))})
    return found  # type: ignore[return-value]


def _apply(connection: XeroConnection, links: dict[str, InvoiceLink],
           results: Sequence[InvoiceResult]) -> int:
    today = _now().date()
    changed = [links[r.invoice_id] for r in results
               if r.invoice_id in links and apply_invoice_result(links[r.invoice_id], r, today)]
    for link in changed:
        db.session.add(AuditEvent(installation_id=link.installation_id, deal_id=link.deal_id,
                                  action="payment_status", outcome="ok",
                                  detail={"status": link.status, "deal_status": link.deal_status,
                                          "amount_due": str(link.amount_due),
                                          "amount_paid": str(link.amount_paid)},
                                  xero_ids={"invoice_id": link.xero_invoice_id}))
    db.session.commit()
    if changed:
        write_back(connection.installation, [link_fields(link) for link in changed])
    return len(changed)


ONLINE_LINK_RESERVE = 20  # Xero calls per minute kept for invoicing, not for links


def _add_customer_links(connection: XeroConnection, links: Sequence[InvoiceLink]) -> None:
    """Fetch the customer-facing online invoice link of approved invoices that lack one - one
    call each, so only while the minute's Xero quota has room; the rest on a later change."""
    wanting = [l for l in links if not l.customer_url and l.status in ("AUTHORISED", "PAID")]
    if not wanting:
        return
    client = xero_client(connection)
    assert connection.tenant_id
    room = client.limiter.available(connection.tenant_id) - ONLINE_LINK_RESERVE
    fetched = []
    for link in wanting[:max(room, 0)]:
        try:
            link.customer_url = client.online_invoice_url(link.xero_invoice_id)  # type: ignore[arg-type]
        except (RetryLater, FixData) as exc:
            log.info("online invoice link for %s later: %s", link.xero_invoice_id, exc)
            break
        fetched.append(link)
    db.session.commit()
    if fetched:
        write_back(connection.installation, [link_fields(link) for link in fetched])


# --- the safety-net poll ------------------------------------------------------------------------

def poll_due_connections() -> int:
    """Cron (every minute): start the poll of each connection whose last one is older than
    XERO_POLL_MINUTES."""
    due_before = _now() - timedelta(minutes=get_settings().xero_poll_minutes)
    polled = {c.xero_connection_id: c.updated_at for c in db.session.scalars(
        select(SyncCursor).where(SyncCursor.kind == "invoices"))}
    started = 0
    for connection_id in db.session.scalars(_serving_connections()).all():
        last = polled.get(connection_id)
        if last is None or last < due_before:
            enqueue_once(poll_invoices, connection_id, job_id=f"xero-poll-{connection_id}",
                         job_timeout=900)
            started += 1
    return started


def poll_invoices(connection_id: int) -> dict[str, int]:
    """Job: every sales invoice changed since the cursor (first run: the lookback window),
    page by page (1000 a call), applied to the linked deals."""
    connection = _serving(connection_id)
    if connection is None:
        return {}
    cursor = db.session.scalar(select(SyncCursor).where(
        SyncCursor.xero_connection_id == connection_id, SyncCursor.kind == "invoices"))
    if cursor is None:
        cursor = SyncCursor(xero_connection_id=connection_id, kind="invoices")
        db.session.add(cursor)
    since = cursor.position or _now() - timedelta(days=get_settings().xero_poll_lookback_days)
    counts = {"seen": 0, "changed": 0, "calls": 0}
    client = xero_client(connection)
    try:
        _poll_pages(connection, client, cursor, since, counts)
    except (RetryLater, TokenUnavailable) as exc:  # the cursor keeps what was done
        log.info("poll of connection %s paused for %.0f s: %s", connection_id, exc.seconds, exc)
    cursor.updated_at = _now()
    db.session.commit()
    counts["calls"] = client.calls
    return counts


def _poll_pages(connection: XeroConnection, client: XeroClient, cursor: SyncCursor,
                since: datetime, counts: dict[str, int]) -> None:
    for page in client.invoices_changed_since(since):
        counts["seen"] += len(page)
        links = _links(connection, [r.invoice_id for r in page if r.invoice_id])
        linked = _with_allocations(client, [r for r in page if r.invoice_id in links])
        counts["changed"] += _apply(connection, links, linked)
        newest = max((r.updated_at for r in page if r.updated_at), default=None)
        if newest is not None:
            # Strictly-after semantics: back off a second for same-millisecond neighbours;
            # re-reading one is harmless (applying is idempotent).
            cursor.position = max(since, newest - timedelta(seconds=1))
        db.session.commit()


def _with_allocations(client: XeroClient, results: list[InvoiceResult]) -> list[InvoiceResult]:
    """A page that left out Prepayments/Overpayments (a summary answer): Xero's
    AmountCredited counts them with credit notes, so an invoice with credit applied is re-read
    in full (50 a call) so a prepaid invoice shows as paid, not credited. The poll's paged
    reads are full, so this is the fallback for an answer without the arrays."""
    unsure = [r.invoice_id for r in results if r.invoice_id and r.amount_prepaid is None
              and (r.amount_credited or 0) > 0]
    if not unsure:
        return results
    full = {r.invoice_id: r for r in client.invoices_by_ids(unsure)}
    return [full.get(r.invoice_id, r) for r in results]
