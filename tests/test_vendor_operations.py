"""Each vendor operation Paydeck calls (docs/vendor-operations.md), against a fake that enforces
the vendor's rules for it: Paydeck's own call passes, and a request that lacks a required field,
has a wrong type or breaks a documented limit is refused in that vendor's error shape.

Error shapes: Pipedrive `{"success": false, "error": ...}` (pipedrive/client-nodejs v2
models' failure responses); HubSpot `{"status": "error", "category": "VALIDATION_ERROR", ...}`
(the specs' `Error` schema); Xero `{"ErrorNumber", "Type", "Message"}`, with `Elements` for a
ValidationException (xero_accounting.yaml `Error`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import requests

from app.connections import xero_client
from app.extensions import db
from app.models import XeroConnection
from app.wiring import adapter_for
from domain.crm import InvoiceFields
from tests.test_vendor_paging import hubspot_env, installation, pipedrive_env  # noqa: F401
from tests.test_xero_wire import draft, xero  # noqa: F401
from xero.client import NewContact

TIMEOUT = 5


def crm_raw(app: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    """One call straight to the installed CRM's API with the installation's token."""
    with app.app_context():
        row = installation()
        base, token = row.api_domain, row.access_token
    return requests.request(method, f"{base}{path}", headers={"Authorization": f"Bearer {token}"},
                            timeout=TIMEOUT, **kwargs)


def pipedrive_refused(answer: requests.Response, words: str) -> None:
    body = answer.json()
    assert answer.status_code == 400 and body["success"] is False, body
    assert words in body["error"], body


def hubspot_refused(answer: requests.Response, words: str) -> None:
    body = answer.json()
    assert answer.status_code == 400, body
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR"), body
    assert words in body["message"], body


# ===== Pipedrive =================================================================================

def _pipedrive_deal(pipedrive: Any) -> int:
    org = pipedrive.api.add_org("Initech Pty Ltd", address={"locality": "Sydney"})
    person = pipedrive.api.add_person("Pat Buyer", email="pat@initech.example", org_id=org)
    product = pipedrive.api.add_product("Consulting", code="CONS-1", price=Decimal("150.00"))
    return pipedrive.api.add_deal("Website", org_id=org, person_id=person, products=[
        {"product_id": product, "quantity": 2, "item_price": Decimal("150.00")}])


def test_pipedrive_deal_reads(pipedrive_env):  # noqa: F811
    """GET /api/v2/deals?ids, /deals/products?deal_ids, /products, /organizations and
    /persons ?ids: `deal_ids` required, at most 100 ids, `limit` at most 500, integer ids
    (pipedrive/client-nodejs src/versions/v2/api/deal-products-api.ts getDealsProducts;
    deals-api.ts getDeals)."""
    app, pipedrive, _ = pipedrive_env
    deal_id = _pipedrive_deal(pipedrive)
    with app.app_context():
        deal = adapter_for("pipedrive").fetch_deals(installation(), [str(deal_id)])[str(deal_id)]
    assert deal is not None and len(deal.lines) == 1 and deal.organisation and deal.person

    pipedrive_refused(crm_raw(app, "GET", "/api/v2/deals/products"), "deal_ids is required")
    pipedrive_refused(crm_raw(app, "GET", "/api/v2/deals/products",
                                    params={"deal_ids": ",".join(map(str, range(1, 102)))}),
                      "at most 100")
    pipedrive_refused(crm_raw(app, "GET", "/api/v2/deals/products",
                                    params={"deal_ids": str(deal_id), "limit": 501}),
                      "limit must be at most 500")
    pipedrive_refused(crm_raw(app, "GET", "/api/v2/deals", params={"ids": "1,x"}),
                      "must be a comma separated list of integers")
    pipedrive_refused(crm_raw(app, "GET", "/api/v2/persons", params={"ids": "x"}),
                      "must be a positive integer")


def test_pipedrive_deal_patch(pipedrive_env):  # noqa: F811
    """PATCH /api/v2/deals/{id}: custom fields under `custom_fields` (v2
    UpdateDealRequest), each an existing field with a value of its type."""
    app, pipedrive, _ = pipedrive_env
    deal_id = _pipedrive_deal(pipedrive)
    with app.app_context():
        codes = dict(installation().crm_fields)
        adapter_for("pipedrive").write_invoice_fields(installation(), [InvoiceFields(
            deal_id=str(deal_id), invoice_number="INV-0042", amount_due="330.00")])
    assert pipedrive.api.deal(deal_id).custom_fields[codes["invoice_number"]] == "INV-0042"

    path = f"/api/v2/deals/{deal_id}"
    pipedrive_refused(crm_raw(app, "PATCH", path, json={codes["invoice_number"]: "x"}),
                      "custom fields go under custom_fields")
    pipedrive_refused(crm_raw(app, "PATCH", path, json={"custom_fields": {"f" * 40: "x"}}),
                      "Unknown custom field")
    answer = crm_raw(app, "PATCH", path, json={"custom_fields": {codes["amount_due"]: "lots"}})
    assert answer.status_code == 400 and answer.json()["success"] is False


def test_pipedrive_deal_fields(pipedrive_env):  # noqa: F811
    """GET /api/v2/dealFields (paged) and POST /api/v2/dealFields: `field_name` and
    `field_type` required (client-nodejs src/versions/v2/models/add-deal-field-request.ts)."""
    app, pipedrive, _ = pipedrive_env
    with app.app_context():
        codes = adapter_for("pipedrive").ensure_deal_fields(installation())
    assert set(codes) >= {"invoice_number", "invoice_status", "invoice_url"}

    pipedrive_refused(crm_raw(app, "POST", "/api/v2/dealFields",
                                    json={"field_type": "varchar"}), "field_name")
    pipedrive_refused(crm_raw(app, "POST", "/api/v2/dealFields",
                                    json={"field_name": "X", "field_type": "nope"}),
                      "field_type must be one of")
    pipedrive_refused(crm_raw(app, "GET", "/api/v2/dealFields", params={"limit": 501}),
                      "limit must be at most 500")


def test_pipedrive_pipelines_stages_and_products(pipedrive_env):  # noqa: F811
    """GET /api/v2/pipelines, /stages, /products: cursor pages, `limit` at most 500, an
    opaque `cursor` the server issued (pipedrive.readme.io core-api-concepts-pagination)."""
    app, pipedrive, _ = pipedrive_env
    pipedrive.api.add_product("Consulting", code="CONS-1", price=Decimal("150.00"))
    with app.app_context():
        (pipeline,) = adapter_for("pipedrive").list_pipelines(installation())
        products = adapter_for("pipedrive").list_products(installation())
    assert len(pipeline["stages"]) == 5 and [p["sku"] for p in products] == ["CONS-1"]

    for path in ("/api/v2/pipelines", "/api/v2/stages", "/api/v2/products"):
        pipedrive_refused(crm_raw(app, "GET", path, params={"limit": 501}),
                          "limit must be at most 500")
    pipedrive_refused(crm_raw(app, "GET", "/api/v2/stages", params={"cursor": "%%%"}),
                      "cursor is not valid")


def test_pipedrive_activity(pipedrive_env):  # noqa: F811
    """POST /api/v2/activities: `subject` required; deal_id an existing deal (v2
    AddActivityRequest)."""
    app, pipedrive, _ = pipedrive_env
    deal_id = _pipedrive_deal(pipedrive)
    with app.app_context():
        adapter_for("pipedrive").notify_owner(installation(), str(deal_id), None, "Check", "Body")
    assert [a.subject for a in pipedrive.api.activities()] == ["Check"]

    pipedrive_refused(crm_raw(app, "POST", "/api/v2/activities",
                                    json={"deal_id": deal_id}), "subject")
    pipedrive_refused(crm_raw(app, "POST", "/api/v2/activities",
                                    json={"subject": "x", "deal_id": "one"}), "deal_id")


def test_pipedrive_organization_read_and_update(pipedrive_env):  # noqa: F811
    """GET and PATCH /api/v2/organizations/{id}: known fields only, address parts as text
    (client-nodejs src/versions/v2/models/update-organization-request.ts)."""
    app, pipedrive, _ = pipedrive_env
    org = pipedrive.api.add_org("Initech Pty Ltd")
    with app.app_context():
        adapter_for("pipedrive").update_company(installation(), str(org), {"city": "Sydney"})
        fields = adapter_for("pipedrive").fetch_company(installation(), str(org))
    assert fields["city"] == "Sydney"

    path = f"/api/v2/organizations/{org}"
    pipedrive_refused(crm_raw(app, "PATCH", path, json={"phone": "1"}), "Unknown field")
    pipedrive_refused(crm_raw(app, "PATCH", path, json={"address": {"town": "x"}}),
                      "Unknown address field")
    pipedrive_refused(crm_raw(app, "PATCH", path, json={"name": 7}), "name must be a string")


def test_pipedrive_organizations_for_the_initial_contact_match(pipedrive_env):  # noqa: F811
    """The initial contact match: GET /api/v2/organizations by `sort_by=id` pages, POST
    /api/v2/organizations (`name` required: client-nodejs v2 add-organization-request.ts) and
    GET /api/v2/organizations/search (`term` at least 2 characters, or 1 with `exact_match`;
    exact matches "not case sensitive": client-nodejs v2 searchOrganization)."""
    app, pipedrive, _ = pipedrive_env
    pipedrive.api.add_org("Initech Pty Ltd")
    with app.app_context():
        crm = adapter_for("pipedrive")
        ((new_id, version),) = crm.create_companies(installation(), [{"name": "Hooli"}])
        records, cursor = crm.company_page(installation(), None)
        named = crm.companies_named(installation(), ["hooli", "Nobody Ltd"])
    assert version is not None and cursor is None
    assert sorted(r.fields["name"] for r in records) == ["Hooli", "Initech Pty Ltd"]
    assert named == {"hooli": [new_id]}  # found names only, folded case

    pipedrive_refused(crm_raw(app, "POST", "/api/v2/organizations", json={"address": "x"}),
                      "name")
    pipedrive_refused(crm_raw(app, "GET", "/api/v2/organizations/search",
                              params={"term": "H", "fields": "name"}), "at least 2")


def test_pipedrive_webhooks(pipedrive_env):  # noqa: F811
    """GET and POST /api/v1/webhooks: `subscription_url`, `event_action`, `event_object`
    required (pipedrive.readme.io guide-for-webhooks-v2 "Body parameters"). The list is not
    paged (v1 returns all of the app's webhooks)."""
    app, pipedrive, _ = pipedrive_env
    # at install: deal/organization/person change and create, organization delete (merges)
    assert {w.event_action for w in pipedrive.webhooks} == {"change", "create", "delete"}

    pipedrive_refused(crm_raw(app, "POST", "/api/v1/webhooks", json={
        "event_action": "change", "event_object": "deal"}), "subscription_url")
    pipedrive_refused(crm_raw(app, "POST", "/api/v1/webhooks", json={
        "subscription_url": "https://x.example/h", "event_action": "change",
        "event_object": "deals"}), "event_object must be one of")


# ===== HubSpot ===================================================================================

def _hubspot_deal(hub: Any) -> str:
    company = hub.crm.add_company(name="Initech Pty Ltd", city="Sydney")
    contact = hub.crm.add_contact(company_id=company, firstname="Pat", email="pat@i.example")
    product = hub.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    return hub.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                            line_items=[{"hs_product_id": product, "quantity": "2"}])


