"""Paydeck's own records of Xero contacts: the XeroContact mirror (kept fresh with
If-Modified-Since, resumable per page) and the ContactLinks of CRM records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from app.engine import clock
from app.engine.context import RunContext
from app.extensions import db
from app.models import ContactLink, SyncCursor, XeroConnection, XeroContact
from xero.client import ContactDetails, ContactResult, XeroClient
from xero.contacts import Customer, email_key, name_key, tax_key


def sync_contact_mirror(ctx: RunContext) -> None:
    """Bring the local mirror up to date: one call when little changed (If-Modified-Since).

    The place is saved after every page (SyncCursor.page), so a first sync of a big
    organisation that fails on page 31 resumes at page 31, not page 1. A pass keeps the
    `since` it started with until its last page; the next pass starts 5 minutes before
    this one began (Xero's clock and ours may differ; re-reading is harmless, and it also
    catches contacts that moved between pages while the pass read them)."""
    refresh_mirror(ctx.connection, ctx.xero)


def refresh_mirror(connection: XeroConnection, client: XeroClient, kind: str = "contacts",
                   on_page: Callable[[list[ContactResult]], None] | None = None,
                   first_since: datetime | None = None) -> int:
    """`sync_contact_mirror`'s pass on the SyncCursor of `kind` (the contact sync safety net
    keeps its own, app.contact_sync.safety_xero); `on_page(contacts)` sees each page before
    its place is saved; `first_since`: where a cursor's very first pass starts (None: every
    contact). Returns the calls made."""
    cursor = db.session.scalar(select(SyncCursor).where(
        SyncCursor.xero_connection_id == connection.id, SyncCursor.kind == kind))
    if cursor is None:
        cursor = SyncCursor(xero_connection_id=connection.id, kind=kind, position=first_since)
        db.session.add(cursor)
    if cursor.page is None:
        cursor.page, cursor.pass_started_at = 1, clock.now()
    calls = 0
    for page, contacts in client.contact_pages(cursor.position, first_page=cursor.page):
        calls += 1
        for contact in contacts:
            mirror_row(connection.id, contact)
        if on_page is not None:
            on_page(contacts)
        cursor.page = page + 1
        db.session.commit()
    cursor.position = (cursor.pass_started_at or clock.now()) - timedelta(minutes=5)
    cursor.page = cursor.pass_started_at = None
    db.session.commit()
    return calls


def mirror(ctx: RunContext, c: ContactResult) -> None:
    """Insert or refresh one contact's row in the mirror."""
    mirror_row(ctx.connection.id, c)


def mirror_row(connection_id: int, c: ContactResult | ContactDetails) -> None:
    """Insert or refresh one contact's row in the mirror of this connection."""
    if not c.contact_id:
        return
    row = db.session.scalar(select(XeroContact).where(
        XeroContact.xero_connection_id == connection_id,
        XeroContact.contact_id == c.contact_id))
    if row is None:
        row = XeroContact(xero_connection_id=connection_id, contact_id=c.contact_id)
        db.session.add(row)
    row.name, row.name_key = c.name, name_key(c.name)
    row.email_key, row.tax_number_key = email_key(c.email), tax_key(c.tax_number)
    row.active = c.active


def link_contact(ctx: RunContext, customer: Customer, contact_id: str, how: str) -> None:
    """Link the CRM record to the Xero contact (once per record in a run)."""
    key = (customer.crm_type, customer.crm_id)
    if key in ctx.linked:  # two deals of one company in the batch: one link
        return
    ctx.linked.add(key)
    db.session.add(ContactLink(installation_id=ctx.installation.id,
                               crm_object_type=customer.crm_type,
                               crm_object_id=customer.crm_id, xero_contact_id=contact_id,
                               linked_by=how))
    db.session.flush()
