"""A CRM account Paydeck is installed in, its Xero organisation and what its admin chose
for invoicing (the three rows each installation has at most one of)."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.crypto import EncryptedText
from app.extensions import db
from app.models.columns import MONEY, UTCDateTime, string_enum, utcnow


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


class LineAmountType(str, enum.Enum):
    EXCLUSIVE = "Exclusive"
    INCLUSIVE = "Inclusive"
    NO_TAX = "NoTax"


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
    crm: Mapped[CrmKind] = mapped_column(string_enum(CrmKind))
    account_id: Mapped[str] = mapped_column(String(64))
    account_name: Mapped[str] = mapped_column(String(255), default="")
    api_domain: Mapped[str] = mapped_column(String(255), default="")
    installed_by: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[InstallationStatus] = mapped_column(
        string_enum(InstallationStatus), default=InstallationStatus.ACTIVE
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
    status: Mapped[ConnectionStatus] = mapped_column(string_enum(ConnectionStatus))
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
        string_enum(LineAmountType), default=LineAmountType.EXCLUSIVE
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
    # dismiss, link and import (app.access.rules.LEVELS: everyone | owners_and_admins | admins).
    money_visibility: Mapped[str] = mapped_column(String(32), default="everyone",
                                                  server_default="everyone")
    action_permission: Mapped[str] = mapped_column(String(32), default="owners_and_admins",
                                                   server_default="owners_and_admins")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    installation: Mapped[Installation] = relationship(back_populates="settings")
