"""FakeHubSpot's CRM API validated against HubSpot's published OpenAPI documents.

Calls are made through hubspot-api-client; the fake's call log keeps each request the
SDK sent and each response it got, and both are validated against tests/specs/hubspot.
Where the specs and real HubSpot disagree, the fake follows HubSpot and the test
normalises that one detail (asserting it first), as tests/sandbox/test_contracts.py does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import BatchReadInputSimplePublicObjectId as CompanyBatchRead
from hubspot.crm.companies import SimplePublicObjectInput as CompanyInput
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId as ContactBatchRead
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
)
from hubspot.crm.deals.exceptions import ApiException as DealsApiException
from hubspot.crm.line_items import BatchReadInputSimplePublicObjectId as LineItemBatchRead
from hubspot.crm.products import BatchReadInputSimplePublicObjectId as ProductBatchRead
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.webhooks import SettingsChangeRequest, SubscriptionCreateRequest, ThrottlingSettings
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.exceptions import InvalidRequestBody
from openapi_schema_validator import OAS30Validator

from tests.specs import SPECS as SPECS_ROOT
from sandbox import FakeHubSpot, LoopbackServer
from sandbox.hubspot import CrmRateLimits
from sandbox.kit.calls import Call

SPECS = SPECS_ROOT / "hubspot"
HOST = "https://api.hubapi.com"

# openapi-core has no checker for oauth2 security schemes and warns on every call.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


@cache
def spec(name: str) -> OpenAPI:
    return OpenAPI.from_file_path(str(SPECS / name))


def spec_for(path: str) -> OpenAPI:
    """The vendored document that describes `path`."""
    if path.startswith("/crm/v4/associations"):
        return spec("associations-v4.json")
    if path.startswith("/webhooks/v3"):
        return spec("webhooks-v3.json")
    for prefix, name in (("/crm/v3/pipelines", "pipelines-v3.json"),
                         ("/crm/v3/properties", "properties-v3.json")):
        if path.startswith(prefix):
            return spec(name)
    kind = path.split("/")[4]
    return spec({"deals": "deals-v3.json", "line_items": "lineItems-v3.json",
                 "products": "products-v3.json", "companies": "companies-v3.json",
                 "contacts": "contacts-v3.json"}[kind])


def spec_request(call: Call) -> MockRequest:
    """The logged request as openapi-core sees it, with two known quirks normalised.

    Spec quirk: deals-v3.json names deal paths by type id (/crm/v3/objects/0-3/...)
    while the SDK calls /crm/v3/objects/deals/...; HubSpot serves both.
    SDK quirk: booleans in the query are Python's str(bool) ("False"); a strict
    validator wants "false".
    """
    path = call.path.replace("/crm/v3/objects/deals", "/crm/v3/objects/0-3", 1)
    args = [
        (key, value.lower() if value in ("True", "False") else value)
        for key, value in parse_qsl(call.query, keep_blank_values=True)
    ]
    return MockRequest(
        HOST, call.method, path, args=args,  # type: ignore[arg-type]  # a multi-dict source
        headers={"Authorization": "Bearer token"}, data=call.body or None,
    )


def validate_call(call: Call, fix: Callable[[Any], Any] | None = None) -> None:
    """Validate the SDK's request and the fake's response (after `fix`, if given)."""
    document = spec_for(call.path)
    request = spec_request(call)
    document.validate_request(request)
    body = call.response_json()
    if fix is not None:
        body = fix(copy.deepcopy(body))
    data = json.dumps(body).encode() if body is not None else b""
    document.validate_response(request, MockResponse(data, status_code=call.status))


def schema_problems(document: str, schema: str, body: Any) -> list[str]:
    """Validate `body` against one component schema directly.

    Spec quirk: every `default` (error) response has content type ``*/*``, so
    openapi-core does not decode it as JSON; error bodies are checked this way instead.
    """
    components = spec(document).spec.read_value()["components"]
    validator = OAS30Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": components},
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )
    return [error.message for error in validator.iter_errors(body)]


def without_null_properties(body: Any) -> Any:
    """Spec quirk: `properties` values are `string`, but HubSpot sends null for a
    requested property that is defined and unset. Assert there are some, then drop them."""
    objects = body["results"] if "results" in body else [body]
    nulls = [k for o in objects for k, v in o["properties"].items() if v is None]
    assert nulls, "no null properties left: validate without this fix"
    for obj in objects:
        obj["properties"] = {k: v for k, v in obj["properties"].items() if v is not None}
    return body


def standard_errors_fixed(body: Any) -> Any:
    """Spec quirks of v4 association reads: an unlabeled type has ``label: null`` (spec:
    string) and a 207 error's `subCategory` is a string (spec: object)."""
    for row in body["results"]:
        for target in row["to"]:
            for kind in target["associationTypes"]:
                if kind["label"] is None:
                    del kind["label"]
    for error in body.get("errors", []):
        assert isinstance(error["subCategory"], str)
        error["subCategory"] = {"name": error["subCategory"]}
    return body


@pytest.fixture
def hs() -> Iterator[tuple[FakeHubSpot, HubSpot]]:
    fake = FakeHubSpot(crm_rate_limits=CrmRateLimits(per_window=1000))
    with LoopbackServer(fake) as server:
        yield fake, HubSpot(access_token=fake.issue_token(), host=server.url)


def seed(fake: FakeHubSpot) -> dict[str, str]:
    crm = fake.crm
    company = crm.add_company(name="Acme", domain="acme.test", abn="51 824 753 556")
    contact = crm.add_contact(firstname="Ann", lastname="Lee", email="ann@acme.test")
    product = crm.add_product(name="Widget", price="12.50", hs_sku="W-1")
    deal = crm.add_deal({"dealname": "Acme renewal"}, company_id=company, contact_ids=[contact],
                        line_items=[{"hs_product_id": product, "quantity": 2}])
    (item,) = crm.associated_ids("deals", deal, "line_items")
    return {"deal": deal, "company": company, "contact": contact, "product": product,
            "item": item}


def last_call(fake: FakeHubSpot) -> Call:
    return fake.crm_calls[-1]


# ----- objects -----------------------------------------------------------------------


def test_get_deal_with_associations(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    ids = seed(fake)
    client.crm.deals.basic_api.get_by_id(
        ids["deal"], properties=["dealname", "amount", "closedate"],
        properties_with_history=["dealstage"], associations=["companies", "line_items"],
        archived="false",  # spec: boolean, lowercase on the wire
    )
    validate_call(last_call(fake), without_null_properties)


def test_deal_batch_read_update_and_207(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    ids = seed(fake)
    client.crm.deals.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": ids["deal"]}, {"id": "424242"}], properties=["dealname", "dealstage"],
        properties_with_history=[],
    ))
    read = last_call(fake)
    assert read.status == 207
    validate_call(read)
    client.crm.deals.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        SimplePublicObjectBatchInput(id=ids["deal"], properties={"dealstage": "closedwon"}),
    ]))
    validate_call(last_call(fake))


def test_sdk_may_omit_properties_with_history(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    """SDK/spec quirk: the spec requires `propertiesWithHistory` in a batch read, the SDK
    sends the body without it when not given and HubSpot accepts that. Pass []."""
    fake, client = hs
    ids = seed(fake)
    client.crm.deals.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": ids["deal"]}], properties=["dealname"]))
    call = last_call(fake)
    assert call.status == 200 and "propertiesWithHistory" not in call.json()
    with pytest.raises(InvalidRequestBody, match="propertiesWithHistory"):
        spec_for(call.path).validate_request(spec_request(call))


@pytest.mark.parametrize("kind", ["line_items", "products", "companies", "contacts"])
def test_other_object_batch_reads(hs: tuple[FakeHubSpot, HubSpot], kind: str) -> None:
    fake, client = hs
    ids = seed(fake)
    reads = {
        "line_items": (client.crm.line_items.batch_api, LineItemBatchRead, ids["item"],
                       ["hs_product_id", "name", "quantity", "price", "hs_sku", "amount"]),
        "products": (client.crm.products.batch_api, ProductBatchRead, ids["product"],
                     ["hs_sku", "name", "price"]),
        "companies": (client.crm.companies.batch_api, CompanyBatchRead, ids["company"],
                      ["name", "domain", "abn", "phone"]),
        "contacts": (client.crm.contacts.batch_api, ContactBatchRead, ids["contact"],
                     ["firstname", "lastname", "email"]),
    }
    api, model, object_id, properties = reads[kind]
    api.read(model(inputs=[{"id": object_id}], properties=properties, properties_with_history=[]))
    call = last_call(fake)
    assert call.status == 200
    has_nulls = any(v is None for v in call.response_json()["results"][0]["properties"].values())
    validate_call(call, without_null_properties if has_nulls else None)


def test_company_read_and_update(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    """The company page's import: one company read, then one update of the empty fields."""
    fake, client = hs
    ids = seed(fake)
    client.crm.companies.basic_api.get_by_id(
        ids["company"], properties=["name", "phone", "address", "abn", "no_such_property"],
        archived="false",
    )
    read = last_call(fake)
    properties = read.response_json()["properties"]
    assert "no_such_property" not in properties and properties["phone"] is None
    validate_call(read, without_null_properties)
    client.crm.companies.basic_api.update(
        ids["company"], CompanyInput(properties={"phone": "+61 2 5550 1234", "city": "Sydney"}))
    update = last_call(fake)
    assert update.status == 200
    validate_call(update)
    assert fake.crm.object_properties("companies", ids["company"])["city"] == "Sydney"


def test_list_and_search(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    for i in range(3):
        fake.crm.add_deal({"dealname": f"D{i}", "amount": str(100 * i)})
    client.crm.deals.basic_api.get_page(limit=2, properties=["dealname"])
    page = last_call(fake)
    assert "paging" in page.response_json()
    validate_call(page)
    # Spec quirk: `sorts` is declared as strings; HubSpot's docs use {propertyName,
    # direction} objects. The fake takes both; the spec's form is validated here.
    client.crm.deals.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "amount", "operator": "GTE", "value": "100"}]}
        ],
        sorts=["-amount"], properties=["dealname", "amount"], limit=10, after="0",
    ))
    search = last_call(fake)
    body = search.response_json()
    assert body["total"] == 2
    assert [r["properties"]["amount"] for r in body["results"]] == ["200", "100"]
    validate_call(search)


def test_v4_association_batch_read(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    ids = seed(fake)
    lonely = fake.crm.add_deal({"dealname": "alone"})
    client.crm.associations.v4.batch_api.get_page(
        "deals", "companies",
        BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": ids["deal"]}, {"id": lonely}]),
    )
    call = last_call(fake)
    assert call.status == 207
    validate_call(call, standard_errors_fixed)


# ----- pipelines, properties ------------------------------------------------------------


def test_pipelines(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    client.crm.pipelines.pipelines_api.get_all("deals")
    validate_call(last_call(fake))
    client.crm.pipelines.pipelines_api.get_by_id("deals", "default")
    validate_call(last_call(fake))


def test_properties_and_groups(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    props = client.crm.properties
    props.groups_api.create("deals", PropertyGroupCreate(name="paydeck", label="Paydeck"))
    validate_call(last_call(fake))
    create = PropertyCreate(name="paydeck_invoice_id", label="Xero invoice", type="string",
                            field_type="text", group_name="paydeck")
    props.core_api.create("deals", create)
    validate_call(last_call(fake))
    props.core_api.get_all("deals")
    validate_call(last_call(fake))
    props.groups_api.get_all("deals")
    validate_call(last_call(fake))
    with pytest.raises(PropertiesApiException):
        props.core_api.create("deals", create)
    conflict = last_call(fake)
    assert conflict.status == 409
    assert schema_problems("properties-v3.json", "Error", conflict.response_json()) == []


# ----- errors ----------------------------------------------------------------------


def test_error_bodies_match_the_error_schema(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    ids = seed(fake)
    narrow = HubSpot(access_token=fake.issue_token(scopes=["oauth"]),
                     host=client.crm.deals.basic_api.api_client.configuration.host)
    attempts: list[Callable[[], Any]] = [
        lambda: client.crm.deals.basic_api.get_by_id("424242"),
        lambda: client.crm.deals.batch_api.update(BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=ids["deal"], properties={"nope": "1"})])),
        lambda: narrow.crm.deals.basic_api.get_by_id(ids["deal"]),
    ]
    for attempt in attempts:
        with pytest.raises(DealsApiException):
            attempt()
        call = last_call(fake)
        assert call.status in (400, 403, 404)
        assert schema_problems("deals-v3.json", "Error", call.response_json()) == []


def test_207_errors_match_standard_error(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    client.crm.deals.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": "1"}], properties=[], properties_with_history=[]))
    (error,) = last_call(fake).response_json()["errors"]
    assert schema_problems("deals-v3.json", "StandardError", error) == []


# ----- developer webhook settings ---------------------------------------------------


def test_webhook_settings_and_subscriptions(hs: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = hs
    host = client.crm.deals.basic_api.api_client.configuration.host
    dev = HubSpot(api_key=fake.developer_api_key, host=host)
    app_id = fake.app_id
    dev.webhooks.settings_api.configure(app_id, SettingsChangeRequest(
        target_url="https://paydeck.test/webhooks/hubspot",
        throttling=ThrottlingSettings(max_concurrent_requests=10)))
    calls = [last_call(fake)]
    dev.webhooks.settings_api.get_all(app_id)
    calls.append(last_call(fake))
    dev.webhooks.subscriptions_api.create(app_id, SubscriptionCreateRequest(
        event_type="deal.propertyChange", property_name="dealstage", active=True))
    calls.append(last_call(fake))
    dev.webhooks.subscriptions_api.get_all(app_id)
    calls.append(last_call(fake))
    for call in calls:
        assert call.status in (200, 201)
        validate_call(call)
