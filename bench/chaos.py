"""Chaos bench: deals of two installations through faults, killed workers and replayed and
reordered webhooks, then checked against the fakes.

    .venv/bin/python -m bench.chaos [--deals 400] [--workers 3] [--seconds 40] [--seed 11]

Paydeck runs on loopback beside the fake HubSpot, Pipedrive and Xero, installed into both CRMs
and connected to two Xero organisations through the real flows. Each deal moves through a
random path of stages (Contract Sent / Proposal Made = draft, Closed Won / Won = authorise, or
a stage with no rule, and back again). The CRMs' webhooks are delivered in waves, each wave
a shuffled subset (so "Closed Won" often arrives before "Contract Sent"), some batches posted
twice and old deliveries replayed. Meanwhile forking RQ workers are SIGKILLed at random (the
worker and its horse, only the horse, or only the worker) and restarted, and faults are
injected into Xero (5xx, 429, lost responses, answers slower than the HTTP timeout) and into
both CRMs (5xx, 429). Then the bench waits for quiescence and checks every deal against the
fake Xero: the expected outcome is the rule of the stage the deal ends in (Paydeck follows
the deal's current stage), or a stronger one it passed through if Paydeck invoiced it while
it stood there (Paydeck never downgrades an invoice: a dragged-back deal keeps its
authorised invoice); a deal that ends in an authorise stage must be AUTHORISED; and
the expected total is worked out here from the deal's lines - quantity x unit price, GST 10 %
per line on the Exclusive amount (prices are multiples of 10 cents, so no rounding arises).

Prints the figures and a line `invoices wrong: N, approvals lost: N, lost: N`: "lost" are
deals with no invoice that should have one, "approvals lost" deals left DRAFT that reached an
authorise stage, "invoices wrong" every other mismatch (duplicates, totals, status, an invoice
that should not exist). Runs on a temporary SQLite file and an embedded Redis, loopback only.
One worker, which also runs RQ's scheduler, is never killed: RQ's scheduler lock outlives a
killed holder by 60 s (rq/scheduler.py: lock TTL interval + 60), which would only slow the
bench, not change its outcome.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import random
import secrets
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import flask_migrate
import requests
from cryptography.fernet import Fernet
from rq import Queue
from sqlalchemy import func, select

import app.presence as presence
from app.factory import create_app
from app.engine.job import sweep_waiting_requests
from app.extensions import db
from app.queueing import QUEUE
from app.models import (
    ConnectionStatus,
    DealSyncRequest,
    Installation,
    InstallationSettings,
    ReviewItem,
    StageAction,
    StageRule,
    XeroConnection,
)
from app.redis_conn import EmbeddedRedis, get_redis
from app.settings import PIPEDRIVE_SCOPES, Settings
from app.worker import PaydeckSimpleWorker, PaydeckWorker
from sandbox.hubspot import FakeHubSpot
from sandbox.pipedrive import FakePipedrive
from sandbox.kit.jsonio import dumps as pipedrive_json
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero

GST = Decimal("0.10")  # AU OUTPUT, the fake organisation's "GST on Income"
PRICES = (Decimal("150.00"), Decimal("99.90"), Decimal("1234.50"))
RANK = {"none": 0, "draft": 1, "auth": 2}
EXPECTED_STATUS = {"draft": "DRAFT", "auth": "AUTHORISED"}
PATHS = (("draft",), ("draft", "auth"), ("auth", "draft"), ("auth",), ("none",),
         ("draft", "none"), ("none", "auth"))
HTTP_TIMEOUT = 3.0  # Paydeck's; a "slow" fault answers after 4 s, i.e. never in time


@dataclass
class Plan:
    crm: str
    deal_id: str
    path: tuple[str, ...]
    lines: list[tuple[int, Decimal]]  # (quantity, unit price)

    @property
    def expected(self) -> str:
        """The rule of the stage the deal ends in: Paydeck follows the deal's current stage
        (issue #11: dragged to Closed Won and straight back gets the action of where it is)."""
        return self.path[-1]

    @property
    def strongest(self) -> str:
        """The strongest rule it passed through: an invoice made while it stood there may
        already exist, and Paydeck never downgrades one."""
        return max(self.path, key=RANK.__getitem__)

    @property
    def total(self) -> Decimal:
        """Xero's Exclusive arithmetic, by hand: each line's amount plus its 10 % tax."""
        total = Decimal("0.00")
        for quantity, price in self.lines:
            amount = (quantity * price).quantize(Decimal("0.01"))
            total += amount + (amount * GST).quantize(Decimal("0.01"))
        return total

    @property
    def key(self) -> tuple[str, str]:
        """(CRM, deal id): each installation invoices into its own Xero organisation, and
        Paydeck's Reference is "<CRM> <account id> deal <deal id>" (app.engine.keys.reference)."""
        return self.crm, self.deal_id


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    posts: Counter[str] = field(default_factory=Counter)


def main() -> None:
    args = _args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="paydeck-chaos-"))
    redis_server = EmbeddedRedis(tmp / "redis", persist=False)
    stack = _Stack(tmp, redis_server.start())
    try:
        plans = stack.seed(args.deals, rng)
        started = time.monotonic()
        tally = Tally()
        chaos = _Chaos(stack, args, rng, tally)
        chaos.start()
        try:
            _deliver_waves(stack, plans, args, rng, tally)
        finally:
            chaos.stop()
        try:
            quiet = stack.wait_quiet(args.timeout)
            elapsed = time.monotonic() - started
        finally:
            chaos.end()
        _report(stack, plans, tally, elapsed, quiet, args)
    finally:
        stack.close()
        redis_server.stop()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=400, help="over both installations")
    parser.add_argument("--workers", type=int, default=3, help="forking workers that get killed")
    parser.add_argument("--seconds", type=float, default=40, help="how long the chaos lasts")
    parser.add_argument("--timeout", type=float, default=240, help="wait for quiescence at most")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args()


