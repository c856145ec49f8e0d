"""Benchmark: HubSpot webhook ingest through gunicorn on this machine.

    .venv/bin/python -m bench.webhook_ingest [--requests 200] [--concurrency 8] [--workers 4]
                                             [--database-url postgresql://...]

Sends signed batches of 100 deal-stage events (HubSpot's batch size, up to 10 concurrent
requests per account) and prints events/s, p50/p99 request latency, and the accounting of
every event (a job or a deliberate drop), checked against the database afterwards.
By default it uses a temporary SQLite file and an embedded Redis; `--database-url` points it
at an empty PostgreSQL database instead (its tables are emptied).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import flask_migrate
import requests
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from app.factory import create_app
from app.extensions import db
from app.models import CrmKind, DealSyncRequest, Installation, StageAction, StageRule, WebhookReceipt
from app.redis_conn import EmbeddedRedis
from app.settings import Settings
from crm_adapters.hubspot import sign_v3

SECRET = "bench-hubspot-secret"
PORTAL = 4455667
BATCH = 100


def main() -> None:
    args = _args()
    tmp = Path(tempfile.mkdtemp(prefix="paydeck-ingest-"))
    redis_server = EmbeddedRedis(tmp / "redis", persist=False)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'ingest.db'}",
        "REDIS_URL": redis_server.start(), "INSTANCE_PATH": str(tmp),
        "SECRET_KEY": secrets.token_urlsafe(48), "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "HUBSPOT_CLIENT_SECRET": SECRET,
    }
    port = _free_port()
    env["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    app = _prepare(env)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--log-level", "warning", "app.factory:create_app()"],
        env=env, cwd=Path(__file__).resolve().parent.parent)
    try:
        _wait_ready(port)
        latencies, outcomes, elapsed = _load(port, args)
        _report(app, args, latencies, outcomes, elapsed)
    finally:
        server.terminate()
        server.wait(timeout=30)
        redis_server.stop()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="batches of 100 events")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--deals", type=int, default=5000, help="distinct deals the events touch")
    parser.add_argument("--rate", type=float, default=3000,
                        help="offered load in events/s (0: as fast as the server answers)")
    parser.add_argument("--database-url", default="")
    return parser.parse_args()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(env: dict[str, str]):  # -> Flask
    keys = ("DATABASE_URL", "REDIS_URL", "INSTANCE_PATH", "SECRET_KEY", "ENCRYPTION_KEYS",
            "HUBSPOT_CLIENT_SECRET", "PUBLIC_URL")
    app = create_app(Settings(_env_file=None, **{k.lower(): env[k] for k in keys}))  # type: ignore[arg-type]
    with app.app_context():
        flask_migrate.upgrade()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        installation = Installation(crm=CrmKind.HUBSPOT, account_id=str(PORTAL))
        db.session.add(installation)
        db.session.flush()
        db.session.add_all([
            StageRule(installation_id=installation.id, pipeline_id="default", stage_id="closedwon",
                      action=StageAction.AUTHORISE),
            StageRule(installation_id=installation.id, pipeline_id="default",
                      stage_id="contractsent", action=StageAction.DRAFT)])
        db.session.commit()
    return app


def _wait_ready(port: int) -> None:
    """Until gunicorn answers; then warm every worker up (imports, DB and Redis connections)
    with /healthz calls, so the figures are the steady state, not first-request costs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting
            time.sleep(0.2)
    else:
        raise RuntimeError("gunicorn did not start")
    warm = [threading.Thread(target=lambda: [requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                                             for _ in range(10)]) for _ in range(8)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()


def _batch(deals: int, n: int) -> list[dict[str, object]]:
    """A realistic mix: most events are trigger stages; some have no rule; some are other
    properties."""
    events = []
    for i in range(BATCH):
        kind = (n * BATCH + i) % 10
        stage = "closedwon" if kind < 6 else "contractsent" if kind < 8 else "qualifiedtobuy"
        prop = "amount" if kind == 9 else "dealstage"
        events.append({"objectId": (n * 7919 + i * 31) % deals + 1, "propertyName": prop,
                       "propertyValue": stage, "changeSource": "CRM_UI", "sourceId": "userId:1",
                       "eventId": uuid.uuid4().int % 10**12, "subscriptionId": 1,
                       "portalId": PORTAL, "appId": 1, "occurredAt": int(time.time() * 1000),
                       "subscriptionType": "deal.propertyChange", "attemptNumber": 0})
    return events


def _load(port: int, args: argparse.Namespace) -> tuple[list[float], Counter[str], float]:
    url = f"http://127.0.0.1:{port}/webhooks/hubspot"
    bodies = [json.dumps(_batch(args.deals, n)).encode() for n in range(args.requests)]
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    next_index = iter(range(args.requests))

    interval = BATCH / args.rate if args.rate else 0.0  # seconds between batches

    def client() -> None:
        with requests.Session() as session:
            for n in next_index:
                pause = started + n * interval - time.perf_counter()  # open loop: on schedule
                if pause > 0:
                    time.sleep(pause)
                ts = str(int(time.time() * 1000))
                headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": ts,
                           "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", url, bodies[n], ts)}
                sent_at = time.perf_counter()
                response = session.post(url, data=bodies[n], headers=headers, timeout=30)
                took = time.perf_counter() - sent_at
                with lock:
                    latencies.append(took)
                    outcomes.update(response.json() if response.status_code == 200
                                    else {f"http_{response.status_code}": BATCH})

    started = time.perf_counter() + 0.1
    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, outcomes, time.perf_counter() - started


def _report(app, args: argparse.Namespace, latencies: list[float], outcomes: Counter[str],
            elapsed: float) -> None:
    sent = args.requests * BATCH
    with app.app_context():
        receipts = db.session.scalar(select(func.count()).select_from(WebhookReceipt))
        waiting = db.session.scalar(select(func.count()).select_from(DealSyncRequest))
    ordered = sorted(latencies)
    accounted = sum(outcomes.values())
    offered = f"{args.rate:,.0f} events/s offered" if args.rate else "closed loop (max throughput)"
    print(f"webhook ingest: {args.requests} HubSpot batches x {BATCH} events, {offered}, "
          f"{args.concurrency} concurrent clients, gunicorn {args.workers} workers, "
          f"{'PostgreSQL' if args.database_url else 'SQLite'} + Redis, {os.cpu_count()} cores")
    print(f"  events/s achieved     {sent / elapsed:,.0f}  (target >= 2,000)")
    print(f"  request latency       p50 {1000 * statistics.median(ordered):.1f} ms, "
          f"p99 {1000 * ordered[int(0.99 * (len(ordered) - 1))]:.1f} ms  (target p99 < 100 ms)")
    print(f"  outcomes              {dict(outcomes)}")
    print(f"  accounted for         {accounted} of {sent} events  (lost: {sent - accounted})")
    print(f"  in the database       {receipts} receipts = {outcomes['enqueued']} enqueued; "
          f"{waiting} deals waiting for the invoice job")


if __name__ == "__main__":
    main()
