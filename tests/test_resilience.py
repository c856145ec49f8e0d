"""A worker killed at the wrong moment costs seconds, not minutes (issue #11 point 5): stale
jobs are replaced, backoff is per deal, the contact mirror resumes per page, no keyspace scan
on the hot path, and history is pruned."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from app import presence
from app.engine.job import enqueue_sync, sync_installation
from app.extensions import db
from app.jobs import prune_history
from app.schedule import PERIODIC
from app.models import (
    AuditEvent,
    DealSyncRequest,
    InvoiceLink,
    InvoiceLinkState,
    StageAction,
    SyncCursor,
    WebhookReceipt,
)
from app.queueing import QUEUE, enqueue_once
from app.redis_conn import get_redis
from app.worker import PaydeckWorker
from sandbox.memory_crm import deal
from tests.helpers import count, installed, one
from tests.test_engine import Env, env  # noqa: F401  (the engine's fixture)

# --- 1. a job a killed worker left behind is replaced at once ---------------------------------


def _noop() -> int:
    return 1


def _stale_job(status: JobStatus, worker_name: str = "") -> Job:
    """A job hash as a killed worker leaves it: the status it had, in no queue or registry."""
    q = Queue(QUEUE, connection=get_redis())
    job = q.create_job(_noop, job_id="stale-job", result_ttl=0)
    job.set_status(status)
    job.worker_name = worker_name
    job.save()
    return job


def test_a_started_job_whose_worker_is_gone_is_replaced(app):
    _stale_job(JobStatus.STARTED, worker_name="killed-worker")

    job = enqueue_once(_noop, job_id="stale-job")

    assert job is not None and job.get_status() == JobStatus.QUEUED
    assert Queue(QUEUE, connection=get_redis()).job_ids == ["stale-job"]


def test_a_queued_job_in_no_queue_is_replaced(app):
    _stale_job(JobStatus.QUEUED)

    assert enqueue_once(_noop, job_id="stale-job") is not None
    assert Queue(QUEUE, connection=get_redis()).job_ids == ["stale-job"]


def test_a_job_a_dead_worker_dequeued_but_never_started_is_replaced(app):
    """Killed between RQ's dequeue (the id moves to the intermediate list) and the start: the
    job stays "queued" in no queue; RQ itself would clean it up only after a minute or more."""
    from rq.executions import Execution

    redis = get_redis()
    q = Queue(QUEUE, connection=redis)
    job = _stale_job(JobStatus.QUEUED)
    redis.rpush(q.intermediate_queue_key, job.id)
    with redis.pipeline() as pipe:
        Execution.create(job, 90, pipeline=pipe, worker_name="killed-worker")
        pipe.execute()

    assert enqueue_once(_noop, job_id="stale-job") is not None

    assert q.job_ids == ["stale-job"] and redis.lrange(q.intermediate_queue_key, 0, -1) == []


def test_a_job_a_live_worker_just_dequeued_is_left_alone(app):
    from rq.executions import Execution

    redis = get_redis()
    q = Queue(QUEUE, connection=redis)
    job = _stale_job(JobStatus.QUEUED)
    redis.rpush(q.intermediate_queue_key, job.id)
    worker = PaydeckWorker([QUEUE], connection=redis, app=app)
    with redis.pipeline() as pipe:
        Execution.create(job, 90, pipeline=pipe, worker_name=worker.name)
        pipe.execute()
    worker.subscribe()  # what RQ's worker does when it starts (rq/worker/base.py bootstrap)
    try:
        assert enqueue_once(_noop, job_id="stale-job") is None
    finally:
        worker.unsubscribe()

    assert q.job_ids == []


def test_a_started_job_whose_process_is_present_is_left_alone(app):
    _stale_job(JobStatus.STARTED, worker_name="killed-worker")

    # A work horse whose parent worker died still runs the job, and holds its presence.
    with presence.hold(get_redis(), presence.job_name("stale-job")):
        assert enqueue_once(_noop, job_id="stale-job") is None
        assert enqueue_once(_noop, job_id="stale-job", follow_up=True).id == "stale-job-next"

    assert Queue(QUEUE, connection=get_redis()).job_ids == ["stale-job-next"]


def test_a_waiting_job_is_not_replaced_and_a_later_one_is_brought_forward(app):
    q = Queue(QUEUE, connection=get_redis())
    assert enqueue_once(_noop, job_id="queued") is not None
    assert enqueue_once(_noop, job_id="queued") is None
    assert enqueue_once(_noop, job_id="later", delay=600) is not None

    assert enqueue_once(_noop, job_id="later") is None  # wanted now: due now, not in 10 min

    assert q.job_ids == ["queued"]
    due = q.scheduled_job_registry.get_scheduled_time("later")
    assert due <= datetime.now(timezone.utc) + timedelta(seconds=1)


def _serve_jobs(app) -> None:  # a forked worker process: RQ's forking worker, as deployed
    with app.app_context():
        PaydeckWorker([QUEUE], connection=get_redis(), app=app).work(burst=False)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker and its work horse at once: a container or VM dying under them."""
    for victim in [pid, *_children(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(condition, timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not done within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_worker_killed_mid_job_costs_seconds_not_minutes(env):
    """SIGKILL a real forking worker (and its horse) while Xero is creating the invoices. The
    next enqueue replaces the dead job at once, and a live worker finishes the installation's
    deals - the dead run's ones found by Reference, a new one created - within seconds."""
    ctx = multiprocessing.get_context("fork")
    for n in range(3):
        env.crm.add(deal(f"K{n}", org=f"Killed Co {n}", email=f"ap@k{n}.example"))
    env.crm.add(deal("K-new", org="Late Co", email="ap@late.example"))
    env.fake.inject("slow", method="PUT", path_prefix="/Invoices", delay=2)
    for n in range(3):
        env.request(f"K{n}")  # enqueues the job; no worker runs yet
    doomed = ctx.Process(target=_serve_jobs, args=(env.app,))
    doomed.start()
    try:
        _wait(lambda: env.fake.count_calls(method="PUT", path_prefix="/Contacts") >= 1, 20)
        time.sleep(0.5)  # the invoice PUT is now sleeping inside the fake
        _kill_tree(doomed.pid)
        doomed.join(timeout=5)
    finally:
        if doomed.is_alive():
            doomed.kill()
    with env.app.app_context():
        job = Job.fetch(f"invoice-sync-{env.installation_id}", connection=get_redis())
        assert job.get_status() == JobStatus.STARTED  # what blocked the installation before
    survivor = ctx.Process(target=_serve_jobs, args=(env.app,))
    survivor.start()
    try:
        killed_at = time.monotonic()
        env.request("K-new")  # the next enqueue: a webhook for the same installation

        def all_done() -> bool:
            with env.app.app_context():
                db.session.remove()
                return count(env.app, DealSyncRequest) == 0 and count(
                    env.app, InvoiceLink, InvoiceLink.state == InvoiceLinkState.CREATED) == 4

        _wait(all_done, 40)
        recovery = time.monotonic() - killed_at
    finally:
        survivor.kill()
        survivor.join(timeout=5)

    print(f"\nkilled worker -> all deals invoiced: {recovery:.1f} s")
    assert recovery < 20  # the dead run's lease (SYNC_LOCK_TTL 15 s) is the longest wait
    for deal_id in ("K0", "K1", "K2", "K-new"):
        assert len(env.invoices_for(deal_id)) == 1, deal_id


# --- 2. backoff is per deal ----------------------------------------------------------------------


def test_a_new_deal_in_a_failing_batch_backs_off_from_its_first_try(env):
    env.crm.add(deal("B-old", org="Old Co", email="ap@old.example"))
    env.crm.add(deal("B-new", org="New Co", email="ap@new.example"))
    with env.app.app_context():
        db.session.add(DealSyncRequest(installation_id=env.installation_id, deal_id="B-old",
                                       action=StageAction.AUTHORISE, attempts=4))
        db.session.commit()
    env.fake.inject("5xx", method="PUT", path_prefix="/Invoices", status=503)

    env.request("B-new")
    env.work()

    with env.app.app_context():
        rows = {r.deal_id: r for r in db.session.scalars(select(DealSyncRequest))}
        now = datetime.now(timezone.utc)
        old, new = rows["B-old"], rows["B-new"]
        assert (old.attempts, new.attempts) == (5, 1)
        # xero.errors.backoff: base 5 s x 4^(n-1), capped at 600, "equal jitter" [d/2, d].
        # After try 1: d = 5 s -> wait in [2.5, 5]. After try 5: 5 x 4^4 = 1280 -> capped
        # 600 -> wait in [300, 600].
        assert new.not_before - now <= timedelta(seconds=5)
        assert old.not_before - now >= timedelta(seconds=299)
        due = Queue(QUEUE, connection=get_redis()).scheduled_job_registry
        (job_id,) = due.get_job_ids()
        assert due.get_scheduled_time(job_id) <= now + timedelta(seconds=6)  # the new deal's


# --- 3. the contact mirror's first sync resumes at the page that failed --------------------------


def test_a_503_on_page_31_of_61_resumes_at_page_31(env, monkeypatch):
    from xero.limits import LimitConfig, XeroLimiter

    monkeypatch.setattr("xero.client.PAGE_SIZE", 10)
    # 120 page reads in a minute: above Xero's 60/minute, which is not what this test is about.
    monkeypatch.setattr("app.connections.XeroLimiter",
                        lambda redis, **kw: XeroLimiter(redis, LimitConfig(per_minute=1000), **kw))
    env.fake.rate_limits.per_minute = 1000
    for n in range(605):  # 61 pages of 10 (the last has 5)
        env.books.add_contact(f"Existing {n:03d}", EmailAddress=f"ap@e{n}.example")
    env.crm.add(deal("M1", org="Existing 604", email="ap@e604.example"))
    env.fake.inject("5xx", method="GET", path_prefix="/Contacts", status=503, skip=30)

    env.request("M1")
    env.work()
    assert env.invoices_for("M1") == []
    with env.app.app_context():
        assert db.session.scalar(select(SyncCursor.page)) == 31
        db.session.execute(DealSyncRequest.__table__.update().values(not_before=None))
        db.session.commit()
        sync_installation(env.installation_id)

    # The mirror's pages (not the read of the matched contacts' own terms, `?IDs=`).
    pages = [int(parse_qs(c.query)["page"][0]) for c in env.fake.api_calls
             if c.method == "GET" and c.path.endswith("/Contacts") and "page=" in c.query
             and "IDs" not in parse_qs(c.query)]
    assert pages == list(range(1, 32)) + list(range(31, 62))
    (invoice,) = env.invoices_for("M1")
    assert env.books.contact(invoice.contact_id).name == "Existing 604"  # matched, not created
    with env.app.app_context():
        cursor = db.session.scalars(select(SyncCursor)).one()
        assert cursor.page is None and cursor.position is not None


# --- 4. no whole-keyspace scan on the hot path -------------------------------------------------


def _scans(redis) -> dict[str, int]:
    stats = redis.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("keys", "scan")}


def test_webhook_sync_and_card_issue_no_keys_or_scan(app_factory, fake_hubspot, fake_xero,
                                                     browser):
    """A signed HubSpot webhook, the worker's run (including Xero refusing an invoice, which
    drops the cached reference data) and the card: Redis sees no KEYS and no SCAN."""
    from app.models import Installation, InstallationSettings, ProductMapping, StageRule
    from app.worker import PaydeckSimpleWorker
    from tests.test_cards import card_get

    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    app, url, tenant = installed(app_factory, browser, "hubspot", fake_hubspot, fake_xero)

    def work() -> None:
        with app.app_context():
            PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)

    work()
    odd = hubspot.crm.add_product(name="Retired service", price="90.00", hs_sku="OLD-1")
    good = hubspot.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    with app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        settings = db.session.get(InstallationSettings, installation_id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.add(StageRule(installation_id=installation_id, pipeline_id="default",
                                 stage_id="closedwon", action=StageAction.AUTHORISE))
        db.session.add(ProductMapping(installation_id=installation_id, crm_product_id=odd,
                                      account_code="260"))
        db.session.commit()
    hubspot.subscribe(f"{url}/webhooks/hubspot", hubspot.client_secret)
    deals = []
    for n, product in enumerate((good, odd)):
        company = hubspot.crm.add_company(name=f"Company {n}", domain=f"c{n}.example")
        contact = hubspot.crm.add_contact(company_id=company, email=f"ap@c{n}.example")
        deals.append(hubspot.crm.add_deal(dealname=f"Deal {n}", company_id=company,
                                          contact_ids=[contact],
                                          line_items=[{"hs_product_id": product, "quantity": "1"}]))
    hubspot.deliver()
    hubspot.crm.set_deal_properties(deals[0], dealstage="closedwon")
    hubspot.deliver()
    work()  # caches the reference data (account 260 still active)
    xero.accounting(tenant).set_account_status("260", "ARCHIVED")
    with app.app_context():
        redis = get_redis()
        before = _scans(redis)

    hubspot.crm.set_deal_properties(deals[1], dealstage="closedwon")
    assert [d.status for d in hubspot.deliver()] == [200]
    work()  # Xero refuses the invoice: the cached reference data is dropped
    card = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id,
                                                 "objectType": "deals", "objectId": deals[0]})

    assert card.status_code == 200
    with app.app_context():
        assert not get_redis().exists(f"paydeck:xero-ref:{installation_id}")  # it did run
        assert _scans(get_redis()) == before


