"""Ending a Xero grant: revoke at Xero, then forget the tokens here."""

from __future__ import annotations

import logging

from app import get_settings
from app.extensions import db
from app.models import AuditEvent, ConnectionStatus, XeroConnection
from xero import identity
from xero.identity import XeroIdentityError

log = logging.getLogger(__name__)


def revoke_grant(connection: XeroConnection, *, forget_on_failure: bool) -> bool:
    """Revoke the grant at Xero and mark the connection disconnected.

    Returns False if Xero did not confirm; then the tokens are forgotten only if
    `forget_on_failure` (an admin's explicit disconnect), else kept for a retry (a job).
    The caller commits.
    """
    revoked = True
    if connection.refresh_token:
        try:
            identity.revoke(get_settings(), connection.refresh_token)
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
                              xero_ids={"tenant_id": connection.tenant_id}))
    return revoked
