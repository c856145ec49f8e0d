"""Benchmark: CRM API calls per invoiced deal, reads plus writeback, for bursts of deals.

    .venv/bin/python -m bench.crm_calls [--burst 50]

For HubSpot and for Pipedrive: install Paydeck into the fake CRM through its real OAuth flow,
connect the fake Xero, move a burst of deals (each with its own company, contact and 1-3
products) to the trigger stage, deliver the CRM's webhooks, run the worker, and count the
calls the CRM and Xero received. Runs on a temporary SQLite file and an embedded Redis.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import flask_migrate
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.jobs import QUEUE
from app.models import Installation, InstallationSettings, InvoiceLink, StageAction, StageRule
from app.redis_conn import EmbeddedRedis, get_redis
from app.settings import PIPEDRIVE_SCOPES, Settings
from app.worker import PaydeckSimpleWorker
from sandbox.hubspot import FakeHubSpot
from sandbox.pipedrive import FakePipedrive
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero


def main() -> None:
    burst = _args().burst
    for run in (_hubspot, _pipedrive):
        with tempfile.TemporaryDirectory(prefix="paydeck-crm-calls-") as tmp:
            redis_server = EmbeddedRedis(Path(tmp) / "redis", persist=False)
            try:
                run(Path(tmp), redis_server.start(), burst)
            finally:
                redis_server.stop()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, default=50)
    return parser.parse_args()


class _Stack:
    """Paydeck on loopback beside the fakes, installed and connected through the real flows."""

    def __init__(self, tmp: Path, redis_url: str, crm: str, crm_fake: Any, xero: FakeXero) -> None:
        self.servers = [LoopbackServer(crm_fake).start(), LoopbackServer(xero).start()]
        crm_url, xero_url = self.servers[0].url, self.servers[1].url
        holder: dict[str, Any] = {}
        paydeck = LoopbackServer(lambda env, start: holder["app"](env, start)).start()
        self.servers.append(paydeck)
        self.url = paydeck.url
        values: dict[str, Any] = dict(
            instance_path=tmp, database_url=f"sqlite:///{tmp / 'bench.db'}", redis_url=redis_url,
            secret_key=secrets.token_urlsafe(48), encryption_keys=Fernet.generate_key().decode(), public_url=paydeck.url,
            xero_client_id=xero.client_id, xero_client_secret=xero.client_secret,
            xero_login_base=xero_url, xero_identity_base=xero_url, xero_api_base=xero_url)
        if crm == "hubspot":
            values.update(hubspot_client_id=crm_fake.client_id, hubspot_client_secret=crm_fake.client_secret,
                          hubspot_authorize_url=f"{crm_url}/oauth/authorize", hubspot_api_base=crm_url,
                          hubspot_app_id=str(crm_fake.app_id))
        else:
            values.update(pipedrive_client_id=crm_fake.client_id,
                          pipedrive_client_secret=crm_fake.client_secret, pipedrive_oauth_base=crm_url)
        self.app = holder["app"] = create_app(Settings(_env_file=None, **values))  # type: ignore[arg-type]
        with self.app.app_context():
            flask_migrate.upgrade()
        browser = requests.Session()
        assert browser.get(f"{self.url}/install/{crm}", timeout=10).status_code == 200
        assert browser.get(f"{self.url}/connect/xero", timeout=10).status_code == 200
        self.work()  # the install's setup job

    def rule(self, stage_id: str) -> None:
        with self.app.app_context():
            installation = db.session.scalars(select(Installation)).one()
            settings = db.session.get(InstallationSettings, installation.id)
            settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
            db.session.add(StageRule(installation_id=installation.id, pipeline_id="1",
                                     stage_id=stage_id, action=StageAction.AUTHORISE))
            db.session.commit()

    def work(self) -> None:
        with self.app.app_context():
            PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=self.app).work(burst=True)

    def invoiced(self) -> int:
        with self.app.app_context():
            return len(db.session.scalars(select(InvoiceLink.id).where(
                InvoiceLink.xero_invoice_id.is_not(None))).all())

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def _hubspot(tmp: Path, redis_url: str, burst: int) -> None:
    hubspot, xero = FakeHubSpot(), FakeXero()
    xero.add_tenant("Bench Pty Ltd")
    stack = _Stack(tmp, redis_url, "hubspot", hubspot, xero)
    try:
        stack.rule("closedwon")
        hubspot.subscribe(f"{stack.url}/webhooks/hubspot", hubspot.client_secret)
        products = [hubspot.crm.add_product(name=f"Product {p}", price="100.00", hs_sku=f"SKU-{p}")
                    for p in range(3)]
        deals = []
        for n in range(burst):
            company = hubspot.crm.add_company(name=f"Company {n}", domain=f"c{n}.example")
            contact = hubspot.crm.add_contact(company_id=company, email=f"ap@c{n}.example",
                                              firstname="Pat", lastname=f"Buyer {n}")
            deals.append(hubspot.crm.add_deal(
                dealname=f"Deal {n}", company_id=company, contact_ids=[contact],
                line_items=[{"hs_product_id": products[i], "quantity": "1"} for i in range(1 + n % 3)]))
        hubspot.deliver()
        for deal_id in deals:
            hubspot.crm.set_deal_properties(deal_id, dealstage="closedwon")
        webhook_posts = len(hubspot.deliver())
        hubspot.clear_crm_calls()
        xero_before = xero.count_calls()
        stack.work()
        _report("HubSpot", burst, webhook_posts, hubspot.count_crm_calls(),
                xero.count_calls() - xero_before, stack.invoiced(),
                sum(1 for d in deals if hubspot.crm.deal(d).get("paydeck_invoice_number")))
    finally:
        stack.close()


def _pipedrive(tmp: Path, redis_url: str, burst: int) -> None:
    pipedrive, xero = FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split())), FakeXero()
    xero.add_tenant("Bench Pty Ltd")
    stack = _Stack(tmp, redis_url, "pipedrive", pipedrive, xero)
    try:
        won = pipedrive.api.stage_id("Won")
        stack.rule(str(won))
        with stack.app.app_context():
            fields = db.session.scalars(select(Installation)).one().crm_fields
        products = [pipedrive.api.add_product(f"Product {p}", code=f"SKU-{p}", price=Decimal("100"))
                    for p in range(3)]
        deals = []
        for n in range(burst):
            org = pipedrive.api.add_org(f"Company {n}")
            person = pipedrive.api.add_person(f"Pat Buyer {n}", email=f"ap@c{n}.example", org_id=org)
            deals.append(pipedrive.api.add_deal(
                f"Deal {n}", org_id=org, person_id=person,
                products=[{"product_id": products[i], "quantity": 1} for i in range(1 + n % 3)]))
        pipedrive.deliver()
        for deal_id in deals:
            pipedrive.api.move_deal(deal_id, won)
        webhook_posts = len(pipedrive.deliver())
        calls_before, xero_before = len(pipedrive.api_calls), xero.count_calls()
        stack.work()
        written = sum(1 for d in deals
                      if pipedrive.api.deal(d).custom_fields.get(fields["invoice_number"]))
        _report("Pipedrive", burst, webhook_posts, len(pipedrive.api_calls) - calls_before,
                xero.count_calls() - xero_before, stack.invoiced(), written)
    finally:
        stack.close()


def _report(crm: str, burst: int, posts: int, crm_calls: int, xero_calls: int, invoiced: int,
            written: int) -> None:
    print(f"{crm}: a burst of {burst} deals moved to the trigger stage ({posts} webhook POSTs)")
    print(f"  invoices created             {invoiced}  (written back onto {written} deals)")
    print(f"  {crm} calls                  {crm_calls}  = {crm_calls / burst:.2f} per deal "
          f"(reads + writeback{'; target <= 3' if crm == 'HubSpot' else ''})")
    print(f"  Xero calls                   {xero_calls}  = {xero_calls / burst:.2f} per deal")


if __name__ == "__main__":
    main()
