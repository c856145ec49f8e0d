"""The fake Pipedrive company API (sandbox/pipedrive/) over real HTTP.

Calls go through plain `requests` and through a requests-oauthlib `OAuth2Session`
(how Paydeck calls Pipedrive). Time-based behaviour (rate-limit windows, webhook
retries and bans) runs on the fake clock: tests `advance()` instead of sleeping.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import requests
from requests_oauthlib import OAuth2Session
from werkzeug.wrappers import Request, Response

from sandbox import FakePipedrive, LoopbackServer
from sandbox.pipedrive import DEFAULT_SCOPES
from sandbox.pipedrive.api import DAILY_BUDGET_HEADER
from sandbox.pipedrive.records import DEFAULT_STAGES

from .support import TIMEOUT, OAuthHarness, run_concurrently

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

HASH = re.compile(r"^[0-9a-f]{40}$")


# ----- fixtures and helpers ---------------------------------------------------------------


@dataclass
class Client:
    """Plain `requests` against the company API with one bearer token."""

    base: str
    token: str

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(
            method, self.base + path, headers=headers, timeout=TIMEOUT, **kwargs
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return self._call("GET", path, params=params)

    def patch(self, path: str, body: Any) -> requests.Response:
        return self._call("PATCH", path, json=body)

    def post(self, path: str, body: Any) -> requests.Response:
        return self._call("POST", path, json=body)

    def delete(self, path: str) -> requests.Response:
        return self._call("DELETE", path)


def login(harness: OAuthHarness[FakePipedrive]) -> Client:
    tokens = harness.login()
    return Client(tokens["api_domain"], tokens["access_token"])


@pytest.fixture
def fake(pipedrive: OAuthHarness[FakePipedrive]) -> FakePipedrive:
    return pipedrive.fake


@pytest.fixture
def api(pipedrive: OAuthHarness[FakePipedrive]) -> Client:
    return login(pipedrive)


class Receiver:
    """A webhook endpoint: records each request and answers scripted statuses, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: deque[int] = deque()
        self.default_status = 200
        self.delay = 0.0
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "body": request.get_data(),
                }
            )
            status = self.script.popleft() if self.script else self.default_status
            delay = self.delay
        if delay:
            time.sleep(delay)
        return Response("ok", status=status)(environ, start_response)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests if r["method"] == "POST"]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    with LoopbackServer(app) as server:
        yield app, server.url


def subscribe(
    api: Client, url: str, action: str = "change", obj: str = "deal", **extra: Any
) -> dict[str, Any]:
    body = {
        "subscription_url": url,
        "event_action": action,
        "event_object": obj,
        "name": "Paydeck deal changes",
        "version": "2.0",
        "http_auth_user": "paydeck",
        "http_auth_password": "s3cret-pw",
        **extra,
    }
    response = api.post("/api/v1/webhooks", body)
    assert response.status_code == 201, response.text
    hook: dict[str, Any] = response.json()["data"]
    return hook


def seed_deal(fake: FakePipedrive) -> int:
    """A deal with an organisation, a person and three product lines."""
    org = fake.api.add_org(
        "Globex Pty Ltd",
        address={
            "value": "1 George St, Sydney NSW 2000",
            "locality": "Sydney",
            "postal_code": "2000",
            "country": "Australia",
        },
    )
    person = fake.api.add_person("Hank Scorpio", email="hank@globex.example", org_id=org)
    widget = fake.api.add_product("Widget", code="WID-1", price="100.00")
    service = fake.api.add_product("Setup", code="SRV-9", price="250", tax="10")
    return fake.api.add_deal(
        "Globex rollout",
        org_id=org,
        person_id=person,
        expected_close_date="2026-12-01",
        products=[
            {"product_id": widget, "quantity": 3, "discount": 10},
            {"product_id": widget, "quantity": 1, "discount": "5", "discount_type": "amount"},
            {"product_id": service, "tax_method": "exclusive", "comments": "on site"},
        ],
    )


# ----- reads ----------------------------------------------------------------------------


