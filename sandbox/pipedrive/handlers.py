"""The company API's endpoints, each ``handler(ctx, **path_values)`` under the fake's lock, and
the route table: rule, handler, the OAuth scopes that allow it (403 otherwise), token cost."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

import sandbox.pipedrive.parse as parse
import sandbox.pipedrive.persons as persons
from sandbox.kit.service import ApiRoute
from sandbox.pipedrive.company import CompanyData
from sandbox.pipedrive.parse import bad_request, expect_int, not_found, ok, path_id, query_int, query_ints, webhook_ok
from sandbox.pipedrive.records import (
    ACTIVITY, ACTIVITY_V1, DEAL_FIELD, DEAL_PRODUCT, PIPELINE, PRODUCT, STAGE, Deal,
    api_time,
)
from sandbox.pipedrive.webhooks import WEBHOOK, WebhookDispatcher, webhook_fields

Handler = Callable[..., Response]
Selector = Callable[[Request, Mapping[Any, Any]], list[Any]]


@dataclass(frozen=True)
class Ctx:
    """One admitted, authenticated call, as handlers see it."""

    request: Request
    company: CompanyData
    user_id: int
    client_id: str
    hooks: WebhookDispatcher


def by_ids(request: Request, records: Mapping[int, Any]) -> list[Any]:
    """`GET /api/v2/<things>[?ids=1,2,3]`: up to 100 ids; unknown ids are left out."""
    raw = request.args.get("ids", "")
    ids = [path_id(i.strip(), "ids") for i in raw.split(",") if i.strip()]
    if len(ids) > 100:
        raise bad_request("ids: at most 100")
    return [records[i] for i in ids if i in records] if raw else list(records.values())


def updated_between(request: Request, records: Mapping[int, Any]) -> list[Any]:
    """`GET /api/v2/organizations` and `GET /api/v2/persons`: `ids` as `by_ids`, and the
    documented `updated_since` / `updated_until` ("only organizations [persons] with an
    update_time later than or equal to this time are returned. In RFC3339 format";
    updated_until: earlier than) and `sort_by` (id, update_time, add_time) / `sort_direction`
    (asc, desc): developers.pipedrive.com/docs/api/v1/Organizations#getOrganizations (API v2);
    client-nodejs src/versions/v2/api/persons-api.ts getPersons, the same words for persons."""
    chosen = by_ids(request, records)
    since, until = (None if request.args.get(key) is None
                    else parse.parse_rfc3339(request.args[key], key)
                    for key in ("updated_since", "updated_until"))
    chosen = [o for o in chosen if (since is None or o.update_time >= since)
              and (until is None or o.update_time < until)]
    parse.sort_items(request, chosen)
    return chosen


def stages_of(request: Request, stages: Mapping[int, Any]) -> list[Any]:
    pipeline_id = query_int(request, "pipeline_id")
    chosen = [s for s in stages.values() if pipeline_id in (None, s.pipeline_id)]
    return sorted(chosen, key=lambda s: (s.pipeline_id, s.order_nr))


def in_order(_: Request, pipelines: Mapping[int, Any]) -> list[Any]:
    return sorted(pipelines.values(), key=lambda p: p.order_nr)


@dataclass(frozen=True)
class Kind:
    """Records served by the generic endpoints ``GET <path>`` (the records `select` picks,
    one cursor page) and ``GET <path>/<id>`` (one, or a 404 naming `what`): the
    `CompanyData` table holding them, how they render, how a path names one."""

    path: str
    table: str
    what: str
    render: Callable[[CompanyData, Any], dict[str, Any]]
    scopes: tuple[str, ...]
    select: Selector = lambda _, records: list(records.values())
    key: Callable[[str, str], Any] = path_id

    def get_one(self, ctx: Ctx, key: str) -> Response:
        return ok(self.render(ctx.company, self.find(ctx, key)))

    def find(self, ctx: Ctx, value: str) -> Any:
        record = getattr(ctx.company, self.table).get(self.key(value, "id"))
        if record is None:
            raise not_found(self.what)
        return record

    def list_of(self, ctx: Ctx) -> Response:
        records = self.select(ctx.request, getattr(ctx.company, self.table))
        chunk, extra = parse.page(ctx.request, records)
        return ok([self.render(ctx.company, r) for r in chunk], extra)


def deal_filter(request: Request) -> Callable[[Deal], bool]:
    """The filters of v2 GET /deals: ids, owner/person/org/pipeline/stage, status, updated_*."""
    keys = ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id")
    links = {key: value for key in keys if (value := query_int(request, key)) is not None}
    asked = frozenset(s for s in request.args.get("status", "").split(",") if s)
    unknown = asked - {"open", "won", "lost", "deleted"}
    if unknown:
        raise bad_request(f"status must be open, won, lost or deleted, not {sorted(unknown)}")
    statuses = asked or frozenset({"open", "won", "lost"})  # default: every deal not deleted
    ids = frozenset(query_ints(request, "ids"))
    since, until = (None if request.args.get(key) is None
                    else parse.parse_rfc3339(request.args[key], key)
                    for key in ("updated_since", "updated_until"))

    def matches(deal: Deal) -> bool:
        return ((not ids or deal.id in ids)
                and ("deleted" if deal.is_deleted else deal.status) in statuses
                and all(getattr(deal, key) == value for key, value in links.items())
                and (since is None or deal.update_time >= since)
                and (until is None or deal.update_time < until))

    return matches


def list_deals(ctx: Ctx) -> Response:
    matches = deal_filter(ctx.request)
    deals = [d for d in ctx.company.deals.values() if matches(d)]
    parse.sort_items(ctx.request, deals)
    chunk, extra = parse.page(ctx.request, deals)
    only = parse.custom_field_filter(ctx.request)
    return ok([ctx.company.render_deal(d, only) for d in chunk], extra)


def get_deal(ctx: Ctx, deal_id: str) -> Response:
    deal = ctx.company.live_deal(path_id(deal_id, "id"))
    return ok(ctx.company.render_deal(deal, parse.custom_field_filter(ctx.request)))


def patch_deal(ctx: Ctx, deal_id: str) -> Response:
    deal = ctx.company.live_deal(path_id(deal_id, "id"))
    changes = ctx.company.parse_deal_patch(parse.read_body(ctx.request))
    ctx.company.change_deal(deal, changes, ctx.user_id, "api")
    return ok(ctx.company.render_deal(deal))


def deal_followers(ctx: Ctx, deal_id: str) -> Response:
    """v2 getDealFollowers: FollowerItem {user_id, add_time} (client-php
    docs/versions/v2/Model/FollowerItem.md), paged like the other v2 lists."""
    deal = ctx.company.live_deal(path_id(deal_id, "id"))
    followers = sorted(deal.followers.items())
    chunk, extra = parse.page(ctx.request, followers)
    return ok([{"user_id": uid, "add_time": api_time(at)} for uid, at in chunk], extra)


def deal_products(ctx: Ctx, deal_id: str) -> Response:
    return _product_lines(ctx, list(ctx.company.live_deal(path_id(deal_id, "id")).products))


def batch_deal_products(ctx: Ctx) -> Response:
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
    return _product_lines(ctx, lines)


def _product_lines(ctx: Ctx, lines: list[Any]) -> Response:
    parse.sort_items(ctx.request, lines, parse.LINE_SORT_KEYS)
    chunk, extra = parse.page(ctx.request, lines)
    return ok([DEAL_PRODUCT.render(line) for line in chunk], extra)


def patch_org(ctx: Ctx, org_id: str) -> Response:
    org = KINDS[1].find(ctx, org_id)
    return ok(ctx.company.patch_org(org, parse.read_body(ctx.request), ctx.user_id))


def patch_person(ctx: Ctx, person_id: str) -> Response:
    person = KINDS[2].find(ctx, person_id)
    return ok(persons.patch_person(ctx.company, person, parse.read_body(ctx.request),
                                   ctx.user_id))


def delete_org(ctx: Ctx, org_id: str) -> Response:
    """v2 DELETE /organizations/{id}: `{"success": true, "data": {"id": ...}}`
    (pipedrive/client-nodejs v2 DeleteOrganizationResponse; unverified here beyond that)."""
    org = KINDS[1].find(ctx, org_id)
    ctx.company.delete_org(org.id, user_id=ctx.user_id, change_source="api")
    return ok({"id": org.id})


def merge_org(ctx: Ctx, org_id: str) -> Response:
    """v1 PUT /organizations/{id}/merge with a required integer `merge_with_id` (client-nodejs
    MergeOrganizationsRequest); answers with the organization that remains (its id only
    here: unverified shape)."""
    org = KINDS[1].find(ctx, org_id)
    body = parse.read_v1_body(ctx.request)
    keeper_id = expect_int(body.get("merge_with_id"), "merge_with_id")
    if keeper_id is None:
        raise bad_request("merge_with_id is required")
    keeper = ctx.company.merge_orgs(org.id, keeper_id, user_id=ctx.user_id, change_source="api")
    return ok({"id": keeper.id})


def post_org(ctx: Ctx) -> Response:
    return ok(ctx.company.create_org(parse.read_body(ctx.request), ctx.user_id))


def search_orgs(ctx: Ctx) -> Response:
    """v2 searchOrganization (client-nodejs src/versions/v2/api/organizations-api.ts): `term`
    ("Minimum 2 characters (or 1 if using exact_match)"), `fields`, `exact_match`, cursor
    paging; `data.items[].item` with id and name (the v1 itemSearch shape it wraps). Only
    name searches are modelled."""
    term = (ctx.request.args.get("term") or "").strip()
    exact = ctx.request.args.get("exact_match") == "true"
    if len(term) < (1 if exact else 2):
        raise bad_request("term must be at least 2 characters (1 with exact_match)")
    if ctx.request.args.get("fields", "name") != "name":
        raise bad_request("sandbox: only fields=name is modelled")
    chunk, extra = parse.page(ctx.request, ctx.company.search_orgs(term, exact))
    return ok({"items": [{"result_score": 1, "item": {"id": o.id, "type": "organization",
                                                       "name": o.name}} for o in chunk]}, extra)


def get_user(ctx: Ctx, user_id: str) -> Response:
    """v1 GetUser (developers.pipedrive.com/docs/api/v1/Users#getUser): the user's data
    with `is_admin`; the v1 envelope `{success, data}`."""
    uid, me = path_id(user_id, "id"), ctx.company.installer
    user = (me.user_name, me.user_email, True) if uid == me.user_id else ctx.company.users.get(uid)
    if user is None:
        raise not_found("User")
    name, email, admin = user
    return ok({"id": uid, "name": name, "email": email, "is_admin": admin,
               "active_flag": True, "company_id": ctx.company.company_id})


def post_deal_field(ctx: Ctx) -> Response:
    return ok(DEAL_FIELD.render(ctx.company.create_deal_field(parse.read_body(ctx.request))))


def post_activity_v2(ctx: Ctx) -> Response:
    body = parse.read_body(ctx.request)
    return ok(ACTIVITY.render(ctx.company.create_activity(body, "owner_id", ctx.user_id)))


def post_activity_v1(ctx: Ctx) -> Response:
    """v1 is out of support since 2026-08-01 (platform-facts); kept for older callers."""
    body = parse.read_v1_body(ctx.request)
    activity = ctx.company.create_activity(body, "user_id", ctx.user_id)
    return ok(ACTIVITY_V1.render(activity), status=201)


def list_webhooks(ctx: Ctx) -> Response:
    hooks = ctx.hooks.hooks_of(ctx.company.company_id, ctx.client_id)
    return webhook_ok([WEBHOOK.render(h) for h in hooks])


def post_webhook(ctx: Ctx) -> Response:
    fields = webhook_fields(parse.read_v1_body(ctx.request))
    hook = ctx.hooks.subscribe(ctx.company.company_id, ctx.user_id, ctx.client_id, fields)
    return webhook_ok(WEBHOOK.render(hook), 201)


def delete_webhook(ctx: Ctx, webhook_id: str) -> Response:
    hook = ctx.hooks.get(path_id(webhook_id, "id"))
    if hook is None or (hook.company_id, hook.client_id) != (ctx.company.company_id, ctx.client_id):
        raise not_found("Webhook")
    ctx.hooks.remove(hook.id)
    return webhook_ok({"id": hook.id})


# Scopes (platform-facts; the v2 client's per-operation oauth scopes).
DEALS_READ = ("deals:read", "deals:full")
CONTACTS_READ = ("contacts:read", "contacts:full")
PRODUCTS_READ = ("products:read", "products:full")
ADMIN = ("admin",)
WEBHOOKS_WRITE = ("admin", "webhooks:full")
ACTIVITIES_WRITE = ("activities:full",)
SETUP_READ = DEALS_READ + ADMIN
LINES_READ = DEALS_READ + PRODUCTS_READ
KINDS = (
    Kind("products", "products", "Product", lambda _, product: PRODUCT.render(product),
         PRODUCTS_READ, by_ids),
    Kind("organizations", "orgs", "Organization", CompanyData.render_org, CONTACTS_READ,
         updated_between),
    Kind("persons", "persons", "Person", persons.render, CONTACTS_READ, updated_between),
    Kind("stages", "stages", "Stage", lambda _, stage: STAGE.render(stage), SETUP_READ,
         stages_of),
    Kind("pipelines", "pipelines", "Pipeline", lambda _, pipeline: PIPELINE.render(pipeline),
         SETUP_READ, in_order),
    Kind("dealFields", "deal_fields", "Field", lambda _, field: DEAL_FIELD.render(field),
         SETUP_READ, key=lambda code, _: code),
)


@dataclass(frozen=True)
class Policy:
    scopes: tuple[str, ...]
    cost: int


def _route(method: str, rule: str, handler: Handler, scopes: tuple[str, ...],
           cost: int) -> ApiRoute:
    return ApiRoute(rule, (method,), handler, Policy(scopes, cost))


# Costs: platform-facts: GET deal 1, PATCH deal 5, GET deal products 10. The v2 reference
# shows 1 for single reads and 10 for lists (e.g. /api/v2/dealFields); v1 costs are about
# twice v2's (unverified guesses for the v1 rows). v2 list endpoints take `ids` (up to 100)
# for batch reads, like GET /api/v2/deals.
ROUTES = (
    _route("GET", "/api/v2/deals", list_deals, DEALS_READ, 10),
    _route("GET", "/api/v2/deals/products", batch_deal_products, LINES_READ, 10),
    _route("GET", "/api/v2/deals/<deal_id>", get_deal, DEALS_READ, 1),
    # client-php docs/versions/v2/Api/DealsApi.md getDealFollowers: deals:read, deals:full;
    # a list, as other v2 lists (cost unverified)
    _route("GET", "/api/v2/deals/<deal_id>/followers", deal_followers, DEALS_READ, 10),
    _route("PATCH", "/api/v2/deals/<deal_id>", patch_deal, ("deals:full",), 5),
    _route("GET", "/api/v2/deals/<deal_id>/products", deal_products, LINES_READ, 10),
    # Before the generic GET /api/v2/organizations/<id>: routes match in order, and "search"
    # is a path of its own, not an organization id (client-nodejs v2 searchOrganization).
    _route("GET", "/api/v2/organizations/search", search_orgs,
           ("contacts:read", "contacts:full", "search:read"), 20),
    *(_route("GET", f"/api/v2/{kind.path}", kind.list_of, kind.scopes, 10) for kind in KINDS),
    *(_route("GET", f"/api/v2/{kind.path}/<key>", kind.get_one, kind.scopes, 1) for kind in KINDS),
    # as PATCH deal (unverified for organizations)
    _route("PATCH", "/api/v2/organizations/<org_id>", patch_org, ("contacts:full",), 5),
    # updatePerson (client-nodejs persons-api.ts: contacts:full); cost as PATCH deal (unverified)
    _route("PATCH", "/api/v2/persons/<person_id>", patch_person, ("contacts:full",), 5),
    # Delete and merge: contacts:full as PATCH; costs unverified (as PATCH; v1 about twice).
    _route("DELETE", "/api/v2/organizations/<org_id>", delete_org, ("contacts:full",), 5),
    _route("PUT", "/api/v1/organizations/<org_id>/merge", merge_org, ("contacts:full",), 10),
    # client-nodejs v2 addOrganization: scope contacts:full; cost as PATCH (unverified). Its
    # searchOrganization (contacts:read / contacts:full / search:read; cost as a v2 search,
    # unverified) is routed above.
    _route("POST", "/api/v2/organizations", post_org, ("contacts:full",), 5),
    _route("POST", "/api/v2/dealFields", post_deal_field, ADMIN, 5),
    _route("POST", "/api/v2/activities", post_activity_v2, ACTIVITIES_WRITE, 5),
    _route("POST", "/api/v1/activities", post_activity_v1, ACTIVITIES_WRITE, 10),
    # As GET /v1/users/me (developers.pipedrive.com; unverified). Pipedrive's scope list names
    # users:read ("read data about users"); whether admin alone also allows it is not
    # documented (unverified): both are accepted.
    _route("GET", "/api/v1/users/<user_id>", get_user, ("users:read", "admin"), 2),
    _route("GET", "/api/v1/webhooks", list_webhooks, ("admin", "webhooks:read", "webhooks:full"),
           20),
    _route("POST", "/api/v1/webhooks", post_webhook, WEBHOOKS_WRITE, 10),
    _route("DELETE", "/api/v1/webhooks/<webhook_id>", delete_webhook, WEBHOOKS_WRITE, 6),
)
