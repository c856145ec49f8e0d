"""Stateful fake of Pipedrive's company API, installed on every `FakePipedrive`.

Served on the fake's root, which is the ``api_domain`` the token response returns, so
a client calls ``{api_domain}/api/v2/deals/1`` exactly as in production.

What it models (sources: shared/notes/platform-facts.md "Pipedrive"; the API v2 models
of pipedrive/client-nodejs ``src/versions/v2``; pipedrive.readme.io guide-for-webhooks-v2,
webhooks-for-apps, core-api-concepts-rate-limiting):

- per-company data: a default pipeline, deals (with custom fields and products),
  organisations, persons, products, deal fields, activities - seeded by tests through
  ``fake.api.add_org(...)``, ``add_deal(...)`` and friends;
- API v2 reads and writes with v2 envelopes ``{"success", "data", "additional_data":
  {"next_cursor"}}`` and cursor pagination (``limit`` up to 500, opaque ``cursor``);
- OAuth scopes: each endpoint names the scopes that allow it (403 otherwise);
- token-based rate limits: a per-company daily token budget and a per-user burst
  limit over a rolling 2 s window, both on the fake clock, with ``x-ratelimit-*`` headers;
- injected faults (5xx, 429, slow) and a call log with the tokens each call cost;
- app webhooks (``/api/v1/webhooks``) delivering v2 payloads with HTTP Basic auth,
  retries at 3/30/150 s, the 10-failure ban, removal on uninstall, and optional
  background delivery for a live sandbox.

Not verified against real Pipedrive (cheap to change here if wrong; see the
constants): the error ``code`` strings, the daily-budget header name, whether a
success resets the webhook ban counter, what happens to pending retries when a hook
is banned, whether ``previous`` also lists derived timestamps, and how a deal
product's ``sum`` treats exclusive tax.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import requests
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from sandbox.kit.clock import Clock

if TYPE_CHECKING:
    from sandbox.pipedrive import FakePipedrive, PipedriveInstall

API_V1 = "/api/v1"
API_V2 = "/api/v2"
DAY_S = 86_400.0
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
DEFAULT_CURRENCY = "AUD"  # matches /users/me default_currency in sandbox/pipedrive.py
DEFAULT_PAGE_LIMIT = 100  # v2 docs: "If not provided, 100 items will be returned"
MAX_PAGE_LIMIT = 500  # v2 docs: "a maximum value of 500 is allowed"
MAX_IDS = 100  # v2 GET /deals `ids` and GET /deals/products `deal_ids`: up to 100
MAX_CUSTOM_FIELD_KEYS = 15  # v2 GET /deals `custom_fields`: "A maximum of 15 keys"
MAX_WEBHOOKS_PER_USER = 40  # webhooks-for-apps: 40 webhooks per app user
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
DAILY_BUDGET_HEADER = "x-daily-requests-left"
"""Remaining daily tokens. Unverified: the name is the pre-token-era daily header; the
token-based docs we have do not name a daily-budget header."""

DEFAULT_STAGES = ("Lead In", "Contact Made", "Proposal Made", "Negotiations Started", "Won")
"""The sandbox's default pipeline. Real Pipedrive tracks won/lost in a deal's `status`,
not a stage; "Won" is here as the custom stage many companies add."""

# Webhooks (guide-for-webhooks-v2: "Retry logic" and "Webhooks policy").
WEBHOOK_TIMEOUT_S = 10.0
RETRY_DELAYS_S = (3.0, 30.0, 150.0)
BAN_THRESHOLD = 10
BAN_S = 30 * 60.0
DELETE_AFTER_NO_SUCCESS_S = 3 * DAY_S
EVENT_ACTIONS = ("create", "change", "delete", "*")
EVENT_OBJECTS = (
    "activity",
    "deal",
    "lead",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "stage",
    "user",
    "*",
)

# Scopes (platform-facts; the v2 client's per-operation oauth scopes).
DEALS_READ = ("deals:read", "deals:full")
DEALS_WRITE = ("deals:full",)
CONTACTS_READ = ("contacts:read", "contacts:full")
CONTACTS_WRITE = ("contacts:full",)
PRODUCTS_READ = ("products:read", "products:full")
ADMIN = ("admin",)
WEBHOOKS_READ = ("admin", "webhooks:read", "webhooks:full")
WEBHOOKS_WRITE = ("admin", "webhooks:full")
ACTIVITIES_WRITE = ("activities:full",)
# GET /v1/users/{id}: Pipedrive's scope list names users:read ("read data about users");
# whether admin alone also allows it is not documented (unverified): both are accepted.
USERS_READ = ("users:read", "admin")

# `visible_to` codes (pipedrive/client-nodejs docs/AddOrUpdateRoleSettingRequest.md, the
# `default_visibility` values): Essential/Advanced plans 1 = owner & followers, 3 = entire
# company; Professional/Enterprise 1 = owner only, 3 = owner's visibility group, 5 = group and
# sub-groups, 7 = entire company. The fake stores the code it is given; 3 is the default here
# as it is on Essential/Advanced plans.
VISIBLE_TO = (1, 3, 5, 7)

DEFAULT_TOKEN_COSTS: dict[str, int] = {
    # platform-facts: GET deal 1, PATCH deal 5, GET deal products 10. The v2 reference
    # shows 1 for single reads and 10 for lists (e.g. /api/v2/dealFields); v1 costs
    # are about twice v2's (unverified guesses for the v1 rows).
    "GET /api/v2/deals": 10,
    "GET /api/v2/deals/products": 10,
    "GET /api/v2/deals/<deal_id>": 1,
    "PATCH /api/v2/deals/<deal_id>": 5,
    "GET /api/v2/deals/<deal_id>/products": 10,
    "GET /api/v2/deals/<deal_id>/followers": 10,  # a list, as other v2 lists (unverified)
    "GET /api/v2/products/<product_id>": 1,
    "GET /api/v2/organizations/<org_id>": 1,
    "PATCH /api/v2/organizations/<org_id>": 5,  # as PATCH deal (unverified for organizations)
    "GET /api/v2/persons/<person_id>": 1,
    "GET /api/v1/users/<user_id>": 2,  # as GET /v1/users/me (developers.pipedrive.com; unverified)
    # v2 list endpoints take `ids` (up to 100) for batch reads, like GET /api/v2/deals.
    "GET /api/v2/products": 10,
    "GET /api/v2/organizations": 10,
    "GET /api/v2/persons": 10,
    "GET /api/v2/stages": 10,
    "GET /api/v2/stages/<stage_id>": 1,
    "GET /api/v2/pipelines": 10,
    "GET /api/v2/pipelines/<pipeline_id>": 1,
    "GET /api/v2/dealFields": 10,
    "GET /api/v2/dealFields/<field_code>": 1,
    "POST /api/v2/dealFields": 5,
    "POST /api/v2/activities": 5,
    "POST /api/v1/activities": 10,
    "GET /api/v1/webhooks": 20,
    "POST /api/v1/webhooks": 10,
    "DELETE /api/v1/webhooks/<webhook_id>": 6,
}

ChangeSource = Literal["app", "api"]
FaultKind = Literal["5xx", "429", "slow"]
_FAULT_KINDS: tuple[FaultKind, ...] = ("5xx", "429", "slow")
LimitProblem = Literal["burst", "daily"]

# ======================================================================================
# JSON, times and errors
# ======================================================================================


def dumps(value: Any) -> str:
    """JSON with `Decimal` written as an exact number, never via float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("the Pipedrive fake never writes floats")
    return json.dumps(value)


def json_body(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        dumps(body), status=status, headers=dict(headers or {}), content_type="application/json"
    )


def api_time(timestamp: float) -> str:
    """v2's RFC 3339 UTC timestamps, e.g. ``2026-11-02T09:30:00Z``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_time(timestamp: float) -> str:
    """Webhook meta timestamps, e.g. ``2026-11-02T09:30:00.123Z`` (guide-for-webhooks-v2)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_decimal(value: object, name: str = "value") -> Decimal:
    """An exact number from a helper argument; floats are refused (money is Decimal)."""
    if isinstance(value, float):
        raise TypeError(f"{name}: floats are not accepted; pass Decimal, int or str")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"{name}: not a number: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{name}: not a number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"{name}: not a finite number: {value!r}")
    return number


class ApiError(Exception):
    """An API answer other than success; `response()` renders Pipedrive's error body.

    Unverified: the `code` strings. The shape (`success: false`, `error`,
    `error_info`) follows the v1/v2 errors we have seen.
    """

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        body = {
            "success": False,
            "error": self.message,
            "code": self.code,
            "errorCode": self.status,
            "error_info": ERROR_INFO,
            "data": None,
            "additional_data": None,
        }
        return json_body(body, self.status, headers)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "ERR_SCHEMA_VALIDATION_FAILED")


class WebhookBadRequest(ApiError):
    """The 400 of the webhooks endpoints: BaseResponse (`success`) plus an `errors` object
    (pipedrive/client-nodejs src/versions/v1/models/webhooks-bad-request-response.ts); the
    usual `error` text is kept beside it."""

    def __init__(self, message: str, errors: dict[str, str]) -> None:
        super().__init__(400, message, "ERR_SCHEMA_VALIDATION_FAILED")
        self.errors = errors

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        body = json.loads(super().response(headers).get_data())
        return json_body(body | {"errors": self.errors}, self.status, headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found", "ERR_NOT_FOUND")


def scope_mismatch() -> ApiError:
    return ApiError(403, "Scope and URL mismatch", "ERR_SCOPE_MISMATCH")


# ======================================================================================
# Company data
# ======================================================================================


@dataclass
class Pipeline:
    id: int
    name: str
    order_nr: int
    add_time: float
    update_time: float


@dataclass
class Stage:
    id: int
    name: str
    pipeline_id: int
    order_nr: int
    add_time: float
    update_time: float
    deal_probability: int = 100


@dataclass
class DealField:
    """A deal field; custom ones have a 40-hex `field_code` (the "hash key")."""

    field_code: str
    field_name: str
    field_type: str
    is_custom_field: bool
    options: list[dict[str, Any]] | None = None
    description: str | None = None


@dataclass
class Organization:
    id: int
    name: str
    owner_id: int
    add_time: float
    update_time: float
    address: dict[str, str | None] | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    website: str | None = None
    visible_to: int = 3


@dataclass
class Person:
    id: int
    name: str
    owner_id: int
    add_time: float
    update_time: float
    org_id: int | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)
    phones: list[dict[str, Any]] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProductPrice:
    currency: str
    price: Decimal
    cost: Decimal = Decimal(0)
    notes: str = ""


@dataclass
class Product:
    id: int
    name: str
    owner_id: int
    add_time: float
    update_time: float
    code: str | None = None
    unit: str | None = None
    tax: Decimal = Decimal(0)
    description: str | None = None
    prices: list[ProductPrice] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=dict)


TaxMethod = Literal["exclusive", "inclusive", "none"]
DiscountType = Literal["percentage", "amount"]


@dataclass
class DealProduct:
    id: int
    deal_id: int
    product_id: int
    name: str
    item_price: Decimal
    quantity: Decimal
    currency: str
    add_time: float
    update_time: float
    discount: Decimal = Decimal(0)
    discount_type: DiscountType = "percentage"
    tax: Decimal = Decimal(0)
    tax_method: TaxMethod = "none"
    comments: str | None = None
    is_enabled: bool = True

    @property
    def sum(self) -> Decimal:
        """Line total after discount; exclusive tax is added (unverified: Pipedrive's
        deal value includes tax, so we assume `sum` does too). The official client
        (pipedrive/client-php docs/versions/v2/Model/BaseDealProduct.md) gives `discount` as
        "the value of the discount" with `discount_type` percentage | amount, without saying
        whether an amount is per unit or per line (unverified: taken per line here); and
        `tax_method` inclusive = "already included in the price", none = "no tax will be added".
        """
        gross = self.item_price * self.quantity
        if self.discount_type == "percentage":
            net = gross * (1 - self.discount / HUNDRED)
        else:
            net = gross - self.discount
        if self.tax_method == "exclusive":
            net = net * (1 + self.tax / HUNDRED)
        return net.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Deal:
    id: int
    title: str
    value: Decimal
    currency: str
    stage_id: int
    pipeline_id: int
    owner_id: int
    add_time: float
    update_time: float
    stage_change_time: float | None = None
    org_id: int | None = None
    person_id: int | None = None
    status: str = "open"
    expected_close_date: str | None = None
    probability: int | None = None
    lost_reason: str | None = None
    won_time: float | None = None
    lost_time: float | None = None
    close_time: float | None = None
    is_deleted: bool = False
    custom_fields: dict[str, Any] = field(default_factory=dict)
    products: list[DealProduct] = field(default_factory=list)
    visible_to: int = 3
    # Following users: user id -> when they started following (FollowerItem.add_time).
    followers: dict[int, float] = field(default_factory=dict)


