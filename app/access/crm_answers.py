"""What the CRM said about its users and records, asked through the installation's own token
and cached briefly in Redis (a page load costs at most a few calls every minute or so). A
CRM error is raised, never cached: the callers fail closed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from app.models import Installation
from app.redis_conn import get_redis
from app.tokens import ReconnectNeeded, TokenUnavailable
from app.wiring import adapter_for
from domain.crm import RecordAccess
from crm_adapters.base import CrmError

log = logging.getLogger(__name__)

ADMIN_CACHE_SECONDS = 300
RECORD_CACHE_SECONDS = 60  # owner / visibility / followers of one record: a reassignment shows within a minute
_USER_KEY = "paydeck:crm-user:{}:{}"
_OWNERS_KEY = "paydeck:crm-owner-ids:{}:{}"
_RECORD_KEY = "paydeck:crm-record:{}:{}:{}"
_FOLLOWERS_KEY = "paydeck:crm-followers:{}:{}"
# What "the CRM did not answer" looks like: a refused/failed call, or no usable token.
NO_ANSWER = (CrmError, ReconnectNeeded, TokenUnavailable)


def pipedrive_user(installation: Installation, user_id: str) -> dict[str, Any]:
    """{admin, email, locale, tz} of a Pipedrive user (GET /v1/users/{id}), cached; not an
    admin and no email if Pipedrive cannot say."""
    key = _USER_KEY.format(installation.id, user_id)
    cached = get_redis().get(key)
    if cached is not None:
        data: dict[str, Any] = json.loads(cached)
        return data
    try:
        profile = adapter_for("pipedrive").user_profile(installation, user_id)
    except NO_ANSWER as exc:  # fail closed, and not cached: the next load asks again
        log.warning("installation %s: Pipedrive user %s unknown: %s", installation.id, user_id, exc)
        return {"admin": False, "email": ""}
    data = {"admin": profile.is_admin, "email": profile.email, "locale": profile.locale,
            "tz": profile.timezone}
    get_redis().set(key, json.dumps(data), ex=ADMIN_CACHE_SECONDS)
    return data


def hubspot_owner_ids(installation: Installation, email: str) -> set[str]:
    key = _OWNERS_KEY.format(installation.id, email.casefold())
    return set(_remember(key, ADMIN_CACHE_SECONDS, lambda: sorted(
        adapter_for("hubspot").owner_ids_for_email(installation, email))))


def record_access(installation: Installation, kind: str, record_id: str) -> RecordAccess:
    def load() -> dict[str, Any]:
        access = adapter_for(installation.crm.value).record_access(installation, kind, record_id)
        return {"owner": access.owner_id, "visible_to": access.visible_to}

    data = _remember(_RECORD_KEY.format(installation.id, kind, record_id), RECORD_CACHE_SECONDS, load)
    return RecordAccess(owner_id=data["owner"], visible_to=data["visible_to"])


def deal_followers(installation: Installation, deal_id: str) -> set[str]:
    key = _FOLLOWERS_KEY.format(installation.id, deal_id)
    return set(_remember(key, RECORD_CACHE_SECONDS, lambda: sorted(
        adapter_for("pipedrive").deal_followers(installation, deal_id))))


def _remember(key: str, seconds: int, load: Callable[[], Any]) -> Any:
    """What the CRM said, cached as JSON for `seconds`; a CRM error is raised, not cached."""
    cached = get_redis().get(key)
    if cached is not None:
        return json.loads(cached)
    value = load()
    get_redis().set(key, json.dumps(value), ex=seconds)
    return value