# --- the system under test ------------------------------------------------------------------

class _Stack:
    """Paydeck on loopback, installed into the fake HubSpot and Pipedrive, each installation
    connected to its own organisation in the fake Xero."""

    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.hubspot = FakeHubSpot()
        self.pipedrive = FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split()))
        self.xero = FakeXero()
        self.tenants = {"hubspot": self.xero.add_tenant("Chaos HubSpot Pty Ltd"),
                        "pipedrive": self.xero.add_tenant("Chaos Pipedrive Pty Ltd")}
        self.servers = [LoopbackServer(f).start() for f in (self.hubspot, self.pipedrive, self.xero)]
        hubspot_url, pipedrive_url, xero_url = (s.url for s in self.servers)
        holder: dict[str, Any] = {}
        paydeck = LoopbackServer(lambda env, start: holder["app"](env, start)).start()
        self.servers.append(paydeck)
        self.url = paydeck.url
        self.app = holder["app"] = create_app(Settings(  # type: ignore[call-arg]
            _env_file=None, instance_path=tmp, database_url=f"sqlite:///{tmp / 'chaos.db'}",
            redis_url=redis_url, secret_key=secrets.token_urlsafe(48), encryption_keys=Fernet.generate_key().decode(),
            public_url=paydeck.url, http_timeout=HTTP_TIMEOUT,
            xero_client_id=self.xero.client_id, xero_client_secret=self.xero.client_secret,
            xero_login_base=xero_url, xero_identity_base=xero_url, xero_api_base=xero_url,
            hubspot_client_id=self.hubspot.client_id, hubspot_client_secret=self.hubspot.client_secret,
            hubspot_authorize_url=f"{hubspot_url}/oauth/authorize", hubspot_api_base=hubspot_url,
            hubspot_app_id=str(self.hubspot.app_id),
            pipedrive_client_id=self.pipedrive.client_id,
            pipedrive_client_secret=self.pipedrive.client_secret, pipedrive_oauth_base=pipedrive_url))
        with self.app.app_context():
            flask_migrate.upgrade()
            get_redis().flushdb()
        for crm in ("hubspot", "pipedrive"):
            browser = requests.Session()
            assert browser.get(f"{self.url}/install/{crm}", timeout=10).status_code == 200
            # Each organisation's own admin (a Xero user) connects it.
            self.xero.user_id, self.xero.consent_tenants = f"admin-{crm}", [self.tenants[crm]]
            assert browser.get(f"{self.url}/connect/xero", timeout=10).status_code == 200
        with self.app.app_context():
            assert db.session.scalar(select(func.count()).select_from(XeroConnection).where(
                XeroConnection.status == ConnectionStatus.CONNECTED)) == 2
        self._work()  # the installs' setup jobs: deal fields, Pipedrive's webhooks
        self.hubspot.subscribe(f"{self.url}/webhooks/hubspot", self.hubspot.client_secret)
        api = self.pipedrive.api
        self.stages = {
            "hubspot": {"draft": "contractsent", "auth": "closedwon", "none": "qualifiedtobuy"},
            "pipedrive": {"draft": str(api.stage_id("Proposal Made")), "auth": str(api.stage_id("Won")),
                          "none": str(api.stage_id("Contact Made"))}}
        self._rules()

    def _rules(self) -> None:
        with self.app.app_context():
            for installation in db.session.scalars(select(Installation)):
                crm = installation.crm.value
                row = db.session.get(InstallationSettings, installation.id)
                row.default_account_code, row.default_tax_type = "200", "OUTPUT"
                pipeline = "default" if crm == "hubspot" else "1"
                for kind, action in (("draft", StageAction.DRAFT), ("auth", StageAction.AUTHORISE)):
                    db.session.add(StageRule(installation_id=installation.id, pipeline_id=pipeline,
                                             stage_id=self.stages[crm][kind], action=action))
            db.session.commit()

    def _work(self) -> None:
        with self.app.app_context():
            PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=self.app).work(
                burst=True, logging_level="WARNING")

    def seed(self, deals: int, rng: random.Random) -> list[Plan]:
        """Deals (each with its own company and contact, 1-3 lines) and their stage paths."""
        hs_products = [self.hubspot.crm.add_product(name=f"Product {n}", price=str(p), hs_sku=f"SKU-{n}")
                       for n, p in enumerate(PRICES)]
        pd_products = [self.pipedrive.api.add_product(f"Product {n}", code=f"SKU-{n}", price=p)
                       for n, p in enumerate(PRICES)]
        plans = []
        for n in range(deals):
            crm = ("hubspot", "pipedrive")[n % 2]
            picks = rng.sample(range(len(PRICES)), rng.randint(1, 3))
            lines = [(rng.randint(1, 5), PRICES[i]) for i in picks]
            if crm == "hubspot":
                company = self.hubspot.crm.add_company(name=f"HubSpot Co {n}", domain=f"h{n}.example")
                contact = self.hubspot.crm.add_contact(company_id=company, email=f"ap@h{n}.example",
                                                       firstname="Pat", lastname=f"Buyer {n}")
                deal_id = self.hubspot.crm.add_deal(
                    dealname=f"Deal {n}", company_id=company, contact_ids=[contact],
                    line_items=[{"hs_product_id": hs_products[i], "quantity": str(q)}
                                for i, (q, _) in zip(picks, lines, strict=True)])
            else:
                org = self.pipedrive.api.add_org(f"Pipedrive Co {n}")
                person = self.pipedrive.api.add_person(f"Pat Buyer {n}", email=f"ap@p{n}.example",
                                                       org_id=org)
                deal_id = self.pipedrive.api.add_deal(
                    f"Deal {n}", org_id=org, person_id=person,
                    # Pipedrive's tax fields on each deal product: 10 % on top, as GST on
                    # Income (a product without a tax method is invoiced with no tax).
                    products=[{"product_id": pd_products[i], "quantity": q,
                               "tax": Decimal(10), "tax_method": "exclusive"}
                              for i, (q, _) in zip(picks, lines, strict=True)])
            plans.append(Plan(crm, str(deal_id), rng.choice(PATHS), lines))
        self.hubspot.deliver(force=True)  # creation events: no rule, answered and dropped
        self.pipedrive.deliver()
        return plans

    def move(self, plan: Plan, step: str) -> None:
        stage = self.stages[plan.crm][step]
        if plan.crm == "hubspot":
            self.hubspot.crm.set_deal_properties(plan.deal_id, dealstage=stage)
        else:
            self.pipedrive.api.move_deal(int(plan.deal_id), int(stage))

    def waiting(self) -> int:
        with self.app.app_context():
            db.session.remove()
            return db.session.scalar(select(func.count()).select_from(DealSyncRequest)) or 0

    def wait_quiet(self, timeout: float) -> bool:
        """Until no deal waits, no invoice job is queued, scheduled or running, and no
        webhook is pending, for 3 s in a row (the sweep keeps running, as cron would).
        Writeback retries (their own jobs, minutes apart) are not waited for: the check is
        against Xero."""
        deadline, calm_since = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self.hubspot.deliver(force=True)
            self.pipedrive.deliver()
            busy = self.busy()
            if busy:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= 3:
                return True
            time.sleep(0.5)
        print(f"  not quiescent: {self.busy()}")
        return False

    def busy(self) -> list[str]:
        """What is still going on (empty when quiet)."""
        with self.app.app_context():
            q = Queue(QUEUE, connection=get_redis())
            waiting = self.waiting()
            if waiting:
                sweep_waiting_requests()
            running = [j for j in q.started_job_registry.get_job_ids(cleanup=False)
                       if presence.present(get_redis(), presence.job_name(j))]
            scheduled = [j for j in q.scheduled_job_registry.get_job_ids()
                         if j.startswith("invoice-sync-")]
            queued = q.job_ids
        webhooks = len(self.hubspot.webhooks.pending) + len(self.pipedrive.api.webhooks.pending)
        return [f"{name} {value}" for name, value in (
            ("deals waiting", waiting), ("jobs queued", queued), ("running", running),
            ("scheduled", scheduled), ("webhooks pending", webhooks)) if value]

    def close(self) -> None:
        for server in self.servers:
            server.stop()


