"""FakeHubSpot's CRM API and webhooks, driven through hubspot-api-client 12.x.

The SDK is pointed at the fake with ``HubSpot(access_token=..., host=server.url)``; it
talks urllib3, so these are real HTTP calls on loopback. Time moves with the fake clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import requests
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import BatchReadInputSimplePublicObjectId as CompanyBatchRead
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId as ContactBatchRead
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
)
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInputForCreate as DealBatchCreate,
)
from hubspot.crm.deals import SimplePublicObjectInput as DealPatch
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.deals.exceptions import ServiceException
from hubspot.crm.line_items import BatchReadInputSimplePublicObjectId as LineItemBatchRead
from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate
from hubspot.crm.products import BatchReadInputSimplePublicObjectId as ProductBatchRead
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import (
    BatchInputPropertyCreate,
    BatchReadInputPropertyName,
    PropertyCreate,
    PropertyGroupCreate,
)
from hubspot.utils.signature import Signature
from hubspot.webhooks import SettingsChangeRequest, SubscriptionCreateRequest, ThrottlingSettings
from hubspot.webhooks.exceptions import UnauthorizedException
from werkzeug.wrappers import Request, Response

from sandbox import FakeHubSpot, LoopbackServer
from sandbox.hubspot import CrmRateLimits, signature_v3, signed_uri

from .support import TIMEOUT, OAuthHarness

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DEAL_PROPS = ["dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "closedate"]


@dataclass
class Portal:
    """A running fake, its URL, a token for the default portal and an SDK client on it."""

    fake: FakeHubSpot
    url: str
    token: str
    client: HubSpot

    def sdk(self, token: str) -> HubSpot:
        return HubSpot(access_token=token, host=self.url)

    def get(self, path: str, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return requests.get(self.url + path, headers=headers, timeout=TIMEOUT)

    def post(self, path: str, body: Any, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return requests.post(self.url + path, json=body, headers=headers, timeout=TIMEOUT)


@pytest.fixture
def hs() -> Iterator[Portal]:
    fake = FakeHubSpot(crm_rate_limits=CrmRateLimits(per_window=1000))
    with LoopbackServer(fake) as server:
        token = fake.issue_token()
        yield Portal(fake, server.url, token, HubSpot(access_token=token, host=server.url))
        fake.auto_deliver = False


@dataclass
class Receiver:
    """A webhook endpoint: records each POST and answers from a script of statuses."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        body = request.get_data()
        self.received.append(
            {"headers": dict(request.headers), "body": body, "events": json.loads(body)}
        )
        self.arrived.set()
        if self.delay:
            time.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status=status)(environ, start_response)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for post in self.received for event in post["events"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Receiver()
    with LoopbackServer(app) as server:
        app.url = f"{server.url}/hooks/hubspot"
        yield app


def seed_deal(fake: FakeHubSpot, **props: Any) -> tuple[str, str, str, str]:
    """A deal with a company (custom `abn`), a contact and two product line items."""
    crm = fake.crm
    company = crm.add_company(
        name="Acme Pty Ltd", domain="acme.test", city="Sydney", country="Australia",
        abn="51 824 753 556",
    )
    contact = crm.add_contact(firstname="Ann", lastname="Lee", email="ann@acme.test")
    widget = crm.add_product(name="Widget", price="12.50", hs_sku="W-1")
    deal = crm.add_deal(
        {"dealname": "Acme renewal", **props},
        company_id=company,
        contact_ids=[contact],
        line_items=[
            {"hs_product_id": widget, "quantity": 3},
            {"name": "Setup", "price": "100", "quantity": 1, "hs_discount_percentage": "10"},
        ],
    )
    return deal, company, contact, widget


# ----- reads ------------------------------------------------------------------------


def test_get_deal_with_associations(hs: Portal) -> None:
    deal, company, contact, _ = seed_deal(hs.fake)
    result = hs.client.crm.deals.basic_api.get_by_id(
        deal, properties=[*DEAL_PROPS, "not_a_property"],
        associations=["companies", "contacts", "line_items"],
    )
    props = result.properties
    assert props["dealname"] == "Acme renewal"
    assert props["amount"] == "127.5"  # 3 x 12.50 + 100 - 10%
    assert props["deal_currency_code"] == "AUD"
    assert (props["dealstage"], props["pipeline"]) == ("appointmentscheduled", "default")
    assert props["closedate"] is None  # requested, defined, unset -> null
    assert "not_a_property" not in props  # unknown names are ignored
    assert {"hs_object_id", "createdate", "hs_lastmodifieddate"} <= set(props)
    assert result.archived is False and result.created_at is not None
    companies = result.associations["companies"].results
    # The primary company appears twice: primary and unlabeled association types.
    assert {(a.id, a.type) for a in companies} == {
        (company, "deal_to_company"), (company, "deal_to_company_unlabeled"),
    }
    assert [a.id for a in result.associations["contacts"].results] == [contact]
    assert len(result.associations["line items"].results) == 2  # HubSpot's key has a space


def test_default_properties_when_none_requested(hs: Portal) -> None:
    deal, *_ = seed_deal(hs.fake)
    props = hs.client.crm.deals.basic_api.get_by_id(deal).properties
    assert set(props) == {
        "amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
        "hs_object_id", "pipeline",
    }


def test_batch_read_deals_reports_missing_ids(hs: Portal) -> None:
    deal, *_ = seed_deal(hs.fake)
    batch = BatchReadInputSimplePublicObjectId(
        inputs=[{"id": deal}, {"id": "999"}], properties=DEAL_PROPS, properties_with_history=[]
    )
    result = hs.client.crm.deals.batch_api.read(batch)
    assert [r.id for r in result.results] == [deal]
    assert result.status == "COMPLETE"
    assert result.errors[0].category == "OBJECT_NOT_FOUND"
    assert result.errors[0].context == {"ids": ["999"]}


def test_v4_association_batch_read(hs: Portal) -> None:
    deal, company, _, _ = seed_deal(hs.fake)
    lonely = hs.fake.crm.add_deal({"dealname": "No company"})
    request = BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": deal}, {"id": lonely}])
    result = hs.client.crm.associations.v4.batch_api.get_page("deals", "companies", request)
    (row,) = result.results
    assert row._from.id == deal
    assert row.to[0].to_object_id == company
    assert [(t.type_id, t.label) for t in row.to[0].association_types] == [
        (5, "Primary"), (341, None),
    ]
    assert result.errors[0].sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"
    items = hs.client.crm.associations.v4.batch_api.get_page(
        "deals", "line_items", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": deal}])
    )
    assert len(items.results[0].to) == 2


def test_line_items_products_companies_contacts(hs: Portal) -> None:
    deal, company, contact, widget = seed_deal(hs.fake)
    crm = hs.client.crm
    item_ids = hs.fake.crm.associated_ids("deals", deal, "line_items")
    items = crm.line_items.batch_api.read(LineItemBatchRead(
        inputs=[{"id": i} for i in item_ids],
        properties=["hs_product_id", "name", "quantity", "price", "hs_sku", "description",
                    "hs_discount_percentage", "discount", "amount", "hs_tax_rate_group_id"],
        properties_with_history=[],
    )).results
    by_name = {i.properties["name"]: i.properties for i in items}
    assert by_name["Widget"]["hs_product_id"] == widget
    assert by_name["Widget"]["hs_sku"] == "W-1"  # copied from the product
    assert (by_name["Widget"]["price"], by_name["Widget"]["amount"]) == ("12.50", "37.5")
    assert by_name["Setup"]["amount"] == "90"
    assert by_name["Setup"]["hs_tax_rate_group_id"] is None
    product = crm.products.batch_api.read(ProductBatchRead(
        inputs=[{"id": widget}], properties=["hs_sku", "name", "price"], properties_with_history=[]
    )).results[0]
    assert product.properties["price"] == "12.50"
    org = crm.companies.batch_api.read(CompanyBatchRead(
        inputs=[{"id": company}],
        properties=["name", "domain", "phone", "address", "city", "state", "zip", "country",
                    "abn"],
        properties_with_history=[],
    )).results[0].properties
    assert (org["name"], org["abn"], org["phone"]) == ("Acme Pty Ltd", "51 824 753 556", None)
    person = crm.contacts.batch_api.read(ContactBatchRead(
        inputs=[{"id": contact}], properties=["firstname", "lastname", "email", "phone"],
        properties_with_history=[],
    )).results[0].properties
    assert person["email"] == "ann@acme.test"


def test_list_pages_and_search(hs: Portal) -> None:
    ids = [hs.fake.crm.add_deal({"dealname": f"Deal {i}", "amount": str(i * 100)})
           for i in range(5)]
    first = hs.client.crm.deals.basic_api.get_page(limit=3)
    rest = hs.client.crm.deals.basic_api.get_page(limit=3, after=first.paging.next.after)
    assert [d.id for d in first.results + rest.results] == ids and rest.paging is None
    hs.fake.advance(60)
    hs.fake.crm.set_deal_properties(ids[1], dealstage="closedwon")
    since = str(int((hs.fake.now() - 30) * 1000))
    search = PublicObjectSearchRequest(
        filter_groups=[{"filters": [
            {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since}]}],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        properties=["dealstage"], limit=10, after="0",
    )
    found = hs.client.crm.deals.search_api.do_search(search)
    assert (found.total, found.results[0].id) == (1, ids[1])
    assert found.results[0].properties["dealstage"] == "closedwon"


def test_pipelines(hs: Portal) -> None:
    (pipeline,) = hs.client.crm.pipelines.pipelines_api.get_all("deals").results
    assert (pipeline.id, pipeline.label) == ("default", "Sales Pipeline")
    assert [s.id for s in pipeline.stages] == [
        "appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
        "decisionmakerboughtin", "contractsent", "closedwon", "closedlost",
    ]
    won = pipeline.stages[5]
    assert won.metadata == {"isClosed": "true", "probability": "1.0"}
    assert won.display_order == 5


def test_owners_and_tasks(hs: Portal) -> None:
    deal, *_ = seed_deal(hs.fake)
    (owner,) = hs.client.crm.owners.owners_api.get_page(email=hs.fake.user_email).results
    assert owner.user_id == hs.fake.user_id
    task = hs.client.crm.objects.tasks.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"hs_task_subject": "Invoice INV-7 is overdue", "hs_task_status": "NOT_STARTED",
                    "hs_timestamp": "2026-12-01T00:00:00Z", "hubspot_owner_id": owner.id},
        associations=[{"to": {"id": deal},
                       "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                  "associationTypeId": 216}]}],
    ))
    assert hs.fake.crm.associated_ids("deals", deal, "tasks") == [task.id]
    stored = hs.fake.crm.object_properties("tasks", task.id)
    assert stored["hs_timestamp"] == "2026-12-01T00:00:00.000Z"


