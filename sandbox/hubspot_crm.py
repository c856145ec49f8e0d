"""Stateful fake of HubSpot's CRM API and of HubSpot's webhook delivery, for `FakeHubSpot`.

Served on the fake's root, so hubspot-api-client 12.x works against it unchanged::

    HubSpot(access_token=token, host=server.url)

(the SDK's `Configuration.host` setter replaces the base URL and the generated APIs
append their own ``/crm/v3/...`` paths; see tests/sandbox/test_hubspot_crm.py).

What it models (sources: shared/notes/platform-facts.md "HubSpot", the vendored specs in
shared/specs/hubspot/, the hubspot-api-client 12.0 source):

- per-portal CRM state (`PortalCrm`, reached through ``fake.crm``): deals, companies,
  contacts, line items, products, tasks, owners, associations, the default "Sales
  Pipeline", property definitions and groups, property history;
- the v3 object endpoints (single, list, batch read/create/update, search), v4
  association reads (each input paged by ``after``), pipelines, properties and groups
  (unpaged, as the specs say), owners, and the developer
  webhook-settings API (``/webhooks/v3/{appId}/...``, ``hapikey`` auth);
- query booleans (``archived``) only as ``true``/``false``, the specs' boolean form;
- production behaviour: bearer tokens from the fake's OAuth decide the portal, scope
  checks (403 MISSING_SCOPES), the 110-per-rolling-10-s limit with HubSpot's headers and
  429 body, injected faults (5xx, 429, slow), a call log;
- webhooks as HubSpot sends them: JSON arrays of up to 100 events per POST, signed with
  X-HubSpot-Signature-v3, retried with an incrementing ``attemptNumber`` up to 10 times,
  optionally duplicated. Delivery is test-driven (`WebhookHub.deliver`) unless
  ``auto_deliver`` is switched on for a live sandbox.

Wire formats follow real HubSpot: ids and property values are strings, timestamps ISO
8601 with milliseconds and ``Z``; requested properties that exist but are unset come
back as ``null`` (the specs say ``string``; see the contract tests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import requests
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from sandbox.kit.clock import Clock
from sandbox.kit.jsonio import json_response

if TYPE_CHECKING:
    from sandbox.kit.grants import AccessToken
    from sandbox.hubspot import FakeHubSpot, HubSpotInstall

API_HOST = "https://api.hubapi.com"
DEFAULT_RATE_LIMIT = 110  # platform-facts: marketplace OAuth apps, 110 requests / 10 s
DEFAULT_RATE_WINDOW_S = 10.0
DEFAULT_SEARCH_PER_SECOND = 5  # platform-facts: search 5/s
MAX_BATCH_INPUTS = 100  # platform-facts: batch update 100 per call (also read/create)
MAX_ASSOCIATION_BATCH_INPUTS = 1000  # v4 association batch read: "may not exceed 1000 IDs per
# request body" (developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api)
DEFAULT_ASSOCIATION_PAGE_SIZE = 500
"""Associations per input on one page of the v4 batch read. Unverified: the batch read's page
size is not documented; 500 is the documented default `limit` of the single-object v4 read
(associations-v4.json GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}).
Tests set `HubSpotCrmApi.association_page_size` small to page cheaply."""
MAX_SEARCH_LIMIT = 200  # deals-v3.json PublicObjectSearchRequest.limit: "up to 200"
MAX_WEBHOOK_BATCH = 100  # platform-facts: arrays of up to 100 events
MAX_WEBHOOK_ATTEMPTS = 10  # platform-facts: retried up to 10 times
WEBHOOK_TIMEOUT_S = 5.0  # platform-facts: a reply slower than 5 s is retried
WEBHOOK_CONNECT_TIMEOUT_S = 3.0
# When the next attempt is due after a failed one (fake-clock seconds), spreading ten
# attempts over roughly 24 h as HubSpot does. Index n is the wait after attempt n.
DEFAULT_RETRY_DELAYS_S: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 28800)
WEBHOOK_USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon"

SANDBOX_CRM_SCOPES: tuple[str, ...] = (
    # platform-facts' list, plus products/owners/schemas-read that reading line items'
    # products, owners and property definitions need, and companies-write for the company
    # page's import (app.settings.HUBSPOT_SCOPES).
    "oauth",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.contacts.read",
    "crm.objects.line_items.read",
    "crm.objects.products.read",
    "crm.objects.owners.read",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
)

JsonObject = dict[str, Any]


# ======================================================================================
# Wire formats
# ======================================================================================


def iso_ms(ms: int) -> str:
    """HubSpot's timestamp: ``2024-05-01T07:10:12.688Z``."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_timestamp_ms(text: str) -> int:
    """Milliseconds since the epoch from ms digits, an ISO date or an ISO datetime."""
    value = text.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        day = date.fromisoformat(value)
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def wire_value(value: object) -> str | None:
    """A seeding-helper value as HubSpot stores it (every property value is a string)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise TypeError("floats are not accepted (money is Decimal); pass Decimal, int or str")
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return iso_ms(round(aware.timestamp() * 1000))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _plain(number: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 1500.00 -> "1500"."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


# ======================================================================================
# Object types, properties, pipelines, associations
# ======================================================================================


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type and the names HubSpot uses for it."""

    name: str
    singular: str
    type_id: str
    error_label: str
    group: str
    group_label: str
    defaults: tuple[str, ...]
    """Properties returned when a read names none."""
    read_scopes: tuple[str, ...]
    """Any one of these grants reads; empty means unchecked."""
    write_scopes: tuple[str, ...]
    created_property: str = "createdate"
    modified_property: str = "hs_lastmodifieddate"

    @property
    def always(self) -> tuple[str, ...]:
        """Returned with every read, requested or not."""
        return (self.created_property, self.modified_property, "hs_object_id")

    @property
    def schema_read_scopes(self) -> tuple[str, ...]:
        # properties-v3.json / pipelines-v3.json: object read/write or schema read
        return (*self.read_scopes, *self.write_scopes, f"crm.schemas.{self.name}.read")

    @property
    def schema_write_scopes(self) -> tuple[str, ...]:
        return (f"crm.schemas.{self.name}.write",)

    @property
    def v3_association_key(self) -> str:
        # Quirk: v3 reads key line-item associations as "line items" (with a space).
        return self.name.replace("_", " ")


def _scopes(name: str, ecommerce: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    extra = ("e-commerce",) if ecommerce else ()
    return (f"crm.objects.{name}.read", *extra), (f"crm.objects.{name}.write", *extra)


OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType(
            "deals", "deal", "0-3", "DEAL", "dealinformation", "Deal information",
            ("amount", "closedate", "createdate", "dealname", "dealstage",
             "hs_lastmodifieddate", "hs_object_id", "pipeline"),
            *_scopes("deals"),
        ),
        ObjectType(
            "companies", "company", "0-2", "COMPANY", "companyinformation",
            "Company information",
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
            *_scopes("companies"),
        ),
        ObjectType(
            "contacts", "contact", "0-1", "CONTACT", "contactinformation",
            "Contact information",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            *_scopes("contacts"),
            modified_property="lastmodifieddate",
        ),
        ObjectType(
            "line_items", "line_item", "0-8", "LINE_ITEM", "lineiteminformation",
            "Line item information",
            ("createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"),
            *_scopes("line_items", ecommerce=True),
        ),
        ObjectType(
            "products", "product", "0-7", "PRODUCT", "productinformation",
            "Product information",
            ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name",
             "price"),
            *_scopes("products", ecommerce=True),
        ),
        ObjectType(
            # No spec is vendored for tasks, so their scopes are not checked.
            "tasks", "task", "0-27", "TASK", "task", "Task information",
            ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            (), (),
            created_property="hs_createdate",
        ),
    )
}
_TYPE_ALIASES: dict[str, ObjectType] = {
    alias: t for t in OBJECT_TYPES.values() for alias in (t.name, t.singular, t.type_id)
}
OWNER_SCOPES = ("crm.objects.owners.read",)


def object_type(name: str) -> ObjectType:
    """The type for a path segment ("deals", "deal", "0-3"); CrmError 400 otherwise."""
    found = _TYPE_ALIASES.get(name.lower())
    if found is None:
        fail(400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}")
    return found


_PROPERTY_TYPES = ("bool", "date", "datetime", "enumeration", "number", "phone_number", "string")
_FIELD_TYPES = (
    "booleancheckbox", "calculation_equation", "checkbox", "date", "file", "html", "number",
    "phonenumber", "radio", "select", "text", "textarea",
)
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class PropertyDef:
    """One property definition (properties-v3.json `Property`)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = ""
    description: str = ""
    options: list[JsonObject] = field(default_factory=list)
    hubspot_defined: bool = True
    read_only: bool = False
    calculated: bool = False
    external_options: bool = False
    referenced_object_type: str | None = None
    display_order: int = -1
    has_unique_value: bool = False
    hidden: bool = False
    form_field: bool = False
    created_ms: int = 0
    updated_ms: int = 0

    @property
    def option_values(self) -> list[str]:
        return [str(option["value"]) for option in self.options]


def _option(value: str, label: str, order: int) -> JsonObject:
    return {"label": label, "value": value, "displayOrder": order, "hidden": False}


def _options(*pairs: tuple[str, str]) -> list[JsonObject]:
    return [_option(value, label, i) for i, (value, label) in enumerate(pairs)]


_OWNER: Mapping[str, Any] = {"external_options": True, "referenced_object_type": "OWNER"}
_CALC: Mapping[str, Any] = {"read_only": True, "calculated": True}
_RECURRING = _options(
    ("weekly", "Weekly"), ("biweekly", "Biweekly"), ("monthly", "Monthly"),
    ("quarterly", "Quarterly"), ("per_six_months", "Every six months"),
    ("annually", "Annually"), ("per_two_years", "Every two years"),
)

# (name, label, type, fieldType, extra PropertyDef fields) per object type.
_PropertyRow = tuple[str, str, str, str, Mapping[str, Any]]
_DEFAULT_PROPERTIES: dict[str, tuple[_PropertyRow, ...]] = {
    "deals": (
        ("dealname", "Deal Name", "string", "text", {}),
        ("amount", "Amount", "number", "number", {}),
        ("deal_currency_code", "Currency", "enumeration", "select", {}),
        ("dealstage", "Deal Stage", "enumeration", "radio", {}),
        ("pipeline", "Pipeline", "enumeration", "select", {}),
        ("closedate", "Close Date", "datetime", "date", {}),
        ("description", "Deal Description", "string", "textarea", {}),
        ("dealtype", "Deal Type", "enumeration", "radio",
         {"options": _options(("newbusiness", "New Business"),
                              ("existingbusiness", "Existing Business"))}),
        ("hubspot_owner_id", "Deal owner", "enumeration", "select", _OWNER),
        ("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", _CALC),
        ("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", _CALC),
        ("hs_deal_stage_probability", "Deal probability", "number", "number", _CALC),
    ),
    "companies": (
        ("name", "Company name", "string", "text", {}),
        ("domain", "Company Domain Name", "string", "text", {}),
        ("phone", "Phone Number", "string", "phonenumber", {}),
        ("address", "Street Address", "string", "text", {}),
        ("address2", "Street Address 2", "string", "text", {}),
        ("city", "City", "string", "text", {}),
        ("state", "State/Region", "string", "text", {}),
        ("zip", "Postal Code", "string", "text", {}),
        ("country", "Country/Region", "string", "text", {}),
        ("website", "Website URL", "string", "text", {}),
        ("description", "Description", "string", "textarea", {}),
        ("hubspot_owner_id", "Company owner", "enumeration", "select", _OWNER),
    ),
    "contacts": (
        ("firstname", "First Name", "string", "text", {}),
        ("lastname", "Last Name", "string", "text", {}),
        ("email", "Email", "string", "text", {}),
        ("phone", "Phone Number", "string", "phonenumber", {}),
        ("mobilephone", "Mobile Phone Number", "string", "phonenumber", {}),
        ("company", "Company Name", "string", "text", {}),
        ("jobtitle", "Job Title", "string", "text", {}),
        ("address", "Street Address", "string", "text", {}),
        ("city", "City", "string", "text", {}),
        ("state", "State/Region", "string", "text", {}),
        ("zip", "Postal Code", "string", "text", {}),
        ("country", "Country/Region", "string", "text", {}),
        ("hubspot_owner_id", "Contact owner", "enumeration", "select", _OWNER),
    ),
    "line_items": (
        ("name", "Name", "string", "text", {}),
        ("description", "Description", "string", "textarea", {}),
        ("hs_sku", "SKU", "string", "text", {}),
        ("hs_product_id", "Product ID", "number", "number", {}),
        ("price", "Unit price", "number", "number", {}),
        ("quantity", "Quantity", "number", "number", {}),
        ("discount", "Unit discount", "number", "number", {}),
        ("hs_discount_percentage", "Unit discount percentage", "number", "number", {}),
        ("amount", "Net price", "number", "number", _CALC),
        ("hs_pre_discount_amount", "Pre-discount amount", "number", "number", _CALC),
        ("hs_total_discount", "Total discount", "number", "number", _CALC),
        ("hs_line_item_currency_code", "Currency", "enumeration", "select", {}),
        ("hs_tax_rate_group_id", "Tax rate", "string", "text", {}),
        ("hs_tax_label", "Tax label", "string", "text", {}),
        ("hs_tax_rate", "Tax rate percentage", "number", "number", {}),
        ("hs_tax_amount", "Tax amount", "number", "number", {}),
        ("tax", "Tax", "number", "number", {}),
        ("hs_cost_of_goods_sold", "Unit cost", "number", "number", {}),
        ("hs_recurring_billing_period", "Term", "string", "text", {}),
        ("recurringbillingfrequency", "Billing frequency", "enumeration", "select",
         {"options": _RECURRING}),
        ("hs_position_on_quote", "Position on quote", "number", "number", {}),
    ),
    "products": (
        ("name", "Name", "string", "text", {}),
        ("description", "Description", "string", "textarea", {}),
        ("price", "Unit price", "number", "number", {}),
        ("hs_sku", "SKU", "string", "text", {}),
        ("hs_cost_of_goods_sold", "Unit cost", "number", "number", {}),
        ("tax", "Tax", "number", "number", {}),
        ("hs_recurring_billing_period", "Term", "string", "text", {}),
        ("recurringbillingfrequency", "Billing frequency", "enumeration", "select",
         {"options": _RECURRING}),
    ),
    "tasks": (
        ("hs_task_subject", "Task Title", "string", "text", {}),
        ("hs_task_body", "Notes", "string", "textarea", {}),
        ("hs_timestamp", "Due date", "datetime", "date", {}),
        ("hs_task_status", "Task Status", "enumeration", "select",
         {"options": _options(("NOT_STARTED", "Not started"), ("IN_PROGRESS", "In progress"),
                              ("WAITING", "Waiting"), ("COMPLETED", "Completed"),
                              ("DEFERRED", "Deferred"))}),
        ("hs_task_priority", "Priority", "enumeration", "select",
         {"options": _options(("NONE", "None"), ("LOW", "Low"), ("MEDIUM", "Medium"),
                              ("HIGH", "High"))}),
        ("hs_task_type", "Task Type", "enumeration", "select",
         {"options": _options(("TODO", "To-do"), ("CALL", "Call"), ("EMAIL", "Email"))}),
        ("hubspot_owner_id", "Assigned to", "enumeration", "select", _OWNER),
    ),
}


def default_properties(otype: ObjectType) -> dict[str, PropertyDef]:
    """The HubSpot-defined properties of a new portal, system fields included."""
    group = otype.group
    defs = {
        otype.created_property: PropertyDef(
            otype.created_property, "Create Date", "datetime", "date", group, read_only=True
        ),
        otype.modified_property: PropertyDef(
            otype.modified_property, "Last Modified Date", "datetime", "date", group,
            read_only=True,
        ),
        "hs_object_id": PropertyDef(
            "hs_object_id", "Record ID", "number", "number", group, read_only=True
        ),
    }
    for order, (name, label, type_, field_type, extra) in enumerate(
        _DEFAULT_PROPERTIES[otype.name]
    ):
        defs[name] = PropertyDef(
            name, label, type_, field_type, group, display_order=order, **dict(extra)
        )
    return defs


@dataclass
class PropertyGroup:
    name: str
    label: str
    display_order: int = -1
    archived: bool = False


@dataclass
class Stage:
    id: str
    label: str
    display_order: int
    probability: str
    is_closed: bool
    created_ms: int = 0
    updated_ms: int = 0

    @property
    def is_won(self) -> bool:
        return self.is_closed and Decimal(self.probability) == 1


@dataclass
class Pipeline:
    id: str
    label: str
    display_order: int
    stages: list[Stage]
    created_ms: int = 0
    updated_ms: int = 0

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)


def default_deal_pipeline() -> Pipeline:
    """HubSpot's "Sales Pipeline" (id "default"); default pipelines have createdAt = 0."""
    rows = (
        ("appointmentscheduled", "Appointment Scheduled", "0.2", False),
        ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
        ("presentationscheduled", "Presentation Scheduled", "0.6", False),
        ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
        ("contractsent", "Contract Sent", "0.9", False),
        ("closedwon", "Closed Won", "1.0", True),
        ("closedlost", "Closed Lost", "0.0", True),
    )
    stages = [
        Stage(stage_id, label, i, probability, closed)
        for i, (stage_id, label, probability, closed) in enumerate(rows)
    ]
    return Pipeline("default", "Sales Pipeline", 0, stages)


