"""The records one Pipedrive company holds (API v2 models of pipedrive/client-nodejs
``src/versions/v2``), and the constants they are checked against."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """A deal (or organization) field; custom ones have a 40-hex `field_code`."""

    field_code: str
    field_name: str
    field_type: str
    is_custom_field: bool
    options: list[dict[str, Any]] | None = None
    description: str | None = None


@dataclass
class Owned:
    """The fields a company's organisations, persons and products share."""

    id: int
    name: str
    owner_id: int
    add_time: float
    update_time: float


@dataclass
class Organization(Owned):
    address: dict[str, str | None] | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    website: str | None = None
    visible_to: int = 3


@dataclass
class Person(Owned):
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
class Product(Owned):
    code: str | None = None
    unit: str | None = None
    tax: Decimal = Decimal(0)
    description: str | None = None
    prices: list[ProductPrice] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=dict)


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
