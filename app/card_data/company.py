"""What the company card and page show: the company's newest invoices and what they leave
owed, and its link's two-way sync state (a B2C deal's person link too, for the deal page).
Database reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from app.contact_sync.crm_merges import merged_into
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactSyncSettings,
    InvoiceLink,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
)

COMPANY_INVOICES = 10  # the company page lists its newest invoices


@dataclass(frozen=True)
class CompanyInvoices:
    """A company's newest invoices (those to its linked Xero contact) and what they leave owed,
    per currency (amounts in different currencies are never added together)."""

    invoices: list[InvoiceLink]
    outstanding: dict[str, Decimal]
    overdue: dict[str, Decimal]


def company_invoices(installation_id: int, contact_id: str | None) -> CompanyInvoices:
    invoices: list[InvoiceLink] = []
    if contact_id:
        invoices = list(db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == installation_id,
            InvoiceLink.xero_contact_id == contact_id).order_by(
            InvoiceLink.created_at.desc()).limit(COMPANY_INVOICES)).all())
    outstanding = _by_currency(l for l in invoices if l.status == "AUTHORISED")
    overdue = _by_currency(l for l in invoices if l.deal_status == "overdue")
    return CompanyInvoices(invoices, outstanding, overdue)


# Open review items about a link that the company card lists under its sync state.
SYNC_REASONS = (ReviewReason.CONTACT_CONFLICT, ReviewReason.CONTACT_ARCHIVED,
                ReviewReason.XERO_VALIDATION, ReviewReason.CONTACT_MERGE_CONFLICT,
                ReviewReason.COMPANY_DELETED)


@dataclass(frozen=True)
class CompanySync:
    """The company link's two-way sync state, as the company card shows it. `state`:
    "off" (the admin has not turned contact sync on), "in_sync" (the last pass left the two
    records alike), "waiting" (never synced yet, a write still to retry, or a person to decide
    first: see `items`). The last change on each side is that record's version when Paydeck
    last compared them (Xero's UpdatedDateUTC, the CRM's updatedAt / update_time)."""

    state: str
    xero_changed: datetime | None
    crm_changed: datetime | None
    synced_at: datetime | None
    last_origin: str | None
    flag: str | None  # "archived" (the Xero contact is archived) or "merged" / None
    items: list[ReviewItem]  # open conflicts and other sync review items of the link
    failed: str | None  # the last write's error, when it failed
    # The CRM side (app.contact_sync.crm_merges): "deleted", "merged" (this company was merged
    # into `merged_into`), "merge_conflict" (a person keeps one of several contacts) or None.
    crm_status: str | None = None
    merged_into: str | None = None


def company_sync(installation_id: int, company_id: str) -> CompanySync | None:
    """The sync state of the company's link (None: not linked). Database reads only."""
    link = db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation_id, ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id)).first()
    return None if link is None else link_sync(link)


def deal_person_sync(installation_id: int, invoice_link: Any) -> CompanySync | None:
    """A B2C deal's person link's sync state, for the deal page: the person link (HubSpot
    contact, Pipedrive person) to the Xero contact the deal's invoice went to, if there is
    one and no company link to that contact (a company deal shows its company's on the
    company page). Database reads only."""
    contact_id = getattr(invoice_link, "xero_contact_id", None)
    if not contact_id:
        return None
    links = list(db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation_id,
        ContactLink.xero_contact_id == contact_id).order_by(ContactLink.id)))
    if any(link.crm_object_type == "company" for link in links):
        return None
    person = next((link for link in links if link.crm_object_type == "person"), None)
    return None if person is None else link_sync(person)


def link_sync(link: ContactLink) -> CompanySync:
    """A company's or person's link's sync state (for persons: off unless persons sync)."""
    installation_id, object_id = link.installation_id, link.crm_object_id
    settings = db.session.get(ContactSyncSettings, installation_id)
    items = list(db.session.scalars(select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.contact_link_id == link.id,
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.reason.in_(SYNC_REASONS))
        .order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc())).all())
    last = db.session.scalars(select(AuditEvent).where(
        AuditEvent.installation_id == installation_id, AuditEvent.action == "contact_synced",
        AuditEvent.detail[link.crm_object_type].as_string() == object_id)
        .order_by(AuditEvent.id.desc()).limit(1)).first()
    failed = ((last.detail or {}).get("error") or "failed") if last is not None and \
        last.outcome == "failed" else None
    flag = link.xero_status
    if (settings is None or not settings.enabled
            or (link.crm_object_type == "person" and not settings.persons)):
        state = "off"
    elif (link.synced_at is None or items or failed or link.open_conflicts or flag
          or link.crm_status):
        state = "waiting"
    else:
        state = "in_sync"
    merged = merged_into(installation_id, object_id) if link.crm_status == "merged" else None
    return CompanySync(state, link.xero_version, link.crm_version, link.synced_at,
                       link.last_origin, flag, items, failed, link.crm_status, merged)


def _by_currency(links: Iterable[InvoiceLink]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for link in links:
        currency = link.currency or ""
        totals[currency] = totals.get(currency, Decimal(0)) + (link.amount_due or Decimal(0))
    return totals
