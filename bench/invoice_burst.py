"""Benchmark: a burst of deals for one Xero tenant through real RQ workers to the fake Xero.

    .venv/bin/python -m bench.invoice_burst [--deals 500] [--orgs 300] [--existing 100] [--workers 2]

Prints Xero calls per invoice, invoices per minute of Xero quota (60 calls), 429s received,
duplicates found, and how a single deal on an idle system gets to Xero (job hops, latency).
Runs on its own temporary SQLite file and embedded Redis (it empties both), never on the
services DATABASE_URL / REDIS_URL name.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import flask_migrate
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from app import wiring
from app import create_app
from app.engine import request_invoice
from app.extensions import db
from app.jobs import QUEUE
from app.models import (
    ConnectionStatus,
    CrmKind,
    DealSyncRequest,
    Installation,
    InstallationSettings,
    StageAction,
    XeroConnection,
)
from app.redis_conn import EmbeddedRedis, get_redis
from app.settings import Settings
from app.worker import PaydeckWorker
from sandbox.memory_crm import MemoryCrm, deal
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero


def main() -> None:
    args = _args()
    tmp = Path(tempfile.mkdtemp(prefix="paydeck-bench-"))
    embedded = EmbeddedRedis(tmp / "redis", persist=False)
    redis_url = embedded.start()
    fake = FakeXero()
    tenant_id = fake.add_tenant("Bench Pty Ltd")
    server = LoopbackServer(fake).start()
    try:
        app = _app(tmp, redis_url, server.url, fake)
        crm = MemoryCrm()
        wiring.ADAPTERS["hubspot"] = crm
        with app.app_context():
            get_redis().flushdb()
            installation_id = _install(fake, tenant_id)
        _seed(fake, tenant_id, crm, args)
        burst = _burst(app, crm, installation_id, args)
        calls_before = fake.count_calls(tenant_id=tenant_id)
        single = _single_deal(app, crm, installation_id, fake, tenant_id)
        _report(fake, tenant_id, args, burst, single, calls_before)
    finally:
        server.stop()
        embedded.stop()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=500)
    parser.add_argument("--orgs", type=int, default=300)
    parser.add_argument("--existing", type=int, default=100, help="organisations already in Xero")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args()


def _app(tmp: Path, redis_url: str, xero_url: str, fake: FakeXero):  # -> Flask
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, instance_path=tmp, redis_url=redis_url,
        database_url=f"sqlite:///{tmp / 'bench.db'}",
        secret_key=secrets.token_urlsafe(48), encryption_keys=Fernet.generate_key().decode(),
        xero_client_id=fake.client_id, xero_client_secret=fake.client_secret,
        xero_login_base=xero_url, xero_identity_base=xero_url, xero_api_base=xero_url)
    app = create_app(settings)
    with app.app_context():
        flask_migrate.upgrade()
    return app


def _install(fake: FakeXero, tenant_id: str) -> int:
    installation = Installation(crm=CrmKind.HUBSPOT, account_id="bench", account_name="Bench")
    db.session.add(installation)
    db.session.flush()
    db.session.add(InstallationSettings(installation_id=installation.id, default_account_code="200",
                                        default_tax_type="OUTPUT"))
    db.session.add(XeroConnection(
        installation_id=installation.id, tenant_id=tenant_id, tenant_name="Bench Pty Ltd",
        status=ConnectionStatus.CONNECTED, access_token=fake.issue_token_for_tenant(tenant_id),
        refresh_token="unused-in-bench", token_expires_at=datetime.now(timezone.utc) + timedelta(hours=1),
        token_refreshed_at=datetime.now(timezone.utc)))
    db.session.commit()
    return installation.id


def _seed(fake: FakeXero, tenant_id: str, crm: MemoryCrm, args: argparse.Namespace) -> None:
    books = fake.accounting(tenant_id)
    for n in range(args.existing):
        books.add_contact(f"Org {n}", EmailAddress=f"ap@org{n}.example")
    for n in range(args.deals):
        org = n % args.orgs
        crm.add(deal(f"D{n}", org=f"Org {org}", email=f"ap@org{org}.example", lines=1 + n % 3))


def _work(app) -> None:  # a worker process (forked: it inherits the memory CRM)
    with app.app_context():
        PaydeckWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def _run_workers(app, count: int, installation_id: int, timeout: float = 300) -> None:
    """Real forking RQ workers, until no deal is left waiting."""
    ctx = multiprocessing.get_context("fork")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = [ctx.Process(target=_work, args=(app,)) for _ in range(count)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        with app.app_context():
            waiting = db.session.scalar(select(func.count()).select_from(DealSyncRequest))
        if not waiting:
            return
        time.sleep(0.5)
    raise RuntimeError("deals still waiting after the timeout")


def _burst(app, crm: MemoryCrm, installation_id: int, args: argparse.Namespace) -> dict[str, float]:
    started = time.monotonic()
    with app.app_context():
        for deal_id in crm.deals:  # what the webhook endpoint does for each event
            request_invoice(installation_id, deal_id, StageAction.AUTHORISE, "bench")
    enqueued = time.monotonic()
    _run_workers(app, args.workers, installation_id)
    return {"enqueue_s": enqueued - started, "work_s": time.monotonic() - enqueued}


def _single_deal(app, crm: MemoryCrm, installation_id: int, fake: FakeXero,
                 tenant_id: str) -> dict[str, float]:
    """On an idle system: one request -> one job -> the invoice is in Xero."""
    crm.add(deal("SOLO", org="Solo Ltd", email="ap@solo.example"))
    started = time.monotonic()
    with app.app_context():
        request_invoice(installation_id, "SOLO", StageAction.AUTHORISE, "bench-single")
        jobs_queued = len(get_redis().lrange(f"rq:queue:{QUEUE}", 0, -1))
        worker = PaydeckWorker([QUEUE], connection=get_redis(), app=app)
        worker.work(burst=True)
    elapsed = time.monotonic() - started
    created = [i for i in fake.accounting(tenant_id).invoices if i.reference.endswith(" deal SOLO")]
    return {"jobs_queued": jobs_queued, "latency_s": elapsed, "created": len(created)}


def _report(fake: FakeXero, tenant_id: str, args: argparse.Namespace, burst: dict[str, float],
            single: dict[str, float], burst_calls: int) -> None:
    invoices = fake.accounting(tenant_id).invoices
    per_reference = Counter(i.reference for i in invoices)
    duplicates = sum(n - 1 for n in per_reference.values() if n > 1)
    burst_invoices = len(invoices) - single["created"]
    tenant_calls = [c for c in fake.api_calls if c.tenant_id == tenant_id][:burst_calls]
    calls_by_path = Counter(f"{c.method} {c.path.rsplit('/', 1)[-1]}" for c in tenant_calls)
    rate_limited = fake.count_calls(status=429, tenant_id=tenant_id)
    contacts = len(fake.accounting(tenant_id).contacts)
    print(f"burst: {args.deals} deals, {args.orgs} organisations ({args.existing} already in Xero), "
          f"{args.workers} forking RQ workers")
    print(f"  invoices created           {burst_invoices}  (expected {args.deals})")
    print(f"  Xero contacts afterwards   {contacts}  (expected {args.orgs + 1}: "
          "the organisations and the single-deal check's)")
    print(f"  Xero calls                 {burst_calls}  {dict(calls_by_path)}")
    print(f"  calls per invoice          {burst_calls / max(burst_invoices, 1):.3f}  (target <= 0.15)")
    print(f"  invoices per minute quota  {60 * burst_invoices / max(burst_calls, 1):.0f}  "
          "(invoices per 60 Xero calls)")
    print(f"  429s received              {rate_limited}  (target 0)")
    print(f"  duplicate invoices         {duplicates}  (target 0)")
    print(f"  time: enqueue {burst['enqueue_s']:.2f} s, workers {burst['work_s']:.2f} s")
    print(f"single deal on an idle system: {single['jobs_queued']} job queued and run, "
          f"{single['created']} invoice, "
          f"{single['latency_s'] * 1000:.0f} ms from request to invoice in Xero")


if __name__ == "__main__":
    main()
