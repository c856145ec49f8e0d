"""Installing Paydeck into a HubSpot portal, end to end over HTTP against the fake HubSpot."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from app.models import AuditEvent, Installation, InstallationSettings, InstallationStatus
from tests.conftest import fake_settings
from tests.helpers import count, one, raw_rows


def _serve(app_factory, fake_hubspot):
    return app_factory.serve(**fake_settings(hubspot=fake_hubspot))


def test_install_stores_one_installation_for_the_portal(app_factory, fake_hubspot, browser):
    fake, _ = fake_hubspot
    app, url = _serve(app_factory, fake_hubspot)

    page = browser.get(f"{url}/install/hubspot")

    installation = one(app, Installation)
    assert page.status_code == 200
    assert page.url.startswith(f"{url}/ui/settings/{installation.id}?t=")  # /setup -> settings
    assert str(fake.portal_id) in page.text
    assert installation.crm.value == "hubspot"
    assert installation.account_id == str(fake.portal_id)
    assert installation.status == InstallationStatus.ACTIVE
    assert installation.installed_by == fake.user_email
    assert fake.grant_for(installation.access_token) is not None
    assert installation.refresh_token
    assert count(app, InstallationSettings) == 1
    assert count(app, AuditEvent, AuditEvent.action == "installed") == 1


def test_authorize_request_carries_scopes_state_and_our_callback(app_factory, fake_hubspot, browser):
    app, url = _serve(app_factory, fake_hubspot)

    first = browser.get(f"{url}/install/hubspot", allow_redirects=False)

    query = parse_qs(urlsplit(first.headers["Location"]).query)
    assert query["redirect_uri"] == [f"{url}/oauth/hubspot/callback"]
    assert "crm.objects.deals.write" in query["scope"][0].split()
    assert len(query["state"][0]) >= 32


def test_reinstall_updates_the_installation_instead_of_duplicating(app_factory, fake_hubspot, browser):
    app, url = _serve(app_factory, fake_hubspot)
    browser.get(f"{url}/install/hubspot")
    first_token = one(app, Installation).access_token

    again = browser.get(f"{url}/install/hubspot")

    assert again.status_code == 200
    assert count(app, Installation) == 1
    assert one(app, Installation).access_token != first_token
    assert count(app, AuditEvent, AuditEvent.action == "reinstalled") == 1


def test_tokens_are_not_stored_in_plain_text(app_factory, fake_hubspot, browser):
    app, url = _serve(app_factory, fake_hubspot)
    browser.get(f"{url}/install/hubspot")
    installation = one(app, Installation)

    raw = raw_rows(app, "installation")[0]

    assert installation.access_token not in str(raw)
    assert installation.refresh_token not in str(raw)
    assert raw["access_token"].startswith("gAAAA")  # a Fernet token


def _callback_url(browser, url):
    """Start an install and return the callback URL the CRM sends the browser to."""
    to_crm = browser.get(f"{url}/install/hubspot", allow_redirects=False).headers["Location"]
    return browser.get(to_crm, allow_redirects=False).headers["Location"]


def test_replayed_callback_is_refused_and_stores_nothing_more(app_factory, fake_hubspot, browser):
    app, url = _serve(app_factory, fake_hubspot)
    callback = _callback_url(browser, url)
    assert browser.get(callback).status_code == 200
    tokens_before = one(app, Installation).access_token

    replay = browser.get(callback)

    assert replay.status_code == 400
    assert "expired" in replay.text
    assert one(app, Installation).access_token == tokens_before


def test_forged_state_is_refused(app_factory, fake_hubspot, browser):
    app, url = _serve(app_factory, fake_hubspot)
    callback = _callback_url(browser, url)
    forged = callback.replace("state=", "state=x")

    response = browser.get(forged)

    assert response.status_code == 400
    assert count(app, Installation) == 0


def test_state_from_another_browser_is_refused(app_factory, fake_hubspot, browser):
    """Login CSRF: an attacker's callback link opened in the victim's browser."""
    from tests.conftest import Browser

    app, url = _serve(app_factory, fake_hubspot)
    with Browser() as attacker:
        callback = _callback_url(attacker, url)

    response = browser.get(callback)

    assert response.status_code == 400
    assert count(app, Installation) == 0


def test_denied_consent_shows_a_clear_page_and_stores_nothing(app_factory, fake_hubspot, browser):
    fake, _ = fake_hubspot
    app, url = _serve(app_factory, fake_hubspot)
    fake.next_consent = "deny"

    response = browser.get(f"{url}/install/hubspot")

    assert response.status_code == 400
    assert "Install cancelled" in response.text
    assert "access_denied" in response.text
    assert count(app, Installation) == 0


def test_expired_code_shows_a_clear_page_and_stores_nothing(app_factory, fake_hubspot, browser):
    fake, _ = fake_hubspot
    app, url = _serve(app_factory, fake_hubspot)
    callback = _callback_url(browser, url)
    fake.expire_codes()

    response = browser.get(callback)

    assert response.status_code == 400
    assert "Start the install again" in response.text
    assert count(app, Installation) == 0


def test_install_without_credentials_configured_says_so(app_factory, browser):
    app, url = app_factory.serve()

    response = browser.get(f"{url}/install/hubspot")

    assert response.status_code == 503
    assert "not set" in response.text


def test_setup_page_needs_an_installation_session(app_factory, browser):
    app, url = app_factory.serve()

    assert browser.get(f"{url}/setup").status_code == 401


def test_a_callback_opened_in_the_wrong_browser_leaves_the_state_for_the_installer(
        app_factory, fake_hubspot, browser):
    """Issue #12: the wrong browser's visit must not spend the real installer's `state`."""
    from tests.conftest import Browser

    app, url = _serve(app_factory, fake_hubspot)
    callback = _callback_url(browser, url)  # the installer's own consent, not yet returned
    with Browser() as other:
        assert other.get(callback).status_code == 400

    response = browser.get(callback)

    assert response.status_code == 200
    assert count(app, Installation) == 1