def test_hubspot_batch_reads(hubspot_env):  # noqa: F811
    """POST /crm/v3/objects/{deals,companies,contacts,line_items}/batch/read: `inputs`
    required, at most 100, each with an `id`; `archived` a lowercase boolean (deals-v3.json
    BatchReadInputSimplePublicObjectId, `archived: boolean`)."""
    app, hub = hubspot_env
    deal_id = _hubspot_deal(hub)
    with app.app_context():
        deal = adapter_for("hubspot").fetch_deals(installation(), [deal_id])[deal_id]
    assert deal is not None and len(deal.lines) == 1 and deal.organisation and deal.person

    path = "/crm/v3/objects/deals/batch/read"
    hubspot_refused(crm_raw(app, "POST", path, json={"properties": []}), "inputs")
    hubspot_refused(crm_raw(app, "POST", path, json={"inputs": [{"id": str(i)} for i in range(101)]}),
                    "the limit is 100")
    hubspot_refused(crm_raw(app, "POST", path, json={"inputs": [{}]}), "needs an id")
    hubspot_refused(crm_raw(app, "POST", path, params={"archived": "False"},
                                json={"inputs": [{"id": deal_id}]}), "expected true or false")


def test_hubspot_association_batch_read(hubspot_env):  # noqa: F811
    """POST /crm/v4/associations/deals/{companies,contacts,line_items}/batch/read: `inputs`
    of `{id, after?}`, at most 1000 (changelog bug-fix-batch-read-limit-for-hubspot-
    associations-api); `after` a token the server gave."""
    app, hub = hubspot_env
    _hubspot_deal(hub)
    path = "/crm/v4/associations/deals/line_items/batch/read"
    hubspot_refused(crm_raw(app, "POST", path, json={"inputs": [{"id": str(i)} for i in range(1001)]}),
                    "the limit is 1000")
    deal_id = hub.crm.objects("deals")[0]["hs_object_id"]
    hubspot_refused(crm_raw(app, "POST", path, json={"inputs": [{"id": deal_id, "after": "x"}]}),
                    "after must be a paging token")