@dataclass
class Activity:
    id: int
    subject: str
    type: str
    owner_id: int
    add_time: float
    update_time: float
    deal_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    due_date: str | None = None
    due_time: str | None = None
    duration: str | None = None
    note: str | None = None
    done: bool = False


_BUILTIN_DEAL_FIELDS = (
    ("title", "Title", "varchar"),
    ("value", "Value", "monetary"),
    ("currency", "Currency", "varchar"),
    ("stage_id", "Stage", "stage"),
    ("pipeline_id", "Pipeline", "int"),
    ("owner_id", "Owner", "user"),
    ("org_id", "Organization", "org"),
    ("person_id", "Contact person", "people"),
    ("status", "Status", "status"),
    ("expected_close_date", "Expected close date", "date"),
    ("probability", "Probability", "double"),
    ("lost_reason", "Lost reason", "varchar"),
    ("add_time", "Deal created", "date"),
    ("update_time", "Update time", "date"),
)


class CompanyData:
    """Everything one Pipedrive company holds; ids count from 1 per company and kind."""

    def __init__(self, company_id: int, domain: str, now: float) -> None:
        self.company_id = company_id
        self.domain = domain
        self._counters: dict[str, int] = {}
        self.pipelines: dict[int, Pipeline] = {}
        self.stages: dict[int, Stage] = {}
        self.deal_fields: dict[str, DealField] = {
            code: DealField(code, name, kind, is_custom_field=False)
            for code, name, kind in _BUILTIN_DEAL_FIELDS
        }
        self.orgs: dict[int, Organization] = {}
        # Custom organization fields (Pipedrive's organizationFields), keyed by field code.
        self.org_fields: dict[str, DealField] = {}
        self.persons: dict[int, Person] = {}
        self.products: dict[int, Product] = {}
        self.deals: dict[int, Deal] = {}
        self.activities: dict[int, Activity] = {}
        # Users of the company beyond the installing one (who is always an admin here):
        # id -> (name, email, is_admin).
        self.users: dict[int, tuple[str, str, bool]] = {}
        pipeline = self.add_pipeline("Pipeline", now)
        for name in DEFAULT_STAGES:
            self.add_stage(name, pipeline.id, now)

    def next_id(self, kind: str) -> int:
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return self._counters[kind]

    def add_pipeline(self, name: str, now: float) -> Pipeline:
        pipeline = Pipeline(self.next_id("pipeline"), name, len(self.pipelines) + 1, now, now)
        self.pipelines[pipeline.id] = pipeline
        return pipeline

    def add_stage(self, name: str, pipeline_id: int, now: float) -> Stage:
        order = 1 + sum(1 for s in self.stages.values() if s.pipeline_id == pipeline_id)
        stage = Stage(self.next_id("stage"), name, pipeline_id, order, now, now)
        self.stages[stage.id] = stage
        return stage

    def custom_fields(self) -> list[DealField]:
        return [f for f in self.deal_fields.values() if f.is_custom_field]

    def first_stage(self, pipeline_id: int) -> Stage:
        stages = sorted(
            (s for s in self.stages.values() if s.pipeline_id == pipeline_id),
            key=lambda s: s.order_nr,
        )
        if not stages:
            raise bad_request(f"pipeline {pipeline_id} has no stages")
        return stages[0]

    def live_deal(self, deal_id: int) -> Deal:
        deal = self.deals.get(deal_id)
        if deal is None or deal.is_deleted:
            raise not_found("Deal")
        return deal


# ======================================================================================
# Rendering (API v2 shapes, from pipedrive/client-nodejs src/versions/v2/models)
# ======================================================================================


def _opt_time(timestamp: float | None) -> str | None:
    return None if timestamp is None else api_time(timestamp)


def render_deal(deal: Deal, company: CompanyData, only: set[str] | None = None) -> dict[str, Any]:
    codes = [f.field_code for f in company.custom_fields()]
    if only is not None:
        codes = [c for c in codes if c in only]
    return {
        "id": deal.id,
        "title": deal.title,
        "owner_id": deal.owner_id,
        "person_id": deal.person_id,
        "org_id": deal.org_id,
        "pipeline_id": deal.pipeline_id,
        "stage_id": deal.stage_id,
        "value": deal.value,
        "currency": deal.currency,
        "add_time": api_time(deal.add_time),
        "update_time": api_time(deal.update_time),
        "stage_change_time": _opt_time(deal.stage_change_time),
        "is_deleted": deal.is_deleted,
        "status": deal.status,
        "probability": deal.probability,
        "lost_reason": deal.lost_reason,
        "visible_to": deal.visible_to,
        "close_time": _opt_time(deal.close_time),
        "won_time": _opt_time(deal.won_time),
        "lost_time": _opt_time(deal.lost_time),
        "expected_close_date": deal.expected_close_date,
        "label_ids": [],
        "origin": "ManuallyCreated",
        "origin_id": None,
        "channel": None,
        "channel_id": None,
        "custom_fields": {code: copy.deepcopy(deal.custom_fields.get(code)) for code in codes},
    }


def render_deal_product(line: DealProduct) -> dict[str, Any]:
    return {
        "id": line.id,
        "sum": line.sum,
        "tax": line.tax,
        "deal_id": line.deal_id,
        "name": line.name,
        "product_id": line.product_id,
        "product_variation_id": None,
        "add_time": api_time(line.add_time),
        "update_time": api_time(line.update_time),
        "comments": line.comments,
        "currency": line.currency,
        "discount": line.discount,
        "discount_type": line.discount_type,
        "quantity": line.quantity,
        "item_price": line.item_price,
        "tax_method": line.tax_method,
        "is_enabled": line.is_enabled,
        "billing_frequency": "one-time",
        "billing_frequency_cycles": None,
        "billing_start_date": None,
    }


def render_product(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "code": product.code,
        "description": product.description,
        "unit": product.unit,
        "tax": product.tax,
        "category": None,
        "owner_id": product.owner_id,
        "is_linkable": True,
        "is_deleted": False,
        "visible_to": 3,
        "add_time": api_time(product.add_time),
        "update_time": api_time(product.update_time),
        "billing_frequency": "one-time",
        "billing_frequency_cycles": None,
        "prices": [
            {
                "product_id": product.id,
                "price": p.price,
                "currency": p.currency,
                "cost": p.cost,
                "notes": p.notes,
            }
            for p in product.prices
        ],
        "custom_fields": copy.deepcopy(product.custom_fields),
    }


ADDRESS_KEYS = (
    "value",
    "street_number",
    "route",
    "sublocality",
    "locality",
    "admin_area_level_1",
    "admin_area_level_2",
    "country",
    "postal_code",
    "formatted_address",
)


def render_org(org: Organization, company: CompanyData) -> dict[str, Any]:
    """v2 OrganizationItem; every defined custom field is present (null when empty), as for
    deals, plus any a test seeded directly."""
    custom: dict[str, Any] = {code: None for code in company.org_fields}
    custom.update(copy.deepcopy(org.custom_fields))
    return {
        "id": org.id,
        "name": org.name,
        "owner_id": org.owner_id,
        "add_time": api_time(org.add_time),
        "update_time": api_time(org.update_time),
        "is_deleted": False,
        "visible_to": org.visible_to,
        "label_ids": [],
        "address": dict(org.address) if org.address is not None else None,
        "website": org.website,
        "custom_fields": custom,
    }


def render_person(person: Person) -> dict[str, Any]:
    first, _, last = person.name.partition(" ")
    return {
        "id": person.id,
        "name": person.name,
        "first_name": first,
        "last_name": last or None,
        "owner_id": person.owner_id,
        "org_id": person.org_id,
        "add_time": api_time(person.add_time),
        "update_time": api_time(person.update_time),
        "emails": copy.deepcopy(person.emails),
        "phones": copy.deepcopy(person.phones),
        "is_deleted": False,
        "visible_to": 3,
        "label_ids": [],
        "picture_id": None,
        "custom_fields": copy.deepcopy(person.custom_fields),
    }


def render_stage(stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.id,
        "order_nr": stage.order_nr,
        "name": stage.name,
        "is_deleted": False,
        "deal_probability": stage.deal_probability,
        "pipeline_id": stage.pipeline_id,
        "is_deal_rot_enabled": False,
        "days_to_rotten": None,
        "add_time": api_time(stage.add_time),
        "update_time": api_time(stage.update_time),
    }


def render_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "order_nr": pipeline.order_nr,
        "is_deleted": False,
        "is_deal_probability_enabled": False,
        "add_time": api_time(pipeline.add_time),
        "update_time": api_time(pipeline.update_time),
        "is_selected": pipeline.order_nr == 1,
    }


def render_deal_field(deal_field: DealField) -> dict[str, Any]:
    return {
        "field_name": deal_field.field_name,
        "field_code": deal_field.field_code,
        "description": deal_field.description,
        "field_type": deal_field.field_type,
        "is_custom_field": deal_field.is_custom_field,
        "is_optional_response_field": False,
        "options": copy.deepcopy(deal_field.options),
        "subfields": None,
    }


def render_activity(activity: Activity, *, v1: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": activity.id,
        "subject": activity.subject,
        "type": activity.type,
        "owner_id": activity.owner_id,
        "is_deleted": False,
        "add_time": api_time(activity.add_time),
        "update_time": api_time(activity.update_time),
        "deal_id": activity.deal_id,
        "lead_id": None,
        "person_id": activity.person_id,
        "org_id": activity.org_id,
        "project_id": None,
        "due_date": activity.due_date,
        "due_time": activity.due_time,
        "duration": activity.duration,
        "busy": False,
        "done": activity.done,
        "note": activity.note,
    }
    if v1:  # v1 names the owner user_id and flags as 0/1
        body["user_id"] = body.pop("owner_id")
        body["done"] = int(activity.done)
    return body


# ======================================================================================
# Request parsing and validation
# ======================================================================================

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TEXT_TYPES = frozenset({"varchar", "varchar_auto", "text", "phone", "address", "time"})
_CUSTOM_FIELD_TYPES = (
    "varchar",
    "varchar_auto",
    "text",
    "double",
    "monetary",
    "date",
    "set",
    "enum",
    "user",
    "org",
    "people",
    "phone",
    "time",
    "timerange",
    "daterange",
    "address",
)


def read_json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body (numbers with fractions as Decimal); {} if empty."""
    raw = request.get_data(as_text=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_float=Decimal)
    except ValueError as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def read_v1_body(request: Request) -> dict[str, Any]:
    """v1 endpoints take JSON or a form; both end up as one dict."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.to_dict()
    return read_json_object(request)


def path_id(value: str, what: str) -> int:
    if not value.isdigit():
        raise bad_request(f"{what} must be a positive integer")
    return int(value)


