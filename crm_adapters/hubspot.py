"""HubSpot: install identity, webhooks, deals in, invoice fields out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from decimal import Decimal
from typing import Any

import requests

from crm_adapters.base import (CrmError, CrmRetryLater, PagingLoop, classify_status, follow_pages,
                               load_json, tax_number_field)
from crm_adapters.hubspot_persons import HubSpotPersons
from crm_adapters.limits import CrmLimiter
from domain.crm import (AccountIdentity, CompanyEvent, CompanyRecord, InvoiceFields, ParsedWebhook, RecordAccess, StageEvent,
                        WebhookRejected, WebhookRequest)
from domain.dates import to_date, to_moment
from domain.deals import Address, Deal, LineItem, Organisation, Person
from domain.money import cents, to_decimal


@dataclass(frozen=True)
class HubSpotConfig:
    """What the HubSpot adapter reads of Paydeck's settings (app/wiring.py builds it)."""

    api_base: str
    client_secret: str  # signs every portal's webhooks and card requests (signature v3)
    app_id: str  # tells Paydeck's own deal changes from everyone else's
    timeout: float  # seconds, every call


def identify(config: HubSpotConfig, token: dict[str, object]) -> AccountIdentity:
    """The portal (hub) id behind an access token: GET /oauth/v1/access-tokens/{token}."""
    url = f"{config.api_base}/oauth/v1/access-tokens/{token['access_token']}"
    try:
        response = requests.get(url, timeout=config.timeout)
    except requests.RequestException as exc:
        raise CrmError(f"HubSpot unreachable: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise CrmError(f"HubSpot token info answered {response.status_code}", response.status_code)
    info = response.json()
    return AccountIdentity(account_id=str(info["hub_id"]), account_name=info.get("hub_domain", ""),
                           user=info.get("user", ""), api_domain=config.api_base)


# --- webhooks ---------------------------------------------------------------------------------
# Signature v3 (developers.hubspot.com request-validation): base64(HMAC-SHA256(client secret,
# method + uri + body + timestamp)); reject timestamps older than 5 minutes. The uri is the URL
# as HubSpot called it with these escapes decoded. Done over the raw bytes here: the SDK's
# Signature.is_valid defaults to v2, wants a str body and accepts any future timestamp.
_URI_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
               "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
MAX_SKEW_MS = 300_000


def _hubspot_uri(url: str) -> str:
    for escaped, plain in _URI_DECODE.items():
        url = url.replace(escaped, plain).replace(escaped.lower(), plain)
    return url


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    message = f"{method}{_hubspot_uri(url)}".encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify_webhook_headers(headers: Mapping[str, str], client_secret: str,
                           now_ms: int | None = None) -> tuple[str, str]:
    """The signature and timestamp headers, present and fresh: (signature, timestamp)."""
    signature = headers.get("X-HubSpot-Signature-v3", "")
    timestamp = headers.get("X-HubSpot-Request-Timestamp", "")
    if not signature or not timestamp.isdigit() or len(timestamp) > 16 \
            or not client_secret:
        raise WebhookRejected(401, "missing signature or timestamp")
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now_ms - int(timestamp)) > MAX_SKEW_MS:
        raise WebhookRejected(401, "stale timestamp")
    return signature, timestamp


