"""Installing into a Pipedrive company and its uninstall callback, over HTTP against the fake."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
import requests
from rq import Queue
from sqlalchemy import select

from app.extensions import db
from app.queueing import QUEUE
from app.models import AuditEvent, Installation, InstallationStatus
from app.redis_conn import connect, get_redis
from tests.conftest import fake_settings
from tests.helpers import count, one, raw_rows


def _install(app_factory, fake_pipedrive, browser):
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive))
    page = browser.get(f"{url}/install/pipedrive")
    return app, url, page


def test_install_queues_the_crm_setup_job(app_factory, fake_pipedrive, browser):
    app, _, _ = _install(app_factory, fake_pipedrive, browser)

    jobs = Queue(QUEUE, connection=connect(app_factory.redis_url)).jobs
    assert [(j.func_name, j.args) for j in jobs] == [("app.jobs.setup_crm", (one(app, Installation).id,))]


def test_install_keeps_company_id_and_api_domain(app_factory, fake_pipedrive, browser):
    fake, fake_url = fake_pipedrive

    app, url, page = _install(app_factory, fake_pipedrive, browser)

    installation = one(app, Installation)
    assert page.status_code == 200 and page.url.startswith(f"{url}/ui/settings/{installation.id}?t=")
    assert installation.crm.value == "pipedrive"
    assert installation.account_id == str(fake.company_id)
    assert installation.api_domain == fake_url  # from the token response, not configured
    assert installation.webhook_user and installation.webhook_password
    assert fake.grant_for(installation.access_token) is not None
    raw = raw_rows(app, "installation")[0]
    assert installation.webhook_password not in str(raw)
    assert installation.refresh_token not in str(raw)


def test_reinstall_keeps_one_installation_and_its_webhook_credentials(app_factory, fake_pipedrive, browser):
    app, url, _ = _install(app_factory, fake_pipedrive, browser)
    first = one(app, Installation)

    browser.get(f"{url}/install/pipedrive")

    again = one(app, Installation)
    assert count(app, Installation) == 1
    assert again.webhook_user == first.webhook_user
    assert again.access_token != first.access_token


def test_denied_consent_stores_nothing(app_factory, fake_pipedrive, browser):
    fake, _ = fake_pipedrive
    fake.next_consent = "deny"

    app, _, page = _install(app_factory, fake_pipedrive, browser)

    assert page.status_code == 400
    assert count(app, Installation) == 0


def test_uninstall_callback_forgets_tokens_keeps_data_and_revokes_xero(app_factory, fake_pipedrive, browser):
    fake, _ = fake_pipedrive
    app, url, _ = _install(app_factory, fake_pipedrive, browser)
    installation_id = one(app, Installation).id

    response = fake.send_uninstall(f"{url}/oauth/pipedrive/callback")

    assert response.status_code == 200
    installation = one(app, Installation)
    assert installation.status == InstallationStatus.UNINSTALLED
    assert installation.access_token is None and installation.refresh_token is None
    assert installation.uninstalled_at is not None
    assert count(app, AuditEvent, AuditEvent.action == "uninstalled") == 1
    jobs = Queue(QUEUE, connection=connect(app_factory.redis_url)).jobs
    assert [(j.func_name, j.args) for j in jobs if j.func_name != "app.jobs.setup_crm"] == [
        ("app.jobs.revoke_xero", (installation_id,))]
    # The admin's session no longer opens pages of an uninstalled installation.
    assert browser.get(f"{url}/setup").status_code == 401


def test_uninstall_with_wrong_credentials_is_refused(app_factory, fake_pipedrive, browser):
    fake, _ = fake_pipedrive
    app, url, _ = _install(app_factory, fake_pipedrive, browser)

    response = fake.send_uninstall(f"{url}/oauth/pipedrive/callback", client_secret="wrong")

    assert response.status_code == 401
    assert one(app, Installation).status == InstallationStatus.ACTIVE
    jobs = Queue(QUEUE, connection=connect(app_factory.redis_url)).jobs
    assert [j.func_name for j in jobs] == ["app.jobs.setup_crm"]  # from the install only


def test_uninstall_with_malformed_body_is_400(app_factory, fake_pipedrive, browser):
    fake, _ = fake_pipedrive
    app, url, _ = _install(app_factory, fake_pipedrive, browser)
    auth = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()

    response = requests.delete(f"{url}/oauth/pipedrive/callback", data="{not json", timeout=5,
                               headers={"Authorization": f"Basic {auth}",
                                        "Content-Type": "application/json"})

    assert response.status_code == 400
    assert one(app, Installation).status == InstallationStatus.ACTIVE


@pytest.mark.parametrize("api_domain", [
    "https://acme.pipedrive.com", "https://pipedrive.com", "https://Acme.Pipedrive.com/",
])
def test_pipedrive_api_domains_are_accepted(app_factory, api_domain):
    from crm_adapters.pipedrive import checked_api_domain

    settings = app_factory.settings()
    assert checked_api_domain(api_domain, settings.pipedrive_oauth_base) == api_domain.rstrip("/")


@pytest.mark.parametrize("api_domain", [
    "http://acme.pipedrive.com",            # plain http
    "https://acme.pipedrive.com.evil.io",   # not a pipedrive.com host
    "https://evilpipedrive.com",
    "https://user:pw@acme.pipedrive.com",   # credentials in the URL
    "https://acme.pipedrive.com:8443",      # a port of its own
    "https://acme.pipedrive.com/api",       # a path of its own
    "http://127.0.0.1:8080",                # loopback outside the sandbox
    "", "javascript:alert(1)",
])
def test_an_api_domain_that_is_not_pipedrives_is_refused(app_factory, api_domain):
    """Issue #12: the token response's api_domain receives the company's bearer token."""
    from crm_adapters.base import CrmError
    from crm_adapters.pipedrive import checked_api_domain

    settings = app_factory.settings(pipedrive_oauth_base="https://oauth.pipedrive.com")
    with pytest.raises(CrmError):
        checked_api_domain(api_domain, settings.pipedrive_oauth_base)