# --- the chaos --------------------------------------------------------------------------------

def _serve(app: Any, scheduler: bool) -> None:  # a forked worker process
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)  # the parent's pooled connections are not ours
        PaydeckWorker([QUEUE], connection=get_redis(), app=app).work(
            with_scheduler=scheduler, logging_level="ERROR")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _ours(pid: int) -> bool:
    """Still a process of this bench (forked children share its command line), not another
    process that has since been given the id of one that ended."""
    try:
        return b"bench.chaos" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _kill(pid: int) -> None:
    if _ours(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended meanwhile


class _Chaos:
    """Forking workers killed at random and restarted; faults armed at random; the sweep."""

    def __init__(self, stack: _Stack, args: argparse.Namespace, rng: random.Random,
                 tally: Tally) -> None:
        self.stack, self.args, self.rng, self.tally = stack, args, rng, tally
        self.ctx = multiprocessing.get_context("fork")
        self.workers: list[Any] = []
        self.orphans: list[int] = []  # horses whose worker was killed: they run on, reparented
        self.steady: Any = None
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._kill_loop, daemon=True),
                        threading.Thread(target=self._fault_loop, daemon=True),
                        threading.Thread(target=self._sweep_loop, daemon=True)]

    def start(self) -> None:
        self.steady = self._spawn(scheduler=True)
        self.workers = [self._spawn() for _ in range(self.args.workers)]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """End the killing and the faults (the workers go on until the bench ends)."""
        self.done.set()
        for thread in self.threads[:2]:
            thread.join(timeout=10)
        self.stack.xero.clear_faults()
        self.stack.hubspot.clear_crm_faults()
        self.stack.pipedrive.clear_api_faults()

    def end(self) -> None:
        """Stop the sweep and every worker process this bench started (and their children)."""
        self.done.set()
        pids = [*self.orphans]
        for process in [self.steady, *self.workers]:
            pids += [*_children(process.pid), process.pid]
        for pid in pids:
            _kill(pid)
        for process in [self.steady, *self.workers]:
            process.join(timeout=5)

    def _spawn(self, scheduler: bool = False) -> Any:
        # Not daemonic: RQ's worker forks its scheduler and work horses.
        process = self.ctx.Process(target=_serve, args=(self.stack.app, scheduler))
        process.start()
        return process

    def _kill_loop(self) -> None:
        while not self.done.wait(self.rng.uniform(0.5, 2.5)):
            index = self.rng.randrange(len(self.workers))
            victim = self.workers[index]
            horses = _children(victim.pid)
            mode = self.rng.choice(("worker and horse", "worker and horse", "horse only",
                                    "worker only"))
            if mode == "horse only" and not horses:
                continue
            targets = {"worker and horse": [victim.pid, *horses], "horse only": horses,
                       "worker only": [victim.pid]}[mode]
            for pid in targets:
                _kill(pid)
            self.tally.kills[f"{mode}{' (busy)' if horses else ''}"] += 1
            if mode == "worker only":
                self.orphans.extend(horses)
            if mode != "horse only":
                victim.join(timeout=5)
                self.workers[index] = self._spawn()

    def _fault_loop(self) -> None:
        xero, hubspot, pipedrive = self.stack.xero, self.stack.hubspot, self.stack.pipedrive
        while not self.done.wait(self.rng.uniform(0.3, 1.2)):
            tenant = self.rng.choice(list(self.stack.tenants.values()))
            kind = self.rng.choice(("xero 5xx write", "xero 5xx read", "xero 429", "xero lost",
                                    "xero slow", "hubspot 5xx", "hubspot 429", "pipedrive 5xx",
                                    "pipedrive 429"))
            self.tally.faults[kind] += 1
            if kind == "xero 5xx write":
                xero.inject("5xx", method=self.rng.choice(("PUT", "POST")), path_prefix="/Invoices",
                            status=self.rng.choice((500, 502, 503)), tenant_id=tenant)
            elif kind == "xero 5xx read":
                xero.inject("5xx", method="GET", status=503, tenant_id=tenant)
            elif kind == "xero 429":
                xero.inject("429", problem="minute", retry_after=2, tenant_id=tenant)
            elif kind == "xero lost":
                xero.inject("lost_response", method=self.rng.choice(("PUT", "POST")),
                            path_prefix=self.rng.choice(("/Invoices", "/Contacts")), tenant_id=tenant)
            elif kind == "xero slow":
                xero.inject("slow", method="PUT", delay=HTTP_TIMEOUT + 1, tenant_id=tenant)
            elif kind.startswith("hubspot"):
                hubspot.inject_crm("5xx" if "5xx" in kind else "429", status=503)
            else:
                pipedrive.inject_api("5xx" if "5xx" in kind else "429", status=503)

    def _sweep_loop(self) -> None:
        """What `rq cron` does each minute (app.schedule PERIODIC invoice-sweep), every 10 s."""
        while not self.done.wait(10):
            with self.stack.app.app_context():
                sweep_waiting_requests()