def verify_webhook(req: WebhookRequest, client_secret: str, now_ms: int | None = None) -> None:
    signature, timestamp = verify_webhook_headers(req.headers, client_secret, now_ms)
    expected = sign_v3(client_secret, req.method, req.url, req.body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRejected(401, "bad signature")


COMPANY_EVENTS = ("company.creation", "company.propertyChange", "company.deletion",
                  "company.restore", "company.merge")
# subscriptionType -> CompanyEvent.kind (webhooks-v3.json's eventType enum has all five).
_COMPANY_KINDS = {"company.deletion": "deleted", "company.restore": "restored",
                  "company.merge": "merged"}
# Persons (B2C deals' contacts): the same wake-up for HubSpot contacts (webhooks-v3.json
# subscription types; app_manifest webhooks-hsmeta.json subscribes them). Only company
# deletions, restores and merges change links (app.contact_sync.crm_merges).
CONTACT_EVENTS = ("contact.creation", "contact.propertyChange")


def parse_webhook(req: WebhookRequest, app_id: str) -> ParsedWebhook:
    """A JSON array of up to 100 events; Paydeck acts on deal stage changes, and (two-way
    contact sync) on company creations and property changes. An event whose changeSource is
    INTEGRATION with our app's id as sourceId is Paydeck's own write."""
    payload = load_json(req.body)
    if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
        raise WebhookRejected(400, "body is not an array of events")
    events, companies, ignored = [], [], 0
    for e in payload:
        own = (e.get("changeSource") == "INTEGRATION" and bool(app_id)
               and str(e.get("sourceId", "")) == str(app_id))
        if (e.get("subscriptionType") in COMPANY_EVENTS + CONTACT_EVENTS
                and all(e.get(k) not in (None, "") for k in ("objectId", "portalId", "eventId"))):
            if e["subscriptionType"] in CONTACT_EVENTS:
                companies.append(CompanyEvent(account_id=str(e["portalId"]),
                                              company_id=str(e["objectId"]),
                                              event_key=str(e["eventId"]), own_change=own,
                                              object_type="person"))
                continue
            company = _company_event(e, own)
            if company is None:
                ignored += 1
            else:
                companies.append(company)
            continue
        if (e.get("subscriptionType") != "deal.propertyChange" or e.get("propertyName") != "dealstage"
                or not all(e.get(k) not in (None, "") for k in ("objectId", "portalId", "eventId",
                                                                   "propertyValue"))):
            ignored += 1
            continue
        events.append(StageEvent(account_id=str(e["portalId"]), deal_id=str(e["objectId"]),
                                 stage_id=str(e["propertyValue"]), event_key=str(e["eventId"]),
                                 own_change=own))
    return ParsedWebhook(events, ignored, companies)


def _company_event(e: dict[str, Any], own: bool) -> CompanyEvent | None:
    """A company event. A merge (developers.hubspot.com/changelog/new-subscription-types-for-
    webhooks, "For Merge payload properties"): `primaryObjectId` the primary company,
    `mergedObjectIds` the ones merged into it, `newObjectId` "the Id of the object that was
    created from the result of the merge ... in some cases a new object is created": that one
    survives when given, else the primary. Unverified: whether `objectId` of a merge event is
    the primary or the new object (it is not read for merges), and whether the merged
    companies also get company.deletion events (app.contact_sync.crm_merges is safe either
    way). None: a merge naming no surviving company."""
    kind = _COMPANY_KINDS.get(str(e.get("subscriptionType")), "change")
    at = to_moment(e.get("occurredAt"))  # epoch milliseconds
    company_id, merged = str(e["objectId"]), ()
    if kind == "merged":
        survivor = e.get("newObjectId") or e.get("primaryObjectId")
        ids = e.get("mergedObjectIds")
        if survivor in (None, "") or not isinstance(ids, list):
            return None
        company_id = str(survivor)
        old = [e.get("primaryObjectId"), *ids]
        merged = tuple(dict.fromkeys(str(i) for i in old if i not in (None, "")
                                     and str(i) != company_id))
    # A deletion, restore or merge is a fact whoever made it (Paydeck makes none): only a
    # change can be Paydeck's own echo.
    return CompanyEvent(account_id=str(e["portalId"]), company_id=company_id,
                        event_key=str(e["eventId"]), own_change=own and kind == "change",
                        kind=kind,
                        merged_ids=merged, occurred_at=at)


# --- deals in, invoice fields out (hubspot-api-client; urllib3 underneath) ----------------------

DEAL_PROPERTIES = ["dealname", "amount", "deal_currency_code", "dealstage", "pipeline",
                   "closedate", "hubspot_owner_id"]
LINE_PROPERTIES = ["name", "quantity", "price", "hs_product_id", "hs_sku", "description",
                   "hs_discount_percentage", "discount", "hs_tax_label", "amount"]
COMPANY_PROPERTIES = ["name", "domain", "phone", "address", "address2", "city", "state", "zip",
                      "country"]
CONTACT_PROPERTIES = ["firstname", "lastname", "email", "phone"]
# COMPANY_FIELDS -> HubSpot company property (the tax number's is the installation's setting).
COMPANY_FIELD_PROPERTIES = {"name": "name", "phone": "phone", "street": "address", "city": "city",
                            "region": "state", "postal_code": "zip", "country": "country",
                            "website": "website", "domain": "domain"}
BATCH = 100  # HubSpot's batch endpoints take up to 100 inputs
# Query booleans: the specs type `archived` boolean, i.e. `true`/`false` on the wire; the SDK
# would write Python's `False` for a bool, so Paydeck passes the documented text itself.
ARCHIVED_NO = "false"

# Paydeck's own deal properties, created at install in a "Paydeck" group.
GROUP = "paydeck"
FIELDS: dict[str, tuple[str, str, str]] = {  # InvoiceFields attribute -> (name, label, type)
    "invoice_number": ("paydeck_invoice_number", "Xero invoice number", "string"),
    "invoice_status": ("paydeck_invoice_status", "Xero invoice status", "string"),
    "amount_due": ("paydeck_amount_due", "Amount due", "number"),
    "amount_paid": ("paydeck_amount_paid", "Amount paid", "number"),
    "due_date": ("paydeck_due_date", "Invoice due date", "date"),
    "paid_date": ("paydeck_paid_date", "Invoice paid date", "date"),
    "invoice_url": ("paydeck_invoice_url", "Xero invoice link", "string"),
    "last_sync_error": ("paydeck_last_sync_error", "Paydeck sync error", "string"),
}


def _api_exceptions() -> tuple[type[BaseException], ...]:
    from hubspot.crm.associations.v4 import ApiException as Assoc
    from hubspot.crm.companies import ApiException as Companies
    from hubspot.crm.contacts import ApiException as Contacts
    from hubspot.crm.deals import ApiException as Deals
    from hubspot.crm.line_items import ApiException as Lines
    from hubspot.crm.pipelines import ApiException as Pipelines
    from hubspot.crm.objects.tasks import ApiException as Tasks
    from hubspot.crm.owners import ApiException as Owners
    from hubspot.crm.products import ApiException as Products
    from hubspot.crm.properties import ApiException as Properties

    return (Assoc, Companies, Contacts, Deals, Lines, Owners, Pipelines, Products, Properties, Tasks)


class HubSpotCrm(HubSpotPersons):
    """The CrmAdapter for HubSpot. Every call: the shared 110/10 s limiter, a timeout, and
    failures typed by crm_adapters.base.classify_status."""

    def __init__(self, token: Callable[[Any], str], limiter: Callable[[Any], CrmLimiter],
                 config: Callable[[], HubSpotConfig],
                 search_limiter: Callable[[Any], CrmLimiter] | None = None) -> None:
        self._token, self._limiter, self._config = token, limiter, config
        self._search_limiter = search_limiter  # CRM search's own window (limits.HUBSPOT_SEARCH)
        self.calls = 0

    # -- plumbing --------------------------------------------------------------------------

    def _client(self, installation: Any) -> Any:
        from hubspot import HubSpot
        from urllib3.util.retry import Retry

        # No urllib3 retries: a retry is the job's decision (one retry layer per time scale).
        return HubSpot(access_token=self._token(installation), host=self._config().api_base,
                       retry=Retry(total=0, raise_on_status=False))

    def _call(self, installation: Any, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from urllib3.exceptions import HTTPError

        self._limiter(installation).take()
        self.calls += 1
        try:
            return fn(*args, _request_timeout=self._config().timeout, **kwargs)
        except _api_exceptions() as exc:
            headers = getattr(exc, "headers", None) or {}
            raise classify_status("HubSpot", int(getattr(exc, "status", 0) or 0),
                                  headers.get("Retry-After"), what) from exc
        except HTTPError as exc:
            raise CrmRetryLater(f"HubSpot unreachable on {what}: {exc.__class__.__name__}", 30.0) from exc

    # -- webhooks (app-level: the client secret signs every portal's events) ---------------

    def verify_webhook_headers(self, headers: Mapping[str, str], installation: Any | None = None) -> None:
        verify_webhook_headers(headers, self._config().client_secret)

    def verify_webhook(self, req: WebhookRequest, installation: Any | None = None) -> None:
        verify_webhook(req, self._config().client_secret)

    def parse_webhook(self, req: WebhookRequest) -> ParsedWebhook:
        return parse_webhook(req, self._config().app_id)

    def register_webhooks(self, installation: Any, url: str) -> None:
        """Nothing per portal: the app's webhook subscriptions live in app_manifest/hubspot."""

    # -- DealSource ------------------------------------------------------------------------

    def fetch_deals(self, installation: Any, deal_ids: Sequence[str]) -> dict[str, Deal | None]:
        client = self._client(installation)
        deals = self._read(installation, client.crm.deals.batch_api, deal_ids,
                           DEAL_PROPERTIES + DEAL_CLOSE_PROPERTIES, "deals")
        companies_of = self._associated(installation, client, deal_ids, "companies")
        contacts_of = self._associated(installation, client, deal_ids, "contacts")
        lines_of = self._associated(installation, client, deal_ids, "line_items")
        tax_property = tax_number_field(installation)
        companies = self._read(installation, client.crm.companies.batch_api,
                               _firsts(companies_of), COMPANY_PROPERTIES + ([tax_property] if tax_property else []),
                               "companies")
        contacts = self._read(installation, client.crm.contacts.batch_api, _firsts(contacts_of),
                              CONTACT_PROPERTIES, "contacts")
        lines = self._read(installation, client.crm.line_items.batch_api,
                           [i for ids in lines_of.values() for i in ids], LINE_PROPERTIES, "line items")
        return {deal_id: _deal(deal_id, deals.get(deal_id), companies, contacts, lines,
                               companies_of, contacts_of, lines_of, tax_property)
                for deal_id in deal_ids}

    def write_invoice_fields(self, installation: Any, updates: Sequence[InvoiceFields]) -> None:
        from hubspot.crm.deals import BatchInputSimplePublicObjectBatchInput, SimplePublicObjectBatchInput

        client = self._client(installation)
        merged = {u.deal_id: u for u in updates}  # the newest state of each deal wins
        inputs = [SimplePublicObjectBatchInput(id=u.deal_id, properties=_properties(u))
                  for u in merged.values()]
        for start in range(0, len(inputs), BATCH):
            self._call(installation, "deal writeback", client.crm.deals.batch_api.update,
                       BatchInputSimplePublicObjectBatchInput(inputs=inputs[start:start + BATCH]))

    # -- install and settings --------------------------------------------------------------

    def ensure_deal_fields(self, installation: Any) -> dict[str, str]:
        """Create the Paydeck property group and properties (existing ones are kept)."""
        from hubspot.crm.properties import (
            BatchInputPropertyCreate,
            PropertyCreate,
            PropertyGroupCreate,
        )

        client = self._client(installation)
        # Neither list pages: properties-v3.json CollectionResponsePropertyNoPaging and
        # CollectionResponsePropertyGroupNoPaging carry every property and group.
        existing = {p.name for p in self._call(installation, "deal properties",
                                               client.crm.properties.core_api.get_all, "deals").results}
        groups = {g.name for g in self._call(installation, "property groups",
                                             client.crm.properties.groups_api.get_all, "deals").results}
        if GROUP not in groups:
            self._call(installation, "property group", client.crm.properties.groups_api.create, "deals",
                       PropertyGroupCreate(name=GROUP, label="Paydeck", display_order=-1))
        missing = [PropertyCreate(name=name, label=label, type=kind, group_name=GROUP,
                                  field_type={"number": "number", "date": "date"}.get(kind, "text"))
                   for name, label, kind in FIELDS.values() if name not in existing]
        if missing:
            self._call(installation, "create properties", client.crm.properties.batch_api.create,
                       "deals", BatchInputPropertyCreate(inputs=missing))
        return {attr: name for attr, (name, _, _) in FIELDS.items()}

    def list_pipelines(self, installation: Any) -> list[dict[str, Any]]:
        # Not paged: pipelines-v3.json answers CollectionResponsePipelineNoPaging (all of them).
        client = self._client(installation)
        result = self._call(installation, "pipelines", client.crm.pipelines.pipelines_api.get_all, "deals")
        return [{"id": p.id, "label": p.label,
                 "stages": [{"id": s.id, "label": s.label} for s in sorted(p.stages, key=lambda s: s.display_order)]}
                for p in result.results]

    def list_products(self, installation: Any) -> list[dict[str, Any]]:
        client = self._client(installation)

        def fetch(after: str | None) -> tuple[list[Any], str | None]:
            # products-v3.json GET /crm/v3/objects/products: `limit` (default 10; 100 is the
            # most the docs allow), `after` from `paging.next.after`, absent on the last page.
            page = self._call(installation, "products", client.crm.products.basic_api.get_page,
                              limit=100, after=after, properties=["name", "hs_sku", "price"],
                              archived=ARCHIVED_NO)
            return list(page.results), _next_after(page.paging)

        return [{"id": p.id, "name": (p.properties or {}).get("name") or "",
                 "sku": (p.properties or {}).get("hs_sku") or ""}
                for p in follow_pages(fetch, "HubSpot products")]

    def notify_owner(self, installation: Any, deal_id: str, owner_id: str | None,
                     subject: str, body: str) -> str:
        """A HubSpot task on the deal, assigned to its owner."""
        from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate

        client = self._client(installation)
        properties = {"hs_task_subject": subject, "hs_task_body": body,
                      "hs_timestamp": str(int(time.time() * 1000)), "hs_task_status": "NOT_STARTED",
                      "hs_task_priority": "HIGH"}
        if owner_id:
            properties["hubspot_owner_id"] = owner_id
        task = SimplePublicObjectInputForCreate(properties=properties, associations=[{
            "to": {"id": deal_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}]}])
        return str(self._call(installation, "task", client.crm.objects.tasks.basic_api.create, task).id)

    # -- companies (the company page) --------------------------------------------------------

    def fetch_company(self, installation: Any, company_id: str) -> dict[str, str]:
        client = self._client(installation)
        properties = _company_properties(installation)
        company = self._call(installation, "company", client.crm.companies.basic_api.get_by_id,
                             company_id, properties=list(properties.values()), archived=ARCHIVED_NO)
        values = company.properties or {}
        # HubSpot leaves out a requested property that does not exist and sends null for one
        # that exists but is empty: a missing key is a field this portal cannot hold.
        return {field: values[name] or "" for field, name in properties.items() if name in values}

    def update_company(self, installation: Any, company_id: str,
                       fields: Mapping[str, str]) -> None:
        from hubspot.crm.companies import SimplePublicObjectInput

        properties = _company_properties(installation)
        unknown = set(fields) - (set(properties) - {"domain"})  # HubSpot derives it: not ours
        if unknown:
            raise ValueError(f"HubSpot companies have no writable field for {sorted(unknown)}")
        if not fields:
            return
        client = self._client(installation)
        self._call(installation, "company update", client.crm.companies.basic_api.update,
                   company_id, SimplePublicObjectInput(
                       properties={properties[f]: value for f, value in fields.items()}))

    # -- companies in batches (two-way contact sync, app.contact_sync) -----------------------

    def fetch_companies(self, installation: Any, company_ids: Sequence[str],
                        extra: Mapping[str, str] | None = None) -> dict[str, CompanyRecord | None]:
        """companies-v3.json POST /crm/v3/objects/companies/batch/read, 100 ids a call (the
        SDK's companies.batch_api.read); each result's `updatedAt` is the record's version.
        An id HubSpot does not return is gone (None)."""
        from hubspot.crm.companies import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        client = self._client(installation)
        properties = {**_company_properties(installation), **(extra or {})}
        return self._batch_read(installation, "companies", client.crm.companies.batch_api,
                                (SimplePublicObjectId, BatchReadInputSimplePublicObjectId),
                                properties, company_ids)

    def update_companies(self, installation: Any, updates: Mapping[str, Mapping[str, str]],
                         extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        """companies-v3.json POST /crm/v3/objects/companies/batch/update, 100 a call (the
        SDK's companies.batch_api.update); each answer's `updatedAt` is the version written.
        ValueError for a field HubSpot cannot hold, before any call."""
        from hubspot.crm.companies import (
            BatchInputSimplePublicObjectBatchInput,
            SimplePublicObjectBatchInput,
        )

        properties = {**_company_properties(installation), **(extra or {})}
        writable = set(properties) - {"domain"}  # HubSpot derives it: not ours
        client = self._client(installation)
        return self._batch_update(installation, "companies", client.crm.companies.batch_api,
                                  (SimplePublicObjectBatchInput,
                                   BatchInputSimplePublicObjectBatchInput),
                                  properties, writable, updates)

    def companies_changed_since(self, installation: Any, since: Any) -> Any:
        """Pages of companies modified at or after `since` (crm_adapters.changes): the
        contact sync safety net's read, through the 110/10 s window and the search window."""
        from hubspot.crm.companies import PublicObjectSearchRequest

        from crm_adapters.changes import MODIFIED

        client = self._client(installation)
        return self._changed_since(installation, "company search",
                                   client.crm.companies.search_api, PublicObjectSearchRequest,
                                   since, MODIFIED)

    def _changed_since(self, installation: Any, noun: str, search_api: Any, request_model: Any,
                       since: Any, modified: str) -> Any:
        """crm_adapters.changes.hubspot_changed through one object type's search API (the
        SDK's `search_api` and its PublicObjectSearchRequest model)."""
        from crm_adapters.changes import hubspot_changed

        def search(body: dict[str, Any]) -> Any:
            return self._call(installation, noun, search_api.do_search,
                              public_object_search_request=request_model(
                                  filter_groups=body["filterGroups"], sorts=body["sorts"],
                                  properties=body["properties"], limit=body["limit"],
                                  after=body["after"]))

        search_limiter = self._search_limiter(installation) if self._search_limiter else None
        return hubspot_changed(search, since, search_limiter, modified)

    # -- every company, and new ones (the initial contact match, app.contact_sync.initial) ---

    def company_page(self, installation: Any, after: str | None,
                     extra: Mapping[str, str] | None = None,
                     ) -> tuple[list[CompanyRecord], str | None]:
        """One page of every company: companies-v3.json GET /crm/v3/objects/companies,
        `limit` 100 (the most the docs allow), `after` from `paging.next.after` (absent on
        the last page: None). The caller saves the token after each page."""
        client = self._client(installation)
        properties = {**_company_properties(installation), **(extra or {})}
        page = self._call(installation, "companies", client.crm.companies.basic_api.get_page,
                          limit=BATCH, after=after,
                          properties=list(dict.fromkeys(properties.values())),
                          archived=ARCHIVED_NO)
        records = [CompanyRecord(str(c.id), {f: (c.properties or {})[n] or ""
                                             for f, n in properties.items()
                                             if n in (c.properties or {})},
                                 _aware(c.updated_at)) for c in page.results or []]
        return records, _next_after(page.paging)

    def create_companies(self, installation: Any, companies: Sequence[Mapping[str, str]],
                         extra: Mapping[str, str] | None = None) -> list[tuple[str, Any]]:
        """companies-v3.json POST /crm/v3/objects/companies/batch/create, 100 a call; each new
        company's (id, updatedAt) in the order given (lined up by the `name` each result
        carries: the docs do not promise the order of `results`; ("", None) for one the
        answer lacks). ValueError for a field HubSpot cannot hold."""
        from hubspot.crm.companies import (
            BatchInputSimplePublicObjectBatchInputForCreate,
            SimplePublicObjectBatchInputForCreate,
        )

        properties = {**_company_properties(installation), **(extra or {})}
        writable = set(properties) - {"domain"}
        unknown = {f for fields in companies for f in fields} - writable
        if unknown:
            raise ValueError(f"HubSpot companies have no writable field for {sorted(unknown)}")
        client = self._client(installation)
        ids: list[tuple[str, Any]] = []
        for start in range(0, len(companies), BATCH):
            chunk = companies[start:start + BATCH]
            body = BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
                SimplePublicObjectBatchInputForCreate(
                    properties={properties[f]: v for f, v in fields.items()}, associations=[])
                for fields in chunk])
            result = self._call(installation, "company creates",
                                client.crm.companies.batch_api.create, body)
            by_name: dict[str, list[tuple[str, Any]]] = {}
            for c in result.results or []:
                by_name.setdefault(_folded((c.properties or {}).get("name")), []).append(
                    (str(c.id), _aware(c.updated_at)))
            for fields in chunk:
                named = by_name.get(_folded(fields.get("name")), [])
                ids.append(named.pop(0) if named else ("", None))
        return ids

    def companies_named(self, installation: Any, names: Sequence[str]) -> dict[str, list[str]]:
        """Company ids by name (folded case): companies-v3.json POST .../companies/search, a
        filter `name` IN (lowercase values, 50 a call). Used before re-sending a create that
        may have reached HubSpot before a crash."""
        from hubspot.crm.companies import Filter, FilterGroup, PublicObjectSearchRequest

        client = self._client(installation)
        found: dict[str, list[str]] = {}
        wanted = sorted({_folded(n) for n in names if n.strip()})
        for start in range(0, len(wanted), 50):
            chunk = wanted[start:start + 50]
            body = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=[Filter(property_name="name", operator="IN",
                                                           values=chunk)])],
                properties=["name"], limit=200)
            result = self._call(installation, "company search",
                                client.crm.companies.search_api.do_search, body)
            for c in result.results or []:
                found.setdefault(_folded((c.properties or {}).get("name")), []).append(str(c.id))
        return found

    # -- who owns what (app.access) ----------------------------------------------------------

    def record_access(self, installation: Any, kind: str, record_id: str) -> RecordAccess:
        """The record's `hubspot_owner_id` (deals-v3.json / companies-v3.json GET
        /crm/v3/objects/{type}/{id}?properties=hubspot_owner_id; crm.objects.*.read scopes)."""
        client = self._client(installation)
        api = {"deal": client.crm.deals.basic_api,
               "person": client.crm.contacts.basic_api}.get(kind, client.crm.companies.basic_api)
        record = self._call(installation, f"{kind} owner", api.get_by_id, record_id,
                            properties=["hubspot_owner_id"], archived=ARCHIVED_NO)
        return RecordAccess(owner_id=(record.properties or {}).get("hubspot_owner_id") or None)

    def owner_ids_for_email(self, installation: Any, email: str) -> set[str]:
        """The owner ids of the HubSpot user with this email: GET /crm/v3/owners?email=
        (developers.hubspot.com/docs/api-reference/crm-owners-v3; scope crm.objects.owners.read,
        which Paydeck asks for). A deal's `hubspot_owner_id` is an owner id, not a user id."""
        client = self._client(installation)
        page = self._call(installation, "owners", client.crm.owners.owners_api.get_page,
                          email=email, limit=100, archived=ARCHIVED_NO)
        return {str(o.id) for o in page.results or [] if (o.email or "").casefold() == email.casefold()}

    # -- reads ------------------------------------------------------------------------------

    def _read(self, installation: Any, api: Any, ids: Sequence[str], properties: list[str],
              what: str) -> dict[str, dict[str, Any]]:
        from hubspot.crm.deals import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), BATCH):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in unique[start:start + BATCH]],
                properties=properties, properties_with_history=[])
            result = self._call(installation, what, api.read, body)
            found.update({o.id: o.properties or {} for o in result.results})
        return found

    def _associated(self, installation: Any, client: Any, deal_ids: Sequence[str],
                    to: str) -> dict[str, list[str]]:
        from hubspot.crm.associations.v4 import (
            BatchInputPublicFetchAssociationsBatchRequest,
            PublicFetchAssociationsBatchRequest,
        )

        # associations-v4.json batch/read: each result pages on its own - "The 'after' field in
        # a returned paging object can be added alongside the 'id' to retrieve the next page of
        # associations from that objectId ... 'paging' will only be present if there are more
        # pages". Inputs whose answer had a next page are asked again with their `after` until
        # none has one; a repeated token is refused per deal (PagingLoop).
        found: dict[str, list[str]] = {}
        seen: dict[str, set[str]] = {}
        wanted: list[tuple[str, str | None]] = [(i, None) for i in dict.fromkeys(deal_ids)]
        while wanted:
            chunk, wanted = wanted[:BATCH], wanted[BATCH:]
            body = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i, after=a) for i, a in chunk])
            result = self._call(installation, f"deal {to}", client.crm.associations.v4.batch_api.get_page,
                                "deals", to, body)
            for row in result.results:
                deal_id = str(row._from.id)
                found.setdefault(deal_id, []).extend(str(t.to_object_id) for t in row.to)
                after = _next_after(row.paging)
                if after is not None:
                    if after in seen.setdefault(deal_id, set()):
                        raise PagingLoop(f"HubSpot deal {deal_id} {to}: repeated page token {after!r}")
                    seen[deal_id].add(after)
                    wanted.append((deal_id, after))
        # An object on two pages is still one association (one line item, never two).
        return {deal_id: list(dict.fromkeys(ids)) for deal_id, ids in found.items()}


