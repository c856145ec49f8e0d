"""The initial contact match (issue #15 part 2): a run, the records it read, the rows the
admin reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.columns import UTCDateTime, utcnow


class ContactMatchRun(db.Model):
    """One initial contact match (issue #15 part 2): every CRM company and Xero contact read
    into `contact_match_record` (its place saved after every page), matched into
    `contact_match_row`s the admin reviews; nothing is written to a vendor before approval."""

    __tablename__ = "contact_match_run"
    __table_args__ = (Index("ix_contact_match_run_installation", "installation_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"))
    xero_connection_id: Mapped[int] = mapped_column(ForeignKey("xero_connection.id"))
    # reading | ready (the review) | applying | failed | superseded (a newer run replaced it)
    status: Mapped[str] = mapped_column(String(16), default="reading")
    crm_cursor: Mapped[str | None] = mapped_column(String(512))  # the next CRM page's token
    crm_done: Mapped[bool] = mapped_column(Boolean, default=False)
    xero_page: Mapped[int] = mapped_column(Integer, default=1)  # the next Xero page
    xero_done: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    crm_calls: Mapped[int] = mapped_column(Integer, default=0)
    xero_calls: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_by: Mapped[str] = mapped_column(String(64), default="")
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first approval
    batches: Mapped[int] = mapped_column(Integer, default=0)  # approvals so far
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ContactMatchRecord(db.Model):
    """A CRM company or Xero contact as a match run read it (keys for matching, the fields a
    create on the other side copies)."""

    __tablename__ = "contact_match_record"
    __table_args__ = (UniqueConstraint("run_id", "side", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("contact_match_run.id"))
    side: Mapped[str] = mapped_column(String(8))  # crm | xero
    record_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    tax_number: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    in_scope: Mapped[bool] = mapped_column(Boolean, default=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ContactMatchRow(db.Model):
    """One line of the review: proposed | linked | xero_only | crm_only | ambiguous, the
    admin's choice (link | create_crm | create_xero | skip) and how applying it went
    (state open | queued | sending | done | failed | skipped)."""

    __tablename__ = "contact_match_row"
    __table_args__ = (Index("ix_contact_match_row_kind", "run_id", "kind", "id"),
                      Index("ix_contact_match_row_state", "run_id", "state"))

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("contact_match_run.id"))
    kind: Mapped[str] = mapped_column(String(16))
    crm_id: Mapped[str | None] = mapped_column(String(64))
    xero_id: Mapped[str | None] = mapped_column(String(64))
    crm_name: Mapped[str] = mapped_column(String(255), default="")
    xero_name: Mapped[str] = mapped_column(String(255), default="")
    matched_on: Mapped[str] = mapped_column(String(16), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    # Ambiguous rows: [{"contact_id", "name", "email", "tax_number"}].
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    choice: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="open")
    batch: Mapped[int | None] = mapped_column(Integer)  # which approval queued it
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
