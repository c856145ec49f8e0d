"""Token refresh for all three vendors, over real HTTP against the fakes.

- A token that expires mid-session is refreshed and the sync still works (HubSpot, Pipedrive,
  Xero), and the fake saw a refresh carrying every field its vendor requires.
- Paydeck's own token forms, each required field dropped in turn, are refused by the fakes.
- A refresh failing for any reason but invalid_grant is retried with backoff, shown as
  "... connection failing: <the vendor's words>" once it keeps failing, and clears (deals go
  through) when the vendor answers again.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from app.connection_state import connection_state
from app.engine.job import sync_installation
from app.extensions import db
from app.queueing import QUEUE
from app.models import (ConnectionStatus, DealSyncRequest, Installation, InstallationStatus,
                        ReviewItem, ReviewReason, ReviewStatus, XeroConnection)
from app.oauth import exchange_code, provider, token_form
from app.redis_conn import get_redis
from app.tokens import (
    FAILING_AFTER_ATTEMPTS,
    TokenUnavailable,
    access_token,
    is_failing,
    retry_delay,
)
from app.worker import PaydeckSimpleWorker
from crm_adapters.hubspot import sign_v3
from tests.conftest import fake_settings
from tests.helpers import installed, invoice_on_stage

PAST = timedelta(minutes=40)  # an access token lives 30 min at all three vendors


def work(app) -> None:
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def expire(app, model: type[Installation] | type[XeroConnection], fake: Any) -> None:
    """Let 40 minutes pass for both sides: the vendor's token dies, and Paydeck's stored
    expiry says so."""
    fake.advance(PAST.total_seconds())
    with app.app_context():
        record = db.session.scalars(select(model)).one()
        record.token_expires_at = datetime.now(timezone.utc) - timedelta(minutes=10)
        db.session.commit()


def refreshes(fake: Any) -> list[dict[str, Any]]:
    return [r for r in fake.token_requests if r["grant_type"] == "refresh_token"]


def card_get(url: str, secret: str, params: dict[str, Any]) -> requests.Response:
    """What HubSpot's `hubspot.fetch` does (signed v3, timestamp now)."""
    full = f"{url}/hubspot/card?{urlencode(params)}"
    ts = str(int(time.time() * 1000))
    return requests.get(full, timeout=10, headers={
        "X-HubSpot-Signature-v3": sign_v3(secret, "GET", full, b"", ts),
        "X-HubSpot-Request-Timestamp": ts})


# --- set-ups ------------------------------------------------------------------------------------

def hubspot_installed(app_factory, fake_hubspot, fake_xero, browser, **overrides: Any):
    (hubspot, _), (xero, _) = fake_hubspot, fake_xero
    app, url, tenant = installed(app_factory, browser, "hubspot", fake_hubspot, fake_xero,
                                 **overrides)
    work(app)  # the install's setup job creates the Paydeck deal properties
    installation_id = invoice_on_stage(app, "default", "closedwon").id
    hubspot.subscribe(f"{url}/webhooks/hubspot", hubspot.client_secret)
    company = hubspot.crm.add_company(name="Initech Pty Ltd", domain="initech.example")
    contact = hubspot.crm.add_contact(company_id=company, firstname="Pat", lastname="Buyer",
                                      email="ap@initech.example")
    product = hubspot.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    deal_id = hubspot.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                                   line_items=[{"hs_product_id": product, "quantity": "2"}])
    hubspot.deliver()  # creation events: not a trigger stage
    return app, url, hubspot, xero, tenant, installation_id, deal_id


def win_hubspot_deal(hubspot, deal_id: str) -> None:
    """The deal is won and HubSpot's signed webhook delivered (before any clock moves: the
    signature timestamp comes from the fake's clock). The job is queued, not yet run."""
    hubspot.crm.set_deal_properties(deal_id, dealstage="closedwon")
    assert [d.status for d in hubspot.deliver()] == [200]


# The fields each vendor documents as required on a refresh (see sandbox/hubspot/oauth.py,
# sandbox/pipedrive/__init__.py, sandbox/xero/__init__.py for the sources), besides client authentication.
HUBSPOT_REFRESH_FIELDS = {"grant_type", "client_id", "client_secret", "refresh_token"}
BASIC_REFRESH_FIELDS = {"grant_type", "refresh_token"}