# --- webhooks: waves, shuffled, duplicated, replayed -------------------------------------------

def _deliver_waves(stack: _Stack, plans: list[Plan], args: argparse.Namespace,
                   rng: random.Random, tally: Tally) -> None:
    """Move every deal along its path, and deliver the events in shuffled partial waves for
    `args.seconds`, then everything left."""
    steps = [(plan, step) for plan in plans for step in plan.path]
    position = {id(plan): 0 for plan in plans}
    replays: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + args.seconds
    per_wave = max(1, len(steps) // max(1, int(args.seconds / 1.5)))
    while time.monotonic() < deadline:
        for plan in rng.sample(plans, min(per_wave, len(plans))):
            if position[id(plan)] < len(plan.path):
                stack.move(plan, plan.path[position[id(plan)]])
                position[id(plan)] += 1
        _wave(stack, rng, tally, replays, fraction=rng.uniform(0.3, 0.8))
        time.sleep(rng.uniform(0.5, 1.5))
    for plan in plans:
        while position[id(plan)] < len(plan.path):
            stack.move(plan, plan.path[position[id(plan)]])
            position[id(plan)] += 1
    for _ in range(3):
        _wave(stack, rng, tally, replays, fraction=0.6)
    _wave(stack, rng, tally, replays, fraction=1.0)


def _wave(stack: _Stack, rng: random.Random, tally: Tally,
          replays: list[tuple[str, dict[str, Any]]], fraction: float) -> None:
    """Deliver a shuffled `fraction` of the pending events (hold the rest back), post some
    batches twice, and replay a few old deliveries."""
    hub = stack.hubspot.webhooks
    with hub.lock:  # the fake's queue (kit DeliveryLoop items): reorder it, hold part back
        rng.shuffle(hub._queue)
        now = hub.clock.now()
        for item in hub._queue:
            item.due = now if rng.random() < fraction else now + 3600
    twice = rng.random() < 0.3
    for result in stack.hubspot.deliver(duplicate=twice):
        tally.posts["hubspot duplicate" if result.duplicate else "hubspot"] += 1
        replays.append(("hubspot", {"url": result.url, "body": result.body, "headers": result.headers}))
    dispatcher = stack.pipedrive.api.webhooks
    with dispatcher.lock:  # the fake's queue (kit DeliveryLoop items): reorder, hold part back
        pending = list(dispatcher._queue)  # queue order, as the seeded shuffle expects
        seqs = [p.seq for p in pending]
        rng.shuffle(seqs)
        now = dispatcher.clock.now()
        for item, seq in zip(pending, seqs, strict=True):
            item.seq, item.due = seq, (now if rng.random() < fraction else now + 3600)
        hooks = {h.id: h for h in dispatcher.hooks}
        sent = [(copy.deepcopy(p.event), hooks[p.target]) for p in pending
                if p.due <= now and p.target in hooks]
    tally.posts["pipedrive"] += len(stack.pipedrive.deliver())
    for payload, hook in sent:
        replays.append(("pipedrive", {"url": hook.subscription_url, "json": payload,
                                      "auth": (hook.http_auth_user, hook.http_auth_password or "")}))
    for kind, request in rng.sample(replays, min(len(replays), 5)):
        if kind == "hubspot":
            requests.post(request["url"], data=request["body"], headers=request["headers"], timeout=10)
        else:
            requests.post(request["url"], data=pipedrive_json(request["json"]).encode(),
                          auth=request["auth"], timeout=10,
                          headers={"Content-Type": "application/json"})
        tally.posts[f"{kind} replayed"] += 1


# --- the verdict --------------------------------------------------------------------------------

def _report(stack: _Stack, plans: list[Plan], tally: Tally, elapsed: float, quiet: bool,
            args: argparse.Namespace) -> None:
    wrong, approvals_lost, lost, duplicates = 0, 0, 0, 0
    problems: Counter[str] = Counter()
    invoices = {crm: stack.xero.accounting(tenant).invoices for crm, tenant in stack.tenants.items()}
    by_key: dict[tuple[str, str], list[Any]] = {}
    label = {"hubspot": "HubSpot ", "pipedrive": "Pipedrive "}
    for crm, crm_invoices in invoices.items():
        for invoice in crm_invoices:
            reference = invoice.reference or ""
            if reference.startswith(label[crm]) and " deal " in reference:
                by_key.setdefault((crm, reference.rsplit(" deal ", 1)[1]), []).append(invoice)
            else:
                problems["invoice with a Reference Paydeck does not make"] += 1
    for plan in plans:
        found = by_key.get(plan.key, [])
        if not found:
            if plan.expected != "none":
                lost += 1
            continue
        if plan.strongest == "none":
            wrong += 1
            problems["invoice for a deal with no rule"] += 1
            continue
        if len(found) > 1:
            duplicates += len(found) - 1
            wrong += 1
            problems["duplicate"] += 1
            continue
        (invoice,) = found
        rank = {"DRAFT": RANK["draft"], "AUTHORISED": RANK["auth"]}.get(invoice.status, -1)
        if plan.expected == "auth" and invoice.status == "DRAFT":
            approvals_lost += 1
        elif not RANK[plan.expected] <= rank <= RANK[plan.strongest]:
            wrong += 1
            problems[f"status {invoice.status} for path {'>'.join(plan.path)}"] += 1
        if invoice.total != plan.total:
            wrong += 1
            problems["total"] += 1
    with stack.app.app_context():
        items = list(db.session.scalars(select(ReviewItem)))
        reviews = Counter(r.reason.value for r in items)
        details = Counter(f"{r.reason.value}: {r.detail[:120]}" for r in items)
        waiting = db.session.scalar(select(func.count()).select_from(DealSyncRequest))
        per_crm = Counter(i.crm.value for i in db.session.scalars(select(Installation)))
    xero_faults = Counter(c.fault for c in stack.xero.api_calls if c.fault)
    rate_limited = sum(1 for c in stack.xero.api_calls if c.status == 429)
    crm_faults = Counter(f"hubspot {c.fault}" for c in stack.hubspot.crm_calls if c.fault)
    crm_faults.update(f"pipedrive {c.fault}" for c in stack.pipedrive.api_calls if c.fault)
    expected = Counter(p.expected for p in plans)
    print(f"chaos: {len(plans)} deals over {sum(per_crm.values())} installations "
          f"({dict(Counter(p.crm for p in plans))}); expected {dict(expected)}")
    print(f"  workers: {args.workers} forking, killed {sum(tally.kills.values())} times "
          f"{dict(tally.kills)}; plus one steady worker running RQ's scheduler")
    print(f"  faults armed {sum(tally.faults.values())} {dict(tally.faults)}")
    print(f"  Xero calls {len(stack.xero.api_calls)}, hit by a fault {sum(xero_faults.values())} "
          f"{dict(xero_faults)}, 429s {rate_limited}; CRM calls hit by a fault "
          f"{sum(crm_faults.values())} {dict(crm_faults)}")
    print(f"  webhook posts {sum(tally.posts.values())} {dict(tally.posts)}")
    print(f"  review items {dict(reviews)}; still waiting {waiting}; quiescent {quiet}")
    print(f"  duplicates {duplicates}; other problems {dict(problems)}")
    for detail, n in details.most_common(5):
        print(f"    review x{n}: {detail}")
    print(f"  time {elapsed:.0f} s (chaos {args.seconds:.0f} s, then draining)")
    print(f"invoices wrong: {wrong}, approvals lost: {approvals_lost}, lost: {lost}")


if __name__ == "__main__":
    main()
