"""The records one Pipedrive company holds, the constants they are checked against, and
their API v2 bodies (the models of pipedrive/client-nodejs ``src/versions/v2``), each body
drawn from a small table: the attributes sent as they are, the timestamps, the fixed fields."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
DEFAULT_CURRENCY = "AUD"  # also /users/me default_currency
DEFAULT_STAGES = ("Lead In", "Contact Made", "Proposal Made", "Negotiations Started", "Won")
"""The sandbox's default pipeline. Real Pipedrive tracks won/lost in a deal's `status`,
not a stage; "Won" is here as the custom stage many companies add."""

# `visible_to` codes (pipedrive/client-nodejs docs/AddOrUpdateRoleSettingRequest.md, the
# `default_visibility` values): Essential/Advanced plans 1 = owner & followers, 3 = entire
# company; Professional/Enterprise 1 = owner only, 3 = owner's visibility group, 5 = group and
# sub-groups, 7 = entire company. The fake stores the code it is given; 3 is the default here
# as it is on Essential/Advanced plans.
VISIBLE_TO = (1, 3, 5, 7)
CUSTOM_FIELD_TYPES = (
    "varchar", "varchar_auto", "text", "double", "monetary", "date", "set", "enum", "user",
    "org", "people", "phone", "time", "timerange", "daterange", "address",
)
ADDRESS_KEYS = (
    "value", "street_number", "route", "sublocality", "locality", "admin_area_level_1",
    "admin_area_level_2", "country", "postal_code", "formatted_address",
)
BUILTIN_DEAL_FIELDS = (  # (field_code, field_name, field_type)
    ("title", "Title", "varchar"), ("value", "Value", "monetary"),
    ("currency", "Currency", "varchar"), ("stage_id", "Stage", "stage"),
    ("pipeline_id", "Pipeline", "int"), ("owner_id", "Owner", "user"),
    ("org_id", "Organization", "org"), ("person_id", "Contact person", "people"),
    ("status", "Status", "status"), ("expected_close_date", "Expected close date", "date"),
    ("probability", "Probability", "double"), ("lost_reason", "Lost reason", "varchar"),
    ("add_time", "Deal created", "date"), ("update_time", "Update time", "date"),
)

ChangeSource = Literal["app", "api"]
TaxMethod = Literal["exclusive", "inclusive", "none"]
DiscountType = Literal["percentage", "amount"]


@dataclass
class Record:
    """What every stored record has: an id, and timestamps set as it is stored."""

    id: int
    _: KW_ONLY
    add_time: float = 0.0
    update_time: float = 0.0


@dataclass
class Pipeline(Record):
    name: str
    order_nr: int


@dataclass
class Stage(Record):
    name: str
    pipeline_id: int
    order_nr: int
    deal_probability: int = 100


@dataclass
class DealField:
    """A deal (or organization) field; custom ones have a 40-hex `field_code`."""

    field_code: str
    field_name: str
    field_type: str
    is_custom_field: bool
    options: list[dict[str, Any]] | None = None
    description: str | None = None


@dataclass
class Owned(Record):
    """The fields a company's organisations, persons and products share."""

    name: str
    owner_id: int
    custom_fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Organization(Owned):
    address: dict[str, str | None] | None = None
    website: str | None = None
    visible_to: int = 3


@dataclass
class Person(Owned):
    org_id: int | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)
    phones: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ProductPrice:
    currency: str
    price: Decimal
    cost: Decimal = Decimal(0)
    notes: str = ""


@dataclass
class Product(Owned):
    code: str | None = None
    unit: str | None = None
    tax: Decimal = Decimal(0)
    description: str | None = None
    prices: list[ProductPrice] = field(default_factory=list)


@dataclass
class DealProduct(Record):
    deal_id: int
    product_id: int
    name: str
    item_price: Decimal
    quantity: Decimal
    currency: str
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
class Linked(Record):
    """A deal's or activity's owner, and the organisation and person it is about."""

    owner_id: int
    _: KW_ONLY
    org_id: int | None = None
    person_id: int | None = None


@dataclass
class Deal(Linked):
    title: str
    value: Decimal
    currency: str
    stage_id: int
    pipeline_id: int
    stage_change_time: float | None = None
    expected_close_date: str | None = None
    probability: int | None = None
    lost_reason: str | None = None
    # its state ("deleted" is a flag beside it), and when it was last won, lost or closed
    status: str = "open"
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
class Activity(Linked):
    subject: str
    type: str
    deal_id: int | None = None
    due_date: str | None = None
    due_time: str | None = None
    duration: str | None = None
    note: str | None = None
    done: bool = False


@dataclass(frozen=True)
class Event:
    """What changed, for the webhook body; `user_id` None is the installing user."""

    company_id: int
    domain: str
    entity: str
    action: str
    entity_id: int
    data: dict[str, Any] | None
    previous: dict[str, Any] | None
    user_id: int | None
    change_source: ChangeSource
    owners: tuple[int, ...]
    meta: tuple[tuple[str, Any], ...] = ()  # extra meta fields (a merge's merged_to_id)


