"""Benchmark: a change on one side of a contact link -> the other side shows it, through the
webhooks both fakes deliver, with real (forking) RQ workers; for HubSpot and for Pipedrive.

    .venv/bin/python -m bench.contact_latency [--crm hubspot|pipedrive] [--changes 15] [--workers 2]

Without --crm, HubSpot then Pipedrive, each on its own stack, each printing its own figures.
Paydeck runs on loopback beside the fake CRM and the fake Xero, installed and connected
through the real OAuth flows (as bench/crm_calls.py does), with contact sync on and
`--changes` linked company/contact pairs, synced once. Then, one change at a time:

- CRM -> Xero: a company's phone is edited in the CRM; the fake delivers its webhook (HubSpot
  company.propertyChange, Pipedrive change.organization); the time runs until the fake Xero's
  contact holds the phone.
- Xero -> CRM: a contact's phone is edited in Xero; the fake delivers its CONTACT webhook; the
  time runs until the CRM's company holds it.

The CRM's part (its fake, install, webhooks, where the phone lives) is in
bench/contact_latency_hubspot.py and bench/contact_latency_pipedrive.py; the measuring and
reporting here is the same for both. Pipedrive's update_time has whole seconds: see
bench/contact_latency_pipedrive.py for how the phases are spaced so that neither the
measurement nor Paydeck's loop prevention is distorted by it.

Latency includes the webhook POST and Paydeck's answer; the vendors' own delivery delay
(typically seconds) is not Paydeck's and is not included. Each direction starts in a fresh
Xero minute: Xero allows 60 calls a minute per organisation and contact sync keeps 20 of them
for invoicing (CONTACT_SYNC_RESERVE), so 15 changes a minute is what fits at 2 calls each.
Runs on a temporary SQLite file and an embedded Redis.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

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
from bench.contact_latency_hubspot import HubSpotSide
from bench.contact_latency_pipedrive import PipedriveSide
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero

KEY = "bench-webhook-key"
TIMEOUT = 30.0
SIDES: dict[str, Callable[[], CrmSide]] = {"hubspot": HubSpotSide, "pipedrive": PipedriveSide}


class CrmSide(Protocol):
    """One CRM's part of the bench."""

    crm: str  # its install route, /install/<crm>
    vendor: str  # its name in the figures
    record: str  # what it calls a company
    settle: float  # seconds from Paydeck's last write to a record until it may be edited
    fake: Any  # the fake CRM (a WSGI app)

    def settings(self, crm_url: str) -> dict[str, Any]:
        """Paydeck's Settings for the fake at `crm_url`."""

    def installed(self, paydeck_url: str) -> dict[str, Any]:
        """After the install: the CRM's webhooks point at Paydeck; ContactSyncSettings.fields."""

    def add_company(self, name: str, phone: str) -> str:
        """A company added in the CRM (its id)."""

    def set_phone(self, company_id: str, phone: str) -> None:
        """A user edits the company's phone in the CRM (its webhook queued, not sent)."""

    def phone(self, company_id: str) -> str:
        """The company's phone as the CRM holds it."""

    def deliver(self) -> int:
        """The CRM's queued webhooks sent to Paydeck; how many POSTs."""

    def lose_webhooks(self) -> int:
        """Fault injection: every queued webhook event dropped; how many."""

    def calls(self) -> int:
        """API calls the fake CRM has answered so far."""


def main(argv: Sequence[str] | None = None) -> None:
    args = _args(argv)
    for crm in (args.crm,) if args.crm else tuple(SIDES):
        with tempfile.TemporaryDirectory(prefix="paydeck-contacts-") as tmp:
            redis_server = EmbeddedRedis(Path(tmp) / "redis", persist=False)
            try:
                _run(Path(tmp), redis_server.start(), args, SIDES[crm]())
            finally:
                redis_server.stop()


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crm", choices=tuple(SIDES), help="one CRM (default: each in turn)")
    parser.add_argument("--changes", type=int, default=15, help="changes per direction")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args(argv)


