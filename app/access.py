"""Who may do what, decided on the server from what the CRM says (issue #12).

The Pipedrive panel JWT names only `userId` and `companyId`; whether that user may open
Paydeck's settings is asked of Pipedrive (GET /v1/users/{id} `is_admin`), cached briefly so a
page load costs at most one call every few minutes. Every refusal is audited."""

from __future__ import annotations

import logging

from app.extensions import db
from app.models import AuditEvent, Installation
from app.redis_conn import get_redis
from crm_adapters import adapter_for
from crm_adapters.base import CrmError

log = logging.getLogger(__name__)

ADMIN_CACHE_SECONDS = 300
_ADMIN_KEY = "paydeck:crm-admin:{}:{}"


def may_administer_pipedrive(installation: Installation, user_id: str) -> tuple[bool, str]:
    """(allowed, why not): the installing user or a Pipedrive admin of that company."""
    key = _ADMIN_KEY.format(installation.id, user_id)
    cached = get_redis().get(key)
    if cached is not None:
        allowed = cached == b"1"
        reason = "" if allowed else "only the installing user and Pipedrive admins may change Paydeck's settings"
    else:
        try:
            is_admin, email = adapter_for("pipedrive").user_is_admin(installation, user_id)
        except CrmError as exc:  # fail closed: no answer is not a yes
            return _refused(installation, user_id, f"Pipedrive could not confirm who you are ({exc})")
        allowed = is_admin or (bool(email) and email.lower() == installation.installed_by.lower())
        get_redis().set(key, b"1" if allowed else b"0", ex=ADMIN_CACHE_SECONDS)
        reason = "" if allowed else "only the installing user and Pipedrive admins may change Paydeck's settings"
    if not allowed:
        return _refused(installation, user_id, reason)
    return True, ""


def _refused(installation: Installation, user_id: str, reason: str) -> tuple[bool, str]:
    db.session.add(AuditEvent(installation_id=installation.id, action="settings_refused",
                              outcome="refused", detail={"user_id": user_id, "reason": reason}))
    db.session.commit()
    log.warning("installation %s: settings refused to Pipedrive user %s: %s",
                installation.id, user_id, reason)
    return False, reason