def api_time(timestamp: float) -> str:
    """v2's RFC 3339 UTC timestamps, e.g. ``2026-11-02T09:30:00Z``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_time(timestamp: float) -> str:
    """Webhook meta timestamps, e.g. ``2026-11-02T09:30:00.123Z`` (guide-for-webhooks-v2)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _pairs(names: str) -> list[tuple[str, str]]:
    """``"id owner_id=user_id"`` -> ``[("id", "id"), ("owner_id", "user_id")]``."""
    return [(n.partition("=")[0], n.partition("=")[2] or n) for n in names.split()]


@dataclass(frozen=True)
class Shape:
    """One record's body: `copied` attributes (``key=attr`` renames), `times` (None stays
    None), `fixed` fields Pipedrive sends that the fake does not model, and `derived` ones."""

    copied: str
    times: str = "add_time update_time"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    derived: Callable[[Any], dict[str, Any]] = lambda record: {}
    stamp: Callable[[float], str] = api_time

    def render(self, record: Any) -> dict[str, Any]:
        body = {key: copy.deepcopy(getattr(record, attr)) for key, attr in _pairs(self.copied)}
        for key, attr in _pairs(self.times):
            moment = getattr(record, attr)
            body[key] = None if moment is None else self.stamp(moment)
        return body | copy.deepcopy(dict(self.fixed)) | self.derived(record)


DEAL = Shape(
    "id title owner_id person_id org_id pipeline_id stage_id value currency is_deleted status"
    " probability lost_reason visible_to expected_close_date",
    "add_time update_time stage_change_time close_time won_time lost_time",
    {"label_ids": [], "origin": "ManuallyCreated", "origin_id": None, "channel": None,
     "channel_id": None},
)
DEAL_PRODUCT = Shape(
    "id sum tax deal_id name product_id comments currency discount discount_type quantity"
    " item_price tax_method is_enabled",
    fixed={"product_variation_id": None, "billing_frequency": "one-time",
           "billing_frequency_cycles": None, "billing_start_date": None},
)
PRODUCT = Shape(
    "id name code description unit tax owner_id custom_fields",
    fixed={"category": None, "is_linkable": True, "is_deleted": False, "visible_to": 3,
           "billing_frequency": "one-time", "billing_frequency_cycles": None},
    derived=lambda product: {"prices": [
        {"product_id": product.id, "price": p.price, "currency": p.currency, "cost": p.cost,
         "notes": p.notes} for p in product.prices]},
)
ORGANIZATION = Shape(
    "id name owner_id visible_to address website", fixed={"is_deleted": False, "label_ids": []}
)
PERSON = Shape(
    "id name owner_id org_id emails phones custom_fields",
    fixed={"is_deleted": False, "visible_to": 3, "label_ids": [], "picture_id": None},
    derived=lambda person: {"first_name": person.name.partition(" ")[0],
                            "last_name": person.name.partition(" ")[2] or None},
)
STAGE = Shape(
    "id order_nr name deal_probability pipeline_id",
    fixed={"is_deleted": False, "is_deal_rot_enabled": False, "days_to_rotten": None},
)
PIPELINE = Shape(
    "id name order_nr", fixed={"is_deleted": False, "is_deal_probability_enabled": False},
    derived=lambda pipeline: {"is_selected": pipeline.order_nr == 1},
)
DEAL_FIELD = Shape(
    "field_name field_code description field_type is_custom_field options", "",
    {"is_optional_response_field": False, "subfields": None},
)
ACTIVITY = Shape(
    "id subject type owner_id deal_id person_id org_id due_date due_time duration done note",
    fixed={"is_deleted": False, "lead_id": None, "project_id": None, "busy": False},
)
# v1 names the owner user_id and flags as 0/1
ACTIVITY_V1 = Shape(
    "id subject type user_id=owner_id deal_id person_id org_id due_date due_time duration note",
    fixed=ACTIVITY.fixed, derived=lambda activity: {"done": int(activity.done)},
)


def render_deal(deal: Deal, custom_codes: list[str], only: set[str] | None = None
                ) -> dict[str, Any]:
    """A deal with every defined custom field (null when empty), or just those in `only`."""
    codes = [c for c in custom_codes if only is None or c in only]
    custom = {code: copy.deepcopy(deal.custom_fields.get(code)) for code in codes}
    return DEAL.render(deal) | {"custom_fields": custom}


def render_org(org: Organization, field_codes: list[str]) -> dict[str, Any]:
    """v2 OrganizationItem; every defined custom field is present (null when empty), as for
    deals, plus any a test seeded directly."""
    custom: dict[str, Any] = {code: None for code in field_codes}
    custom.update(copy.deepcopy(org.custom_fields))
    return ORGANIZATION.render(org) | {"custom_fields": custom}


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`previous`: old values of the fields that changed (custom fields nested); `update_time`
    is left out, derived ones (pipeline_id, stage_change_time...) kept (unverified either way)."""
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
