"""Pipedrive: install identity, webhooks, deals in, invoice fields out (API v2)."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from requests_oauthlib import OAuth2Session

from crm_adapters.base import (CrmError, CrmRetryLater, classify_status, follow_pages, load_json,
                               tax_number_field)
from crm_adapters.limits import CrmLimiter
from crm_adapters.pipedrive_persons import PipedrivePersons
from domain.crm import (AccountIdentity, CompanyEvent, CompanyRecord, InvoiceFields, ParsedWebhook, RecordAccess, StageEvent,
                        WebhookRejected, WebhookRequest)
from domain.dates import to_date, to_moment
from domain.deals import Address, Deal, LineItem, Organisation, Person
from domain.loopback import LOOPBACK, allow_plain_http_on_loopback, is_loopback
from domain.money import cents, to_decimal


@dataclass(frozen=True)
class UserProfile:
    """A Pipedrive user as GET /v1/users/{id} describes them."""

    is_admin: bool
    email: str
    locale: str = ""  # "en_US"
    timezone: str = ""  # IANA, "Europe/Berlin"


@dataclass(frozen=True)
class PipedriveConfig:
    """What the Pipedrive adapter reads of Paydeck's settings (app/wiring.py builds it)."""

    oauth_base: str  # on loopback only in the sandbox, where a loopback api_domain is allowed
    timeout: float  # seconds, every call


def checked_api_domain(value: str, oauth_base: str) -> str:
    """The company's API origin from the token response, if it is Pipedrive's: https on a
    pipedrive.com host, no credentials, path or port of its own. Plain http only for the
    loopback sandbox (when Paydeck's Pipedrive OAuth base is itself on loopback). Anything
    else would send the company's bearer token to a host of someone else's choosing."""
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    clean = not (parts.username or parts.password or parts.query or parts.fragment
                 or parts.path.strip("/"))
    pipedrive = (parts.scheme == "https" and parts.port is None
                 and (host == "pipedrive.com" or host.endswith(".pipedrive.com")))
    sandbox = parts.scheme == "http" and host in LOOPBACK and is_loopback(oauth_base)
    if not clean or not (pipedrive or sandbox):
        raise CrmError(f"Pipedrive token response has an api_domain that is not Pipedrive's: {value!r:.100}")
    return f"{parts.scheme}://{parts.netloc}"