# --- 1. expired mid-session: refreshed, and the sync still works ------------------------------

def test_hubspot_and_xero_tokens_expired_mid_session_are_refreshed_and_the_deal_syncs(
        app_factory, fake_hubspot, fake_xero, browser):
    app, url, hubspot, xero, tenant, _, deal_id = hubspot_installed(
        app_factory, fake_hubspot, fake_xero, browser)
    win_hubspot_deal(hubspot, deal_id)
    expire(app, Installation, hubspot)  # both tokens die before the job runs
    expire(app, XeroConnection, xero)
    assert refreshes(hubspot) == [] and refreshes(xero) == []

    work(app)

    (invoice,) = xero.accounting(tenant).invoices
    assert invoice.reference == f"HubSpot {hubspot.portal_id} deal {deal_id}" and invoice.total == Decimal("330.00")
    deal = hubspot.crm.deal(deal_id)
    assert deal["paydeck_invoice_number"] == invoice.invoice_number  # the writeback went through
    (hub_refresh,) = refreshes(hubspot)  # one refresh serves the whole run
    assert hub_refresh["status"] == 200
    assert HUBSPOT_REFRESH_FIELDS <= set(hub_refresh["fields"])
    assert hub_refresh["client_id"] == hubspot.client_id
    (xero_refresh,) = refreshes(xero)
    assert xero_refresh["status"] == 200 and xero_refresh["basic_auth"]
    assert BASIC_REFRESH_FIELDS <= set(xero_refresh["fields"])
    assert "client_secret" not in xero_refresh["fields"]  # Basic only: never in the body


def test_pipedrive_token_expired_mid_session_is_refreshed_and_the_deal_syncs(
        app_factory, fake_pipedrive, fake_xero, browser):
    (pipedrive, _), (xero, _) = fake_pipedrive, fake_xero
    app, url, tenant = installed(app_factory, browser, "pipedrive", fake_pipedrive, fake_xero)
    work(app)
    won = pipedrive.api.stage_id("Won")
    fields = dict(invoice_on_stage(app, "1", str(won)).crm_fields)
    org = pipedrive.api.add_org("Initech Pty Ltd")
    person = pipedrive.api.add_person("Pat Buyer", email="ap@initech.example", org_id=org)
    product = pipedrive.api.add_product("Consulting", code="CONS-1", price=Decimal("150.00"))
    deal_id = pipedrive.api.add_deal("Website", org_id=org, person_id=person,
                                     products=[{"product_id": product, "quantity": 2,
                                                "item_price": Decimal("150.00")}])
    pipedrive.deliver()
    before = len(refreshes(pipedrive))

    pipedrive.api.move_deal(deal_id, won)
    assert [d.status for d in pipedrive.deliver()] == [200]
    expire(app, Installation, pipedrive)  # the token dies before the job runs
    work(app)

    (invoice,) = xero.accounting(tenant).invoices
    assert invoice.reference == f"Pipedrive {pipedrive.company_id} deal {deal_id}"
    assert pipedrive.api.deal(deal_id).custom_fields[fields["invoice_number"]] == invoice.invoice_number
    (pd_refresh,) = refreshes(pipedrive)[before:]
    assert pd_refresh["status"] == 200 and pd_refresh["basic_auth"]
    assert BASIC_REFRESH_FIELDS <= set(pd_refresh["fields"])
    with app.app_context():
        assert db.session.scalars(select(Installation)).one().token_expires_at > datetime.now(timezone.utc)


# --- 2. Paydeck's token forms, each required field dropped: the fake refuses ---------------------

def _fresh_code(fake: Any, fake_url: str, redirect_uri: str) -> str:
    response = requests.get(fake_url + fake.authorize_path, allow_redirects=False, timeout=5,
                            params={"client_id": fake.client_id, "redirect_uri": redirect_uri,
                                    "response_type": "code", "scope": "offline_access",
                                    "state": "s"})
    assert response.status_code == 302, response.text
    return dict(p.split("=", 1) for p in response.headers["Location"].split("?", 1)[1].split("&"))["code"]