# --- 5. retention --------------------------------------------------------------------------------


def test_prune_history_keeps_recent_receipts_and_all_audit_events_by_default(app):
    now = datetime.now(timezone.utc)
    for days in (0, 1, 29, 31, 400):
        db.session.add(WebhookReceipt(source="hubspot", event_key=f"e{days}", outcome="enqueued",
                                      received_at=now - timedelta(days=days)))
        db.session.add(AuditEvent(action="test", outcome="ok", created_at=now - timedelta(days=days)))
    db.session.commit()

    assert prune_history() == {"webhook_receipts": 2}

    assert sorted(db.session.scalars(select(WebhookReceipt.event_key))) == ["e0", "e1", "e29"]
    assert count(app, AuditEvent) == 5


def test_prune_history_deletes_audit_events_when_configured_in_batches(app_factory, monkeypatch):
    app = app_factory.create(audit_retention_days=90, webhook_receipt_retention_days=2)
    monkeypatch.setattr("app.jobs.PRUNE_BATCH", 3)
    now = datetime.now(timezone.utc)
    with app.app_context():
        for n in range(10):
            db.session.add(AuditEvent(action="old", outcome="ok", created_at=now - timedelta(days=91)))
            db.session.add(WebhookReceipt(source="xero", event_key=f"x{n}",
                                          received_at=now - timedelta(days=3)))
        db.session.add(AuditEvent(action="recent", outcome="ok", created_at=now - timedelta(days=89)))
        db.session.commit()

        assert prune_history() == {"webhook_receipts": 10, "audit_events": 10}

        assert list(db.session.scalars(select(AuditEvent.action))) == ["recent"]
        assert db.session.scalar(select(func.count()).select_from(WebhookReceipt)) == 0
        db.session.remove()


