"""Types every CRM adapter shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import json
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from domain.deals import Deal


class CrmError(Exception):
    """The CRM refused or failed a call."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


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


class DealSource(Protocol):
    """What the invoice engine needs of a CRM."""

    def fetch_deals(self, installation: Any, deal_ids: Sequence[str]) -> dict[str, Deal | None]:
        """Normalised deals by id, in as few calls as the CRM allows; None if gone."""

    def write_invoice_fields(self, installation: Any, updates: Sequence[InvoiceFields]) -> None:
        """Write invoice fields onto deals, in batches."""


class CrmAdapter(DealSource, Protocol):
    """Everything Paydeck needs of a CRM. One module per CRM implements it; the registry in
    crm_adapters/__init__.py is an explicit dict. The engine and views never import a CRM SDK."""

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
class ParsedWebhook:
    events: list[StageEvent]
    ignored: int  # events of kinds Paydeck does not act on (other properties, other objects)


class CrmRetryLater(CrmError):
    """Rate limited or the CRM is down: try again after `seconds`."""

    def __init__(self, message: str, seconds: float, status: int | None = None):
        super().__init__(message, status)
        self.seconds = seconds


class CrmReconnectNeeded(CrmError):
    """The CRM refused our token: the installation must be reinstalled."""


def classify_status(crm: str, status: int, retry_after: str | None, what: str) -> CrmError:
    """One place that decides what a failed CRM call means."""
    if status == 429:
        seconds = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else 10.0
        return CrmRetryLater(f"{crm} rate limit on {what}", seconds, status)
    if status >= 500 or status == 408:
        return CrmRetryLater(f"{crm} answered {status} to {what}", 30.0, status)
    if status in (401, 403):
        return CrmReconnectNeeded(f"{crm} refused the token ({status}) on {what}", status)
    return CrmError(f"{crm} answered {status} to {what}", status)


def to_decimal(value: Any) -> Decimal | None:
    """A CRM's number (string or JSON number) as Decimal; None when empty or not a number."""
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def to_moment(value: Any) -> datetime | None:
    """A CRM timestamp as an aware UTC datetime: ISO 8601 ("2026-06-30T14:30:00.000Z"), or
    Pipedrive's "YYYY-MM-DD HH:MM:SS" (UTC, no zone), or epoch milliseconds; None if it is
    only a date or unreadable (a date has no moment to place in the organisation's zone)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, timezone.utc)
    if len(text) <= 10:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def to_date(value: Any) -> date | None:
    """A CRM's date or timestamp text as a date."""
    return date.fromisoformat(str(value)[:10]) if value else None


# Deeper than any CRM's payload (HubSpot events and Pipedrive's v2 body are 3-4 levels).
MAX_JSON_DEPTH = 32


def load_json(body: bytes) -> Any:
    """A webhook body as JSON, or WebhookRejected(400): not JSON, or nested absurdly deep
    (which would otherwise exhaust the parser's recursion and answer 500)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected(400, "body is not JSON") from exc
    if _depth(payload) > MAX_JSON_DEPTH:
        raise WebhookRejected(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels")
    return payload


def _depth(value: Any) -> int:
    """Nesting depth, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest
class PagingLoop(CrmError):
    """A CRM answered a page with a page token it had already given: following it would loop
    forever (meltano/sdk's paginators refuse a repeated token the same way)."""


Page = tuple[list[Any], str | None]  # one page's records and the next page's token (None: last)


def follow_pages(fetch: Callable[[str | None], Page], what: str) -> list[Any]:
    """Every record of a paged list: `fetch(token)` answers one page and the next token.

    Refuses a token seen before (PagingLoop), so a CRM that repeats itself fails loudly
    instead of looping or silently returning a short list.
    """
    records: list[Any] = []
    seen: set[str] = set()
    token: str | None = None
    while True:
        page, token = fetch(token)
        records += page
        if token is None or token == "":
            return records
        if token in seen:
            raise PagingLoop(f"{what}: the CRM repeated page token {token!r}")
        seen.add(token)
