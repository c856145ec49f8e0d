"""Fresh access tokens, refreshed once per grant across every process.

Xero rotates the refresh token on every use, so two workers refreshing at once would leave
one of them holding a dead token. A Redis lock per grant serialises refreshes; whoever waits
re-reads the row and uses the token the winner stored.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from redis.exceptions import LockError
from sqlalchemy.orm import Session

from app import get_settings
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    Installation,
    InstallationStatus,
    ReviewItem,
    ReviewReason,
    XeroConnection,
)
from app.oauth import OAuthFailure, provider, refresh
from app.redis_conn import get_redis

log = logging.getLogger(__name__)

Grant = TypeVar("Grant", Installation, XeroConnection)


class ReconnectNeeded(Exception):
    """The grant is gone (revoked, expired, uninstalled): a person must connect again."""


class TokenUnavailable(Exception):
    """No token right now (the provider is down, or the lock is busy): retry later."""


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
        raise TokenUnavailable(f"{model.__tablename__} {record_id}: refresh lock busy")
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
            raise TokenUnavailable(str(exc)) from exc
        _mark_reconnect_needed(s, record, installation_id, str(exc))
        raise ReconnectNeeded(str(exc)) from exc
    now = datetime.now(timezone.utc)
    record.set_tokens(token, now)  # stored before anyone can use the rotated token
    if isinstance(record, XeroConnection):
        record.last_used_at = now
    s.commit()
    log.info("refreshed %s token for installation %s", name, installation_id)
    assert record.access_token
    return record.access_token


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
    s.add(ReviewItem(installation_id=installation_id, reason=ReviewReason.RECONNECT_NEEDED,
                     detail=f"{action}: {reason}"))
    s.add(AuditEvent(installation_id=installation_id, action=action, outcome="failed",
                     detail={"reason": reason}))
    s.commit()
    log.warning("installation %s: %s (%s)", installation_id, action, reason)
