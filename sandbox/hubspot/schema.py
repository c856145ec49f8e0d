"""HubSpot's CRM schema as a new portal has it: object types, properties, the default
pipeline, association types, and HubSpot's wire formats (ids and values are strings,
timestamps ISO 8601 with milliseconds and ``Z``).

Sources: shared/notes/platform-facts.md "HubSpot", the vendored specs in shared/specs/hubspot/,
the hubspot-api-client 12.0 source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.hubspot.errors import fail

API_HOST = "https://api.hubapi.com"
JsonObject = dict[str, Any]


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


def to_decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def plain(number: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 1500.00 -> "1500"."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


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


OBJECT_TYPES: dict[str, ObjectType] = {t.name: t for t in (
    ObjectType("deals", "deal", "0-3", "DEAL", "dealinformation", "Deal information",
               ("amount", "closedate", "createdate", "dealname", "dealstage",
                "hs_lastmodifieddate", "hs_object_id", "pipeline"), *_scopes("deals")),
    ObjectType("companies", "company", "0-2", "COMPANY", "companyinformation",
               "Company information",
               ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
               *_scopes("companies")),
    ObjectType("contacts", "contact", "0-1", "CONTACT", "contactinformation",
               "Contact information",
               ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
               *_scopes("contacts"), modified_property="lastmodifieddate"),
    ObjectType("line_items", "line_item", "0-8", "LINE_ITEM", "lineiteminformation",
               "Line item information",
               ("createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"),
               *_scopes("line_items", ecommerce=True)),
    ObjectType("products", "product", "0-7", "PRODUCT", "productinformation",
               "Product information",
               ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name",
                "price"), *_scopes("products", ecommerce=True)),
    # No spec is vendored for tasks, so their scopes are not checked.
    ObjectType("tasks", "task", "0-27", "TASK", "task", "Task information",
               ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"), (), (),
               created_property="hs_createdate"),
)}
_TYPE_ALIASES: dict[str, ObjectType] = {
    alias: t for t in OBJECT_TYPES.values() for alias in (t.name, t.singular, t.type_id)
}
OWNER_SCOPES = ("crm.objects.owners.read",)


def object_type(name: str) -> ObjectType:
    """The type for a path segment ("deals", "deal", "0-3"); a 400 otherwise."""
    found = _TYPE_ALIASES.get(name.lower())
    if found is None:
        fail(400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}")
    return found


PROPERTY_TYPES = ("bool", "date", "datetime", "enumeration", "number", "phone_number", "string")
FIELD_TYPES = ("booleancheckbox", "calculation_equation", "checkbox", "date", "file", "html",
               "number", "phonenumber", "radio", "select", "text", "textarea")
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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


def option(value: str, label: str, order: int) -> JsonObject:
    return {"label": label, "value": value, "displayOrder": order, "hidden": False}


def option_list(*pairs: tuple[str, str]) -> list[JsonObject]:
    return [option(value, label, i) for i, (value, label) in enumerate(pairs)]


_OWNER: Mapping[str, Any] = {"external_options": True, "referenced_object_type": "OWNER"}
_CALC: Mapping[str, Any] = {"read_only": True, "calculated": True}
_RECURRING = {"options": option_list(
    ("weekly", "Weekly"), ("biweekly", "Biweekly"), ("monthly", "Monthly"),
    ("quarterly", "Quarterly"), ("per_six_months", "Every six months"),
    ("annually", "Annually"), ("per_two_years", "Every two years"),
)}
# The (type, fieldType) pairs of the default properties.
TEXT, AREA, PHONE = ("string", "text"), ("string", "textarea"), ("string", "phonenumber")
NUMBER, DATE, BOOL = ("number", "number"), ("datetime", "date"), ("bool", "booleancheckbox")
SELECT, RADIO = ("enumeration", "select"), ("enumeration", "radio")
_CITY_TO_COUNTRY = (("city", "City", TEXT), ("state", "State/Region", TEXT),
                    ("zip", "Postal Code", TEXT), ("country", "Country/Region", TEXT))

# (name, label, (type, fieldType), extra PropertyDef fields?) per object type.
_DEFAULT_PROPERTIES: dict[str, tuple[tuple[Any, ...], ...]] = {
    "deals": (
        ("dealname", "Deal Name", TEXT), ("amount", "Amount", NUMBER),
        ("deal_currency_code", "Currency", SELECT), ("dealstage", "Deal Stage", RADIO),
        ("pipeline", "Pipeline", SELECT), ("closedate", "Close Date", DATE),
        ("description", "Deal Description", AREA),
        ("dealtype", "Deal Type", RADIO, {"options": option_list(
            ("newbusiness", "New Business"), ("existingbusiness", "Existing Business"))}),
        ("hubspot_owner_id", "Deal owner", SELECT, _OWNER),
        ("hs_is_closed", "Is Deal Closed?", BOOL, _CALC),
        ("hs_is_closed_won", "Is Closed Won", BOOL, _CALC),
        ("hs_deal_stage_probability", "Deal probability", NUMBER, _CALC),
    ),
    "companies": (
        ("name", "Company name", TEXT), ("domain", "Company Domain Name", TEXT),
        ("phone", "Phone Number", PHONE), ("address", "Street Address", TEXT),
        ("address2", "Street Address 2", TEXT), *_CITY_TO_COUNTRY,
        ("website", "Website URL", TEXT), ("description", "Description", AREA),
        ("hubspot_owner_id", "Company owner", SELECT, _OWNER),
    ),
    "contacts": (
        ("firstname", "First Name", TEXT), ("lastname", "Last Name", TEXT),
        ("email", "Email", TEXT), ("phone", "Phone Number", PHONE),
        ("mobilephone", "Mobile Phone Number", PHONE), ("company", "Company Name", TEXT),
        ("jobtitle", "Job Title", TEXT), ("address", "Street Address", TEXT), *_CITY_TO_COUNTRY,
        ("hubspot_owner_id", "Contact owner", SELECT, _OWNER),
    ),
    "line_items": (
        ("name", "Name", TEXT), ("description", "Description", AREA), ("hs_sku", "SKU", TEXT),
        ("hs_product_id", "Product ID", NUMBER), ("price", "Unit price", NUMBER),
        ("quantity", "Quantity", NUMBER), ("discount", "Unit discount", NUMBER),
        ("hs_discount_percentage", "Unit discount percentage", NUMBER),
        ("amount", "Net price", NUMBER, _CALC),
        ("hs_pre_discount_amount", "Pre-discount amount", NUMBER, _CALC),
        ("hs_total_discount", "Total discount", NUMBER, _CALC),
        ("hs_line_item_currency_code", "Currency", SELECT),
        ("hs_tax_rate_group_id", "Tax rate", TEXT), ("hs_tax_label", "Tax label", TEXT),
        ("hs_tax_rate", "Tax rate percentage", NUMBER), ("hs_tax_amount", "Tax amount", NUMBER),
        ("tax", "Tax", NUMBER), ("hs_cost_of_goods_sold", "Unit cost", NUMBER),
        ("hs_recurring_billing_period", "Term", TEXT),
        ("recurringbillingfrequency", "Billing frequency", SELECT, _RECURRING),
        ("hs_position_on_quote", "Position on quote", NUMBER),
    ),
    "products": (
        ("name", "Name", TEXT), ("description", "Description", AREA),
        ("price", "Unit price", NUMBER), ("hs_sku", "SKU", TEXT),
        ("hs_cost_of_goods_sold", "Unit cost", NUMBER), ("tax", "Tax", NUMBER),
        ("hs_recurring_billing_period", "Term", TEXT),
        ("recurringbillingfrequency", "Billing frequency", SELECT, _RECURRING),
    ),
    "tasks": (
        ("hs_task_subject", "Task Title", TEXT), ("hs_task_body", "Notes", AREA),
        ("hs_timestamp", "Due date", DATE),
        ("hs_task_status", "Task Status", SELECT, {"options": option_list(
            ("NOT_STARTED", "Not started"), ("IN_PROGRESS", "In progress"),
            ("WAITING", "Waiting"), ("COMPLETED", "Completed"), ("DEFERRED", "Deferred"))}),
        ("hs_task_priority", "Priority", SELECT, {"options": option_list(
            ("NONE", "None"), ("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High"))}),
        ("hs_task_type", "Task Type", SELECT, {"options": option_list(
            ("TODO", "To-do"), ("CALL", "Call"), ("EMAIL", "Email"))}),
        ("hubspot_owner_id", "Assigned to", SELECT, _OWNER),
    ),
}


def default_properties(otype: ObjectType) -> dict[str, PropertyDef]:
    """The HubSpot-defined properties of a new portal, system fields included."""
    group = otype.group
    defs = {name: PropertyDef(name, label, *kind, group, read_only=True) for name, label, kind in (
        (otype.created_property, "Create Date", DATE),
        (otype.modified_property, "Last Modified Date", DATE),
        ("hs_object_id", "Record ID", NUMBER))}
    for order, (name, label, kind, *extra) in enumerate(_DEFAULT_PROPERTIES[otype.name]):
        defs[name] = PropertyDef(name, label, *kind, group, display_order=order, **dict(*extra))
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
        ("closedwon", "Closed Won", "1.0", True), ("closedlost", "Closed Lost", "0.0", True),
    )
    stages = [Stage(stage_id, label, i, probability, closed)
              for i, (stage_id, label, probability, closed) in enumerate(rows)]
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


def _pair(a: str, b: str, forward: tuple[int, str], back: tuple[int, str],
          label: str | None = None) -> list[AssociationType]:
    return [AssociationType(forward[0], a, b, forward[1], label, back[0]),
            AssociationType(back[0], b, a, back[1], label, forward[0])]


ASSOCIATION_TYPES: dict[int, AssociationType] = {t.type_id: t for t in (
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
)}
PRIMARY_COMPANY = (5, 341)  # a deal's primary company carries both types, as in HubSpot


def id_key(object_id: str) -> tuple[int, str]:
    """Ids in HubSpot's order: numerically, any others first."""
    return (int(object_id), "") if object_id.isdigit() else (0, object_id)