def test_retention_settings_and_the_daily_job(app_factory):
    from pydantic import ValidationError

    from app.settings import Settings

    settings = app_factory.settings()
    assert (settings.webhook_receipt_retention_days, settings.audit_retention_days) == (30, None)
    assert Settings(_env_file=None, audit_retention_days="").audit_retention_days is None  # type: ignore[call-arg]
    with pytest.raises(ValidationError):  # under the vendors' 24 h retry window + a day
        Settings(_env_file=None, webhook_receipt_retention_days=1)  # type: ignore[call-arg]
    (job,) = [p for p in PERIODIC if p.func is prune_history]
    assert job.cron == "41 4 * * *"


def test_an_old_receipt_still_drops_a_repeat_within_the_retry_window(app):
    """Pruning keeps every receipt a vendor could still retry (24 h), so dedupe holds."""
    now = datetime.now(timezone.utc)
    db.session.add(WebhookReceipt(source="hubspot", event_key="retried", received_at=now - timedelta(hours=23)))
    db.session.commit()

    prune_history()

    assert one(app, WebhookReceipt).event_key == "retried"


def test_enqueue_sync_after_a_kill_is_not_blocked_by_the_dead_job(app):
    """enqueue_sync on an installation whose job a killed worker left STARTED queues a job."""
    q = Queue(QUEUE, connection=get_redis())
    job = q.create_job(sync_installation, args=(42,), job_id="invoice-sync-42", result_ttl=0)
    job.set_status(JobStatus.STARTED)
    job.worker_name = "killed"
    job.save()

    enqueue_sync(42)

    assert "invoice-sync-42" in q.job_ids


