"""Benchmark: a change on one side of a contact link -> the other side shows it, through the
webhooks both fakes deliver, with real (forking) RQ workers.

    .venv/bin/python -m bench.contact_latency [--changes 15] [--workers 2]

Paydeck runs on loopback beside the fake HubSpot and the fake Xero, installed and connected
through the real OAuth flows (as bench/crm_calls.py does), with contact sync on and
`--changes` linked company/contact pairs, synced once. Then, one change at a time:

- CRM -> Xero: a company's phone is edited in HubSpot; the fake delivers its
  company.propertyChange webhook; the time runs until the fake Xero's contact holds the phone.
- Xero -> CRM: a contact's phone is edited in Xero; the fake delivers its CONTACT webhook; the
  time runs until the HubSpot company holds it.

Latency includes the webhook POST and Paydeck's answer; the vendors' own delivery delay
(typically seconds) is not Paydeck's and is not included. Each direction starts in a fresh
Xero minute: Xero allows 60 calls a minute per organisation and contact sync keeps 20 of them
for invoicing (CONTACT_SYNC_RESERVE), so 15 changes a minute is what fits at 2 calls each.
Runs on a temporary SQLite file and an embedded Redis.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask_migrate
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.contact_sync.safety_net import catch_up_crm, catch_up_xero
from app.extensions import db
from app.factory import create_app
from app.models import ContactLink, ContactSyncSettings, Installation
from app.queueing import QUEUE
from app.redis_conn import EmbeddedRedis, get_redis
from app.settings import Settings
from app.worker import PaydeckSimpleWorker, PaydeckWorker
from sandbox.hubspot import FakeHubSpot
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero

KEY = "bench-webhook-key"
MANIFEST = (Path(__file__).resolve().parents[1] / "app_manifest" / "hubspot" / "src" / "app"
            / "webhooks" / "webhooks-hsmeta.json")
TIMEOUT = 30.0


def main() -> None:
    args = _args()
    with tempfile.TemporaryDirectory(prefix="paydeck-contacts-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis", persist=False)
        try:
            _run(Path(tmp), redis_server.start(), args)
        finally:
            redis_server.stop()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=15, help="changes per direction")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args()


def _subscriptions() -> list[str]:
    """The app's webhook subscriptions (app_manifest/hubspot), as the fake takes them."""
    subs = json.loads(MANIFEST.read_text())["config"]["subscriptions"]["legacyCrmObjects"]
    return [s["subscriptionType"] + (f":{s['propertyName']}" if s.get("propertyName") else "")
            for s in subs if s["active"]]


class _Stack:
    """Paydeck on loopback beside the fakes, installed and connected through the real flows."""

    def __init__(self, tmp: Path, redis_url: str, hubspot: FakeHubSpot, xero: FakeXero) -> None:
        self.servers = [LoopbackServer(hubspot).start(), LoopbackServer(xero).start()]
        crm_url, xero_url = self.servers[0].url, self.servers[1].url
        holder: dict[str, Any] = {}
        paydeck = LoopbackServer(lambda env, start: holder["app"](env, start)).start()
        self.servers.append(paydeck)
        self.url = paydeck.url
        self.app = holder["app"] = create_app(Settings(  # type: ignore[call-arg]
            _env_file=None, instance_path=tmp, database_url=f"sqlite:///{tmp / 'bench.db'}",
            redis_url=redis_url, secret_key=secrets.token_urlsafe(48),
            encryption_keys=Fernet.generate_key().decode(), public_url=paydeck.url,
            xero_client_id=xero.client_id, xero_client_secret=xero.client_secret,
            xero_login_base=xero_url, xero_identity_base=xero_url, xero_api_base=xero_url,
            xero_webhook_key=KEY, hubspot_client_id=hubspot.client_id,
            hubspot_client_secret=hubspot.client_secret,
            hubspot_authorize_url=f"{crm_url}/oauth/authorize", hubspot_api_base=crm_url,
            hubspot_app_id=str(hubspot.app_id)))
        with self.app.app_context():
            flask_migrate.upgrade()
        browser = requests.Session()
        assert browser.get(f"{self.url}/install/hubspot", timeout=10).status_code == 200
        assert browser.get(f"{self.url}/connect/xero", timeout=10).status_code == 200
        self.work()

    def work(self) -> None:
        with self.app.app_context():
            PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=self.app).work(burst=True)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def _phone(number: str) -> list[dict[str, str]]:
    return [{"PhoneType": "DEFAULT", "PhoneCountryCode": "61", "PhoneAreaCode": "2",
             "PhoneNumber": number}]


