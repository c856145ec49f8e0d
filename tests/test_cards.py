"""The CRM-embedded card and deal page: every way in is signed, per installation and per object."""

from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import urlencode

import jwt
import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.queueing import QUEUE
from app.models import CrmKind, Installation, InstallationSettings, InvoiceLink
from app.redis_conn import get_redis
from app.ui_auth import View, issue_view_token
from app.worker import PaydeckSimpleWorker
from crm_adapters.hubspot import sign_v3
from tests.conftest import fake_settings
from tests.helpers import form_fields


@pytest.fixture
def card(app_factory, fake_hubspot, fake_xero, browser):
    hubspot, _ = fake_hubspot
    fake_xero[0].add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(hubspot_app_id=str(hubspot.app_id),
                                 **fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    browser.get(f"{url}/install/hubspot")
    browser.get(f"{url}/connect/xero")
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.commit()
    company = hubspot.crm.add_company(name="Initech <b>Pty</b> Ltd")
    contact = hubspot.crm.add_contact(company_id=company, firstname="Pat", email="ap@initech.example")
    product = hubspot.crm.add_product(name="<script>alert(1)</script> Consulting", price="150.00")
    deal_id = hubspot.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                                   line_items=[{"hs_product_id": product, "quantity": "2"}])
    return app, url, hubspot, deal_id


INSTALLER = "owner@example.com"  # sandbox.hubspot.FakeHubSpot's installing user


def card_get(url, secret, params, timestamp=None):
    full = f"{url}/hubspot/card?{urlencode(params)}"
    ts = str(timestamp or int(time.time() * 1000))
    return requests.get(full, timeout=10, headers={
        "X-HubSpot-Signature-v3": sign_v3(secret, "GET", full, b"", ts),
        "X-HubSpot-Request-Timestamp": ts})


def test_the_signed_card_fetch_returns_status_and_a_signed_page_url(card):
    app, url, hubspot, deal_id = card

    response = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                     "objectId": deal_id, "userEmail": "rep@example.com"})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Not invoiced" and body["invoiced"] is False
    assert body["open_url"].startswith(f"{url}/ui/deal/{deal_id}?t=")
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("tamper", ["secret", "stale", "portal"])
def test_the_card_refuses_forged_stale_and_foreign_requests(card, tamper):
    app, url, hubspot, deal_id = card
    params = {"portalId": 999 if tamper == "portal" else hubspot.portal_id, "objectType": "deals",
              "objectId": deal_id, "userEmail": INSTALLER}

    response = card_get(url, "guess" if tamper == "secret" else hubspot.client_secret, params,
                        timestamp=int(time.time() * 1000) - 400_000 if tamper == "stale" else None)

    assert response.status_code == (404 if tamper == "portal" else 401)
    assert "open_url" not in response.json()


def test_the_deal_page_previews_the_invoice_escapes_crm_text_and_pushes(card):
    app, url, hubspot, deal_id = card
    open_url = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                     "objectId": deal_id, "userEmail": INSTALLER}).json()["open_url"]

    page = requests.get(open_url, timeout=10)

    assert page.status_code == 200
    assert "Not invoiced yet" in page.text and "Push to Xero" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Consulting" in page.text  # escaped, not run
    assert "<script>alert(1)" not in page.text
    assert "Initech &lt;b&gt;Pty&lt;/b&gt; Ltd" in page.text
    # The account and tax that would be sent, by their names in Xero (its Accounts and
    # TaxRates: the fake's AU books name 200 "Sales" and OUTPUT "GST on Income", 10%).
    assert ">200 \u00b7 Sales<" in page.text and ">GST on Income (10%)<" in page.text
    assert ">OUTPUT<" not in page.text
    pushed = requests.post(f"{url}/ui/deal/{deal_id}/push",
                           data=form_fields(page.text, f"/ui/deal/{deal_id}/push"), timeout=10)
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)
        link = db.session.scalars(select(InvoiceLink)).one()

    # The deal's stage has no rule: a manual push makes a draft, and says so (app/engine/push.py).
    assert pushed.status_code == 200 and "Creating a draft invoice in Xero" in pushed.text
    assert "the deal&#39;s stage has no invoice rule" in pushed.text and "Sent to Xero" not in pushed.text
    assert link.status == "DRAFT"
    after = requests.get(open_url, timeout=10)
    assert f"Invoice {link.invoice_number}" in after.text and "Re-push to Xero" in after.text
    body = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                 "objectId": deal_id, "userEmail": INSTALLER}).json()
    assert (body["invoiced"], body["invoice_number"]) == (True, link.invoice_number)
    assert body["deal_status"] == link.deal_status and body["review_items"] == []


