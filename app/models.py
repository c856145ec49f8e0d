"""Paydeck's data model. Every row that belongs to a customer carries `installation_id`."""

from __future__ import annotations

import enum
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app.crypto import EncryptedText
from app.extensions import db

MONEY = Numeric(18, 4)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native PG enum) so adding a value is a code change only.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


class CrmKind(str, enum.Enum):
    HUBSPOT = "hubspot"
    PIPEDRIVE = "pipedrive"


class InstallationStatus(str, enum.Enum):
    ACTIVE = "active"
    RECONNECT_NEEDED = "reconnect_needed"  # the CRM grant was revoked; reinstall to fix
    UNINSTALLED = "uninstalled"


class ConnectionStatus(str, enum.Enum):
    PENDING_TENANT = "pending_tenant"  # authorised several organisations; admin must pick one
    CONNECTED = "connected"
    RECONNECT_NEEDED = "reconnect_needed"
    DISCONNECTED = "disconnected"


class StageAction(str, enum.Enum):
    NONE = "none"
    DRAFT = "draft"
    AUTHORISE = "authorise"
    AUTHORISE_AND_EMAIL = "authorise_and_email"


class LineAmountType(str, enum.Enum):
    EXCLUSIVE = "Exclusive"
    INCLUSIVE = "Inclusive"
    NO_TAX = "NoTax"


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


class InvoiceLinkState(str, enum.Enum):
    PENDING = "pending"  # written before the Xero call: a crash leaves evidence to reconcile
    CREATED = "created"
    FAILED = "failed"


class OAuthTokens:
    """Columns shared by everything that holds an OAuth grant."""

    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(Text, default="")
    token_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Refreshes failing for a reason other than invalid_grant (invalid_client, 5xx, timeout...):
    # consecutive failures, since when, and the vendor's own words. Cleared by a success.
    token_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    token_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_failure_detail: Mapped[str] = mapped_column(Text, default="", server_default="")

    def set_tokens(self, token: dict[str, Any], now: datetime) -> None:
        """Store a token endpoint response (as requests-oauthlib returns it)."""
        self.access_token = token["access_token"]
        # Some providers (HubSpot) return the same refresh token; keep ours when absent.
        self.refresh_token = token.get("refresh_token") or self.refresh_token
        expires_at = token.get("expires_at")
        if expires_at is not None:
            self.token_expires_at = datetime.fromtimestamp(float(expires_at), timezone.utc)
        scope = token.get("scope")
        if scope:
            self.scopes = " ".join(scope) if isinstance(scope, list) else str(scope)
        self.token_refreshed_at = now

    def clear_tokens(self) -> None:
        self.access_token = None
        self.refresh_token = None
        self.token_expires_at = None


class Installation(OAuthTokens, db.Model):
    """Paydeck installed in one CRM account (a HubSpot portal or a Pipedrive company)."""

    __tablename__ = "installation"
    __table_args__ = (UniqueConstraint("crm", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    crm: Mapped[CrmKind] = mapped_column(_enum(CrmKind))
    account_id: Mapped[str] = mapped_column(String(64))
    account_name: Mapped[str] = mapped_column(String(255), default="")
    api_domain: Mapped[str] = mapped_column(String(255), default="")
    installed_by: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[InstallationStatus] = mapped_column(
        _enum(InstallationStatus), default=InstallationStatus.ACTIVE
    )
    # Pipedrive webhooks authenticate with HTTP Basic only: a random pair per installation.
    webhook_user: Mapped[str | None] = mapped_column(String(64))
    webhook_password: Mapped[str | None] = mapped_column(EncryptedText)
    # CRM-specific ids of what Paydeck created at install (property names, field hash keys).
    crm_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    xero_connection: Mapped[XeroConnection | None] = relationship(
        back_populates="installation", uselist=False
    )
    settings: Mapped[InstallationSettings | None] = relationship(
        back_populates="installation", uselist=False
    )


class XeroConnection(OAuthTokens, db.Model):
    """The one Xero organisation an installation invoices into."""

    __tablename__ = "xero_connection"

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), unique=True)
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    tenant_name: Mapped[str] = mapped_column(String(255), default="")
    # Xero's id for the tenant connection (DELETE /connections/{id}).
    xero_connection_id: Mapped[str | None] = mapped_column(String(64))
    # While PENDING_TENANT: [{"connection_id", "tenant_id", "tenant_name"}] to choose from.
    tenant_choices: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    status: Mapped[ConnectionStatus] = mapped_column(_enum(ConnectionStatus))
    status_detail: Mapped[str] = mapped_column(Text, default="")
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    installation: Mapped[Installation] = relationship(back_populates="xero_connection")