class _Stack:
    """Paydeck on loopback beside the fakes, installed and connected through the real flows."""

    def __init__(self, tmp: Path, redis_url: str, side: CrmSide, xero: FakeXero) -> None:
        self.servers = [LoopbackServer(side.fake).start(), LoopbackServer(xero).start()]
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
            xero_webhook_key=KEY, **side.settings(crm_url)))
        with self.app.app_context():
            flask_migrate.upgrade()
        browser = requests.Session()
        assert browser.get(f"{self.url}/install/{side.crm}", timeout=10).status_code == 200
        assert browser.get(f"{self.url}/connect/xero", timeout=10).status_code == 200
        self.work()  # the install's setup job (Pipedrive: its webhooks)

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


def _run(tmp: Path, redis_url: str, args: argparse.Namespace, side: CrmSide) -> None:
    xero = FakeXero()
    tenant = xero.add_tenant("Bench Pty Ltd")
    stack = _Stack(tmp, redis_url, side, xero)
    try:
        pairs = _pairs(stack, side, xero, tenant, args.changes, side.installed(stack.url))
        _fresh_minute(stack, xero)
        ctx = multiprocessing.get_context("fork")
        workers = [ctx.Process(target=_work, args=(stack.app,)) for _ in range(args.workers)]
        for w in workers:
            w.start()
        # Let the workers register; and (Pipedrive) leave the second of the first sync's writes.
        time.sleep(max(1.0, side.settle))
        try:
            to_xero = _direction(xero, side, pairs, lambda n, company_id, contact_id: (
                side.set_phone(company_id, f"+61 2 7000 {n:04}"), side.deliver()),
                lambda n, company_id, contact_id: _xero_phone(xero, tenant, contact_id)
                == f"+61 2 7000 {n:04}")
            _drain_echoes(stack, side, xero)
            _fresh_minute(stack, xero)
            to_crm = _direction(xero, side, pairs, lambda n, company_id, contact_id: (
                xero.accounting(tenant).save_contacts(
                    [{"ContactID": contact_id, "Phones": _phone(f"8000 {n:04}")}], summarize=True),
                xero.webhooks.deliver(f"{stack.url}/webhooks/xero", KEY)),
                lambda n, company_id, contact_id: side.phone(company_id) == f"+61 2 8000 {n:04}")
        finally:
            for w in workers:
                w.terminate()
                w.join()
        _drain_echoes(stack, side, xero)
        _fresh_minute(stack, xero)
        net = _safety_net(stack, side, xero, tenant, pairs)
        _report(args, side, to_xero, to_crm, net)
    finally:
        stack.close()


def _pairs(stack: _Stack, side: CrmSide, xero: FakeXero, tenant: str, count: int,
           fields: dict[str, Any]) -> list[tuple[str, str]]:
    """`count` linked pairs with contact sync on, synced once, every echo delivered."""
    books = xero.accounting(tenant)
    pairs = []
    with stack.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        db.session.add(ContactSyncSettings(installation_id=installation.id, enabled=True,
                                           fields=fields))
        for n in range(count):
            company_id = side.add_company(f"Company {n:03}", f"+61 2 5550 {n:04}")
            contact = books.add_contact(f"Company {n:03}", Phones=_phone(f"5550 {n:04}"))
            db.session.add(ContactLink(installation_id=installation.id, crm_object_type="company",
                                       crm_object_id=company_id, xero_contact_id=contact.contact_id,
                                       linked_by="user"))
            pairs.append((company_id, contact.contact_id))
        db.session.commit()
    _drain_echoes(stack, side, xero)
    return pairs


def _drain_echoes(stack: _Stack, side: CrmSide, xero: FakeXero) -> None:
    """Deliver both fakes' webhooks and run the jobs until neither has anything left."""
    for _ in range(5):
        sent = side.deliver()
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