@dataclass(frozen=True)
class AssociationType:
    """A HUBSPOT_DEFINED association type (v4 typeId) and its v3 name."""

    type_id: int
    from_type: str
    to_type: str
    v3_name: str
    label: str | None
    inverse_id: int


def _pair(
    a: str, b: str, forward: tuple[int, str], back: tuple[int, str], label: str | None = None
) -> list[AssociationType]:
    return [
        AssociationType(forward[0], a, b, forward[1], label, back[0]),
        AssociationType(back[0], b, a, back[1], label, forward[0]),
    ]


ASSOCIATION_TYPES: dict[int, AssociationType] = {
    t.type_id: t
    for t in (
        *_pair("deals", "companies", (5, "deal_to_company"), (6, "company_to_deal"), "Primary"),
        *_pair("deals", "companies", (341, "deal_to_company_unlabeled"),
               (342, "company_to_deal_unlabeled")),
        *_pair("deals", "contacts", (3, "deal_to_contact"), (4, "contact_to_deal")),
        *_pair("deals", "line_items", (19, "deal_to_line_item"), (20, "line_item_to_deal")),
        *_pair("contacts", "companies", (1, "contact_to_company"), (2, "company_to_contact"),
               "Primary"),
        *_pair("contacts", "companies", (279, "contact_to_company_unlabeled"),
               (280, "company_to_contact_unlabeled")),
        *_pair("tasks", "deals", (216, "task_to_deal"), (215, "deal_to_task")),
        *_pair("tasks", "companies", (192, "task_to_company"), (191, "company_to_task")),
        *_pair("tasks", "contacts", (204, "task_to_contact"), (203, "contact_to_task")),
    )
}
PRIMARY_COMPANY = (5, 341)  # a deal's primary company carries both types, as in HubSpot


# ======================================================================================
# Errors
# ======================================================================================


class CrmError(Exception):
    """Abort a request with this HubSpot error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def crm_error(status: int, category: str, message: str, **extra: Any) -> Response:
    """HubSpot's error document (`Error`: status, message, correlationId, category)."""
    body: JsonObject = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    body.update(extra)
    return json_response(body, status=status)


def fail(status: int, category: str, message: str, **extra: Any) -> NoReturn:
    raise CrmError(crm_error(status, category, message, **extra))


def standard_error(category: str, message: str, **extra: Any) -> JsonObject:
    """One entry of a 207 response's `errors` (spec `StandardError`)."""
    body: JsonObject = {
        "status": "error",
        "category": category,
        "message": message,
        "context": {},
        "errors": [],
        "links": {},
    }
    body.update(extra)
    return body


def rate_limited(policy_name: str) -> Response:
    """HubSpot's 429 (platform-facts: errorType RATE_LIMIT)."""
    which = "secondly" if policy_name == "SECONDLY" else policy_name.lower()
    return json_response(
        {
            "status": "error",
            "message": f"You have reached your {which} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy_name,
        },
        status=429,
    )


def missing_scopes(required: Sequence[str]) -> Response:
    return crm_error(
        403,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. "
        "Read more about required scopes here: https://developers.hubspot.com/scopes.",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": list(required)},
            }
        ],
        links={"scopes": "https://developers.hubspot.com/scopes"},
    )


class PropertyProblem(ValueError):
    """A property value HubSpot would refuse: `code` is HubSpot's error name."""

    def __init__(self, name: str, code: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.code = code


def invalid_properties(problems: Sequence[PropertyProblem], portal_id: int) -> Response:
    """HubSpot's 400 for bad property values: the details are JSON inside `message`."""
    details = [
        {
            "isValid": False,
            "message": str(p),
            "error": p.code,
            "name": p.name,
            "localizedErrorMessage": str(p),
            "portalId": portal_id,
        }
        for p in problems
    ]
    return crm_error(
        400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(details)}"
    )


# ======================================================================================
# CRM state of one portal
# ======================================================================================


@dataclass(frozen=True)
class ChangeSource:
    """Who changed a record, as webhooks (`changeSource`, `sourceId`) and history show it."""

    change_source: str
    source_id: str | None

    @classmethod
    def user(cls, user_id: int) -> ChangeSource:
        return cls("CRM_UI", f"userId:{user_id}")

    @classmethod
    def integration(cls, app_id: int) -> ChangeSource:
        return cls("INTEGRATION", str(app_id))


ChangeKind = Literal["creation", "propertyChange", "deletion"]


@dataclass(frozen=True)
class Change:
    """One record change; the webhook hub turns it into events."""

    portal_id: int
    object_type: ObjectType
    object_id: str
    kind: ChangeKind
    source: ChangeSource
    occurred_ms: int
    property_name: str | None = None
    property_value: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    value: str | None
    timestamp_ms: int
    source_type: str
    source_id: str | None


@dataclass
class CrmObject:
    object_type: str
    id: str
    properties: dict[str, str | None]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)


@dataclass
class Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    created_ms: int
    archived: bool = False


Links = dict[str, set[int]]
"""Associated ids of one target type -> their association type ids."""


