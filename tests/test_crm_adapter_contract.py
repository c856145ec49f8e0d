"""One contract, every CRM adapter: the same behaviour against each CRM's fake, over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import QUEUE
from app.models import Installation, InstallationSettings
from app.settings import PIPEDRIVE_SCOPES
from app.redis_conn import get_redis
from app.worker import PaydeckSimpleWorker
from app.wiring import adapter_for
from domain.crm import InvoiceFields, WebhookRejected, WebhookRequest
from crm_adapters.base import CrmError
from sandbox.hubspot import FakeHubSpot
from sandbox.pipedrive import FakePipedrive
from sandbox.kit.server import LoopbackServer
from tests.conftest import fake_settings


@dataclass
class Crm:
    name: str
    fake: Any
    app: Any
    url: str
    deal_id: str = ""
    company_id: str = ""
    read_field: Callable[[str, str], Any] = lambda deal_id, attr: None

    def installation(self) -> Installation:
        return db.session.scalars(select(Installation)).one()


def _hubspot(crm: Crm) -> None:
    hub = crm.fake
    company = hub.crm.add_company(name="Initech Pty Ltd", phone="+61 2 5550 1234", city="Sydney")
    crm.company_id = company
    contact = hub.crm.add_contact(company_id=company, firstname="Pat", lastname="Buyer",
                                  email="pat@initech.example")
    product = hub.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    crm.deal_id = hub.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                                   line_items=[{"hs_product_id": product, "quantity": "2"}],
                                   deal_currency_code="AUD")
    crm.read_field = lambda deal_id, attr: hub.crm.deal(deal_id).get(f"paydeck_{attr}")


def _pipedrive(crm: Crm) -> None:
    pd = crm.fake
    org = pd.api.add_org("Initech Pty Ltd", address={"locality": "Sydney"})
    crm.company_id = str(org)
    person = pd.api.add_person("Pat Buyer", email="pat@initech.example", org_id=org)
    product = pd.api.add_product("Consulting", code="CONS-1", price=Decimal("150.00"))
    crm.deal_id = str(pd.api.add_deal("Website", org_id=org, person_id=person, currency="AUD",
                                      products=[{"product_id": product, "quantity": 2,
                                                 "item_price": Decimal("150.00")}]))
    with crm.app.app_context():
        codes = crm.installation().crm_fields
    crm.read_field = lambda deal_id, attr: pd.api.deal(int(deal_id)).custom_fields.get(codes[attr])


@pytest.fixture(params=["hubspot", "pipedrive"])
def crm(request, app_factory, browser):
    fake = (FakeHubSpot() if request.param == "hubspot"
            else FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split())))
    with LoopbackServer(fake) as server:
        app, url = app_factory.serve(**fake_settings(**{request.param: (fake, server.url)}),
                                     hubspot_app_id=str(getattr(fake, "app_id", "")))
        assert browser.get(f"{url}/install/{request.param}").status_code == 200
        with app.app_context():
            PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)  # setup
        c = Crm(request.param, fake, app, url)
        (_hubspot if request.param == "hubspot" else _pipedrive)(c)
        yield c


def test_fetch_deals_normalises_deal_lines_company_and_person(crm):
    with crm.app.app_context():
        deals = adapter_for(crm.name).fetch_deals(crm.installation(), [crm.deal_id, "999999"])

    deal = deals[crm.deal_id]
    assert deals["999999"] is None
    assert (deal.name, deal.currency) == ("Website", "AUD")
    assert [(l.name, l.quantity, l.unit_price, l.sku) for l in deal.lines] == [
        ("Consulting", Decimal("2"), Decimal("150.00"), "CONS-1")]
    assert deal.organisation.name == "Initech Pty Ltd" and deal.organisation.address.city == "Sydney"
    assert (deal.person.name, deal.person.email) == ("Pat Buyer", "pat@initech.example")
    assert deal.stage_id


def test_a_won_deal_carries_the_moment_it_was_won(crm):
    """The invoice is dated with it (HubSpot sets `closedate` when a deal enters a closed
    stage; Pipedrive sets `won_time` when its status becomes won)."""
    if crm.name == "hubspot":  # an open deal's closedate is a forecast, not the deal's date
        crm.fake.crm.set_deal_properties(crm.deal_id, closedate="2026-01-31T00:00:00.000Z")
    with crm.app.app_context():
        before = adapter_for(crm.name).fetch_deals(crm.installation(), [crm.deal_id])[crm.deal_id]
    assert before.closed_at is None
    if crm.name == "hubspot":
        crm.fake.crm.set_deal_properties(crm.deal_id, dealstage="closedwon")
    else:
        crm.fake.api.update_deal(int(crm.deal_id), status="won")

    with crm.app.app_context():
        won = adapter_for(crm.name).fetch_deals(crm.installation(), [crm.deal_id])[crm.deal_id]

    assert won.closed_at is not None and won.closed_at.utcoffset() == timedelta(0)
    assert abs(won.closed_at - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_invoice_fields_written_back_are_on_the_deal(crm):
    update = InvoiceFields(deal_id=crm.deal_id, invoice_number="INV-0042", invoice_status="AUTHORISED",
                           amount_due="330.00", due_date="2026-12-21",
                           invoice_url="https://go.xero.com/x")
    with crm.app.app_context():
        adapter_for(crm.name).write_invoice_fields(crm.installation(), [update])

    assert crm.read_field(crm.deal_id, "invoice_number") == "INV-0042"
    assert crm.read_field(crm.deal_id, "invoice_status") == "AUTHORISED"
    assert Decimal(str(crm.read_field(crm.deal_id, "amount_due"))) == Decimal("330.00")


def test_deal_fields_setup_is_idempotent(crm):
    with crm.app.app_context():
        installation = crm.installation()
        first = adapter_for(crm.name).ensure_deal_fields(installation)
        again = adapter_for(crm.name).ensure_deal_fields(installation)

    assert first == again and {"invoice_number", "invoice_status", "invoice_url"} <= set(first)


def test_pipelines_have_ordered_stages_and_products_are_listed(crm):
    with crm.app.app_context():
        pipelines = adapter_for(crm.name).list_pipelines(crm.installation())
        products = adapter_for(crm.name).list_products(crm.installation())

    assert pipelines and all(p["stages"] for p in pipelines)
    assert {"name": "Consulting", "sku": "CONS-1"}.items() <= products[0].items()


def test_a_forged_webhook_is_rejected(crm):
    req = WebhookRequest("POST", f"{crm.url}/webhooks/{crm.name}", {"Content-Type": "application/json"},
                         b"[]")
    with crm.app.app_context(), pytest.raises(WebhookRejected) as caught:
        adapter_for(crm.name).verify_webhook(req, crm.installation())

    assert caught.value.status == 401


def test_notify_owner_leaves_a_task_on_the_deal(crm):
    with crm.app.app_context():
        task_id = adapter_for(crm.name).notify_owner(
            crm.installation(), crm.deal_id, None, "Invoice INV-0042 is overdue", "330.00 AUD due")

    if crm.name == "hubspot":
        (task,) = crm.fake.crm.objects("tasks")
        assert task["hs_task_subject"] == "Invoice INV-0042 is overdue"
        assert crm.fake.crm.associated_ids("tasks", task_id, "deals") == [crm.deal_id]
    else:
        (activity,) = crm.fake.api.activities()
        assert (str(activity.id), activity.subject, str(activity.deal_id)) == (
            task_id, "Invoice INV-0042 is overdue", crm.deal_id)


def test_companies_are_read_and_written_in_the_neutral_vocabulary(crm):
    if crm.name == "hubspot":
        crm.fake.crm.add_property("companies", "abn", "ABN")
        tax_field = "abn"
    else:
        tax_field = crm.fake.api.add_org_field("ABN")
    adapter = adapter_for(crm.name)
    with crm.app.app_context():
        installation = crm.installation()
        without_tax = adapter.fetch_company(installation, crm.company_id)
        db.session.get(InstallationSettings, installation.id).tax_number_property = tax_field
        db.session.commit()
        before = adapter.fetch_company(installation, crm.company_id)
        adapter.update_company(installation, crm.company_id, {
            "street": "1 Main St", "postal_code": "2000", "website": "https://initech.example",
            "tax_number": "51 824 753 556"})
        after = adapter.fetch_company(installation, crm.company_id)
        with pytest.raises(CrmError) as missing:
            adapter.fetch_company(installation, "999999")
        with pytest.raises(ValueError):
            adapter.update_company(installation, crm.company_id, {"domain": "initech.example"})

    assert "tax_number" not in without_tax  # no tax field configured
    assert (before["name"], before["city"], before["street"], before["tax_number"]) == (
        "Initech Pty Ltd", "Sydney", "", "")
    assert (after["street"], after["postal_code"], after["website"], after["tax_number"]) == (
        "1 Main St", "2000", "https://initech.example", "51 824 753 556")
    assert after["city"] == "Sydney" and after["name"] == "Initech Pty Ltd"  # others untouched
    assert missing.value.status == 404
    assert ("phone" in before) == (crm.name == "hubspot")  # Pipedrive organizations have none