class InstallationSettings(db.Model):
    """What the admin chose: how deals become invoices."""

    __tablename__ = "installation_settings"

    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), primary_key=True)
    default_account_code: Mapped[str | None] = mapped_column(String(32))
    default_tax_type: Mapped[str | None] = mapped_column(String(64))
    # Contact matching order; any of "email", "tax_number", "name".
    dedupe_order: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["email", "tax_number", "name"]
    )
    # Create every invoice as a DRAFT, whatever the stage rule says (for teams not ready to
    # auto-approve).
    draft_first: Mapped[bool] = mapped_column(Boolean, default=False)
    # {"type": "days_after_invoice" | "day_of_following_month" | ..., "days": 30}
    payment_terms: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=lambda: {"type": "days_after_invoice", "days": 30}
    )
    line_amount_type: Mapped[LineAmountType] = mapped_column(
        _enum(LineAmountType), default=LineAmountType.EXCLUSIVE
    )
    allow_single_line_from_amount: Mapped[bool] = mapped_column(Boolean, default=False)
    # How far the deal amount may be from the sum of its lines before it is a review item.
    amount_tolerance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0.01"),
                                                      server_default="0.01")
    # The CRM company property that holds the tax number (ABN/GST/VAT), if any.
    tax_number_property: Mapped[str | None] = mapped_column(String(128))
    # A Xero contact's own sales terms (PaymentTerms.Sales) win over `payment_terms`.
    use_contact_terms: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Who may see invoice amounts on cards and pages, and who may push, re-push, retry,
    # dismiss, link and import (app.access.LEVELS: everyone | owners_and_admins | admins).
    money_visibility: Mapped[str] = mapped_column(String(32), default="everyone",
                                                  server_default="everyone")
    action_permission: Mapped[str] = mapped_column(String(32), default="owners_and_admins",
                                                   server_default="owners_and_admins")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    installation: Mapped[Installation] = relationship(back_populates="settings")


