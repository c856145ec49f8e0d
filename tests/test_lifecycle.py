"""Installation lifecycle: once an installation is uninstalled, no job calls its CRM or its Xero
organisation - while another, active installation is served as before. Over real HTTP against
the fake Pipedrive, HubSpot and Xero, whose call logs are the evidence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rq import Queue
from sqlalchemy import select

from app import followup
from app.engine.job import enqueue_sync, sweep_waiting_requests
from app.extensions import db
from app.jobs import enqueue_setup_crm, keep_xero_connections_alive
from app.models import (
    AuditEvent,
    CrmKind,
    DealSyncRequest,
    Installation,
    InstallationSettings,
    InstallationStatus,
    InvoiceLink,
    InvoiceLinkState,
    ReviewItem,
    ReviewReason,
    StageAction,
    XeroConnection,
)
from app.followup import alert_admins, overdue_sweep
from app.payments import (
    note_changed_invoices,
    poll_due_connections,
    poll_invoices,
    refresh_invoices,
)
from app.queueing import QUEUE, enqueue_once
from app.redis_conn import get_redis
from app.worker import PaydeckSimpleWorker
from app.writeback import write_back_deals
from tests.conftest import Browser, fake_settings

LONG_AGO = datetime.now(timezone.utc) - timedelta(days=30)


@dataclass
class Side:
    """One installation as the test set it up."""

    installation_id: int
    connection_id: int
    tenant_id: str
    deal_id: str
    invoice_id: str
    admin: str


def work(app) -> None:
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def _connect(url: str, crm: str, xero, tenant_id: str) -> Browser:
    browser = Browser()
    assert browser.get(f"{url}/install/{crm}").status_code == 200
    xero.consent_tenants = [tenant_id]  # the same Xero user, one organisation per installation
    assert browser.get(f"{url}/connect/xero").status_code == 200
    return browser


def _seed(app, xero, crm: CrmKind, deal_id: str) -> Side:
    """An overdue authorised invoice for the deal, a waiting request, an open review item, and
    a Xero grant the keep-alive would refresh."""
    with app.app_context():
        installation = db.session.scalars(select(Installation).where(
            Installation.crm == crm)).one()
        connection = installation.xero_connection
        tenant_id = connection.tenant_id
        books = xero.accounting(tenant_id)
        contact = books.add_contact("Initech Pty Ltd")
        invoice = books.add_invoice({
            "Type": "ACCREC", "Contact": {"ContactID": contact.contact_id}, "Status": "AUTHORISED",
            "Date": "2026-10-01", "DueDate": "2026-10-31", "LineAmountTypes": "Exclusive",
            "LineItems": [{"Description": "Consulting", "Quantity": 1, "UnitAmount": 100,
                           "AccountCode": "200", "TaxType": "OUTPUT"}]})
        db.session.add(InvoiceLink(
            installation_id=installation.id, deal_id=deal_id, state=InvoiceLinkState.CREATED,
            reference=f"{crm.value} deal {deal_id}", idempotency_key=f"k-{crm.value}",
            xero_invoice_id=invoice.invoice_id, invoice_number=invoice.invoice_number,
            status="AUTHORISED", currency="AUD", total=Decimal("110.00"),
            amount_due=Decimal("110.00"), amount_paid=Decimal("0"), due_date=date(2026, 10, 31)))
        db.session.add(DealSyncRequest(installation_id=installation.id, deal_id=deal_id,
                                       action=StageAction.DRAFT, source="test",
                                       requested_at=LONG_AGO))
        db.session.add(ReviewItem(installation_id=installation.id, deal_id=deal_id,
                                  reason=ReviewReason.SYNC_FAILED, detail="look at me"))
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        connection.token_refreshed_at = LONG_AGO  # due for the keep-alive
        db.session.commit()
        return Side(installation.id, connection.id, tenant_id, deal_id, invoice.invoice_id,
                    installation.installed_by)


@pytest.fixture
def two(app_factory, fake_pipedrive, fake_hubspot, fake_xero, monkeypatch):
    """A (Pipedrive) and B (HubSpot), each connected to its own organisation, then A is
    uninstalled. A's Xero revocation is still pending (Xero down: it retries for hours), so
    its Xero grant is as alive as B's: only the installation's status stands between the jobs
    and A's organisation."""
    pipedrive, _ = fake_pipedrive
    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    x, y = xero.add_tenant("Gone Pty Ltd"), xero.add_tenant("Stays Pty Ltd")
    app, url = app_factory.serve(smtp_host="127.0.0.1",
                                 **fake_settings(hubspot=fake_hubspot, pipedrive=fake_pipedrive,
                                                 xero=fake_xero))
    _connect(url, "pipedrive", xero, x)
    _connect(url, "hubspot", xero, y)
    work(app)  # both setup jobs
    a = _seed(app, xero, CrmKind.PIPEDRIVE, str(pipedrive.api.add_deal("Website")))
    b = _seed(app, xero, CrmKind.HUBSPOT, hubspot.crm.add_deal({"dealname": "Website"}))
    assert pipedrive.send_uninstall(f"{url}/oauth/pipedrive/callback").status_code == 200
    with app.app_context():
        queue = Queue(QUEUE, connection=get_redis())
        (revoke,) = [j for j in queue.jobs if j.id == f"revoke-xero-{a.installation_id}"]
        revoke.delete()
    emails: list[str] = []
    monkeypatch.setattr(followup, "_send_email", lambda to, subject, body: emails.append(to))
    return app, a, b, emails


