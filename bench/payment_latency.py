"""Benchmark: a payment in Xero -> the CRM deal updated, through the webhook path with real
(forking) RQ workers; then the safety-net poll's cost and completeness.

    .venv/bin/python -m bench.payment_latency [--payments 100] [--workers 2] [--poll-changes 500]

Latency runs from recording the payment in the fake Xero to the deal's writeback (Xero's
own delivery delay, typically seconds, is not part of Paydeck and not included). Runs on a
temporary SQLite file and an embedded Redis.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import flask_migrate
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import wiring
from app import create_app
from app.engine import request_invoices, sync_installation
from app.extensions import db
from app.jobs import QUEUE
from app.models import (
    ConnectionStatus,
    CrmKind,
    Installation,
    InstallationSettings,
    InvoiceLink,
    StageAction,
    XeroConnection,
)
from app.payments import poll_invoices
from app.redis_conn import EmbeddedRedis, get_redis
from app.settings import Settings
from app.worker import PaydeckWorker
from domain.crm import InvoiceFields
from sandbox.memory_crm import MemoryCrm, deal
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero

KEY = "bench-webhook-key"
SEEN = "bench:written:{}"


class RecordingCrm(MemoryCrm):
    """Deals in memory; each writeback also noted in Redis, so the bench (another process
    than the worker that wrote) sees when a deal showed the new status."""

    def write_invoice_fields(self, installation: Any, updates: Sequence[InvoiceFields]) -> None:
        super().write_invoice_fields(installation, updates)
        for u in updates:
            get_redis().set(SEEN.format(u.deal_id), f"{time.time()}|{u.invoice_status}")


def main() -> None:
    args = _args()
    tmp = Path(tempfile.mkdtemp(prefix="paydeck-payments-"))
    redis_server = EmbeddedRedis(tmp / "redis", persist=False)
    redis_url = redis_server.start()
    fake = FakeXero()
    tenant = fake.add_tenant("Bench Pty Ltd")
    xero_server = LoopbackServer(fake).start()
    holder: dict[str, Any] = {}
    web = LoopbackServer(lambda env, start: holder["app"](env, start)).start()
    try:
        app = holder["app"] = create_app(Settings(  # type: ignore[call-arg]
            _env_file=None, instance_path=tmp, database_url=f"sqlite:///{tmp / 'bench.db'}",
            redis_url=redis_url, secret_key=secrets.token_urlsafe(48), encryption_keys=Fernet.generate_key().decode(),
            public_url=web.url, xero_webhook_key=KEY, xero_api_base=xero_server.url))
        crm = RecordingCrm()
        wiring.ADAPTERS["hubspot"] = crm  # type: ignore[assignment]
        total = args.payments + args.poll_changes
        with app.app_context():
            flask_migrate.upgrade()
            installation_id, connection_id = _install(fake, tenant)
            for n in range(total):
                crm.add(deal(str(n), org=f"Company {n}", email=f"ap@c{n}.example"))
            request_invoices(installation_id, [(str(n), StageAction.AUTHORISE, "bench") for n in range(total)])
            sync_installation(installation_id)
            get_redis().delete(*[SEEN.format(n) for n in range(total)])
        invoices = {i.reference.rsplit(" ", 1)[-1]: i.invoice_id for i in fake.accounting(tenant).invoices}
        for e in fake.webhooks.pending():  # everything so far is old news
            fake.webhooks.delivered[(e["tenantId"], e["resourceId"])] = e["_updated_ms"]
        _fresh_minute(app, fake)  # creating the invoices used this minute's Xero quota
        latencies = _webhook_path(app, fake, tenant, web.url, invoices, args)
        _fresh_minute(app, fake)
        poll = _poll_path(app, fake, tenant, connection_id, invoices, args)
        _report(args, latencies, poll)
    finally:
        web.stop()
        xero_server.stop()
        redis_server.stop()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # A lone payment costs one Xero call (two while the online link is fetched), and Xero
    # allows 60 a minute per organisation: more in one minute would measure the quota.
    parser.add_argument("--payments", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-changes", type=int, default=500)
    return parser.parse_args()


def _install(fake: FakeXero, tenant: str) -> tuple[int, int]:
    installation = Installation(crm=CrmKind.HUBSPOT, account_id="bench")
    db.session.add(installation)
    db.session.flush()
    db.session.add(InstallationSettings(installation_id=installation.id, default_account_code="200",
                                        default_tax_type="OUTPUT"))
    connection = XeroConnection(
        installation_id=installation.id, tenant_id=tenant, status=ConnectionStatus.CONNECTED,
        access_token=fake.issue_token_for_tenant(tenant), refresh_token="unused",
        token_expires_at=datetime.now(timezone.utc) + timedelta(hours=2))
    db.session.add(connection)
    db.session.commit()
    return installation.id, connection.id


def _fresh_minute(app: Any, fake: FakeXero) -> None:
    """Start the next phase in a new Xero minute window (both Xero's count and ours)."""
    time.sleep(0.1)
    fake.reset_rate_limits()
    with app.app_context():
        keys = list(get_redis().scan_iter(match="paydeck:xero-limit:*"))
        if keys:
            get_redis().delete(*keys)


def _work(app: Any) -> None:  # a forked worker process, until terminated
    with app.app_context():
        PaydeckWorker([QUEUE], connection=get_redis(), app=app).work(with_scheduler=True)


def _webhook_path(app: Any, fake: FakeXero, tenant: str, url: str, invoices: dict[str, str],
                  args: argparse.Namespace) -> list[float]:
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_work, args=(app,)) for _ in range(args.workers)]
    for w in workers:
        w.start()
    time.sleep(1.0)  # let the workers register
    latencies = []
    try:
        with app.app_context():
            redis = get_redis()
            for n in range(args.payments):
                deal_id = str(n)
                started = time.time()
                fake.accounting(tenant).pay(invoices[deal_id], Decimal("330.00"))
                response = fake.webhooks.deliver(f"{url}/webhooks/xero", KEY)
                if response is None or response.status_code != 200:
                    raise RuntimeError("webhook delivery failed: " + ("no events" if response is None else f"{response.status_code} {response.text[:500]}"))
                while True:
                    seen = redis.get(SEEN.format(deal_id))
                    if seen and seen.decode().endswith("|Paid"):
                        latencies.append(float(seen.decode().split("|")[0]) - started)
                        break
                    if time.time() - started > 30:
                        raise RuntimeError(f"deal {deal_id} not updated within 30 s")
                    time.sleep(0.002)
    finally:
        for w in workers:
            w.terminate()
            w.join()
    return latencies


