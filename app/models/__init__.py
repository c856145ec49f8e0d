"""Paydeck's data model. Every row that belongs to a customer carries `installation_id`.

One module per concept; every table and public name is re-exported here, so
`from app.models import X` is the way in, and importing this package registers every table
with the metadata Alembic compares against (migrations/env.py)."""

from __future__ import annotations

from app.models.columns import MONEY, UTCDateTime, string_enum, utcnow
from app.models.contact_match import ContactMatchRecord, ContactMatchRow, ContactMatchRun
from app.models.contacts import CompanyMerge, ContactLink, ContactSyncSettings, XeroContact
from app.models.incoming import SyncCursor, WebhookReceipt
from app.models.installations import (
    ConnectionStatus,
    CrmKind,
    Installation,
    InstallationSettings,
    InstallationStatus,
    LineAmountType,
    OAuthTokens,
    XeroConnection,
)
from app.models.invoices import DealSyncRequest, InvoiceLink, InvoiceLinkState
from app.models.review import AuditEvent, ReviewItem, ReviewReason, ReviewStatus
from app.models.rules import ProductMapping, StageAction, StageRule, TaxMapping

__all__ = [
    "MONEY", "UTCDateTime", "string_enum", "utcnow",
    "ContactMatchRecord", "ContactMatchRow", "ContactMatchRun",
    "CompanyMerge", "ContactLink", "ContactSyncSettings", "XeroContact",
    "SyncCursor", "WebhookReceipt",
    "ConnectionStatus", "CrmKind", "Installation", "InstallationSettings", "InstallationStatus",
    "LineAmountType", "OAuthTokens", "XeroConnection",
    "DealSyncRequest", "InvoiceLink", "InvoiceLinkState",
    "AuditEvent", "ReviewItem", "ReviewReason", "ReviewStatus",
    "ProductMapping", "StageAction", "StageRule", "TaxMapping",
]
