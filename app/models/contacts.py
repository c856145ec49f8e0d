"""CRM companies and persons linked to Xero contacts, two-way contact sync's state and
settings, CRM company merges, and the mirror of each organisation's Xero contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.columns import UTCDateTime, utcnow


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
