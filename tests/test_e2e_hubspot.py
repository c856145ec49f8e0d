"""End to end over real HTTP: a HubSpot deal moved to Closed Won -> signed webhook -> worker ->
invoice in the fake Xero -> invoice number, status and link on the HubSpot deal."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.queueing import QUEUE
from app.models import Installation, InstallationSettings, StageAction, StageRule
from app.redis_conn import get_redis
from app.worker import PaydeckSimpleWorker
from tests.conftest import fake_settings


def work(app):
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def test_a_deal_won_in_hubspot_becomes_a_xero_invoice_shown_on_the_deal(
        app_factory, fake_hubspot, fake_xero, browser):
    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(hubspot_app_id=str(hubspot.app_id),
                                 **fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    assert browser.get(f"{url}/install/hubspot").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    work(app)  # the install's setup job creates the Paydeck deal properties
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.add(StageRule(installation_id=installation.id, pipeline_id="default",
                                 stage_id="closedwon", action=StageAction.AUTHORISE))
        db.session.commit()
    hubspot.subscribe(f"{url}/webhooks/hubspot", hubspot.client_secret)
    company = hubspot.crm.add_company(name="Initech Pty Ltd", domain="initech.example")
    contact = hubspot.crm.add_contact(company_id=company, firstname="Pat", lastname="Buyer",
                                      email="ap@initech.example")
    product = hubspot.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    deal_id = hubspot.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                                   line_items=[{"hs_product_id": product, "quantity": "2"}])
    hubspot.deliver()  # creation events: not in a trigger stage, answered and dropped

    hubspot.crm.set_deal_properties(deal_id, dealstage="closedwon")
    deliveries = hubspot.deliver()
    work(app)

    assert [d.status for d in deliveries] == [200]
    (invoice,) = xero.accounting(tenant).invoices
    assert re.fullmatch(rf"HubSpot \S+ deal {deal_id}", invoice.reference) and invoice.status == "AUTHORISED"
    assert invoice.total == Decimal("330.00")
    contact_in_xero = xero.accounting(tenant).contact(invoice.contact_id)
    assert (contact_in_xero.name, contact_in_xero.email_address) == ("Initech Pty Ltd", "ap@initech.example")
    deal = hubspot.crm.deal(deal_id)
    assert deal["paydeck_invoice_number"] == invoice.invoice_number
    assert deal["paydeck_invoice_status"] == "Awaiting payment"
    assert invoice.invoice_id in deal["paydeck_invoice_url"]
    assert Decimal(deal["paydeck_amount_due"]) == Decimal("330.00")
    # The writeback changed Paydeck's own properties only: no stage event, no second invoice.
    assert hubspot.deliver() == []
    work(app)
    assert len(xero.accounting(tenant).invoices) == 1
