"""Builds each CRM's adapter for this app: the one place that hands settings, tokens and
Redis to `crm_adapters/` (which imports nothing of `app`). Xero's client is built beside it,
in `app/connections.py`."""

from __future__ import annotations

from collections.abc import Callable

from app.settings import Settings
from crm_adapters import hubspot, pipedrive
from domain.crm import AccountIdentity
from domain.ports import CrmAdapter
from crm_adapters.limits import HUBSPOT as HUBSPOT_LIMIT
from crm_adapters.limits import PIPEDRIVE_BURST as PIPEDRIVE_LIMIT
from crm_adapters.limits import CrmLimiter

# What the install flow needs of each CRM: who is this token for?
IDENTIFY: dict[str, Callable[[Settings, dict[str, object]], AccountIdentity]] = {
    "hubspot": hubspot.identify,
    "pipedrive": pipedrive.identify,
}


def _installation_token(installation: object) -> str:
    from app.models import Installation
    from app.tokens import access_token

    return access_token(Installation, installation.id)  # type: ignore[attr-defined]


def _hubspot_limiter(installation: object) -> CrmLimiter:
    from app.redis_conn import get_redis

    return CrmLimiter(get_redis(), HUBSPOT_LIMIT, f"hubspot:{installation.account_id}")  # type: ignore[attr-defined]


def _pipedrive_limiter(installation: object) -> CrmLimiter:
    from app.redis_conn import get_redis

    return CrmLimiter(get_redis(), PIPEDRIVE_LIMIT, f"pipedrive:{installation.account_id}")  # type: ignore[attr-defined]


def _settings() -> Settings:
    from app.runtime import get_settings

    return get_settings()


# One adapter per CRM: an explicit registry, no import side effects. A third CRM is one more
# module implementing domain.ports.CrmAdapter, one more line here, and its manifest.
ADAPTERS: dict[str, CrmAdapter] = {
    "hubspot": hubspot.HubSpotCrm(_installation_token, _hubspot_limiter, _settings),
    "pipedrive": pipedrive.PipedriveCrm(_installation_token, _pipedrive_limiter, _settings),
}


class NoAdapter(LookupError):
    """No adapter is registered for this CRM."""


def adapter_for(crm: str) -> CrmAdapter:
    try:
        return ADAPTERS[crm]
    except KeyError:
        raise NoAdapter(f"no adapter for {crm}") from None