def test_pages_and_actions_refuse_missing_forged_expired_and_foreign_tokens(card):
    app, url, hubspot, deal_id = card
    with app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        expired = issue_view_token(View(installation_id, "rep", "deal", deal_id), ttl=-1)
        other_deal = issue_view_token(View(installation_id, "rep", "deal", "424242"))
    forged = jwt.encode({"iss": "paydeck-view", "iat": 1, "exp": 2**31, "ins": installation_id,
                         "usr": "x", "typ": "deal", "oid": deal_id}, "not-our-secret-but-at-least-32-bytes-long", algorithm="HS256")

    for token in (None, forged, expired, other_deal):
        page = requests.get(f"{url}/ui/deal/{deal_id}", params={"t": token} if token else {}, timeout=10)
        push = requests.post(f"{url}/ui/deal/{deal_id}/push", data={"a": token or ""}, timeout=10)
        assert (page.status_code, push.status_code) == (401, 401), token
    with app.app_context():
        assert db.session.scalars(select(InvoiceLink)).all() == []


def pipedrive_panel(app_factory, path, record_id):
    """A served app with one Pipedrive installation, and a loader of its panel `path` for
    `record_id` with a JWT for user 5 signed by `secret` (claims overridable). User 5 is a
    Pipedrive admin (the answer app.access caches from GET /v1/users/5): these tests are about
    the JWT; record visibility is tests/test_record_access.py's."""
    app, url = app_factory.serve(pipedrive_client_secret="pd-secret-of-at-least-32-bytes-long")
    with app.app_context():
        installation = Installation(crm=CrmKind.PIPEDRIVE, account_id="7788990")
        db.session.add(installation)
        db.session.commit()
        get_redis().set(f"paydeck:crm-user:{installation.id}:5", '{"admin": true, "email": "a@x.example"}')

    def load(secret, **claims):
        token = jwt.encode({"companyId": 7788990, "userId": 5, "exp": int(time.time()) + 300, **claims},
                           secret, algorithm="HS256")
        return requests.get(f"{url}{path}", params={"token": token, "id": record_id},
                            timeout=10, allow_redirects=False)

    return url, load


def test_the_pipedrive_panel_verifies_its_jwt_on_every_load(app_factory):
    url, load = pipedrive_panel(app_factory, "/pipedrive/panel/deal", "12")

    ok = load("pd-secret-of-at-least-32-bytes-long")
    assert ok.status_code == 302 and "/ui/deal/12?t=" in ok.headers["Location"]
    assert "pd=1" in ok.headers["Location"]  # the page loads Pipedrive's app-extensions SDK
    assert load("forged-secret-of-at-least-32-bytes-long").status_code == 401
    assert load("pd-secret-of-at-least-32-bytes-long", exp=int(time.time()) - 10).status_code == 401
    assert load("pd-secret-of-at-least-32-bytes-long", companyId=1).status_code == 404
    assert requests.get(f"{url}/pipedrive/panel/deal", timeout=10).status_code == 401


