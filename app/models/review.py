"""What a person must decide (review items) and what happened (the audit trail)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.columns import UTCDateTime, string_enum, utcnow


class ReviewStatus(str, enum.Enum):
    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class ReviewReason(str, enum.Enum):
    AMBIGUOUS_CONTACT = "ambiguous_contact"
    UNMAPPED_PRODUCT = "unmapped_product"
    UNKNOWN_TAX = "unknown_tax"
    CURRENCY_NOT_ENABLED = "currency_not_enabled"
    NO_LINE_ITEMS = "no_line_items"
    XERO_VALIDATION = "xero_validation"
    RECONNECT_NEEDED = "reconnect_needed"
    SYNC_FAILED = "sync_failed"
    CONNECTION_FAILING = "connection_failing"  # token refreshes keep failing (not invalid_grant)
    MIXED_TAX_METHODS = "mixed_tax_methods"  # tax-inclusive and -exclusive lines on one deal
    AMOUNT_MISMATCH = "amount_mismatch"  # deal amount vs its lines, or a CRM line total vs Xero's
    LINE_AMOUNTS = "line_amounts"  # a line that cannot be booked exactly (quantity, discount, dp)
    TEXT_TOO_LONG = "text_too_long"  # over one of Xero's field limits
    # Finance changed the invoice in Xero since Paydeck wrote it: keep Xero's, or re-send.
    XERO_EDITED = "xero_edited"
    # More than one invoice in Xero carries the deal's Reference (finance used "Copy to").
    DUPLICATE_INVOICES = "duplicate_invoices"
    # The company's linked Xero contact is archived: relink it or unarchive it in Xero.
    CONTACT_ARCHIVED = "contact_archived"
    # The invoice exists and is approved; only sending it by email failed.
    EMAIL_FAILED = "email_failed"
    # Organisation.Timezone is a name CLDR's table does not map: dates would be a guess.
    UNKNOWN_TIMEZONE = "unknown_timezone"
    # A linked company and Xero contact both changed a field the admin syncs with "ask":
    # both values are in `candidates`; a person picks one (app.contact_sync).
    CONTACT_CONFLICT = "contact_conflict"
    # CRM companies merged whose links named different Xero contacts: a person keeps one
    # (`candidates`), Paydeck never picks (app.contact_sync.crm_merges).
    CONTACT_MERGE_CONFLICT = "contact_merge_conflict"
    # The linked company was deleted in the CRM: the link stops syncing; the Xero contact is
    # left as it is (Paydeck never deletes or archives one).
    COMPANY_DELETED = "company_deleted"


class ReviewItem(db.Model):
    """Something Paydeck would not guess at: a person decides, then retries or dismisses."""

    __tablename__ = "review_item"
    __table_args__ = (Index("ix_review_item_open", "installation_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"))
    deal_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The linked company/contact the item is about (contact sync conflicts), if any.
    contact_link_id: Mapped[int | None] = mapped_column(ForeignKey("contact_link.id"),
                                                        index=True)
    reason: Mapped[ReviewReason] = mapped_column(string_enum(ReviewReason))
    detail: Mapped[str] = mapped_column(Text, default="")
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # What was asked when it stopped, so a retry asks again (a StageAction value).
    action: Mapped[str | None] = mapped_column(String(32))
    # When the installing admin was emailed about it (None: not yet, or no SMTP configured).
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[ReviewStatus] = mapped_column(string_enum(ReviewStatus), default=ReviewStatus.OPEN)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(db.Model):
    """What happened, why, and what came of it. Append-only."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_installation_time", "installation_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int | None] = mapped_column(ForeignKey("installation.id"))
    deal_id: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(128), default="")
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    xero_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
