"""What arrives from the vendors: each delivered webhook (repeats dropped), and how far each
periodic read of Xero has got."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.columns import UTCDateTime, utcnow


class WebhookReceipt(db.Model):
    """One delivered webhook event; the unique key drops repeats."""

    __tablename__ = "webhook_receipt"
    __table_args__ = (UniqueConstraint("source", "event_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # hubspot | pipedrive | xero
    event_key: Mapped[str] = mapped_column(String(255))
    installation_id: Mapped[int | None] = mapped_column(ForeignKey("installation.id"))
    outcome: Mapped[str] = mapped_column(String(32), default="enqueued")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SyncCursor(db.Model):
    """How far a periodic read has got, per Xero connection and kind."""

    __tablename__ = "sync_cursor"
    __table_args__ = (UniqueConstraint("xero_connection_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    xero_connection_id: Mapped[int] = mapped_column(ForeignKey("xero_connection.id"))
    kind: Mapped[str] = mapped_column(String(32))
    # The `since` of the pass in progress (or of the next one); None: read everything.
    position: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Mid-pass: the next page to read and when the pass began; None between passes.
    page: Mapped[int | None] = mapped_column(Integer)
    pass_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