def _direction(xero: FakeXero, side: CrmSide, pairs: list[tuple[str, str]], change: Step,
               shows: Step) -> dict[str, Any]:
    """Each pair changed in turn, timed until the other side shows it; Xero and CRM calls
    counted."""
    latencies = []
    xero_before, crm_before = xero.count_calls(), side.calls()
    for n, (company_id, contact_id) in enumerate(pairs):
        started = time.time()
        change(n, company_id, contact_id)
        while not shows(n, company_id, contact_id):
            if time.time() - started > TIMEOUT:
                raise RuntimeError(f"change {n} not shown within {TIMEOUT:.0f} s")
            time.sleep(0.002)
        latencies.append(time.time() - started)
    return {"latencies": latencies, "xero_calls": xero.count_calls() - xero_before,
            "crm_calls": side.calls() - crm_before}


def _net_pass(stack: _Stack) -> None:
    """One pass of both safety nets (app.contact_sync.safety_net), then the jobs they woke."""
    with stack.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        catch_up_xero(installation.xero_connection.id)
        catch_up_crm(installation.id)
    stack.work()


def _safety_net(stack: _Stack, side: CrmSide, xero: FakeXero, tenant: str,
                pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The safety nets' cost with nothing changed, and what they catch when every webhook of
    a batch of changes is lost (half the pairs changed in Xero, half in the CRM)."""
    _net_pass(stack)  # the first passes set the cursors
    xero_before, crm_before = xero.count_calls(), side.calls()
    _net_pass(stack)
    idle = (xero.count_calls() - xero_before, side.calls() - crm_before)
    time.sleep(side.settle)  # (Pipedrive) past the second of Paydeck's writes in the last phase
    books = xero.accounting(tenant)
    for n, (company_id, contact_id) in enumerate(pairs):
        if n % 2:
            side.set_phone(company_id, f"+61 2 9100 {n:04}")
        else:
            books.save_contacts([{"ContactID": contact_id, "Phones": _phone(f"9000 {n:04}")}],
                                summarize=True)
    xero.webhooks.lose_pending()
    side.lose_webhooks()
    xero_before, crm_before = xero.count_calls(), side.calls()
    started = time.perf_counter()
    _net_pass(stack)
    seconds = time.perf_counter() - started
    caught = sum(
        1 for n, (company_id, contact_id) in enumerate(pairs)
        if (_xero_phone(xero, tenant, contact_id) == f"+61 2 9100 {n:04}" if n % 2 else
            side.phone(company_id) == f"+61 2 9000 {n:04}"))
    return {"idle": idle, "changed": len(pairs), "caught": caught, "seconds": seconds,
            "xero_calls": xero.count_calls() - xero_before,
            "crm_calls": side.calls() - crm_before}


def _report(args: argparse.Namespace, side: CrmSide, to_xero: dict[str, Any],
            to_crm: dict[str, Any], net: dict[str, Any]) -> None:
    crm, company = side.vendor, f"{side.vendor} {side.record}"
    print(f"{crm}: contact change -> the other side via webhooks: {args.changes} changes each "
          f"way, one at a time, {args.workers} forking RQ workers")
    for label, result in ((f"{company} -> Xero contact", to_xero),
                          (f"Xero contact -> {company}", to_crm)):
        ordered = sorted(result["latencies"])
        print(f"  {label}: p50 {1000 * statistics.median(ordered):.0f} ms, "
              f"p95 {1000 * ordered[int(0.95 * (len(ordered) - 1))]:.0f} ms, "
              f"max {1000 * ordered[-1]:.0f} ms (target p95 < 5 s); "
              f"Xero calls {result['xero_calls'] / len(ordered):.2f} per change, "
              f"{crm} calls {result['crm_calls'] / len(ordered):.2f} per change")

    print(f"  safety nets (webhooks lost): a pass with nothing changed costs {net['idle'][0]} "
          f"Xero call(s) and {net['idle'][1]} {crm} call(s); {net['changed']} changes whose "
          f"webhooks were lost: {net['caught']} caught in one pass ({net['seconds']:.2f} s), "
          f"{net['xero_calls']} Xero and {net['crm_calls']} {crm} calls")


if __name__ == "__main__":
    main()
