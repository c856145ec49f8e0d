"""Pipedrive: install identity, webhooks, deals in, invoice fields out (API v2)."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import requests
from requests_oauthlib import OAuth2Session

from app.deals import Address, Deal, LineItem, Organisation, Person
from app.oauth import allow_plain_http_on_loopback
from app.settings import Settings
from crm_adapters.base import (
    AccountIdentity,
    CrmError,
    CrmRetryLater,
    InvoiceFields,
    classify_status,
    to_date,
    to_moment,
    to_decimal,
    ParsedWebhook,
    StageEvent,
    WebhookRejected,
    WebhookRequest,
)
from crm_adapters.limits import CrmLimiter


def identify(settings: Settings, token: dict[str, object]) -> AccountIdentity:
    """The company behind a token: GET {api_domain}/api/v1/users/me -> data.company_id.

    The token response carries `api_domain`, the company's own base URL (platform-facts).
    """
    api_domain = str(token.get("api_domain") or "").rstrip("/")
    if not api_domain.startswith(("https://", "http://")):
        raise CrmError("Pipedrive token response has no api_domain")
    try:
        response = requests.get(f"{api_domain}/api/v1/users/me", timeout=settings.http_timeout,
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
    if not user or not password:
        raise WebhookRejected(401, "installation has no webhook credentials")
    header = req.headers.get("Authorization", "")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if not hmac.compare_digest(header.encode(), expected.encode()):
        raise WebhookRejected(401, "bad credentials")


def parse_webhook(req: WebhookRequest) -> ParsedWebhook:
    """One event per request; Paydeck acts when a deal's stage_id changed (or a deal was
    created in a stage)."""
    try:
        payload = json.loads(req.body)
    except ValueError as exc:
        raise WebhookRejected(400, "body is not JSON") from exc
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or not isinstance(payload.get("data") or {}, dict):
        raise WebhookRejected(400, "body has no meta object")
    data = payload.get("data") or {}
    previous = payload.get("previous") or {}
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

# COMPANY_FIELDS -> the part of a v2 organization's `address` object (pipedrive/client-nodejs
# src/versions/v2/models/organization-item-address.ts). The street goes into `route` whole:
# Xero and our other sources have street lines, not a number and a route.
ADDRESS_PARTS = {"street": ("street_number", "route"), "city": ("locality",),
                 "region": ("admin_area_level_1",), "postal_code": ("postal_code",),
                 "country": ("country",)}
# Pipedrive organizations have no phone field (v2 UpdateOrganizationRequest in
# pipedrive/client-nodejs: name, owner_id, visible_to, label_ids, address, website, linkedin,
# industry, annual_revenue, employee_count, custom_fields), so "phone" is not one of ours here.


class PipedriveCrm:
    """The CrmAdapter for Pipedrive."""

    def __init__(self, token: Callable[[Any], str], limiter: Callable[[Any], CrmLimiter],
                 settings: Callable[[], Settings]) -> None:
        self._token, self._limiter, self._settings = token, limiter, settings
        self.calls = 0
        self.tokens = 0

    def _request(self, installation: Any, method: str, path: str, cost: int = 1,
                 **kwargs: Any) -> Any:
        """One call; its `data`."""
        return self._send(installation, method, path, cost, **kwargs).get("data")

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
                                       timeout=self._settings().http_timeout, **kwargs)
        except requests.RequestException as exc:
            raise CrmRetryLater(f"Pipedrive unreachable on {method} {path}: {exc.__class__.__name__}",
                                30.0) from exc
        if response.status_code >= 400:
            raise classify_status("Pipedrive", response.status_code,
                                  response.headers.get("Retry-After"), f"{method} {path}")
        body: dict[str, Any] = response.json()
        return body

    # -- webhooks (per installation: its own URL and Basic credentials) ----------------------

    def verify_webhook(self, req: WebhookRequest, installation: Any | None) -> None:
        if installation is None:
            raise WebhookRejected(401, "no installation")
        verify_webhook(req, installation.webhook_user or "", installation.webhook_password)

    def parse_webhook(self, req: WebhookRequest) -> ParsedWebhook:
        return parse_webhook(req)

    # -- DealSource ------------------------------------------------------------------------

    def fetch_deals(self, installation: Any, deal_ids: Sequence[str]) -> dict[str, Deal | None]:
        deals: dict[str, dict[str, Any]] = {}
        products: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(deal_ids), BATCH):
            chunk = ",".join(deal_ids[start:start + BATCH])
            for d in self._request(installation, "GET", "/api/v2/deals", 10,
                                   params={"ids": chunk, "limit": BATCH}) or []:
                deals[str(d["id"])] = d
            for line in self._request(installation, "GET", "/api/v2/deals/products", 10,
                                      params={"deal_ids": chunk, "limit": 500}) or []:
                products.setdefault(str(line["deal_id"]), []).append(line)
        skus = self._by_ids(installation, "products", {l.get("product_id") for ls in products.values() for l in ls})
        orgs = self._by_ids(installation, "organizations", {d.get("org_id") for d in deals.values()})
        persons = self._by_ids(installation, "persons", {d.get("person_id") for d in deals.values()})
        tax_field = _tax_field(installation)
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
                              json={"custom_fields": custom})

    # -- install ---------------------------------------------------------------------------

    def ensure_deal_fields(self, installation: Any) -> dict[str, str]:
        """Create Paydeck's deal fields (keeping existing ones); returns attr -> field hash."""
        existing = {f.get("field_name"): f.get("field_code") for f in
                    self._request(installation, "GET", "/api/v2/dealFields", 10,
                                  params={"limit": 500}) or []}
        codes: dict[str, str] = {}
        for attr, (name, kind) in FIELDS.items():
            code = existing.get(name)
            if not code:
                code = self._request(installation, "POST", "/api/v2/dealFields", 5,
                                     json={"field_name": name, "field_type": kind})["field_code"]
            codes[attr] = code
        return codes

    def register_webhooks(self, installation: Any, url: str) -> None:
        """App webhooks for deal changes and creations, each with the installation's own
        Basic credentials; Pipedrive removes them on uninstall."""
        present = {(w.get("event_action"), w.get("subscription_url")) for w in
                   self._request(installation, "GET", "/api/v1/webhooks", 1) or []}
        for action in ("change", "create"):
            if (action, url) not in present:
                self._request(installation, "POST", "/api/v1/webhooks", 1, json={
                    "subscription_url": url, "event_action": action, "event_object": "deal",
                    "version": "2.0", "http_auth_user": installation.webhook_user,
                    "http_auth_password": installation.webhook_password})

    def list_pipelines(self, installation: Any) -> list[dict[str, Any]]:
        pipelines = self._request(installation, "GET", "/api/v2/pipelines", 1) or []
        stages = self._request(installation, "GET", "/api/v2/stages", 1) or []
        return [{"id": str(p["id"]), "label": p.get("name", ""),
                 "stages": [{"id": str(s["id"]), "label": s.get("name", "")}
                            for s in sorted(stages, key=lambda s: s.get("order_nr", 0))
                            if s.get("pipeline_id") == p["id"]]} for p in pipelines]

    def list_products(self, installation: Any) -> list[dict[str, Any]]:
        products, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            session_page = self._send(installation, "GET", "/api/v2/products", 10, params=params)
            products += [{"id": str(p["id"]), "name": p.get("name") or "", "sku": p.get("code") or ""}
                         for p in session_page["data"] or []]
            cursor = (session_page.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return products

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
        return _company_fields(org, _tax_field(installation))

    def update_company(self, installation: Any, company_id: str,
                       fields: Mapping[str, str]) -> None:
        """PATCH /api/v2/organizations/{id}. The address is one object that a PATCH replaces
        whole, so it is read first and the new parts merged in."""
        tax_field = _tax_field(installation)
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

    def _by_ids(self, installation: Any, kind: str, ids: set[Any]) -> dict[str, dict[str, Any]]:
        """Batch reads: v2 list endpoints take up to 100 `ids`."""
        wanted = sorted(str(i) for i in ids if i)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start:start + BATCH]
            for record in self._request(installation, "GET", f"/api/v2/{kind}", 10,
                                        params={"ids": ",".join(chunk), "limit": BATCH}) or []:
                found[str(record["id"])] = record
        return found