class PortalCrm:
    """Everything one HubSpot account holds, plus the helpers tests seed it with.

    Helpers act as a user in the HubSpot UI (``changeSource: CRM_UI``); the API acts as
    the calling app (``INTEGRATION``). Every method takes the fake's (reentrant) lock.
    """

    def __init__(
        self,
        portal_id: int,
        *,
        lock: threading.RLock,
        clock: Clock,
        next_id: Callable[[], int],
        emit: Callable[[Change], None],
        currency: str,
        user_id: int,
        user_email: str,
    ) -> None:
        self.portal_id = portal_id
        self.currency = currency
        self.user_id = user_id
        self._lock = lock
        self._clock = clock
        self._next_id = next_id
        self._emit = emit
        self._objects: dict[str, dict[str, CrmObject]] = {name: {} for name in OBJECT_TYPES}
        self._links: dict[tuple[str, str], dict[str, Links]] = {}
        self._properties = {name: default_properties(t) for name, t in OBJECT_TYPES.items()}
        self._groups = {
            name: {t.group: PropertyGroup(t.group, t.group_label, 0)}
            for name, t in OBJECT_TYPES.items()
        }
        self._pipelines: list[Pipeline] = [default_deal_pipeline()]
        self._owners: list[Owner] = []
        self.add_owner(user_email, "Portal", "Owner", user_id=user_id)

    # ----- seeding helpers (act as a HubSpot user) -----------------------------

    def add_company(self, *, user_id: int | None = None, **properties: object) -> str:
        return self._seed("companies", properties, user_id).id

    def add_contact(
        self, *, company_id: str | None = None, user_id: int | None = None, **properties: object
    ) -> str:
        with self._lock:
            contact = self._seed("contacts", properties, user_id)
            if company_id is not None:
                self.associate("contacts", contact.id, "companies", company_id, (1, 279))
            return contact.id

    def add_product(self, *, user_id: int | None = None, **properties: object) -> str:
        return self._seed("products", properties, user_id).id

    def add_owner(
        self, email: str, first_name: str = "", last_name: str = "", *, user_id: int | None = None
    ) -> str:
        with self._lock:
            owner_id = str(self._next_id())
            uid = user_id if user_id is not None else self._next_id()
            now = self._now_ms()
            self._owners.append(Owner(owner_id, email, first_name, last_name, uid, now))
            return owner_id

    def add_deal(
        self,
        properties: Mapping[str, object] | None = None,
        *,
        company_id: str | None = None,
        contact_ids: Sequence[str] = (),
        line_items: Sequence[Mapping[str, object]] = (),
        user_id: int | None = None,
        **more: object,
    ) -> str:
        """Create a deal as a user would; returns its id.

        Defaults: the default pipeline's first stage and the portal currency. Line items
        copy name/price/SKU/description from their `hs_product_id` product; without an
        explicit `amount` the deal amount is the sum of the line items' net prices.
        """
        props: dict[str, object] = {
            "pipeline": "default",
            "dealstage": "appointmentscheduled",
            "deal_currency_code": self.currency,
            **(properties or {}),
            **more,
        }
        with self._lock:
            items = [self._line_item_values(dict(item), props) for item in line_items]
            if items and "amount" not in props:
                props["amount"] = _plain(sum((_net(i) for i in items), Decimal(0)))
            deal = self._seed("deals", props, user_id)
            if company_id is not None:
                self.associate("deals", deal.id, "companies", company_id, PRIMARY_COMPANY)
            for contact_id in contact_ids:
                self.associate("deals", deal.id, "contacts", contact_id, (3,))
            for values in items:
                item = self._seed("line_items", values, user_id)
                self.associate("deals", deal.id, "line_items", item.id, (19,))
            return deal.id

    def add_line_item(
        self, deal_id: str, *, user_id: int | None = None, **properties: object
    ) -> str:
        """Add a line item to a deal in the UI: the deal amount is recalculated."""
        with self._lock:
            deal = self._require("deals", deal_id)
            values = self._line_item_values(properties, deal.properties)
            item = self._seed("line_items", values, user_id)
            self.associate("deals", deal_id, "line_items", item.id, (19,))
            total = sum((_net(li) for li in self.line_items_of(deal_id)), Decimal(0))
            self.set_deal_properties(deal_id, {"amount": _plain(total)}, user_id=user_id)
            return item.id

    def add_property(
        self,
        object_type_name: str,
        name: str,
        label: str | None = None,
        *,
        type: str = "string",
        field_type: str = "text",
        group_name: str | None = None,
        options: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Define a custom property, as a portal admin would in settings."""
        otype = object_type(object_type_name)
        with self._lock:
            now = self._now_ms()
            self._properties[otype.name][name] = PropertyDef(
                name, label or name, type, field_type, group_name or otype.group,
                options=_options(*options), hubspot_defined=False, created_ms=now, updated_ms=now,
            )

    def add_pipeline(self, label: str, stages: Sequence[Mapping[str, Any]]) -> str:
        """Add a deal pipeline; each stage: {"label", "probability", "closed"?, "id"?}."""
        with self._lock:
            now = self._now_ms()
            built = [
                Stage(
                    str(spec.get("id") or self._next_id()),
                    str(spec["label"]),
                    i,
                    str(spec.get("probability", "0.5")),
                    bool(spec.get("closed", False)),
                    now,
                    now,
                )
                for i, spec in enumerate(stages)
            ]
            pipeline = Pipeline(str(self._next_id()), label, len(self._pipelines), built, now, now)
            self._pipelines.append(pipeline)
            return pipeline.id

    def set_deal_properties(
        self,
        deal_id: str,
        properties: Mapping[str, object] | None = None,
        *,
        user_id: int | None = None,
        **more: object,
    ) -> None:
        """Edit a deal as a user in the UI (fires propertyChange webhooks)."""
        self.set_properties("deals", deal_id, {**(properties or {}), **more}, user_id=user_id)

    def set_properties(
        self,
        object_type_name: str,
        object_id: str,
        properties: Mapping[str, object],
        *,
        user_id: int | None = None,
    ) -> None:
        otype = object_type(object_type_name)
        with self._lock:
            values = self._helper_values(otype, properties)
            self.update(otype, object_id, values, self._user(user_id), strict=False)

    def delete_deal(self, deal_id: str, *, user_id: int | None = None) -> None:
        """Archive (delete) a deal in the UI (fires deal.deletion)."""
        with self._lock:
            self.archive(OBJECT_TYPES["deals"], deal_id, self._user(user_id))

    # ----- read helpers for assertions -----------------------------------------

    def deal(self, deal_id: str) -> dict[str, str | None]:
        """A copy of the deal's properties."""
        return self.object_properties("deals", deal_id)

    def object_properties(self, object_type_name: str, object_id: str) -> dict[str, str | None]:
        """A copy of a live record's properties."""
        with self._lock:
            return dict(self._require(object_type(object_type_name).name, object_id).properties)

    def objects(self, object_type_name: str) -> list[dict[str, str | None]]:
        """Properties of every live record of a type, oldest first."""
        with self._lock:
            records = self._objects[object_type(object_type_name).name].values()
            return [dict(o.properties) for o in records if not o.archived]

    def associated_ids(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        with self._lock:
            links = self.links(object_type(from_type), from_id, object_type(to_type))
            return sorted(links, key=_id_key)

    def line_items_of(self, deal_id: str) -> list[dict[str, str | None]]:
        with self._lock:
            ids = self.associated_ids("deals", deal_id, "line_items")
            return [self.object_properties("line_items", i) for i in ids]

    def history(self, object_type_name: str, object_id: str, name: str) -> list[HistoryEntry]:
        """The property's history, newest first."""
        with self._lock:
            obj = self._require(object_type(object_type_name).name, object_id)
            return list(reversed(obj.history.get(name, [])))

    @property
    def owners(self) -> list[Owner]:
        with self._lock:
            return list(self._owners)

    @property
    def pipelines(self) -> list[Pipeline]:
        with self._lock:
            return list(self._pipelines)

    def property_def(self, object_type_name: str, name: str) -> PropertyDef | None:
        with self._lock:
            return self._properties[object_type(object_type_name).name].get(name)

    # ----- operations shared by helpers and the API ----------------------------

    def find(
        self,
        otype: ObjectType,
        object_id: str,
        id_property: str | None = None,
        *,
        archived: bool = False,
    ) -> CrmObject | None:
        """The record by id (or by a unique property's value), live or archived."""
        with self._lock:
            records = self._objects[otype.name]
            if id_property and id_property != "hs_object_id":
                obj = next(
                    (o for o in records.values() if o.properties.get(id_property) == object_id),
                    None,
                )
            else:
                obj = records.get(object_id)
            return obj if obj is not None and obj.archived == archived else None

    def records(self, otype: ObjectType, *, archived: bool = False) -> list[CrmObject]:
        with self._lock:
            return [o for o in self._objects[otype.name].values() if o.archived == archived]

    def create(
        self,
        otype: ObjectType,
        raw: Mapping[str, str | None],
        source: ChangeSource,
        *,
        strict: bool = True,
        associations: Sequence[tuple[ObjectType, str, Sequence[int]]] = (),
    ) -> CrmObject:
        """Create a record (raises PropertyProblem list via `ValidationFailed`)."""
        with self._lock:
            raw = {k: v for k, v in raw.items() if v is not None and v != ""}
            if otype.name == "deals" and "dealstage" in raw:
                raw.setdefault("pipeline", "default")  # HubSpot's default when omitted
            values = self.validate(otype, raw, strict=strict)
            now = self._now_ms()
            obj_id = str(self._next_id())
            obj = CrmObject(otype.name, obj_id, {}, now, now)
            system = {otype.created_property: iso_ms(now), otype.modified_property: iso_ms(now),
                      "hs_object_id": obj_id}
            for name, value in system.items():
                self._record(obj, name, value, now, source)
            self._objects[otype.name][obj_id] = obj
            changes = [Change(self.portal_id, otype, obj_id, "creation", source, now)]
            changes += self._apply(obj, otype, values, source, now)
            for target, target_id, type_ids in associations:
                self.associate(otype.name, obj_id, target.name, target_id, type_ids)
            self._publish(changes)
            return obj

    def update(
        self,
        otype: ObjectType,
        object_id: str,
        raw: Mapping[str, str | None],
        source: ChangeSource,
        *,
        strict: bool = True,
    ) -> CrmObject:
        with self._lock:
            obj = self._require(otype.name, object_id)
            values = self.validate(otype, raw, strict=strict, current=obj)
            now = self._now_ms()
            changes = self._apply(obj, otype, values, source, now)
            if changes:
                obj.updated_ms = now
                self._record(obj, otype.modified_property, iso_ms(now), now, source)
            self._publish(changes)
            return obj

    def archive(self, otype: ObjectType, object_id: str, source: ChangeSource) -> bool:
        """Archive a live record; False if there was none."""
        with self._lock:
            obj = self.find(otype, object_id)
            if obj is None:
                return False
            now = self._now_ms()
            obj.archived, obj.archived_ms, obj.updated_ms = True, now, now
            self._publish([Change(self.portal_id, otype, object_id, "deletion", source, now)])
            return True

    def associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: Iterable[int]
    ) -> None:
        """Link two live records with the given type ids (and their inverses)."""
        with self._lock:
            self._require(from_type, from_id)
            self._require(to_type, to_id)
            for type_id in type_ids:
                kind = ASSOCIATION_TYPES[type_id]
                if (kind.from_type, kind.to_type) != (from_type, to_type):
                    raise ValueError(f"type {type_id} does not link {from_type} to {to_type}")
                self._link(from_type, from_id, to_type, to_id, type_id)
                self._link(to_type, to_id, from_type, from_id, kind.inverse_id)

    def links(self, otype: ObjectType, object_id: str, to_type: ObjectType) -> Links:
        """Live associated ids of `to_type` -> association type ids."""
        with self._lock:
            found = self._links.get((otype.name, object_id), {}).get(to_type.name, {})
            return {
                to_id: set(ids)
                for to_id, ids in found.items()
                if self.find(to_type, to_id) is not None
            }

    def properties_of(self, otype: ObjectType) -> dict[str, PropertyDef]:
        with self._lock:
            return self._properties[otype.name]

    def groups_of(self, otype: ObjectType) -> dict[str, PropertyGroup]:
        with self._lock:
            return self._groups[otype.name]

    def owner(self, owner_id: str) -> Owner | None:
        with self._lock:
            return next((o for o in self._owners if o.id == owner_id), None)

    def validate(
        self,
        otype: ObjectType,
        raw: Mapping[str, str | None],
        *,
        strict: bool,
        current: CrmObject | None = None,
    ) -> dict[str, str | None]:
        """Normalised values, or raise `ValidationFailed` with every problem.

        Not strict (seeding helpers): unknown properties are defined on the fly as
        custom text properties, as if an admin had created them first.
        """
        with self._lock:
            defs = self._properties[otype.name]
            values: dict[str, str | None] = {}
            problems: list[PropertyProblem] = []
            for name, value in raw.items():
                defn = defs.get(name)
                if defn is None and not strict:
                    self.add_property(otype.name, name)
                    defn = defs[name]
                try:
                    values[name] = self._normalise(otype, defn, name, value, raw, current)
                except PropertyProblem as problem:
                    problems.append(problem)
            if problems:
                raise ValidationFailed(problems)
            return values

    # ----- internals (lock held) -----------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    def _user(self, user_id: int | None) -> ChangeSource:
        return ChangeSource.user(user_id if user_id is not None else self.user_id)

    def _require(self, type_name: str, object_id: str) -> CrmObject:
        obj = self._objects[type_name].get(object_id)
        if obj is None or obj.archived:
            raise KeyError(f"no live {type_name} record {object_id} in portal {self.portal_id}")
        return obj

    def _seed(
        self, type_name: str, properties: Mapping[str, object], user_id: int | None
    ) -> CrmObject:
        otype = OBJECT_TYPES[type_name]
        with self._lock:
            values = self._helper_values(otype, properties)
            return self.create(otype, values, self._user(user_id), strict=False)

    def _helper_values(
        self, otype: ObjectType, properties: Mapping[str, object]
    ) -> dict[str, str | None]:
        return {name: wire_value(value) for name, value in properties.items()}

    def _line_item_values(
        self, item: Mapping[str, object], deal: Mapping[str, object | None]
    ) -> dict[str, object]:
        """A line item's values, filled from its product like HubSpot's editor does."""
        values: dict[str, object] = {"quantity": 1, **item}
        product_id = values.get("hs_product_id")
        product = self.find(OBJECT_TYPES["products"], str(product_id)) if product_id else None
        if product is not None:
            for name in ("name", "price", "hs_sku", "description", "recurringbillingfrequency",
                         "hs_recurring_billing_period"):
                if name not in values and product.properties.get(name) is not None:
                    values[name] = product.properties[name]
        currency = deal.get("deal_currency_code") or self.currency
        values.setdefault("hs_line_item_currency_code", currency)
        return values

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        by_type = self._links.setdefault((from_type, from_id), {})
        by_type.setdefault(to_type, {}).setdefault(to_id, set()).add(type_id)

    def _publish(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self._emit(change)

    def _record(
        self, obj: CrmObject, name: str, value: str | None, now: int, source: ChangeSource
    ) -> None:
        obj.properties[name] = value
        entry = HistoryEntry(value, now, source.change_source, source.source_id)
        obj.history.setdefault(name, []).append(entry)

    def _apply(
        self,
        obj: CrmObject,
        otype: ObjectType,
        values: Mapping[str, str | None],
        source: ChangeSource,
        now: int,
    ) -> list[Change]:
        """Set values, then derived ones; a Change per value that really changed."""
        changes: list[Change] = []
        for name, value in values.items():
            if obj.properties.get(name) == value and name in obj.properties:
                continue
            self._record(obj, name, value, now, source)
            changes.append(
                Change(self.portal_id, otype, obj.id, "propertyChange", source, now, name, value)
            )
        changes += self._derive(obj, otype, set(values), source, now)
        return changes

    def _derive(
        self, obj: CrmObject, otype: ObjectType, touched: set[str], source: ChangeSource, now: int
    ) -> list[Change]:
        """HubSpot's calculated properties; only closedate-on-close is a visible change."""
        calculated = ChangeSource("CALCULATED", None)
        if otype.name == "line_items" and touched & {
            "price", "quantity", "discount", "hs_discount_percentage"
        }:
            for name, value in _line_item_amounts(obj.properties).items():
                self._record(obj, name, value, now, calculated)
        if otype.name != "deals" or not touched & {"dealstage", "pipeline"}:
            return []
        stage = self._stage_of(obj.properties)
        if stage is None:
            return []
        was_closed = obj.properties.get("hs_is_closed") == "true"
        was_won = obj.properties.get("hs_is_closed_won") == "true"
        derived = {
            "hs_deal_stage_probability": stage.probability,
            "hs_is_closed": "true" if stage.is_closed else "false",
            "hs_is_closed_won": "true" if stage.is_won else "false",
        }
        for name, value in derived.items():
            self._record(obj, name, value, now, calculated)
        # HubSpot sets or updates closedate when a deal moves into a closed-won or closed-lost
        # stage (won <-> lost included), not from one closed-won stage to another
        # (knowledge.hubspot.com "HubSpot's default deal properties", Close date).
        entered = stage.is_closed and (not was_closed or was_won != stage.is_won)
        if entered and "closedate" not in touched:
            self._record(obj, "closedate", iso_ms(now), now, source)
            return [
                Change(self.portal_id, otype, obj.id, "propertyChange", source, now, "closedate",
                       iso_ms(now))
            ]
        return []

    def _stage_of(self, properties: Mapping[str, str | None]) -> Stage | None:
        pipeline = next((p for p in self._pipelines if p.id == properties.get("pipeline")), None)
        stage_id = properties.get("dealstage")
        return pipeline.stage(stage_id) if pipeline is not None and stage_id else None

    def _normalise(
        self,
        otype: ObjectType,
        defn: PropertyDef | None,
        name: str,
        value: str | None,
        raw: Mapping[str, str | None],
        current: CrmObject | None,
    ) -> str | None:
        if defn is None:
            raise PropertyProblem(
                name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
            )
        if defn.read_only:
            raise PropertyProblem(name, "READ_ONLY_VALUE", f'"{name}" is a read only property')
        if value is None or value == "":
            return None
        text = str(value)
        if name == "hubspot_owner_id" and self.owner(text) is None:
            raise PropertyProblem(name, "INVALID_OWNER_ID", f"{text} is not a valid owner id")
        if otype.name == "deals" and name in ("dealstage", "pipeline"):
            self._check_stage(name, text, raw, current)
            return text
        return _normalise_typed(defn, text)

    def _check_stage(
        self,
        name: str,
        text: str,
        raw: Mapping[str, str | None],
        current: CrmObject | None,
    ) -> None:
        stored = current.properties.get("pipeline") if current is not None else None
        pipeline_id = raw.get("pipeline") or stored
        pipeline = next((p for p in self._pipelines if p.id == (pipeline_id or "default")), None)
        if name == "pipeline":
            if pipeline is None:
                raise PropertyProblem(name, "INVALID_OPTION", f"{text} is not a valid pipeline")
            return
        valid = [s.id for s in pipeline.stages] if pipeline is not None else []
        if text not in valid:
            raise PropertyProblem(
                name,
                "INVALID_OPTION",
                f"{text} was not one of the allowed options: {valid} for pipeline {pipeline_id}",
            )


class ValidationFailed(ValueError):
    """Property values HubSpot would refuse, all of them."""

    def __init__(self, problems: Sequence[PropertyProblem]) -> None:
        super().__init__("; ".join(f"{p.name}: {p}" for p in problems))
        self.problems = list(problems)


def _normalise_typed(defn: PropertyDef, text: str) -> str:
    """Check a value against its property type; HubSpot's error codes (unverified names)."""
    name = defn.name
    if defn.type == "number":
        if _decimal(text) is None:
            raise PropertyProblem(name, "INVALID_FLOAT", f'"{text}" is not a valid number')
        return text.strip()
    if defn.type == "bool":
        if text.lower() not in ("true", "false"):
            raise PropertyProblem(name, "INVALID_BOOLEAN", f'"{text}" is not true or false')
        return text.lower()
    if defn.type in ("datetime", "date"):
        try:
            ms = parse_timestamp_ms(text)
        except ValueError:
            raise PropertyProblem(name, "INVALID_DATE", f'"{text}" is not a valid date') from None
        return iso_ms(ms) if defn.type == "datetime" else iso_ms(ms)[:10]
    if defn.type == "enumeration" and defn.options and not defn.external_options:
        allowed = defn.option_values
        chosen = text.split(";") if defn.field_type == "checkbox" else [text]
        bad = [v for v in chosen if v not in allowed]
        if bad:
            raise PropertyProblem(
                name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: {allowed}"
            )
    return text


def _line_item_amounts(props: Mapping[str, str | None]) -> dict[str, str | None]:
    """HubSpot's calculated line item amounts. `discount` is the "Unit discount" (an amount off
    each unit) and `hs_discount_percentage` the "Unit discount percentage", a percent of
    quantity x price (knowledge.hubspot.com/properties/hubspots-default-line-item-properties;
    help.hubdo.com "How HubSpot calculates and round line item net pricing when discounted by
    percentage"). `amount` ("Net price") = quantity x price less the discount. Which wins when
    both are set is not documented (unverified): this fake applies the unit discount.
    """
    price = _decimal(props.get("price") or "")
    quantity = _decimal(props.get("quantity") or "")
    if price is None or quantity is None:
        return {"amount": None, "hs_pre_discount_amount": None, "hs_total_discount": None}
    pre = price * quantity
    unit_discount = _decimal(props.get("discount") or "")
    percentage = _decimal(props.get("hs_discount_percentage") or "")
    if unit_discount is not None:
        discount = unit_discount * quantity
    elif percentage is not None:
        discount = pre * percentage / 100
    else:
        discount = Decimal(0)
    return {
        "amount": _plain(pre - discount),
        "hs_pre_discount_amount": _plain(pre),
        "hs_total_discount": _plain(discount),
    }


def _net(values: Mapping[str, object]) -> Decimal:
    """A line item's net price from helper values (Decimal, int or str)."""
    props = {k: wire_value(v) for k, v in values.items()}
    amount = _line_item_amounts(props)["amount"]
    return Decimal(amount) if amount is not None else Decimal(0)


def _id_key(object_id: str) -> tuple[int, str]:
    return (int(object_id), "") if object_id.isdigit() else (0, object_id)


# ======================================================================================
# Rendering
# ======================================================================================


def selected_properties(
    otype: ObjectType, defs: Mapping[str, PropertyDef], requested: Sequence[str]
) -> list[str]:
    """What a read returns: the defaults, or the requested ones that exist plus `always`."""
    if not requested:
        return sorted(otype.defaults)
    return sorted({n for n in requested if n in defs} | set(otype.always))


def render_object(
    portal: PortalCrm,
    obj: CrmObject,
    requested: Sequence[str] = (),
    *,
    with_history: Sequence[str] = (),
    associations: Sequence[ObjectType] = (),
) -> JsonObject:
    """`SimplePublicObject(WithAssociations)`; unset requested properties are null."""
    otype = OBJECT_TYPES[obj.object_type]
    names = selected_properties(otype, portal.properties_of(otype), requested)
    body: JsonObject = {
        "id": obj.id,
        "properties": {name: obj.properties.get(name) for name in names},
        "createdAt": iso_ms(obj.created_ms),
        "updatedAt": iso_ms(obj.updated_ms),
        "archived": obj.archived,
    }
    if obj.archived and obj.archived_ms is not None:
        body["archivedAt"] = iso_ms(obj.archived_ms)
    if with_history:
        body["propertiesWithHistory"] = {
            name: [_render_history(h) for h in reversed(obj.history.get(name, []))]
            for name in with_history
            if name in obj.history
        }
    rendered = _v3_associations(portal, obj, otype, associations)
    if rendered:
        body["associations"] = rendered
    return body


def _render_history(entry: HistoryEntry) -> JsonObject:
    body: JsonObject = {
        "value": entry.value if entry.value is not None else "",
        "timestamp": iso_ms(entry.timestamp_ms),
        "sourceType": entry.source_type,
    }
    if entry.source_id is not None:
        body["sourceId"] = entry.source_id
    return body


def _v3_associations(
    portal: PortalCrm, obj: CrmObject, otype: ObjectType, targets: Sequence[ObjectType]
) -> JsonObject:
    rendered: JsonObject = {}
    for target in targets:
        links = portal.links(otype, obj.id, target)
        results = [
            {"id": to_id, "type": ASSOCIATION_TYPES[type_id].v3_name}
            for to_id in sorted(links, key=_id_key)
            for type_id in sorted(links[to_id])
        ]
        if results:  # HubSpot leaves out types with no associations
            rendered[target.v3_association_key] = {"results": results}
    return rendered


def render_association_type(type_id: int) -> JsonObject:
    kind = ASSOCIATION_TYPES[type_id]
    return {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": kind.label}


def render_property(defn: PropertyDef, portal: PortalCrm, otype: ObjectType) -> JsonObject:
    options = defn.options
    if otype.name == "deals" and defn.name == "pipeline":
        options = [_option(p.id, p.label, p.display_order) for p in portal.pipelines]
    elif otype.name == "deals" and defn.name == "dealstage":
        options = [
            _option(s.id, s.label, s.display_order) for p in portal.pipelines for s in p.stages
        ]
    body: JsonObject = {
        "name": defn.name,
        "label": defn.label,
        "type": defn.type,
        "fieldType": defn.field_type,
        "description": defn.description,
        "groupName": defn.group_name,
        "options": options,
        "displayOrder": defn.display_order,
        "calculated": defn.calculated,
        "externalOptions": defn.external_options,
        "hasUniqueValue": defn.has_unique_value,
        "hidden": defn.hidden,
        "formField": defn.form_field,
        "archived": False,
        "createdAt": iso_ms(defn.created_ms),
        "updatedAt": iso_ms(defn.updated_ms),
        "modificationMetadata": {
            "archivable": not defn.hubspot_defined,
            "readOnlyDefinition": defn.hubspot_defined,
            "readOnlyValue": defn.read_only,
        },
    }
    if defn.hubspot_defined:
        body["hubspotDefined"] = True
    if defn.referenced_object_type:
        body["referencedObjectType"] = defn.referenced_object_type
    return body


def render_group(group: PropertyGroup) -> JsonObject:
    return {
        "name": group.name,
        "label": group.label,
        "displayOrder": group.display_order,
        "archived": group.archived,
    }


def render_pipeline(pipeline: Pipeline) -> JsonObject:
    return {
        "id": pipeline.id,
        "label": pipeline.label,
        "displayOrder": pipeline.display_order,
        "archived": False,
        "createdAt": iso_ms(pipeline.created_ms),
        "updatedAt": iso_ms(pipeline.updated_ms),
        "stages": [
            {
                "id": s.id,
                "label": s.label,
                "displayOrder": s.display_order,
                # HubSpot sends deal-stage metadata values as strings
                "metadata": {"isClosed": "true" if s.is_closed else "false",
                             "probability": s.probability},
                "archived": False,
                "createdAt": iso_ms(s.created_ms),
                "updatedAt": iso_ms(s.updated_ms),
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            }
            for s in pipeline.stages
        ],
    }


def render_owner(owner: Owner) -> JsonObject:
    return {
        "id": owner.id,
        "email": owner.email,
        "firstName": owner.first_name,
        "lastName": owner.last_name,
        "userId": owner.user_id,
        "userIdIncludingInactive": owner.user_id,
        "type": "PERSON",
        "createdAt": iso_ms(owner.created_ms),
        "updatedAt": iso_ms(owner.created_ms),
        "archived": owner.archived,
        "teams": [],
    }


# ======================================================================================
# Rate limits, faults, call log
# ======================================================================================


@dataclass
class CrmRateLimits:
    """Per-portal limits (platform-facts: Limits). Mutable: tests may lower them live."""

    per_window: int = DEFAULT_RATE_LIMIT
    window_s: float = DEFAULT_RATE_WINDOW_S
    search_per_second: int = DEFAULT_SEARCH_PER_SECOND


RatePolicy = Literal["ten_secondly", "search", "exempt"]


@dataclass(frozen=True)
class Admission:
    allowed: bool
    headers: dict[str, str]
    policy_name: str | None = None


class RollingRateLimiter:
    """Rolling windows per portal: the ten-secondly one and search's one-second one.

    Search and v4 association batch calls are exempt from the ten-secondly window (the
    specs' ``x-hubspot-rate-limit-exemptions``); a refused call is not counted.
    """

    def __init__(self, limits: CrmRateLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._calls: dict[tuple[int, str], deque[float]] = {}

    def reset(self) -> None:
        self._calls.clear()

    def admit(self, portal_id: int, policy: RatePolicy) -> Admission:
        """Count a call in (caller holds the lock)."""
        now = self._clock.now()
        ten = self._window(portal_id, "ten", now, self.limits.window_s)
        if policy == "search":
            second = self._window(portal_id, "search", now, 1.0)
            if len(second) >= self.limits.search_per_second:
                return Admission(False, self.headers(portal_id), "SECONDLY")
            second.append(now)
        elif policy == "ten_secondly":
            if len(ten) >= self.limits.per_window:
                return Admission(False, self.headers(portal_id), "TEN_SECONDLY_ROLLING")
            ten.append(now)
        return Admission(True, self.headers(portal_id))

    def headers(self, portal_id: int) -> dict[str, str]:
        ten = self._window(portal_id, "ten", self._clock.now(), self.limits.window_s)
        return {
            "X-HubSpot-RateLimit-Max": str(self.limits.per_window),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.limits.per_window - len(ten))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.limits.window_s * 1000)),
        }

    def _window(self, portal_id: int, name: str, now: float, length: float) -> deque[float]:
        calls = self._calls.setdefault((portal_id, name), deque())
        while calls and calls[0] <= now - length:
            calls.popleft()
        return calls


CrmFaultKind = Literal["5xx", "429", "slow"]
_FAULT_KINDS: tuple[CrmFaultKind, ...] = ("5xx", "429", "slow")


@dataclass
class CrmFault:
    """One injected fault; `remaining` counts down (None: until cleared)."""

    kind: CrmFaultKind
    method: str | None = None
    path_prefix: str | None = None
    portal_id: int | None = None
    remaining: int | None = 1
    status: int | None = None
    delay: float | None = None
    policy_name: str = "TEN_SECONDLY_ROLLING"

    def matches(self, method: str, path: str, portal_id: int) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and (self.method is None or self.method.upper() == method.upper())
            and (self.path_prefix is None or path.startswith(self.path_prefix))
            and (self.portal_id is None or self.portal_id == portal_id)
        )