# (vendor, grant_type) -> what the vendor documents as required (cited in sandbox/<vendor>.py);
# "basic" stands for the HTTP Basic client credentials.
REQUIRED = {
    ("hubspot", "refresh_token"): ["grant_type", "client_id", "client_secret", "refresh_token"],
    ("hubspot", "authorization_code"): ["grant_type", "client_id", "client_secret",
                                        "redirect_uri", "code"],
    ("pipedrive", "refresh_token"): ["grant_type", "refresh_token", "basic"],
    ("pipedrive", "authorization_code"): ["grant_type", "code", "redirect_uri", "basic"],
    ("xero", "refresh_token"): ["grant_type", "refresh_token", "basic"],
    ("xero", "authorization_code"): ["grant_type", "code", "redirect_uri", "basic"],
}
CASES = [(vendor, grant, field) for (vendor, grant), fields in REQUIRED.items()
         for field in fields]


@pytest.fixture
def vendor_fakes(fake_hubspot, fake_pipedrive, fake_xero):
    return {"hubspot": fake_hubspot, "pipedrive": fake_pipedrive, "xero": fake_xero}


def _paydeck_form(app_factory, vendor_fakes, vendor: str, grant: str):
    """The form and Basic credentials Paydeck itself sends for this grant (app.oauth)."""
    fake, fake_url = vendor_fakes[vendor]
    settings = app_factory.settings(**fake_settings(**{vendor: vendor_fakes[vendor]}))
    p = provider(vendor, settings)  # type: ignore[arg-type]
    if vendor == "xero":
        fake.add_tenant("Acme Pty Ltd")
    code = _fresh_code(fake, fake_url, p.redirect_uri)
    if grant == "authorization_code":
        base = {"grant_type": "authorization_code", "code": code, "redirect_uri": p.redirect_uri}
    else:
        tokens = exchange_code(p, code, timeout=5)  # Paydeck's own code exchange
        base = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        if vendor == "hubspot":
            base["redirect_uri"] = p.redirect_uri  # as app.oauth.refresh adds it
    form, auth = token_form(p, base)
    return p, form, auth


@pytest.mark.parametrize("vendor,grant,dropped", CASES)
def test_the_fake_refuses_paydecks_token_request_without_each_required_field(
        app_factory, vendor_fakes, vendor, grant, dropped):
    p, form, auth = _paydeck_form(app_factory, vendor_fakes, vendor, grant)
    # Paydeck sends every required field (this fails if it stops sending one)...
    if dropped == "basic":
        assert auth is not None and (auth.username, auth.password) == (p.client_id, p.client_secret)
    else:
        assert form.get(dropped), f"Paydeck's {vendor} {grant} form lacks {dropped}"
    # ...and the vendor's fake refuses the request without it.
    without = {k: v for k, v in form.items() if k != dropped}
    refused = requests.post(p.token_url, data=without, auth=None if dropped == "basic" else auth,
                            timeout=5)
    assert refused.status_code in (400, 401), refused.text
    assert refused.json()["error"] in ("invalid_request", "invalid_client")