# --- the installation lock: a lease renewed while its holder lives ------------------------------


def test_a_live_lease_outlasts_its_ttl_and_a_dead_one_is_waited_out(app):
    from app.presence import Lease

    redis = get_redis()
    holder = Lease(redis, "paydeck:test-lease", ttl=1.5)
    assert holder.acquire()
    time.sleep(2.5)  # longer than the TTL: the renewer thread kept it
    contender = Lease(redis, "paydeck:test-lease", ttl=1.5)
    assert not contender.acquire()
    assert not contender.wait_out_dead_holder(5)  # its holder is alive: come back later

    holder._stop.set()  # the holder is killed: no renewals, its presence gone
    holder._renewer.join()
    holder._presence.close()
    started = time.monotonic()
    assert contender.wait_out_dead_holder(5) and contender.acquire()

    assert time.monotonic() - started <= 1.6  # at most what was left of the dead lease
    contender.release()
    assert redis.get("paydeck:test-lease") is None


def test_a_killed_jobs_xero_slot_is_freed_at_once_not_after_its_ttl(app):
    """Xero allows 5 calls in flight per tenant; a slot's TTL (120 s) frees one a killed
    process held. With holders named, a slot whose holder is gone is freed when needed."""
    from xero.limits import LimitConfig, Wait, XeroLimiter

    redis = get_redis()
    config = LimitConfig(concurrent=1)
    alive = lambda name: presence.present(redis, name)  # noqa: E731
    with presence.hold(redis) as doomed:
        killed = XeroLimiter(redis, config, prefix="paydeck:test-limit:", holder=doomed,
                             holder_alive=alive)
        killed.acquire("tenant-1")  # in flight when its process dies: never released
    plain = XeroLimiter(redis, config, prefix="paydeck:test-limit:")
    with pytest.raises(Wait):
        with plain.call("tenant-1", max_wait=0):
            pass  # without holder names: blocked until the slot's TTL

    with presence.hold(redis) as me:
        mine = XeroLimiter(redis, config, prefix="paydeck:test-limit:", holder=me,
                           holder_alive=alive)
        with mine.call("tenant-1", max_wait=0) as slot:
            assert slot.token.startswith(me)
