"""Fresh access tokens, refreshed once per grant across every process.

Xero rotates the refresh token on every use, so two workers refreshing at once would leave
one of them holding a dead token. A Redis lock per grant serialises refreshes; whoever waits
re-reads the row and uses the token the winner stored.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from flask import current_app
from redis.exceptions import LockError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.runtime import get_settings
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    DealSyncRequest,
    Installation,
    InstallationStatus,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
    XeroConnection,
)
from app.oauth import OAuthFailure, provider, refresh
from app.redis_conn import get_redis

log = logging.getLogger(__name__)

Grant = TypeVar("Grant", Installation, XeroConnection)

# app.extensions key of the callable (installation id) run when a failing grant recovers.
ON_GRANT_RECOVERED = "paydeck.on_grant_recovered"


class ReconnectNeeded(Exception):
    """The grant is gone (revoked, expired, uninstalled): a person must connect again."""


class TokenUnavailable(Exception):
    """No token right now (the provider is down or refused us, or the lock is busy): retry
    after `seconds` (grows with consecutive failures: see `retry_delay`)."""

    def __init__(self, message: str, seconds: float = 5.0) -> None:
        super().__init__(message)
        self.seconds = seconds


# A refresh that fails for any reason but invalid_grant is retried by re-enqueueing the job
# that needed it: 30 s, 1, 2, 4, 8 min, then every 15 min. After FAILING_AFTER_ATTEMPTS
# failures in a row, or FAILING_AFTER of failing, the connection shows as failing.
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 900.0
FAILING_AFTER_ATTEMPTS = 3
FAILING_AFTER = timedelta(minutes=10)


def retry_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th consecutive failed refresh (1-based)."""
    return min(RETRY_BASE_SECONDS * 2 ** max(failures - 1, 0), RETRY_CAP_SECONDS)


def is_failing(record: Installation | XeroConnection, now: datetime | None = None) -> bool:
    """Refreshes have kept failing (not a dead grant): the admin must be told."""
    since = record.token_failing_since
    if not record.token_failures or since is None:
        return False
    now = now or datetime.now(timezone.utc)
    return record.token_failures >= FAILING_AFTER_ATTEMPTS or now - since >= FAILING_AFTER


def party_label(record: Installation | XeroConnection) -> str:
    """How the pages name the connection: "CRM" or "Xero"."""
    return "Xero" if isinstance(record, XeroConnection) else "CRM"


def access_token(model: type[Grant], record_id: int,
                 refresh_older_than: datetime | None = None) -> str:
    """A token valid for at least the refresh margin, refreshing (once, under a lock) if not.

    `refresh_older_than` also refreshes a grant last refreshed before that time (keep-alive).
    """
    with Session(db.engine) as s:
        record = _load(s, model, record_id)
        if not _needs_refresh(record, refresh_older_than):
            return _touch(s, record)
    lock = get_redis().lock(f"paydeck:token-refresh:{model.__tablename__}:{record_id}",
                            timeout=60, blocking_timeout=45)
    if not lock.acquire():
        raise TokenUnavailable(f"{model.__tablename__} {record_id}: refresh lock busy", seconds=5)
    try:
        with Session(db.engine, expire_on_commit=False) as s:
            record = _load(s, model, record_id)  # a fresh read: the lock holder may have refreshed
            if not _needs_refresh(record, refresh_older_than):
                return _touch(s, record)
            return _refresh(s, record)
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("token refresh lock for %s %s expired before release",
                        model.__tablename__, record_id)


def _load(s: Session, model: type[Grant], record_id: int) -> Grant:
    record = s.get(model, record_id)
    if record is None:
        raise ReconnectNeeded(f"{model.__tablename__} {record_id} does not exist")
    if isinstance(record, XeroConnection) and record.status != ConnectionStatus.CONNECTED:
        raise ReconnectNeeded(f"Xero connection is {record.status.value}")
    if isinstance(record, Installation) and record.status != InstallationStatus.ACTIVE:
        raise ReconnectNeeded(f"installation is {record.status.value}")
    if not record.refresh_token:
        raise ReconnectNeeded("no refresh token stored")
    return record


def _needs_refresh(record: Installation | XeroConnection, older_than: datetime | None) -> bool:
    now = datetime.now(timezone.utc)
    margin = timedelta(seconds=get_settings().token_refresh_margin)
    if not record.access_token or record.token_expires_at is None:
        return True
    if record.token_expires_at - margin <= now:
        return True
    last = record.token_refreshed_at
    return older_than is not None and (last is None or last < older_than)


def _touch(s: Session, record: Installation | XeroConnection) -> str:
    """Note use of a Xero grant - at most every few minutes, not a write per API call."""
    now = datetime.now(timezone.utc)
    if isinstance(record, XeroConnection) and (
            record.last_used_at is None or now - record.last_used_at > timedelta(minutes=5)):
        record.last_used_at = now
        s.commit()
    assert record.access_token
    return record.access_token