class CrmFaultInjector:
    """Faults waiting for matching calls; first injected, first used."""

    def __init__(self) -> None:
        self._faults: list[CrmFault] = []

    def add(self, fault: CrmFault) -> CrmFault:
        if fault.kind not in _FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {_FAULT_KINDS}, not {fault.kind!r}")
        if fault.kind == "slow" and not fault.delay:
            raise ValueError("a 'slow' fault needs delay= (seconds)")
        if fault.kind == "5xx" and not 500 <= (fault.status or 500) <= 599:
            raise ValueError("a '5xx' fault needs a status between 500 and 599")
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str, portal_id: int) -> CrmFault | None:
        for fault in self._faults:
            if fault.matches(method, path, portal_id):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[CrmFault]:
        return [f for f in self._faults if f.remaining is None or f.remaining > 0]


@dataclass(frozen=True)
class CrmCall:
    """One CRM API call as the fake saw it.

    The log is in completion order; `time` is when the call arrived (fake clock).
    """

    method: str
    path: str
    query: str
    portal_id: int | None
    status: int
    time: float
    body: bytes = b""
    fault: CrmFaultKind | None = None
    rate_limited: str | None = None
    """The policy name when the fake's own limiter refused the call."""
    response_body: bytes = b""

    def json(self) -> Any:
        """The request body, decoded."""
        return json.loads(self.body) if self.body else None

    def response_json(self) -> Any:
        return json.loads(self.response_body) if self.response_body else None