def test_the_company_page_searches_xero_links_a_contact_and_shows_what_is_owed(card, fake_xero):
    app, url, hubspot, deal_id = card
    xero, _ = fake_xero
    tenant = xero.tenants[0].tenant_id
    wanted = xero.accounting(tenant).add_contact("Initech Holdings", EmailAddress="ap@initech.example")
    xero.accounting(tenant).add_contact("Globex")
    company_id = hubspot.crm.associated_ids("deals", deal_id, "companies")[0]
    open_url = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "companies",
                                                     "objectId": company_id, "userEmail": INSTALLER}).json()["open_url"]
    token = open_url.split("t=")[1]

    found = requests.get(f"{url}/ui/company/{company_id}", params={"t": token, "q": "initech"}, timeout=10)
    assert "Initech Holdings" in found.text and "Globex" not in found.text
    linked = requests.post(f"{url}/ui/company/{company_id}/link",
                           data={**form_fields(found.text, "/link"), "contact_id": wanted.contact_id},
                           timeout=10)
    assert linked.status_code == 200 and "Linked" in linked.text

    # The next invoice for a deal of this company goes to the linked contact, and shows up here.
    deal_page = requests.get(card_get(url, hubspot.client_secret, {
        "portalId": hubspot.portal_id, "objectType": "deals", "objectId": deal_id,
        "userEmail": INSTALLER}).json()["open_url"], timeout=10)
    requests.post(f"{url}/ui/deal/{deal_id}/push",
                  data=form_fields(deal_page.text, f"/ui/deal/{deal_id}/push"), timeout=10)
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)
    (invoice,) = xero.accounting(tenant).invoices
    assert invoice.contact_id == wanted.contact_id
    page = requests.get(open_url, timeout=10)
    assert invoice.invoice_number in page.text and "330.00" in page.text


def test_the_company_page_refuses_a_deal_token(card):
    app, url, hubspot, deal_id = card
    deal_url = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                     "objectId": deal_id, "userEmail": INSTALLER}).json()["open_url"]

    response = requests.get(f"{url}/ui/company/1", params={"t": deal_url.split("t=")[1]}, timeout=10)

    assert response.status_code == 401


def test_the_review_queue_filters_retries_and_dismisses(card):
    from app.models import AuditEvent, ReviewItem, ReviewReason, ReviewStatus

    app, url, hubspot, deal_id = card
    review_url = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                       "objectId": deal_id, "userEmail": INSTALLER}).json()["review_url"]
    token = review_url.split("t=")[1]
    with app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        db.session.add_all([
            ReviewItem(installation_id=installation_id, deal_id=deal_id, reason=ReviewReason.NO_LINE_ITEMS,
                       detail="the deal has <no> line items", action="authorise"),
            ReviewItem(installation_id=installation_id, deal_id="77", reason=ReviewReason.UNKNOWN_TAX,
                       detail="VAT 20% unmapped", action="authorise")])
        db.session.commit()
        first, second = db.session.scalars(select(ReviewItem.id).order_by(ReviewItem.id)).all()

    page = requests.get(review_url, timeout=10)
    only_77 = requests.get(f"{url}/ui/review/{installation_id}", params={"t": token, "deal": "77"}, timeout=10)
    assert "the deal has &lt;no&gt; line items" in page.text and "VAT 20% unmapped" in page.text
    assert "VAT 20% unmapped" in only_77.text and "line items" not in only_77.text

    retried = requests.post(f"{url}/ui/review/{installation_id}/{first}/retry",
                            data=form_fields(page.text, f"/{first}/retry"), timeout=10)
    dismissed = requests.post(f"{url}/ui/review/{installation_id}/{second}/dismiss",
                              data=form_fields(page.text, f"/{second}/dismiss"), timeout=10)
    forged = requests.post(f"{url}/ui/review/{installation_id}/{second}/retry", data={"a": "x"}, timeout=10)

    assert "Retrying." in retried.text and "Dismissed." in dismissed.text and forged.status_code == 401
    with app.app_context():
        statuses = dict(db.session.execute(select(ReviewItem.id, ReviewItem.status)).all())
        assert statuses == {first: ReviewStatus.RESOLVED, second: ReviewStatus.DISMISSED}
        assert db.session.scalar(select(db.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "review_dismissed")) == 1


def test_the_review_queue_refuses_bad_filters_with_400(card):
    """Issue #12: `?status=bogus` was a 500."""
    app, url, hubspot, deal_id = card
    review_url = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                       "objectId": deal_id, "userEmail": INSTALLER}).json()["review_url"]
    for bad in ({"status": "bogus"}, {"since": "yesterday"}, {"status": "ＯＰＥＮ"}):
        response = requests.get(review_url, params=bad, timeout=10)
        assert response.status_code == 400, bad
    assert requests.get(review_url, params={"status": "all", "deal": "x" * 5000}, timeout=10).status_code == 200


