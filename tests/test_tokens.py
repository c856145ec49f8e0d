"""Access tokens: refreshed before expiry, once per grant across processes, and reconnect-needed."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from app.connections import xero_config
from app.runtime import get_settings
from app.extensions import db
from app.jobs import keep_xero_connections_alive
from app.models import ConnectionStatus, ReviewItem, ReviewReason, XeroConnection
from app.tokens import ReconnectNeeded, TokenUnavailable, access_token
from tests._procs import fetch_xero_token
from tests.helpers import count, one
from xero import identity


def _expire_soon(app, connection_id, seconds=30):
    with app.app_context():
        db.session.execute(update(XeroConnection).where(XeroConnection.id == connection_id).values(
            token_expires_at=datetime.now(timezone.utc) + timedelta(seconds=seconds)))
        db.session.commit()


def test_a_valid_token_is_used_without_a_refresh(xero_connected, fake_xero):
    app, _, connection_id = xero_connected
    fake, _ = fake_xero
    stored = one(app, XeroConnection).access_token

    with app.app_context():
        token = access_token(XeroConnection, connection_id)

    assert token == stored
    assert fake.refresh_count == 0
    assert one(app, XeroConnection).last_used_at is not None


def test_a_token_near_expiry_is_refreshed_and_the_rotated_refresh_token_stored(xero_connected, fake_xero):
    app, _, connection_id = xero_connected
    fake, _ = fake_xero
    before = one(app, XeroConnection)
    _expire_soon(app, connection_id)

    with app.app_context():
        token = access_token(XeroConnection, connection_id)

    after = one(app, XeroConnection)
    assert fake.refresh_count == 1
    assert token == after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token  # Xero rotates it
    assert after.token_expires_at > datetime.now(timezone.utc) + timedelta(minutes=20)


def test_eight_processes_needing_a_token_at_once_refresh_exactly_once(xero_connected, fake_xero):
    app, _, connection_id = xero_connected
    fake, _ = fake_xero
    _expire_soon(app, connection_id)
    fake.set_token_delay(0.3)  # a slow token endpoint: everyone arrives while it is in flight
    with app.app_context():
        settings = get_settings().model_dump()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    workers = [ctx.Process(target=fetch_xero_token, args=(settings, connection_id, barrier, results))
               for _ in range(8)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=30)

    assert [kind for kind, _ in outcomes] == ["ok"] * 8, outcomes
    assert fake.refresh_count == 1
    tokens = {token for _, token in outcomes}
    assert tokens == {one(app, XeroConnection).access_token}
    with app.app_context():  # and the connection works afterwards
        assert identity.list_organisations(xero_config(get_settings()), tokens.pop())[0].tenant_name == "Acme Pty Ltd"


def test_revoked_grant_marks_reconnect_needed_without_a_crash_loop(xero_connected, fake_xero, browser):
    app, url, connection_id = xero_connected
    fake, _ = fake_xero
    fake.revoke_all()
    _expire_soon(app, connection_id)

    with app.app_context(), pytest.raises(ReconnectNeeded):
        access_token(XeroConnection, connection_id)
    calls_after_first_failure = len(fake.token_requests)
    with app.app_context(), pytest.raises(ReconnectNeeded):
        access_token(XeroConnection, connection_id)

    assert len(fake.token_requests) == calls_after_first_failure  # no second refresh attempt
    connection = one(app, XeroConnection)
    assert connection.status == ConnectionStatus.RECONNECT_NEEDED
    assert connection.refresh_token is None
    assert count(app, ReviewItem, ReviewItem.reason == ReviewReason.RECONNECT_NEEDED) == 1
    status = browser.get(f"{url}/connect/xero/status").json()
    assert status["xero"]["status"] == "reconnect_needed"
    assert status["xero"]["detail"]  # why, in words the admin can act on
    assert "Connect to Xero" in browser.get(f"{url}/setup").text


def test_unreachable_token_endpoint_is_temporary_not_reconnect(app_factory, xero_connected):
    app, _, connection_id = xero_connected
    _expire_soon(app, connection_id)
    broken = app_factory.create(xero_identity_base="http://127.0.0.1:9")  # nothing listens

    with broken.app_context(), pytest.raises(TokenUnavailable):
        access_token(XeroConnection, connection_id)

    assert one(app, XeroConnection).status == ConnectionStatus.CONNECTED


def test_keep_alive_refreshes_only_idle_connections(xero_connected, fake_xero):
    app, _, connection_id = xero_connected
    fake, _ = fake_xero

    with app.app_context():
        assert keep_xero_connections_alive()["refreshed"] == 0
    with app.app_context():
        db.session.execute(update(XeroConnection).values(
            token_refreshed_at=datetime.now(timezone.utc) - timedelta(days=20)))
        db.session.commit()
        counts = keep_xero_connections_alive()

    assert counts == {"checked": 1, "refreshed": 1, "reconnect_needed": 0, "unavailable": 0}
    assert fake.refresh_count == 1
    assert one(app, XeroConnection).token_refreshed_at > datetime.now(timezone.utc) - timedelta(minutes=1)


def test_a_recovered_grant_wakes_its_deals_through_the_hook_create_app_registers(app):
    """app/tokens.py imports no engine: create_app hands it the engine's wake-up."""
    from rq import Queue

    from app.engine.job import enqueue_sync
    from app.queueing import QUEUE
    from app.redis_conn import get_redis
    from app.tokens import ON_GRANT_RECOVERED, _wake_waiting_deals

    assert app.extensions[ON_GRANT_RECOVERED] is enqueue_sync
    Queue(QUEUE, connection=get_redis()).empty()

    _wake_waiting_deals(42)

    assert Queue(QUEUE, connection=get_redis()).job_ids == ["invoice-sync-42"]
