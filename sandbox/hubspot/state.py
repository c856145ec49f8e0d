"""The CRM state of one HubSpot portal, and who installed the app."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sandbox.hubspot.errors import PropertyProblem, ValidationFailed
from sandbox.hubspot.schema import (
    ASSOCIATION_TYPES, OBJECT_TYPES, PRIMARY_COMPANY, ObjectType, Pipeline, PropertyDef,
    PropertyGroup, Stage, default_deal_pipeline, default_properties, id_key, iso_ms, object_type,
    option_list, parse_timestamp_ms, plain, to_decimal, wire_value,
)
from sandbox.kit.clock import Clock


@dataclass(frozen=True)
class HubSpotInstall:
    """Who installed the app, captured at consent."""

    hub_id: int
    hub_domain: str
    app_id: int
    user_id: int
    user_email: str


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


@dataclass(frozen=True)
class Change:
    """One record change; the webhook hub turns it into events."""

    portal_id: int
    object_type: ObjectType
    object_id: str
    kind: Literal["creation", "propertyChange", "deletion", "restore", "merge"]
    source: ChangeSource
    occurred_ms: int
    property_name: str | None = None
    property_value: str | None = None
    # A merge event's own payload properties (primaryObjectId, mergedObjectIds, ...).
    extra: tuple[tuple[str, object], ...] = ()


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
    merged_into: str | None = None  # merged into this record (POST .../merge): gone for good


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

    def __init__(self, portal_id: int, *, lock: threading.RLock, clock: Clock,
                 next_id: Callable[[], int], emit: Callable[[Change], None], currency: str,
                 user_id: int, user_email: str) -> None:
        self.portal_id, self.currency, self.user_id = portal_id, currency, user_id
        self._lock, self._clock, self._next_id, self._emit = lock, clock, next_id, emit
        self._objects: dict[str, dict[str, CrmObject]] = {name: {} for name in OBJECT_TYPES}
        self._links: dict[tuple[str, str], dict[str, Links]] = {}
        self._properties = {name: default_properties(t) for name, t in OBJECT_TYPES.items()}
        self._groups = {name: {t.group: PropertyGroup(t.group, t.group_label, 0)}
                        for name, t in OBJECT_TYPES.items()}
        self._pipelines: list[Pipeline] = [default_deal_pipeline()]
        self._owners: list[Owner] = []
        self.add_owner(user_email, "Portal", "Owner", user_id=user_id)

    # ----- seeding helpers (act as a HubSpot user) -----------------------------

    def add_company(self, *, user_id: int | None = None, **properties: object) -> str:
        return self._seed("companies", properties, user_id).id

    def add_contact(self, *, company_id: str | None = None, user_id: int | None = None,
                    **properties: object) -> str:
        with self._lock:
            contact = self._seed("contacts", properties, user_id)
            if company_id is not None:
                self.associate("contacts", contact.id, "companies", company_id, (1, 279))
            return contact.id

    def add_product(self, *, user_id: int | None = None, **properties: object) -> str:
        return self._seed("products", properties, user_id).id

    def add_owner(self, email: str, first_name: str = "", last_name: str = "", *,
                  user_id: int | None = None) -> str:
        with self._lock:
            owner_id = str(self._next_id())
            uid = user_id if user_id is not None else self._next_id()
            now = self._now_ms()
            self._owners.append(Owner(owner_id, email, first_name, last_name, uid, now))
            return owner_id

    def add_deal(self, properties: Mapping[str, object] | None = None, *,
                 company_id: str | None = None, contact_ids: Sequence[str] = (),
                 line_items: Sequence[Mapping[str, object]] = (), user_id: int | None = None,
                 **more: object) -> str:
        """Create a deal as a user would; returns its id.

        Defaults: the default pipeline's first stage and the portal currency. Line items
        copy name/price/SKU/description from their `hs_product_id` product; without an
        explicit `amount` the deal amount is the sum of the line items' net prices.
        """
        props: dict[str, object] = {"pipeline": "default", "dealstage": "appointmentscheduled",
                                    "deal_currency_code": self.currency, **(properties or {}),
                                    **more}
        with self._lock:
            items = [self._line_item_values(dict(item), props) for item in line_items]
            if items and "amount" not in props:
                props["amount"] = plain(sum((_net(i) for i in items), Decimal(0)))
            deal = self._seed("deals", props, user_id)
            if company_id is not None:
                self.associate("deals", deal.id, "companies", company_id, PRIMARY_COMPANY)
            for contact_id in contact_ids:
                self.associate("deals", deal.id, "contacts", contact_id, (3,))
            for values in items:
                item = self._seed("line_items", values, user_id)
                self.associate("deals", deal.id, "line_items", item.id, (19,))
            return deal.id

    def add_line_item(self, deal_id: str, *, user_id: int | None = None,
                      **properties: object) -> str:
        """Add a line item to a deal in the deal's line item editor (from `hs_product_id`'s
        product, as `add_deal` does); returns its id. The deal's amount follows its line items
        (`sync_deal_amount`)."""
        with self._lock:
            props = self.deal(deal_id)
            item = self._seed("line_items", self._line_item_values(dict(properties), props),
                              user_id)
            self.associate("deals", deal_id, "line_items", item.id, (19,))
            self.sync_deal_amount(deal_id, user_id=user_id)
            return item.id

    def set_line_item(self, deal_id: str, line_item_id: str, *, user_id: int | None = None,
                      **properties: object) -> None:
        """Edit one of the deal's line items (quantity, price, `discount` per unit or
        `hs_discount_percentage`); the deal's amount follows."""
        with self._lock:
            if line_item_id not in self.associated_ids("deals", deal_id, "line_items"):
                raise KeyError(f"line item {line_item_id} is not on deal {deal_id}")
            self.set_properties("line_items", line_item_id, properties, user_id=user_id)
            self.sync_deal_amount(deal_id, user_id=user_id)

    def sync_deal_amount(self, deal_id: str, *, user_id: int | None = None) -> None:
        """Set the deal's amount to its line items' net total, as HubSpot does for a deal
        whose amount comes from its line items ("Deal amount" = sum of the line items' Net
        price when line items are added: knowledge.hubspot.com, "Associate line items with
        deals"; unverified whether a portal setting can turn this off)."""
        with self._lock:
            items = [self.object_properties("line_items", i)
                     for i in self.associated_ids("deals", deal_id, "line_items")]
            total = sum((Decimal(i["amount"]) for i in items if i.get("amount")), Decimal(0))
            self.set_deal_properties(deal_id, amount=plain(total), user_id=user_id)

    def add_property(self, object_type_name: str, name: str, label: str | None = None, *,
                     type: str = "string", field_type: str = "text",
                     group_name: str | None = None, options: Sequence[tuple[str, str]] = ()
                     ) -> None:
        """Define a custom property, as a portal admin would in settings."""
        otype = object_type(object_type_name)
        with self._lock:
            now = self._now_ms()
            self._properties[otype.name][name] = PropertyDef(
                name, label or name, type, field_type, group_name or otype.group,
                options=option_list(*options), hubspot_defined=False, created_ms=now,
                updated_ms=now)

    def add_pipeline(self, label: str, stages: Sequence[Mapping[str, Any]]) -> str:
        """Add a deal pipeline; each stage: {"label", "probability", "closed"?, "id"?}."""
        with self._lock:
            now = self._now_ms()
            built = [Stage(str(spec.get("id") or self._next_id()), str(spec["label"]), i,
                           str(spec.get("probability", "0.5")), bool(spec.get("closed", False)),
                           now, now)
                     for i, spec in enumerate(stages)]
            pipeline = Pipeline(str(self._next_id()), label, len(self._pipelines), built, now, now)
            self._pipelines.append(pipeline)
            return pipeline.id

    def set_deal_properties(self, deal_id: str, properties: Mapping[str, object] | None = None,
                            *, user_id: int | None = None, **more: object) -> None:
        """Edit a deal as a user in the UI (fires propertyChange webhooks)."""
        self.set_properties("deals", deal_id, {**(properties or {}), **more}, user_id=user_id)

    def set_properties(self, object_type_name: str, object_id: str,
                       properties: Mapping[str, object], *, user_id: int | None = None) -> None:
        otype = object_type(object_type_name)
        with self._lock:
            self.update(otype, object_id, _wire(properties), self._user(user_id), strict=False)

    def delete_deal(self, deal_id: str, *, user_id: int | None = None) -> None:
        """Archive (delete) a deal in the UI (fires deal.deletion)."""
        with self._lock:
            self.archive(OBJECT_TYPES["deals"], deal_id, self._user(user_id))

    def restore_company(self, company_id: str, *, user_id: int | None = None) -> bool:
        """Restore a deleted company from the recycling bin in the UI (fires company.restore)."""
        with self._lock:
            return self.restore(OBJECT_TYPES["companies"], company_id, self._user(user_id))

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
            return sorted(links, key=id_key)

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

    def find(self, otype: ObjectType, object_id: str, id_property: str | None = None, *,
             archived: bool = False) -> CrmObject | None:
        """The record by id (or by a unique property's value), live or archived."""
        with self._lock:
            records = self._objects[otype.name]
            if id_property and id_property != "hs_object_id":
                obj = next((o for o in records.values()
                            if o.properties.get(id_property) == object_id), None)
            else:
                obj = records.get(object_id)
            return obj if obj is not None and obj.archived == archived else None

    def records(self, otype: ObjectType, *, archived: bool = False) -> list[CrmObject]:
        with self._lock:
            return [o for o in self._objects[otype.name].values() if o.archived == archived]

    def create(self, otype: ObjectType, raw: Mapping[str, str | None], source: ChangeSource, *,
               strict: bool = True,
               associations: Sequence[tuple[ObjectType, str, Sequence[int]]] = ()) -> CrmObject:
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

    def update(self, otype: ObjectType, object_id: str, raw: Mapping[str, str | None],
               source: ChangeSource, *, strict: bool = True) -> CrmObject:
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

    def restore(self, otype: ObjectType, object_id: str, source: ChangeSource) -> bool:
        """Restore an archived (deleted) record, as a user does from HubSpot's recycling bin;
        fires `<object>.restore` ("When an object is restored (opposite of delete)": changelog
        new-subscription-types-for-webhooks; "No new payload properties were added for
        restore"). A record merged into another cannot be restored. False if none."""
        with self._lock:
            obj = self.find(otype, object_id, archived=True)
            if obj is None or obj.merged_into is not None:
                return False
            now = self._now_ms()
            obj.archived, obj.archived_ms, obj.updated_ms = False, None, now
            self._publish([Change(self.portal_id, otype, object_id, "restore", source, now)])
            return True

    def merge(self, otype: ObjectType, primary_id: str, merged_id: str,
              source: ChangeSource) -> CrmObject:
        """POST /crm/v3/objects/{type}/merge (companies-v3.json PublicMergeInput: "The ID of
        the company to merge into the primary"): the primary keeps its id and values, takes
        the merged record's values where its own are empty, and its associations; the merged
        record is gone from reads. One `<object>.merge` event with primaryObjectId,
        mergedObjectIds, newObjectId and numberOfPropertiesMoved (changelog
        new-subscription-types-for-webhooks). Unverified: which values win (HubSpot documents
        the primary's "higher priority"), that newObjectId is the primary's id when no new
        record is made, and that no `deletion` event is sent for the merged record (none here).
        KeyError for a missing record, ValueError for merging a record into itself."""
        with self._lock:
            primary = self._require(otype.name, primary_id)
            merged = self._require(otype.name, merged_id)
            if primary_id == merged_id:
                raise ValueError("cannot merge a record into itself")
            now = self._now_ms()
            moved = {name: value for name, value in merged.properties.items()
                     if value not in (None, "") and primary.properties.get(name) in (None, "")
                     and name not in ("hs_object_id", otype.created_property,
                                      otype.modified_property)}
            for name, value in moved.items():
                self._record(primary, name, value, now, source)
            for to_type, targets in self._links.get((otype.name, merged_id), {}).items():
                for to_id, type_ids in targets.items():
                    for type_id in type_ids:
                        self._link(otype.name, primary_id, to_type, to_id, type_id)
                        inverse = ASSOCIATION_TYPES[type_id].inverse_id
                        self._link(to_type, to_id, otype.name, primary_id, inverse)
                        self._links[(to_type, to_id)][otype.name].pop(merged_id, None)
            merged.archived, merged.archived_ms, merged.updated_ms = True, now, now
            merged.merged_into = primary_id
            primary.updated_ms = now
            self._record(primary, otype.modified_property, iso_ms(now), now, source)
            self._publish([Change(self.portal_id, otype, primary_id, "merge", source, now, extra=(
                ("primaryObjectId", int(primary_id)), ("mergedObjectIds", [int(merged_id)]),
                ("newObjectId", int(primary_id)), ("numberOfPropertiesMoved", len(moved))))])
            return primary

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str,
                  type_ids: Iterable[int]) -> None:
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
            return {to_id: set(ids) for to_id, ids in found.items()
                    if self.find(to_type, to_id) is not None}

    def properties_of(self, otype: ObjectType) -> dict[str, PropertyDef]:
        with self._lock:
            return self._properties[otype.name]

    def groups_of(self, otype: ObjectType) -> dict[str, PropertyGroup]:
        with self._lock:
            return self._groups[otype.name]

    def owner(self, owner_id: str) -> Owner | None:
        with self._lock:
            return next((o for o in self._owners if o.id == owner_id), None)

    def validate(self, otype: ObjectType, raw: Mapping[str, str | None], *, strict: bool,
                 current: CrmObject | None = None) -> dict[str, str | None]:
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

    def _seed(self, type_name: str, properties: Mapping[str, object],
              user_id: int | None) -> CrmObject:
        with self._lock:
            return self.create(OBJECT_TYPES[type_name], _wire(properties), self._user(user_id),
                               strict=False)

    def _line_item_values(self, item: Mapping[str, object],
                          deal: Mapping[str, object | None]) -> dict[str, object]:
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

    def _record(self, obj: CrmObject, name: str, value: str | None, now: int,
                source: ChangeSource) -> None:
        obj.properties[name] = value
        entry = HistoryEntry(value, now, source.change_source, source.source_id)
        obj.history.setdefault(name, []).append(entry)

    def _apply(self, obj: CrmObject, otype: ObjectType, values: Mapping[str, str | None],
               source: ChangeSource, now: int) -> list[Change]:
        """Set values, then derived ones; a Change per value that really changed."""
        changes: list[Change] = []
        for name, value in values.items():
            if obj.properties.get(name) == value and name in obj.properties:
                continue
            self._record(obj, name, value, now, source)
            changes.append(Change(self.portal_id, otype, obj.id, "propertyChange", source, now,
                                  name, value))
        changes += self._derive(obj, otype, set(values), source, now)
        return changes

    def _derive(self, obj: CrmObject, otype: ObjectType, touched: set[str], source: ChangeSource,
                now: int) -> list[Change]:
        """HubSpot's calculated properties; only closedate-on-close is a visible change."""
        calculated = ChangeSource("CALCULATED", None)
        if otype.name == "line_items" and touched & {"price", "quantity", "discount",
                                                     "hs_discount_percentage"}:
            for name, value in _line_item_amounts(obj.properties).items():
                self._record(obj, name, value, now, calculated)
        if otype.name != "deals" or not touched & {"dealstage", "pipeline"}:
            return []
        stage = self._stage_of(obj.properties)
        if stage is None:
            return []
        was_closed = obj.properties.get("hs_is_closed") == "true"
        was_won = obj.properties.get("hs_is_closed_won") == "true"
        derived = {"hs_deal_stage_probability": stage.probability,
                   "hs_is_closed": "true" if stage.is_closed else "false",
                   "hs_is_closed_won": "true" if stage.is_won else "false"}
        for name, value in derived.items():
            self._record(obj, name, value, now, calculated)
        # HubSpot sets or updates closedate when a deal moves into a closed-won or closed-lost
        # stage (won <-> lost included), not from one closed-won stage to another
        # (knowledge.hubspot.com "HubSpot's default deal properties", Close date).
        entered = stage.is_closed and (not was_closed or was_won != stage.is_won)
        if entered and "closedate" not in touched:
            self._record(obj, "closedate", iso_ms(now), now, source)
            return [Change(self.portal_id, otype, obj.id, "propertyChange", source, now,
                           "closedate", iso_ms(now))]
        return []

    def _stage_of(self, properties: Mapping[str, str | None]) -> Stage | None:
        pipeline = next((p for p in self._pipelines if p.id == properties.get("pipeline")), None)
        stage_id = properties.get("dealstage")
        return pipeline.stage(stage_id) if pipeline is not None and stage_id else None

    def _normalise(self, otype: ObjectType, defn: PropertyDef | None, name: str,
                   value: str | None, raw: Mapping[str, str | None],
                   current: CrmObject | None) -> str | None:
        if defn is None:
            raise PropertyProblem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
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

    def _check_stage(self, name: str, text: str, raw: Mapping[str, str | None],
                     current: CrmObject | None) -> None:
        stored = current.properties.get("pipeline") if current is not None else None
        pipeline_id = raw.get("pipeline") or stored
        pipeline = next((p for p in self._pipelines if p.id == (pipeline_id or "default")), None)
        if name == "pipeline":
            if pipeline is None:
                raise PropertyProblem(name, "INVALID_OPTION", f"{text} is not a valid pipeline")
            return
        valid = [s.id for s in pipeline.stages] if pipeline is not None else []
        if text not in valid:
            raise PropertyProblem(name, "INVALID_OPTION", f"{text} was not one of the allowed "
                                  f"options: {valid} for pipeline {pipeline_id}")


