"""The CRM-side types shared by the adapters, the engine and the views: who an account is,
what Paydeck writes back onto a deal, a webhook as it arrived and the stage events in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AccountIdentity:
    """Which CRM account a fresh OAuth token belongs to."""

    account_id: str
    account_name: str
    user: str
    api_domain: str



@dataclass(frozen=True)
class InvoiceFields:
    """What Paydeck writes back onto a deal (Paydeck's own deal properties / fields)."""

    deal_id: str
    invoice_number: str | None = None
    invoice_status: str | None = None
    amount_due: str | None = None  # decimal text: CRM number fields, no float rounding
    amount_paid: str | None = None
    due_date: str | None = None  # ISO date
    paid_date: str | None = None
    invoice_url: str | None = None
    last_sync_error: str | None = None



@dataclass(frozen=True)
class RecordAccess:
    """Who a CRM record (a deal, a company/organization) belongs to and who else may see it,
    as the CRM says (app.access decides from it). `visible_to` is Pipedrive's visibility code
    (None in HubSpot, whose card fetch HubSpot signs for the record the user has open)."""

    owner_id: str | None
    visible_to: int | None = None


# A CRM company (HubSpot company, Pipedrive organization) in words of our own, so that the
# views never learn a CRM's property names. Each adapter maps these to its fields and leaves
# out the ones its CRM cannot hold ("domain" is read-only: the company's web domain).
COMPANY_FIELDS = ("name", "phone", "street", "city", "region", "postal_code", "country",
                  "website", "domain", "tax_number")


# A CRM person (HubSpot contact, Pipedrive person) in words of our own, for two-way contact
# sync of the persons B2C deals are invoiced to (no company). "name" is the person's whole
# name ("First Last"); the adapters read the CRM's own parts and leave out what it lacks.
PERSON_FIELDS = ("name", "first_name", "last_name", "email", "phone", "mobile", "street",
                 "city", "region", "postal_code", "country", "tax_number")


@dataclass(frozen=True)
class CompanyRecord:
    """A company (or, in PERSON_FIELDS words, a person) as contact sync reads it: `fields` in COMPANY_FIELDS words (plus any extra
    properties asked for by their own key), "" when empty, a field the CRM cannot hold left
    out; `updated_at` the CRM's own version of the record (HubSpot updatedAt, Pipedrive
    update_time), aware UTC, or None if the CRM did not say."""

    company_id: str
    fields: Mapping[str, str]
    updated_at: datetime | None = None


class WebhookRejected(Exception):
    """A webhook request we refuse: 401 (not from the CRM) or 400 (malformed)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason



@dataclass(frozen=True)
class WebhookRequest:
    """A webhook exactly as it arrived: verification works on the raw bytes."""

    method: str
    url: str  # the full URL the CRM called (public origin + path + query)
    headers: Mapping[str, str]
    body: bytes



@dataclass(frozen=True)
class StageEvent:
    """A deal entered a stage (or was created in one)."""

    account_id: str  # HubSpot portal id / Pipedrive company id
    deal_id: str
    stage_id: str
    event_key: str  # the CRM's event id: repeats and retries carry the same key
    own_change: bool = False  # caused by Paydeck's own writes: never acted on (no loops)



@dataclass(frozen=True)
class CompanyEvent:
    """A CRM company (HubSpot company, Pipedrive organization) was created or changed: two-way
    contact sync reads it again (the event itself is only a wake-up)."""

    account_id: str
    company_id: str
    event_key: str
    own_change: bool = False  # Paydeck's own write (HubSpot: INTEGRATION with our app id)
    # Pipedrive: the change came through the API ("api", not the web app "app") and the
    # record's update_time after it; an API change at the version Paydeck itself wrote is
    # Paydeck's echo (the handler compares it with the link's stored version).
    via_api: bool = False
    version: datetime | None = None
    # What changed: "company", or "person" (HubSpot contact, Pipedrive person), whose id
    # `company_id` then holds.
    object_type: str = "company"
    # What happened (CRM-side merges and deletes, app.contact_sync.crm_merges): "change"
    # (created or changed: read it again), "deleted", "restored", or "merged" (`company_id`
    # is the company that survived, `merged_ids` the ones merged into it and gone).
    kind: str = "change"
    merged_ids: tuple[str, ...] = ()
    occurred_at: datetime | None = None  # when the CRM says it happened (aware UTC)


@dataclass(frozen=True)
class ParsedWebhook:
    events: list[StageEvent]
    ignored: int  # events of kinds Paydeck does not act on (other properties, other objects)
    companies: list[CompanyEvent] = field(default_factory=list)
