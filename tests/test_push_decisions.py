"""The card never says what is not true (issue #14, part 1): a push is decided before it is
enqueued (app/engine/push.py), says draft or approved and why, refuses with the fix when it
cannot work, a voided invoice is re-invoiced as a new linked invoice, a paid one offers no
push, and an installation's reconnect_needed item is a banner on every card."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import (ConnectionStatus, DealSyncRequest, Installation, InstallationSettings,
                        InvoiceLink, InvoiceLinkState, ReviewItem, ReviewReason, StageAction,
                        StageRule, XeroConnection)
from app.queueing import QUEUE
from app.redis_conn import get_redis
from app.worker import PaydeckSimpleWorker
from tests.conftest import fake_settings
from tests.helpers import form_fields
from tests.test_cards import INSTALLER, card_get

PUSH_PATH = "/ui/deal/{}/push"


@pytest.fixture
def deal(app_factory, fake_hubspot, fake_xero, browser):
    """A HubSpot installation connected to a fake Xero, one deal (stage appointmentscheduled,
    no rule), and helpers."""
    hubspot, _ = fake_hubspot
    tenant = fake_xero[0].add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(hubspot_app_id=str(hubspot.app_id),
                                 **fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    browser.get(f"{url}/install/hubspot")
    browser.get(f"{url}/connect/xero")
    work(app)
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.commit()
    company = hubspot.crm.add_company(name="Initech")
    contact = hubspot.crm.add_contact(company_id=company, firstname="Pat", email="ap@initech.example")
    product = hubspot.crm.add_product(name="Consulting", price="150.00")
    deal_id = hubspot.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                                   line_items=[{"hs_product_id": product, "quantity": "2"}])

    class Deal:
        id = deal_id

        def card(self, user=INSTALLER, object_type="deals", object_id=None):
            return card_get(url, hubspot.client_secret, {
                "portalId": hubspot.portal_id, "objectType": object_type,
                "objectId": object_id or deal_id, "userEmail": user}).json()

        def page(self, user=INSTALLER):
            return requests.get(self.card(user)["open_url"], timeout=10)

        def push(self, page_text, **override):
            fields = {**form_fields(page_text, PUSH_PATH.format(deal_id)), **override}
            return requests.post(f"{url}{PUSH_PATH.format(deal_id)}", data=fields, timeout=10)

    d = Deal()
    d.app, d.url, d.hubspot, d.xero, d.tenant = app, url, hubspot, fake_xero[0], tenant
    return d


def work(app):
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def requests_waiting(app):
    with app.app_context():
        return db.session.scalars(select(DealSyncRequest)).all()


def text(response):
    return html.unescape(response.text)


def set_rule(app, stage_id, action, draft_first=False):
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        db.session.add(StageRule(installation_id=installation.id, pipeline_id="default",
                                 stage_id=stage_id, action=action))
        db.session.get(InstallationSettings, installation.id).draft_first = draft_first
        db.session.commit()


def the_link(app):
    with app.app_context():
        return db.session.scalars(select(InvoiceLink).where(InvoiceLink.trigger == "deal")).one()


# --- draft or approved, and why --------------------------------------------------------------

def test_a_stage_with_no_rule_pushes_a_draft_and_the_confirmation_says_so(deal):
    page = deal.page()
    says = text(page)
    assert "Create a draft invoice in Xero? The deal's stage has no invoice rule" in says
    assert 'name="kind" value="create"' in page.text

    pushed = deal.push(page.text)
    work(deal.app)

    assert "Creating a draft invoice in Xero: the deal's stage has no invoice rule" in text(pushed)
    assert the_link(deal.app).status == "DRAFT"


def test_a_stage_rule_decides_and_draft_first_turns_it_into_a_draft(deal):
    set_rule(deal.app, "appointmentscheduled", StageAction.AUTHORISE_AND_EMAIL)
    says = text(deal.page())
    assert ("Create an approved invoice, emailed to the customer in Xero? The rule for the deal's "
            "stage is \u201capprove and email\u201d") in says

    set_rule(deal.app, "qualifiedtobuy", StageAction.AUTHORISE, draft_first=True)
    says = text(deal.page())
    assert "Create a draft invoice in Xero?" in says and "draft-first is on" in says

    with deal.app.app_context():
        db.session.scalars(select(InstallationSettings)).one().draft_first = False  # ids differ on PostgreSQL
        db.session.commit()
    pushed = deal.push(deal.page().text)
    work(deal.app)
    assert "Creating an approved invoice, emailed to the customer in Xero" in text(pushed)
    assert the_link(deal.app).status == "AUTHORISED"
    assert requests_waiting(deal.app) == []


# --- nothing happens, and the page says why and what fixes it ----------------------------------

@pytest.mark.parametrize("status, words, fix", [
    (ConnectionStatus.DISCONNECTED, "Xero is not connected: an admin connects it", True),
    (ConnectionStatus.PENDING_TENANT, "Xero is connected to several organisations", True),
    (ConnectionStatus.RECONNECT_NEEDED, "Xero connection lost: token revoked. Connect to Xero again.", True),
])
def test_a_push_xero_cannot_take_is_not_enqueued_and_names_the_fix(deal, status, words, fix):
    page = deal.page()  # drawn while Xero was connected
    with deal.app.app_context():
        connection = db.session.scalars(select(XeroConnection)).one()
        connection.status, connection.status_detail = status, "token revoked"
        db.session.commit()

    pushed = deal.push(page.text)

    assert words in text(pushed) and "Nothing was sent." in text(pushed)
    assert "The card updates" not in text(pushed) and "Sent to Xero" not in text(pushed)
    assert requests_waiting(deal.app) == []
    again = deal.page()
    assert f'action="{PUSH_PATH.format(deal.id)}"' not in again.text  # no button that does nothing
    assert ("Open Paydeck's settings" in text(again)) is fix  # the installer's reconnect link
    assert "/ui/settings/" in again.text
    rep = deal.page(user="rep@example.com")  # a rep cannot open the settings: no link for them
    assert rep.status_code == 200 and "/ui/settings/" not in rep.text


def test_a_failing_crm_connection_is_said_and_nothing_is_enqueued(deal):
    page = deal.page()
    with deal.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        installation.token_failures = 5
        installation.token_failing_since = datetime.now(timezone.utc) - timedelta(hours=2)
        installation.token_failure_detail = "HubSpot answered 503"
        db.session.commit()

    pushed = deal.push(page.text)

    assert "CRM connection failing: HubSpot answered 503" in text(pushed)
    assert "Nothing was sent" in text(pushed) and requests_waiting(deal.app) == []


def test_a_failing_xero_connection_enqueues_and_says_the_push_waits(deal):
    with deal.app.app_context():
        connection = db.session.scalars(select(XeroConnection)).one()
        connection.token_failures, connection.token_failure_detail = 5, "Xero answered 503"
        connection.token_failing_since = datetime.now(timezone.utc) - timedelta(hours=2)
        db.session.commit()

    pushed = deal.push(deal.page().text)

    assert "Creating a draft invoice in Xero" in text(pushed)
    assert "the request waits and goes through as soon as Xero answers again" in text(pushed)
    assert len(requests_waiting(deal.app)) == 1


# --- paid: no re-push; approved: nothing Paydeck would change; voided: re-invoice --------------

def _invoice_then(deal, status, deal_status):
    set_rule(deal.app, "appointmentscheduled", StageAction.AUTHORISE)
    deal.push(deal.page().text)
    work(deal.app)
    with deal.app.app_context():
        link = db.session.scalars(select(InvoiceLink)).one()
        link.status, link.deal_status = status, deal_status
        db.session.commit()
        return link.invoice_number, link.xero_invoice_id


def test_a_paid_invoice_offers_no_push_and_a_stale_form_enqueues_nothing(deal):
    stale = deal.page().text  # drawn before the invoice existed
    number, _ = _invoice_then(deal, "PAID", "paid")

    page = deal.page()
    assert f"Invoice {number} is paid in Xero: there is nothing to push." in text(page)
    assert f'action="{PUSH_PATH.format(deal.id)}"' not in page.text
    pushed = deal.push(stale)
    assert f"Invoice {number} is paid in Xero" in text(pushed) and requests_waiting(deal.app) == []


def test_an_approved_invoice_says_paydeck_leaves_it_and_how_to_change_it(deal):
    number, _ = _invoice_then(deal, "AUTHORISED", "awaiting_payment")
    page = deal.page()
    assert (f"Invoice {number} is approved in Xero: Paydeck does not change approved invoices. "
            "Change it in Xero, or void it there and re-invoice here.") in text(page)
    assert f'action="{PUSH_PATH.format(deal.id)}"' not in page.text


def test_a_form_drawn_before_the_invoice_changed_sends_nothing(deal):
    stale = deal.page().text  # "create"
    number, invoice_id = _invoice_then(deal, "AUTHORISED", "awaiting_payment")
    deal.xero.accounting(deal.tenant).void(invoice_id)
    with deal.app.app_context():
        link = db.session.scalars(select(InvoiceLink)).one()
        link.status, link.deal_status = "VOIDED", "voided"
        db.session.commit()

    pushed = deal.push(stale)

    assert "The invoice changed in Xero since this page was opened, so nothing was sent" in text(pushed)
    assert requests_waiting(deal.app) == []


def test_a_voided_invoice_is_re_invoiced_as_a_new_invoice_the_old_one_kept(deal):
    number, invoice_id = _invoice_then(deal, "AUTHORISED", "awaiting_payment")
    deal.xero.accounting(deal.tenant).void(invoice_id)
    with deal.app.app_context():  # what the payment refresh records of Xero's void
        link = db.session.scalars(select(InvoiceLink)).one()
        link.status, link.deal_status = "VOIDED", "voided"
        db.session.commit()

    page = deal.page()
    says = text(page)
    assert "Voided" in says and 'name="kind" value="reinvoice"' in page.text
    assert (f"Create a new invoice for this deal? Invoice {number} was voided in Xero and stays "
            "in the deal's history. The new one is an approved invoice.") in says
    pushed = deal.push(page.text)
    assert f"Re-invoicing: an approved invoice replaces voided invoice {number}" in text(pushed)
    work(deal.app)

    with deal.app.app_context():
        old, new = db.session.scalars(select(InvoiceLink).order_by(InvoiceLink.id)).all()
        assert (old.trigger, old.xero_invoice_id, old.status) == (f"voided:{old.id}", invoice_id, "VOIDED")
        assert old.replaced_at is not None
        assert (new.trigger, new.replaces_id, new.state) == ("deal", old.id, InvoiceLinkState.CREATED)
        assert new.xero_invoice_id not in (None, invoice_id) and new.status == "AUTHORISED"
        assert new.reference == f"{old.reference} #2" and new.idempotency_key != old.idempotency_key
    books = deal.xero.accounting(deal.tenant)
    assert books.invoice(new.xero_invoice_id).reference == new.reference
    assert books.invoice(invoice_id).status == "VOIDED"  # the voided one untouched
    after = text(deal.page())
    assert f"Invoice {new.invoice_number}" in after and "Earlier invoices" in after
    assert f"Invoice {number} · Voided · replaced" in after
    body = deal.card()
    assert (body["invoice_number"], body["deal_status"]) == (new.invoice_number, "awaiting_payment")


# --- an installation's reconnect_needed item: a banner on every card ---------------------------

def test_a_reconnect_needed_item_with_no_deal_is_a_banner_on_every_card(deal):
    with deal.app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()  # not 1 on PostgreSQL
        db.session.add_all([
            ReviewItem(installation_id=installation_id, reason=ReviewReason.RECONNECT_NEEDED,
                       detail="xero_reconnect_needed: invalid_grant"),
            ReviewItem(installation_id=installation_id, deal_id="999", reason=ReviewReason.RECONNECT_NEEDED,
                       detail="a deal's own item, not a banner")])
        db.session.commit()
    company = deal.hubspot.crm.add_company(name="Globex")
    # Xero works again (the item is still open): the banner says so rather than alarm.
    title = "Xero needed reconnecting and was reconnected since"

    body = deal.card()
    (alert,) = body["installation_alerts"]
    assert (alert["title"], alert["detail"], alert["fixed"]) == (title, "invalid_grant", True)
    company_card = deal.card(object_type="companies", object_id=company)
    assert [a["title"] for a in company_card["installation_alerts"]] == [title]
    for page_url in (body["open_url"], company_card["open_url"]):
        page = requests.get(page_url, timeout=10)
        assert page.status_code == 200 and f"{title}</strong>: invalid_grant" in text(page)
        assert "Open the review queue" in page.text and "a deal's own item" not in page.text
        assert "The connection works again now: close this item in the review queue." in text(page)

    with deal.app.app_context():  # while Xero really is lost, the banner says what to do
        db.session.scalars(select(XeroConnection)).one().status = ConnectionStatus.RECONNECT_NEEDED
        db.session.commit()
    lost = "Xero needs reconnecting: an admin reconnects it in Paydeck's settings"
    assert [a["title"] for a in deal.card()["installation_alerts"]] == [lost]
    assert "Invoices wait until then; nothing is lost." in text(deal.page())

    with deal.app.app_context():
        for item in db.session.scalars(select(ReviewItem)):
            item.status = "dismissed"
        db.session.commit()
    assert deal.card()["installation_alerts"] == []
    assert lost not in text(deal.page()) and title not in text(deal.page())