@pytest.mark.parametrize("vendor,grant", list(REQUIRED))
def test_paydecks_complete_token_request_is_accepted(app_factory, vendor_fakes, vendor, grant):
    p, form, auth = _paydeck_form(app_factory, vendor_fakes, vendor, grant)
    response = requests.post(p.token_url, data=form, auth=auth, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def test_hubspot_refresh_refusal_speaks_hubspots_error_shape(fake_hubspot):
    hubspot, url = fake_hubspot
    response = requests.post(f"{url}/oauth/v1/token", timeout=5, data={
        "grant_type": "refresh_token", "client_secret": hubspot.client_secret,
        "refresh_token": "whatever"})
    body = response.json()
    assert body["status"] == "BAD_CLIENT_ID" and body["message"] and body["correlationId"]


# --- 3. failures other than invalid_grant: retried, shown, cleared -------------------------------

def test_retry_delay_doubles_from_30_seconds_up_to_15_minutes():
    # 30 s x 2^(n-1), capped at 900 s: 30, 60, 120, 240, 480, 900, 900
    assert [retry_delay(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 900, 900]


def test_failing_means_three_in_a_row_or_ten_minutes():
    now = datetime.now(timezone.utc)
    record = XeroConnection(token_failures=2, token_failing_since=now - timedelta(minutes=9))
    assert not is_failing(record, now)
    record.token_failures = FAILING_AFTER_ATTEMPTS
    assert is_failing(record, now)
    record.token_failures, record.token_failing_since = 1, now - timedelta(minutes=11)
    assert is_failing(record, now)
    record.token_failures = 0
    assert not is_failing(record, now)


@pytest.mark.parametrize("kind,words", [
    ("invalid_client", "client authentication failed"),
    ("5xx", "HTTP 503"),
    ("429", "Too many requests"),
    ("garbage", "without JSON"),
    ("slow", "ReadTimeout"),
])
def test_a_refresh_failing_but_not_invalid_grant_is_postponed_not_a_reconnect(
        app_factory, xero_connected, fake_xero, kind, words):
    app, _, connection_id = xero_connected
    fake, _ = fake_xero
    if kind == "slow":
        app = app_factory.create(http_timeout=0.5, **fake_settings(xero=fake_xero))
    fake.inject_token_fault(kind, times=1, delay=1.5)
    expire(app, XeroConnection, fake)
    with app.app_context():
        with pytest.raises(TokenUnavailable) as failure:
            access_token(XeroConnection, connection_id)
        assert failure.value.seconds == 30
        connection = db.session.get(XeroConnection, connection_id)
        assert connection.status == ConnectionStatus.CONNECTED and connection.refresh_token
        assert connection.token_failures == 1 and words in connection.token_failure_detail
        assert connection_state(connection.installation)["xero"]["state"] == "connected"  # not yet
        fake.clear_token_faults()
        if kind == "slow":
            time.sleep(1.2)  # let the slow answer finish before the next call
        assert access_token(XeroConnection, connection_id)  # the next try works and clears it
        db.session.expire_all()
        assert db.session.get(XeroConnection, connection_id).token_failures == 0


def test_a_hubspot_refresh_that_keeps_failing_is_retried_shown_and_recovers(
        app_factory, fake_hubspot, fake_xero, browser):
    app, url, hubspot, xero, tenant, installation_id, deal_id = hubspot_installed(
        app_factory, fake_hubspot, fake_xero, browser)
    win_hubspot_deal(hubspot, deal_id)
    expire(app, Installation, hubspot)
    hubspot.inject_token_fault("invalid_client", times=None)  # e.g. a rotated client secret

    work(app)  # the webhook's job: the refresh is refused

    delays = []
    with app.app_context():
        for attempt in range(1, FAILING_AFTER_ATTEMPTS + 1):
            if attempt > 1:  # the backoff has passed
                db.session.query(DealSyncRequest).update({"not_before": None})
                db.session.commit()
                sync_installation(installation_id)
            db.session.expire_all()
            (waiting,) = db.session.scalars(select(DealSyncRequest)).all()  # kept, not dropped
            delays.append(round((waiting.not_before - datetime.now(timezone.utc)).total_seconds()))
            installation = db.session.get(Installation, installation_id)
            assert installation.token_failures == attempt
            assert installation.status == InstallationStatus.ACTIVE
        scheduled = ScheduledJobRegistry(QUEUE, connection=get_redis()).get_job_ids()
        assert any(j.startswith(f"invoice-sync-{installation_id}") for j in scheduled)
        items = db.session.scalars(select(ReviewItem).where(
            ReviewItem.reason == ReviewReason.CONNECTION_FAILING)).all()
        assert [i.status for i in items] == [ReviewStatus.OPEN]  # one, not one per attempt
        assert "client authentication failed" in items[0].detail
    # 30 s, 60 s, 120 s (less the second or so the run took)
    assert [d in range(b - 3, b + 1) for d, b in zip(delays, [30, 60, 120])] == [True] * 3
    assert refreshes(hubspot)[-1]["error"] == "invalid_client"
    assert xero.accounting(tenant).invoices == []

    card = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id,
                                                  "objectType": "deals", "objectId": deal_id,
                                                  "userEmail": hubspot.user_email}).json()
    crm = card["connection"]["crm"]
    assert crm["state"] == "failing"
    assert crm["message"].startswith("CRM connection failing: ")
    assert "client authentication failed" in crm["message"]  # the vendor's own words
    assert card["connection"]["xero"] == {"state": "connected", "message": None}
    for page in (card["open_url"], card["review_url"], card["settings_url"]):
        html = requests.get(page, timeout=10).text
        assert "CRM connection failing: " in html and "client authentication failed" in html

    hubspot.clear_token_faults()  # HubSpot answers again
    with app.app_context():
        db.session.query(DealSyncRequest).update({"not_before": None})
        db.session.commit()
        sync_installation(installation_id)
        db.session.expire_all()
        installation = db.session.get(Installation, installation_id)
        assert installation.token_failures == 0 and installation.token_failure_detail == ""
        assert db.session.scalars(select(DealSyncRequest)).all() == []
        (item,) = db.session.scalars(select(ReviewItem).where(
            ReviewItem.reason == ReviewReason.CONNECTION_FAILING)).all()
        assert item.status == ReviewStatus.RESOLVED
    (invoice,) = xero.accounting(tenant).invoices
    assert invoice.reference == f"HubSpot {hubspot.portal_id} deal {deal_id}"
    assert hubspot.crm.deal(deal_id)["paydeck_invoice_number"] == invoice.invoice_number
    card = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id,
                                                  "objectType": "deals", "objectId": deal_id,
                                                  "userEmail": hubspot.user_email}).json()
    assert card["connection"] == {"crm": {"state": "ok", "message": None},
                                  "xero": {"state": "connected", "message": None}}