def test_hubspot_deal_writeback(hubspot_env):  # noqa: F811
    """POST /crm/v3/objects/deals/batch/update: `inputs` of `{id, properties}`, ids unique,
    values valid for each property's type (deals-v3.json BatchInputSimplePublicObjectBatchInput)."""
    app, hub = hubspot_env
    deal_id = _hubspot_deal(hub)
    with app.app_context():
        adapter_for("hubspot").ensure_deal_fields(installation())
        adapter_for("hubspot").write_invoice_fields(installation(), [InvoiceFields(
            deal_id=deal_id, invoice_number="INV-0042", amount_due="330.00")])
    assert hub.crm.deal(deal_id)["paydeck_invoice_number"] == "INV-0042"

    path = "/crm/v3/objects/deals/batch/update"
    hubspot_refused(crm_raw(app, "POST", path, json={"inputs": [
        {"id": deal_id, "properties": {"paydeck_amount_due": "lots"}}]}), "")
    hubspot_refused(crm_raw(app, "POST", path, json={"inputs": [
        {"id": deal_id, "properties": {}}, {"id": deal_id, "properties": {}}]}), "Duplicate IDs")
    hubspot_refused(crm_raw(app, "POST", path, json={"inputs": [
        {"id": deal_id, "properties": ["x"]}]}), "properties must be an object")