def expect_int(value: Any, name: str, *, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer")
    return value


def expect_number(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise bad_request(f"{name} must be a number")
    return Decimal(value)


def expect_text(value: Any, name: str, *, nullable: bool = False, max_len: int = 255) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    if len(value) > max_len:
        raise bad_request(f"{name} must be at most {max_len} characters")
    return value


def expect_won_time(value: Any, name: str) -> float:
    """A deal's won_time as a user may backdate it: UTC, "YYYY-MM-DD HH:MM:SS" (v1,
    pipedrive/client-nodejs docs/BasicDeal.md) or RFC 3339 "...Z" as v2 renders it."""
    text = value if isinstance(value, str) else ""
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise bad_request(f"{name} must be a UTC time YYYY-MM-DD HH:MM:SS")


def expect_date(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        raise bad_request(f"{name} must be a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} must be a valid date") from None
    return value


def query_ints(request: Request, name: str) -> list[int]:
    """A comma list and/or repeated parameter of ids (``?ids=1,2`` or ``?ids=1&ids=2``)."""
    parts = [p.strip() for raw in request.args.getlist(name) for p in raw.split(",")]
    parts = [p for p in parts if p]
    if not all(p.isdigit() for p in parts):
        raise bad_request(f"{name} must be a comma separated list of integers")
    if len(parts) > MAX_IDS:
        raise bad_request(f"{name} accepts at most {MAX_IDS} ids")
    return [int(p) for p in parts]


def query_int(request: Request, name: str) -> int | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise bad_request(f"{name} must be an integer")
    return int(value)


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise bad_request("cursor is not valid") from None
    prefix, _, number = text.partition(":")
    if prefix != "offset" or not number.isdigit():
        raise bad_request("cursor is not valid")
    return int(number)


def page(request: Request, items: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
    """One page by ``limit``/``cursor`` and v2's ``additional_data``."""
    limit = query_int(request, "limit") or DEFAULT_PAGE_LIMIT
    if limit > MAX_PAGE_LIMIT:
        raise bad_request(f"limit must be at most {MAX_PAGE_LIMIT}")
    start = decode_cursor(request.args.get("cursor"))
    end = start + limit
    next_cursor = encode_cursor(end) if end < len(items) else None
    return list(items[start:end]), {"next_cursor": next_cursor}


def sort_items(
    request: Request, items: list[Any], keys: Mapping[str, Callable[[Any], Any]]
) -> None:
    sort_by = request.args.get("sort_by", "id")
    direction = request.args.get("sort_direction", "asc")
    if sort_by not in keys:
        raise bad_request(f"sort_by must be one of {', '.join(keys)}")
    if direction not in ("asc", "desc"):
        raise bad_request("sort_direction must be asc or desc")
    items.sort(key=keys[sort_by], reverse=direction == "desc")


def parse_rfc3339(value: str, name: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an RFC 3339 time, e.g. 2025-01-01T10:20:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def custom_value(deal_field: DealField, value: Any) -> Any:
    """Validate one custom-field value the way v2 types it; None clears the field."""
    if value is None:
        return None
    kind, name = deal_field.field_type, f"custom field {deal_field.field_code}"
    if kind in _TEXT_TYPES:
        return expect_text(value, name, max_len=65_535 if kind == "text" else 255)
    if kind == "double":
        return expect_number(value, name)
    if kind == "monetary":
        return _monetary(value, name)
    if kind == "date":
        return expect_date(value, name)
    if kind in ("enum", "set"):
        return _options_value(deal_field, value, name)
    if kind in ("user", "org", "people"):
        return expect_int(value, name)
    return copy.deepcopy(value)


def _monetary(value: Any, name: str) -> dict[str, Any]:
    """v2 monetary custom fields are ``{"value": number, "currency": "AUD"}``."""
    if not isinstance(value, dict) or set(value) - {"value", "currency"}:
        raise bad_request(f"{name} must be an object {{value, currency}}")
    currency = value.get("currency")
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.match(currency)):
        raise bad_request(f"{name}.currency must be a 3-letter currency code")
    return {"value": expect_number(value.get("value"), f"{name}.value"), "currency": currency}


def _options_value(deal_field: DealField, value: Any, name: str) -> Any:
    allowed = {o["id"] for o in deal_field.options or []}
    chosen = value if deal_field.field_type == "set" else [value]
    if not isinstance(chosen, list):
        raise bad_request(f"{name} must be a list of option ids")
    for option in chosen:
        if expect_int(option, name) not in allowed:
            raise bad_request(f"{name}: {option} is not one of its option ids")
    return list(chosen) if deal_field.field_type == "set" else value


# ======================================================================================
# Rate limits
# ======================================================================================


@dataclass
class RateLimits:
    """Token-based limits (platform-facts). Mutable: tests may change them live.

    `daily_budget` is per company and resets at 00:00 UTC; the burst limit is per
    user (a user's OAuth tokens share it) over a rolling `burst_window`. Pipedrive's
    docs state the burst limit in requests; set `burst_unit="tokens"` to count tokens.
    """

    daily_budget: int = 30_000
    burst_limit: int = 80
    burst_window: float = 2.0
    burst_unit: Literal["requests", "tokens"] = "requests"
    costs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TOKEN_COSTS))

    def cost_of(self, method: str, rule: str) -> int:
        return self.costs[f"{method} {rule}"]


@dataclass(frozen=True)
class Admission:
    """The limiter's answer: headers as things stand, or why the call was refused."""

    headers: dict[str, str]
    problem: LimitProblem | None = None
    retry_after: int | None = None


class RateLimiter:
    """Daily token spend per company and rolling burst windows per (company, user)."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._daily: dict[int, tuple[int, int]] = {}  # company -> (UTC day number, spent)
        self._burst: dict[tuple[int, int], deque[tuple[float, int]]] = {}

    def reset(self) -> None:
        self._daily.clear()
        self._burst.clear()

    def admit(self, company_id: int, user_id: int, cost: int) -> Admission:
        """Charge `cost` tokens, or refuse without charging (caller holds the lock)."""
        now = self._clock.now()
        window = self._window(company_id, user_id, now)
        weight = cost if self.limits.burst_unit == "tokens" else 1
        if self._spent(company_id, now) + cost > self.limits.daily_budget:
            return Admission(self._headers(company_id, user_id, now), "daily", _to_midnight(now))
        if sum(w for _, w in window) + weight > self.limits.burst_limit:
            headers = self._headers(company_id, user_id, now)
            return Admission(headers, "burst", int(headers["x-ratelimit-reset"]))
        window.append((now, weight))
        self._daily[company_id] = (_day(now), self._spent(company_id, now) + cost)
        return Admission(self._headers(company_id, user_id, now))

    def headers(self, company_id: int, user_id: int) -> dict[str, str]:
        now = self._clock.now()
        self._window(company_id, user_id, now)
        return self._headers(company_id, user_id, now)

    def spent_today(self, company_id: int) -> int:
        return self._spent(company_id, self._clock.now())

    def _spent(self, company_id: int, now: float) -> int:
        day, spent = self._daily.get(company_id, (_day(now), 0))
        return spent if day == _day(now) else 0

    def _window(self, company_id: int, user_id: int, now: float) -> deque[tuple[float, int]]:
        window = self._burst.setdefault((company_id, user_id), deque())
        while window and window[0][0] <= now - self.limits.burst_window:
            window.popleft()
        return window

    def _headers(self, company_id: int, user_id: int, now: float) -> dict[str, str]:
        window = self._burst[(company_id, user_id)]
        used = sum(w for _, w in window)
        oldest = window[0][0] if window else now
        reset = max(1, math.ceil(oldest + self.limits.burst_window - now))
        daily_left = max(0, self.limits.daily_budget - self._spent(company_id, now))
        return {
            "x-ratelimit-limit": str(self.limits.burst_limit),
            "x-ratelimit-remaining": str(max(0, self.limits.burst_limit - used)),
            "x-ratelimit-reset": str(reset),
            DAILY_BUDGET_HEADER: str(daily_left),
        }


def _day(now: float) -> int:
    return int(now // DAY_S)


def _to_midnight(now: float) -> int:
    return max(1, math.ceil((_day(now) + 1) * DAY_S - now))


def too_many_requests(problem: LimitProblem, headers: Mapping[str, str], retry: int) -> Response:
    what = "Daily token budget exhausted" if problem == "daily" else "Request over limit"
    response = ApiError(429, what, "ERR_RATE_LIMIT_EXCEEDED").response(headers)
    response.headers["Retry-After"] = str(retry)
    return response


# ======================================================================================
# Faults and the call log
# ======================================================================================


def short_path(path: str) -> str:
    """``/api/v2/deals/1`` -> ``/deals/1``."""
    match = re.match(r"^/api/v\d+(/.*)?$", path)
    return (match.group(1) or "/") if match else path


def path_matches(prefix: str | None, path: str) -> bool:
    """Prefix match; a prefix without ``/api/vN`` matches every API version."""
    if prefix is None or path.startswith(prefix):
        return True
    return not prefix.startswith("/api/") and short_path(path).startswith(prefix)


@dataclass
class Fault:
    """One injected fault; `remaining` counts down (None: until cleared)."""

    kind: FaultKind
    method: str | None = None
    path_prefix: str | None = None
    remaining: int | None = 1
    status: int | None = None
    delay: float | None = None
    company_id: int | None = None

    def matches(self, method: str, path: str, company_id: int) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and (self.method is None or self.method.upper() == method.upper())
            and path_matches(self.path_prefix, path)
            and (self.company_id is None or self.company_id == company_id)
        )


class FaultInjector:
    """Faults waiting for matching calls, first injected first used (caller holds the lock)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in _FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {_FAULT_KINDS}, not {fault.kind!r}")
        if fault.kind == "slow" and not fault.delay:
            raise ValueError("a 'slow' fault needs delay= (seconds)")
        if fault.kind == "5xx" and not 500 <= (fault.status or 500) <= 599:
            raise ValueError("a '5xx' fault needs a status between 500 and 599")
        self._faults.append(fault)
        return fault

    def find(self, method: str, path: str, company_id: int) -> Fault | None:
        return next((f for f in self._faults if f.matches(method, path, company_id)), None)

    @staticmethod
    def use(fault: Fault) -> None:
        if fault.remaining is not None:
            fault.remaining -= 1

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if f.remaining is None or f.remaining > 0]


@dataclass(frozen=True)
class ApiCall:
    """One API call as the fake saw it; `tokens` is what it cost (0 when refused)."""

    method: str
    path: str
    query: str
    company_id: int | None
    user_id: int | None
    status: int
    tokens: int
    time: float
    fault: FaultKind | None = None
    limited: LimitProblem | None = None


# ======================================================================================
# Webhooks
# ======================================================================================


@dataclass
class Webhook:
    """An app webhook (type "application"); Pipedrive keeps ban state per webhook."""

    id: int
    company_id: int
    user_id: int
    client_id: str
    subscription_url: str
    event_action: str
    event_object: str
    version: str
    add_time: float
    http_auth_user: str | None = None
    http_auth_password: str | None = None
    name: str | None = None
    ban_counter: int = 0
    banned_until: float | None = None
    last_delivery_time: float | None = None
    last_http_status: int | None = None
    last_success_at: float | None = None

    def matches(self, action: str, entity: str) -> bool:
        return self.event_action in (action, "*") and self.event_object in (entity, "*")

    def is_banned(self, now: float) -> bool:
        """Whether the ban is on; an expired ban is lifted and the counter zeroed."""
        if self.banned_until is not None and now >= self.banned_until:
            self.banned_until, self.ban_counter = None, 0
        return self.banned_until is not None


def render_webhook(hook: Webhook) -> dict[str, Any]:
    """v1 webhook object (unverified field list, from the v1 reference as we recall it)."""
    return {
        "id": hook.id,
        "company_id": hook.company_id,
        "owner_id": hook.user_id,
        "user_id": hook.user_id,
        "event_action": hook.event_action,
        "event_object": hook.event_object,
        "subscription_url": hook.subscription_url,
        "is_active": 1,
        "add_time": event_time(hook.add_time),
        "remove_time": None,
        "type": "application",
        "http_auth_user": hook.http_auth_user,
        "http_auth_password": hook.http_auth_password,
        "additional_data": [],
        "remove_reason": None,
        "last_delivery_time": _opt_event_time(hook.last_delivery_time),
        "last_http_status": hook.last_http_status,
        "admin_id": hook.user_id,
        "name": hook.name,
        "version": hook.version,
    }


def _opt_event_time(timestamp: float | None) -> str | None:
    return None if timestamp is None else event_time(timestamp)


@dataclass(frozen=True)
class EventInfo:
    """What changed, for building the webhook body (ids are strings in `meta`)."""

    company: CompanyData
    entity: str
    action: str
    entity_id: int
    data: dict[str, Any] | None
    previous: dict[str, Any] | None
    user_id: int
    change_source: ChangeSource
    permitted_user_ids: tuple[int, ...]


@dataclass(eq=False)  # compared by identity: each queued attempt is its own item
class _Pending:
    seq: int
    webhook_id: int
    payload: dict[str, Any]
    attempt: int
    due_at: float


@dataclass(frozen=True)
class DeliveryResult:
    """One POST to a subscription URL (or one that could not be made)."""

    webhook_id: int
    event_id: str
    entity: str
    action: str
    entity_id: str
    attempt: int
    url: str
    time: float
    status: int | None
    error: str | None
    elapsed: float
    next_attempt_at: float | None
    banned: bool
    payload: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


DropReason = Literal["banned", "retries_exhausted", "webhook_removed"]


@dataclass(frozen=True)
class DroppedEvent:
    """An event a webhook will never receive, and why."""

    webhook_id: int
    event_id: str
    entity: str
    action: str
    entity_id: str
    attempt: int
    reason: DropReason
    time: float


class WebhookDispatcher:
    """App webhooks, their delivery queue and Pipedrive's retry and ban policy.

    Thread-safe: state changes under the fake's lock; HTTP is sent outside it, one
    `deliver()` run at a time (so each webhook gets its events in order).
    """

    def __init__(self, lock: threading.RLock, clock: Clock) -> None:
        self._lock = lock
        self._clock = clock
        self._run_lock = threading.Lock()
        self.timeout = WEBHOOK_TIMEOUT_S
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS_S
        self.ban_threshold = BAN_THRESHOLD
        self.ban_seconds = BAN_S
        self._hooks: dict[int, Webhook] = {}
        self._next_hook_id = 0
        self._pending: list[_Pending] = []
        self._seq = 0
        self._results: list[DeliveryResult] = []
        self._dropped: list[DroppedEvent] = []
        self._auto = False
        self._timer: threading.Timer | None = None

    # ----- subscriptions (caller holds the lock) -------------------------------------

    def add(self, **fields: Any) -> Webhook:
        self._next_hook_id += 1
        hook = Webhook(id=self._next_hook_id, add_time=self._clock.now(), **fields)
        self._hooks[hook.id] = hook
        return hook

    def get(self, webhook_id: int) -> Webhook | None:
        return self._hooks.get(webhook_id)

    def remove(self, webhook_id: int) -> None:
        self._hooks.pop(webhook_id, None)
        for item in [p for p in self._pending if p.webhook_id == webhook_id]:
            self._drop(item, "webhook_removed")

    @property
    def hooks(self) -> list[Webhook]:
        with self._lock:
            return [copy.copy(h) for h in self._hooks.values()]

    def hooks_of(self, company_id: int, client_id: str) -> list[Webhook]:
        return [
            h
            for h in self._hooks.values()
            if h.company_id == company_id and h.client_id == client_id
        ]

    # ----- events -------------------------------------------------------------------

    def emit(self, event: EventInfo) -> None:
        """Queue attempt 1 for each matching webhook (caller holds the lock)."""
        now = self._clock.now()
        event_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        for hook in list(self._hooks.values()):
            if hook.company_id != event.company.company_id:
                continue
            if not hook.matches(event.action, event.entity):
                continue
            payload = _payload(event, hook, event_id, correlation_id, now)
            self._seq += 1
            item = _Pending(self._seq, hook.id, payload, 1, now)
            if hook.is_banned(now):
                self._drop(item, "banned")  # guide-for-webhooks-v2: events in a ban are lost
            else:
                self._pending.append(item)

    # ----- delivery ------------------------------------------------------------------

    def deliver(self) -> list[DeliveryResult]:
        """Send every delivery due now (on the fake clock), oldest first."""
        with self._run_lock:
            with self._lock:
                now = self._clock.now()
                due = sorted((p for p in self._pending if p.due_at <= now), key=_due_order)
            return [r for r in (self._send_one(item) for item in due) if r is not None]

    def _send_one(self, item: _Pending) -> DeliveryResult | None:
        with self._lock:
            hook = self._hooks.get(item.webhook_id)
            if item not in self._pending or hook is None:
                return None  # dropped meanwhile (ban, removal)
            self._pending.remove(item)
            payload = copy.deepcopy(item.payload)
            payload["meta"]["attempt"] = item.attempt
            url, user, password = (
                hook.subscription_url,
                hook.http_auth_user,
                hook.http_auth_password,
            )
        sent_at = self._clock.now()
        status, error, elapsed = self._post(url, user, password, payload, self.timeout)
        with self._lock:
            return self._record(item, url, payload, sent_at, (status, error, elapsed))

    @staticmethod
    def _post(
        url: str, user: str | None, password: str | None, payload: dict[str, Any], timeout: float
    ) -> tuple[int | None, str | None, float]:
        """POST the event; returns (status, error, elapsed real seconds)."""
        auth = (user, password or "") if user is not None else None
        headers = {"Content-Type": "application/json", "User-Agent": "Pipedrive-Webhooks/2.0"}
        started = time.monotonic()
        try:
            response = requests.post(
                url,
                data=dumps(payload).encode(),
                headers=headers,
                auth=auth,
                timeout=timeout,
                allow_redirects=False,  # docs: the URL must not redirect
            )
        except requests.Timeout:
            return None, f"timeout after {timeout:g}s", time.monotonic() - started
        except requests.RequestException as exc:
            return None, f"{exc.__class__.__name__}: {exc}", time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            return response.status_code, f"timeout after {timeout:g}s", elapsed
        return response.status_code, None, elapsed

    def _record(
        self,
        item: _Pending,
        url: str,
        payload: dict[str, Any],
        sent_at: float,
        outcome: tuple[int | None, str | None, float],
    ) -> DeliveryResult:
        """Apply the retry/ban policy to one attempt's outcome (caller holds the lock)."""
        status, error, elapsed = outcome
        hook = self._hooks.get(item.webhook_id)
        ok = error is None and status is not None and 200 <= status < 300
        next_at: float | None = None
        banned = False
        if hook is not None:
            hook.last_delivery_time, hook.last_http_status = sent_at, status
            if ok:
                hook.last_success_at = sent_at
                if item.attempt == 1:
                    hook.ban_counter = 0  # unverified: the docs never say a success resets it
            else:
                banned = self._count_failure(hook, item)
                next_at = None if banned else self._retry_or_drop(hook, item)
        result = DeliveryResult(
            item.webhook_id,
            payload["meta"]["id"],
            payload["meta"]["entity"],
            payload["meta"]["action"],
            payload["meta"]["entity_id"],
            item.attempt,
            url,
            sent_at,
            status,
            error,
            elapsed,
            next_at,
            banned,
            payload,
        )
        self._results.append(result)
        return result

    def _count_failure(self, hook: Webhook, item: _Pending) -> bool:
        """Count a first-attempt failure; ban at the threshold. True if this banned it."""
        if item.attempt != 1:
            return False  # docs: failures during retries do not increase the ban counter
        hook.ban_counter += 1
        if hook.ban_counter < self.ban_threshold:
            return False
        hook.banned_until = self._clock.now() + self.ban_seconds
        # "No data will be saved for retries after the ban": this event and any
        # queued ones for the hook are lost (unverified reading of the docs).
        self._drop(item, "banned")
        for other in [p for p in self._pending if p.webhook_id == hook.id]:
            self._drop(other, "banned")
        return True

    def _retry_or_drop(self, hook: Webhook, item: _Pending) -> float | None:
        now = self._clock.now()
        if now - (hook.last_success_at or hook.add_time) >= DELETE_AFTER_NO_SUCCESS_S:
            self.remove(hook.id)  # "no successful deliveries on 3 consecutive days"
            self._drop(item, "webhook_removed")
            return None
        if item.attempt > len(self.retry_delays):
            self._drop(item, "retries_exhausted")
            return None
        due = now + self.retry_delays[item.attempt - 1]
        self._seq += 1
        self._pending.append(_Pending(self._seq, hook.id, item.payload, item.attempt + 1, due))
        return due

    def _drop(self, item: _Pending, reason: DropReason) -> None:
        if item in self._pending:
            self._pending.remove(item)
        meta = item.payload["meta"]
        self._dropped.append(
            DroppedEvent(
                item.webhook_id,
                meta["id"],
                meta["entity"],
                meta["action"],
                meta["entity_id"],
                item.attempt,
                reason,
                self._clock.now(),
            )
        )

    # ----- introspection -------------------------------------------------------------

    @property
    def results(self) -> list[DeliveryResult]:
        with self._lock:
            return list(self._results)

    @property
    def dropped(self) -> list[DroppedEvent]:
        with self._lock:
            return list(self._dropped)

    @property
    def pending(self) -> list[tuple[int, int, float]]:
        """(webhook id, attempt, due time) of every queued delivery."""
        with self._lock:
            return [
                (p.webhook_id, p.attempt, p.due_at) for p in sorted(self._pending, key=_due_order)
            ]

    # ----- background delivery ---------------------------------------------------------

    @property
    def auto(self) -> bool:
        return self._auto

    @auto.setter
    def auto(self, enabled: bool) -> None:
        self._auto = enabled
        if enabled:
            self.kick()
        else:
            self._cancel_timer()

    def kick(self) -> None:
        """With auto delivery on, deliver in a background thread now."""
        if self._auto:
            threading.Thread(target=self._auto_run, name="pipedrive-webhooks", daemon=True).start()

    def _auto_run(self) -> None:
        self.deliver()
        with self._lock:
            if not self._auto or not self._pending:
                return
            delay = max(0.0, min(p.due_at for p in self._pending) - self._clock.now())
            self._cancel_timer()
            self._timer = threading.Timer(delay, self._auto_run)
            self._timer.daemon = True
            self._timer.start()

    def _cancel_timer(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


def _due_order(item: _Pending) -> tuple[float, int]:
    return item.due_at, item.seq


def _payload(
    event: EventInfo, hook: Webhook, event_id: str, correlation_id: str, now: float
) -> dict[str, Any]:
    """The v2 body (guide-for-webhooks-v2 "Webhook format"); meta ids are strings."""
    meta: dict[str, Any] = {
        "action": event.action,
        "entity": event.entity,
        "company_id": str(event.company.company_id),
        "correlation_id": correlation_id,
        "entity_id": str(event.entity_id),
        "id": event_id,
        "is_bulk_edit": False,
        "timestamp": event_time(now),
        "type": "application",  # app webhooks; "general" for ones made in the UI
        "user_id": str(event.user_id),
        "version": "2.0",
        "webhook_id": str(hook.id),
        "webhook_owner_id": str(hook.user_id),
        "change_source": event.change_source,
        "attempt": 1,
        "host": f"{event.company.domain}.pipedrive.com",
        "permitted_user_ids": [str(u) for u in sorted(set(event.permitted_user_ids))],
    }
    return {
        "meta": meta,
        "data": copy.deepcopy(event.data),
        "previous": copy.deepcopy(event.previous),
    }


# ======================================================================================
# The HTTP layer
# ======================================================================================


@dataclass(frozen=True)
class Ctx:
    """One admitted, authenticated call, as handlers see it."""

    request: Request
    company: CompanyData
    user_id: int
    client_id: str


ApiHandler = Callable[..., Response]
"""Called as ``handler(ctx, **path_values)`` under the fake's lock."""


@dataclass(frozen=True)
class _Route:
    method: str
    rule: str
    handler: ApiHandler
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class _Gate:
    fault: Fault | None
    admission: Admission | None
    tokens: int


@dataclass(frozen=True)
class DealQuery:
    """The filters of v2 GET /deals: ids, owner/person/org/pipeline/stage, status, updated_*."""

    ids: frozenset[int]
    links: dict[str, int]
    statuses: frozenset[str]
    since: float | None
    until: float | None

    @classmethod
    def parse(cls, request: Request) -> DealQuery:
        keys = ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id")
        links = {key: value for key in keys if (value := query_int(request, key)) is not None}
        statuses = frozenset(s for s in request.args.get("status", "").split(",") if s)
        unknown = statuses - {"open", "won", "lost", "deleted"}
        if unknown:
            raise bad_request(f"status must be open, won, lost or deleted, not {sorted(unknown)}")
        since, until = request.args.get("updated_since"), request.args.get("updated_until")
        return cls(
            frozenset(query_ints(request, "ids")),
            links,
            statuses or frozenset({"open", "won", "lost"}),  # default: every deal not deleted
            None if since is None else parse_rfc3339(since, "updated_since"),
            None if until is None else parse_rfc3339(until, "updated_until"),
        )

    def matches(self, deal: Deal) -> bool:
        status = "deleted" if deal.is_deleted else deal.status
        return (
            (not self.ids or deal.id in self.ids)
            and status in self.statuses
            and all(getattr(deal, key) == value for key, value in self.links.items())
            and (self.since is None or deal.update_time >= self.since)
            and (self.until is None or deal.update_time < self.until)
        )


_DEAL_PATCH_KEYS = frozenset(
    {
        "title",
        "value",
        "currency",
        "stage_id",
        "pipeline_id",
        "owner_id",
        "org_id",
        "person_id",
        "status",
        "expected_close_date",
        "probability",
        "lost_reason",
        "won_time",
        "custom_fields",
    }
)
_HASH = re.compile(r"^[0-9a-f]{40}$")
# v2 UpdateOrganizationRequest's fields (pipedrive/client-nodejs): the fake keeps the first
# set and refuses the second, saying so, rather than pretend to store them.
_ORG_PATCH_KEYS = frozenset({"name", "owner_id", "address", "website", "custom_fields"})
_ORG_PATCH_UNMODELLED = frozenset(
    {"visible_to", "label_ids", "linkedin", "industry", "annual_revenue", "employee_count"}
)
_ADDRESS_WRITE_KEYS = frozenset(ADDRESS_KEYS) - {"formatted_address"}


class PipedriveApi:
    """The company API, its data per company and the production behaviours.

    Created by `FakePipedrive` (sandbox/pipedrive.py) as ``fake.api``. Each call runs:
    bearer check -> injected 429 fault or rate limits (tokens charged) -> other fault
    -> scope check -> handler (under the fake's lock) -> headers, call log, webhooks.
    """

    def __init__(
        self,
        fake: FakePipedrive,
        *,
        limits: RateLimits | None = None,
        webhook_timeout: float = WEBHOOK_TIMEOUT_S,
    ) -> None:
        self._fake = fake
        self._lock = fake.lock
        self._clock = fake.clock
        self._companies: dict[int, CompanyData] = {}
        self.limiter = RateLimiter(limits or RateLimits(), fake.clock)
        self.faults = FaultInjector()
        self.webhooks = WebhookDispatcher(fake.lock, fake.clock)
        self.webhooks.timeout = webhook_timeout
        self._calls: list[ApiCall] = []
        self._register_routes()

    # ----- companies ---------------------------------------------------------------------

    def company(self, company_id: int | None = None) -> CompanyData:
        """A company's data (default: the fake's current company), created on first use."""
        cid = self._fake.company_id if company_id is None else company_id
        with self._lock:
            data = self._companies.get(cid)
            if data is None:
                data = CompanyData(cid, self._fake.company_domain, self._clock.now())
                self._companies[cid] = data
            return data

    # ----- seeding helpers (the "UI": changes here have change_source "app") ------------

    def add_pipeline(
        self, name: str, stages: Sequence[str] = (), *, company_id: int | None = None
    ) -> int:
        with self._lock:
            company = self.company(company_id)
            pipeline = company.add_pipeline(name, self._clock.now())
            for stage in stages:
                company.add_stage(stage, pipeline.id, self._clock.now())
            return pipeline.id

    def add_stage(self, name: str, pipeline_id: int = 1, *, company_id: int | None = None) -> int:
        with self._lock:
            company = self.company(company_id)
            if pipeline_id not in company.pipelines:
                raise KeyError(f"unknown pipeline {pipeline_id}")
            return company.add_stage(name, pipeline_id, self._clock.now()).id

    def stage_id(self, name: str, pipeline_id: int = 1, *, company_id: int | None = None) -> int:
        """The id of the stage called `name` in `pipeline_id`."""
        with self._lock:
            for stage in self.company(company_id).stages.values():
                if stage.name == name and stage.pipeline_id == pipeline_id:
                    return stage.id
        raise KeyError(f"no stage {name!r} in pipeline {pipeline_id}")

    def add_deal_field(
        self,
        name: str,
        field_type: str = "varchar",
        options: Sequence[str] = (),
        *,
        company_id: int | None = None,
    ) -> str:
        """Create a custom deal field; returns its 40-hex field code."""
        with self._lock:
            body: dict[str, Any] = {"field_name": name, "field_type": field_type}
            if options:
                body["options"] = [{"label": label} for label in options]
            return self._create_deal_field(self.company(company_id), body).field_code

    def deal_field_option(
        self, field_code: str, label: str, *, company_id: int | None = None
    ) -> int:
        """The option id of `label` in an enum/set field."""
        with self._lock:
            deal_field = self.company(company_id).deal_fields[field_code]
            for option in deal_field.options or []:
                if option["label"] == label:
                    return int(option["id"])
        raise KeyError(f"field {field_code} has no option {label!r}")

    def add_org(
        self,
        name: str,
        *,
        address: str | Mapping[str, str | None] | None = None,
        owner_id: int | None = None,
        custom_fields: Mapping[str, Any] | None = None,
        website: str | None = None,
        visible_to: int = 3,
        company_id: int | None = None,
    ) -> int:
        """An organisation; `address` is a one-line string or the v2 address parts."""
        if visible_to not in VISIBLE_TO:
            raise ValueError(f"visible_to must be one of {VISIBLE_TO}")
        with self._lock:
            company, now = self.company(company_id), self._clock.now()
            org = Organization(
                company.next_id("org"),
                name,
                owner_id or self._fake.user_id,
                now,
                now,
                _address(address),
                dict(custom_fields or {}),
                website,
                visible_to,
            )
            company.orgs[org.id] = org
            return org.id

    def add_org_field(
        self, name: str, field_type: str = "varchar", *, company_id: int | None = None
    ) -> str:
        """Create a custom organization field (as an admin would); returns its 40-hex code."""
        with self._lock:
            if field_type not in _CUSTOM_FIELD_TYPES or field_type in ("enum", "set"):
                raise ValueError(f"unsupported organization field type {field_type!r}")
            code = secrets.token_hex(20)
            self.company(company_id).org_fields[code] = DealField(code, name, field_type, True)
            return code

    def org(self, org_id: int, *, company_id: int | None = None) -> Organization:
        """A snapshot of an organization."""
        with self._lock:
            org = self.company(company_id).orgs.get(org_id)
            if org is None:
                raise KeyError(f"unknown organization {org_id}")
            return copy.deepcopy(org)

    def add_person(
        self,
        name: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        emails: Sequence[Mapping[str, Any]] = (),
        phones: Sequence[Mapping[str, Any]] = (),
        org_id: int | None = None,
        owner_id: int | None = None,
        company_id: int | None = None,
    ) -> int:
        """A person; `email`/`phone` add one primary "work" entry each."""
        with self._lock:
            company, now = self.company(company_id), self._clock.now()
            if org_id is not None and org_id not in company.orgs:
                raise KeyError(f"unknown organization {org_id}")
            person = Person(
                company.next_id("person"),
                name,
                owner_id or self._fake.user_id,
                now,
                now,
                org_id,
                _contact_list(email, emails),
                _contact_list(phone, phones),
            )
            company.persons[person.id] = person
            return person.id

    def add_product(
        self,
        name: str,
        *,
        code: str | None = None,
        price: Decimal | int | str | None = None,
        currency: str = DEFAULT_CURRENCY,
        prices: Mapping[str, Decimal | int | str] | None = None,
        tax: Decimal | int | str = 0,
        unit: str | None = None,
        description: str | None = None,
        company_id: int | None = None,
    ) -> int:
        """A product; `code` is the SKU. `prices` maps currency -> price."""
        all_prices = dict(prices or {})
        if price is not None:
            all_prices.setdefault(currency, price)
        with self._lock:
            company, now = self.company(company_id), self._clock.now()
            product = Product(
                company.next_id("product"),
                name,
                self._fake.user_id,
                now,
                now,
                code,
                unit,
                to_decimal(tax, "tax"),
                description,
                [ProductPrice(cur, to_decimal(p, "price")) for cur, p in all_prices.items()],
            )
            company.products[product.id] = product
            return product.id

    def add_deal(
        self,
        title: str,
        *,
        value: Decimal | int | str | None = None,
        currency: str = DEFAULT_CURRENCY,
        stage_id: int | None = None,
        pipeline_id: int = 1,
        owner_id: int | None = None,
        org_id: int | None = None,
        person_id: int | None = None,
        status: str = "open",
        expected_close_date: str | None = None,
        custom_fields: Mapping[str, Any] | None = None,
        products: Sequence[Mapping[str, Any]] = (),
        user_id: int | None = None,
        visible_to: int = 3,
        followers: Sequence[int] = (),
        company_id: int | None = None,
    ) -> int:
        """A deal as a user creates it in the UI (fires create.deal webhooks).

        `visible_to` is one of VISIBLE_TO; `followers` are user ids following the deal.

        `products` are dicts for `add_deal_product` (product_id required). With
        products and no `value`, the value is the sum of the lines, as in Pipedrive.
        """
        with self._lock:
            company, now = self.company(company_id), self._clock.now()
            stage = company.stages[stage_id] if stage_id else company.first_stage(pipeline_id)
            deal = Deal(
                company.next_id("deal"),
                title,
                to_decimal(value if value is not None else 0, "value"),
                currency,
                stage.id,
                stage.pipeline_id,
                owner_id or self._fake.user_id,
                now,
                now,
                stage_change_time=None,
                org_id=org_id,
                person_id=person_id,
                status=status,
                expected_close_date=expected_close_date,
            )
            if visible_to not in VISIBLE_TO:
                raise ValueError(f"visible_to must be one of {VISIBLE_TO}")
            deal.visible_to = visible_to
            deal.followers = {int(uid): now for uid in followers}
            self._check_links(company, org_id, person_id)
            fields = {
                code: custom_value(company.deal_fields[code], v)
                for code, v in (custom_fields or {}).items()
            }
            deal.custom_fields.update(fields)
            company.deals[deal.id] = deal
            for line in products:
                self._attach_product(company, deal, dict(line))
            if products and value is None:
                deal.value = sum((p.sum for p in deal.products), Decimal(0))
            self._emit_deal(company, deal, "create", None, user_id, "app")
        self.webhooks.kick()
        return deal.id

    def add_deal_product(
        self, deal_id: int, product_id: int, *, company_id: int | None = None, **line: Any
    ) -> int:
        """Attach a product to a deal (item_price defaults to the product's price in the
        deal currency); the deal value becomes the lines' sum and change.deal fires."""
        with self._lock:
            company = self.company(company_id)
            deal = company.live_deal(deal_id)
            before = render_deal(deal, company)
            attached = self._attach_product(company, deal, {"product_id": product_id, **line})
            deal.value = sum((p.sum for p in deal.products), Decimal(0))
            self._after_change(company, deal, before, None, "app")
        self.webhooks.kick()
        return attached.id

    def deal(self, deal_id: int, *, company_id: int | None = None) -> Deal:
        """A snapshot of a deal (deleted ones included)."""
        with self._lock:
            deal = self.company(company_id).deals.get(deal_id)
            if deal is None:
                raise KeyError(f"unknown deal {deal_id}")
            return copy.deepcopy(deal)

    def deals(self, *, company_id: int | None = None) -> list[Deal]:
        with self._lock:
            return [copy.deepcopy(d) for d in self.company(company_id).deals.values()]

    def update_deal(
        self,
        deal_id: int,
        *,
        user_id: int | None = None,
        change_source: ChangeSource = "app",
        company_id: int | None = None,
        **changes: Any,
    ) -> dict[str, Any]:
        """Change a deal as a user would (validated like PATCH); fires change.deal.

        Returns the webhook's `previous` (only the changed fields).
        """
        with self._lock:
            company = self.company(company_id)
            deal = company.live_deal(deal_id)
            parsed = self._parse_deal_patch(company, _jsonish(changes))
            previous = self._change_deal(company, deal, parsed, user_id, change_source)
        self.webhooks.kick()
        return previous

    def move_deal(
        self,
        deal_id: int,
        stage_id: int,
        *,
        user_id: int | None = None,
        company_id: int | None = None,
    ) -> dict[str, Any]:
        """Drag a deal to another stage in the UI (change_source "app")."""
        return self.update_deal(deal_id, stage_id=stage_id, user_id=user_id, company_id=company_id)

    def delete_deal(
        self, deal_id: int, *, user_id: int | None = None, company_id: int | None = None
    ) -> None:
        """Delete a deal in the UI; fires delete.deal with data null and previous = last state."""
        with self._lock:
            company = self.company(company_id)
            deal = company.live_deal(deal_id)
            last = render_deal(deal, company)
            deal.is_deleted, deal.update_time = True, self._clock.now()
            self._emit(
                company, "deal", "delete", deal.id, None, last, user_id, "app", (deal.owner_id,)
            )
        self.webhooks.kick()

    def activities(self, *, company_id: int | None = None) -> list[Activity]:
        with self._lock:
            return [copy.deepcopy(a) for a in self.company(company_id).activities.values()]

    # ----- limits, calls, faults ------------------------------------------------------

    @property
    def limits(self) -> RateLimits:
        return self.limiter.limits

    def tokens_spent(self, company_id: int | None = None) -> int:
        """Tokens the company has spent today (UTC, fake clock)."""
        cid = self._fake.company_id if company_id is None else company_id
        with self._lock:
            return self.limiter.spent_today(cid)

    def reset_rate_limits(self) -> None:
        with self._lock:
            self.limiter.reset()

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            return self.faults.add(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def count_calls(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        company_id: int | None = None,
    ) -> int:
        """Calls matching all given filters; `path_prefix` may omit ``/api/v2``."""
        return sum(
            1
            for call in self.calls
            if (method is None or call.method == method.upper())
            and path_matches(path_prefix, call.path)
            and (status is None or call.status == status)
            and (company_id is None or call.company_id == company_id)
        )

    # ----- webhooks -----------------------------------------------------------------

    def remove_app_webhooks(self, company_id: int, user_id: int) -> int:
        """Uninstall: drop this app's webhooks made by that user in that company."""
        with self._lock:
            doomed = [
                h.id
                for h in self.webhooks.hooks_of(company_id, self._fake.client_id)
                if h.user_id == user_id
            ]
            for hook_id in doomed:
                self.webhooks.remove(hook_id)
            return len(doomed)

    # ----- routing and the per-call pipeline ----------------------------------------

    def _register_routes(self) -> None:
        routes = [
            _Route("GET", "/api/v2/deals", self._list_deals, DEALS_READ),
            _Route(
                "GET",
                "/api/v2/deals/products",
                self._batch_deal_products,
                DEALS_READ + PRODUCTS_READ,
            ),
            _Route("GET", "/api/v2/deals/<deal_id>", self._get_deal, DEALS_READ),
            # client-php docs/versions/v2/Api/DealsApi.md getDealFollowers: deals:read, deals:full
            _Route("GET", "/api/v2/deals/<deal_id>/followers", self._deal_followers, DEALS_READ),
            _Route("PATCH", "/api/v2/deals/<deal_id>", self._patch_deal, DEALS_WRITE),
            _Route(
                "GET",
                "/api/v2/deals/<deal_id>/products",
                self._deal_products,
                DEALS_READ + PRODUCTS_READ,
            ),
            _Route("GET", "/api/v2/products", self._list_products, PRODUCTS_READ),
            _Route("GET", "/api/v2/organizations", self._list_orgs, CONTACTS_READ),
            _Route("GET", "/api/v2/persons", self._list_persons, CONTACTS_READ),
            _Route("GET", "/api/v2/products/<product_id>", self._get_product, PRODUCTS_READ),
            _Route("GET", "/api/v2/organizations/<org_id>", self._get_org, CONTACTS_READ),
            _Route("PATCH", "/api/v2/organizations/<org_id>", self._patch_org, CONTACTS_WRITE),
            _Route("GET", "/api/v2/persons/<person_id>", self._get_person, CONTACTS_READ),
            _Route("GET", "/api/v2/stages", self._list_stages, DEALS_READ + ADMIN),
            _Route("GET", "/api/v2/stages/<stage_id>", self._get_stage, DEALS_READ + ADMIN),
            _Route("GET", "/api/v2/pipelines", self._list_pipelines, DEALS_READ + ADMIN),
            _Route(
                "GET", "/api/v2/pipelines/<pipeline_id>", self._get_pipeline, DEALS_READ + ADMIN
            ),
            _Route("GET", "/api/v2/dealFields", self._list_deal_fields, DEALS_READ + ADMIN),
            _Route(
                "GET", "/api/v2/dealFields/<field_code>", self._get_deal_field, DEALS_READ + ADMIN
            ),
            _Route("POST", "/api/v2/dealFields", self._post_deal_field, ADMIN),
            _Route("POST", "/api/v2/activities", self._post_activity_v2, ACTIVITIES_WRITE),
            _Route("POST", "/api/v1/activities", self._post_activity_v1, ACTIVITIES_WRITE),
            _Route("GET", "/api/v1/users/<user_id>", self._get_user, USERS_READ),
            _Route("GET", "/api/v1/webhooks", self._list_webhooks, WEBHOOKS_READ),
            _Route("POST", "/api/v1/webhooks", self._post_webhook, WEBHOOKS_WRITE),
            _Route("DELETE", "/api/v1/webhooks/<webhook_id>", self._delete_webhook, WEBHOOKS_WRITE),
        ]
        for route in routes:
            self.limits.cost_of(route.method, route.rule)  # every route has a cost
            self._fake.route(route.rule, self._endpoint(route), methods=(route.method,))

    def _endpoint(self, route: _Route) -> Callable[..., Response]:
        def view(request: Request, **path_values: str) -> Response:
            return self._serve(request, route, path_values)

        return view

    def _serve(self, request: Request, route: _Route, path_values: dict[str, str]) -> Response:
        arrived = self._clock.now()
        try:
            access = self._fake.require_bearer(request)
        except HTTPException as exc:
            self._log(request, None, None, exc.code or 401, 0, arrived)
            raise
        consent = access.grant.consent
        company_id, user_id = consent.company_id, consent.user_id
        cost = self.limits.cost_of(route.method, route.rule)
        with self._lock:
            gate = self._gate(request, company_id, user_id, cost)
        grant = access.grant
        response = self._respond(request, route, path_values, grant.scopes, gate, consent)
        with self._lock:
            headers = self.limiter.headers(company_id, user_id)
        if gate.admission is not None and gate.admission.problem is None:
            response.headers.update(headers)
        fault = gate.fault.kind if gate.fault else None
        limited = gate.admission.problem if gate.admission else None
        self._log(
            request, company_id, user_id, response.status_code, gate.tokens, arrived, fault, limited
        )
        self.webhooks.kick()
        return response

    def _gate(self, request: Request, company_id: int, user_id: int, cost: int) -> _Gate:
        """Injected 429 (free), else the limits (charged), else any other fault."""
        fault = self.faults.find(request.method, request.path, company_id)
        if fault is not None and fault.kind == "429":
            self.faults.use(fault)
            return _Gate(fault, None, 0)
        admission = self.limiter.admit(company_id, user_id, cost)
        if admission.problem is not None:
            return _Gate(None, admission, 0)
        if fault is not None:
            self.faults.use(fault)
        return _Gate(fault, admission, cost)

    def _respond(
        self,
        request: Request,
        route: _Route,
        path_values: dict[str, str],
        scopes: tuple[str, ...],
        gate: _Gate,
        consent: PipedriveInstall,
    ) -> Response:
        fault, admission = gate.fault, gate.admission
        if fault is not None and fault.kind == "429":
            with self._lock:
                headers = self.limiter.headers(consent.company_id, consent.user_id)
            headers["x-ratelimit-remaining"] = "0"
            return too_many_requests("burst", headers, int(headers["x-ratelimit-reset"]))
        if admission is not None and admission.problem is not None:
            return too_many_requests(
                admission.problem, admission.headers, admission.retry_after or 1
            )
        if fault is not None and fault.kind == "5xx":
            status = fault.status or 500
            return ApiError(
                status, "injected fault: the call was not processed", "ERR_INTERNAL"
            ).response()
        if fault is not None and fault.kind == "slow" and fault.delay:
            time.sleep(fault.delay)  # real seconds: lets clients time out
        if not set(scopes) & set(route.scopes):
            return scope_mismatch().response()
        with self._lock:
            company = self._company_for(consent)
            ctx = Ctx(request, company, consent.user_id, self._fake.client_id)
            try:
                return route.handler(ctx, **path_values)
            except ApiError as err:
                return err.response()

    def _company_for(self, consent: PipedriveInstall) -> CompanyData:
        data = self._companies.get(consent.company_id)
        if data is None:
            data = CompanyData(consent.company_id, consent.company_domain, self._clock.now())
            self._companies[consent.company_id] = data
        return data

    def _log(
        self,
        request: Request,
        company_id: int | None,
        user_id: int | None,
        status: int,
        tokens: int,
        arrived: float,
        fault: FaultKind | None = None,
        limited: LimitProblem | None = None,
    ) -> None:
        call = ApiCall(
            request.method,
            request.path,
            request.query_string.decode("latin-1"),
            company_id,
            user_id,
            status,
            tokens,
            arrived,
            fault,
            limited,
        )
        with self._lock:
            self._calls.append(call)

    # ----- deals ----------------------------------------------------------------------

    def _get_deal(self, ctx: Ctx, deal_id: str) -> Response:
        deal = ctx.company.live_deal(path_id(deal_id, "id"))
        return _ok(render_deal(deal, ctx.company, _custom_field_filter(ctx.request)))

    def _deal_followers(self, ctx: Ctx, deal_id: str) -> Response:
        """v2 getDealFollowers: FollowerItem {user_id, add_time} (client-php
        docs/versions/v2/Model/FollowerItem.md), paged like the other v2 lists."""
        deal = ctx.company.live_deal(path_id(deal_id, "id"))
        items = [{"user_id": uid, "add_time": api_time(at)} for uid, at in sorted(deal.followers.items())]
        chunk, extra = page(ctx.request, items)
        return _ok(chunk, extra)

    def _list_deals(self, ctx: Ctx) -> Response:
        request = ctx.request
        query = DealQuery.parse(request)
        deals = [d for d in ctx.company.deals.values() if query.matches(d)]
        sort_items(request, deals, {"id": _by_id, "update_time": _by_update, "add_time": _by_add})
        chunk, extra = page(request, deals)
        only = _custom_field_filter(request)
        return _ok([render_deal(d, ctx.company, only) for d in chunk], extra)

    def _patch_deal(self, ctx: Ctx, deal_id: str) -> Response:
        deal = ctx.company.live_deal(path_id(deal_id, "id"))
        changes = self._parse_deal_patch(ctx.company, read_json_object(ctx.request))
        self._change_deal(ctx.company, deal, changes, ctx.user_id, "api")
        return _ok(render_deal(deal, ctx.company))

    def _parse_deal_patch(self, company: CompanyData, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a v2 deal update; unknown keys are refused (custom fields go under
        `custom_fields` in v2, not at the top level as in v1)."""
        unknown = set(body) - _DEAL_PATCH_KEYS
        if unknown:
            hint = (
                " (custom fields go under custom_fields in API v2)"
                if any(_HASH.match(k) for k in unknown)
                else ""
            )
            raise bad_request(f"Unknown field(s): {', '.join(sorted(unknown))}{hint}")
        changes: dict[str, Any] = {}
        for key, value in body.items():
            changes[key] = self._deal_value(company, key, value)
        stage_id, pipeline_id = changes.get("stage_id"), changes.get("pipeline_id")
        if stage_id is not None and pipeline_id not in (None, company.stages[stage_id].pipeline_id):
            raise bad_request("stage_id does not belong to pipeline_id")
        return changes

    def _deal_value(self, company: CompanyData, key: str, value: Any) -> Any:
        if key == "custom_fields":
            return self._custom_fields_patch(company, value)
        if key == "title":
            title = expect_text(value, key)
            if not title:
                raise bad_request("title must not be empty")
            return title
        if key == "value":
            return expect_number(value, key)
        if key == "currency":
            if not isinstance(value, str) or not _CURRENCY.match(value):
                raise bad_request("currency must be a 3-letter currency code")
            return value
        if key == "status":
            if value not in ("open", "won", "lost"):
                raise bad_request("status must be one of open, won, lost")
            return value
        if key == "expected_close_date":
            return expect_date(value, key)
        if key == "won_time":
            return expect_won_time(value, key)
        if key == "lost_reason":
            return expect_text(value, key, nullable=True)
        return self._deal_reference(company, key, value)

    @staticmethod
    def _deal_reference(company: CompanyData, key: str, value: Any) -> int | None:
        nullable = key in ("org_id", "person_id", "probability")
        number = expect_int(value, key, nullable=nullable)
        tables: dict[str, Mapping[int, Any]] = {
            "stage_id": company.stages,
            "pipeline_id": company.pipelines,
            "org_id": company.orgs,
            "person_id": company.persons,
        }
        if number is not None and key in tables and number not in tables[key]:
            raise bad_request(f"{key} {number} does not exist")
        if key == "probability" and number is not None and not 0 <= number <= 100:
            raise bad_request("probability must be between 0 and 100")
        return number

    @staticmethod
    def _custom_fields_patch(company: CompanyData, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise bad_request("custom_fields must be an object of field code -> value")
        parsed: dict[str, Any] = {}
        for code, item in value.items():
            deal_field = company.deal_fields.get(code)
            if deal_field is None or not deal_field.is_custom_field:
                raise bad_request(f"Unknown custom field: {code}")
            parsed[code] = custom_value(deal_field, item)
        return parsed

    def _change_deal(
        self,
        company: CompanyData,
        deal: Deal,
        changes: Mapping[str, Any],
        user_id: int | None,
        source: ChangeSource,
    ) -> dict[str, Any]:
        """Apply validated changes; fire change.deal if anything changed. Returns previous."""
        if "won_time" in changes and changes.get("status", deal.status) != "won":
            raise bad_request("won_time can only be set if deal status is won")
        before = render_deal(deal, company)
        now = self._clock.now()
        for key, value in changes.items():
            if key == "won_time":
                continue
            if key == "custom_fields":
                deal.custom_fields.update(value)
            else:
                setattr(deal, key, value)
        if "stage_id" in changes:
            deal.pipeline_id = company.stages[deal.stage_id].pipeline_id
        elif (
            "pipeline_id" in changes
            and company.stages[deal.stage_id].pipeline_id != deal.pipeline_id
        ):
            deal.stage_id = company.first_stage(deal.pipeline_id).id
        if deal.stage_id != before["stage_id"]:
            deal.stage_change_time = now
        if "status" in changes and changes["status"] != before["status"]:
            _stamp_status(deal, now)
        if "won_time" in changes:
            # "Can be set only when deal status is already Won" (pipedrive/client-nodejs
            # docs/BasicDeal.md, won_time; v2 client-php DealRequestBody: "Can only be set if
            # deal status is won"). The docs do not say whether a status=won in the same
            # request counts: the fake accepts it (checked above), the stated time then wins
            # over "now".
            deal.won_time = deal.close_time = changes["won_time"]
        return self._after_change(company, deal, before, user_id, source)

    def _after_change(
        self,
        company: CompanyData,
        deal: Deal,
        before: dict[str, Any],
        user_id: int | None,
        source: ChangeSource,
    ) -> dict[str, Any]:
        after = render_deal(deal, company)
        previous = _changed(before, after)
        if previous:
            deal.update_time = self._clock.now()
            self._emit_deal(company, deal, "change", previous, user_id, source)
        return previous

    def _emit_deal(
        self,
        company: CompanyData,
        deal: Deal,
        action: str,
        previous: dict[str, Any] | None,
        user_id: int | None,
        source: ChangeSource,
    ) -> None:
        data = render_deal(deal, company)
        self._emit(
            company, "deal", action, deal.id, data, previous, user_id, source, (deal.owner_id,)
        )

    def _emit(
        self,
        company: CompanyData,
        entity: str,
        action: str,
        entity_id: int,
        data: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        user_id: int | None,
        source: ChangeSource,
        owners: tuple[int, ...],
    ) -> None:
        actor = user_id if user_id is not None else self._fake.user_id
        event = EventInfo(
            company, entity, action, entity_id, data, previous, actor, source, (*owners, actor)
        )
        self.webhooks.emit(event)

    def _check_links(self, company: CompanyData, org_id: int | None, person_id: int | None) -> None:
        if org_id is not None and org_id not in company.orgs:
            raise KeyError(f"unknown organization {org_id}")
        if person_id is not None and person_id not in company.persons:
            raise KeyError(f"unknown person {person_id}")

    # ----- deal products ----------------------------------------------------------------

    def _attach_product(
        self, company: CompanyData, deal: Deal, line: dict[str, Any]
    ) -> DealProduct:
        product = company.products.get(line.pop("product_id"))
        if product is None:
            raise KeyError("unknown product")
        price = line.pop("item_price", None)
        if price is None:
            price = next(
                (p.price for p in product.prices if p.currency == deal.currency), Decimal(0)
            )
        now = self._clock.now()
        attached = DealProduct(
            company.next_id("deal_product"),
            deal.id,
            product.id,
            line.pop("name", product.name),
            to_decimal(price, "item_price"),
            to_decimal(line.pop("quantity", 1), "quantity"),
            deal.currency,
            now,
            now,
            discount=to_decimal(line.pop("discount", 0), "discount"),
            discount_type=line.pop("discount_type", "percentage"),
            tax=to_decimal(line.pop("tax", product.tax), "tax"),
            tax_method=line.pop("tax_method", "none"),
            comments=line.pop("comments", None),
        )
        if line:
            raise TypeError(f"unknown deal product fields: {sorted(line)}")
        if attached.discount_type not in ("percentage", "amount"):
            raise ValueError("discount_type must be percentage or amount")
        if attached.tax_method not in ("exclusive", "inclusive", "none"):
            raise ValueError("tax_method must be exclusive, inclusive or none")
        deal.products.append(attached)
        return attached

    def _deal_products(self, ctx: Ctx, deal_id: str) -> Response:
        deal = ctx.company.live_deal(path_id(deal_id, "id"))
        lines = list(deal.products)
        sort_items(
            ctx.request, lines, {"id": _by_id, "add_time": _by_add, "update_time": _by_update}
        )
        chunk, extra = page(ctx.request, lines)
        return _ok([render_deal_product(line) for line in chunk], extra)

    def _batch_deal_products(self, ctx: Ctx) -> Response:
        """v2 GET /deals/products?deal_ids=... (up to 100 deals, one flat list)."""
        deal_ids = query_ints(ctx.request, "deal_ids")
        if not deal_ids:
            raise bad_request("deal_ids is required")
        lines = [
            line
            for deal_id in deal_ids
            if (deal := ctx.company.deals.get(deal_id)) is not None and not deal.is_deleted
            for line in deal.products
        ]
        sort_items(
            ctx.request, lines, {"id": _by_id, "add_time": _by_add, "update_time": _by_update}
        )
        chunk, extra = page(ctx.request, lines)
        return _ok([render_deal_product(line) for line in chunk], extra)

    # ----- products, organisations, persons ------------------------------------------

    def _list_products(self, ctx: Ctx) -> Response:
        return self._list_by_ids(ctx, ctx.company.products, render_product)

    def _list_orgs(self, ctx: Ctx) -> Response:
        return self._list_by_ids(ctx, ctx.company.orgs, lambda o: render_org(o, ctx.company))

    def _list_persons(self, ctx: Ctx) -> Response:
        return self._list_by_ids(ctx, ctx.company.persons, render_person)

    @staticmethod
    def _list_by_ids(ctx: Ctx, records: Mapping[int, Any],
                     render: Callable[[Any], dict[str, Any]]) -> Response:
        """`GET /api/v2/<things>[?ids=1,2,3]`: up to 100 ids; unknown ids are left out."""
        raw = ctx.request.args.get("ids", "")
        ids = [path_id(i.strip(), "ids") for i in raw.split(",") if i.strip()]
        if len(ids) > 100:
            raise bad_request("ids: at most 100")
        chosen = [records[i] for i in ids if i in records] if raw else list(records.values())
        chunk, extra = page(ctx.request, chosen)
        return _ok([render(r) for r in chunk], extra)

    def _get_product(self, ctx: Ctx, product_id: str) -> Response:
        product = ctx.company.products.get(path_id(product_id, "id"))
        if product is None:
            raise not_found("Product")
        return _ok(render_product(product))

    def _get_org(self, ctx: Ctx, org_id: str) -> Response:
        return _ok(render_org(self._live_org(ctx, org_id), ctx.company))

    def _patch_org(self, ctx: Ctx, org_id: str) -> Response:
        """v2 UpdateOrganizationRequest (pipedrive/client-nodejs src/versions/v2/models/
        update-organization-request.ts). `address` replaces the whole address object
        (unverified: the docs show no partial-address update); custom fields must exist."""
        org = self._live_org(ctx, org_id)
        body = read_json_object(ctx.request)
        unmodelled = set(body) & _ORG_PATCH_UNMODELLED
        if unmodelled:
            raise bad_request(f"sandbox: {', '.join(sorted(unmodelled))} not modelled")
        unknown = set(body) - _ORG_PATCH_KEYS - _ORG_PATCH_UNMODELLED
        if unknown:
            raise bad_request(f"Unknown field(s): {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = expect_text(body["name"], "name")
            if not changes["name"]:
                raise bad_request("name must not be empty")
        if "owner_id" in body:
            changes["owner_id"] = expect_int(body["owner_id"], "owner_id")
        if "website" in body:
            changes["website"] = expect_text(body["website"], "website", nullable=True)
        if "address" in body:
            changes["address"] = _address_patch(body["address"])
        if "custom_fields" in body:
            changes["custom_fields"] = self._org_custom_fields(ctx.company, body["custom_fields"])
        before = render_org(org, ctx.company)
        for key, value in changes.items():
            if key == "custom_fields":
                org.custom_fields.update(value)
            else:
                setattr(org, key, value)
        after = render_org(org, ctx.company)
        previous = _changed(before, after)
        if previous:
            org.update_time = self._clock.now()
            after = render_org(org, ctx.company)
            self._emit(ctx.company, "organization", "change", org.id, after, previous,
                       ctx.user_id, "api", (org.owner_id,))
        return _ok(after)

    @staticmethod
    def _live_org(ctx: Ctx, org_id: str) -> Organization:
        org = ctx.company.orgs.get(path_id(org_id, "id"))
        if org is None:
            raise not_found("Organization")
        return org

    @staticmethod
    def _org_custom_fields(company: CompanyData, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise bad_request("custom_fields must be an object of field code -> value")
        parsed: dict[str, Any] = {}
        for code, item in value.items():
            org_field = company.org_fields.get(code)
            if org_field is None:
                raise bad_request(f"Unknown custom field: {code}")
            parsed[code] = custom_value(org_field, item)
        return parsed

    def _get_user(self, ctx: Ctx, user_id: str) -> Response:
        """v1 GetUser (developers.pipedrive.com/docs/api/v1/Users#getUser): the user's data
        with `is_admin`; the v1 envelope `{success, data}`."""
        uid = path_id(user_id, "id")
        if uid == self._fake.user_id:
            name, email, admin = self._fake.user_name, self._fake.user_email, True
        elif uid in ctx.company.users:
            name, email, admin = ctx.company.users[uid]
        else:
            raise not_found("User")
        return _ok({"id": uid, "name": name, "email": email, "is_admin": admin,
                    "active_flag": True, "company_id": ctx.company.company_id})

    def add_user(self, name: str, email: str, *, is_admin: bool = False,
                 company_id: int | None = None) -> int:
        """Another user of the company (Settings > Manage users in Pipedrive's UI)."""
        with self._lock:
            company = self.company(company_id)
            uid = self._fake.user_id + 1000 + len(company.users)
            company.users[uid] = (name, email, is_admin)
            return uid

    def _get_person(self, ctx: Ctx, person_id: str) -> Response:
        person = ctx.company.persons.get(path_id(person_id, "id"))
        if person is None:
            raise not_found("Person")
        return _ok(render_person(person))

    # ----- stages and pipelines -------------------------------------------------------

    def _list_stages(self, ctx: Ctx) -> Response:
        pipeline_id = query_int(ctx.request, "pipeline_id")
        stages = [s for s in ctx.company.stages.values() if pipeline_id in (None, s.pipeline_id)]
        stages.sort(key=lambda s: (s.pipeline_id, s.order_nr))
        chunk, extra = page(ctx.request, stages)
        return _ok([render_stage(s) for s in chunk], extra)

    def _get_stage(self, ctx: Ctx, stage_id: str) -> Response:
        stage = ctx.company.stages.get(path_id(stage_id, "id"))
        if stage is None:
            raise not_found("Stage")
        return _ok(render_stage(stage))

    def _list_pipelines(self, ctx: Ctx) -> Response:
        pipelines = sorted(ctx.company.pipelines.values(), key=lambda p: p.order_nr)
        chunk, extra = page(ctx.request, pipelines)
        return _ok([render_pipeline(p) for p in chunk], extra)

    def _get_pipeline(self, ctx: Ctx, pipeline_id: str) -> Response:
        pipeline = ctx.company.pipelines.get(path_id(pipeline_id, "id"))
        if pipeline is None:
            raise not_found("Pipeline")
        return _ok(render_pipeline(pipeline))

    # ----- deal fields ----------------------------------------------------------------

    def _list_deal_fields(self, ctx: Ctx) -> Response:
        chunk, extra = page(ctx.request, list(ctx.company.deal_fields.values()))
        return _ok([render_deal_field(f) for f in chunk], extra)

    def _get_deal_field(self, ctx: Ctx, field_code: str) -> Response:
        deal_field = ctx.company.deal_fields.get(field_code)
        if deal_field is None:
            raise not_found("Field")
        return _ok(render_deal_field(deal_field))

    def _post_deal_field(self, ctx: Ctx) -> Response:
        deal_field = self._create_deal_field(ctx.company, read_json_object(ctx.request))
        return _ok(render_deal_field(deal_field))

    @staticmethod
    def _create_deal_field(company: CompanyData, body: Mapping[str, Any]) -> DealField:
        name = expect_text(body.get("field_name"), "field_name")
        kind = body.get("field_type")
        if not name:
            raise bad_request("field_name is required")
        if kind not in _CUSTOM_FIELD_TYPES:
            raise bad_request(f"field_type must be one of {', '.join(_CUSTOM_FIELD_TYPES)}")
        options = _field_options(kind, body.get("options"))
        description = expect_text(body.get("description"), "description", nullable=True)
        code = secrets.token_hex(20)  # a 40-character hash, as Pipedrive's custom field keys
        deal_field = DealField(code, name, kind, True, options, description)
        company.deal_fields[code] = deal_field
        return deal_field

    # ----- activities -------------------------------------------------------------------

    def _post_activity_v2(self, ctx: Ctx) -> Response:
        body = read_json_object(ctx.request)
        activity = self._create_activity(ctx, body, owner_key="owner_id")
        return _ok(render_activity(activity))

    def _post_activity_v1(self, ctx: Ctx) -> Response:
        """v1 is out of support since 2026-08-01 (platform-facts); kept for older callers."""
        body = read_v1_body(ctx.request)
        activity = self._create_activity(ctx, body, owner_key="user_id")
        return json_body({"success": True, "data": render_activity(activity, v1=True)}, 201)

    def _create_activity(self, ctx: Ctx, body: Mapping[str, Any], owner_key: str) -> Activity:
        company, now = ctx.company, self._clock.now()
        subject = expect_text(body.get("subject"), "subject")
        if not subject:
            raise bad_request("subject is required")
        deal_id = _optional_int(body.get("deal_id"), "deal_id")
        if deal_id is not None:
            company.live_deal(deal_id)
        due_time = body.get("due_time")
        if due_time is not None and (not isinstance(due_time, str) or not _TIME.match(due_time)):
            raise bad_request("due_time must be HH:MM")
        activity = Activity(
            company.next_id("activity"),
            subject,
            str(body.get("type") or "task"),
            _optional_int(body.get(owner_key), owner_key) or ctx.user_id,
            now,
            now,
            deal_id=deal_id,
            person_id=_optional_int(body.get("person_id"), "person_id"),
            org_id=_optional_int(body.get("org_id"), "org_id"),
            due_date=expect_date(body.get("due_date"), "due_date"),
            due_time=due_time,
            duration=expect_text(body.get("duration"), "duration", nullable=True),
            note=expect_text(body.get("note"), "note", nullable=True, max_len=100_000),
            done=body.get("done") in (True, 1, "1", "true"),
        )
        company.activities[activity.id] = activity
        data = render_activity(activity)
        self._emit(
            company,
            "activity",
            "create",
            activity.id,
            data,
            None,
            ctx.user_id,
            "api",
            (activity.owner_id,),
        )
        return activity

    # ----- webhooks (v1 endpoints) ---------------------------------------------------

    def _list_webhooks(self, ctx: Ctx) -> Response:
        hooks = self.webhooks.hooks_of(ctx.company.company_id, ctx.client_id)
        return json_body(
            {"status": "ok", "success": True, "data": [render_webhook(h) for h in hooks]}
        )

    def _post_webhook(self, ctx: Ctx) -> Response:
        body = read_v1_body(ctx.request)
        fields = _webhook_fields(body)
        mine = [
            h
            for h in self.webhooks.hooks_of(ctx.company.company_id, ctx.client_id)
            if h.user_id == ctx.user_id
        ]
        if len(mine) >= MAX_WEBHOOKS_PER_USER:
            raise bad_request(
                f"An app can create at most {MAX_WEBHOOKS_PER_USER} webhooks per user"
            )
        hook = self.webhooks.add(
            company_id=ctx.company.company_id,
            user_id=ctx.user_id,
            client_id=ctx.client_id,
            **fields,
        )
        return json_body({"status": "ok", "success": True, "data": render_webhook(hook)}, 201)

    def _delete_webhook(self, ctx: Ctx, webhook_id: str) -> Response:
        hook = self.webhooks.get(path_id(webhook_id, "id"))
        if (
            hook is None
            or hook.company_id != ctx.company.company_id
            or hook.client_id != ctx.client_id
        ):
            raise not_found("Webhook")
        self.webhooks.remove(hook.id)
        return json_body({"status": "ok", "success": True, "data": {"id": hook.id}})


# ======================================================================================
# Small helpers
# ======================================================================================


def _ok(data: Any, additional: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return json_body(body)


def _by_id(item: Any) -> Any:
    return item.id


def _by_add(item: Any) -> Any:
    return (item.add_time, item.id)


def _by_update(item: Any) -> Any:
    return (item.update_time, item.id)


def _custom_field_filter(request: Request) -> set[str] | None:
    raw = request.args.get("custom_fields")
    if raw is None:
        return None
    keys = {k.strip() for k in raw.split(",") if k.strip()}
    if len(keys) > MAX_CUSTOM_FIELD_KEYS:
        raise bad_request(f"custom_fields accepts at most {MAX_CUSTOM_FIELD_KEYS} keys")
    return keys


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`previous`: old values of the fields that changed (custom fields nested).

    `update_time` is left out; derived fields (pipeline_id, stage_change_time,
    won_time...) are kept when they changed (unverified either way).
    """
    previous = {
        key: before[key]
        for key in before
        if key not in ("update_time", "custom_fields") and before[key] != after[key]
    }
    old, new = before["custom_fields"], after["custom_fields"]
    custom = {code: old.get(code) for code in new if old.get(code) != new[code]}
    if custom:
        previous["custom_fields"] = custom
    return previous


def _stamp_status(deal: Deal, now: float) -> None:
    if deal.status == "won":
        deal.won_time = deal.close_time = now
    elif deal.status == "lost":
        deal.lost_time = deal.close_time = now
    else:
        deal.close_time = None


def _jsonish(values: Mapping[str, Any]) -> dict[str, Any]:
    """Helper arguments as a JSON body would carry them (str/int money -> Decimal)."""
    converted: dict[str, Any] = {}
    for key, value in values.items():
        if key == "value" and isinstance(value, str | float):
            value = to_decimal(value, key)
        converted[key] = value
    return converted


def _optional_int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit():  # v1 form bodies carry strings
        return int(value)
    return expect_int(value, name)


def _address(address: str | Mapping[str, str | None] | None) -> dict[str, str | None] | None:
    if address is None:
        return None
    parts = {"value": address} if isinstance(address, str) else dict(address)
    unknown = set(parts) - set(ADDRESS_KEYS)
    if unknown:
        raise KeyError(f"unknown address parts: {sorted(unknown)}")
    return {key: parts.get(key) for key in ADDRESS_KEYS}


def _address_patch(value: Any) -> dict[str, str | None] | None:
    """A v2 OrganizationItemAddress in a request: known text parts only (`formatted_address`
    is Pipedrive's own); null clears the address."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request("address must be an object")
    unknown = set(value) - _ADDRESS_WRITE_KEYS
    if unknown:
        raise bad_request(f"Unknown address field(s): {', '.join(sorted(unknown))}")
    parts = {key: expect_text(item, f"address.{key}", nullable=True) for key, item in value.items()}
    return {key: parts.get(key) for key in ADDRESS_KEYS}


def _contact_list(single: str | None, many: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    entries = [dict(e) for e in many]
    if single is not None:
        entries.insert(0, {"value": single, "primary": True, "label": "work"})
    for entry in entries:
        entry.setdefault("primary", False)
        entry.setdefault("label", "work")
    return entries


def _field_options(kind: str, raw: Any) -> list[dict[str, Any]] | None:
    if kind not in ("enum", "set"):
        return None
    if not isinstance(raw, list) or not raw:
        raise bad_request("options are required for enum and set fields")
    options = []
    for number, option in enumerate(raw, start=1):
        label = option.get("label") if isinstance(option, dict) else None
        if not isinstance(label, str) or not label:
            raise bad_request("each option needs a label")
        options.append({"id": number, "label": label})
    return options


def _webhook_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a POST /v1/webhooks body (guide-for-webhooks-v2 "Body parameters")."""
    url = body.get("subscription_url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise bad_request("subscription_url must be a full http(s) URL")
    action, obj = body.get("event_action"), body.get("event_object")
    if action not in EVENT_ACTIONS:
        raise bad_request(f"event_action must be one of {', '.join(EVENT_ACTIONS)}")
    if obj not in EVENT_OBJECTS:
        raise bad_request(f"event_object must be one of {', '.join(EVENT_OBJECTS)}")
    version = str(body.get("version") or "2.0")  # docs: 2.0 is the default
    if version != "2.0":
        raise bad_request("this sandbox implements webhooks version 2.0 only")
    return {
        "subscription_url": url,
        "event_action": action,
        "event_object": obj,
        "version": version,
        "http_auth_user": expect_text(body.get("http_auth_user"), "http_auth_user", nullable=True),
        "http_auth_password": expect_text(
            body.get("http_auth_password"), "http_auth_password", nullable=True
        ),
        "name": _webhook_name(body.get("name")),
    }


def _webhook_name(raw: Any) -> str:
    """`name` is required: pipedrive/client-nodejs src/versions/v1/models/add-webhook-request.ts
    (AddWebhookRequest, `'name': string` with no `?`, since Build 272, commit 43929e5d,
    2025-09-02). Pipedrive's answer to a missing required field is a 400 with its usual
    `{"success": false, "error": ...}` body (the message text is ours: unverified)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise WebhookBadRequest("name is required", {"name": "is required"})
    return str(expect_text(raw, "name"))


__all__ = [
    "ApiCall",
    "ApiError",
    "CompanyData",
    "Deal",
    "DealField",
    "DealProduct",
    "DeliveryResult",
    "DroppedEvent",
    "Fault",
    "FaultKind",
    "PipedriveApi",
    "RateLimits",
    "Webhook",
    "WebhookDispatcher",
    "dumps",
]
