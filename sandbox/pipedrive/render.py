"""API v2 bodies of Pipedrive records (pipedrive/client-nodejs src/versions/v2/models), each
drawn from a small table: the attributes sent as they are, the timestamps, the fixed fields."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.pipedrive.records import Deal, Organization


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