class StageRule(db.Model):
    """When a deal enters this pipeline stage, do this to its invoice."""

    __tablename__ = "stage_rule"
    __table_args__ = (UniqueConstraint("installation_id", "pipeline_id", "stage_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), index=True)
    pipeline_id: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[StageAction] = mapped_column(_enum(StageAction))


class ProductMapping(db.Model):
    """A CRM product's Xero item and account code (and tax type, if not the default)."""

    __tablename__ = "product_mapping"
    __table_args__ = (UniqueConstraint("installation_id", "crm_product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), index=True)
    crm_product_id: Mapped[str] = mapped_column(String(64))
    xero_item_code: Mapped[str | None] = mapped_column(String(64))
    account_code: Mapped[str | None] = mapped_column(String(32))
    tax_type: Mapped[str | None] = mapped_column(String(64))


class TaxMapping(db.Model):
    """A CRM tax label or rate -> the Xero TaxType of this organisation."""

    __tablename__ = "tax_mapping"
    __table_args__ = (UniqueConstraint("installation_id", "crm_tax_label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), index=True)
    crm_tax_label: Mapped[str] = mapped_column(String(128))
    xero_tax_type: Mapped[str] = mapped_column(String(64))


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
        _enum(InvoiceLinkState), default=InvoiceLinkState.PENDING
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


class ContactLink(db.Model):
    """A CRM company or person linked to one Xero contact."""

    __tablename__ = "contact_link"
    __table_args__ = (
        UniqueConstraint("installation_id", "crm_object_type", "crm_object_id"),
        CheckConstraint("crm_object_type IN ('company', 'person')", name="object_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"))
    crm_object_type: Mapped[str] = mapped_column(String(16))
    crm_object_id: Mapped[str] = mapped_column(String(64))
    xero_contact_id: Mapped[str] = mapped_column(String(64))
    linked_by: Mapped[str] = mapped_column(String(32), default="match")  # match|created|user
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # --- two-way contact sync state (app.contact_sync.state.SyncState reads and writes it) ---
    # Each side's record version when Paydeck last compared the two: Xero's UpdatedDateUTC,
    # the CRM's updatedAt (HubSpot) / update_time (Pipedrive). None: never synced.
    xero_version: Mapped[datetime | None] = mapped_column(UTCDateTime)
    crm_version: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The version Paydeck's own last write produced on each side: a record still at that
    # version is Paydeck's echo, never someone's change (no loops).
    xero_written_version: Mapped[datetime | None] = mapped_column(UTCDateTime)
    crm_written_version: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # {"xero": {field: hash}, "crm": {field: hash}}: each side's value at the last sync (or
    # the value Paydeck wrote there). A side whose hash is unchanged did not change.
    field_hashes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict,
                                                         server_default="{}")
    # Fields waiting for a person ({field: review item id}): never written meanwhile.
    open_conflicts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict,
                                                           server_default="{}")
    last_origin: Mapped[str | None] = mapped_column(String(16))  # xero | crm
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "archived": the Xero contact is archived (ContactStatus ARCHIVED), so nothing syncs and a
    # CONTACT_ARCHIVED review item says so; None: active. A merged contact moves the link to
    # the surviving contact instead (app.contact_sync.reconcile).
    xero_status: Mapped[str | None] = mapped_column(String(16))
    # The CRM side's state (app.contact_sync.crm_merges): None active; "deleted" (deleted in
    # the CRM: nothing syncs, the Xero contact is untouched, a restore clears it); "merged"
    # (its company was merged into another whose link kept a different contact: history, never
    # synced); "merge_conflict" (the surviving company's link while a person picks which Xero
    # contact it keeps). `crm_status_at`: when the CRM said so (events older are ignored).
    crm_status: Mapped[str | None] = mapped_column(String(16))
    crm_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CompanyMerge(db.Model):
    """A CRM company merged into another (HubSpot company.merge, Pipedrive delete with
    merged_to_id): anything that still names the old id (the company card, a deal read
    before the merge) finds the company that survived."""

    __tablename__ = "crm_company_merge"
    __table_args__ = (UniqueConstraint("installation_id", "company_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"))
    company_id: Mapped[str] = mapped_column(String(64))
    merged_into: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactSyncSettings(db.Model):
    """What the admin chose for two-way contact sync (app.contact_sync.mapping reads it)."""

    __tablename__ = "contact_sync_settings"

    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # {field: {"direction", "conflict", "crm_property"}}: only what differs from the defaults
    # (app.contact_sync.mapping.DEFAULTS), so a better default reaches everyone who kept it.
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # Xero ContactGroupIDs whose contacts sync to the CRM; empty: every group (and none).
    contact_groups: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # Which Xero contacts sync, by IsCustomer/IsSupplier: any of customer, supplier,
    # unassigned (neither flag yet: no transactions). Supplier-only contacts stay out.
    xero_roles: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["customer", "unassigned"],
        server_default='["customer", "unassigned"]')
    # Persons (B2C deals' contacts, ContactLink.crm_object_type "person") sync too; they use
    # the company table's directions and conflict rules (app.contact_sync.mapping).
    persons: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # {field: {"crm_property"}}: a person's own CRM property where it is not the default
    # (the person's tax number property, say).
    person_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict,
                                                          server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


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
    reason: Mapped[ReviewReason] = mapped_column(_enum(ReviewReason))
    detail: Mapped[str] = mapped_column(Text, default="")
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # What was asked when it stopped, so a retry asks again (a StageAction value).
    action: Mapped[str | None] = mapped_column(String(32))
    # When the installing admin was emailed about it (None: not yet, or no SMTP configured).
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[ReviewStatus] = mapped_column(_enum(ReviewStatus), default=ReviewStatus.OPEN)
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


class DealSyncRequest(db.Model):
    """A deal waiting for the invoice engine. Repeats merge; the strongest action wins."""

    __tablename__ = "deal_sync_request"
    __table_args__ = (UniqueConstraint("installation_id", "deal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"))
    deal_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[StageAction] = mapped_column(_enum(StageAction))
    # What asked for it: "hubspot:deal.propertyChange:<event id>", "retry:review:12", ...
    source: Mapped[str] = mapped_column(String(255), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every request merged into the row: the job deletes the row only if the
    # version is still the one it read, so a request arriving mid-run is never lost.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class XeroContact(db.Model):
    """Paydeck's mirror of an organisation's Xero contacts, kept current with
    If-Modified-Since, so matching a burst of deals costs one call, not one per deal."""

    __tablename__ = "xero_contact"
    __table_args__ = (
        UniqueConstraint("xero_connection_id", "contact_id"),
        Index("ix_xero_contact_email", "xero_connection_id", "email_key"),
        Index("ix_xero_contact_tax", "xero_connection_id", "tax_number_key"),
        Index("ix_xero_contact_name", "xero_connection_id", "name_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    xero_connection_id: Mapped[int] = mapped_column(ForeignKey("xero_connection.id"))
    contact_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255))
    email_key: Mapped[str] = mapped_column(String(255), default="")
    tax_number_key: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


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