def test_each_portal_sees_only_its_own_records(hs: Portal) -> None:
    deal, *_ = seed_deal(hs.fake)
    other = hs.sdk(hs.fake.issue_token(portal_id=998877))
    assert hs.fake.crm_for(998877).objects("deals") == []
    with pytest.raises(DealsApiException) as err:
        other.crm.deals.basic_api.get_by_id(deal)
    assert err.value.status == 404


def test_oauth_login_token_works(hs: Portal) -> None:
    harness = OAuthHarness("hubspot", hs.fake, hs.url, "oauth crm.objects.deals.read", "/")
    token = harness.login()["access_token"]
    deal = hs.fake.crm.add_deal({"dealname": "Via OAuth"})
    assert hs.sdk(token).crm.deals.basic_api.get_by_id(deal).properties["dealname"] == "Via OAuth"


# ----- writes -----------------------------------------------------------------------


def deal_updates(ids: list[str], **props: str) -> BatchInputSimplePublicObjectBatchInput:
    return BatchInputSimplePublicObjectBatchInput(
        inputs=[SimplePublicObjectBatchInput(id=i, properties=props) for i in ids]
    )


def test_batch_update(hs: Portal) -> None:
    deal, *_ = seed_deal(hs.fake)
    hs.fake.crm.add_property("deals", "paydeck_invoice_number")
    result = hs.client.crm.deals.batch_api.update(
        deal_updates([deal], paydeck_invoice_number="INV-0007", dealstage="closedwon")
    )
    assert result.results[0].properties["paydeck_invoice_number"] == "INV-0007"
    stored = hs.fake.crm.deal(deal)
    assert stored["dealstage"] == "closedwon"
    assert stored["hs_is_closed_won"] == "true" and stored["closedate"] is not None
    (latest, *_) = hs.fake.crm.history("deals", deal, "dealstage")
    assert (latest.source_type, latest.source_id) == ("INTEGRATION", str(hs.fake.app_id))