def test_get_deal_has_the_v2_shape(fake: FakePipedrive, api: Client) -> None:
    code = fake.api.add_deal_field("Xero invoice", "varchar")
    deal_id = seed_deal(fake)
    fake.api.update_deal(deal_id, custom_fields={code: "INV-0001"})
    response = api.get(f"/api/v2/deals/{deal_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    deal = body["data"]
    assert deal["id"] == deal_id
    assert deal["title"] == "Globex rollout"
    assert (deal["currency"], deal["status"], deal["pipeline_id"]) == ("AUD", "open", 1)
    assert deal["stage_id"] == fake.api.stage_id("Lead In")
    assert deal["owner_id"] == fake.user_id
    assert deal["value"] == 270 + 95 + 275  # the product lines' sum
    assert deal["expected_close_date"] == "2026-12-01"
    assert deal["custom_fields"] == {code: "INV-0001"}
    assert datetime.fromisoformat(deal["update_time"]).tzinfo is not None
    assert deal["org_id"] and deal["person_id"]


def test_missing_or_malformed_ids(fake: FakePipedrive, api: Client) -> None:
    missing = api.get("/api/v2/deals/999")
    assert missing.status_code == 404
    assert missing.json()["success"] is False
    assert missing.json()["error"] and missing.json()["code"]
    assert api.get("/api/v2/deals/abc").status_code == 400
    assert api.get("/api/v2/persons/5").status_code == 404


def test_list_deals_by_ids_with_cursor_pages(fake: FakePipedrive, api: Client) -> None:
    ids = [fake.api.add_deal(f"Deal {n}", value=n * 100) for n in range(1, 6)]
    body = api.get("/api/v2/deals", ids=f"{ids[0]},{ids[2]},{ids[4]}").json()
    assert [d["id"] for d in body["data"]] == [ids[0], ids[2], ids[4]]
    assert body["additional_data"] == {"next_cursor": None}
    first = api.get("/api/v2/deals", limit=2, sort_direction="desc").json()
    assert [d["id"] for d in first["data"]] == [ids[4], ids[3]]
    cursor = first["additional_data"]["next_cursor"]
    second = api.get("/api/v2/deals", limit=2, sort_direction="desc", cursor=cursor).json()
    assert [d["id"] for d in second["data"]] == [ids[2], ids[1]]
    fake.api.move_deal(ids[1], 2)
    fake.api.update_deal(ids[3], status="won")
    assert [d["id"] for d in api.get("/api/v2/deals", stage_id=2).json()["data"]] == [ids[1]]
    assert [d["id"] for d in api.get("/api/v2/deals", status="won").json()["data"]] == [ids[3]]
    fake.api.delete_deal(ids[0])
    assert ids[0] not in [d["id"] for d in api.get("/api/v2/deals").json()["data"]]
    deleted = api.get("/api/v2/deals", status="deleted").json()["data"]
    assert [d["id"] for d in deleted] == [ids[0]] and deleted[0]["is_deleted"] is True
    assert api.get(f"/api/v2/deals/{ids[0]}").status_code == 404
    assert api.get("/api/v2/deals", status="closed").status_code == 400
    too_many = ",".join(str(n) for n in range(1, 102))
    assert api.get("/api/v2/deals", ids=too_many).status_code == 400
    assert api.get("/api/v2/deals", limit=501).status_code == 400
    assert api.get("/api/v2/deals", cursor="not-a-cursor").status_code == 400


def test_deal_products_single_and_batch(fake: FakePipedrive, api: Client) -> None:
    deal_id = seed_deal(fake)
    other = fake.api.add_deal("Other", products=[{"product_id": 1, "item_price": "9.99"}])
    lines = api.get(f"/api/v2/deals/{deal_id}/products").json()["data"]
    assert [line["sum"] for line in lines] == [270, 95, 275]
    first, second, third = lines
    assert first["product_id"] == 1 and first["name"] == "Widget"
    assert (first["item_price"], first["quantity"], first["discount"]) == (100, 3, 10)
    assert first["discount_type"] == "percentage" and first["tax_method"] == "none"
    assert second["discount_type"] == "amount"
    assert (third["tax"], third["tax_method"], third["comments"]) == (10, "exclusive", "on site")
    assert {line["deal_id"] for line in lines} == {deal_id}
    batch = api.get("/api/v2/deals/products", deal_ids=f"{deal_id},{other}").json(
        parse_float=Decimal
    )
    assert [(line["deal_id"], line["sum"]) for line in batch["data"]] == [
        (deal_id, 270),
        (deal_id, 95),
        (deal_id, 275),
        (other, Decimal("9.99")),
    ]
    repeated = api.get("/api/v2/deals/products", deal_ids=[deal_id, other]).json()
    assert len(repeated["data"]) == 4
    assert api.get("/api/v2/deals/products").status_code == 400


def test_product_organization_person(fake: FakePipedrive, api: Client) -> None:
    seed_deal(fake)
    product = api.get("/api/v2/products/2").json()["data"]
    assert (product["name"], product["code"], product["tax"]) == ("Setup", "SRV-9", 10)
    assert product["prices"] == [
        {"product_id": 2, "price": 250, "currency": "AUD", "cost": 0, "notes": ""}
    ]
    org = api.get("/api/v2/organizations/1").json()["data"]
    assert org["name"] == "Globex Pty Ltd"
    assert org["address"]["value"] == "1 George St, Sydney NSW 2000"
    assert (org["address"]["locality"], org["address"]["postal_code"]) == ("Sydney", "2000")
    assert org["address"]["admin_area_level_1"] is None
    person = api.get("/api/v2/persons/1").json()["data"]
    assert person["name"] == "Hank Scorpio" and person["org_id"] == 1
    assert person["emails"] == [{"value": "hank@globex.example", "primary": True, "label": "work"}]
    assert person["phones"] == []


def test_persons_list_filters_on_update_time_as_documented(
    fake: FakePipedrive, api: Client
) -> None:
    # client-nodejs src/versions/v2/api/persons-api.ts getPersons: updated_since "later than
    # or equal to", updated_until "earlier than", RFC 3339; sort_by id/update_time/add_time.
    early = fake.api.add_person("Early Bird")
    fake.advance(10)
    late = fake.api.add_person("Late Comer")
    fake.advance(10)
    fake.api.update_person(early, name="Early Bird Again")  # now the newest change
    stamp = datetime.fromtimestamp(fake.clock.now() - 10, tz=timezone.utc)
    since = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    listed = api.get("/api/v2/persons", updated_since=since, sort_by="update_time",
                     sort_direction="asc").json()["data"]
    assert [p["id"] for p in listed] == [late, early]
    until = api.get("/api/v2/persons", updated_until=since).json()["data"]
    assert [p["id"] for p in until] == []  # nothing was updated before `since` and not since
    bad = api.get("/api/v2/persons", updated_since="yesterday")
    assert bad.status_code == 400


def test_patch_organization_address_website_and_custom_fields(
    pipedrive: OAuthHarness[FakePipedrive], fake: FakePipedrive
) -> None:
    """v2 UpdateOrganizationRequest (pipedrive/client-nodejs): `address` replaces the whole
    address object; custom fields must be defined organization fields."""
    fake.scopes = (*DEFAULT_SCOPES, "contacts:full")
    api = login(pipedrive)
    code = fake.api.add_org_field("ABN")
    org = fake.api.add_org("Globex Pty Ltd", address="1 George St, Sydney NSW 2000")
    body = {"website": "https://globex.example", "custom_fields": {code: "51 824 753 556"},
            "address": {"value": "Level 2, 1 George St, Sydney", "route": "Level 2, 1 George St",
                        "locality": "Sydney"}}

    response = api.patch(f"/api/v2/organizations/{org}", body)

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["website"] == "https://globex.example"
    assert data["custom_fields"] == {code: "51 824 753 556"}
    assert data["address"]["route"] == "Level 2, 1 George St"
    assert data["address"]["postal_code"] is None  # the old address was replaced, not merged
    assert api.get(f"/api/v2/organizations/{org}").json()["data"] == data
    assert fake.api_calls[-2].tokens == 5
    refused = {
        "/api/v2/organizations/999": ({"website": "x"}, 404),
        f"/api/v2/organizations/{org}": ({"phone": "+61 2 5550 1234"}, 400),
    }
    for path, (patch, status) in refused.items():
        assert api.patch(path, patch).status_code == status, patch
    for patch in ({"custom_fields": {"f" * 40: "x"}}, {"address": {"formatted_address": "x"}},
                  {"address": "1 George St"}, {"name": ""}, {"visible_to": 3}):
        assert api.patch(f"/api/v2/organizations/{org}", patch).status_code == 400, patch
    assert fake.api.org(org).website == "https://globex.example"


def test_patching_an_organization_needs_contacts_full(fake: FakePipedrive, api: Client) -> None:
    org = fake.api.add_org("Globex Pty Ltd")  # `api` has contacts:read only
    patched = api.patch(f"/api/v2/organizations/{org}", {"website": "https://x.example"})

    assert patched.status_code == 403
    assert api.get(f"/api/v2/organizations/{org}").status_code == 200
    assert fake.api.org(org).website is None


def test_stages_and_pipelines(fake: FakePipedrive, api: Client) -> None:
    second = fake.api.add_pipeline("Renewals", ["Due", "Invoiced"])
    stages = api.get("/api/v2/stages").json()["data"]
    assert [s["name"] for s in stages if s["pipeline_id"] == 1] == list(DEFAULT_STAGES)
    assert [s["order_nr"] for s in stages if s["pipeline_id"] == 1] == [1, 2, 3, 4, 5]
    renewals = api.get("/api/v2/stages", pipeline_id=second).json()["data"]
    assert [s["name"] for s in renewals] == ["Due", "Invoiced"]
    pipelines = api.get("/api/v2/pipelines").json()["data"]
    assert [(p["id"], p["name"]) for p in pipelines] == [(1, "Pipeline"), (second, "Renewals")]
    assert api.get(f"/api/v2/stages/{renewals[1]['id']}").json()["data"]["name"] == "Invoiced"


def test_companies_do_not_see_each_others_data(
    pipedrive: OAuthHarness[FakePipedrive], fake: FakePipedrive, api: Client
) -> None:
    fake.api.add_deal("Acme deal")
    fake.company_id = 4242
    other = login(pipedrive)
    assert other.get("/api/v2/deals/1").status_code == 404
    fake.api.add_deal("Their deal")  # seeds the current company (4242)
    assert other.get("/api/v2/deals/1").json()["data"]["title"] == "Their deal"
    assert api.get("/api/v2/deals/1").json()["data"]["title"] == "Acme deal"


# ----- writes and custom fields -----------------------------------------------------------


def test_custom_field_create_patch_and_read_back(fake: FakePipedrive, api: Client) -> None:
    deal_id = fake.api.add_deal("Invoice me", value=500)
    created = api.post(
        "/api/v2/dealFields", {"field_name": "Xero invoice", "field_type": "varchar"}
    )
    assert created.status_code == 200, created.text
    field = created.json()["data"]
    code = field["field_code"]
    assert HASH.match(code)
    assert (field["field_name"], field["is_custom_field"]) == ("Xero invoice", True)
    listed = api.get("/api/v2/dealFields", limit=500).json()["data"]
    assert code in [f["field_code"] for f in listed]
    assert api.get(f"/api/v2/dealFields/{code}").json()["data"]["field_type"] == "varchar"
    patched = api.patch(f"/api/v2/deals/{deal_id}", {"custom_fields": {code: "INV-0042"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["custom_fields"][code] == "INV-0042"
    assert api.get(f"/api/v2/deals/{deal_id}").json()["data"]["custom_fields"] == {code: "INV-0042"}
    assert fake.api.deal(deal_id).custom_fields == {code: "INV-0042"}
    only = api.get(f"/api/v2/deals/{deal_id}", custom_fields=code).json()["data"]
    assert only["custom_fields"] == {code: "INV-0042"}


def test_custom_field_errors(fake: FakePipedrive, api: Client) -> None:
    deal_id = fake.api.add_deal("Invoice me")
    amount = fake.api.add_deal_field("Amount paid", "monetary")
    status = fake.api.add_deal_field("Invoice status", "enum", ["Draft", "Paid"])
    unknown = uuid.uuid4().hex + "00000000"
    refused = api.patch(f"/api/v2/deals/{deal_id}", {"custom_fields": {unknown: "x"}})
    assert refused.status_code == 400
    assert unknown in refused.json()["error"]
    top_level = api.patch(f"/api/v2/deals/{deal_id}", {amount: "x"})
    assert top_level.status_code == 400
    assert "custom_fields" in top_level.json()["error"]
    wrong_type = api.patch(f"/api/v2/deals/{deal_id}", {"custom_fields": {amount: "12"}})
    assert wrong_type.status_code == 400
    paid = fake.api.deal_field_option(status, "Paid")
    good = {amount: {"value": 12.5, "currency": "AUD"}, status: paid}
    ok = api.patch(f"/api/v2/deals/{deal_id}", {"custom_fields": good})
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"]["custom_fields"] == {
        amount: {"value": 12.5, "currency": "AUD"},
        status: paid,
    }
    assert api.patch(f"/api/v2/deals/{deal_id}", {"custom_fields": {status: 99}}).status_code == 400
    bad_field = api.post("/api/v2/dealFields", {"field_name": "X", "field_type": "enum"})
    assert bad_field.status_code == 400


def test_patch_deal_fields_and_validation(fake: FakePipedrive, api: Client) -> None:
    deal_id = fake.api.add_deal("Move me", value=100)
    renewals = fake.api.add_pipeline("Renewals", ["Due", "Invoiced"])
    invoiced = fake.api.stage_id("Invoiced", renewals)
    body = api.patch(
        f"/api/v2/deals/{deal_id}", {"stage_id": invoiced, "value": 150.25, "status": "won"}
    ).json()["data"]
    assert (body["stage_id"], body["pipeline_id"]) == (invoiced, renewals)
    assert body["value"] == 150.25 and body["status"] == "won"
    assert body["won_time"] is not None and body["stage_change_time"] is not None
    assert fake.api.deal(deal_id).value == Decimal("150.25")
    assert api.patch(f"/api/v2/deals/{deal_id}", {"stage_id": 999}).status_code == 400
    assert api.patch(f"/api/v2/deals/{deal_id}", {"title": ""}).status_code == 400
    assert api.patch(f"/api/v2/deals/{deal_id}", {"colour": "red"}).status_code == 400
    assert (
        api.patch(f"/api/v2/deals/{deal_id}", {"stage_id": 1, "pipeline_id": renewals}).status_code
        == 400
    )
    assert api.patch("/api/v2/deals/999", {"title": "x"}).status_code == 404


def test_won_time_is_settable_only_on_a_won_deal(fake: FakePipedrive, api: Client) -> None:
    # pipedrive/client-nodejs docs/BasicDeal.md, won_time: "in UTC. Format: YYYY-MM-DD
    # HH:MM:SS. Can be set only when deal status is already Won."
    deal_id = fake.api.add_deal("Backdated", value=100)
    assert api.patch(f"/api/v2/deals/{deal_id}",
                     {"won_time": "2026-06-30 14:30:00"}).status_code == 400
    assert fake.api.deal(deal_id).won_time is None  # the refused PATCH changed nothing
    body = api.patch(f"/api/v2/deals/{deal_id}",
                     {"status": "won", "won_time": "2026-06-30 14:30:00"}).json()["data"]
    assert body["status"] == "won" and body["won_time"] == "2026-06-30T14:30:00Z"
    later = api.patch(f"/api/v2/deals/{deal_id}", {"won_time": "2026-06-30T12:00:00Z"})
    assert later.json()["data"]["won_time"] == "2026-06-30T12:00:00Z"
    assert api.patch(f"/api/v2/deals/{deal_id}", {"won_time": "30/06/2026"}).status_code == 400


def test_activities_need_the_activities_scope(
    pipedrive: OAuthHarness[FakePipedrive], fake: FakePipedrive, api: Client
) -> None:
    deal_id = fake.api.add_deal("Overdue")
    body = {
        "subject": "Invoice overdue",
        "type": "task",
        "due_date": "2026-12-01",
        "deal_id": deal_id,
        "note": "INV-7 is 10 days overdue",
    }
    refused = api.post("/api/v2/activities", body)
    assert refused.status_code == 403
    assert refused.json()["error"] == "Scope and URL mismatch"
    fake.scopes = (*DEFAULT_SCOPES, "activities:full")
    allowed = login(pipedrive)
    created = allowed.post("/api/v2/activities", body)
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    assert (data["subject"], data["deal_id"], data["owner_id"]) == (
        "Invoice overdue",
        deal_id,
        fake.user_id,
    )
    v1 = allowed.post("/api/v1/activities", {**body, "user_id": 77})
    assert v1.status_code == 201 and v1.json()["data"]["user_id"] == 77
    assert [a.subject for a in fake.api.activities()] == ["Invoice overdue"] * 2


# ----- token costs, limits, faults --------------------------------------------------------


def test_token_costs_and_rate_limit_headers(fake: FakePipedrive, api: Client) -> None:
    deal_id = seed_deal(fake)
    got = api.get(f"/api/v2/deals/{deal_id}")
    api.patch(f"/api/v2/deals/{deal_id}", {"title": "Renamed"})
    lines = api.get(f"/api/v2/deals/{deal_id}/products")
    assert [(c.method, c.tokens) for c in fake.api_calls] == [("GET", 1), ("PATCH", 5), ("GET", 10)]
    assert fake.api.tokens_spent() == 16
    assert got.headers["x-ratelimit-limit"] == "80"
    assert got.headers["x-ratelimit-remaining"] == "79"
    assert got.headers["x-ratelimit-reset"] in ("1", "2")
    assert got.headers[DAILY_BUDGET_HEADER] == str(30_000 - 1)
    assert lines.headers[DAILY_BUDGET_HEADER] == str(30_000 - 16)
    assert lines.headers["x-ratelimit-remaining"] == "77"
    assert fake.count_api_calls("GET", "/deals") == 2
    assert fake.count_api_calls(path_prefix="/api/v2/deals", status=200) == 3


def test_burst_limit_answers_429_until_the_window_rolls(fake: FakePipedrive, api: Client) -> None:
    fake.rate_limits.burst_limit = 3
    deal_id = fake.api.add_deal("Busy")
    assert [api.get(f"/api/v2/deals/{deal_id}").status_code for _ in range(3)] == [200] * 3
    refused = api.get(f"/api/v2/deals/{deal_id}")
    assert refused.status_code == 429
    assert refused.json()["success"] is False
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["Retry-After"] in ("1", "2")
    assert fake.api_calls[-1].tokens == 0 and fake.api_calls[-1].limited == "burst"
    assert fake.api.tokens_spent() == 3
    fake.advance(2)
    assert api.get(f"/api/v2/deals/{deal_id}").status_code == 200


def test_burst_limit_holds_under_concurrency(fake: FakePipedrive, api: Client) -> None:
    fake.rate_limits.burst_limit = 10
    deal_id = fake.api.add_deal("Contended")
    statuses = run_concurrently(20, lambda _: api.get(f"/api/v2/deals/{deal_id}").status_code)
    assert sorted(statuses) == [200] * 10 + [429] * 10
    assert fake.api.tokens_spent() == 10


def test_daily_budget_is_per_company_until_utc_midnight(
    pipedrive: OAuthHarness[FakePipedrive], fake: FakePipedrive, api: Client
) -> None:
    fake.rate_limits.daily_budget = 12
    deal_id = seed_deal(fake)
    assert api.get(f"/api/v2/deals/{deal_id}/products").status_code == 200  # 10 tokens
    assert api.get(f"/api/v2/deals/{deal_id}").status_code == 200  # 11
    assert api.get(f"/api/v2/deals/{deal_id}").status_code == 200  # 12
    refused = api.get(f"/api/v2/deals/{deal_id}")
    assert refused.status_code == 429
    assert refused.headers[DAILY_BUDGET_HEADER] == "0"
    assert fake.api_calls[-1].limited == "daily"
    to_midnight = int(refused.headers["Retry-After"])
    assert 0 < to_midnight <= 86_400
    fake.company_id = 4242
    other_company = login(pipedrive)
    assert other_company.get("/api/v2/stages").status_code == 200  # its own budget
    fake.company_id = 7788990
    fake.advance(to_midnight)
    ok = login(pipedrive).get(f"/api/v2/deals/{deal_id}")  # the old token has expired
    assert ok.status_code == 200
    assert ok.headers[DAILY_BUDGET_HEADER] == "11"


def test_injected_5xx_fault(fake: FakePipedrive, api: Client) -> None:
    deal_id = fake.api.add_deal("Flaky")
    fake.inject_api("5xx", method="GET", path_prefix="/deals", status=503)
    failed = api.get(f"/api/v2/deals/{deal_id}")
    assert failed.status_code == 503 and failed.json()["success"] is False
    assert fake.api_calls[-1].fault == "5xx"
    assert api.get(f"/api/v2/deals/{deal_id}").status_code == 200
    fake.inject_api("5xx", method="PATCH", times=None)
    assert api.get(f"/api/v2/deals/{deal_id}").status_code == 200
    assert api.patch(f"/api/v2/deals/{deal_id}", {"title": "x"}).status_code == 500
    assert api.patch(f"/api/v2/deals/{deal_id}", {"title": "x"}).status_code == 500
    assert fake.api.deal(deal_id).title == "Flaky"
    fake.clear_api_faults()
    assert api.patch(f"/api/v2/deals/{deal_id}", {"title": "x"}).status_code == 200


def test_injected_429_fault_costs_nothing(fake: FakePipedrive, api: Client) -> None:
    deal_id = fake.api.add_deal("Throttled")
    fake.inject_api("429", path_prefix="/api/v2/deals", times=2)
    assert [api.get(f"/api/v2/deals/{deal_id}").status_code for _ in range(3)] == [429, 429, 200]
    refused = fake.api_calls[0]
    assert (refused.fault, refused.tokens, refused.status) == ("429", 0, 429)
    assert fake.api.tokens_spent() == 1


def test_injected_slow_fault(fake: FakePipedrive, api: Client) -> None:
    deal_id = fake.api.add_deal("Slow")
    fake.inject_api("slow", path_prefix="/deals", delay=0.3)
    started = time.monotonic()
    assert api.get(f"/api/v2/deals/{deal_id}").status_code == 200
    assert time.monotonic() - started >= 0.3
    fake.inject_api("slow", delay=0.5)
    with pytest.raises(requests.Timeout):
        requests.get(
            f"{api.base}/api/v2/deals/{deal_id}",
            headers={"Authorization": f"Bearer {api.token}"},
            timeout=0.1,
        )


def test_unauthenticated_calls_are_refused_and_logged(fake: FakePipedrive, api: Client) -> None:
    response = requests.get(f"{api.base}/api/v2/deals/1", timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert (fake.api_calls[-1].status, fake.api_calls[-1].tokens) == (401, 0)


def test_oauth2session_with_basic_auth_refresh(
    pipedrive: OAuthHarness[FakePipedrive], fake: FakePipedrive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake is plain http on loopback
    deal_id = fake.api.add_deal("Via session", value=10)
    tokens = pipedrive.login()
    saved: list[dict[str, Any]] = []
    session = OAuth2Session(
        fake.client_id,
        token={**tokens, "expires_at": time.time() - 5},  # expired: forces a refresh
        auto_refresh_url=pipedrive.url + fake.token_path,
        token_updater=saved.append,
    )
    base = tokens["api_domain"] + "/api/v2"
    auth = {"client_id": fake.client_id, "client_secret": fake.client_secret}
    got = session.get(f"{base}/deals/{deal_id}", timeout=TIMEOUT, **auth)
    assert got.status_code == 200
    assert got.json()["data"]["value"] == 10
    assert len(saved) == 1 and saved[0]["access_token"] != tokens["access_token"]
    assert fake.refresh_count == 1
    patched = session.patch(f"{base}/deals/{deal_id}", json={"value": 12}, timeout=TIMEOUT)
    assert patched.status_code == 200
    assert fake.api.deal(deal_id).value == 12


# ----- webhooks -------------------------------------------------------------------------


def test_webhook_registration_listing_and_deletion(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    hook = subscribe(api, url + "/hooks/pipedrive")
    assert hook["event_action"] == "change" and hook["event_object"] == "deal"
    assert (hook["version"], hook["type"], hook["user_id"]) == ("2.0", "application", fake.user_id)
    assert hook["subscription_url"] == url + "/hooks/pipedrive"
    listed = api.get("/api/v1/webhooks").json()
    assert listed["success"] is True and [h["id"] for h in listed["data"]] == [hook["id"]]
    default_version = subscribe(api, url, "*", "*", version=None)
    assert default_version["version"] == "2.0"
    v1_action = {"subscription_url": url, "event_action": "updated", "event_object": "deal"}
    assert api.post("/api/v1/webhooks", v1_action).status_code == 400
    bad_url = {"subscription_url": "nope", "event_action": "change", "event_object": "deal"}
    assert api.post("/api/v1/webhooks", bad_url).status_code == 400
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 200
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    assert [h.id for h in fake.webhooks] == [default_version["id"]]


def test_a_webhook_without_a_name_is_refused(api: Client, receiver: tuple[Receiver, str]) -> None:
    """AddWebhookRequest marks `name` required (pipedrive/client-nodejs, commit 43929e5d)."""
    body = {"subscription_url": receiver[1], "event_action": "change", "event_object": "deal",
            "version": "2.0"}
    for name in (None, "", "  "):
        refused = api.post("/api/v1/webhooks", body | ({} if name is None else {"name": name}))
        assert refused.status_code == 400
        assert refused.json()["success"] is False and "name" in refused.json()["error"]
    assert api.get("/api/v1/webhooks").json()["data"] == []
    named = api.post("/api/v1/webhooks", body | {"name": "Paydeck"})
    assert named.status_code == 201 and named.json()["data"]["name"] == "Paydeck"


def test_webhooks_need_the_admin_scope(
    pipedrive: OAuthHarness[FakePipedrive], fake: FakePipedrive, receiver: tuple[Receiver, str]
) -> None:
    fake.scopes = ("base", "deals:full", "contacts:read", "products:read")
    no_admin = login(pipedrive)
    body = {"subscription_url": receiver[1], "event_action": "change", "event_object": "deal",
            "name": "Paydeck"}
    assert no_admin.post("/api/v1/webhooks", body).status_code == 403
    assert no_admin.get("/api/v1/webhooks").status_code == 403
    assert (
        no_admin.post(
            "/api/v2/dealFields", {"field_name": "X", "field_type": "varchar"}
        ).status_code
        == 403
    )
    assert no_admin.get("/api/v2/dealFields").status_code == 200  # reading needs deals:read


def test_api_patch_fires_a_v2_change_webhook(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    code = fake.api.add_deal_field("Xero invoice")
    deal_id = fake.api.add_deal("Hooked", value=100)
    hook = subscribe(api, url + "/hooks/pipedrive")
    proposal = fake.api.stage_id("Proposal Made")
    api.patch(f"/api/v2/deals/{deal_id}", {"stage_id": proposal})
    [result] = fake.deliver()
    assert result.ok and result.attempt == 1 and result.status == 200
    [sent] = app.requests
    assert (sent["method"], sent["path"]) == ("POST", "/hooks/pipedrive")
    assert sent["headers"]["Content-Type"] == "application/json"
    scheme, _, encoded = sent["headers"]["Authorization"].partition(" ")
    assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", "paydeck:s3cret-pw")
    event = json.loads(sent["body"])
    assert set(event) == {"meta", "data", "previous"}
    meta = event["meta"]
    assert (meta["action"], meta["entity"], meta["version"]) == ("change", "deal", "2.0")
    assert meta["entity_id"] == str(deal_id)
    assert (meta["company_id"], meta["user_id"]) == ("7788990", str(fake.user_id))
    assert meta["change_source"] == "api" and meta["attempt"] == 1
    assert meta["webhook_id"] == str(hook["id"]) and meta["type"] == "application"
    assert meta["host"] == "acme.pipedrive.com"
    uuid.UUID(meta["id"])
    uuid.UUID(meta["correlation_id"])
    assert datetime.fromisoformat(meta["timestamp"]).tzinfo is not None
    assert event["data"]["stage_id"] == proposal and event["data"]["id"] == deal_id
    assert event["data"]["custom_fields"] == {code: None}
    assert event["previous"]["stage_id"] == fake.api.stage_id("Lead In")
    assert "title" not in event["previous"] and "update_time" not in event["previous"]
    assert fake.deliver() == []


def test_ui_changes_fire_with_change_source_app(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    code = fake.api.add_deal_field("Xero invoice")
    deal_id = fake.api.add_deal("Dragged")
    subscribe(api, url)
    fake.api.move_deal(deal_id, fake.api.stage_id("Won"), user_id=555)
    fake.api.update_deal(deal_id, custom_fields={code: "INV-1"})
    fake.api.update_deal(deal_id, title="Dragged")  # no change: no event
    assert [r.ok for r in fake.deliver()] == [True, True]
    moved, field_set = app.events()
    assert (moved["meta"]["change_source"], moved["meta"]["user_id"]) == ("app", "555")
    assert set(moved["previous"]) >= {"stage_id", "stage_change_time"}
    assert field_set["previous"] == {"custom_fields": {code: None}}
    assert field_set["data"]["custom_fields"] == {code: "INV-1"}


def test_event_matching_by_action_and_object(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    subscribe(api, url + "/change")
    subscribe(api, url + "/all", "*", "*")
    subscribe(api, url + "/persons", "*", "person")
    deal_id = fake.api.add_deal("New")
    fake.api.move_deal(deal_id, 2)
    fake.api.delete_deal(deal_id)
    fake.deliver()
    seen = [(r["path"], json.loads(r["body"])["meta"]["action"]) for r in app.requests]
    assert sorted(seen) == [
        ("/all", "change"),
        ("/all", "create"),
        ("/all", "delete"),
        ("/change", "change"),
    ]
    deleted = next(e for e in app.events() if e["meta"]["action"] == "delete")
    assert deleted["data"] is None and deleted["previous"]["id"] == deal_id


def test_failed_deliveries_retry_at_3_30_150_seconds(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.script.extend([500, 503, 404])
    deal_id = fake.api.add_deal("Retried")
    subscribe(api, url)
    fake.api.move_deal(deal_id, 2)
    [first] = fake.deliver()
    assert (first.attempt, first.status, first.ok) == (1, 500, False)
    assert first.next_attempt_at == pytest.approx(fake.now() + 3, abs=0.5)
    assert fake.deliver() == []
    fake.advance(3)
    [second] = fake.deliver()
    assert (second.attempt, second.status) == (2, 503)
    fake.advance(29)
    assert fake.deliver() == []
    fake.advance(1)
    [third] = fake.deliver()
    assert (third.attempt, third.status) == (3, 404)
    fake.advance(150)
    [fourth] = fake.deliver()
    assert (fourth.attempt, fourth.ok, fourth.next_attempt_at) == (4, True, None)
    events = app.events()
    assert [e["meta"]["attempt"] for e in events] == [1, 2, 3, 4]
    assert len({e["meta"]["id"] for e in events}) == 1
    fake.advance(1000)
    assert fake.deliver() == []
    assert fake.dropped_webhook_events == []


def test_delivery_gives_up_after_the_third_retry(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.default_status = 500
    deal_id = fake.api.add_deal("Lost")
    subscribe(api, url)
    fake.api.move_deal(deal_id, 2)
    for wait in (0, 3, 30, 150):
        fake.advance(wait)
        assert len(fake.deliver()) == 1
    assert fake.webhook_deliveries[-1].next_attempt_at is None
    [dropped] = fake.dropped_webhook_events
    assert (dropped.reason, dropped.attempt, dropped.entity_id) == (
        "retries_exhausted",
        4,
        str(deal_id),
    )


def test_a_reply_slower_than_the_timeout_is_a_failure(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    fake.api.webhooks.timeout = 0.2  # Pipedrive waits 10 s; shortened to keep the test quick
    app.delay = 0.5
    deal_id = fake.api.add_deal("Slow hook")
    subscribe(api, url)
    fake.api.move_deal(deal_id, 2)
    [result] = fake.deliver()
    assert not result.ok and result.status is None
    assert result.error is not None and result.error.startswith("timeout")
    assert result.next_attempt_at is not None
    app.delay = 0
    fake.advance(3)
    [retry] = fake.deliver()
    assert retry.ok and retry.attempt == 2


def test_ten_first_attempt_failures_ban_the_hook_for_30_minutes(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.default_status = 500
    deal_id = fake.api.add_deal("Banned")
    subscribe(api, url)
    for n in range(10):
        fake.api.move_deal(deal_id, 2 + n % 2)
    results = fake.deliver()
    assert [r.attempt for r in results] == [1] * 10
    assert [r.banned for r in results] == [False] * 9 + [True]
    [hook] = fake.webhooks
    assert hook.banned_until == pytest.approx(fake.now() + 1800, abs=1)
    assert fake.api.webhooks.pending == []  # queued retries die with the ban
    assert {d.reason for d in fake.dropped_webhook_events} == {"banned"}
    fake.api.move_deal(deal_id, 4)  # during the ban: lost
    assert fake.dropped_webhook_events[-1].entity_id == str(deal_id)
    assert fake.dropped_webhook_events[-1].attempt == 1
    fake.advance(1799)
    assert fake.deliver() == []
    fake.advance(1)
    app.default_status = 200
    fake.api.move_deal(deal_id, 5)
    [after] = fake.deliver()
    assert after.ok and after.payload["data"]["stage_id"] == 5
    assert len(app.requests) == 11


def test_a_first_attempt_success_resets_the_ban_counter(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.script.extend([500] * 9 + [200] + [500] * 9)
    deal_id = fake.api.add_deal("Wobbly")
    subscribe(api, url)
    for n in range(19):
        fake.api.move_deal(deal_id, 2 + n % 2)
    results = fake.deliver()
    assert len(results) == 19 and not any(r.banned for r in results)
    assert fake.webhooks[0].banned_until is None and fake.webhooks[0].ban_counter == 9


def test_uninstall_removes_the_app_webhooks(
    pipedrive: OAuthHarness[FakePipedrive],
    fake: FakePipedrive,
    api: Client,
    receiver: tuple[Receiver, str],
) -> None:
    app, url = receiver
    deal_id = fake.api.add_deal("Uninstalled")
    subscribe(api, url + "/hooks")
    fake.api.move_deal(deal_id, 2)  # queued, never delivered
    response = fake.send_uninstall(url + "/uninstall")
    assert response.status_code == 200
    assert fake.webhooks == []
    assert [d.reason for d in fake.dropped_webhook_events] == ["webhook_removed"]
    assert fake.deliver() == []
    assert [r["path"] for r in app.requests] == ["/uninstall"]
    reinstalled = login(pipedrive)
    assert reinstalled.get("/api/v1/webhooks").json()["data"] == []


def test_auto_deliver_sends_in_the_background(
    fake: FakePipedrive, api: Client, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    deal_id = fake.api.add_deal("Live")
    subscribe(api, url)
    fake.auto_deliver = True
    try:
        api.patch(f"/api/v2/deals/{deal_id}", {"stage_id": 3})
        deadline = time.monotonic() + TIMEOUT
        while not app.requests and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        fake.auto_deliver = False
    [event] = app.events()
    assert event["previous"] == {"stage_id": 1, "stage_change_time": None}
    assert event["meta"]["change_source"] == "api"



def test_list_endpoints_read_many_by_ids(fake: FakePipedrive, api: Client) -> None:
    """GET /api/v2/{organizations,persons,products}?ids= returns just those (batch reads)."""
    orgs = [fake.api.add_org(f"Org {n}") for n in range(3)]

    response = api.get("/api/v2/organizations", ids=f"{orgs[0]},{orgs[2]}")

    assert response.status_code == 200
    assert [o["name"] for o in response.json()["data"]] == ["Org 0", "Org 2"]