def _xero_phone(xero: FakeXero, tenant: str, contact_id: str) -> str:
    phones = xero.accounting(tenant).contact(contact_id).phones
    return next((p.get("PhoneNumber", "") for p in phones if p.get("PhoneType") == "DEFAULT"), "")


def _run(tmp: Path, redis_url: str, args: argparse.Namespace) -> None:
    hubspot, xero = FakeHubSpot(), FakeXero()
    tenant = xero.add_tenant("Bench Pty Ltd")
    stack = _Stack(tmp, redis_url, hubspot, xero)
    try:
        hubspot.subscribe(f"{stack.url}/webhooks/hubspot", hubspot.client_secret, _subscriptions())
        pairs = _pairs(stack, hubspot, xero, tenant, args.changes)
        _fresh_minute(stack, xero)
        ctx = multiprocessing.get_context("fork")
        workers = [ctx.Process(target=_work, args=(stack.app,)) for _ in range(args.workers)]
        for w in workers:
            w.start()
        time.sleep(1.0)  # let the workers register
        try:
            to_xero = _direction(xero, pairs, lambda n, company_id, contact_id: (
                hubspot.crm.set_properties("companies", company_id,
                                           {"phone": f"+61 2 7000 {n:04}"}),
                hubspot.deliver(force=True)),
                lambda n, company_id, contact_id: _xero_phone(xero, tenant, contact_id)
                == f"+61 2 7000 {n:04}")
            _drain_echoes(stack, hubspot, xero)
            _fresh_minute(stack, xero)
            to_crm = _direction(xero, pairs, lambda n, company_id, contact_id: (
                xero.accounting(tenant).save_contacts(
                    [{"ContactID": contact_id, "Phones": _phone(f"8000 {n:04}")}], summarize=True),
                xero.webhooks.deliver(f"{stack.url}/webhooks/xero", KEY)),
                lambda n, company_id, contact_id: hubspot.crm.object_properties(
                    "companies", company_id).get("phone") == f"+61 2 8000 {n:04}")
        finally:
            for w in workers:
                w.terminate()
                w.join()
        _drain_echoes(stack, hubspot, xero)
        _fresh_minute(stack, xero)
        net = _safety_net(stack, hubspot, xero, tenant, pairs)
        _report(args, to_xero, to_crm, net)
    finally:
        stack.close()


def _pairs(stack: _Stack, hubspot: FakeHubSpot, xero: FakeXero, tenant: str,
           count: int) -> list[tuple[str, str]]:
    """`count` linked pairs with contact sync on, synced once, every echo delivered."""
    books = xero.accounting(tenant)
    pairs = []
    with stack.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        db.session.add(ContactSyncSettings(installation_id=installation.id, enabled=True))
        for n in range(count):
            company_id = hubspot.crm.add_company(name=f"Company {n:03}", phone=f"+61 2 5550 {n:04}")
            contact = books.add_contact(f"Company {n:03}", Phones=_phone(f"5550 {n:04}"))
            db.session.add(ContactLink(installation_id=installation.id, crm_object_type="company",
                                       crm_object_id=company_id, xero_contact_id=contact.contact_id,
                                       linked_by="user"))
            pairs.append((company_id, contact.contact_id))
        db.session.commit()
    _drain_echoes(stack, hubspot, xero)
    return pairs


def _drain_echoes(stack: _Stack, hubspot: FakeHubSpot, xero: FakeXero) -> None:
    """Deliver both fakes' webhooks and run the jobs until neither has anything left."""
    for _ in range(5):
        sent = len(hubspot.deliver(force=True))
        response = xero.webhooks.deliver(f"{stack.url}/webhooks/xero", KEY)
        stack.work()
        if not sent and response is None:
            return


def _fresh_minute(stack: _Stack, xero: FakeXero) -> None:
    """Start the next phase in a new Xero minute window (both Xero's count and ours)."""
    time.sleep(0.1)
    xero.reset_rate_limits()
    with stack.app.app_context():
        keys = list(get_redis().scan_iter(match="paydeck:xero-limit:*"))
        if keys:
            get_redis().delete(*keys)