def test_no_job_calls_the_crm_or_xero_of_an_uninstalled_installation(
        two, fake_pipedrive, fake_hubspot, fake_xero):
    app, a, b, emails = two
    pipedrive, hubspot, xero = fake_pipedrive[0], fake_hubspot[0], fake_xero[0]
    pipedrive_calls, hubspot_calls = len(pipedrive.api_calls), len(hubspot.crm_calls)
    refreshes = xero.refresh_count
    xero_a, xero_b = (xero.count_calls(tenant_id=t) for t in (a.tenant_id, b.tenant_id))

    with app.app_context():
        keep_xero_connections_alive()
        poll_due_connections()
        note_changed_invoices({a.tenant_id: {a.invoice_id}, b.tenant_id: {b.invoice_id}})
        overdue_sweep()
        alert_admins()
        sweep_waiting_requests()
    _jobs_for_a(app, a, b, emails)  # every job type, asked for directly for A
    work(app)

    _a_untouched(app, a, pipedrive, xero, pipedrive_calls, xero_a)
    with app.app_context():
        assert db.session.get(Installation, a.installation_id).status == InstallationStatus.UNINSTALLED
        assert db.session.scalars(select(DealSyncRequest.deal_id).where(
            DealSyncRequest.installation_id == a.installation_id)).all() == [a.deal_id]
        link_a = db.session.scalars(select(InvoiceLink).where(
            InvoiceLink.installation_id == a.installation_id)).one()
        assert link_a.overdue_notified_at is None
        # B: served as before - its grant kept alive, its organisation read, its CRM told.
        stays = db.session.get(XeroConnection, b.connection_id)
        assert stays.token_refreshed_at > LONG_AGO
        assert db.session.scalar(select(AuditEvent.id).where(
            AuditEvent.installation_id == b.installation_id,
            AuditEvent.action == "overdue_notice")) is not None
        assert db.session.scalars(select(DealSyncRequest.deal_id).where(
            DealSyncRequest.installation_id == b.installation_id)).all() == []
    assert xero.refresh_count == refreshes + 1  # B's keep-alive only
    assert xero.count_calls(tenant_id=b.tenant_id) > xero_b
    assert len(hubspot.crm_calls) > hubspot_calls
    assert emails == [b.admin]


def _a_untouched(app, a, pipedrive, xero, pipedrive_calls: int, xero_a: int) -> str | None:
    """A: nothing reached Pipedrive, A's Xero organisation or Xero's token endpoint for A.
    Returns A's (unused) refresh token."""
    assert len(pipedrive.api_calls) == pipedrive_calls
    assert xero.count_calls(tenant_id=a.tenant_id) == xero_a
    with app.app_context():
        gone = db.session.get(XeroConnection, a.connection_id)
        assert gone.token_refreshed_at == LONG_AGO
        return gone.refresh_token


# One job at a time, so each guard has a test of its own: (run it; what shows B was served).
def _keepalive(app, a, b, emails):
    with app.app_context():
        return keep_xero_connections_alive()["checked"] == 1


def _poll(app, a, b, emails):
    with app.app_context():
        started = poll_due_connections()
    return started == 1


def _xero_webhook(app, a, b, emails):
    with app.app_context():
        return note_changed_invoices({a.tenant_id: {a.invoice_id},
                                      b.tenant_id: {b.invoice_id}}) == 1


def _overdue(app, a, b, emails):
    with app.app_context():
        return overdue_sweep() == 1


def _alerts(app, a, b, emails):
    with app.app_context():
        alert_admins()
    return emails == [b.admin]


def _sweep(app, a, b, emails):
    with app.app_context():
        return sweep_waiting_requests() == 1  # B's waiting deal only


def _write_back(app, a, b, emails):
    from app.writeback import link_fields, write_back

    with app.app_context():
        for side in (a, b):
            installation = db.session.get(Installation, side.installation_id)
            link = db.session.scalars(select(InvoiceLink).where(
                InvoiceLink.installation_id == side.installation_id)).one()
            write_back(installation, [link_fields(link)])
    return True


