"""The company API's endpoints: rule, handler, the OAuth scopes that allow it (403
otherwise) and its token cost."""

from __future__ import annotations

from dataclasses import dataclass

import sandbox.pipedrive.handlers as h
from sandbox.kit.service import ApiRoute
from sandbox.pipedrive.handlers import Handler

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
SETUP_READ = DEALS_READ + ADMIN
LINES_READ = DEALS_READ + PRODUCTS_READ


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
    _route("GET", "/api/v2/deals", h.list_deals, DEALS_READ, 10),
    _route("GET", "/api/v2/deals/products", h.batch_deal_products, LINES_READ, 10),
    _route("GET", "/api/v2/deals/<deal_id>", h.get_deal, DEALS_READ, 1),
    # client-php docs/versions/v2/Api/DealsApi.md getDealFollowers: deals:read, deals:full;
    # a list, as other v2 lists (cost unverified)
    _route("GET", "/api/v2/deals/<deal_id>/followers", h.deal_followers, DEALS_READ, 10),
    _route("PATCH", "/api/v2/deals/<deal_id>", h.patch_deal, DEALS_WRITE, 5),
    _route("GET", "/api/v2/deals/<deal_id>/products", h.deal_products, LINES_READ, 10),
    _route("GET", "/api/v2/products", h.list_of(h.PRODUCTS, h.by_ids), PRODUCTS_READ, 10),
    _route("GET", "/api/v2/organizations", h.list_of(h.ORGANIZATIONS, h.by_ids), CONTACTS_READ,
           10),
    _route("GET", "/api/v2/persons", h.list_of(h.PERSONS, h.by_ids), CONTACTS_READ, 10),
    _route("GET", "/api/v2/products/<product_id>", h.get_one(h.PRODUCTS), PRODUCTS_READ, 1),
    _route("GET", "/api/v2/organizations/<org_id>", h.get_one(h.ORGANIZATIONS), CONTACTS_READ,
           1),
    # as PATCH deal (unverified for organizations)
    _route("PATCH", "/api/v2/organizations/<org_id>", h.patch_org, CONTACTS_WRITE, 5),
    _route("GET", "/api/v2/persons/<person_id>", h.get_one(h.PERSONS), CONTACTS_READ, 1),
    _route("GET", "/api/v2/stages", h.list_of(h.STAGES, h.stages_of), SETUP_READ, 10),
    _route("GET", "/api/v2/stages/<stage_id>", h.get_one(h.STAGES), SETUP_READ, 1),
    _route("GET", "/api/v2/pipelines", h.list_of(h.PIPELINES, h.in_order), SETUP_READ, 10),
    _route("GET", "/api/v2/pipelines/<pipeline_id>", h.get_one(h.PIPELINES), SETUP_READ, 1),
    _route("GET", "/api/v2/dealFields", h.list_of(h.DEAL_FIELDS), SETUP_READ, 10),
    _route("GET", "/api/v2/dealFields/<field_code>", h.get_one(h.DEAL_FIELDS), SETUP_READ, 1),
    _route("POST", "/api/v2/dealFields", h.post_deal_field, ADMIN, 5),
    _route("POST", "/api/v2/activities", h.post_activity_v2, ACTIVITIES_WRITE, 5),
    _route("POST", "/api/v1/activities", h.post_activity_v1, ACTIVITIES_WRITE, 10),
    # as GET /v1/users/me (developers.pipedrive.com; unverified)
    _route("GET", "/api/v1/users/<user_id>", h.get_user, USERS_READ, 2),
    _route("GET", "/api/v1/webhooks", h.list_webhooks, WEBHOOKS_READ, 20),
    _route("POST", "/api/v1/webhooks", h.post_webhook, WEBHOOKS_WRITE, 10),
    _route("DELETE", "/api/v1/webhooks/<webhook_id>", h.delete_webhook, WEBHOOKS_WRITE, 6),
)
