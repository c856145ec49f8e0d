"""End to end over real HTTP: a Pipedrive deal moved to the trigger stage -> webhook -> worker
-> invoice in the fake Xero -> invoice number, status and link on the Pipedrive deal."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.queueing import QUEUE
from app.models import Installation, InstallationSettings, StageAction, StageRule, XeroConnection
from app.redis_conn import get_redis
from app.worker import PaydeckSimpleWorker
from tests.conftest import fake_settings


def work(app):
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def test_a_deal_won_in_pipedrive_becomes_a_xero_invoice_shown_on_the_deal(
        app_factory, fake_pipedrive, fake_xero, browser):
    pipedrive, _ = fake_pipedrive
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive, xero=fake_xero))
    assert browser.get(f"{url}/install/pipedrive").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    work(app)  # the install's setup job: Paydeck's deal fields and webhooks
    won = pipedrive.api.stage_id("Won")
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        assert set(installation.crm_fields) >= {"invoice_number", "invoice_status", "invoice_url"}
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.add(StageRule(installation_id=installation.id, pipeline_id="1",
                                 stage_id=str(won), action=StageAction.AUTHORISE))
        db.session.commit()
        fields = dict(installation.crm_fields)
    assert {w.event_action for w in pipedrive.webhooks} == {"change", "create", "delete"}
    org = pipedrive.api.add_org("Initech Pty Ltd")
    person = pipedrive.api.add_person("Pat Buyer", email="ap@initech.example", org_id=org)
    product = pipedrive.api.add_product("Consulting", code="CONS-1", price=Decimal("150.00"))
    deal_id = pipedrive.api.add_deal("Website", org_id=org, person_id=person,
                                     products=[{"product_id": product, "quantity": 2,
                                                "item_price": Decimal("150.00"),
                                                # Pipedrive puts 10% on top: Xero's OUTPUT (10%)
                                                "tax": Decimal(10), "tax_method": "exclusive"}])
    pipedrive.deliver()  # the create event: not a trigger stage, answered and dropped

    pipedrive.api.move_deal(deal_id, won)
    deliveries = pipedrive.deliver()
    work(app)

    assert [d.status for d in deliveries] == [200]
    (invoice,) = xero.accounting(tenant).invoices
    assert re.fullmatch(rf"Pipedrive \S+ deal {deal_id}", invoice.reference) and invoice.status == "AUTHORISED"
    assert invoice.total == Decimal("330.00")
    assert xero.accounting(tenant).contact(invoice.contact_id).name == "Initech Pty Ltd"
    custom = pipedrive.api.deal(deal_id).custom_fields
    assert custom[fields["invoice_number"]] == invoice.invoice_number
    assert custom[fields["invoice_status"]] == "Awaiting payment"
    assert invoice.invoice_id in custom[fields["invoice_url"]]
    # Paydeck's own writeback fired change webhooks; they are not stage changes: no loop.
    pipedrive.deliver()
    work(app)
    assert len(xero.accounting(tenant).invoices) == 1
    with app.app_context():
        assert db.session.scalars(select(XeroConnection)).one().tenant_id == tenant