def test_hubspot_deal_properties(hubspot_env):  # noqa: F811
    """GET /crm/v3/properties/deals and /groups (not paged: CollectionResponse...NoPaging),
    POST /groups (`name`, `label` required: PropertyGroupCreate) and /batch/create
    (PropertyCreate: `name`, `label`, `type`, `fieldType`, `groupName` required)."""
    app, hub = hubspot_env
    with app.app_context():
        fields = adapter_for("hubspot").ensure_deal_fields(installation())
    assert hub.crm.property_def("deals", fields["invoice_number"]) is not None

    hubspot_refused(crm_raw(app, "POST", "/crm/v3/properties/deals/groups",
                                json={"name": "other"}), "label is required")
    answer = crm_raw(app, "POST", "/crm/v3/properties/deals/batch/create", json={"inputs": [
        {"name": "x_y", "label": "X", "type": "string", "groupName": "paydeck"}]})
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"


def test_hubspot_pipelines(hubspot_env):  # noqa: F811
    """GET /crm/v3/pipelines/deals: not paged (pipelines-v3.json
    CollectionResponsePipelineNoPaging); only object types with pipelines."""
    app, hub = hubspot_env
    with app.app_context():
        pipelines = adapter_for("hubspot").list_pipelines(installation())
    assert pipelines and pipelines[0]["stages"]

    hubspot_refused(crm_raw(app, "GET", "/crm/v3/pipelines/contacts"),
                    "does not support pipelines")


def test_hubspot_products(hubspot_env):  # noqa: F811
    """GET /crm/v3/objects/products: `limit` 1-100 (default 10), `after`, `archived` a
    lowercase boolean (products-v3.json)."""
    app, hub = hubspot_env
    hub.crm.add_product(name="Consulting", hs_sku="CONS-1")
    with app.app_context():
        assert [p["sku"] for p in adapter_for("hubspot").list_products(installation())] == ["CONS-1"]

    path = "/crm/v3/objects/products"
    hubspot_refused(crm_raw(app, "GET", path, params={"limit": 101}), "between 1 and 100")
    hubspot_refused(crm_raw(app, "GET", path, params={"archived": "True"}),
                    "expected true or false")