def test_an_uninstalled_installation_s_queue_and_actions_refuse(card):
    """Issue #12: the review page still answered and dismiss still worked after uninstall."""
    from app.models import InstallationStatus, ReviewItem, ReviewReason, ReviewStatus

    app, url, hubspot, deal_id = card
    review_url = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                       "objectId": deal_id, "userEmail": INSTALLER}).json()["review_url"]
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        item = ReviewItem(installation_id=installation.id, deal_id=deal_id,
                          reason=ReviewReason.NO_LINE_ITEMS, detail="x", action="authorise")
        db.session.add(item)
        db.session.commit()
        installation_id, item_id = installation.id, item.id
    dismiss = form_fields(requests.get(review_url, timeout=10).text, f"/{item_id}/dismiss")
    with app.app_context():
        db.session.get(Installation, installation_id).status = InstallationStatus.UNINSTALLED
        db.session.commit()

    page = requests.get(review_url, timeout=10)
    dismissed = requests.post(f"{url}/ui/review/{installation_id}/{item_id}/dismiss", data=dismiss,
                              timeout=10)

    assert page.status_code == 401 and dismissed.status_code == 401
    with app.app_context():
        assert db.session.get(ReviewItem, item_id).status == ReviewStatus.OPEN


@pytest.mark.parametrize("repeated", ["portalId", "userEmail", "userId", "appId", "objectId", "objectType"])
def test_a_signed_card_fetch_with_a_repeated_identity_parameter_is_refused(card, repeated):
    """Issue #12 (high): HubSpot appends its own portalId/userEmail and signs the whole URL;
    a user who puts their own copy first used to get another portal's invoice and settings."""
    from app.models import InvoiceLinkState

    app, url, hubspot, deal_id = card
    with app.app_context():  # another customer's portal, with an invoice on deal 5150
        victim = Installation(crm=CrmKind.HUBSPOT, account_id="8888", installed_by="boss@victim.example")
        db.session.add(victim)
        db.session.flush()
        db.session.add(InvoiceLink(installation_id=victim.id, deal_id="5150", reference="HubSpot deal 5150",
                                   idempotency_key="k", state=InvoiceLinkState.CREATED, status="AUTHORISED",
                                   xero_invoice_id="inv-v", invoice_number="INV-VICTIM",
                                   total=Decimal("9999.00")))
        db.session.commit()
    forged = {"portalId": "8888", "userEmail": "boss@victim.example", "userId": "1",
              "appId": str(hubspot.app_id), "objectId": "5150", "objectType": "deals"}
    honest = {"portalId": hubspot.portal_id, "userEmail": "rep@example.com", "userId": "2",
              "appId": str(hubspot.app_id), "objectId": "5150", "objectType": "deals"}
    # The attacker's copy of one parameter first, then the real request's parameters.
    params = [(repeated, forged[repeated]), *honest.items()]

    response = card_get(url, hubspot.client_secret, params)

    assert response.status_code == 400
    assert "INV-VICTIM" not in response.text and "open_url" not in response.json()
    assert repeated in response.json()["error"]
