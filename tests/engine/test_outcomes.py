"""A batch that cannot go on: postponed, given up, or waiting for a reconnect (outcomes), and
which failure leads to which (the job's batch loop)."""

from __future__ import annotations

import pytest
from rq import Queue

from app.engine import job
from app.engine.outcomes import give_up, postpone, reconnect_review
from app.extensions import db
from app.models import DealSyncRequest, ReviewItem, ReviewReason
from app.queueing import QUEUE
from app.redis_conn import get_redis
from crm_adapters.base import CrmError
from xero.errors import FixData, ReconnectNeeded, RetryLater


def requests(batch, *deal_ids, attempts=()):
    ctx = batch.context(*deal_ids)
    for r, n in zip([w.request for w in ctx.items], attempts):
        r.attempts = n
    db.session.commit()
    return [w.request for w in ctx.items]


def test_each_postponed_deal_waits_by_its_own_count(batch):
    fresh, tried = requests(batch, "1", "2", attempts=(0, 3))
    exc = RetryLater(1.0, "Xero is busy", wait_for_attempt=lambda attempts: 10.0 * attempts)

    soonest = postpone([fresh, tried], exc, "busy")

    fresh, tried = (db.session.get(DealSyncRequest, r.id) for r in (fresh, tried))
    assert (fresh.attempts, tried.attempts) == (1, 4)
    assert fresh.not_before < tried.not_before
    assert (tried.not_before - fresh.not_before).total_seconds() == 30.0
    assert soonest == 10.0


def test_giving_up_reviews_each_deal_and_keeps_a_request_merged_since(batch):
    first, merged = requests(batch, "1", "2")
    versions = {first.id: first.version, merged.id: merged.version}
    merged.version += 1
    db.session.commit()

    give_up([first, merged], versions, "the CRM refused: 403")

    assert [i.deal_id for i in db.session.scalars(db.select(ReviewItem))] == ["1", "2"]
    assert db.session.scalars(db.select(DealSyncRequest.deal_id)).all() == ["2"]


def test_one_reconnect_item_however_often_it_is_said(batch):
    reconnect_review(batch.installation_id, "Xero is not connected")
    reconnect_review(batch.installation_id, "Xero is not connected")

    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.RECONNECT_NEEDED


@pytest.mark.parametrize(("failure", "goes_on", "reason"), [
    pytest.param(CrmError("403 forbidden"), True, ReviewReason.SYNC_FAILED, id="crm-refused"),
    pytest.param(FixData(["Organisation is not subscribed"]), True, ReviewReason.SYNC_FAILED,
                 id="xero-refused"),
    pytest.param(ReconnectNeeded("invalid_grant"), False, ReviewReason.RECONNECT_NEEDED,
                 id="reconnect"),
    pytest.param(RetryLater(30.0, "rate limit"), False, None, id="retry-later"),
])
def test_a_failed_batch_has_one_outcome(batch, failure, goes_on, reason):
    waiting = requests(batch, "1")
    Queue(QUEUE, connection=get_redis()).empty()

    assert job._failed(batch.installation_id, waiting, {waiting[0].id: 0}, failure) is goes_on

    assert [i.reason for i in db.session.scalars(db.select(ReviewItem))] == (
        [reason] if reason else [])
    left = db.session.scalars(db.select(DealSyncRequest)).all()
    assert len(left) == (0 if goes_on else 1)
    woken = Queue(QUEUE, connection=get_redis()).scheduled_job_registry.get_job_ids()
    assert woken == ([f"invoice-sync-{batch.installation_id}"] if reason is None else [])
