"""A Xero connection's client, and ending a Xero grant (revoke at Xero, forget the tokens)."""

from __future__ import annotations

import logging

from typing import Any

from rq import get_current_job

import app.presence as presence
from app.runtime import get_settings
from app.extensions import db
from app.models import AuditEvent, ConnectionStatus, XeroConnection
from app.redis_conn import get_redis
from app.settings import Settings
from app.tokens import access_token
from xero import identity
from xero.client import XeroClient
from xero.config import XeroConfig
from xero.identity import XeroIdentityError
from xero.limits import XeroLimiter

log = logging.getLogger(__name__)


def xero_config(settings: Settings) -> XeroConfig:
    """The slice of the settings `xero/` reads."""
    return XeroConfig(api_base=settings.xero_api_base, identity_base=settings.xero_identity_base,
                      client_id=settings.xero_client_id, client_secret=settings.xero_client_secret,
                      timeout=settings.http_timeout)


def xero_client(connection: XeroConnection, **options: Any) -> XeroClient:
    """The Accounting API client for a connected organisation: shared limits, fresh tokens
    (refreshed under the per-grant lock), configured base URL and timeout."""
    config = xero_config(get_settings())
    assert connection.tenant_id
    connection_id = connection.id
    return XeroClient(tenant_id=connection.tenant_id, api_base=config.api_base,
                      timeout=config.timeout, limiter=_limiter(),
                      access_token=lambda: access_token(XeroConnection, connection_id), **options)


def _limiter() -> XeroLimiter:
    """Xero's shared limits. In a job, in-flight slots carry the job's presence (held by
    app.worker while it performs the job), so a killed job's slots free up at once."""
    job = get_current_job()
    redis = get_redis()
    if job is None:
        return XeroLimiter(redis)
    return XeroLimiter(redis, holder=presence.job_name(job.id),
                       holder_alive=lambda name: presence.present(redis, name))


def revoke_grant(connection: XeroConnection, *, forget_on_failure: bool, by: str = "") -> bool:
    """Revoke the grant at Xero and mark the connection disconnected.

    Returns False if Xero did not confirm; then the tokens are forgotten only if
    `forget_on_failure` (an admin's explicit disconnect), else kept for a retry (a job).
    `by` names the admin who asked, for the audit trail. The caller commits.
    """
    revoked = True
    if connection.refresh_token:
        try:
            identity.revoke(xero_config(get_settings()), connection.refresh_token)
        except XeroIdentityError as exc:
            log.warning("installation %s: Xero revocation failed: %s",
                        connection.installation_id, exc)
            revoked = False
    if not revoked and not forget_on_failure:
        return False
    connection.clear_tokens()
    connection.status = ConnectionStatus.DISCONNECTED
    connection.status_detail = "" if revoked else "Xero did not confirm the revocation"
    db.session.add(AuditEvent(installation_id=connection.installation_id,
                              action="xero_disconnected", outcome="ok" if revoked else "warning",
                              detail={"by": by} if by else {},
                              xero_ids={"tenant_id": connection.tenant_id}))
    return revoked