# ======================================================================================
# Webhooks
# ======================================================================================

_SIGNATURE_DECODES = {
    "3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$",
    "27": "'", "28": "(", "29": ")", "2A": "*", "2C": ",", "3B": ";",
}
_SIGNATURE_ESCAPE = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


def signed_uri(url: str) -> str:
    """The URI HubSpot signs: the target URL with these escapes decoded (platform-facts)."""
    return _SIGNATURE_ESCAPE.sub(lambda m: _SIGNATURE_DECODES[m.group(1).upper()], url)


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class WebhookSubscription:
    """One subscription of an app (webhooks-v3.json `SubscriptionResponse`)."""

    id: int
    event_type: str
    property_name: str | None
    active: bool
    created_ms: int
    updated_ms: int

    def matches(self, change: Change) -> bool:
        object_name, _, action = self.event_type.partition(".")
        if not self.active or object_name != change.object_type.singular:
            return False
        if change.kind == "propertyChange":
            return action == "propertyChange" and self.property_name == change.property_name
        return action == change.kind

    def render(self) -> JsonObject:
        body: JsonObject = {
            "id": str(self.id),
            "eventType": self.event_type,
            "active": self.active,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
        }
        if self.property_name:
            body["propertyName"] = self.property_name
        return body


@dataclass
class WebhookApp:
    """An app's webhook settings: one target URL, its secret, its subscriptions."""

    app_id: int
    client_secret: str
    target_url: str | None = None
    max_concurrent_requests: int = 10
    subscriptions: list[WebhookSubscription] = field(default_factory=list)
    created_ms: int = 0
    updated_ms: int = 0


@dataclass
class QueuedEvent:
    """An event waiting for its next attempt (`attempt` is the next attemptNumber)."""

    app_id: int
    portal_id: int
    event: JsonObject
    attempt: int
    due: float

    def payload(self) -> JsonObject:
        body = dict(self.event)
        body["attemptNumber"] = self.attempt
        return body


@dataclass(frozen=True)
class DeliveryResult:
    """One POST to a target URL: what was sent and how the receiver answered."""

    app_id: int
    portal_id: int
    url: str
    status: int | None
    error: str | None
    events: tuple[JsonObject, ...]
    body: bytes
    headers: dict[str, str]
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Batch:
    app: WebhookApp
    url: str
    secret: str
    items: list[QueuedEvent]


_EVENT_ACTIONS = ("creation", "deletion", "propertyChange", "associationChange", "merge",
                  "restore", "privacyDeletion", "newMessage", "completed")


def parse_subscription(text: str) -> tuple[str, str | None]:
    """``"deal.propertyChange:dealstage"`` -> ("deal.propertyChange", "dealstage")."""
    event_type, _, property_name = text.partition(":")
    _, _, action = event_type.partition(".")
    if action not in _EVENT_ACTIONS:
        raise ValueError(f"unknown event type {event_type!r}")
    if action == "propertyChange" and not property_name:
        raise ValueError(f"{event_type} needs a property name: '{event_type}:<property>'")
    return event_type, property_name or None