def test_basic_create_update_archive_and_batch_create(hs: Portal) -> None:
    company = hs.fake.crm.add_company(name="Acme")
    deals = hs.client.crm.deals
    created = deals.basic_api.create(DealInput(
        properties={"dealname": "API deal", "amount": "250.00", "dealstage": "qualifiedtobuy"},
        associations=[{"to": {"id": company},
                       "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                  "associationTypeId": 341}]}],
    ))
    stored = hs.fake.crm.deal(created.id)
    assert (stored["pipeline"], stored["hs_deal_stage_probability"]) == ("default", "0.4")
    links = hs.client.crm.associations.v4.basic_api.get_page("deals", created.id, "companies")
    assert [(r.to_object_id, r.association_types[0].type_id) for r in links.results] == [
        (company, 341)
    ]
    updated = deals.basic_api.update(created.id, DealPatch(properties={"amount": "300"}))
    assert updated.properties["amount"] == "300"
    batch = deals.batch_api.create(DealBatchCreate(inputs=[
        {"properties": {"dealname": f"Batch {i}"}, "associations": []} for i in range(3)
    ]))
    assert len(batch.results) == 3
    deals.basic_api.archive(created.id)
    assert created.id not in {d["hs_object_id"] for d in hs.fake.crm.objects("deals")}
    with pytest.raises(DealsApiException) as err:
        deals.basic_api.get_by_id(created.id)
    assert err.value.status == 404
    assert deals.basic_api.get_by_id(created.id, archived="true").archived is True  # the documented lowercase boolean


def test_batch_update_allows_at_most_100_inputs(hs: Portal) -> None:
    ids = [hs.fake.crm.add_deal({"dealname": f"D{i}"}) for i in range(101)]
    first_100 = hs.client.crm.deals.batch_api.update(deal_updates(ids[:100], dealname="x"))
    assert len(first_100.results) == 100
    with pytest.raises(DealsApiException) as err:
        hs.client.crm.deals.batch_api.update(deal_updates(ids, dealname="y"))
    assert err.value.status == 400
    assert json.loads(err.value.body)["category"] == "VALIDATION_ERROR"
    assert hs.fake.crm.deal(ids[0])["dealname"] == "x"


@pytest.mark.parametrize(
    ("props", "error"),
    [
        ({"no_such_property": "1"}, "PROPERTY_DOESNT_EXIST"),
        ({"amount": "lots"}, "INVALID_FLOAT"),
        ({"dealstage": "nonsense"}, "INVALID_OPTION"),
        ({"hs_object_id": "1"}, "READ_ONLY_VALUE"),
        ({"hubspot_owner_id": "1"}, "INVALID_OWNER_ID"),
    ],
)
def test_invalid_values_fail_the_whole_batch(
    hs: Portal, props: dict[str, str], error: str
) -> None:
    good, bad = (hs.fake.crm.add_deal({"dealname": n}) for n in ("good", "bad"))
    batch = BatchInputSimplePublicObjectBatchInput(inputs=[
        SimplePublicObjectBatchInput(id=good, properties={"dealname": "changed"}),
        SimplePublicObjectBatchInput(id=bad, properties=props),
    ])
    with pytest.raises(DealsApiException) as err:
        hs.client.crm.deals.batch_api.update(batch)
    body = json.loads(err.value.body)
    assert err.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert error in body["message"]
    assert hs.fake.crm.deal(good)["dealname"] == "good"


def test_duplicate_and_unknown_ids_in_batch_update(hs: Portal) -> None:
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    with pytest.raises(DealsApiException) as err:
        hs.client.crm.deals.batch_api.update(deal_updates([deal, deal], dealname="x"))
    assert "Duplicate IDs" in json.loads(err.value.body)["message"]
    result = hs.client.crm.deals.batch_api.update(deal_updates([deal, "31337"], dealname="x"))
    assert [r.id for r in result.results] == [deal]
    assert result.errors[0].context == {"ids": ["31337"]}


def test_property_groups_and_properties(hs: Portal) -> None:
    props = hs.client.crm.properties
    group = props.groups_api.create("deals", PropertyGroupCreate(name="paydeck", label="Paydeck"))
    assert group.name == "paydeck"
    create = PropertyCreate(
        name="paydeck_invoice_status", label="Invoice status", type="enumeration",
        field_type="select", group_name="paydeck",
        options=[{"label": "Paid", "value": "paid", "hidden": False},
                 {"label": "Awaiting payment", "value": "awaiting", "hidden": False}],
    )
    created = props.core_api.create("deals", create)
    assert (created.name, created.group_name, created.type) == (
        "paydeck_invoice_status", "paydeck", "enumeration",
    )
    for again in (lambda: props.core_api.create("deals", create),
                  lambda: props.groups_api.create(
                      "deals", PropertyGroupCreate(name="paydeck", label="Paydeck"))):
        with pytest.raises(PropertiesApiException) as err:
            again()
        assert err.value.status == 409
        assert json.loads(err.value.body)["category"] == "OBJECT_ALREADY_EXISTS"
    names = {p.name for p in props.core_api.get_all("deals").results}
    assert {"paydeck_invoice_status", "dealname", "dealstage", "amount"} <= names
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    hs.client.crm.deals.batch_api.update(deal_updates([deal], paydeck_invoice_status="paid"))
    with pytest.raises(DealsApiException):
        hs.client.crm.deals.batch_api.update(deal_updates([deal], paydeck_invoice_status="nope"))
    assert hs.fake.crm.deal(deal)["paydeck_invoice_status"] == "paid"


def test_batch_property_create(hs: Portal) -> None:
    props = hs.client.crm.properties
    props.groups_api.create("deals", PropertyGroupCreate(name="paydeck", label="Paydeck"))
    inputs = [
        PropertyCreate(name=name, label=name, type=kind, field_type=field, group_name="paydeck")
        for name, kind, field in (("paydeck_amount_due", "number", "number"),
                                  ("paydeck_due_date", "date", "date"))
    ]
    created = props.batch_api.create("deals", BatchInputPropertyCreate(inputs=inputs))
    assert sorted(p.name for p in created.results) == ["paydeck_amount_due", "paydeck_due_date"]
    again = props.batch_api.create("deals", BatchInputPropertyCreate(inputs=inputs[:1]))
    assert again.results == [] and again.errors[0].category == "OBJECT_ALREADY_EXISTS"
    read = props.batch_api.read("deals", BatchReadInputPropertyName(
        inputs=[{"name": "paydeck_due_date"}, {"name": "nope"}], archived=False))
    assert [p.type for p in read.results] == ["date"] and read.errors
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    hs.client.crm.deals.batch_api.update(
        deal_updates([deal], paydeck_due_date="2026-12-31", paydeck_amount_due="99.95"))
    stored = hs.fake.crm.deal(deal)
    assert (stored["paydeck_due_date"], stored["paydeck_amount_due"]) == ("2026-12-31", "99.95")


def test_property_create_needs_an_existing_group(hs: Portal) -> None:
    create = PropertyCreate(name="x_y", label="X", type="string", field_type="text",
                            group_name="missing")
    with pytest.raises(PropertiesApiException) as err:
        hs.client.crm.properties.core_api.create("deals", create)
    assert err.value.status == 400


# ----- auth, scopes, limits, faults --------------------------------------------------


def test_missing_or_bad_token_is_401_and_logged(hs: Portal) -> None:
    assert hs.get("/crm/v3/objects/deals", token="nope").status_code == 401
    hs.fake.advance(1800)
    expired = hs.get("/crm/v3/objects/deals")
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert hs.fake.count_crm_calls("GET", "/crm/v3/objects/deals", status=401) == 2


def test_missing_scope_is_403(hs: Portal) -> None:
    token = hs.fake.issue_token(scopes=["oauth", "crm.objects.deals.read"])
    deal, company, *_ = seed_deal(hs.fake)
    assert hs.sdk(token).crm.deals.basic_api.get_by_id(deal).id == deal
    response = hs.post("/crm/v3/objects/companies/batch/read",
                       {"inputs": [{"id": company}], "properties": []}, token)
    assert response.status_code == 403
    body = response.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == [
        "crm.objects.companies.read"
    ]


def test_rate_limit_headers_and_429(hs: Portal) -> None:
    hs.fake.crm_rate_limits.per_window = 3
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    remaining = []
    for _ in range(3):
        response = hs.get(f"/crm/v3/objects/deals/{deal}")
        assert response.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        remaining.append(response.headers["X-HubSpot-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(DealsApiException) as err:
        hs.client.crm.deals.basic_api.get_by_id(deal)
    assert err.value.status == 429
    assert err.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    body = json.loads(err.value.body)
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert {"status", "message", "correlationId"} <= set(body)
    # Another portal has its own window; association batch reads are exempt.
    other = hs.fake.issue_token(portal_id=111)
    assert hs.get("/crm/v3/pipelines/deals", token=other).status_code == 200
    exempt = hs.post("/crm/v4/associations/deals/companies/batch/read", {"inputs": []})
    assert exempt.status_code == 200
    hs.fake.advance(10)  # rolling window: the first calls age out
    assert hs.client.crm.deals.basic_api.get_by_id(deal).id == deal
    assert hs.fake.count_crm_calls(status=429) == 1
    assert [c.limited for c in hs.fake.crm_calls if c.status == 429] == [
        "TEN_SECONDLY_ROLLING"
    ]


def test_search_has_its_own_per_second_limit(hs: Portal) -> None:
    body = {"filterGroups": [], "sorts": [], "properties": [], "limit": 1, "after": "0"}
    statuses = [hs.post("/crm/v3/objects/deals/search", body).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    hs.fake.advance(1)
    assert hs.post("/crm/v3/objects/deals/search", body).status_code == 200


def test_injected_5xx(hs: Portal) -> None:
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    hs.fake.inject_crm("5xx", method="POST", path_prefix="/crm/v3/objects/deals/batch",
                       times=2, status=503)
    for _ in range(2):
        with pytest.raises(ServiceException) as err:
            hs.client.crm.deals.batch_api.update(deal_updates([deal], dealname="x"))
        assert err.value.status == 503
    assert hs.fake.crm.deal(deal)["dealname"] == "d"  # not processed
    hs.client.crm.deals.batch_api.update(deal_updates([deal], dealname="x"))
    assert hs.fake.crm.deal(deal)["dealname"] == "x"
    assert [c.fault for c in hs.fake.crm_calls] == ["5xx", "5xx", None]


def test_injected_429(hs: Portal) -> None:
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    hs.fake.inject_crm("429", path_prefix="/crm/v3/objects/deals")
    with pytest.raises(DealsApiException) as err:
        hs.client.crm.deals.basic_api.get_by_id(deal)
    assert err.value.status == 429
    assert json.loads(err.value.body)["errorType"] == "RATE_LIMIT"
    assert hs.client.crm.deals.basic_api.get_by_id(deal).id == deal


def test_injected_slow_call_times_the_client_out(hs: Portal) -> None:
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    batch = BatchReadInputSimplePublicObjectId(
        inputs=[{"id": deal}], properties=[], properties_with_history=[]
    )
    hs.fake.inject_crm("slow", method="POST", delay=0.4)
    started = time.monotonic()
    # SDK quirk: a timeout is not wrapped in ApiException; urllib3's own error escapes.
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        hs.client.crm.deals.batch_api.read(batch, _request_timeout=0.1)
    assert time.monotonic() - started < 0.4
    time.sleep(0.4)  # let the slow call finish before checking the log
    assert [c.fault for c in hs.fake.crm_calls] == ["slow"]


def test_sdk_silently_retries_a_timed_out_get(hs: Portal) -> None:
    """SDK quirk: urllib3's default Retry(3) re-sends idempotent calls after a read timeout."""
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    hs.fake.inject_crm("slow", method="GET", delay=0.3)
    assert hs.client.crm.deals.basic_api.get_by_id(deal, _request_timeout=0.1).id == deal
    time.sleep(0.3)
    calls = sorted(hs.fake.crm_calls, key=lambda c: c.time)  # the log is in completion order
    assert [c.fault for c in calls] == ["slow", None]


# ----- webhooks ----------------------------------------------------------------------


def verify(post: dict[str, Any], url: str, secret: str) -> bool:
    headers = post["headers"]
    assert headers["X-Hubspot-Signature-Version"] == "v3"
    assert headers["Content-Type"] == "application/json"
    return Signature.is_valid(
        signature=headers["X-Hubspot-Signature-V3"],
        client_secret=secret,
        request_body=post["body"].decode(),
        http_uri=url,
        signature_version="v3",
        timestamp=headers["X-Hubspot-Request-Timestamp"],
    )


def test_user_changes_fire_signed_events(hs: Portal, receiver: Receiver) -> None:
    fake = hs.fake
    fake.subscribe(receiver.url)  # default: dealstage changes and deal creation
    deal = fake.crm.add_deal({"dealname": "New"})
    fake.advance(5)
    fake.crm.set_deal_properties(deal, dealstage="closedwon", dealname="ignored")
    (result,) = fake.deliver()
    assert result.ok and result.status == 200
    (post,) = receiver.received
    assert verify(post, receiver.url, fake.client_secret)
    assert not verify(post, receiver.url, "wrong-secret")
    events = post["events"]
    assert [e["subscriptionType"] for e in events] == [
        "deal.creation", "deal.propertyChange", "deal.propertyChange",
    ]
    creation, initial, won = events
    assert creation["changeFlag"] == "CREATED" and creation["objectId"] == int(deal)
    assert initial["propertyValue"] == "appointmentscheduled"  # set at creation
    assert {k: won[k] for k in ("propertyName", "propertyValue", "changeSource", "sourceId",
                                "portalId", "appId", "attemptNumber")} == {
        "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM_UI",
        "sourceId": f"userId:{fake.user_id}", "portalId": fake.portal_id,
        "appId": fake.app_id, "attemptNumber": 0,
    }
    assert 5000 <= won["occurredAt"] - creation["occurredAt"] < 6000  # clock: wall + offset
    assert len({e["eventId"] for e in events}) == 3
    assert fake.deliver() == []  # nothing left


def test_api_writes_are_integration_changes(hs: Portal, receiver: Receiver) -> None:
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    hs.fake.subscribe(receiver.url, subscriptions=["deal.propertyChange:dealstage"])
    hs.client.crm.deals.batch_api.update(deal_updates([deal], dealstage="contractsent"))
    hs.client.crm.deals.batch_api.update(deal_updates([deal], dealstage="contractsent"))
    hs.fake.deliver()
    (event,) = receiver.events  # unchanged values fire nothing
    assert (event["changeSource"], event["sourceId"]) == ("INTEGRATION", str(hs.fake.app_id))


def test_events_come_in_batches_of_100(hs: Portal, receiver: Receiver) -> None:
    hs.fake.subscribe(receiver.url, subscriptions=["deal.creation"])
    for i in range(150):
        hs.fake.crm.add_deal({"dealname": f"D{i}"})
    results = hs.fake.deliver()
    assert [len(r.events) for r in results] == [100, 50]
    assert [len(p["events"]) for p in receiver.received] == [100, 50]
    assert all(verify(p, receiver.url, hs.fake.client_secret) for p in receiver.received)


def test_signature_uses_the_decoded_uri(hs: Portal, receiver: Receiver) -> None:
    url = receiver.url + "?portal=a%3Ab%2Cc&x=%20y"
    hs.fake.subscribe(url, subscriptions=["deal.creation"])
    hs.fake.crm.add_deal({"dealname": "d"})
    hs.fake.deliver()
    (post,) = receiver.received
    decoded = receiver.url + "?portal=a:b,c&x=%20y"  # %20 is not in HubSpot's decode list
    assert signed_uri(url) == decoded
    assert verify(post, decoded, hs.fake.client_secret)
    assert not verify(post, url, hs.fake.client_secret)
    headers = post["headers"]
    assert headers["X-Hubspot-Signature-V3"] == signature_v3(
        hs.fake.client_secret, "POST", decoded, post["body"], headers["X-Hubspot-Request-Timestamp"]
    )


def test_failed_deliveries_are_retried_with_attempt_numbers(
    hs: Portal, receiver: Receiver
) -> None:
    fake = hs.fake
    fake.subscribe(receiver.url, subscriptions=["deal.creation"])
    receiver.statuses = [500, 429]
    fake.crm.add_deal({"dealname": "d"})
    assert [r.status for r in fake.deliver()] == [500]
    assert fake.deliver() == []  # the retry is not due yet
    assert fake.webhooks.pending[0]["attemptNumber"] == 1
    fake.advance(60)
    assert [(r.status, r.ok) for r in fake.deliver()] == [(429, False)]
    assert [r.status for r in fake.deliver(force=True)] == [200]
    assert [e["attemptNumber"] for e in receiver.events] == [0, 1, 2]
    assert len({e["eventId"] for e in receiver.events}) == 1


def test_events_are_dropped_after_ten_attempts(hs: Portal, receiver: Receiver) -> None:
    hs.fake.subscribe(receiver.url, subscriptions=["deal.creation"])
    hs.fake.webhooks.retry_delays = (0.0,)
    receiver.statuses = [503] * 20
    hs.fake.crm.add_deal({"dealname": "d"})
    for _ in range(12):
        hs.fake.deliver()
    assert [e["attemptNumber"] for e in receiver.events] == list(range(10))
    assert len(hs.fake.webhooks.dropped) == 1 and hs.fake.webhooks.pending == []


def test_slow_replies_are_retried(hs: Portal, receiver: Receiver) -> None:
    hs.fake.subscribe(receiver.url, subscriptions=["deal.creation"])
    hs.fake.webhooks.timeout = 0.2  # HubSpot waits 5 s; shortened to keep the test fast
    receiver.delay = 0.5
    hs.fake.crm.add_deal({"dealname": "d"})
    (result,) = hs.fake.deliver()
    assert result.status is None and "no reply" in (result.error or "")
    receiver.delay = 0.0
    assert [r.ok for r in hs.fake.deliver(force=True)] == [True]


def test_duplicates_can_be_delivered(hs: Portal, receiver: Receiver) -> None:
    hs.fake.subscribe(receiver.url, subscriptions=["deal.creation"])
    hs.fake.crm.add_deal({"dealname": "d"})
    results = hs.fake.deliver(duplicate=True)
    assert [r.duplicate for r in results] == [False, True]
    first, second = receiver.events
    assert first == second


def test_no_events_where_the_app_is_not_installed(hs: Portal, receiver: Receiver) -> None:
    hs.fake.subscribe(receiver.url, subscriptions=["deal.creation"])
    hs.fake.crm_for(5555).add_deal({"dealname": "elsewhere"})
    hs.fake.revoke_all()
    hs.fake.crm.add_deal({"dealname": "after uninstall"})
    assert hs.fake.webhooks.pending == []


def test_deletion_and_other_objects(hs: Portal, receiver: Receiver) -> None:
    hs.fake.subscribe(receiver.url, subscriptions=[
        "deal.deletion", "company.propertyChange:name"])
    deal, company, *_ = seed_deal(hs.fake)
    hs.fake.crm.set_properties("companies", company, {"name": "Acme Holdings"})
    hs.fake.crm.delete_deal(deal)
    hs.fake.deliver()
    kinds = [(e["subscriptionType"], e.get("propertyValue")) for e in receiver.events]
    assert kinds == [
        ("company.propertyChange", "Acme Pty Ltd"),
        ("company.propertyChange", "Acme Holdings"),
        ("deal.deletion", None),
    ]
    with pytest.raises(DealsApiException):
        hs.client.crm.deals.basic_api.get_by_id(deal)


def test_auto_deliver(hs: Portal, receiver: Receiver) -> None:
    hs.fake.subscribe(receiver.url, subscriptions=["deal.creation"])
    hs.fake.auto_deliver = True
    hs.fake.crm.add_deal({"dealname": "live"})
    assert receiver.arrived.wait(timeout=TIMEOUT)
    hs.fake.auto_deliver = False
    assert receiver.events[0]["subscriptionType"] == "deal.creation"


def test_webhook_settings_through_the_developer_api(hs: Portal, receiver: Receiver) -> None:
    dev = HubSpot(api_key=hs.fake.developer_api_key, host=hs.url)
    app_id = hs.fake.app_id
    dev.webhooks.settings_api.configure(app_id, SettingsChangeRequest(
        target_url=receiver.url, throttling=ThrottlingSettings(max_concurrent_requests=10)))
    sub = dev.webhooks.subscriptions_api.create(app_id, SubscriptionCreateRequest(
        event_type="deal.propertyChange", property_name="dealstage", active=True))
    assert [s.id for s in dev.webhooks.subscriptions_api.get_all(app_id).results] == [sub.id]
    deal = hs.fake.crm.add_deal({"dealname": "d"})
    hs.fake.crm.set_deal_properties(deal, dealstage="closedwon")
    hs.fake.deliver()
    assert [e["propertyValue"] for e in receiver.events] == ["appointmentscheduled", "closedwon"]
    assert all(e["subscriptionId"] == int(sub.id) for e in receiver.events)
    bad = HubSpot(api_key="wrong", host=hs.url)
    with pytest.raises(UnauthorizedException):
        bad.webhooks.settings_api.get_all(app_id)


def test_closedate_is_set_when_a_deal_enters_a_closed_stage(hs: Portal) -> None:
    """knowledge.hubspot.com "HubSpot's default deal properties", Close date: set or updated
    when a deal moves into closed won or closed lost (won <-> lost too), not won -> won."""
    deal, *_ = seed_deal(hs.fake, closedate="2026-01-31T00:00:00.000Z")  # an open deal's forecast
    crm = hs.fake.crm

    crm.set_deal_properties(deal, dealstage="closedwon")
    won = crm.deal(deal)["closedate"]
    assert won is not None and won != "2026-01-31T00:00:00.000Z"
    crm.set_deal_properties(deal, dealstage="closedwon", dealname="renamed")  # still won
    assert crm.deal(deal)["closedate"] == won
    crm.set_deal_properties(deal, dealstage="closedlost", closedate="2026-02-01T00:00:00.000Z")
    assert crm.deal(deal)["closedate"] == "2026-02-01T00:00:00.000Z"  # set by hand: kept