def test_a_xero_refresh_that_keeps_failing_shows_xero_connection_failing(
        app_factory, xero_connected, fake_xero, fake_hubspot):
    app, url, connection_id = xero_connected
    xero, _ = fake_xero
    hubspot, _ = fake_hubspot
    expire(app, XeroConnection, xero)
    xero.inject_token_fault("5xx", times=None, status=502)
    with app.app_context():
        for _ in range(FAILING_AFTER_ATTEMPTS):
            with pytest.raises(TokenUnavailable):
                access_token(XeroConnection, connection_id)
        db.session.expire_all()
        installation = db.session.get(XeroConnection, connection_id).installation
        state = connection_state(installation)
        assert state["xero"]["state"] == "failing"
        assert state["xero"]["message"] == ("Xero connection failing: Xero's token endpoint "
                                            "answered HTTP 502 without JSON")
        assert state["crm"] == {"state": "ok", "message": None}
        open_items = db.session.scalars(select(ReviewItem).where(
            ReviewItem.status == ReviewStatus.OPEN,
            ReviewItem.reason == ReviewReason.CONNECTION_FAILING)).all()
        assert [i.detail.split(":")[0] for i in open_items] == ["Xero connection failing"]
        xero.clear_token_faults()
        access_token(XeroConnection, connection_id)
        db.session.expire_all()
        assert connection_state(installation)["xero"] == {"state": "connected", "message": None}


def test_card_connection_block_for_lost_and_absent_connections(app_factory, xero_connected,
                                                                fake_hubspot, fake_xero):
    app, url, connection_id = xero_connected
    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    xero.revoke_all()
    expire(app, XeroConnection, xero)
    with app.app_context():
        with pytest.raises(Exception):
            access_token(XeroConnection, connection_id)  # invalid_grant: reconnect needed
    body = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id,
                                                  "objectType": "deals", "objectId": "123",
                                                  "userEmail": hubspot.user_email}).json()
    assert set(body["connection"]) == {"crm", "xero"}
    assert body["connection"]["crm"] == {"state": "ok", "message": None}
    assert body["connection"]["xero"]["state"] == "reconnect_needed"
    assert body["connection"]["xero"]["message"].startswith("Xero connection lost: ")
    with app.app_context():
        db.session.get(XeroConnection, connection_id).status = ConnectionStatus.DISCONNECTED
        db.session.commit()
    body = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id,
                                                  "objectType": "companies", "objectId": "9",
                                                  "userEmail": hubspot.user_email}).json()
    assert body["connection"]["xero"] == {"state": "not_connected", "message": None}