class WebhookHub:
    """Webhook settings per app, the event queue, and delivery.

    Events are queued when a subscribed record changes in a portal where the app is
    installed (a live grant for that portal and app). `deliver()` posts what is due;
    with `auto_deliver` a background thread does so right after each change.
    """

    def __init__(
        self,
        *,
        lock: threading.RLock,
        clock: Clock,
        installed: Callable[[int, int], bool],
    ) -> None:
        self._lock = lock
        self._clock = clock
        self._installed = installed
        self._apps: dict[int, WebhookApp] = {}
        self._queue: list[QueuedEvent] = []
        self._deliveries: list[DeliveryResult] = []
        self._dropped: list[QueuedEvent] = []
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(4_100_000_001)
        self.retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS_S
        self.timeout = WEBHOOK_TIMEOUT_S
        self.max_attempts = MAX_WEBHOOK_ATTEMPTS
        self.max_batch = MAX_WEBHOOK_BATCH
        self._auto = False
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    # ----- settings --------------------------------------------------------------

    def app(self, app_id: int, client_secret: str) -> WebhookApp:
        """The app's settings, created empty on first use."""
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                now = self._now_ms()
                app = WebhookApp(app_id, client_secret, created_ms=now, updated_ms=now)
                self._apps[app_id] = app
            return app

    def find_app(self, app_id: int) -> WebhookApp | None:
        with self._lock:
            return self._apps.get(app_id)

    def subscribe(
        self,
        app_id: int,
        target_url: str,
        client_secret: str,
        subscriptions: Iterable[str],
        *,
        active: bool = True,
    ) -> WebhookApp:
        """Set the app's target URL and secret and add the missing subscriptions."""
        with self._lock:
            app = self.app(app_id, client_secret)
            app.target_url, app.client_secret = target_url, client_secret
            app.updated_ms = self._now_ms()
            for text in subscriptions:
                event_type, property_name = parse_subscription(text)
                if not any(
                    s.event_type == event_type and s.property_name == property_name
                    for s in app.subscriptions
                ):
                    self.add_subscription(app, event_type, property_name, active)
            return app

    def add_subscription(
        self, app: WebhookApp, event_type: str, property_name: str | None, active: bool
    ) -> WebhookSubscription:
        with self._lock:
            now = self._now_ms()
            sub = WebhookSubscription(next(self._ids), event_type, property_name, active, now, now)
            app.subscriptions.append(sub)
            return sub

    # ----- events ----------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        """Queue an event per matching active subscription of each installed app."""
        with self._lock:
            queued = False
            for app in self._apps.values():
                if not self._installed(app.app_id, change.portal_id):
                    continue
                for sub in app.subscriptions:
                    if sub.matches(change):
                        event = self._event(app, sub, change)
                        now = self._clock.now()
                        self._queue.append(QueuedEvent(app.app_id, change.portal_id, event, 0, now))
                        queued = True
            if queued and self._auto:
                self._wake.set()

    def _event(self, app: WebhookApp, sub: WebhookSubscription, change: Change) -> JsonObject:
        event: JsonObject = {
            "eventId": next(self._event_ids),
            "subscriptionId": sub.id,
            "portalId": change.portal_id,
            "appId": app.app_id,
            "occurredAt": change.occurred_ms,
            "subscriptionType": sub.event_type,
            "attemptNumber": 0,
            "objectId": int(change.object_id),
        }
        if change.kind == "propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value or ""
        else:
            event["changeFlag"] = "CREATED" if change.kind == "creation" else "DELETED"
        event["changeSource"] = change.source.change_source
        if change.source.source_id is not None:
            event["sourceId"] = change.source.source_id
        return event

    @property
    def pending(self) -> list[JsonObject]:
        """Queued events as they would be sent next (with their attemptNumber)."""
        with self._lock:
            return [q.payload() for q in self._queue]

    @property
    def deliveries(self) -> list[DeliveryResult]:
        with self._lock:
            return list(self._deliveries)

    @property
    def dropped(self) -> list[JsonObject]:
        """Events that failed every attempt."""
        with self._lock:
            return [q.payload() for q in self._dropped]

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    # ----- delivery ----------------------------------------------------------------

    def deliver(self, *, force: bool = False, duplicate: bool = False) -> list[DeliveryResult]:
        """POST every due event, batched per app and portal; failures are rescheduled.

        `force` also sends events whose retry is not yet due; `duplicate` posts every
        batch twice (HubSpot may). Returns one result per POST, in order.
        """
        with self._lock:
            batches = self._take(force)
        results: list[DeliveryResult] = []
        for batch in batches:
            result = self._post(batch, duplicate=False)
            results.append(result)
            if duplicate:
                results.append(self._post(batch, duplicate=True))
            with self._lock:
                if not result.ok:
                    self._reschedule(batch.items)
        with self._lock:
            self._deliveries.extend(results)
        return results

    def _take(self, force: bool) -> list[_Batch]:
        """Remove due events with a target from the queue, grouped into batches."""
        now = self._clock.now()
        groups: dict[tuple[int, int], list[QueuedEvent]] = {}
        kept: list[QueuedEvent] = []
        for item in self._queue:
            app = self._apps.get(item.app_id)
            if (force or item.due <= now) and app is not None and app.target_url:
                groups.setdefault((item.app_id, item.portal_id), []).append(item)
            else:
                kept.append(item)
        self._queue = kept
        batches: list[_Batch] = []
        for (app_id, _), items in groups.items():
            app = self._apps[app_id]
            assert app.target_url is not None
            for start in range(0, len(items), self.max_batch):
                chunk = items[start : start + self.max_batch]
                batches.append(_Batch(app, app.target_url, app.client_secret, chunk))
        return batches

    def _reschedule(self, items: Sequence[QueuedEvent]) -> None:
        now = self._clock.now()
        for item in items:
            item.attempt += 1
            if item.attempt >= self.max_attempts:
                self._dropped.append(item)
                continue
            delays = self.retry_delays or (0.0,)
            item.due = now + delays[min(item.attempt - 1, len(delays) - 1)]
            self._queue.append(item)

    def _post(self, batch: _Batch, *, duplicate: bool) -> DeliveryResult:
        events = tuple(item.payload() for item in batch.items)
        body = json.dumps(list(events), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(self._clock.now() * 1000))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": WEBHOOK_USER_AGENT,
            "X-HubSpot-Signature-Version": "v3",
            "X-HubSpot-Signature-v3": signature_v3(
                batch.secret, "POST", signed_uri(batch.url), body, timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        status, error = self._send(batch.url, body, headers)
        return DeliveryResult(
            batch.app.app_id, batch.items[0].portal_id, batch.url, status, error, events, body,
            headers, duplicate,
        )

    def _send(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """POST with timeouts; (status, None) on 2xx, else (status or None, why)."""
        try:
            response = requests.post(
                url,
                data=body,
                headers=headers,
                timeout=(WEBHOOK_CONNECT_TIMEOUT_S, self.timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            return None, f"no reply within {self.timeout} s"
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        with response:
            status = response.status_code
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    # ----- automatic delivery (live sandbox) ------------------------------------

    @property
    def auto_deliver(self) -> bool:
        return self._auto

    @auto_deliver.setter
    def auto_deliver(self, enabled: bool) -> None:
        with self._lock:
            self._auto = enabled
            self._wake.set()
            if enabled and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(
                    target=self._run_worker, name="hubspot-webhooks", daemon=True
                )
                self._worker.start()

    def _run_worker(self) -> None:
        while True:
            self._wake.wait(timeout=self._idle_wait())
            self._wake.clear()
            with self._lock:
                if not self._auto:
                    self._worker = None
                    return
            self.deliver()

    def _idle_wait(self) -> float:
        """Until the next retry is due, polled at least every half second."""
        with self._lock:
            if not self._queue:
                return 0.5
            wait = min(q.due for q in self._queue) - self._clock.now()
        return min(max(wait, 0.01), 0.5)

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)


# ======================================================================================
# The HTTP layer
# ======================================================================================


@dataclass
class _Ctx:
    """One authenticated CRM call: its portal and the calling app."""

    request: Request
    api: HubSpotCrmApi
    portal: PortalCrm
    app_id: int
    scopes: frozenset[str]

    @property
    def source(self) -> ChangeSource:
        return ChangeSource.integration(self.app_id)

    def require(self, any_of: Sequence[str]) -> None:
        """403 MISSING_SCOPES unless the token has one of `any_of` (empty: no check)."""
        if not any_of or not self.api.enforce_scopes or self.scopes & set(any_of):
            return
        raise CrmError(missing_scopes(any_of))

    def now_ms(self) -> int:
        return int(self.api.clock.now() * 1000)


CrmHandler = Callable[..., Response]
"""Called as ``handler(ctx, **path_values)`` under the fake's lock."""
DevHandler = Callable[..., Response]
"""Called as ``handler(request, app_id, **path_values)`` under the fake's lock."""


def _json_object(request: Request) -> JsonObject:
    try:
        body = json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal)
    except ValueError as exc:
        fail(400, "VALIDATION_ERROR", f"Invalid input JSON: {exc}")
    if not isinstance(body, dict):
        fail(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
    return body


def _str_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(400, "VALIDATION_ERROR", f"{name} must be an array of strings")
    return list(value)


def _inputs(body: JsonObject, limit: int) -> list[JsonObject]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        fail(400, "VALIDATION_ERROR", "inputs must be an array of objects")
    if len(inputs) > limit:
        fail(
            400,
            "VALIDATION_ERROR",
            f"Batch input of {len(inputs)} inputs is too large; the limit is {limit}.",
            context={"maxInputs": [str(limit)]},
        )
    return inputs


def _input_id(item: JsonObject) -> str:
    value = item.get("id")
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        fail(400, "VALIDATION_ERROR", "every input needs an id")
    return str(value)


def _property_values(value: object) -> dict[str, str | None]:
    """A request's `properties` object; JSON numbers and booleans become strings."""
    if not isinstance(value, dict):
        fail(400, "VALIDATION_ERROR", "properties must be an object")
    result: dict[str, str | None] = {}
    for name, raw in value.items():
        if raw is None or isinstance(raw, str):
            result[name] = raw
        elif isinstance(raw, bool):
            result[name] = "true" if raw else "false"
        elif isinstance(raw, int | Decimal):
            result[name] = str(raw)
        else:
            fail(400, "VALIDATION_ERROR", f"property {name} must be a string")
    return result


def _query_list(request: Request, name: str) -> list[str]:
    """A list query parameter, repeated (the SDK) or comma-separated (the docs)."""
    return [
        part.strip()
        for value in request.args.getlist(name)
        for part in value.split(",")
        if part.strip()
    ]


def _query_bool(request: Request, name: str) -> bool:
    """A boolean query parameter: `true` or `false`. The specs type these `boolean`
    (e.g. products-v3.json / deals-v3.json `archived`), whose wire form is lowercase; the SDK
    would send Python's `False`/`True` for a bool. Real HubSpot may be lenient about the case
    (unverified); the fake holds clients to the documented form."""
    value = request.args.get(name)
    if value is None:
        return False  # the specs' default for `archived`
    if value not in ("true", "false"):
        fail(400, "VALIDATION_ERROR",
             f"Unable to parse query parameter {name}={value!r}: expected true or false",
             context={name: [value]})
    return value == "true"


def _query_int(request: Request, name: str, default: int, maximum: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        fail(400, "VALIDATION_ERROR", f"{name} must be an integer")
    if not 1 <= value <= maximum:
        fail(400, "VALIDATION_ERROR", f"{name} must be between 1 and {maximum}")
    return value


def _batch_body(
    results: list[JsonObject], errors: list[JsonObject], started_ms: int, now_ms: int
) -> tuple[JsonObject, int]:
    body: JsonObject = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started_ms),
        "completedAt": iso_ms(now_ms),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return body, 207
    return body, 200


def _not_found_error(otype: ObjectType, verb: str, ids: Sequence[str]) -> JsonObject:
    return standard_error(
        "OBJECT_NOT_FOUND",
        f"Could not {verb} some {otype.error_label} objects, they may be deleted or not "
        "exist. Check that ids are valid.",
        context={"ids": list(ids)},
    )


def _paging(after: str, path: str) -> JsonObject:
    return {"next": {"after": after, "link": f"{API_HOST}{path}?after={after}"}}


def _unique(items: Iterable[CrmObject]) -> list[CrmObject]:
    seen: dict[str, CrmObject] = {}
    for item in items:
        seen.setdefault(item.id, item)
    return list(seen.values())


class HubSpotCrmApi:
    """The CRM endpoints, per-portal state, limits, faults and webhooks of a FakeHubSpot.

    Created by `FakeHubSpot` (sandbox/hubspot.py), which exposes the helpers tests use.
    Each call runs: bearer check (the token's portal) -> rate limit -> injected fault ->
    handler under the fake's lock (scope check first) -> rate-limit headers, call log.
    """

    def __init__(self, fake: FakeHubSpot, *, limits: CrmRateLimits | None = None) -> None:
        self._fake = fake
        self._lock = fake.lock
        self.clock = fake.clock
        self._portals: dict[int, PortalCrm] = {}
        self._ids = itertools.count(10_000_001)
        self.limiter = RollingRateLimiter(limits or CrmRateLimits(), fake.clock)
        self.faults = CrmFaultInjector()
        self.webhooks = WebhookHub(lock=fake.lock, clock=fake.clock, installed=self._installed)
        self.enforce_scopes = True
        self.association_page_size = DEFAULT_ASSOCIATION_PAGE_SIZE
        self._calls: list[CrmCall] = []
        self._register_routes()

    # ----- state and test helpers -------------------------------------------------

    def portal(self, portal_id: int) -> PortalCrm:
        """The portal's CRM, created on first use with HubSpot's defaults."""
        with self._lock:
            portal = self._portals.get(portal_id)
            if portal is None:
                portal = PortalCrm(
                    portal_id,
                    lock=self._lock,
                    clock=self.clock,
                    next_id=lambda: next(self._ids),
                    emit=self.webhooks.on_change,
                    currency=self._fake.currency,
                    user_id=self._fake.user_id,
                    user_email=self._fake.user_email,
                )
                self._portals[portal_id] = portal
            return portal

    def inject(self, fault: CrmFault) -> CrmFault:
        with self._lock:
            return self.faults.add(fault)

    @property
    def calls(self) -> list[CrmCall]:
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
        portal_id: int | None = None,
    ) -> int:
        return sum(
            1
            for call in self.calls
            if (method is None or call.method == method.upper())
            and (path_prefix is None or call.path.startswith(path_prefix))
            and (status is None or call.status == status)
            and (portal_id is None or call.portal_id == portal_id)
        )

    def _installed(self, app_id: int, portal_id: int) -> bool:
        return any(
            not g.revoked and g.consent.hub_id == portal_id and g.consent.app_id == app_id
            for g in self._fake.grants
        )

    # ----- routing and the per-call pipeline ---------------------------------------

    def _register_routes(self) -> None:
        objects = "/crm/v3/objects/<object_type>"
        routes: list[tuple[str, CrmHandler, tuple[str, ...], RatePolicy]] = [
            (f"{objects}/batch/read", self._batch_read, ("POST",), "ten_secondly"),
            (f"{objects}/batch/update", self._batch_update, ("POST",), "ten_secondly"),
            (f"{objects}/batch/create", self._batch_create, ("POST",), "ten_secondly"),
            (f"{objects}/search", self._search, ("POST",), "search"),
            (objects, self._list, ("GET",), "ten_secondly"),
            (objects, self._create, ("POST",), "ten_secondly"),
            (f"{objects}/<object_id>", self._get, ("GET",), "ten_secondly"),
            (f"{objects}/<object_id>", self._patch, ("PATCH",), "ten_secondly"),
            (f"{objects}/<object_id>", self._delete, ("DELETE",), "ten_secondly"),
            ("/crm/v4/associations/<from_type>/<to_type>/batch/read", self._association_batch,
             ("POST",), "exempt"),
            ("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>",
             self._association_list, ("GET",), "ten_secondly"),
            ("/crm/v3/pipelines/<object_type>", self._pipelines, ("GET",), "ten_secondly"),
            ("/crm/v3/pipelines/<object_type>/<pipeline_id>", self._pipeline, ("GET",),
             "ten_secondly"),
            ("/crm/v3/properties/<object_type>/groups", self._groups, ("GET",), "ten_secondly"),
            ("/crm/v3/properties/<object_type>/groups", self._create_group, ("POST",),
             "ten_secondly"),
            ("/crm/v3/properties/<object_type>/groups/<group_name>", self._group, ("GET",),
             "ten_secondly"),
            ("/crm/v3/properties/<object_type>/batch/create", self._batch_create_properties,
             ("POST",), "ten_secondly"),
            ("/crm/v3/properties/<object_type>/batch/read", self._batch_read_properties,
             ("POST",), "ten_secondly"),
            ("/crm/v3/properties/<object_type>", self._properties, ("GET",), "ten_secondly"),
            ("/crm/v3/properties/<object_type>", self._create_property, ("POST",),
             "ten_secondly"),
            ("/crm/v3/properties/<object_type>/<property_name>", self._property, ("GET",),
             "ten_secondly"),
            # owners_api.get_page calls "/crm/v3/owners/" (trailing slash)
            ("/crm/v3/owners/", self._owners, ("GET",), "ten_secondly"),
            ("/crm/v3/owners", self._owners, ("GET",), "ten_secondly"),
            ("/crm/v3/owners/<owner_id>", self._owner, ("GET",), "ten_secondly"),
        ]
        for rule, handler, methods, policy in routes:
            self._fake.route(rule, self._endpoint(handler, policy), methods=methods)
        developer: list[tuple[str, DevHandler, tuple[str, ...]]] = [
            ("/webhooks/v3/<app_id>/settings", self._get_settings, ("GET",)),
            ("/webhooks/v3/<app_id>/settings", self._put_settings, ("PUT",)),
            ("/webhooks/v3/<app_id>/settings", self._clear_settings, ("DELETE",)),
            ("/webhooks/v3/<app_id>/subscriptions", self._get_subscriptions, ("GET",)),
            ("/webhooks/v3/<app_id>/subscriptions", self._create_subscription, ("POST",)),
            ("/webhooks/v3/<app_id>/subscriptions/<subscription_id>", self._get_subscription,
             ("GET",)),
            ("/webhooks/v3/<app_id>/subscriptions/<subscription_id>", self._patch_subscription,
             ("PATCH",)),
            ("/webhooks/v3/<app_id>/subscriptions/<subscription_id>", self._delete_subscription,
             ("DELETE",)),
        ]
        for rule, dev_handler, methods in developer:
            self._fake.route(rule, self._developer_endpoint(dev_handler), methods=methods)

    def _endpoint(self, handler: CrmHandler, policy: RatePolicy) -> Callable[..., Response]:
        def view(request: Request, **path_values: str) -> Response:
            return self._serve(request, handler, path_values, policy)

        return view

    def _serve(
        self,
        request: Request,
        handler: CrmHandler,
        path_values: dict[str, str],
        policy: RatePolicy,
    ) -> Response:
        arrived = self.clock.now()
        try:
            access = self._fake.require_bearer(request)
        except HTTPException as exc:
            self._log(request, None, exc.code or 401, arrived)
            raise
        portal_id = access.grant.consent.hub_id
        with self._lock:
            admission = self.limiter.admit(portal_id, policy)
            fault = (
                self.faults.take(request.method, request.path, portal_id)
                if admission.allowed
                else None
            )
        if not admission.allowed:
            assert admission.policy_name is not None
            response = rate_limited(admission.policy_name)
        else:
            response = self._run(request, handler, path_values, access, fault)
        response.headers.update(admission.headers)
        if fault is not None and fault.kind == "429":
            response.headers["X-HubSpot-RateLimit-Remaining"] = "0"
        self._log(
            request,
            portal_id,
            response.status_code,
            arrived,
            fault=fault.kind if fault else None,
            rate_limited=None if admission.allowed else admission.policy_name,
            response_body=response.get_data(),
        )
        return response

    def _run(
        self,
        request: Request,
        handler: CrmHandler,
        path_values: dict[str, str],
        access: AccessToken[HubSpotInstall],
        fault: CrmFault | None,
    ) -> Response:
        if fault is not None and fault.kind == "5xx":
            status = fault.status or 500
            return crm_error(status, "INTERNAL_ERROR", "injected fault: the call was not processed")
        if fault is not None and fault.kind == "429":
            return rate_limited(fault.policy_name)
        if fault is not None and fault.kind == "slow" and fault.delay:
            time.sleep(fault.delay)  # real seconds: lets clients time out
        install = access.grant.consent
        with self._lock:
            ctx = _Ctx(
                request, self, self.portal(install.hub_id), install.app_id,
                frozenset(access.grant.scopes),
            )
            try:
                return handler(ctx, **path_values)
            except CrmError as err:
                return err.response
            except ValidationFailed as err:
                return invalid_properties(err.problems, install.hub_id)

    def _developer_endpoint(self, handler: DevHandler) -> Callable[..., Response]:
        def view(request: Request, app_id: str, **path_values: str) -> Response:
            arrived = self.clock.now()
            key = request.args.get("hapikey", "")
            if not hmac.compare_digest(key.encode(), self._fake.developer_api_key.encode()):
                response = crm_error(
                    401, "INVALID_AUTHENTICATION", "The API key provided is invalid."
                )
            elif not app_id.isdigit():
                response = crm_error(404, "OBJECT_NOT_FOUND", f"No app {app_id}")
            else:
                with self._lock:
                    try:
                        response = handler(request, int(app_id), **path_values)
                    except CrmError as err:
                        response = err.response
            self._log(request, None, response.status_code, arrived,
                      response_body=response.get_data())
            return response

        return view

    def _log(
        self,
        request: Request,
        portal_id: int | None,
        status: int,
        arrived: float,
        *,
        fault: CrmFaultKind | None = None,
        rate_limited: str | None = None,
        response_body: bytes = b"",
    ) -> None:
        call = CrmCall(
            request.method,
            request.path,
            request.query_string.decode("latin-1"),
            portal_id,
            status,
            arrived,
            request.get_data(cache=True),
            fault,
            rate_limited,
            response_body,
        )
        with self._lock:
            self._calls.append(call)

    # ----- v3 objects ----------------------------------------------------------------

    def _get(self, ctx: _Ctx, object_type: str, object_id: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.read_scopes)
        request = ctx.request
        obj = ctx.portal.find(
            otype, object_id, request.args.get("idProperty"),
            archived=_query_bool(request, "archived"),
        )
        if obj is None:
            fail(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [object_id]})
        associations = [_object_type(name) for name in _query_list(request, "associations")]
        return json_response(
            render_object(
                ctx.portal,
                obj,
                _query_list(request, "properties"),
                with_history=_query_list(request, "propertiesWithHistory"),
                associations=associations,
            )
        )

    def _list(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.read_scopes)
        request = ctx.request
        limit = _query_int(request, "limit", 10, 100)
        after = request.args.get("after")
        records = sorted(
            ctx.portal.records(otype, archived=_query_bool(request, "archived")),
            key=lambda o: _id_key(o.id),
        )
        if after:
            records = [o for o in records if _id_key(o.id) >= _id_key(after)]
        page, rest = records[:limit], records[limit:]
        associations = [_object_type(name) for name in _query_list(request, "associations")]
        body: JsonObject = {
            "results": [
                render_object(
                    ctx.portal, o, _query_list(request, "properties"), associations=associations
                )
                for o in page
            ]
        }
        if rest:
            body["paging"] = _paging(rest[0].id, request.path)
        return json_response(body)

    def _create(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.write_scopes)
        body = _json_object(ctx.request)
        values = _property_values(body.get("properties", {}))
        links = self._association_inputs(ctx, otype, body.get("associations"))
        obj = ctx.portal.create(otype, values, ctx.source, associations=links)
        return json_response(render_object(ctx.portal, obj, list(values)), status=201)

    def _patch(self, ctx: _Ctx, object_type: str, object_id: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.write_scopes)
        values = _property_values(_json_object(ctx.request).get("properties"))
        obj = ctx.portal.find(otype, object_id, ctx.request.args.get("idProperty"))
        if obj is None:
            fail(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [object_id]})
        obj = ctx.portal.update(otype, obj.id, values, ctx.source)
        return json_response(render_object(ctx.portal, obj, list(values)))

    def _delete(self, ctx: _Ctx, object_type: str, object_id: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.write_scopes)
        ctx.portal.archive(otype, object_id, ctx.source)
        return Response(status=204)

    def _batch_read(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.read_scopes)
        started = ctx.now_ms()
        body = _json_object(ctx.request)
        inputs = _inputs(body, MAX_BATCH_INPUTS)
        properties = _str_list(body.get("properties"), "properties")
        history = _str_list(body.get("propertiesWithHistory"), "propertiesWithHistory")
        id_property = body.get("idProperty")
        archived = _query_bool(ctx.request, "archived")
        found: list[CrmObject] = []
        missing: list[str] = []
        for item in inputs:
            obj_id = _input_id(item)
            obj = ctx.portal.find(otype, obj_id, id_property, archived=archived)
            if obj is None:
                missing.append(obj_id)
            else:
                found.append(obj)
        results = [
            render_object(ctx.portal, o, properties, with_history=history) for o in _unique(found)
        ]
        errors = [_not_found_error(otype, "get", missing)] if missing else []
        payload, status = _batch_body(results, errors, started, ctx.now_ms())
        return json_response(payload, status=status)

    def _batch_update(self, ctx: _Ctx, object_type: str) -> Response:
        """All-or-nothing on invalid values (400); unknown ids come back as a 207 error."""
        otype = _object_type(object_type)
        ctx.require(otype.write_scopes)
        started = ctx.now_ms()
        inputs = _inputs(_json_object(ctx.request), MAX_BATCH_INPUTS)
        updates = [(_input_id(i), _property_values(i.get("properties"))) for i in inputs]
        ids = [obj_id for obj_id, _ in updates]
        duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=_id_key)
        if duplicates:
            fail(400, "VALIDATION_ERROR",
                 f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        live = [(i, v) for i, v in updates if ctx.portal.find(otype, i) is not None]
        missing = [i for i, _ in updates if ctx.portal.find(otype, i) is None]
        problems: list[PropertyProblem] = []
        for obj_id, values in live:
            try:
                current = ctx.portal.find(otype, obj_id)
                ctx.portal.validate(otype, values, strict=True, current=current)
            except ValidationFailed as err:
                problems += err.problems
        if problems:
            raise ValidationFailed(problems)
        results = [
            render_object(ctx.portal, ctx.portal.update(otype, i, v, ctx.source), list(v))
            for i, v in live
        ]
        errors = [_not_found_error(otype, "update", missing)] if missing else []
        payload, status = _batch_body(results, errors, started, ctx.now_ms())
        return json_response(payload, status=status)

    def _batch_create(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.write_scopes)
        started = ctx.now_ms()
        inputs = _inputs(_json_object(ctx.request), MAX_BATCH_INPUTS)
        prepared = [
            (_property_values(i.get("properties")),
             self._association_inputs(ctx, otype, i.get("associations")))
            for i in inputs
        ]
        problems: list[PropertyProblem] = []
        for values, _ in prepared:
            try:
                ctx.portal.validate(otype, values, strict=True)
            except ValidationFailed as err:
                problems += err.problems
        if problems:
            raise ValidationFailed(problems)
        results = [
            render_object(
                ctx.portal, ctx.portal.create(otype, v, ctx.source, associations=links), list(v)
            )
            for v, links in prepared
        ]
        payload, _ = _batch_body(results, [], started, ctx.now_ms())
        return json_response(payload, status=201)

    def _association_inputs(
        self, ctx: _Ctx, otype: ObjectType, raw: object
    ) -> list[tuple[ObjectType, str, list[int]]]:
        """`PublicAssociationsForObject` inputs, checked against the known types."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            fail(400, "VALIDATION_ERROR", "associations must be an array")
        links: list[tuple[ObjectType, str, list[int]]] = []
        for item in raw:
            to_id = str((item.get("to") or {}).get("id", "")) if isinstance(item, dict) else ""
            specs = item.get("types") if isinstance(item, dict) else None
            if not to_id or not isinstance(specs, list) or not specs:
                fail(400, "VALIDATION_ERROR", "each association needs to.id and types")
            type_ids = [int(spec.get("associationTypeId", 0)) for spec in specs]
            kinds = [ASSOCIATION_TYPES.get(t) for t in type_ids]
            if any(k is None or k.from_type != otype.name for k in kinds):
                fail(400, "VALIDATION_ERROR",
                     f"invalid association type ids {type_ids} for {otype.name}")
            target = OBJECT_TYPES[kinds[0].to_type]  # type: ignore[union-attr]
            if ctx.portal.find(target, to_id) is None:
                fail(400, "VALIDATION_ERROR",
                     f"{target.error_label} {to_id} does not exist to be associated")
            links.append((target, to_id, type_ids))
        return links

    def _search(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.read_scopes)
        body = _json_object(ctx.request)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 <= limit <= MAX_SEARCH_LIMIT:
            fail(400, "VALIDATION_ERROR", f"limit must be between 0 and {MAX_SEARCH_LIMIT}")
        defs = ctx.portal.properties_of(otype)
        matches = search_records(
            ctx.portal.records(otype), defs, body.get("filterGroups") or [],
            body.get("query"), otype,
        )
        ordered = sort_records(matches, body.get("sorts") or [], defs)
        after = str(body.get("after") or "0")
        if not after.isdigit():
            fail(400, "VALIDATION_ERROR", f"after must be a paging token, not {after!r}")
        offset = int(after)
        page = ordered[offset : offset + limit]
        properties = _str_list(body.get("properties"), "properties")
        result: JsonObject = {
            "total": len(ordered),
            "results": [render_object(ctx.portal, o, properties) for o in page],
        }
        if offset + limit < len(ordered):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return json_response(result)

    # ----- v4 associations ---------------------------------------------------------

    def _association_batch(self, ctx: _Ctx, from_type: str, to_type: str) -> Response:
        source, target = _object_type(from_type), _object_type(to_type)
        ctx.require(source.read_scopes)
        ctx.require(target.read_scopes)
        started = ctx.now_ms()
        inputs = _inputs(_json_object(ctx.request), MAX_ASSOCIATION_BATCH_INPUTS)
        results: list[JsonObject] = []
        errors: list[JsonObject] = []
        for item in inputs:
            from_id = _input_id(item)
            links = (
                ctx.portal.links(source, from_id, target)
                if ctx.portal.find(source, from_id) is not None
                else {}
            )
            if links:
                results.append(self._association_page(from_id, _v4_targets(links), item))
            else:
                errors.append(_no_associations(source, target, from_id))
        payload, status = _batch_body(results, errors, started, ctx.now_ms())
        return json_response(payload, status=status)

    def _association_page(self, from_id: str, targets: list[JsonObject],
                          item: JsonObject) -> JsonObject:
        """One input's page: associations-v4.json PublicFetchAssociationsBatchRequest carries
        an optional `after` ("A paging cursor token used to retrieve the next set of
        results"); the result's `paging` is "only present if there are more pages"."""
        after = item.get("after")
        if after is not None and (not isinstance(after, str) or not after.isdigit()):
            fail(400, "VALIDATION_ERROR", f"after must be a paging token, not {after!r}",
                 context={"after": [str(after)]})
        start = int(after or 0)
        end = start + self.association_page_size
        result: JsonObject = {"from": {"id": from_id}, "to": targets[start:end]}
        if end < len(targets):
            result["paging"] = {"next": {"after": str(end)}}
        return result

    def _association_list(
        self, ctx: _Ctx, object_type: str, object_id: str, to_type: str
    ) -> Response:
        source, target = _object_type(object_type), _object_type(to_type)
        ctx.require(source.read_scopes)
        ctx.require(target.read_scopes)
        if ctx.portal.find(source, object_id) is None:
            fail(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [object_id]})
        return json_response({"results": _v4_targets(ctx.portal.links(source, object_id, target))})

    # ----- pipelines, properties, owners --------------------------------------------

    def _pipelines(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _pipeline_type(object_type)
        ctx.require(otype.schema_read_scopes)
        return json_response({"results": [render_pipeline(p) for p in ctx.portal.pipelines]})

    def _pipeline(self, ctx: _Ctx, object_type: str, pipeline_id: str) -> Response:
        otype = _pipeline_type(object_type)
        ctx.require(otype.schema_read_scopes)
        pipeline = next((p for p in ctx.portal.pipelines if p.id == pipeline_id), None)
        if pipeline is None:
            fail(404, "OBJECT_NOT_FOUND", f"No pipeline with id {pipeline_id}")
        return json_response(render_pipeline(pipeline))

    def _properties(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.schema_read_scopes)
        defs = ctx.portal.properties_of(otype).values()
        return json_response(
            {"results": [render_property(d, ctx.portal, otype) for d in defs]}
        )

    def _property(self, ctx: _Ctx, object_type: str, property_name: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.schema_read_scopes)
        defn = ctx.portal.properties_of(otype).get(property_name)
        if defn is None:
            fail(404, "OBJECT_NOT_FOUND", f"Unable to find property {property_name}")
        return json_response(render_property(defn, ctx.portal, otype))

    def _create_property(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.schema_write_scopes)
        body = _json_object(ctx.request)
        defn = _property_from_request(body, ctx.portal.groups_of(otype), ctx.now_ms())
        defs = ctx.portal.properties_of(otype)
        if defn.name in defs:
            fail(409, "OBJECT_ALREADY_EXISTS", f"A property named '{defn.name}' already exists.")
        defs[defn.name] = defn
        response = json_response(render_property(defn, ctx.portal, otype), status=201)
        response.headers["Location"] = f"{API_HOST}/crm/v3/properties/{otype.name}/{defn.name}"
        return response

    def _batch_create_properties(self, ctx: _Ctx, object_type: str) -> Response:
        """Create several; invalid input fails the batch (400), existing names are 207
        errors (unverified: HubSpot may answer 409 for the whole batch)."""
        otype = _object_type(object_type)
        ctx.require(otype.schema_write_scopes)
        started = ctx.now_ms()
        inputs = _inputs(_json_object(ctx.request), MAX_BATCH_INPUTS)
        groups, defs = ctx.portal.groups_of(otype), ctx.portal.properties_of(otype)
        created = [_property_from_request(i, groups, ctx.now_ms()) for i in inputs]
        results: list[JsonObject] = []
        errors: list[JsonObject] = []
        for defn in created:
            if defn.name in defs:
                errors.append(standard_error(
                    "OBJECT_ALREADY_EXISTS", f"A property named '{defn.name}' already exists.",
                    context={"name": [defn.name]},
                ))
                continue
            defs[defn.name] = defn
            results.append(render_property(defn, ctx.portal, otype))
        payload, status = _batch_body(results, errors, started, ctx.now_ms())
        return json_response(payload, status=201 if status == 200 else status)

    def _batch_read_properties(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.schema_read_scopes)
        started = ctx.now_ms()
        inputs = _inputs(_json_object(ctx.request), MAX_BATCH_INPUTS)
        names = [str(i.get("name", "")) for i in inputs]
        defs = ctx.portal.properties_of(otype)
        results = [render_property(defs[n], ctx.portal, otype) for n in names if n in defs]
        missing = [n for n in names if n not in defs]
        errors = [
            standard_error("OBJECT_NOT_FOUND", f"Unable to find properties {missing}",
                           context={"names": missing})
        ] if missing else []
        payload, status = _batch_body(results, errors, started, ctx.now_ms())
        return json_response(payload, status=status)

    def _groups(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.schema_read_scopes)
        groups = ctx.portal.groups_of(otype).values()
        return json_response({"results": [render_group(g) for g in groups]})

    def _group(self, ctx: _Ctx, object_type: str, group_name: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.schema_read_scopes)
        group = ctx.portal.groups_of(otype).get(group_name)
        if group is None:
            fail(404, "OBJECT_NOT_FOUND", f"Unable to find group {group_name}")
        return json_response(render_group(group))

    def _create_group(self, ctx: _Ctx, object_type: str) -> Response:
        otype = _object_type(object_type)
        ctx.require(otype.schema_write_scopes)
        body = _json_object(ctx.request)
        name, label = body.get("name"), body.get("label")
        if not isinstance(name, str) or not _PROPERTY_NAME.match(name):
            fail(400, "VALIDATION_ERROR", "name must be lower case letters, digits and _")
        if not isinstance(label, str) or not label:
            fail(400, "VALIDATION_ERROR", "label is required")
        groups = ctx.portal.groups_of(otype)
        if name in groups:
            fail(409, "OBJECT_ALREADY_EXISTS", f"A property group named '{name}' already exists.")
        order = body.get("displayOrder", -1)
        groups[name] = PropertyGroup(name, label, order if isinstance(order, int) else -1)
        response = json_response(render_group(groups[name]), status=201)
        response.headers["Location"] = f"{API_HOST}/crm/v3/properties/{otype.name}/groups/{name}"
        return response

    def _owners(self, ctx: _Ctx) -> Response:
        ctx.require(OWNER_SCOPES)
        request = ctx.request
        limit = _query_int(request, "limit", 100, 500)
        email = request.args.get("email")
        owners = [
            o for o in ctx.portal.owners
            if o.archived == _query_bool(request, "archived") and (not email or o.email == email)
        ]
        after = request.args.get("after")
        if after:
            owners = [o for o in owners if _id_key(o.id) >= _id_key(after)]
        body: JsonObject = {"results": [render_owner(o) for o in owners[:limit]]}
        if len(owners) > limit:
            body["paging"] = _paging(owners[limit].id, "/crm/v3/owners/")
        return json_response(body)

    def _owner(self, ctx: _Ctx, owner_id: str) -> Response:
        ctx.require(OWNER_SCOPES)
        by_user = ctx.request.args.get("idProperty") == "userId"
        owner = next(
            (o for o in ctx.portal.owners if (str(o.user_id) if by_user else o.id) == owner_id),
            None,
        )
        if owner is None:
            fail(404, "OBJECT_NOT_FOUND", f"No owner with id {owner_id}")
        return json_response(render_owner(owner))

    # ----- developer webhook settings (hapikey) -------------------------------------

    def _get_settings(self, request: Request, app_id: int) -> Response:
        app = self.webhooks.find_app(app_id)
        if app is None or not app.target_url:
            fail(404, "OBJECT_NOT_FOUND", f"No webhook settings for app {app_id}")
        return json_response(_render_settings(app))

    def _put_settings(self, request: Request, app_id: int) -> Response:
        body = _json_object(request)
        target = body.get("targetUrl")
        throttling = body.get("throttling")
        if not isinstance(target, str) or not target.startswith(("https://", "http://")):
            fail(400, "VALIDATION_ERROR", "targetUrl must be an absolute URL")
        if not isinstance(throttling, dict) or not isinstance(
            throttling.get("maxConcurrentRequests"), int
        ):
            fail(400, "VALIDATION_ERROR", "throttling.maxConcurrentRequests is required")
        app = self.webhooks.app(app_id, self._secret_for(app_id))
        app.target_url = target
        app.max_concurrent_requests = throttling["maxConcurrentRequests"]
        app.updated_ms = int(self.clock.now() * 1000)
        return json_response(_render_settings(app))

    def _clear_settings(self, request: Request, app_id: int) -> Response:
        app = self.webhooks.find_app(app_id)
        if app is not None:
            app.target_url = None
        return Response(status=204)

    def _get_subscriptions(self, request: Request, app_id: int) -> Response:
        app = self.webhooks.find_app(app_id)
        subs = app.subscriptions if app is not None else []
        return json_response({"results": [s.render() for s in subs]})

    def _create_subscription(self, request: Request, app_id: int) -> Response:
        body = _json_object(request)
        event_type, property_name = body.get("eventType"), body.get("propertyName")
        if not isinstance(event_type, str):
            fail(400, "VALIDATION_ERROR", "eventType is required")
        spec = f"{event_type}:{property_name}" if property_name else event_type
        try:
            parsed_type, parsed_property = parse_subscription(spec)
        except ValueError as exc:
            fail(400, "VALIDATION_ERROR", str(exc))
        app = self.webhooks.app(app_id, self._secret_for(app_id))
        sub = self.webhooks.add_subscription(
            app, parsed_type, parsed_property, bool(body.get("active", False))
        )
        return json_response(sub.render(), status=201)

    def _get_subscription(self, request: Request, app_id: int, subscription_id: str) -> Response:
        return json_response(self._subscription(app_id, subscription_id).render())

    def _patch_subscription(
        self, request: Request, app_id: int, subscription_id: str
    ) -> Response:
        sub = self._subscription(app_id, subscription_id)
        active = _json_object(request).get("active")
        if not isinstance(active, bool):
            fail(400, "VALIDATION_ERROR", "active must be true or false")
        sub.active, sub.updated_ms = active, int(self.clock.now() * 1000)
        return json_response(sub.render())

    def _delete_subscription(
        self, request: Request, app_id: int, subscription_id: str
    ) -> Response:
        sub = self._subscription(app_id, subscription_id)
        app = self.webhooks.find_app(app_id)
        assert app is not None
        app.subscriptions.remove(sub)
        return Response(status=204)

    def _subscription(self, app_id: int, subscription_id: str) -> WebhookSubscription:
        app = self.webhooks.find_app(app_id)
        sub = next(
            (s for s in (app.subscriptions if app else []) if str(s.id) == subscription_id), None
        )
        if sub is None:
            fail(404, "OBJECT_NOT_FOUND", f"No subscription {subscription_id} for app {app_id}")
        return sub

    def _secret_for(self, app_id: int) -> str:
        """The fake's own app signs with its client secret; other apps borrow it."""
        return self._fake.client_secret


def _object_type(name: str) -> ObjectType:
    return object_type(name)


def _pipeline_type(name: str) -> ObjectType:
    otype = object_type(name)
    if otype.name != "deals":
        fail(400, "VALIDATION_ERROR", f"Object type {otype.name} does not support pipelines")
    return otype


def _v4_targets(links: Links) -> list[JsonObject]:
    return [
        {
            "toObjectId": to_id,
            "associationTypes": [render_association_type(t) for t in sorted(links[to_id])],
        }
        for to_id in sorted(links, key=_id_key)
    ]


def _no_associations(source: ObjectType, target: ObjectType, from_id: str) -> JsonObject:
    return standard_error(
        "OBJECT_NOT_FOUND",
        f"No {target.singular} is associated with {source.singular} {from_id}.",
        subCategory="crm.associations.NO_ASSOCIATIONS_FOUND",
        context={"fromObjectId": [from_id]},
    )


def _render_settings(app: WebhookApp) -> JsonObject:
    return {
        "targetUrl": app.target_url,
        "throttling": {
            "maxConcurrentRequests": app.max_concurrent_requests,
            "period": "SECONDLY",
        },
        "createdAt": iso_ms(app.created_ms),
        "updatedAt": iso_ms(app.updated_ms),
    }


def _property_from_request(
    body: JsonObject, groups: Mapping[str, PropertyGroup], now_ms: int
) -> PropertyDef:
    """A custom property from a `PropertyCreate` body, or CrmError 400."""
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        fail(400, "VALIDATION_ERROR", f"Missing required fields: {missing}")
    name = str(body["name"])
    if not _PROPERTY_NAME.match(name):
        fail(400, "VALIDATION_ERROR",
             f"Property name '{name}' must start with a lower case letter and contain only "
             "lower case letters, digits and _")
    if body["type"] not in _PROPERTY_TYPES or body["fieldType"] not in _FIELD_TYPES:
        fail(400, "VALIDATION_ERROR",
             f"Invalid type {body['type']} / fieldType {body['fieldType']}")
    if body["groupName"] not in groups:
        fail(400, "VALIDATION_ERROR", f"Property group {body['groupName']} does not exist")
    options = body.get("options") or []
    if body["type"] == "enumeration" and not options:
        fail(400, "VALIDATION_ERROR", "Enumeration properties need options")
    return PropertyDef(
        name,
        str(body["label"]),
        str(body["type"]),
        str(body["fieldType"]),
        str(body["groupName"]),
        description=str(body.get("description") or ""),
        options=[
            _option(str(o["value"]), str(o["label"]), int(o.get("displayOrder", i)))
            for i, o in enumerate(options)
        ],
        hubspot_defined=False,
        has_unique_value=bool(body.get("hasUniqueValue", False)),
        hidden=bool(body.get("hidden", False)),
        form_field=bool(body.get("formField", False)),
        display_order=int(body.get("displayOrder", -1)),
        created_ms=now_ms,
        updated_ms=now_ms,
    )


# ======================================================================================
# Search
# ======================================================================================

_SEARCH_OPERATORS = (
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
    "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
)
_MAX_FILTER_GROUPS = 5
_MAX_FILTERS = 18


def _comparable(defn: PropertyDef | None, value: str) -> Decimal | str:
    """A value in the property's own order: numbers and timestamps numerically."""
    if defn is not None and defn.type == "number":
        number = _decimal(value)
        if number is not None:
            return number
    if defn is not None and defn.type in ("datetime", "date"):
        try:
            return Decimal(parse_timestamp_ms(value))
        except ValueError:
            return value.lower()
    return value.lower()


def _filter_matches(obj: CrmObject, flt: JsonObject, defs: Mapping[str, PropertyDef]) -> bool:
    name = str(flt.get("propertyName", ""))
    operator = str(flt.get("operator", "EQ"))
    actual = obj.properties.get(name)
    if operator == "HAS_PROPERTY":
        return actual is not None
    if operator == "NOT_HAS_PROPERTY":
        return actual is None
    if operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN") and actual is None:
        return True
    if actual is None:
        return False
    defn = defs.get(name)
    have = _comparable(defn, actual)
    if operator in ("IN", "NOT_IN"):
        wanted = {_comparable(defn, str(v)) for v in flt.get("values") or []}
        return (have in wanted) == (operator == "IN")
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(flt.get("value", "")).lower().strip("*")
        return (token in actual.lower()) == (operator == "CONTAINS_TOKEN")
    want = _comparable(defn, str(flt.get("value", "")))
    if type(want) is not type(have):
        return operator == "NEQ"
    if operator == "BETWEEN":
        high = _comparable(defn, str(flt.get("highValue", "")))
        return type(high) is type(have) and want <= have <= high  # type: ignore[operator]
    return _compare(operator, have, want)


def _compare(operator: str, have: Decimal | str, want: Decimal | str) -> bool:
    results = {
        "EQ": have == want,
        "NEQ": have != want,
        "LT": have < want,  # type: ignore[operator]
        "LTE": have <= want,  # type: ignore[operator]
        "GT": have > want,  # type: ignore[operator]
        "GTE": have >= want,  # type: ignore[operator]
    }
    return results[operator]


def search_records(
    records: Sequence[CrmObject],
    defs: Mapping[str, PropertyDef],
    filter_groups: object,
    query: object,
    otype: ObjectType,
) -> list[CrmObject]:
    """Records matching any filter group (all filters of a group) and the text query."""
    groups = _checked_filter_groups(filter_groups)
    matched = [
        o
        for o in records
        if not groups
        or any(all(_filter_matches(o, f, defs) for f in g["filters"]) for g in groups)
    ]
    if isinstance(query, str) and query.strip():
        needle = query.strip().lower()
        matched = [
            o for o in matched
            if any(needle in (o.properties.get(n) or "").lower() for n in otype.defaults)
        ]
    return matched


def _checked_filter_groups(raw: object) -> list[JsonObject]:
    if not isinstance(raw, list) or not all(
        isinstance(g, dict) and isinstance(g.get("filters"), list) for g in raw
    ):
        fail(400, "VALIDATION_ERROR", "filterGroups must be an array of {filters: [...]}")
    total = sum(len(g["filters"]) for g in raw)
    if len(raw) > _MAX_FILTER_GROUPS or total > _MAX_FILTERS:
        fail(400, "VALIDATION_ERROR",
             f"at most {_MAX_FILTER_GROUPS} filter groups and {_MAX_FILTERS} filters")
    for group in raw:
        for flt in group["filters"]:
            if not isinstance(flt, dict) or flt.get("operator") not in _SEARCH_OPERATORS:
                fail(400, "VALIDATION_ERROR", f"invalid filter {flt!r}")
    return raw


def sort_records(
    records: list[CrmObject], sorts: object, defs: Mapping[str, PropertyDef]
) -> list[CrmObject]:
    """Sort by `sorts` ({propertyName, direction} or "-name"); default by id."""
    ordered = sorted(records, key=lambda o: _id_key(o.id))
    if not isinstance(sorts, list):
        return ordered
    for spec in reversed(sorts):
        if isinstance(spec, str):
            name, descending = spec.lstrip("-"), spec.startswith("-")
        elif isinstance(spec, dict):
            name = str(spec.get("propertyName", ""))
            descending = spec.get("direction") == "DESCENDING"
        else:
            continue
        ordered.sort(key=_sort_key(name, defs), reverse=descending)
    return ordered


def _sort_key(name: str, defs: Mapping[str, PropertyDef]) -> Callable[[CrmObject], Any]:
    def key(obj: CrmObject) -> tuple[int, Any]:
        value = obj.properties.get(name)
        if value is None:
            return (1, "")
        comparable = _comparable(defs.get(name), value)
        return (0, comparable) if isinstance(comparable, Decimal) else (0, str(comparable))

    return key