def _work(app: Any) -> None:  # a forked worker process, until terminated
    with app.app_context():
        PaydeckWorker([QUEUE], connection=get_redis(), app=app).work(with_scheduler=True)


Step = Callable[[int, str, str], Any]


def _direction(xero: FakeXero, pairs: list[tuple[str, str]], change: Step,
               shows: Step) -> dict[str, Any]:
    """Each pair changed in turn, timed until the other side shows it; Xero calls counted."""
    latencies = []
    before = xero.count_calls()
    for n, (company_id, contact_id) in enumerate(pairs):
        started = time.time()
        change(n, company_id, contact_id)
        while not shows(n, company_id, contact_id):
            if time.time() - started > TIMEOUT:
                raise RuntimeError(f"change {n} not shown within {TIMEOUT:.0f} s")
            time.sleep(0.002)
        latencies.append(time.time() - started)
    return {"latencies": latencies, "xero_calls": xero.count_calls() - before}


def _net_pass(stack: _Stack) -> None:
    """One pass of both safety nets (app.contact_sync.safety_net), then the jobs they woke."""
    with stack.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        catch_up_xero(installation.xero_connection.id)
        catch_up_crm(installation.id)
    stack.work()


def _safety_net(stack: _Stack, hubspot: FakeHubSpot, xero: FakeXero, tenant: str,
                pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The safety nets' cost with nothing changed, and what they catch when every webhook of
    a batch of changes is lost (half the pairs changed in Xero, half in HubSpot)."""
    _net_pass(stack)  # the first passes set the cursors
    xero_before, crm_before = xero.count_calls(), hubspot.count_crm_calls()
    _net_pass(stack)
    idle = (xero.count_calls() - xero_before, hubspot.count_crm_calls() - crm_before)
    books = xero.accounting(tenant)
    for n, (company_id, contact_id) in enumerate(pairs):
        if n % 2:
            hubspot.crm.set_properties("companies", company_id, {"phone": f"+61 2 9100 {n:04}"})
        else:
            books.save_contacts([{"ContactID": contact_id, "Phones": _phone(f"9000 {n:04}")}],
                                summarize=True)
    xero.webhooks.lose_pending()
    for item in hubspot.webhooks.queued():
        hubspot.webhooks.drop(item, "lost")
    xero_before, crm_before = xero.count_calls(), hubspot.count_crm_calls()
    started = time.perf_counter()
    _net_pass(stack)
    seconds = time.perf_counter() - started
    caught = sum(
        1 for n, (company_id, contact_id) in enumerate(pairs)
        if (_xero_phone(xero, tenant, contact_id) == f"+61 2 9100 {n:04}" if n % 2 else
            hubspot.crm.object_properties("companies", company_id).get("phone")
            == f"+61 2 9000 {n:04}"))
    return {"idle": idle, "changed": len(pairs), "caught": caught, "seconds": seconds,
            "xero_calls": xero.count_calls() - xero_before,
            "crm_calls": hubspot.count_crm_calls() - crm_before}


def _report(args: argparse.Namespace, to_xero: dict[str, Any], to_crm: dict[str, Any],
            net: dict[str, Any]) -> None:
    print(f"contact change -> the other side via webhooks: {args.changes} changes each way, one "
          f"at a time, {args.workers} forking RQ workers")
    for label, result in (("HubSpot company -> Xero contact", to_xero),
                          ("Xero contact -> HubSpot company", to_crm)):
        ordered = sorted(result["latencies"])
        print(f"  {label}: p50 {1000 * statistics.median(ordered):.0f} ms, "
              f"p95 {1000 * ordered[int(0.95 * (len(ordered) - 1))]:.0f} ms, "
              f"max {1000 * ordered[-1]:.0f} ms (target p95 < 5 s); "
              f"Xero calls {result['xero_calls'] / len(ordered):.2f} per change")

    print(f"safety nets (webhooks lost): a pass with nothing changed costs {net['idle'][0]} Xero "
          f"call(s) and {net['idle'][1]} HubSpot call(s); {net['changed']} changes whose "
          f"webhooks were lost: {net['caught']} caught in one pass ({net['seconds']:.2f} s), "
          f"{net['xero_calls']} Xero and {net['crm_calls']} HubSpot calls")


if __name__ == "__main__":
    main()
