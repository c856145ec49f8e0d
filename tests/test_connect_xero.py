"""Connecting an installation to a Xero organisation, over HTTP against the fake Xero."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from app.models import AuditEvent, ConnectionStatus, XeroConnection
from app.settings import XERO_SCOPES
from tests.conftest import fake_settings
from tests.helpers import count, form_fields, one, raw_rows


@pytest.fixture
def installed(app_factory, fake_hubspot, fake_xero, browser):
    """Paydeck served, installed into the fake HubSpot; the browser holds the admin session."""
    app, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    assert browser.get(f"{url}/install/hubspot").status_code == 200
    return app, url


def test_connect_one_organisation(installed, fake_xero, browser):
    fake, _ = fake_xero
    tenant_id = fake.add_tenant("Acme Pty Ltd")
    app, url = installed

    page = browser.get(f"{url}/connect/xero")

    connection = one(app, XeroConnection)
    assert page.url.startswith(f"{url}/ui/settings/{connection.installation_id}?t=")
    assert "Connected to <strong>Acme Pty Ltd</strong>" in page.text
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == tenant_id
    assert fake.grant_for(connection.access_token) is not None
    assert connection.token_expires_at is not None
    raw = raw_rows(app, "xero_connection")[0]
    assert connection.access_token not in str(raw) and connection.refresh_token not in str(raw)
    assert count(app, AuditEvent, AuditEvent.action == "xero_connected") == 1


def test_authorize_asks_for_the_granular_scopes(installed, fake_xero, browser):
    app, url = installed

    location = browser.get(f"{url}/connect/xero", allow_redirects=False).headers["Location"]

    scopes = parse_qs(urlsplit(location).query)["scope"][0].split()
    assert scopes == XERO_SCOPES.split()
    assert "accounting.transactions" not in scopes
    assert "offline_access" in scopes


def test_several_organisations_ask_the_admin_to_pick_and_detach_the_rest(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    chosen = fake.add_tenant("Acme NZ Ltd")
    app, url = installed

    page = browser.get(f"{url}/connect/xero")

    assert page.url == f"{url}/connect/xero/organisation"
    assert "Acme Pty Ltd" in page.text and "Acme NZ Ltd" in page.text
    assert one(app, XeroConnection).status == ConnectionStatus.PENDING_TENANT
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]

    done = browser.post(f"{url}/connect/xero/organisation",
                        data={"csrf_token": csrf, "tenant_id": chosen})

    connection = one(app, XeroConnection)
    assert done.url.startswith(f"{url}/ui/settings/{connection.installation_id}?t=")
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == chosen
    assert [c.tenant_id for c in fake.connections] == [chosen]


def test_picking_an_organisation_needs_the_form_token(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("One")
    two = fake.add_tenant("Two")
    app, url = installed
    browser.get(f"{url}/connect/xero")

    response = browser.post(f"{url}/connect/xero/organisation", data={"tenant_id": two})

    assert response.status_code == 400
    assert one(app, XeroConnection).status == ConnectionStatus.PENDING_TENANT


def test_disconnect_revokes_the_grant_at_xero(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    app, url = installed
    page = browser.get(f"{url}/connect/xero")  # ends on the settings page
    refresh_token = one(app, XeroConnection).refresh_token
    installation_id = one(app, XeroConnection).installation_id
    done = browser.post(f"{url}/ui/settings/{installation_id}/disconnect",
                        data=form_fields(page.text, f"/ui/settings/{installation_id}/disconnect"))

    assert done.url.startswith(f"{url}/ui/settings/{installation_id}?t=")
    assert "Disconnected from Xero." in done.text
    connection = one(app, XeroConnection)
    assert connection.status == ConnectionStatus.DISCONNECTED
    assert connection.refresh_token is None and connection.access_token is None
    assert fake.store.grant_of_refresh_token(refresh_token).revoked
    assert "Connect to Xero" in done.text


def test_status_endpoint_reports_the_connection(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    app, url = installed
    browser.get(f"{url}/connect/xero")

    status = browser.get(f"{url}/connect/xero/status").json()

    assert status["xero"]["status"] == "connected"
    assert status["xero"]["tenant_name"] == "Acme Pty Ltd"


def test_denied_consent_changes_nothing(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    fake.next_consent = "deny"
    app, url = installed

    page = browser.get(f"{url}/connect/xero")

    assert page.status_code == 400
    assert "did not grant access" in page.text
    assert count(app, XeroConnection) == 0


def test_expired_code_changes_nothing(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    app, url = installed
    to_xero = browser.get(f"{url}/connect/xero", allow_redirects=False).headers["Location"]
    callback = browser.get(to_xero, allow_redirects=False).headers["Location"]
    fake.expire_codes()

    page = browser.get(callback)

    assert page.status_code == 400
    assert count(app, XeroConnection) == 0


def test_replayed_or_forged_state_changes_nothing(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    app, url = installed
    to_xero = browser.get(f"{url}/connect/xero", allow_redirects=False).headers["Location"]
    callback = browser.get(to_xero, allow_redirects=False).headers["Location"]

    assert browser.get(callback.replace("state=", "state=forged")).status_code == 400
    assert count(app, XeroConnection) == 0
    assert browser.get(callback).status_code == 200
    first_token = one(app, XeroConnection).access_token

    assert browser.get(callback).status_code == 400
    assert one(app, XeroConnection).access_token == first_token


def test_connect_needs_an_installation_session(app_factory, fake_xero, browser):
    app, url = app_factory.serve(**fake_settings(xero=fake_xero))

    assert browser.get(f"{url}/connect/xero").status_code == 401
    assert browser.get(f"{url}/connect/xero/status").status_code == 401


def test_the_organisation_chooser_needs_the_browser_that_connected(installed, fake_xero, browser):
    from tests.conftest import Browser

    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    fake.add_tenant("Acme NZ Ltd")
    app, url = installed
    assert browser.get(f"{url}/connect/xero").url == f"{url}/connect/xero/organisation"

    with Browser() as stranger:  # another browser: no session, no round trip of its own
        shown = stranger.get(f"{url}/connect/xero/organisation")
        picked = stranger.post(f"{url}/connect/xero/organisation",
                               data={"tenant_id": fake.tenants[1].tenant_id})

    assert (shown.status_code, picked.status_code) == (401, 401)
    assert one(app, XeroConnection).status == ConnectionStatus.PENDING_TENANT


# --- one Xero user, two installations ---------------------------------------------------------

def _two_installations(app_factory, fake_hubspot, fake_pipedrive, fake_xero):
    """Paydeck installed into a HubSpot portal (browser A) and a Pipedrive company (browser B)."""
    from tests.conftest import Browser

    app, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot, pipedrive=fake_pipedrive,
                                                 xero=fake_xero))
    a, b = Browser(), Browser()
    assert a.get(f"{url}/install/hubspot").status_code == 200
    assert b.get(f"{url}/install/pipedrive").status_code == 200
    return app, url, a, b


def _organisation(fake, connection: XeroConnection) -> int:
    """An Accounting API call with the connection's own token and tenant: 200 while it works."""
    import requests

    return requests.get(f"{fake.base_url}/api.xro/2.0/Organisation", timeout=5, headers={
        "Authorization": f"Bearer {connection.access_token}",
        "xero-tenant-id": connection.tenant_id, "Accept": "application/json"}).status_code