def _jobs_for_a(app, a, b, emails):
    """Each job type asked for A directly (a stale queue entry, a retry)."""
    with app.app_context():
        enqueue_sync(a.installation_id)
        enqueue_setup_crm(a.installation_id)
        enqueue_once(refresh_invoices, a.connection_id, job_id="refresh-a")
        enqueue_once(poll_invoices, a.connection_id, job_id="poll-a")
        enqueue_once(write_back_deals, a.installation_id, [a.deal_id], job_id="writeback-a")
    return True


@pytest.mark.parametrize("job", [_keepalive, _poll, _xero_webhook, _overdue, _alerts, _sweep,
                                 _write_back, _jobs_for_a], ids=lambda f: f.__name__.strip("_"))
def test_each_job_leaves_an_uninstalled_installation_alone(
        two, fake_pipedrive, fake_xero, job):
    app, a, b, emails = two
    pipedrive, xero = fake_pipedrive[0], fake_xero[0]
    pipedrive_calls, xero_a = len(pipedrive.api_calls), xero.count_calls(tenant_id=a.tenant_id)
    refreshes = [r["refresh_token"] for r in xero.token_requests if r["grant_type"] == "refresh_token"]

    assert job(app, a, b, emails)  # B was served (or asked for)
    work(app)

    a_refresh_token = _a_untouched(app, a, pipedrive, xero, pipedrive_calls, xero_a)
    assert a_refresh_token not in [r["refresh_token"] for r in xero.token_requests
                                   if r["grant_type"] == "refresh_token"][len(refreshes):]
    assert a.admin not in emails


# --- HubSpot: no uninstall notification; Paydeck notices from the tokens ----------------------

@pytest.fixture
def hubspot_refresh(monkeypatch):
    """HubSpot's refresh needs client_id in the form; this branch's app.oauth.refresh leaves it
    out (requests-oauthlib ignores include_client_id there), so HubSpot - and its fake - answer
    invalid_client. Branch w10-refresh fixes that (its app.oauth.token_form). Until it is
    merged, stand in for that fix here - and only where it is missing."""
    import app.oauth as oauth
    import app.tokens as tokens

    if hasattr(oauth, "token_form"):
        return
    from requests_oauthlib import OAuth2Session

    def refresh(p, refresh_token, timeout):
        session = OAuth2Session(p.client_id)
        return oauth._token_call(p, lambda kw: session.refresh_token(
            p.token_url, refresh_token=refresh_token, client_id=p.client_id, **kw), timeout)

    monkeypatch.setattr(tokens, "refresh", refresh)


def test_a_hubspot_uninstall_is_noticed_from_the_tokens_and_then_left_alone(
        xero_connected, fake_hubspot, fake_xero, browser, hubspot_refresh):
    app, url, connection_id = xero_connected
    hubspot, xero = fake_hubspot[0], fake_xero[0]
    work(app)  # the setup job: Paydeck's deal properties
    side = _seed(app, xero, CrmKind.HUBSPOT, hubspot.crm.add_deal({"dealname": "Website"}))
    assert hubspot.uninstall_app() == 1  # in HubSpot's UI: no callback, no webhook to us

    # The next job that talks to HubSpot gets a 401 with an access token that had not expired;
    # one refresh, refused, tells Paydeck the grant is gone.
    with app.app_context():
        sweep_waiting_requests()
    work(app)

    with app.app_context():
        installation = db.session.get(Installation, side.installation_id)
        assert installation.status == InstallationStatus.RECONNECT_NEEDED
        assert db.session.scalar(select(ReviewItem.id).where(
            ReviewItem.installation_id == side.installation_id,
            ReviewItem.reason == ReviewReason.RECONNECT_NEEDED)) is not None
    refreshes = [r for r in hubspot.token_requests if r["grant_type"] == "refresh_token"]
    assert [r["error"] for r in refreshes] == ["invalid_grant"]
    crm_calls, xero_calls = len(hubspot.crm_calls), xero.count_calls(tenant_id=side.tenant_id)
    xero_refreshes = xero.refresh_count

    with app.app_context():
        keep_xero_connections_alive()
        poll_due_connections()
        note_changed_invoices({side.tenant_id: {side.invoice_id}})
        overdue_sweep()
        sweep_waiting_requests()
        enqueue_sync(side.installation_id)
        enqueue_once(write_back_deals, side.installation_id, [side.deal_id], job_id="wb")
    work(app)

    assert len(hubspot.crm_calls) == crm_calls
    assert xero.count_calls(tenant_id=side.tenant_id) == xero_calls
    assert xero.refresh_count == xero_refreshes
    assert hubspot.refresh_count == 1

    # Installing again brings it back, and the deal that waited is served.
    assert browser.get(f"{url}/install/hubspot").status_code == 200
    with app.app_context():
        assert db.session.get(Installation, side.installation_id).status == InstallationStatus.ACTIVE
        sweep_waiting_requests()
    work(app)
    assert len(hubspot.crm_calls) > crm_calls
    with app.app_context():
        assert db.session.scalars(select(DealSyncRequest).where(
            DealSyncRequest.installation_id == side.installation_id)).all() == []
