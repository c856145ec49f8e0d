"""RunContext: what marks a deal done, so later steps skip it."""

from __future__ import annotations

from app.engine.context import MAX_MISMATCH_TRIES
from app.extensions import db
from app.models import ReviewItem, ReviewReason
from xero.errors import BatchMismatch


def test_review_unchanged_and_retry_each_finish_the_deal_for_this_run(batch):
    ctx = batch.context("1", "2", "3", "4")
    reviewed, unchanged, retried, untouched = ctx.items

    ctx.review(reviewed, ReviewReason.AMBIGUOUS_CONTACT, "two contacts match")
    ctx.unchanged(unchanged, "already PAID")
    ctx.retry(retried, BatchMismatch("HubSpot 4711 deal 3", "left out", seconds=120.0))

    assert ctx.open() == [untouched]
    assert ctx.retry_in == retried.retry_in and retried.retry_in >= 120.0
    assert ctx.counts == {"created": 0, "updated": 0, "recovered": 0, "review": 1,
                          "unchanged": 1, "retry": 1}


def test_a_deal_left_out_too_often_goes_to_review_instead(batch):
    ctx = batch.context("1")
    (w,) = ctx.items
    w.request.attempts = MAX_MISMATCH_TRIES - 1

    ctx.retry(w, BatchMismatch("HubSpot 4711 deal 1", "left out"))

    assert w.done and w.retry_in is None and ctx.retry_in is None
    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.SYNC_FAILED and "left this deal out 6 times" in item.detail