def test_the_same_xero_user_connecting_a_second_installation_leaves_the_first_alone(
        app_factory, fake_hubspot, fake_pipedrive, fake_xero):
    fake, fake_url = fake_xero
    fake.base_url = fake_url
    x, y = fake.add_tenant("Acme Pty Ltd"), fake.add_tenant("Acme NZ Ltd")
    app, url, a, b = _two_installations(app_factory, fake_hubspot, fake_pipedrive, fake_xero)
    fake.consent_tenants = [x]
    a.get(f"{url}/connect/xero")
    fake.consent_tenants = [y]  # the same Xero user ticks only the other organisation

    page = b.get(f"{url}/connect/xero")

    # B's sign-in authorised Y alone: no chooser offering A's organisation, nothing detached.
    assert page.url.startswith(f"{url}/ui/settings/"), page.url
    first, second = (one(app, XeroConnection, XeroConnection.installation_id == i)
                     for i in sorted(c.installation_id for c in _all(app)))
    assert (first.status, first.tenant_id) == (ConnectionStatus.CONNECTED, x)
    assert (second.status, second.tenant_id) == (ConnectionStatus.CONNECTED, y)
    assert {c.tenant_id for c in fake.connections} == {x, y}
    assert _organisation(fake, first) == 200 and _organisation(fake, second) == 200


def test_an_organisation_another_installation_uses_is_not_detached_by_the_chooser(
        app_factory, fake_hubspot, fake_pipedrive, fake_xero):
    fake, fake_url = fake_xero
    fake.base_url = fake_url
    x, y = fake.add_tenant("Acme Pty Ltd"), fake.add_tenant("Acme NZ Ltd")
    app, url, a, b = _two_installations(app_factory, fake_hubspot, fake_pipedrive, fake_xero)
    fake.consent_tenants = [x]
    a.get(f"{url}/connect/xero")
    fake.consent_tenants = [x, y]  # B's sign-in re-authorises X too: both are offered
    page = b.get(f"{url}/connect/xero")
    assert page.url == f"{url}/connect/xero/organisation"
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]

    b.post(f"{url}/connect/xero/organisation", data={"csrf_token": csrf, "tenant_id": y})

    first, second = (one(app, XeroConnection, XeroConnection.installation_id == i)
                     for i in sorted(c.installation_id for c in _all(app)))
    assert (second.status, second.tenant_id) == (ConnectionStatus.CONNECTED, y)
    assert {c.tenant_id for c in fake.connections} == {x, y}  # X stayed: A invoices into it
    assert _organisation(fake, first) == 200


def _all(app) -> list[XeroConnection]:
    from app.extensions import db

    with app.app_context():
        rows = db.session.scalars(db.select(XeroConnection)).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)