def _refresh(s: Session, record: Installation | XeroConnection) -> str:
    settings = get_settings()
    name = "xero" if isinstance(record, XeroConnection) else record.crm.value
    installation_id = record.installation_id if isinstance(record, XeroConnection) else record.id
    assert record.refresh_token
    try:
        token = refresh(provider(name, settings), record.refresh_token, settings.http_timeout)
    except OAuthFailure as exc:
        if not exc.invalid_grant:
            seconds = _record_failure(s, record, installation_id, exc.detail)
            raise TokenUnavailable(str(exc), seconds=seconds) from exc
        _mark_reconnect_needed(s, record, installation_id, str(exc))
        raise ReconnectNeeded(str(exc)) from exc
    now = datetime.now(timezone.utc)
    record.set_tokens(token, now)  # stored before anyone can use the rotated token
    if isinstance(record, XeroConnection):
        record.last_used_at = now
    recovered = _clear_failure(s, record, installation_id)
    s.commit()
    log.info("refreshed %s token for installation %s", name, installation_id)
    if recovered:
        _wake_waiting_deals(installation_id)
    assert record.access_token
    return record.access_token


def _record_failure(s: Session, record: Installation | XeroConnection, installation_id: int,
                    detail: str) -> float:
    """Count a failed refresh, keep the vendor's words, and once it keeps failing open one
    review item (not one per attempt). Returns the seconds to wait before the next try."""
    now = datetime.now(timezone.utc)
    was_failing = is_failing(record, now)
    record.token_failures = (record.token_failures or 0) + 1
    record.token_failing_since = record.token_failing_since or now
    record.token_failure_detail = detail[:2000]
    label = party_label(record)
    if is_failing(record, now) and not was_failing:
        if _open_failing_item(s, installation_id, label) is None:
            s.add(ReviewItem(installation_id=installation_id,
                             reason=ReviewReason.CONNECTION_FAILING,
                             detail=f"{label} connection failing: {detail[:500]}. Invoices wait "
                                    "and go through once it works again."))
        s.add(AuditEvent(installation_id=installation_id,
                         action=f"{label.lower()}_connection_failing", outcome="failed",
                         detail={"reason": detail[:500], "failures": record.token_failures}))
    s.commit()
    seconds = retry_delay(record.token_failures)
    log.warning("installation %s: %s token refresh failed (%d in a row, retry in %.0f s): %s",
                installation_id, label, record.token_failures, seconds, detail)
    return seconds


def _clear_failure(s: Session, record: Installation | XeroConnection,
                   installation_id: int) -> bool:
    """After a successful refresh: forget the failure state and resolve its review item.
    True if there was a failure to recover from."""
    if not record.token_failures and record.token_failing_since is None:
        return False
    label = party_label(record)
    failures = _forget_failure(s, record, installation_id)
    s.add(AuditEvent(installation_id=installation_id,
                     action=f"{label.lower()}_connection_recovered", outcome="ok",
                     detail={"failures": failures}))
    # Deals postponed by the failed refreshes may go now, not at the end of their backoff.
    s.execute(update(DealSyncRequest).where(DealSyncRequest.installation_id == installation_id)
              .values(not_before=None))
    return True


def _forget_failure(s: Session, record: Installation | XeroConnection,
                    installation_id: int) -> int:
    """Reset the failure state and resolve its open review item; the failures it had."""
    failures = record.token_failures or 0
    record.token_failures, record.token_failing_since = 0, None
    record.token_failure_detail = ""
    item = _open_failing_item(s, installation_id, party_label(record))
    if item is not None:
        item.status, item.resolved_at = ReviewStatus.RESOLVED, datetime.now(timezone.utc)
    return failures


def _open_failing_item(s: Session, installation_id: int, label: str) -> ReviewItem | None:
    return s.scalar(select(ReviewItem).where(
        ReviewItem.installation_id == installation_id, ReviewItem.status == ReviewStatus.OPEN,
        ReviewItem.reason == ReviewReason.CONNECTION_FAILING,
        ReviewItem.detail.startswith(f"{label} connection failing")).limit(1))


def _wake_waiting_deals(installation_id: int) -> None:
    """Tell the app a grant works again: create_app registers the engine's wake-up here (the
    engine imports this module, so this module never imports the engine)."""
    wake = current_app.extensions.get(ON_GRANT_RECOVERED)
    if wake is not None:
        wake(installation_id)


def _mark_reconnect_needed(s: Session, record: Installation | XeroConnection,
                           installation_id: int, reason: str) -> None:
    """Stop using the grant (no crash loop of refresh attempts) and tell the admin why."""
    if isinstance(record, XeroConnection):
        record.status = ConnectionStatus.RECONNECT_NEEDED
        record.status_detail = reason
        action = "xero_reconnect_needed"
    else:
        record.status = InstallationStatus.RECONNECT_NEEDED
        action = "crm_reconnect_needed"
    record.clear_tokens()
    _forget_failure(s, record, installation_id)  # "reconnect needed" says more than "failing"
    s.add(ReviewItem(installation_id=installation_id, reason=ReviewReason.RECONNECT_NEEDED,
                     detail=f"{action}: {reason}"))
    s.add(AuditEvent(installation_id=installation_id, action=action, outcome="failed",
                     detail={"reason": reason}))
    s.commit()
    log.warning("installation %s: %s (%s)", installation_id, action, reason)