def test_the_card_lists_the_deals_open_review_items_with_their_reasons(card):
    """The HubSpot card shows what the deal page shows: each open item's reason and detail
    (newest first, at most CARD_REVIEW_ITEMS), the count of all of them, and the review page."""
    from app.models import ReviewItem, ReviewReason, ReviewStatus
    from app.card_data.alerts import CARD_REVIEW_ITEMS

    app, url, hubspot, deal_id = card
    with app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        db.session.add_all(
            [ReviewItem(installation_id=installation_id, deal_id=deal_id, reason=ReviewReason.UNKNOWN_TAX,
                        detail=f"VAT {n}% unmapped", action="authorise") for n in range(CARD_REVIEW_ITEMS)]
            + [ReviewItem(installation_id=installation_id, deal_id=deal_id, reason=ReviewReason.NO_LINE_ITEMS,
                          detail="resolved already", status=ReviewStatus.RESOLVED),
               ReviewItem(installation_id=installation_id, deal_id="77", reason=ReviewReason.NO_LINE_ITEMS,
                          detail="another deal's"),
               ReviewItem(installation_id=installation_id, deal_id=deal_id,
                          reason=ReviewReason.AMBIGUOUS_CONTACT, detail="two contacts named Initech")])
        db.session.commit()
        newest = db.session.scalars(select(ReviewItem.id).where(
            ReviewItem.reason == ReviewReason.AMBIGUOUS_CONTACT)).one()

    body = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                 "objectId": deal_id, "userEmail": INSTALLER}).json()

    assert body["open_review_items"] == CARD_REVIEW_ITEMS + 1
    items = body["review_items"]
    assert len(items) == CARD_REVIEW_ITEMS
    assert items[0]["id"] == newest and items[0]["reason"] == "ambiguous_contact"
    assert items[0]["reason_label"] == "Ambiguous contact"
    assert items[0]["detail"] == "two contacts named Initech"
    assert {i["reason"] for i in items[1:]} == {"unknown_tax"}
    assert all("resolved" not in i["detail"] and "another" not in i["detail"] for i in items)
    assert body["review_url"].startswith(f"{url}/ui/review/{installation_id}?t=")


def test_a_xero_edited_item_offers_keep_xeros_or_resend_the_deal(card):
    from app.models import DealSyncRequest, ReviewItem, ReviewReason, ReviewStatus

    app, url, hubspot, deal_id = card
    review_url = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                       "objectId": deal_id, "userEmail": INSTALLER}).json()["review_url"]
    with app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        for n in (1, 2):
            db.session.add(ReviewItem(
                installation_id=installation_id, deal_id=f"{deal_id}{n}", reason=ReviewReason.XERO_EDITED,
                detail=f"Xero has edits: invoice INV-000{n}", action="authorise",
                candidates=[{"invoice_number": f"INV-000{n}", "updated_at": "2026-12-01T00:00:00.000+00:00"}]))
        db.session.commit()
        keep, resend = db.session.scalars(select(ReviewItem.id).order_by(ReviewItem.id)).all()

    page = requests.get(review_url, timeout=10)
    assert "Keep Xero&#39;s" in page.text and "Re-send the deal" in page.text
    assert f"/{keep}/keep" in page.text and f"/{keep}/retry" not in page.text

    kept = requests.post(f"{url}/ui/review/{installation_id}/{keep}/keep",
                         data=form_fields(page.text, f"/{keep}/keep"), timeout=10)
    resent = requests.post(f"{url}/ui/review/{installation_id}/{resend}/resend",
                           data=form_fields(page.text, f"/{resend}/resend"), timeout=10)

    assert "nothing was sent" in kept.text and "Re-sending the deal." in resent.text
    with app.app_context():
        statuses = dict(db.session.execute(select(ReviewItem.id, ReviewItem.status)).all())
        assert statuses == {keep: ReviewStatus.RESOLVED, resend: ReviewStatus.RESOLVED}
        (request,) = db.session.scalars(select(DealSyncRequest)).all()  # only the re-send asks again
        assert (request.deal_id, request.source) == (f"{deal_id}2", f"resend:review:{resend}")


def test_the_pipedrive_organization_panel_verifies_its_jwt_on_every_load(app_factory):
    url, load = pipedrive_panel(app_factory, "/pipedrive/panel/organization", "34")

    ok = load("pd-secret-of-at-least-32-bytes-long")
    assert ok.status_code == 302 and "/ui/company/34?t=" in ok.headers["Location"]
    assert load("forged-secret-of-at-least-32-bytes-long").status_code == 401
    assert load("pd-secret-of-at-least-32-bytes-long", exp=int(time.time()) - 10).status_code == 401
    assert load("pd-secret-of-at-least-32-bytes-long", companyId=1).status_code == 404
    assert requests.get(f"{url}/pipedrive/panel/organization", timeout=10).status_code == 401