def test_hubspot_task(hubspot_env):  # noqa: F811
    """POST /crm/v3/objects/tasks: `properties` an object, associations with `to.id` and
    `types` of a known association type."""
    app, hub = hubspot_env
    deal_id = _hubspot_deal(hub)
    with app.app_context():
        task_id = adapter_for("hubspot").notify_owner(installation(), deal_id, None, "Check", "Body")
    assert hub.crm.object_properties("tasks", task_id)["hs_task_subject"] == "Check"

    path = "/crm/v3/objects/tasks"
    hubspot_refused(crm_raw(app, "POST", path, json={"properties": {"hs_task_subject": "x"},
                                                         "associations": [{"to": {"id": deal_id}}]}),
                    "each association needs to.id and types")
    hubspot_refused(crm_raw(app, "POST", path, json={"properties": "x"}),
                    "properties must be an object")


def test_hubspot_company_read_and_update(hubspot_env):  # noqa: F811
    """GET and PATCH /crm/v3/objects/companies/{id}: `archived` a lowercase boolean;
    `properties` an object of strings (companies-v3.json SimplePublicObjectInput)."""
    app, hub = hubspot_env
    company = hub.crm.add_company(name="Initech Pty Ltd")
    with app.app_context():
        adapter_for("hubspot").update_company(installation(), company, {"city": "Sydney"})
        assert adapter_for("hubspot").fetch_company(installation(), company)["city"] == "Sydney"
    assert any("archived=false" in c.query for c in hub.crm_calls
               if c.path == f"/crm/v3/objects/companies/{company}")

    path = f"/crm/v3/objects/companies/{company}"
    hubspot_refused(crm_raw(app, "GET", path, params={"archived": "False"}),
                    "expected true or false")
    hubspot_refused(crm_raw(app, "PATCH", path, json={"properties": {"city": ["x"]}}),
                    "property city must be a string")


# ===== Xero ======================================================================================

def _client(app: Any, connection_id: int):
    return xero_client(db.session.get(XeroConnection, connection_id))


def test_xero_reference_data(xero):  # noqa: F811
    """GET /Organisation, /Accounts, /TaxRates, /Items, /Currencies: the `xero-tenant-id`
    header is required on every accounting call (xero_accounting.yaml, each operation's
    `xero-tenant-id` parameter: `required: true`)."""
    app, connection_id, _, tenant, raw = xero
    with app.app_context():
        ref = _client(app, connection_id).reference_data()
    assert ref.base_currency == "AUD" and "200" in ref.accounts and "OUTPUT" in ref.tax_rates

    answer = raw("GET", "/Organisation", headers={"xero-tenant-id": ""})
    assert answer.status_code == 403 and answer.json()["Detail"] == "AuthenticationUnsuccessful"


def test_xero_contact_reads(xero):  # noqa: F811
    """GET /Contacts (`page`, `pageSize`, `includeArchived`, `summaryOnly`, `searchTerm`,
    `order`, If-Modified-Since; booleans lowercase) and GET /Contacts/{ContactID} (a GUID:
    Xero's 404 is plain text)."""
    app, connection_id, fake, tenant, raw = xero
    contact_id = fake.accounting(tenant).add_contact("Initech Pty Ltd").contact_id
    with app.app_context():
        client = _client(app, connection_id)
        assert [c.name for c in client.search_contacts("Initech")] == ["Initech Pty Ltd"]
        assert client.get_contact(contact_id).name == "Initech Pty Ltd"

    answer = raw("GET", "/Contacts", params={"includeArchived": "True"})
    assert answer.status_code == 400 and answer.json()["Type"] == "PostDataInvalidException"
    answer = raw("GET", "/Contacts", params={"pageSize": "many"})
    assert answer.status_code == 400 and answer.json()["Type"] == "PostDataInvalidException"
    missing = raw("GET", "/Contacts/6f1e3e5e-4b1c-4c8e-9e57-3f4b9a7c1d20")
    assert missing.status_code == 404 and missing.text.startswith("The resource")


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_xero_invoice_writes(xero, method):  # noqa: F811
    """PUT /Invoices (create) and POST /Invoices (create or update): the body required,
    read-only fields refused, Type/Contact/LineItems required to create, spec types."""
    app, connection_id, fake, tenant, raw = xero
    contact_id = fake.accounting(tenant).add_contact("Initech Pty Ltd").contact_id
    with app.app_context():
        client = _client(app, connection_id)
        (made,) = client.create_invoices([draft(contact_id=contact_id, status="DRAFT")], "k-1")
        (updated,) = client.update_invoices([(made.invoice_id, draft(contact_id=contact_id))], "k-2")
    assert updated.status == "AUTHORISED" and not updated.errors

    assert raw(method, "/Invoices", params={"summarizeErrors": "false"}).json()["Type"] == \
        "PostDataInvalidException"  # no body
    answer = raw(method, "/Invoices", params={"summarizeErrors": "false"}, json={"Invoices": [{
        "Type": "ACCREC", "Contact": {"ContactID": contact_id}, "LineItems": [], "Total": 1}]})
    assert answer.status_code == 400 and answer.json()["Type"] == "ValidationException"