def identify(config: PipedriveConfig, token: dict[str, object]) -> AccountIdentity:
    """The company behind a token: GET {api_domain}/api/v1/users/me -> data.company_id.

    The token response carries `api_domain`, the company's own base URL (platform-facts).
    """
    api_domain = checked_api_domain(str(token.get("api_domain") or ""), config.oauth_base)
    try:
        response = requests.get(f"{api_domain}/api/v1/users/me", timeout=config.timeout,
                                headers={"Authorization": f"Bearer {token['access_token']}"})
    except requests.RequestException as exc:
        raise CrmError(f"Pipedrive unreachable: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise CrmError(f"Pipedrive users/me answered {response.status_code}", response.status_code)
    data = response.json()["data"]
    return AccountIdentity(account_id=str(data["company_id"]),
                           account_name=data.get("company_name", ""),
                           user=data.get("email", ""), api_domain=api_domain)


# --- webhooks ---------------------------------------------------------------------------------
# Pipedrive webhooks authenticate with HTTP Basic only, no signature (pipedrive.readme.io
# webhooks-v2): every installation has its own random user and password, compared in
# constant time. Body: {meta, data, previous}; `previous` holds only the changed fields.

def verify_webhook(req: WebhookRequest, user: str, password: str | None) -> None:
    verify_basic_auth(req.headers, user, password)


def verify_basic_auth(headers: Mapping[str, str], user: str, password: str | None) -> None:
    """The installation's own Basic credentials, compared in constant time. An installation
    with none (unknown, uninstalled) is compared against random ones, so that the answer and
    its timing are the same as for a wrong password: ids cannot be enumerated."""
    known = bool(user and password)
    if not known:
        user, password = secrets.token_hex(16), secrets.token_hex(32)
    header = headers.get("Authorization", "")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if not hmac.compare_digest(header.encode(), expected.encode()) or not known:
        raise WebhookRejected(401, "bad credentials")


def parse_webhook(req: WebhookRequest) -> ParsedWebhook:
    """One event per request; Paydeck acts when a deal's stage_id changed (or a deal was
    created in a stage)."""
    payload = load_json(req.body)
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or not isinstance(payload.get("data") or {}, dict):
        raise WebhookRejected(400, "body has no meta object")
    data = payload.get("data") or {}
    previous = payload.get("previous") or {}
    if meta.get("entity") == "person":
        return _organization_event(meta, data, {})
    if meta.get("entity") == "organization":
        return _organization_event(meta, data, previous if isinstance(previous, dict) else {})
    changed_stage = meta.get("action") == "change" and isinstance(previous, dict) and "stage_id" in previous
    created = meta.get("action") == "create"
    if (meta.get("entity") != "deal" or not (changed_stage or created)
            or data.get("stage_id") in (None, "") or not meta.get("entity_id")):
        return ParsedWebhook([], 1)
    key = str(meta.get("id") or meta.get("correlation_id") or "")
    if not key:
        raise WebhookRejected(400, "event has no id")
    return ParsedWebhook([StageEvent(account_id=str(meta.get("company_id", "")),
                                     deal_id=str(meta["entity_id"]), stage_id=str(data["stage_id"]),
                                     event_key=key)], 0)


def _organization_event(meta: dict[str, Any], data: dict[str, Any],
                        previous: dict[str, Any]) -> ParsedWebhook:
    """An organization created, changed or deleted, or a person (B2C deals' contacts: created
    or changed; list-of-webhooks-v2 "person | ...a person is added, deleted, has changed"),
    for two-way contact sync. meta.change_source is "app" (the web app) or "api"
    (developers.pipedrive.com changelog "New field for webhooks"); `data.update_time` is the
    record's version after the change.

    A merge: "The merged event action from v1 is unavailable in v2 ... you'll receive two
    webhooks - one for the deleted object and another for the changed object. The deleted
    object event meta block will contain a merged_to_id" (pipedrive.readme.io/docs/
    webhooks-v2-migration-guide, "Critical things to note"). So a delete with a merged_to_id
    is a merge into that organization, and one without is a deletion. Unverified: the guide
    names only the meta block; `previous.merged_to_id` (the deleted organization's last state)
    is read too, should it arrive there instead."""
    action = meta.get("action")
    person = meta.get("entity") == "person"
    actions = ("create", "change") if person else ("create", "change", "delete")
    if action not in actions or not meta.get("entity_id"):
        return ParsedWebhook([], 1)
    key = str(meta.get("id") or meta.get("correlation_id") or "")
    if not key:
        raise WebhookRejected(400, "event has no id")
    account, company = str(meta.get("company_id", "")), str(meta["entity_id"])
    at = to_moment(meta.get("timestamp"))
    if action == "delete":
        merged_to = meta.get("merged_to_id") or previous.get("merged_to_id")
        if merged_to not in (None, "") and str(merged_to) != company:
            return ParsedWebhook([], 0, [CompanyEvent(
                account_id=account, company_id=str(merged_to), event_key=key, kind="merged",
                merged_ids=(company,), occurred_at=at)])
        return ParsedWebhook([], 0, [CompanyEvent(account_id=account, company_id=company,
                                                  event_key=key, kind="deleted",
                                                  occurred_at=at)])
    return ParsedWebhook([], 0, [CompanyEvent(
        account_id=account, company_id=company,
        event_key=key, via_api=meta.get("change_source") == "api",
        version=to_moment(data.get("update_time")), occurred_at=at,
        object_type="person" if person else "company")])


# --- deals in, invoice fields out (API v2 through a requests-oauthlib session) -------------------

# Paydeck's own deal fields, created at install; Pipedrive keys custom fields by a hash.
FIELDS: dict[str, tuple[str, str]] = {  # InvoiceFields attribute -> (field name, field type)
    "invoice_number": ("Xero invoice number", "varchar"),
    "invoice_status": ("Xero invoice status", "varchar"),
    "amount_due": ("Amount due", "double"),
    "amount_paid": ("Amount paid", "double"),
    "due_date": ("Invoice due date", "date"),
    "paid_date": ("Invoice paid date", "date"),
    "invoice_url": ("Xero invoice link", "varchar"),
    "last_sync_error": ("Paydeck sync error", "varchar"),
}
# Token costs (platform-facts): PATCH a deal 5, GET deal products 10, other GETs 1.
BATCH = 100
# The app webhooks Paydeck registers at install: (event_object, event_action).
WEBHOOKS = (("deal", "change"), ("deal", "create"), ("organization", "change"),
            ("organization", "create"), ("organization", "delete"), ("person", "change"),
            ("person", "create"))
# "All v2 API list endpoints" page by cursor: `cursor` and `limit` ("If not provided, 100
# items will be returned", "The maximum limit value is 500"); the response's
# `additional_data.next_cursor` marks the next page, null on the last
# (pipedrive.readme.io/docs/core-api-concepts-pagination). Every v2 list Paydeck reads is
# followed to its end: a deal's lines past the first page must never be dropped.
PAGE_LIMIT = 500

# COMPANY_FIELDS -> the part of a v2 organization's `address` object (pipedrive/client-nodejs
# src/versions/v2/models/organization-item-address.ts). The street goes into `route` whole:
# Xero and our other sources have street lines, not a number and a route.
ADDRESS_PARTS = {"street": ("street_number", "route"), "city": ("locality",),
                 "region": ("admin_area_level_1",), "postal_code": ("postal_code",),
                 "country": ("country",)}
# Pipedrive organizations have no phone field (v2 UpdateOrganizationRequest in
# pipedrive/client-nodejs: name, owner_id, visible_to, label_ids, address, website, linkedin,
# industry, annual_revenue, employee_count, custom_fields), so "phone" is not one of ours here.


class PipedriveCrm(PipedrivePersons):
    """The CrmAdapter for Pipedrive."""

    def __init__(self, token: Callable[[Any], str], limiter: Callable[[Any], CrmLimiter],
                 config: Callable[[], PipedriveConfig]) -> None:
        self._token, self._limiter, self._config = token, limiter, config
        self.calls = 0
        self.tokens = 0

    def _request(self, installation: Any, method: str, path: str, cost: int = 1,
                 **kwargs: Any) -> Any:
        """One call; its `data`."""
        return self._send(installation, method, path, cost, **kwargs).get("data")

    def _list(self, installation: Any, path: str, cost: int,
              params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every record of a v2 list, page by page (`cursor` / `additional_data.next_cursor`);
        each page costs the list's tokens again."""
        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            query = {**(params or {}), "limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
            body = self._send(installation, "GET", path, cost, params=query)
            return list(body.get("data") or []), (body.get("additional_data") or {}).get("next_cursor")
        return follow_pages(fetch, f"Pipedrive GET {path}")

    def _send(self, installation: Any, method: str, path: str, cost: int = 1,
              **kwargs: Any) -> dict[str, Any]:
        """One call through the shared limiter, with a timeout; failures typed. The whole body."""
        # The burst limit counts requests per rolling 2 s; `cost` is Pipedrive's token price
        # against the daily budget, tallied for benchmarks and diagnostics.
        self._limiter(installation).take()
        self.tokens += cost
        self.calls += 1
        url = f"{installation.api_domain}{path}"
        allow_plain_http_on_loopback(url)  # the sandbox's fake; a real api_domain is https
        session = OAuth2Session(token={"access_token": self._token(installation), "token_type": "Bearer"})
        try:
            response = session.request(method, url,
                                       timeout=self._config().timeout, **kwargs)
        except requests.RequestException as exc:
            raise CrmRetryLater(f"Pipedrive unreachable on {method} {path}: {exc.__class__.__name__}",
                                30.0) from exc
        if response.status_code >= 400:
            raise classify_status("Pipedrive", response.status_code,
                                  response.headers.get("Retry-After"), f"{method} {path}")
        body: dict[str, Any] = response.json()
        return body

    # -- who the user is ---------------------------------------------------------------------

    def user_is_admin(self, installation: Any, user_id: str) -> tuple[bool, str]:
        """(is_admin, email) of a user of the company (see `user_profile`)."""
        profile = self.user_profile(installation, user_id)
        return profile.is_admin, profile.email

    def user_profile(self, installation: Any, user_id: str) -> UserProfile:
        """Who a user of the company is: v1 GetUser
        (developers.pipedrive.com/docs/api/v1/Users#getUser). `is_admin` is a boolean there,
        1/0 in some answers, so only true or 1 counts; `locale` ("en_US") and `timezone_name`
        (IANA, "Europe/Berlin") are the user's own settings ("" when absent)."""
        if not (user_id.isascii() and user_id.isdigit()):
            return UserProfile(False, "")
        data = self._request(installation, "GET", f"/api/v1/users/{user_id}", 2) or {}
        return UserProfile(data.get("is_admin") in (True, 1), str(data.get("email") or ""),
                           str(data.get("locale") or ""), str(data.get("timezone_name") or ""))

    # -- who owns and may see a record (app.access) ------------------------------------------

    def record_access(self, installation: Any, kind: str, record_id: str) -> RecordAccess:
        """`owner_id` and `visible_to` of a deal or organization: v2 GetDeal / GetOrganization
        (pipedrive/client-php docs/versions/v2/Model/DealItem.md, OrganizationItem.md: both
        ints). A record the app's token may not see answers 403 (developers.pipedrive.com
        changelog "introducing-pipeline-visibility"), a missing one 404: both are CrmError."""
        path = {"deal": f"/api/v2/deals/{record_id}",
                "person": f"/api/v2/persons/{record_id}"}.get(
                    kind, f"/api/v2/organizations/{record_id}")
        data = self._request(installation, "GET", path, 1) or {}
        owner, visible = data.get("owner_id"), data.get("visible_to")
        return RecordAccess(owner_id=None if owner is None else str(owner),
                            visible_to=visible if isinstance(visible, int) else None)

    def deal_followers(self, installation: Any, deal_id: str) -> set[str]:
        """The user ids following a deal: v2 GET /deals/{id}/followers (client-php
        docs/versions/v2/Api/DealsApi.md getDealFollowers, scopes deals:read or deals:full;
        items are FollowerItem {user_id, add_time}, paged by cursor)."""
        return {str(f["user_id"]) for f in self._list(installation, f"/api/v2/deals/{deal_id}/followers", 1)
                if f.get("user_id") is not None}

    # -- webhooks (per installation: its own URL and Basic credentials) ----------------------

    def verify_webhook_headers(self, headers: Mapping[str, str], installation: Any | None) -> None:
        verify_basic_auth(headers, getattr(installation, "webhook_user", "") or "",
                          getattr(installation, "webhook_password", None))

    def verify_webhook(self, req: WebhookRequest, installation: Any | None) -> None:
        if installation is None:
            raise WebhookRejected(401, "no installation")
        verify_webhook(req, installation.webhook_user or "", installation.webhook_password)

    def parse_webhook(self, req: WebhookRequest) -> ParsedWebhook:
        return parse_webhook(req)

    # -- DealSource ------------------------------------------------------------------------

    def fetch_deals(self, installation: Any, deal_ids: Sequence[str]) -> dict[str, Deal | None]:
        deals: dict[str, dict[str, Any]] = {}
        lines: dict[str, dict[str, dict[str, Any]]] = {}
        for start in range(0, len(deal_ids), BATCH):
            chunk = ",".join(deal_ids[start:start + BATCH])
            for d in self._list(installation, "/api/v2/deals", 10, {"ids": chunk}):
                deals[str(d["id"])] = d
            # One flat list for up to 100 deals, 500 lines a page at most: follow every page.
            # A line is keyed by its own id, so one served on two pages is still one line.
            for line in self._list(installation, "/api/v2/deals/products", 10, {"deal_ids": chunk}):
                lines.setdefault(str(line["deal_id"]), {})[str(line["id"])] = line
        products = {deal_id: list(by_id.values()) for deal_id, by_id in lines.items()}
        skus = self._by_ids(installation, "products", {l.get("product_id") for ls in products.values() for l in ls})
        orgs = self._by_ids(installation, "organizations", {d.get("org_id") for d in deals.values()})
        persons = self._by_ids(installation, "persons", {d.get("person_id") for d in deals.values()})
        tax_field = tax_number_field(installation)
        return {i: _deal(deals[i], products.get(i, []), skus, orgs, persons, tax_field)
                if i in deals else None for i in deal_ids}

    def write_invoice_fields(self, installation: Any, updates: Sequence[InvoiceFields]) -> None:
        codes = installation.crm_fields or {}
        merged = {u.deal_id: u for u in updates}
        for u in merged.values():
            custom = {codes[attr]: _field_value(attr, value) for attr, value in vars(u).items()
                      if attr in FIELDS and attr in codes and value is not None}
            if custom:
                self._request(installation, "PATCH", f"/api/v2/deals/{u.deal_id}", 5,
                              data=exact_json({"custom_fields": custom}),
                              headers={"Content-Type": "application/json"})

    # -- install ---------------------------------------------------------------------------

    def ensure_deal_fields(self, installation: Any) -> dict[str, str]:
        """Create Paydeck's deal fields (keeping existing ones); returns attr -> field hash."""
        existing = {f.get("field_name"): f.get("field_code") for f in
                    self._list(installation, "/api/v2/dealFields", 10)}
        codes: dict[str, str] = {}
        for attr, (name, kind) in FIELDS.items():
            code = existing.get(name)
            if not code:
                code = self._request(installation, "POST", "/api/v2/dealFields", 5,
                                     json={"field_name": name, "field_type": kind})["field_code"]
            codes[attr] = code
        return codes

    def register_webhooks(self, installation: Any, url: str) -> None:
        """App webhooks for deal changes and creations, and organization and person changes
        and creations (two-way contact sync; list-of-webhooks-v2: "organization | ...an
        organization is added, deleted, has changed", likewise "person"), each with the installation's current
        Basic credentials. Pipedrive removes app webhooks on uninstall, but a hook at our URL
        that carries other credentials (a reinstall rotated them, or an uninstall whose
        removal we cannot see) would be refused with 401 forever: it is replaced. New hooks
        are made before stale ones go, so no event falls between the two."""
        ours = [w for w in self._request(installation, "GET", "/api/v1/webhooks", 1) or []
                if w.get("subscription_url") == url]
        current = {(w.get("event_object"), w.get("event_action")) for w in ours
                   if _has_credentials(w, installation)}
        for event_object, action in WEBHOOKS:
            if (event_object, action) not in current:
                self._request(installation, "POST", "/api/v1/webhooks", 1, json={
                    "subscription_url": url, "event_action": action,
                    "event_object": event_object,
                    # Required by v1 AddWebhookRequest (pipedrive/client-nodejs, 43929e5d).
                    "name": f"Paydeck: {event_object} {action}",
                    "version": "2.0", "http_auth_user": installation.webhook_user,
                    "http_auth_password": installation.webhook_password})
        for stale in (w for w in ours if not _has_credentials(w, installation)):
            self._request(installation, "DELETE", f"/api/v1/webhooks/{int(stale['id'])}", 1)

    def list_pipelines(self, installation: Any) -> list[dict[str, Any]]:
        pipelines = self._list(installation, "/api/v2/pipelines", 10)
        stages = self._list(installation, "/api/v2/stages", 10)
        return [{"id": str(p["id"]), "label": p.get("name", ""),
                 "stages": [{"id": str(s["id"]), "label": s.get("name", "")}
                            for s in sorted(stages, key=lambda s: s.get("order_nr", 0))
                            if s.get("pipeline_id") == p["id"]]} for p in pipelines]

    def list_products(self, installation: Any) -> list[dict[str, Any]]:
        return [{"id": str(p["id"]), "name": p.get("name") or "", "sku": p.get("code") or ""}
                for p in self._list(installation, "/api/v2/products", 10)]

    def notify_owner(self, installation: Any, deal_id: str, owner_id: str | None,
                     subject: str, body: str) -> str:
        """A Pipedrive activity on the deal, for its owner (needs the activities:full scope)."""
        payload: dict[str, Any] = {"subject": subject, "type": "task", "deal_id": int(deal_id),
                                   "note": body, "due_date": date.today().isoformat()}
        if owner_id:
            payload["owner_id"] = int(owner_id)
        return str(self._request(installation, "POST", "/api/v2/activities", 5, json=payload)["id"])

    # -- organizations (the company page) ------------------------------------------------------

    def fetch_company(self, installation: Any, company_id: str) -> dict[str, str]:
        org = self._request(installation, "GET", _org_path(company_id), 1) or {}
        return _company_fields(org, tax_number_field(installation))

    def update_company(self, installation: Any, company_id: str,
                       fields: Mapping[str, str]) -> None:
        """PATCH /api/v2/organizations/{id}. The address is one object that a PATCH replaces
        whole, so it is read first and the new parts merged in."""
        tax_field = tax_number_field(installation)
        writable = {"name", "website", *ADDRESS_PARTS, *(("tax_number",) if tax_field else ())}
        unknown = set(fields) - writable
        if unknown:
            raise ValueError(
                f"Pipedrive organizations have no writable field for {sorted(unknown)}")
        body: dict[str, Any] = {k: fields[k] for k in ("name", "website") if k in fields}
        if tax_field and "tax_number" in fields:
            body["custom_fields"] = {tax_field: fields["tax_number"]}
        if set(fields) & set(ADDRESS_PARTS):
            current = self._request(installation, "GET", _org_path(company_id), 1) or {}
            body["address"] = _merged_address(current.get("address") or {}, fields)
        if body:
            self._request(installation, "PATCH", _org_path(company_id), 5, json=body)

    # -- organizations in batches (two-way contact sync, app.contact_sync) -------------------

    def fetch_companies(self, installation: Any, company_ids: Sequence[str],
                        extra: Mapping[str, str] | None = None) -> dict[str, CompanyRecord | None]:
        """GET /api/v2/organizations?ids= (up to 100 a call); `update_time` is the version.
        `extra` keys are custom field keys of the organization."""
        wanted = [i for i in dict.fromkeys(company_ids)]
        orgs = self._by_ids(installation, "organizations", {i for i in wanted if i.isdigit()})
        found: dict[str, CompanyRecord | None] = {}
        for company_id in wanted:
            org = orgs.get(company_id)
            if org is None:
                found[company_id] = None
                continue
            fields = _company_fields(org, tax_number_field(installation))
            custom = org.get("custom_fields") or {}
            fields.update({k: str(custom.get(key) or "") for k, key in (extra or {}).items()
                           if key in custom})
            found[company_id] = CompanyRecord(company_id, fields, to_moment(org.get("update_time")))
        return found

    def update_companies(self, installation: Any, updates: Mapping[str, Mapping[str, str]],
                         extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One PATCH /api/v2/organizations/{id} each (v2 has no batch update of
        organizations); the answer's `update_time` is the version written. The address is
        merged into the current one, as `update_company` does."""
        extra = dict(extra or {})
        tax_field = tax_number_field(installation)
        writable = {"name", "website", *ADDRESS_PARTS, *(("tax_number",) if tax_field else ()),
                    *extra}
        unknown = {f for fields in updates.values() for f in fields} - writable
        if unknown:
            raise ValueError(
                f"Pipedrive organizations have no writable field for {sorted(unknown)}")
        versions: dict[str, Any] = {}
        for company_id, fields in updates.items():
            if not fields:
                continue
            body: dict[str, Any] = {k: fields[k] for k in ("name", "website") if k in fields}
            custom = {key: fields[k] for k, key in extra.items() if k in fields}
            if tax_field and "tax_number" in fields:
                custom[tax_field] = fields["tax_number"]
            if custom:
                body["custom_fields"] = custom
            if set(fields) & set(ADDRESS_PARTS):
                current = self._request(installation, "GET", _org_path(company_id), 1) or {}
                body["address"] = _merged_address(current.get("address") or {}, fields)
            answer = self._request(installation, "PATCH", _org_path(company_id), 5, json=body)
            versions[company_id] = to_moment((answer or {}).get("update_time"))
        return versions

    def companies_changed_since(self, installation: Any, since: Any) -> Any:
        """Pages of organizations updated at or after `since` (crm_adapters.changes): the
        contact sync safety net's read, 10 tokens a page as every v2 list."""
        from crm_adapters.changes import pipedrive_changed

        return pipedrive_changed(
            lambda params: self._send(installation, "GET", "/api/v2/organizations", 10,
                                      params=params), since)

    # -- every organization, and new ones (the initial contact match) -----------------------

    def company_page(self, installation: Any, cursor: str | None,
                     extra: Mapping[str, str] | None = None,
                     ) -> tuple[list[CompanyRecord], str | None]:
        """One page of every organization: GET /api/v2/organizations, `limit` PAGE_LIMIT (500,
        the most v2 allows), `cursor` from `additional_data.next_cursor` (null on the last
        page: None), sorted by id so a resumed cursor continues where it stopped."""
        query = {"limit": PAGE_LIMIT, "sort_by": "id", "sort_direction": "asc",
                 **({"cursor": cursor} if cursor else {})}
        body = self._send(installation, "GET", "/api/v2/organizations", 10, params=query)
        tax_field = tax_number_field(installation)
        records = []
        for org in body.get("data") or []:
            fields = _company_fields(org, tax_field)
            custom = org.get("custom_fields") or {}
            fields.update({k: str(custom.get(key) or "") for k, key in (extra or {}).items()
                           if key in custom})
            records.append(CompanyRecord(str(org["id"]), fields,
                                         to_moment(org.get("update_time"))))
        return records, (body.get("additional_data") or {}).get("next_cursor") or None

    def create_companies(self, installation: Any, companies: Sequence[Mapping[str, str]],
                         extra: Mapping[str, str] | None = None) -> list[tuple[str, Any]]:
        """One POST /api/v2/organizations each (pipedrive/client-nodejs v2 OrganizationsApi
        addOrganization; v2 has no batch create); each new (id, update_time), in order."""
        extra = dict(extra or {})
        tax_field = tax_number_field(installation)
        writable = {"name", "website", *ADDRESS_PARTS, *(("tax_number",) if tax_field else ()),
                    *extra}
        unknown = {f for fields in companies for f in fields} - writable
        if unknown:
            raise ValueError(
                f"Pipedrive organizations have no writable field for {sorted(unknown)}")
        ids = []
        for fields in companies:
            body: dict[str, Any] = {k: fields[k] for k in ("name", "website") if fields.get(k)}
            custom = {key: fields[k] for k, key in extra.items() if fields.get(k)}
            if tax_field and fields.get("tax_number"):
                custom[tax_field] = fields["tax_number"]
            if custom:
                body["custom_fields"] = custom
            if any(fields.get(p) for p in ADDRESS_PARTS):
                body["address"] = _merged_address({}, {p: fields[p] for p in ADDRESS_PARTS
                                                       if fields.get(p)})
            answer = self._request(installation, "POST", "/api/v2/organizations", 5,
                                   json=body) or {}
            ids.append((str(answer.get("id") or ""), to_moment(answer.get("update_time"))))
        return ids

    def companies_named(self, installation: Any, names: Sequence[str]) -> dict[str, list[str]]:
        """Organization ids by name (folded case): GET /api/v2/organizations/search with
        fields=name and exact_match=true ("not case sensitive"; client-nodejs v2
        searchOrganization), one call per name."""
        found: dict[str, list[str]] = {}
        for name in sorted({" ".join(n.split()) for n in names if n.strip()}):
            body = self._send(installation, "GET", "/api/v2/organizations/search", 20,
                              params={"term": name, "fields": "name", "exact_match": "true"})
            for hit in (body.get("data") or {}).get("items") or []:
                item = hit.get("item") or {}
                found.setdefault(" ".join(str(item.get("name") or "").split()).casefold(),
                                 []).append(str(item.get("id")))
        return found

    def _by_ids(self, installation: Any, kind: str, ids: set[Any]) -> dict[str, dict[str, Any]]:
        """Batch reads: v2 list endpoints take up to 100 `ids`."""
        wanted = sorted(str(i) for i in ids if i)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start:start + BATCH]
            for record in self._list(installation, f"/api/v2/{kind}", 10, {"ids": ",".join(chunk)}):
                found[str(record["id"])] = record
        return found


def _has_credentials(webhook: dict[str, Any], installation: Any) -> bool:
    """Whether a listed webhook carries the installation's current Basic user. The user is
    rotated with the password (app/views/install.py), so it identifies the pair without
    relying on Pipedrive echoing the password back (v1 BaseWebhook lists both fields)."""
    user = webhook.get("http_auth_user")
    return bool(user) and hmac.compare_digest(str(user), str(installation.webhook_user or ""))


def _org_path(company_id: str) -> str:
    if not company_id.isdigit():
        raise CrmError(f"{company_id!r} is not a Pipedrive organization id", 404)
    return f"/api/v2/organizations/{company_id}"


def _company_fields(org: dict[str, Any], tax_field: str | None) -> dict[str, str]:
    address = org.get("address") or {}
    typed = str(address.get("value") or "").strip()
    fields = {"name": str(org.get("name") or ""), "website": str(org.get("website") or "")}
    for field, parts in ADDRESS_PARTS.items():
        # Pipedrive keeps the address a rep typed (`value`) and the parts it geocoded from it.
        # A typed address with no part for this field still counts as filled: never write a
        # part that could contradict what the rep typed.
        fields[field] = " ".join(str(address.get(p) or "").strip() for p in parts
                                 if address.get(p)) or typed
    custom = org.get("custom_fields") or {}
    if tax_field and tax_field in custom:
        fields["tax_number"] = str(custom[tax_field] or "")
    return fields


def _merged_address(current: dict[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """`current`'s writable parts with the new ones; `value` (what the UI shows) formatted from
    the parts when nobody has typed one."""
    keys = ("value", "street_number", "route", "sublocality", "locality", "admin_area_level_1",
            "admin_area_level_2", "postal_code", "country")
    merged = {k: current.get(k) for k in keys if current.get(k)}
    for field, parts in ADDRESS_PARTS.items():
        if field in fields:
            merged[parts[-1]] = fields[field]
    if not merged.get("value"):
        street = " ".join(str(merged[p]) for p in ADDRESS_PARTS["street"] if merged.get(p))
        area = " ".join(str(merged[p]) for p in ("admin_area_level_1", "postal_code")
                        if merged.get(p))
        merged["value"] = ", ".join(x for x in (street, merged.get("locality"), area,
                                                merged.get("country")) if x)
    return merged


def _deal(d: dict[str, Any], lines: list[dict[str, Any]], products: dict[str, dict[str, Any]],
          orgs: dict[str, dict[str, Any]], persons: dict[str, dict[str, Any]],
          tax_field: str | None) -> Deal:
    org = orgs.get(str(d.get("org_id")))
    person = persons.get(str(d.get("person_id")))
    return Deal(
        id=str(d["id"]), name=d.get("title") or f"Deal {d['id']}", amount=to_decimal(d.get("value")),
        currency=d.get("currency") or None, pipeline_id=str(d.get("pipeline_id") or ""),
        stage_id=str(d.get("stage_id") or ""), owner_id=str(d.get("owner_id") or "") or None,
        close_date=to_date(d.get("expected_close_date")),
        closed_at=to_moment(d.get("won_time")),  # set only when won; expected_close_date is a forecast
        lines=tuple(_line(l, products.get(str(l.get("product_id")), {})) for l in lines
                    if l.get("is_enabled", True)),
        organisation=_organisation(org, tax_field), person=_person(person),
        amount_includes_tax=None)


def _line(l: dict[str, Any], product: dict[str, Any]) -> LineItem:
    quantity = to_decimal(l.get("quantity"))
    price = to_decimal(l.get("item_price")) or Decimal(0)
    percent, off, problem = _discount(l, quantity or Decimal(0), price)
    method = l.get("tax_method") or None
    if method not in (None, *TAX_METHODS):
        problem = problem or f"Pipedrive tax_method {method!r} is not one of {', '.join(TAX_METHODS)}"
    return LineItem(name=l.get("name") or product.get("name") or "",
                    quantity=quantity or Decimal(0), unit_price=price,
                    product_id=str(l["product_id"]) if l.get("product_id") else None,
                    sku=product.get("code") or None, description=l.get("comments") or "",
                    discount_percent=percent, discount_amount=off,
                    tax_label=_tax_label(l), tax_percent=to_decimal(l.get("tax")),
                    # No tax_method: Pipedrive "uses the user setting" (client docs), which the
                    # API does not show: "none" would be a guess, so the admin's setting applies.
                    tax_method=method,
                    problem="Pipedrive has no quantity on the product" if quantity is None else problem)


# Official client (pipedrive/client-php docs/versions/v2/Model/BaseDealProduct.md): `tax` is
# the tax percentage; `tax_method` inclusive = "the tax percentage will already be included
# in the price", exclusive = "the tax will not be included in the price", none = "no tax will
# be added"; `discount` is "the value of the discount", `discount_type` "percentage" | "amount".
TAX_METHODS = ("exclusive", "inclusive", "none")


def _discount(l: dict[str, Any], quantity: Decimal, price: Decimal
              ) -> tuple[Decimal | None, Decimal | None, str]:
    """(percent, whole-line amount, problem). The official client does not say whether an
    `amount` discount is per unit or for the line; Pipedrive's own `sum` (the line total it
    computed) decides: the reading that gives `sum` (with or without exclusive tax, which the
    docs also leave open) is used. With a quantity of 1 both readings agree."""
    value = to_decimal(l.get("discount")) or None
    if value is None:
        return None, None, ""
    if l.get("discount_type", "percentage") == "percentage":
        return value, None, ""
    if quantity == 1:
        return None, value, ""
    gross = quantity * price
    line_total = to_decimal(l.get("sum"))
    tax = to_decimal(l.get("tax")) or Decimal(0)
    factors = [Decimal(1)] + ([1 + tax / 100] if l.get("tax_method") == "exclusive" else [])
    for off in (value, value * quantity):  # per line, then per unit
        if line_total is not None and any(cents((gross - off) * f) == cents(line_total)
                                           for f in factors):
            return None, off, ""
    return None, None, (f"a discount of {value} whose Pipedrive sum ({line_total}) fits neither "
                        "a per-line nor a per-unit reading")


def _tax_label(l: dict[str, Any]) -> str | None:
    """A line's tax as a label for the admin's tax mapping: "10%", or "0%" for a line Pipedrive
    taxes at nothing (tax_method none). None when Pipedrive states no tax method."""
    if not l.get("tax_method"):
        return None
    rate = Decimal(0) if l.get("tax_method") == "none" else to_decimal(l.get("tax")) or Decimal(0)
    return f"{rate.normalize():f}%"


def _organisation(o: dict[str, Any] | None, tax_field: str | None) -> Organisation | None:
    if not o or not o.get("name"):
        return None
    a = o.get("address") or {}
    address = Address(line1=" ".join(x for x in (a.get("street_number"), a.get("route")) if x),
                      city=a.get("locality") or "", region=a.get("admin_area_level_1") or "",
                      postal_code=a.get("postal_code") or "", country=a.get("country") or "")
    tax = str((o.get("custom_fields") or {}).get(tax_field) or "") if tax_field else ""
    return Organisation(id=str(o["id"]), name=o["name"], tax_number=tax, address=address)


def _person(p: dict[str, Any] | None) -> Person | None:
    if not p:
        return None
    return Person(id=str(p["id"]), name=p.get("name") or "", email=_primary(p.get("emails")),
                  phone=_primary(p.get("phones")))


def _primary(values: Any) -> str:
    items = [v for v in values or [] if isinstance(v, dict) and v.get("value")]
    chosen = next((v for v in items if v.get("primary")), items[0] if items else None)
    return str(chosen["value"]) if chosen else ""


def _field_value(attr: str, value: Any) -> Any:
    """A deal field's value as its type takes it. Pipedrive's numerical custom fields
    ("double": "Numeric value", pipedrive.readme.io/docs/core-api-concepts-custom-fields) take a
    JSON number: the Decimal itself, written digit for digit by `exact_json` (never a float,
    which would turn 0.1 + 0.2 into 0.30000000000000004 and round large sums)."""
    if FIELDS[attr][1] == "double":
        return Decimal(value) if value != "" else None
    return value


def exact_json(body: Any) -> bytes:
    """`body` as JSON, each Decimal as a JSON number with exactly its digits ("3036.00", not
    3036.0 through a float). The standard encoder writes no Decimal, so each is written as a
    unique placeholder string first and the placeholder replaced by the number's text."""
    marker = f"\u0000dec{secrets.token_hex(8)}:"
    numbers: list[str] = []

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"not a number: {value}")
            numbers.append(format(value, "f"))
            return f"{marker}{len(numbers) - 1}"
        if isinstance(value, float):
            raise TypeError("amounts are Decimal, never float")
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    text = json.dumps(plain(body), ensure_ascii=False)
    escaped = json.dumps(marker)[1:-1]
    for index, number in enumerate(numbers):
        text = text.replace(f'"{escaped}{index}"', number, 1)
    return text.encode()
