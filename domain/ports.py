"""What the engine and the views need of a CRM: the protocols each adapter implements."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from domain.crm import CompanyRecord, InvoiceFields, ParsedWebhook, RecordAccess, WebhookRequest
from domain.deals import Deal


class DealSource(Protocol):
    """What the invoice engine needs of a CRM."""

    def fetch_deals(self, installation: Any, deal_ids: Sequence[str]) -> dict[str, Deal | None]:
        """Normalised deals by id, in as few calls as the CRM allows; None if gone."""

    def write_invoice_fields(self, installation: Any, updates: Sequence[InvoiceFields]) -> None:
        """Write invoice fields onto deals, in batches."""


class CrmAdapter(DealSource, Protocol):
    """Everything Paydeck needs of a CRM. One module per CRM implements it; the registry in
    app/wiring.py is an explicit dict. The engine and views never import a CRM SDK."""

    def verify_webhook_headers(self, headers: Mapping[str, str], installation: Any | None) -> None:
        """What can be checked before the body is read (credentials, signature present and
        fresh): WebhookRejected(401) otherwise, so a large forged body is never read."""

    def verify_webhook(self, req: WebhookRequest, installation: Any | None) -> None:
        """Raise WebhookRejected(401) unless the request came from the CRM. `installation` is
        known beforehand only where the URL names it (Pipedrive's per-installation URLs)."""

    def parse_webhook(self, req: WebhookRequest) -> ParsedWebhook:
        """The stage events in the request; WebhookRejected(400) if it is malformed."""

    def ensure_deal_fields(self, installation: Any) -> dict[str, str]:
        """Create Paydeck's own deal fields at install (idempotent); their CRM keys."""

    def register_webhooks(self, installation: Any, url: str) -> None:
        """Subscribe to deal changes, where the CRM does that per installation."""

    def list_pipelines(self, installation: Any) -> list[dict[str, Any]]:
        """Pipelines with their stages, in order: [{id, label, stages: [{id, label}]}]."""

    def list_products(self, installation: Any) -> list[dict[str, Any]]:
        """The CRM's products, for the product -> Xero mapping: [{id, name, sku}]."""

    def notify_owner(self, installation: Any, deal_id: str, owner_id: str | None,
                     subject: str, body: str) -> str:
        """Tell the deal's owner something (a task / an activity on the deal); its id."""

    def fetch_company(self, installation: Any, company_id: str) -> dict[str, str]:
        """One company in COMPANY_FIELDS words: every field this CRM (and installation: the
        tax number's field is a setting) can hold, "" when empty; fields it cannot hold are
        left out. CrmError with status 404 when there is no such company."""

    def record_access(self, installation: Any, kind: str, record_id: str) -> RecordAccess:
        """The owner (and visibility) of a deal (`kind` "deal") or company ("company")."""

    def update_company(self, installation: Any, company_id: str,
                       fields: Mapping[str, str]) -> None:
        """Write these COMPANY_FIELDS values onto the company, leaving its other fields as
        they are. ValueError for a field this CRM cannot hold (fetch_company leaves it out)."""


class CompanySync(Protocol):
    """What two-way contact sync needs of a CRM (app.contact_sync): companies read and written
    in batches, with the CRM's version of each record."""

    def fetch_companies(self, installation: Any, company_ids: Sequence[str],
                        extra: Mapping[str, str] | None = None) -> dict[str, CompanyRecord | None]:
        """Companies by id (None: gone), in as few calls as the CRM allows. `extra`: more text
        fields to read, {key: CRM property (HubSpot) / custom field key (Pipedrive)}."""

    def update_companies(self, installation: Any, updates: Mapping[str, Mapping[str, str]],
                         extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Write COMPANY_FIELDS values (and `extra` keys) onto each company, in batches; the
        CRM's new version of each record written (aware UTC datetime, or None)."""

    def companies_changed_since(self, installation: Any, since: datetime) -> Iterator[list[Any]]:
        """Pages of the companies changed at or after `since`, oldest first, each a list of
        crm_adapters.changes.Changed (id, version, the moment to resume from)."""


class PersonSync(Protocol):
    """Two-way contact sync of persons (B2C deals' contacts: HubSpot contacts, Pipedrive
    persons), like CompanySync, in PERSON_FIELDS words."""

    def fetch_persons(self, installation: Any, person_ids: Sequence[str],
                      extra: Mapping[str, str] | None = None) -> dict[str, CompanyRecord | None]:
        """Persons by id (None: gone), in batches; `updated_at` the CRM's version."""

    def update_persons(self, installation: Any, updates: Mapping[str, Mapping[str, str]],
                       extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Write PERSON_FIELDS values (and `extra` keys) onto each person; the CRM's new
        version of each record written. ValueError for a field the CRM cannot write."""

    def persons_changed_since(self, installation: Any, since: datetime) -> Iterator[list[Any]]:
        """Pages of the persons changed at or after `since`, as companies_changed_since."""
