"""What becomes of a batch's deals when the batch as a whole cannot go on: postponed (each by
its own backoff), given up (a review item each), or waiting for a reconnect."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select, tuple_

from app.engine import clock
from app.extensions import db
from app.models import DealSyncRequest, ReviewItem, ReviewReason, ReviewStatus
from app.tokens import TokenUnavailable
from crm_adapters.base import CrmRetryLater
from xero.errors import RetryLater

log = logging.getLogger(__name__)


def postpone(requests: Sequence[DealSyncRequest],
             exc: RetryLater | CrmRetryLater | TokenUnavailable, why: str) -> float:
    """Count a failed try on each deal and hold it back by its own backoff: a deal that rode
    along in a batch with a much-retried one starts at its first retry. Returns the soonest
    wait, for the wake-up."""
    db.session.rollback()
    now, soonest = clock.now(), None
    for request in requests:
        request = db.session.merge(request)
        request.attempts += 1
        seconds = retry_wait(exc, request.attempts)
        request.not_before = now + timedelta(seconds=seconds)
        soonest = seconds if soonest is None else min(soonest, seconds)
    db.session.commit()
    log.info("postponed %d deals (%.0f s or more): %s", len(requests), soonest or 0, why)
    return soonest or 0.0


def retry_wait(exc: RetryLater | CrmRetryLater | TokenUnavailable, attempts: int) -> float:
    """Seconds before this deal's next try after `attempts` failed ones: Xero's own wait
    (Retry-After, a limit window) for everyone, or our backoff by the deal's own count."""
    grows = getattr(exc, "wait_for_attempt", None)
    return max(exc.seconds if grows is None else grows(attempts), 0.0)


def give_up(requests: Sequence[DealSyncRequest], versions: dict[int, int], why: str) -> None:
    """A review item per deal; the requests are done with (at the version the run read)."""
    db.session.rollback()
    for request in requests:
        request = db.session.merge(request)
        db.session.add(ReviewItem(installation_id=request.installation_id, deal_id=request.deal_id,
                                  reason=ReviewReason.SYNC_FAILED, detail=why,
                                  action=request.action.value))
    delete_handled(versions)
    db.session.commit()


def delete_handled(versions: dict[int, int]) -> None:
    """Delete these requests if still at the version the run read: one merged in since
    (a Closed Won arriving mid-run) stays for the next run."""
    pairs = list(versions.items())
    for start in range(0, len(pairs), 500):
        db.session.execute(delete(DealSyncRequest).where(
            tuple_(DealSyncRequest.id, DealSyncRequest.version).in_(pairs[start:start + 500])))


def reconnect_review(installation_id: int, why: str) -> None:
    """One open "reconnect needed" review item per installation, however often it is said."""
    open_item = db.session.scalar(select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.status == ReviewStatus.OPEN,
        ReviewItem.reason == ReviewReason.RECONNECT_NEEDED))
    if open_item is None:
        db.session.add(ReviewItem(installation_id=installation_id,
                                  reason=ReviewReason.RECONNECT_NEEDED,
                                  detail=f"Invoices are waiting: {why}. Reconnect to continue."))
        db.session.commit()