def test_loopback_http_is_allowed_only_against_a_loopback_sandbox(app_factory):
    from crm_adapters.pipedrive import checked_api_domain

    sandbox = app_factory.settings(pipedrive_oauth_base="http://127.0.0.1:5002")
    assert checked_api_domain("http://127.0.0.1:5002", sandbox.pipedrive_oauth_base) == "http://127.0.0.1:5002"
# --- reinstall after uninstall: fresh webhook credentials, fresh webhooks ----------------------

def _work(app) -> None:
    from app.worker import PaydeckSimpleWorker

    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def _stage_rule(app, stage_id: int) -> SimpleNamespace:
    """Make sure the installation has a rule for `stage_id`; what it is now."""
    from app.models import StageAction, StageRule

    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        if not db.session.scalar(select(StageRule).where(StageRule.installation_id == installation.id)):
            db.session.add(StageRule(installation_id=installation.id, pipeline_id="1",
                                     stage_id=str(stage_id), action=StageAction.DRAFT))
            db.session.commit()
        return SimpleNamespace(id=installation.id, status=installation.status,
                               webhook_user=installation.webhook_user,
                               webhook_password=installation.webhook_password)


def _stage_event(fake, installation: SimpleNamespace, deal_id: int, stage_id: int, event: str) -> dict:
    """A v2 deal change body as Pipedrive sends it (guide-for-webhooks-v2)."""
    return {"meta": {"action": "change", "entity": "deal", "entity_id": str(deal_id),
                     "company_id": str(fake.company_id), "user_id": str(fake.user_id),
                     "id": event, "version": "2.0"},
            "data": {"id": deal_id, "stage_id": stage_id}, "previous": {"stage_id": 1}}


def test_reinstall_after_uninstall_registers_fresh_webhooks_with_fresh_credentials(
        app_factory, fake_pipedrive, browser):
    fake, _ = fake_pipedrive
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive))
    assert browser.get(f"{url}/install/pipedrive").status_code == 200
    _work(app)  # the setup job: deal fields and the two webhooks
    won = fake.api.stage_id("Won")
    first = _stage_rule(app, won)
    hook_url = f"{url}/webhooks/pipedrive/{first.id}"
    assert {(w.event_action, w.http_auth_user, w.name is not None) for w in fake.webhooks} == {
        ("change", first.webhook_user, True), ("create", first.webhook_user, True),
        ("delete", first.webhook_user, True)}
    old_ids = {w.id for w in fake.webhooks}
    # An uninstall whose webhook removal did not happen (or that we cannot see): the old hooks
    # survive with the old credentials.
    assert fake.send_uninstall(f"{url}/oauth/pipedrive/callback",
                               remove_webhooks=False).status_code == 200

    assert browser.get(f"{url}/install/pipedrive").status_code == 200
    _work(app)

    again = _stage_rule(app, won)
    assert again.id == first.id and again.status == InstallationStatus.ACTIVE
    assert again.webhook_user != first.webhook_user
    assert again.webhook_password != first.webhook_password
    hooks = fake.webhooks
    assert {(w.event_action, w.subscription_url) for w in hooks} == {("change", hook_url),
                                                                     ("create", hook_url),
                                                                     ("delete", hook_url)}
    assert all(w.http_auth_user == again.webhook_user
               and w.http_auth_password == again.webhook_password for w in hooks)
    assert not old_ids & {w.id for w in hooks}  # the stale hooks were deleted
    deal_id = fake.api.add_deal("Website")
    body = _stage_event(fake, again, deal_id, won, "ev-new")
    fresh = requests.post(hook_url, json=body, timeout=5,
                          auth=(again.webhook_user, again.webhook_password))
    assert fresh.status_code == 200 and fresh.json()["enqueued"] == 1
    stale = requests.post(hook_url, json=_stage_event(fake, again, deal_id, won, "ev-old"),
                          timeout=5, auth=(first.webhook_user, first.webhook_password))
    assert stale.status_code == 401
    # And Pipedrive's own deliveries, made with what the hooks carry, are accepted.
    fake.api.move_deal(deal_id, fake.api.stage_id("Contact Made"))
    deliveries = fake.deliver()  # the deal's create and its stage change
    assert len(deliveries) == 2 and {d.status for d in deliveries} == {200}


def test_re_consent_without_uninstall_keeps_the_webhooks_working(app_factory, fake_pipedrive,
                                                                browser):
    fake, _ = fake_pipedrive
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive))
    assert browser.get(f"{url}/install/pipedrive").status_code == 200
    _work(app)
    first = _stage_rule(app, fake.api.stage_id("Won"))
    hooks_before = {w.id for w in fake.webhooks}

    assert browser.get(f"{url}/install/pipedrive").status_code == 200
    _work(app)

    again = _stage_rule(app, fake.api.stage_id("Won"))
    assert (again.webhook_user, again.webhook_password) == (first.webhook_user,
                                                            first.webhook_password)
    assert {w.id for w in fake.webhooks} == hooks_before  # nothing re-created or lost
    deal_id = fake.api.add_deal("Website")
    fake.api.move_deal(deal_id, fake.api.stage_id("Won"))
    deliveries = fake.deliver()
    assert deliveries and {d.status for d in deliveries} == {200}
