"""One Pipedrive company's data and the rules for changing it, as its users (change_source
"app") and the API ("api") do; every change that Pipedrive announces is published as an Event."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

import sandbox.pipedrive.parse as parse
from sandbox.kit.clock import Clock
from sandbox.pipedrive.persons import announce_created
from sandbox.pipedrive.parse import bad_request, expect_int, expect_text, not_found, optional_int, to_decimal
from sandbox.pipedrive.records import (
    ACTIVITY, ADDRESS_KEYS, BUILTIN_DEAL_FIELDS, CUSTOM_FIELD_TYPES, DEFAULT_CURRENCY,
    DEFAULT_STAGES, VISIBLE_TO, Activity, ChangeSource, Deal, DealField, DealProduct, Event,
    Organization, Person, Pipeline, Product, ProductPrice, Record, Stage, changed, render_deal,
    render_org,
)

_HASH = re.compile(r"^[0-9a-f]{40}$")
_DEAL_PATCH_KEYS = frozenset({"title", "value", "currency", "stage_id", "pipeline_id", "owner_id",
                              "org_id", "person_id", "status", "expected_close_date", "probability",
                              "lost_reason", "won_time", "custom_fields"})
_DEAL_VALUES: dict[str, Callable[[Any, str], Any]] = {
    "title": parse.expect_name, "value": parse.expect_number, "currency": parse.expect_currency,
    "expected_close_date": parse.expect_date, "won_time": parse.expect_won_time,
    "lost_reason": lambda value, key: expect_text(value, key, nullable=True),
}
# v2 UpdateOrganizationRequest's fields (pipedrive/client-nodejs): the fake keeps the first
# set and refuses the second, saying so, rather than pretend to store them.
_ORG_PATCH_KEYS = frozenset({"name", "owner_id", "address", "website", "custom_fields"})
_ORG_PATCH_UNMODELLED = frozenset({"visible_to", "label_ids", "linkedin", "industry",
                                   "annual_revenue", "employee_count"})
_ADDRESS_WRITE_KEYS = frozenset(ADDRESS_KEYS) - {"formatted_address"}


class Installer(Protocol):
    """The user who installed the app (always an admin here); read at each use."""

    user_id: int
    user_name: str
    user_email: str


class CompanyData:
    """Everything one Pipedrive company holds; ids count from 1 per company and kind.
    Callers hold the fake's lock; changes are published through `publish` (the webhooks)."""

    def __init__(self, company_id: int, domain: str, clock: Clock, installer: Installer,
                 publish: Callable[[Event], None]) -> None:
        self.company_id = company_id
        self.domain = domain
        self._clock = clock
        self.installer = installer
        self._publish = publish
        self._counters: dict[str, int] = {}
        self.pipelines: dict[int, Pipeline] = {}
        self.stages: dict[int, Stage] = {}
        self.deal_fields: dict[str, DealField] = {
            code: DealField(code, name, kind, False) for code, name, kind in BUILTIN_DEAL_FIELDS}
        self.orgs: dict[int, Organization] = {}
        self.deleted_orgs: dict[int, Organization] = {}  # deleted or merged away: no reads
        # Custom organization fields (Pipedrive's organizationFields), keyed by field code.
        self.org_fields: dict[str, DealField] = {}
        self.persons: dict[int, Person] = {}
        # Custom person fields (personFields), keyed by field code (sandbox.pipedrive.persons).
        self.person_fields: dict[str, DealField] = {}
        self.products: dict[int, Product] = {}
        self.deals: dict[int, Deal] = {}
        self.activities: dict[int, Activity] = {}
        # Users of the company beyond the installing one: id -> (name, email, is_admin).
        self.users: dict[int, tuple[str, str, bool]] = {}
        self.add_pipeline("Pipeline", DEFAULT_STAGES)

    def next_id(self, kind: str) -> int:
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return self._counters[kind]

    def _keep(self, table: dict[int, Any], record: Record) -> int:
        """Store a new record, stamped with the time it was made."""
        record.add_time = record.update_time = self._clock.now()
        table[record.id] = record
        return record.id

    def custom_fields(self) -> list[DealField]:
        return [f for f in self.deal_fields.values() if f.is_custom_field]

    def first_stage(self, pipeline_id: int) -> Stage:
        stages = sorted((s for s in self.stages.values() if s.pipeline_id == pipeline_id),
                        key=lambda s: s.order_nr)
        if not stages:
            raise bad_request(f"pipeline {pipeline_id} has no stages")
        return stages[0]

    def stage_id(self, name: str, pipeline_id: int = 1) -> int:
        """The id of the stage called `name` in `pipeline_id`."""
        for stage in self.stages.values():
            if stage.name == name and stage.pipeline_id == pipeline_id:
                return stage.id
        raise KeyError(f"no stage {name!r} in pipeline {pipeline_id}")

    def live_deal(self, deal_id: int) -> Deal:
        deal = self.deals.get(deal_id)
        if deal is None or deal.is_deleted:
            raise not_found("Deal")
        return deal

    def render_deal(self, deal: Deal, only: set[str] | None = None) -> dict[str, Any]:
        return render_deal(deal, [f.field_code for f in self.custom_fields()], only)

    def render_org(self, org: Organization) -> dict[str, Any]:
        return render_org(org, list(self.org_fields))

    def add_pipeline(self, name: str, stages: Sequence[str] = ()) -> int:
        pipeline_id = self._keep(self.pipelines, Pipeline(
            self.next_id("pipeline"), name, len(self.pipelines) + 1))
        for stage in stages:
            self.add_stage(stage, pipeline_id)
        return pipeline_id

    def add_stage(self, name: str, pipeline_id: int = 1) -> int:
        _known(self.pipelines, pipeline_id, "pipeline")
        order = 1 + sum(1 for s in self.stages.values() if s.pipeline_id == pipeline_id)
        return self._keep(self.stages, Stage(self.next_id("stage"), name, pipeline_id, order))

    def add_deal_field(self, name: str, field_type: str = "varchar",
                       options: Sequence[str] = ()) -> str:
        """Create a custom deal field; returns its 40-hex field code."""
        body: dict[str, Any] = {"field_name": name, "field_type": field_type}
        if options:
            body["options"] = [{"label": label} for label in options]
        return self.create_deal_field(body).field_code

    def deal_field_option(self, field_code: str, label: str) -> int:
        """The option id of `label` in an enum/set field."""
        for option in self.deal_fields[field_code].options or []:
            if option["label"] == label:
                return int(option["id"])
        raise KeyError(f"field {field_code} has no option {label!r}")

    def add_org_field(self, name: str, field_type: str = "varchar") -> str:
        """Create a custom organization field (as an admin would); returns its 40-hex code."""
        if field_type not in CUSTOM_FIELD_TYPES or field_type in ("enum", "set"):
            raise ValueError(f"unsupported organization field type {field_type!r}")
        code = secrets.token_hex(20)
        self.org_fields[code] = DealField(code, name, field_type, True)
        return code

    def add_org(self, name: str, *, address: str | Mapping[str, str | None] | None = None,
                owner_id: int | None = None, custom_fields: Mapping[str, Any] | None = None,
                website: str | None = None, visible_to: int = 3,
                user_id: int | None = None) -> int:
        """An organisation as a user adds it in the UI; `address` is a one-line string or the
        v2 address parts. Fires create.organization (list-of-webhooks-v2: "create |
        organization | ...a new organization is created"), change_source "app" (the
        changelog "New field for webhooks": "app - the webhook is triggered from the
        Pipedrive web app")."""
        org = Organization(self.next_id("org"), name, owner_id or self.installer.user_id,
                           dict(custom_fields or {}), _address(address), website,
                           _visible(visible_to))
        org_id = self._keep(self.orgs, org)
        self.emit("organization", "create", org_id, self.render_org(org), None, user_id, "app",
                  org.owner_id)
        return org_id

    def update_org(self, org_id: int, *, user_id: int | None = None,
                   change_source: ChangeSource = "app", **body: Any) -> dict[str, Any]:
        """Edit an organization as a user would in the UI (`body` as a v2 PATCH carries it,
        validated the same way); fires change.organization ("...any parameter of an existing
        object is updated", list-of-webhooks-v2) with `user_id` the editing user, and
        returns the organization now."""
        org = self.orgs.get(org_id)
        if org is None:
            raise not_found("Organization")
        return self.patch_org(org, body, user_id if user_id is not None
                              else self.installer.user_id, change_source)

    def add_person(self, name: str, *, email: str | None = None, phone: str | None = None,
                   emails: Sequence[Mapping[str, Any]] = (),
                   phones: Sequence[Mapping[str, Any]] = (), org_id: int | None = None,
                   owner_id: int | None = None) -> int:
        """A person as a user adds it in the UI; `email`/`phone` add one primary "work" entry
        each. Fires create.person (list-of-webhooks-v2), change_source "app"."""
        _known(self.orgs, org_id, "organization")
        person = Person(
            self.next_id("person"), name, owner_id or self.installer.user_id, org_id=org_id,
            emails=_contact_list(email, emails), phones=_contact_list(phone, phones))
        person_id = self._keep(self.persons, person)
        announce_created(self, person, None)
        return person_id

    def add_product(self, name: str, *, code: str | None = None,
                    price: Decimal | int | str | None = None, currency: str = DEFAULT_CURRENCY,
                    prices: Mapping[str, Decimal | int | str] | None = None,
                    tax: Decimal | int | str = 0, unit: str | None = None,
                    description: str | None = None) -> int:
        """A product; `code` is the SKU. `prices` maps currency -> price."""
        all_prices = dict(prices or {})
        if price is not None:
            all_prices.setdefault(currency, price)
        return self._keep(self.products, Product(
            self.next_id("product"), name, self.installer.user_id, code=code, unit=unit,
            tax=to_decimal(tax, "tax"), description=description,
            prices=[ProductPrice(cur, to_decimal(p, "price")) for cur, p in all_prices.items()]))

    def add_user(self, name: str, email: str, *, is_admin: bool = False) -> int:
        """Another user of the company (Settings > Manage users in Pipedrive's UI)."""
        uid = self.installer.user_id + 1000 + len(self.users)
        self.users[uid] = (name, email, is_admin)
        return uid

    def add_deal(self, title: str, *, value: Decimal | int | str | None = None,
                 currency: str = DEFAULT_CURRENCY, stage_id: int | None = None,
                 pipeline_id: int = 1, owner_id: int | None = None, org_id: int | None = None,
                 person_id: int | None = None, status: str = "open",
                 expected_close_date: str | None = None,
                 custom_fields: Mapping[str, Any] | None = None,
                 products: Sequence[Mapping[str, Any]] = (), user_id: int | None = None,
                 visible_to: int = 3, followers: Sequence[int] = ()) -> int:
        """A deal as a user creates it in the UI (fires create.deal webhooks).

        `visible_to` is one of VISIBLE_TO; `followers` are user ids following the deal.
        `products` are deal product lines (product_id required; item_price defaults to the
        product's price in the deal currency). With products and no `value`, the value is
        the sum of the lines, as in Pipedrive.
        """
        stage = self.stages[stage_id] if stage_id else self.first_stage(pipeline_id)
        deal = Deal(self.next_id("deal"), owner_id or self.installer.user_id, title,
                    to_decimal(0 if value is None else value), currency, stage.id,
                    stage.pipeline_id, org_id=org_id, person_id=person_id, status=status,
                    expected_close_date=expected_close_date, visible_to=_visible(visible_to),
                    followers={int(uid): self._clock.now() for uid in followers})
        _known(self.orgs, org_id, "organization")
        _known(self.persons, person_id, "person")
        deal.custom_fields.update({code: parse.custom_value(self.deal_fields[code], v)
                                   for code, v in (custom_fields or {}).items()})
        self._keep(self.deals, deal)
        for line in products:
            self._attach_product(deal, dict(line))
        if products and value is None:
            deal.value = sum((p.sum for p in deal.products), Decimal(0))
        self.emit("deal", "create", deal.id, self.render_deal(deal), None, user_id, "app",
                  deal.owner_id)
        return deal.id

    def _attach_product(self, deal: Deal, line: dict[str, Any]) -> DealProduct:
        product = self.products.get(line.pop("product_id"))
        if product is None:
            raise KeyError("unknown product")
        price = line.pop("item_price", None)
        if price is None:
            price = next((p.price for p in product.prices if p.currency == deal.currency),
                         Decimal(0))
        now = self._clock.now()
        attached = DealProduct(
            self.next_id("deal_product"), deal.id, product.id, line.pop("name", product.name),
            to_decimal(price, "item_price"), to_decimal(line.pop("quantity", 1), "quantity"),
            deal.currency, add_time=now, update_time=now,
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

    def add_deal_product(self, deal_id: int, *, user_id: int | None = None,
                         **line: Any) -> int:
        """Add a product line to a deal in the deal's Products tab (the fields of `add_deal`'s
        `products`); returns the line's id. The deal's value follows its products."""
        deal = self.live_deal(deal_id)
        attached = self._attach_product(deal, dict(line))
        self._sync_value(deal, user_id)
        return attached.id

    def update_deal_product(self, deal_id: int, line_id: int, *, user_id: int | None = None,
                            **changes: Any) -> None:
        """Edit a deal's product line: quantity, item_price, discount, discount_type."""
        deal = self.live_deal(deal_id)
        line = next((p for p in deal.products if p.id == line_id), None)
        if line is None:
            raise KeyError(f"deal {deal_id} has no product line {line_id}")
        unknown = set(changes) - {"quantity", "item_price", "discount", "discount_type"}
        if unknown:
            raise TypeError(f"unknown deal product fields: {sorted(unknown)}")
        if changes.get("discount_type", line.discount_type) not in ("percentage", "amount"):
            raise ValueError("discount_type must be percentage or amount")
        for key, value in changes.items():
            setattr(line, key, value if key == "discount_type" else to_decimal(value, key))
        line.update_time = self._clock.now()
        self._sync_value(deal, user_id)

    def _sync_value(self, deal: Deal, user_id: int | None) -> None:
        """A deal with products is worth their sum, as in Pipedrive (see `add_deal`): a change
        of value fires change.deal like any edit in the UI."""
        total = sum((p.sum for p in deal.products), Decimal(0))
        self.change_deal(deal, {"value": total}, user_id, "app")

    def rename_org(self, org_id: int, name: str, *, user_id: int | None = None) -> None:
        """Rename an organization in the UI (fires change.organization, change_source "app")."""
        org = self.orgs.get(org_id)
        if org is None:
            raise KeyError(f"unknown organization {org_id}")
        before = self.render_org(org)
        org.name = parse.expect_name(name, "name")
        self._announce("organization", org, before, user_id, "app")

    def update_deal(self, deal_id: int, *, user_id: int | None = None,
                    change_source: ChangeSource = "app", **changes: Any) -> dict[str, Any]:
        """Change a deal as a user would (validated like PATCH); fires change.deal and
        returns its `previous` (only the changed fields)."""
        deal = self.live_deal(deal_id)
        if isinstance(changes.get("value"), str | float):  # as a JSON body would carry it
            changes["value"] = to_decimal(changes["value"], "value")
        return self.change_deal(deal, self.parse_deal_patch(changes), user_id, change_source)

    def move_deal(self, deal_id: int, stage_id: int, *,
                  user_id: int | None = None) -> dict[str, Any]:
        """Drag a deal to another stage in the UI (change_source "app")."""
        return self.update_deal(deal_id, stage_id=stage_id, user_id=user_id)

    def delete_deal(self, deal_id: int, *, user_id: int | None = None) -> None:
        """Delete a deal in the UI; fires delete.deal with data null and previous = last state."""
        deal = self.live_deal(deal_id)
        last = self.render_deal(deal)
        deal.is_deleted, deal.update_time = True, self._clock.now()
        self.emit("deal", "delete", deal.id, None, last, user_id, "app", deal.owner_id)

    def parse_deal_patch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a v2 deal update; unknown keys are refused (custom fields go under
        `custom_fields` in v2, not at the top level as in v1)."""
        unknown = set(body) - _DEAL_PATCH_KEYS
        hint = " (custom fields go under custom_fields in API v2)"
        parse.refuse_unknown(body, _DEAL_PATCH_KEYS,
                             hint if any(_HASH.match(k) for k in unknown) else "")
        changes = {key: self._deal_value(key, value) for key, value in body.items()}
        stage_id, pipeline_id = changes.get("stage_id"), changes.get("pipeline_id")
        if stage_id is not None and pipeline_id not in (None, self.stages[stage_id].pipeline_id):
            raise bad_request("stage_id does not belong to pipeline_id")
        return changes

    def _deal_value(self, key: str, value: Any) -> Any:
        if key == "custom_fields":
            return parse.custom_values(self.deal_fields, value)
        if key in _DEAL_VALUES:
            return _DEAL_VALUES[key](value, key)
        if key == "status":
            if value not in ("open", "won", "lost"):
                raise bad_request("status must be one of open, won, lost")
            return value
        number = expect_int(value, key, nullable=key in ("org_id", "person_id", "probability"))
        tables: dict[str, Mapping[int, Any]] = {"stage_id": self.stages,
                                                "pipeline_id": self.pipelines,
                                                "org_id": self.orgs, "person_id": self.persons}
        if number is not None and key in tables and number not in tables[key]:
            raise bad_request(f"{key} {number} does not exist")
        if key == "probability" and number is not None and not 0 <= number <= 100:
            raise bad_request("probability must be between 0 and 100")
        return number

    def change_deal(self, deal: Deal, changes: Mapping[str, Any], user_id: int | None,
                    source: ChangeSource) -> dict[str, Any]:
        """Apply validated changes; fire change.deal if anything changed. Returns previous."""
        if "won_time" in changes and changes.get("status", deal.status) != "won":
            raise bad_request("won_time can only be set if deal status is won")
        before = self.render_deal(deal)
        now = self._clock.now()
        _apply(deal, {k: v for k, v in changes.items() if k != "won_time"})
        if "stage_id" in changes:
            deal.pipeline_id = self.stages[deal.stage_id].pipeline_id
        elif "pipeline_id" in changes:
            if self.stages[deal.stage_id].pipeline_id != deal.pipeline_id:
                deal.stage_id = self.first_stage(deal.pipeline_id).id
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
        return self._announce("deal", deal, before, user_id, source)

    def _announce(self, entity: str, record: Any, before: dict[str, Any], user_id: int | None,
                  source: ChangeSource) -> dict[str, Any]:
        """Fire change.<entity> if the rendered record changed; returns `previous`."""
        render = self.render_deal if entity == "deal" else self.render_org
        previous = changed(before, render(record))
        if previous:
            record.update_time = self._clock.now()
            self.emit(entity, "change", record.id, render(record), previous, user_id, source,
                      record.owner_id)
        return previous

    def patch_org(self, org: Organization, body: Mapping[str, Any], user_id: int,
                  source: ChangeSource = "api") -> dict[str, Any]:
        """v2 UpdateOrganizationRequest (pipedrive/client-nodejs src/versions/v2/models/
        update-organization-request.ts). `address` replaces the whole address object
        (unverified: the docs show no partial-address update); custom fields must exist.
        Through the API the change_source is "api" ("the webhook is triggered through the
        API", changelog "New field for webhooks") and meta.user_id the token's user ("the ID
        of the user who triggered the webhook", changelog "Bug fixes in webhooks v2
        payload", 2023-09-05): an app's token acts as the user who installed it."""
        changes = self._org_changes(body)
        before = self.render_org(org)
        _apply(org, changes)
        self._announce("organization", org, before, user_id, source)
        return self.render_org(org)

    def _org_changes(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return parse.read_fields(body, _ORG_PATCH_KEYS, _ORG_PATCH_UNMODELLED, {
            "name": lambda value: parse.expect_name(value, "name"),
            "owner_id": lambda value: expect_int(value, "owner_id"),
            "website": lambda value: expect_text(value, "website", nullable=True),
            "address": _address_patch,
            "custom_fields": lambda value: parse.custom_values(self.org_fields, value),
        })

    def create_org(self, body: Mapping[str, Any], user_id: int) -> dict[str, Any]:
        """v2 AddOrganizationRequest (pipedrive/client-nodejs src/versions/v2/models/
        add-organization-request.ts: name, owner_id, address, custom_fields, ...), read as a
        PATCH is; `name` is required (unverified: the model marks it optional, the API
        reference lists it required). Fires create.organization, change_source "api"."""
        if "name" not in body:
            raise bad_request("name is required")
        changes = self._org_changes(body)
        org = Organization(self.next_id("org"), changes.pop("name"), user_id, {}, None, None, 3)
        _apply(org, changes)
        org_id = self._keep(self.orgs, org)
        self.emit("organization", "create", org_id, self.render_org(org), None, user_id, "api",
                  org.owner_id)
        return self.render_org(org)

    def search_orgs(self, term: str, exact: bool) -> list[Organization]:
        """GET /api/v2/organizations/search on the name only: `exact_match` "only full exact
        matches ... not case sensitive" (client-nodejs v2 searchOrganization); otherwise the
        term anywhere in the name (unverified: Pipedrive ranks fuzzy matches)."""
        folded = " ".join(term.split()).casefold()
        return [o for o in self.orgs.values()
                if (" ".join(o.name.split()).casefold() == folded if exact
                    else folded in o.name.casefold())]

    def create_deal_field(self, body: Mapping[str, Any]) -> DealField:
        name = expect_text(body.get("field_name"), "field_name")
        kind = body.get("field_type")
        if not name:
            raise bad_request("field_name is required")
        if kind not in CUSTOM_FIELD_TYPES:
            raise bad_request(f"field_type must be one of {', '.join(CUSTOM_FIELD_TYPES)}")
        options = _field_options(kind, body.get("options"))
        description = expect_text(body.get("description"), "description", nullable=True)
        code = secrets.token_hex(20)  # a 40-character hash, as Pipedrive's custom field keys
        deal_field = DealField(code, name, kind, True, options, description)
        self.deal_fields[code] = deal_field
        return deal_field

    def create_activity(self, body: Mapping[str, Any], owner_key: str, user_id: int) -> Activity:
        """POST /activities (v2 names the owner `owner_id`, v1 `user_id`)."""
        subject = expect_text(body.get("subject"), "subject")
        if not subject:
            raise bad_request("subject is required")
        deal_id = optional_int(body.get("deal_id"), "deal_id")
        if deal_id is not None:
            self.live_deal(deal_id)
        due_time = body.get("due_time")
        if due_time is not None and not (isinstance(due_time, str) and parse.TIME.match(due_time)):
            raise bad_request("due_time must be HH:MM")
        activity = Activity(
            self.next_id("activity"), optional_int(body.get(owner_key), owner_key) or user_id,
            subject, str(body.get("type") or "task"), deal_id=deal_id,
            person_id=optional_int(body.get("person_id"), "person_id"),
            org_id=optional_int(body.get("org_id"), "org_id"),
            due_date=parse.expect_date(body.get("due_date"), "due_date"), due_time=due_time,
            duration=expect_text(body.get("duration"), "duration", nullable=True),
            note=expect_text(body.get("note"), "note", nullable=True, max_len=100_000),
            done=body.get("done") in (True, 1, "1", "true"),
        )
        self._keep(self.activities, activity)
        self.emit("activity", "create", activity.id, ACTIVITY.render(activity), None, user_id,
                  "api", activity.owner_id)
        return activity

    def delete_org(self, org_id: int, *, user_id: int | None = None,
                   change_source: ChangeSource = "app",
                   merged_to: int | None = None) -> None:
        """Delete an organization (the UI, or DELETE /api/v2/organizations/{id} with
        change_source "api"); fires delete.organization with data null and previous its last
        state, as delete.deal. It is gone from reads. Unverified: what happens to its deals
        (left as they are here)."""
        org = self.orgs.pop(org_id, None)
        if org is None:
            raise not_found("Organization")
        last = self.render_org(org)
        self.deleted_orgs[org_id] = org
        # "The deleted object event meta block will contain a merged_to_id"
        # (pipedrive.readme.io/docs/webhooks-v2-migration-guide); a string, as meta ids are.
        meta = () if merged_to is None else (("merged_to_id", str(merged_to)),)
        self.emit("organization", "delete", org_id, None, last, user_id, change_source,
                  org.owner_id, meta=meta)

    def merge_orgs(self, org_id: int, merge_with_id: int, *, user_id: int | None = None,
                   change_source: ChangeSource = "app") -> Organization:
        """Merge organization `org_id` into `merge_with_id` (PUT /v1/organizations/{id}/merge;
        developers.pipedrive.com/tutorials/merging-two-organizations-via-pipedrive-api: the
        merge_with_id organization "will remain", its field data kept; "If the Organization of
        merge_with_id has empty fields, but the other Organization has content in them, it
        will be added"; the other "will be removed"; related data moves). Webhooks v2 has no
        merge action: "one for the deleted object and another for the changed object"
        (webhooks-v2-migration-guide) - the change first here (unverified order)."""
        org, keeper = self.orgs.get(org_id), self.orgs.get(merge_with_id)
        if org is None or keeper is None:
            raise not_found("Organization")
        if org_id == merge_with_id:
            raise bad_request("an organization cannot be merged with itself")
        before = self.render_org(keeper)
        keeper.website = keeper.website or org.website
        keeper.address = keeper.address or org.address
        keeper.custom_fields = {**{k: v for k, v in org.custom_fields.items() if v not in (None, "")},
                                **{k: v for k, v in keeper.custom_fields.items()
                                   if v not in (None, "")}}
        for record in (*self.deals.values(), *self.persons.values()):
            if getattr(record, "org_id", None) == org_id:
                record.org_id = merge_with_id
        actor = user_id if user_id is not None else self.installer.user_id
        self._announce("organization", keeper, before, actor, change_source)
        self.delete_org(org_id, user_id=actor, change_source=change_source,
                        merged_to=merge_with_id)
        return keeper

    def emit(self, entity: str, action: str, entity_id: int, data: dict[str, Any] | None,
             previous: dict[str, Any] | None, user_id: int | None, source: ChangeSource,
             owner: int, meta: tuple[tuple[str, Any], ...] = ()) -> None:
        """Publish one change; the acting user defaults to the installer."""
        actor = user_id if user_id is not None else self.installer.user_id
        self._publish(Event(self.company_id, self.domain, entity, action, entity_id, data,
                            previous, actor, source, (owner, actor), meta))


def _visible(code: int) -> int:
    if code not in VISIBLE_TO:
        raise ValueError(f"visible_to must be one of {VISIBLE_TO}")
    return code


def _known(table: Mapping[int, Any], key: int | None, what: str) -> None:
    """A seeding helper's reference must name a record (KeyError otherwise)."""
    if key is not None and key not in table:
        raise KeyError(f"unknown {what} {key}")


def _apply(record: Any, changes: Mapping[str, Any]) -> None:
    """Set validated fields; `custom_fields` are merged into the record's."""
    for key, value in changes.items():
        if key == "custom_fields":
            record.custom_fields.update(value)
        else:
            setattr(record, key, value)


def _stamp_status(deal: Deal, now: float) -> None:
    if deal.status == "won":
        deal.won_time = deal.close_time = now
    elif deal.status == "lost":
        deal.lost_time = deal.close_time = now
    else:
        deal.close_time = None


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
    labels = [option.get("label") if isinstance(option, dict) else None for option in raw]
    if not all(isinstance(label, str) and label for label in labels):
        raise bad_request("each option needs a label")
    return [{"id": number, "label": label} for number, label in enumerate(labels, start=1)]