def _wire(properties: Mapping[str, object]) -> dict[str, str | None]:
    return {name: wire_value(value) for name, value in properties.items()}


def _normalise_typed(defn: PropertyDef, text: str) -> str:
    """Check a value against its property type; HubSpot's error codes (unverified names)."""
    name = defn.name
    if defn.type == "number":
        if to_decimal(text) is None:
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
            raise PropertyProblem(name, "INVALID_OPTION",
                                  f"{bad[0]} was not one of the allowed options: {allowed}")
    return text


def _line_item_amounts(props: Mapping[str, str | None]) -> dict[str, str | None]:
    """HubSpot's calculated line item amounts. `discount` is the "Unit discount" (an amount off
    each unit) and `hs_discount_percentage` the "Unit discount percentage", a percent of
    quantity x price (knowledge.hubspot.com/properties/hubspots-default-line-item-properties;
    help.hubdo.com "How HubSpot calculates and round line item net pricing when discounted by
    percentage"). `amount` ("Net price") = quantity x price less the discount. Which wins when
    both are set is not documented (unverified): this fake applies the unit discount.
    """
    price = to_decimal(props.get("price") or "")
    quantity = to_decimal(props.get("quantity") or "")
    if price is None or quantity is None:
        return {"amount": None, "hs_pre_discount_amount": None, "hs_total_discount": None}
    pre = price * quantity
    unit_discount = to_decimal(props.get("discount") or "")
    percentage = to_decimal(props.get("hs_discount_percentage") or "")
    if unit_discount is not None:
        discount = unit_discount * quantity
    elif percentage is not None:
        discount = pre * percentage / 100
    else:
        discount = Decimal(0)
    return {"amount": plain(pre - discount), "hs_pre_discount_amount": plain(pre),
            "hs_total_discount": plain(discount)}


def _net(values: Mapping[str, object]) -> Decimal:
    """A line item's net price from helper values (Decimal, int or str)."""
    props = {k: wire_value(v) for k, v in values.items()}
    amount = _line_item_amounts(props)["amount"]
    return Decimal(amount) if amount is not None else Decimal(0)
