"""The shared drain loop of both contact sync jobs (app.contact_sync.drain): ids removed only
once handled, ids arriving mid-run handled by the same run, one drain per key at a time, a
"come back later" keeps the ids and wakes the job after the delay asked for."""

from __future__ import annotations

from app.contact_sync.drain import drain
from app.redis_conn import get_redis
from xero.errors import RetryLater

KEY = "paydeck:test-drain:1"


def test_ids_arriving_while_a_run_handles_are_handled_by_the_same_run(app):
    with app.app_context():
        redis = get_redis()
        redis.sadd(KEY, "a")
        seen, woken = [], []

        def handle(ids):
            seen.append(sorted(ids))
            if len(seen) == 1:
                redis.sadd(KEY, "b")  # a webhook, mid-run
            return len(ids)

        assert drain(KEY, handle, woken.append) == 2
        assert seen == [["a"], ["b"]] and woken == [] and redis.scard(KEY) == 0


def test_a_second_drain_waits_for_the_one_at_work_then_leaves_it_the_ids(app):
    with app.app_context():
        redis = get_redis()
        redis.sadd(KEY, "a")
        inner, pauses = [], []

        def handle(ids):
            redis.sadd(KEY, "b")  # a webhook, mid-run; its job runs on another worker:
            inner.append(drain(KEY, lambda more: 100, lambda delay: None, sleep=pauses.append))
            return len(ids)

        assert drain(KEY, handle, lambda delay: None) == 2  # "a", then "b" in a second round
        # the other drain waited 10 s (in 20 ms steps) and handled nothing itself
        assert inner == [0, 0] and len(pauses) == 2 * 500 and redis.scard(KEY) == 0


def test_come_back_later_keeps_the_ids_and_wakes_after_the_delay(app):
    with app.app_context():
        redis = get_redis()
        redis.sadd(KEY, "a")
        woken = []

        def handle(ids):
            raise RetryLater(42.0, "Xero's minute is spent")

        assert drain(KEY, handle, woken.append) == 0
        assert woken == [42.0] and redis.smembers(KEY) == {b"a"}
        # and the lock is free again: the next run handles them
        assert drain(KEY, lambda ids: len(ids), woken.append) == 1


def test_every_wake_also_schedules_one_sweep_under_its_own_id(app):
    from rq.registry import ScheduledJobRegistry

    from app.contact_sync.drain import wake_job
    from app.contact_sync.xero_to_crm import sync_from_xero
    from app.queueing import queue

    with app.app_context():
        wake_job(sync_from_xero, 987, job_id="contact-sync-xero-987")
        wake_job(sync_from_xero, 987, job_id="contact-sync-xero-987")  # a second webhook
        q = queue()
        assert q.job_ids.count("contact-sync-xero-987") == 1  # coalesced, as before
        scheduled = ScheduledJobRegistry(queue=q).get_job_ids()
        assert scheduled.count("contact-sync-xero-987-sweep") == 1
