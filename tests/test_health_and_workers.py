"""/healthz, and jobs running in real RQ workers inside an app context."""

from __future__ import annotations

from rq import Queue
from rq.cron import CronScheduler

from app.extensions import db
from app.jobs import enqueue_revoke_xero
from app.queueing import QUEUE
from app.models import ConnectionStatus, XeroConnection
from app.redis_conn import get_redis
from app.worker import PaydeckWorker
from tests.helpers import one


def test_healthz_reports_database_redis_and_no_worker(app):
    response = app.test_client().get("/healthz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["workers"]["alive"] == 0
    assert body["status"] == "degraded"


def test_healthz_sees_a_live_worker_and_cron_scheduler(app):
    redis = get_redis()
    worker = PaydeckWorker([QUEUE], connection=redis, app=app)
    worker.register_birth()
    worker.heartbeat()
    scheduler = CronScheduler(connection=redis)
    scheduler.register_birth()
    scheduler.heartbeat()
    try:
        body = app.test_client().get("/healthz").get_json()
    finally:
        worker.register_death()
        scheduler.register_death()

    assert body["workers"]["alive"] == 1
    assert body["cron"]["alive"] == 1
    assert body["status"] == "ok"


def test_healthz_is_503_when_redis_is_down(app_factory):
    broken = app_factory.create(redis_url="redis://127.0.0.1:9/0")

    response = broken.test_client().get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("error")
    assert response.get_json()["status"] == "down"


def test_a_forking_worker_runs_the_job_with_the_database(xero_connected, fake_xero):
    """RQ's default (forking) worker: the job reaches the DB and Xero from the work horse."""
    app, _, _ = xero_connected
    fake, _ = fake_xero
    refresh_token = one(app, XeroConnection).refresh_token
    with app.app_context():
        installation_id = one(app, XeroConnection).installation_id
        Queue(QUEUE, connection=get_redis()).empty()  # the install's CRM setup: not this test
        enqueue_revoke_xero(installation_id)
        enqueue_revoke_xero(installation_id)  # a repeat: same job id, runs once
        assert Queue(QUEUE, connection=get_redis()).count == 1
        worker = PaydeckWorker([QUEUE], connection=get_redis(), app=app)
        assert worker.work(burst=True)
        db.session.remove()

    assert one(app, XeroConnection).status == ConnectionStatus.DISCONNECTED
    assert fake.store.grant_of_refresh_token(refresh_token).revoked
