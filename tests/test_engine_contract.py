"""Every request Paydeck's invoice engine sends Xero, checked against Xero's OpenAPI spec.

The engine runs a realistic mix (new and existing contacts, a draft authorised later, an
email, a lost response recovered by a Reference look-up) against the fake Xero behind a
recorder; each exchange on the wire is then validated with openapi-core.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from app import wiring
from app.engine import request_invoice, sync_installation
from app.extensions import db
from app.models import (
    ConnectionStatus,
    CrmKind,
    DealSyncRequest,
    Installation,
    InstallationSettings,
    StageAction,
    XeroConnection,
)
from sandbox.memory_crm import MemoryCrm, deal
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero
from tests.sandbox.test_xero_accounting_contract import (  # noqa: F401 - accounting_spec is a fixture
    Recorder,
    accounting_spec,
    check_ms_dates,
    without_sdk_read_only_defaults,
)


@pytest.fixture
def recorded(app_factory, monkeypatch):
    fake = FakeXero()
    tenant = fake.add_tenant("Acme Pty Ltd")
    recorder = Recorder(fake)
    crm = MemoryCrm()
    monkeypatch.setitem(wiring.ADAPTERS, "hubspot", crm)
    with LoopbackServer(recorder) as server:
        app = app_factory.create(xero_api_base=server.url)
        with app.app_context():
            installation = Installation(crm=CrmKind.HUBSPOT, account_id="1")
            db.session.add(installation)
            db.session.flush()
            db.session.add(InstallationSettings(installation_id=installation.id,
                                                default_account_code="200", default_tax_type="OUTPUT"))
            db.session.add(XeroConnection(
                installation_id=installation.id, tenant_id=tenant, status=ConnectionStatus.CONNECTED,
                access_token=fake.issue_token_for_tenant(tenant), refresh_token="unused",
                token_expires_at=datetime.now(timezone.utc) + timedelta(hours=1)))
            db.session.commit()
            yield app, fake, tenant, crm, recorder, installation.id


@pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")
def test_every_request_the_engine_sends_matches_the_xero_spec(recorded, accounting_spec):  # noqa: F811
    app, fake, tenant, crm, recorder, installation_id = recorded
    fake.accounting(tenant).add_contact("Globex", EmailAddress="ap@globex.example")
    crm.add(deal("1", org="Initech", email="ap@initech.example", lines=2))
    crm.add(deal("2", org="Globex", email="ap@globex.example"))
    crm.add(deal("3", org="Hooli", email="ap@hooli.example"))

    request_invoice(installation_id, "1", StageAction.DRAFT, "t")
    request_invoice(installation_id, "2", StageAction.AUTHORISE_AND_EMAIL, "t")
    sync_installation(installation_id)
    request_invoice(installation_id, "1", StageAction.AUTHORISE, "t")  # updates the draft
    fake.inject("lost_response", method="PUT", path_prefix="/Invoices")
    request_invoice(installation_id, "3", StageAction.AUTHORISE, "t")
    sync_installation(installation_id)
    db.session.execute(update(DealSyncRequest).values(not_before=None))
    db.session.commit()
    sync_installation(installation_id)  # recovers deal 3 by Reference

    assert len(fake.accounting(tenant).invoices) == 3
    operations = {(e.method, e.path.removeprefix("/api.xro/2.0").split("/")[1]) for e in recorder.exchanges}
    assert {("GET", "Contacts"), ("PUT", "Contacts"), ("PUT", "Invoices"), ("POST", "Invoices"),
            ("GET", "Invoices")} <= operations
    checked = 0
    for exchange in recorder.exchanges:
        if exchange.status == 0:  # the deliberately dropped response has none to check
            continue
        request = exchange.openapi_request(without_sdk_read_only_defaults(exchange))
        accounting_spec.validate_request(request)
        accounting_spec.validate_response(request, exchange.openapi_response())
        check_ms_dates(exchange, f"{exchange.method} {exchange.path}")
        checked += 1
    assert checked >= 10
