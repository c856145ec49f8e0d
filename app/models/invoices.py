"""A deal's Xero invoices, and the deals waiting for the invoice engine."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.columns import MONEY, UTCDateTime, string_enum, utcnow
from app.models.rules import StageAction


class InvoiceLinkState(str, enum.Enum):
    PENDING = "pending"  # written before the Xero call: a crash leaves evidence to reconcile
    CREATED = "created"
    FAILED = "failed"


class InvoiceLink(db.Model):
    """A deal's Xero invoice. Written before the Xero call, so a crash leaves evidence."""

    __tablename__ = "invoice_link"
    __table_args__ = (
        UniqueConstraint("installation_id", "deal_id", "trigger"),
        Index("ix_invoice_link_xero_invoice", "installation_id", "xero_invoice_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"))
    deal_id: Mapped[str] = mapped_column(String(64))
    # Which invoice of the deal this is; one per deal and trigger, never two.
    trigger: Mapped[str] = mapped_column(String(64), default="deal")
    state: Mapped[InvoiceLinkState] = mapped_column(
        string_enum(InvoiceLinkState), default=InvoiceLinkState.PENDING
    )
    # Deterministic, so a retry after a lost response can find the invoice in Xero.
    reference: Mapped[str] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    xero_invoice_id: Mapped[str | None] = mapped_column(String(64))
    invoice_number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(3))
    total: Mapped[Decimal | None] = mapped_column(MONEY)
    amount_due: Mapped[Decimal | None] = mapped_column(MONEY)
    amount_paid: Mapped[Decimal | None] = mapped_column(MONEY)
    amount_credited: Mapped[Decimal | None] = mapped_column(MONEY)
    due_date: Mapped[date | None] = mapped_column(Date)
    paid_on: Mapped[date | None] = mapped_column(Date)
    online_url: Mapped[str | None] = mapped_column(Text)  # the invoice in Xero, for staff
    # Xero's online invoice (what the customer sees and pays from); not for drafts.
    customer_url: Mapped[str | None] = mapped_column(Text)
    xero_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Xero's UpdatedDateUTC right after Paydeck's own last write (create/update). Anything
    # newer in Xero is someone else's edit, which Paydeck never overwrites unasked.
    paydeck_written_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Prepayments and overpayments allocated to the invoice (Xero counts them inside
    # AmountCredited); None until a full read of the invoice told us.
    amount_prepaid: Mapped[Decimal | None] = mapped_column(MONEY)
    # What the deal shows (xero.status.deal_status): draft, awaiting_payment, paid, overdue...
    deal_status: Mapped[str | None] = mapped_column(String(32))
    # The Xero contact invoiced: the company card's totals come from here.
    xero_contact_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The deal's owner when the invoice was made: who hears about it going overdue.
    owner_id: Mapped[str | None] = mapped_column(String(64))
    # Set when the owner was told of the current overdue episode; cleared when it ends.
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Re-invoicing a voided invoice (app/engine/reinvoice.py): the new link `replaces` the
    # voided one, which keeps its row as the deal's history under a trigger of its own
    # (`voided:<id>`), with when it was replaced.
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_link.id"))
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The whole invoice as Xero last returned it in full (lines, totals, payments, credit
    # notes and allocations: xero.detail.InvoiceDetail.to_json, amounts as exact decimal
    # strings); None until a full read. What the card and deal page show, never read live.
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last read from Xero
    # Paydeck's own email of the invoice (engine step or the deal page's button): when, to whom.
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    emailed_to: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DealSyncRequest(db.Model):
    """A deal waiting for the invoice engine. Repeats merge; the strongest action wins."""

    __tablename__ = "deal_sync_request"
    __table_args__ = (UniqueConstraint("installation_id", "deal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"))
    deal_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[StageAction] = mapped_column(string_enum(StageAction))
    # What asked for it: "hubspot:deal.propertyChange:<event id>", "retry:review:12", ...
    source: Mapped[str] = mapped_column(String(255), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every request merged into the row: the job deletes the row only if the
    # version is still the one it read, so a request arriving mid-run is never lost.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