def test_a_pipedrive_refresh_refused_keeps_pipedrives_words_and_waits(
        app_factory, fake_pipedrive, browser):
    pipedrive, _ = fake_pipedrive
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive))
    assert browser.get(f"{url}/install/pipedrive").status_code == 200
    expire(app, Installation, pipedrive)
    pipedrive.inject_token_fault("invalid_client", times=1)
    with app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        with pytest.raises(TokenUnavailable) as failure:
            access_token(Installation, installation_id)
        assert failure.value.seconds == 30
        db.session.expire_all()
        installation = db.session.get(Installation, installation_id)
        # pipedrive.readme.io status codes: "Invalid client: client is invalid" (HTTP 400)
        assert installation.token_failure_detail == "invalid_client: Invalid client: client is invalid"
        assert installation.status == InstallationStatus.ACTIVE and installation.refresh_token
        assert access_token(Installation, installation_id)  # Pipedrive answers again
    (failed, ok) = refreshes(pipedrive)[-2:]
    assert (failed["status"], failed["error"], ok["status"]) == (400, "invalid_client", 200)


# --- 4. what a token endpoint's refusal means (the one place that decides) ------------------

TOKEN_ANSWERS = [
    # (status, body, invalid_grant, detail)
    (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
     True, "invalid_grant: Token has been expired or revoked."),  # Xero (RFC 6749 5.2)
    # HubSpot's legacy shape: `status` instead of `error` (see _DEAD_GRANT_CODES' sources)
    (400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token",
           "correlationId": "c"}, True, "BAD_REFRESH_TOKEN: missing or invalid refresh token"),
    (400, {"status": "BAD_CLIENT_ID", "message": "missing or invalid client_id"},
     False, "BAD_CLIENT_ID: missing or invalid client_id"),
    (400, {"success": False, "error": "invalid_client",
           "error_description": "Invalid client: client is invalid"},
     False, "invalid_client: Invalid client: client is invalid"),  # Pipedrive
    (401, {"error": "invalid_client"}, False, "invalid_client"),
    (503, None, False, "HubSpot's token endpoint answered HTTP 503 without JSON"),
    (200, None, False, "HubSpot's token endpoint answered HTTP 200 without JSON"),
    (200, {"token_type": "bearer"}, False, "HTTP 200"),  # 200 but no access_token
]


@pytest.mark.parametrize("status,body,dead,detail", TOKEN_ANSWERS)
def test_a_refused_refresh_is_a_dead_grant_only_for_invalid_grant(
        app_factory, status, body, dead, detail):
    import responses

    from app.oauth import OAuthFailure, refresh

    p = provider("hubspot", app_factory.settings(hubspot_client_id="id",
                                                 hubspot_client_secret="secret"))
    with responses.RequestsMock() as mock:
        mock.post(p.token_url, status=status,
                  **({"json": body} if body is not None else {"body": "<html>oops</html>"}))
        with pytest.raises(OAuthFailure) as failure:
            refresh(p, "rt", timeout=5)
    assert (failure.value.invalid_grant, failure.value.detail) == (dead, detail)


def test_a_failing_xero_refresh_mid_sync_postpones_the_deal_then_it_goes_through(
        app_factory, fake_hubspot, fake_xero, browser):
    app, url, hubspot, xero, tenant, installation_id, deal_id = hubspot_installed(
        app_factory, fake_hubspot, fake_xero, browser)
    win_hubspot_deal(hubspot, deal_id)
    expire(app, XeroConnection, xero)
    xero.inject_token_fault("5xx", times=None)

    work(app)  # the Xero SDK's token getter raises inside the Xero call

    with app.app_context():
        (waiting,) = db.session.scalars(select(DealSyncRequest)).all()
        assert waiting.not_before > datetime.now(timezone.utc) + timedelta(seconds=25)
        assert db.session.scalars(select(XeroConnection)).one().token_failures == 1
        assert db.session.scalars(select(ReviewItem)).all() == []  # waiting, not given up
    assert xero.accounting(tenant).invoices == []

    xero.clear_token_faults()
    with app.app_context():
        db.session.query(DealSyncRequest).update({"not_before": None})
        db.session.commit()
        sync_installation(installation_id)
    (invoice,) = xero.accounting(tenant).invoices
    assert hubspot.crm.deal(deal_id)["paydeck_invoice_number"] == invoice.invoice_number