def test_xero_invoice_reads(xero):  # noqa: F811
    """GET /Invoices: `where` in Xero's filter grammar, `IDs` a comma list, `page`/`pageSize`,
    `summaryOnly` a lowercase boolean, If-Modified-Since an HTTP date."""
    app, connection_id, fake, tenant, raw = xero
    contact_id = fake.accounting(tenant).add_contact("Initech Pty Ltd").contact_id
    with app.app_context():
        client = _client(app, connection_id)
        (made,) = client.create_invoices([draft(contact_id=contact_id)], "k-1")
        assert list(client.invoices_by_reference(["HubSpot deal 1"])) == ["HubSpot deal 1"]
        assert [i.invoice_id for i in client.invoices_by_ids([made.invoice_id])] == [made.invoice_id]
        since = datetime.now(timezone.utc) - timedelta(days=1)
        assert [len(page) for page in client.invoices_changed_since(since)] == [1]

    assert raw("GET", "/Invoices", params={"where": 'Total>"1"'}).json()["Type"] == \
        "QueryParseException"
    assert raw("GET", "/Invoices", params={"summaryOnly": "True"}).json()["Type"] == \
        "PostDataInvalidException"
    assert raw("GET", "/Invoices", headers={"If-Modified-Since": "yesterday"}).status_code == 400


def test_xero_online_invoice_and_email(xero):  # noqa: F811
    """GET /Invoices/{InvoiceID}/OnlineInvoice (not for drafts: platform-facts) and
    POST /Invoices/{InvoiceID}/Email (`requestBody` required: RequestEmpty `{}`)."""
    app, connection_id, fake, tenant, raw = xero
    contact = fake.accounting(tenant).add_contact("Initech Pty Ltd", EmailAddress="ap@i.example")
    with app.app_context():
        client = _client(app, connection_id)
        (made,) = client.create_invoices([draft(contact_id=contact.contact_id)], "k-1")
        (drafted,) = client.create_invoices([draft(contact_id=contact.contact_id, status="DRAFT",
                                                   reference="HubSpot deal 2")], "k-2")
        assert client.online_invoice_url(made.invoice_id).startswith("https://in.xero.com/")
        client.email_invoice(made.invoice_id)
    assert len(fake.accounting(tenant).emailed) == 1

    answer = raw("GET", f"/Invoices/{drafted.invoice_id}/OnlineInvoice")
    assert answer.status_code == 400 and answer.json()["Type"] == "ValidationException"
    answer = raw("POST", f"/Invoices/{made.invoice_id}/Email")
    assert answer.status_code == 400 and answer.json()["Type"] == "PostDataInvalidException"
    assert len(fake.accounting(tenant).emailed) == 1


def test_xero_contact_create(xero):  # noqa: F811
    """PUT /Contacts: `Contacts` body required, read-only fields refused, spec types; a
    contact needs a Name (developer.xero.com/documentation/api/accounting/contacts)."""
    app, connection_id, fake, tenant, raw = xero
    with app.app_context():
        (made,) = _client(app, connection_id).create_contacts([NewContact(name="Initech Pty Ltd")])
    assert made.contact_id and not made.errors

    answer = raw("PUT", "/Contacts", params={"summarizeErrors": "false"},
                 json={"Contacts": [{"Name": "X", "Website": "https://x.example"}]})
    assert answer.status_code == 400 and answer.json()["Type"] == "ValidationException"
    answer = raw("PUT", "/Contacts", params={"summarizeErrors": "false"},
                 json={"Contacts": [{"Name": "X", "Phones": {"PhoneNumber": "1"}}]})
    assert answer.json()["Elements"][0]["ValidationErrors"][0]["Message"] == \
        "Phones must be of type array"
    answer = raw("PUT", "/Contacts", params={"summarizeErrors": "false"},
                 json={"Contacts": [{"EmailAddress": "x@y.example"}]})
    assert answer.status_code == 200 and answer.json()["Contacts"][0]["HasValidationErrors"] is True
    assert [c.name for c in fake.accounting(tenant).contacts] == ["Initech Pty Ltd"]