def _tax_field(installation: Any) -> str | None:
    settings = getattr(installation, "settings", None)
    return getattr(settings, "tax_number_property", None) or None


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
        organisation=_organisation(org, tax_field), person=_person(person))


def _line(l: dict[str, Any], product: dict[str, Any]) -> LineItem:
    percent = l.get("discount_type") == "percentage"
    return LineItem(name=l.get("name") or product.get("name") or "",
                    quantity=to_decimal(l.get("quantity")) or Decimal(1),
                    unit_price=to_decimal(l.get("item_price")) or Decimal(0),
                    product_id=str(l["product_id"]) if l.get("product_id") else None,
                    sku=product.get("code") or None, description=l.get("comments") or "",
                    discount_percent=to_decimal(l.get("discount")) if percent else None,
                    discount_amount=None if percent else to_decimal(l.get("discount")),
                    tax_label=_tax_label(l))


def _tax_label(l: dict[str, Any]) -> str | None:
    """A line's tax as a label for the admin's tax mapping ("10%"); none when Pipedrive has no
    tax on the line (then the default tax rate applies)."""
    rate = to_decimal(l.get("tax"))
    if l.get("tax_method") == "none" or not rate:
        return None
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
    if FIELDS[attr][1] == "double":
        return float(value) if value != "" else None  # Pipedrive number fields are JSON numbers
    return value