def _poll_path(app: Any, fake: FakeXero, tenant: str, connection_id: int, invoices: dict[str, str],
               args: argparse.Namespace) -> dict[str, float]:
    """Webhooks 'down': change invoices in Xero, then one poll."""
    with app.app_context():
        poll_invoices(connection_id)  # first run: sets the cursor (lookback window)
    changed = [str(n) for n in range(args.payments, args.payments + args.poll_changes)]
    for deal_id in changed:
        fake.accounting(tenant).pay(invoices[deal_id], Decimal("100.00"))
    calls_before = fake.count_calls(method="GET", path_prefix="/Invoices")
    started = time.perf_counter()
    with app.app_context():
        counts = poll_invoices(connection_id)
        statuses = {link.deal_id: link.deal_status for link in db.session.scalars(
            select(InvoiceLink).where(InvoiceLink.deal_id.in_(changed)))}
    return {"changed": len(changed), "calls": fake.count_calls(method="GET", path_prefix="/Invoices") - calls_before,
            "caught": sum(1 for s in statuses.values() if s == "partially_paid"),
            "applied": counts["changed"], "seconds": time.perf_counter() - started}


def _report(args: argparse.Namespace, latencies: list[float], poll: dict[str, float]) -> None:
    ordered = sorted(latencies)
    print(f"payment -> deal via Xero webhook: {len(latencies)} payments, one at a time, "
          f"{args.workers} forking RQ workers")
    print(f"  latency p50 {1000 * statistics.median(ordered):.0f} ms, "
          f"p95 {1000 * ordered[int(0.95 * (len(ordered) - 1))]:.0f} ms, "
          f"max {1000 * ordered[-1]:.0f} ms  (target p95 < 5 s)")
    print(f"safety-net poll: {poll['changed']:.0f} invoices changed while webhooks were down")
    print(f"  Xero calls {poll['calls']:.0f} = {poll['calls'] / poll['changed'] * 50:.2f} per 50 changed "
          f"(target <= 1)")
    print(f"  caught {poll['caught']:.0f} of {poll['changed']:.0f} "
          f"({100 * poll['caught'] / poll['changed']:.0f} %), in {poll['seconds']:.2f} s")


if __name__ == "__main__":
    main()