def _next_after(paging: Any) -> str | None:
    """`paging.next.after`, or None on the last page (HubSpot leaves `paging` out then)."""
    following = getattr(paging, "next", None) if paging is not None else None
    return getattr(following, "after", None) or None


def _aware(moment: Any) -> Any:
    """The SDK's datetime as aware UTC (it parses HubSpot's ISO text with its zone)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        return to_moment(moment)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else \
        moment.astimezone(timezone.utc)


def _folded(name: Any) -> str:
    return " ".join(str(name or "").split()).casefold()


def _company_properties(installation: Any) -> dict[str, str]:
    tax_property = tax_number_field(installation)
    return {**COMPANY_FIELD_PROPERTIES, **({"tax_number": tax_property} if tax_property else {})}


def _firsts(associations: dict[str, list[str]]) -> list[str]:
    return [ids[0] for ids in associations.values() if ids]


# On an open deal `closedate` is a forecast (HubSpot defaults it to the end of the month the
# deal was created in); HubSpot sets it to the moment a deal enters a closed stage
# (knowledge.hubspot.com "HubSpot's default deal properties", Close date). So it dates the
# invoice only once `hs_is_closed_won` (HubSpot's calculated "Is Closed Won") is true.
DEAL_CLOSE_PROPERTIES = ["hs_is_closed_won"]


def _deal(deal_id: str, props: dict[str, Any] | None, companies: dict[str, dict[str, Any]],
          contacts: dict[str, dict[str, Any]], lines: dict[str, dict[str, Any]],
          companies_of: dict[str, list[str]], contacts_of: dict[str, list[str]],
          lines_of: dict[str, list[str]], tax_property: str | None) -> Deal | None:
    if props is None:
        return None
    company_id = next(iter(companies_of.get(deal_id, [])), None)
    contact_id = next(iter(contacts_of.get(deal_id, [])), None)
    return Deal(
        id=deal_id, name=props.get("dealname") or f"Deal {deal_id}",
        amount=to_decimal(props.get("amount")), currency=props.get("deal_currency_code") or None,
        pipeline_id=props.get("pipeline") or "", stage_id=props.get("dealstage") or "",
        owner_id=props.get("hubspot_owner_id") or None, close_date=to_date(props.get("closedate")),
        closed_at=to_moment(props.get("closedate")) if props.get("hs_is_closed_won") == "true" else None,
        lines=tuple(_line(lines[i]) for i in lines_of.get(deal_id, []) if i in lines),
        organisation=_organisation(company_id, companies.get(company_id or ""), tax_property),
        person=_person(contact_id, contacts.get(contact_id or "")))


def _line(p: dict[str, Any]) -> LineItem:
    quantity = to_decimal(p.get("quantity"))
    price = to_decimal(p.get("price")) or Decimal(0)
    percent, off, problem = _discount(p, quantity or Decimal(0), price)
    return LineItem(name=p.get("name") or "", quantity=quantity or Decimal(0), unit_price=price,
                    product_id=p.get("hs_product_id") or None, sku=p.get("hs_sku") or None,
                    description=p.get("description") or "",
                    discount_percent=percent, discount_amount=off,
                    tax_label=p.get("hs_tax_label") or None,
                    crm_total=to_decimal(p.get("amount")),
                    problem="HubSpot has no quantity on the line" if quantity is None else problem)


def _discount(p: dict[str, Any], quantity: Decimal, price: Decimal
              ) -> tuple[Decimal | None, Decimal | None, str]:
    """(percent, whole-line amount, problem). HubSpot's `discount` is an amount off EACH UNIT
    ("Unit discount", knowledge.hubspot.com/properties/hubspots-default-line-item-properties;
    platform-facts), so Xero gets quantity x discount as the line's DiscountAmount;
    `hs_discount_percentage` is a percentage of the whole line (quantity x price), which is
    Xero's DiscountRate (help.hubdo.com "How HubSpot calculates ... net pricing when discounted
    by percentage": 10 x 234.56 at 20% = 1,876.48). HubSpot's docs do not say which wins when
    both are set, so HubSpot's own computed `amount` decides: the one that gives it is used;
    neither (or no `amount`) is a review item."""
    unit_off = to_decimal(p.get("discount")) or None
    percent = to_decimal(p.get("hs_discount_percentage")) or None
    if unit_off is None or percent is None:
        return percent, None if unit_off is None else unit_off * quantity, ""
    gross = quantity * price
    by_amount, by_percent = gross - unit_off * quantity, gross * (100 - percent) / 100
    amount = to_decimal(p.get("amount"))
    if amount is None:
        return None, None, (f"both a unit discount ({unit_off}) and a discount percentage "
                            f"({percent}%), and no HubSpot amount to tell which one applies")
    if cents(amount) == cents(by_amount):
        return None, unit_off * quantity, ""
    if cents(amount) == cents(by_percent):
        return percent, None, ""
    return None, None, (f"both a unit discount ({unit_off}) and a discount percentage "
                        f"({percent}%), and HubSpot's amount {amount} matches neither")


def _organisation(company_id: str | None, p: dict[str, Any] | None,
                  tax_property: str | None) -> Organisation | None:
    if company_id is None or p is None or not p.get("name"):
        return None
    address = Address(line1=p.get("address") or "", line2=p.get("address2") or "",
                      city=p.get("city") or "", region=p.get("state") or "",
                      postal_code=p.get("zip") or "", country=p.get("country") or "")
    return Organisation(id=company_id, name=p["name"], phone=p.get("phone") or "",
                        tax_number=(p.get(tax_property) or "") if tax_property else "", address=address)


def _person(contact_id: str | None, p: dict[str, Any] | None) -> Person | None:
    if contact_id is None or p is None:
        return None
    name = " ".join(x for x in (p.get("firstname"), p.get("lastname")) if x) or p.get("email") or ""
    return Person(id=contact_id, name=name, email=p.get("email") or "", phone=p.get("phone") or "")


def _properties(u: InvoiceFields) -> dict[str, str]:
    return {FIELDS[attr][0]: ("" if value is None else str(value))
            for attr, value in vars(u).items() if attr in FIELDS and value is not None}
