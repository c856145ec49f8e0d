"""Builds each CRM's adapter for this app: the one place that hands settings, tokens and
Redis to `crm_adapters/` (which imports nothing of `app`). Xero's client is built beside it,
in `app/connections.py`."""

from __future__ import annotations

from collections.abc import Callable

from limits import RateLimitItem

from app.redis_conn import get_redis
from app.runtime import get_settings
from app.settings import Settings
from crm_adapters import hubspot, pipedrive
from crm_adapters.hubspot import HubSpotConfig
from crm_adapters.limits import HUBSPOT as HUBSPOT_LIMIT
from crm_adapters.limits import HUBSPOT_SEARCH
from crm_adapters.limits import PIPEDRIVE_BURST as PIPEDRIVE_LIMIT
from crm_adapters.limits import CrmLimiter
from crm_adapters.pipedrive import PipedriveConfig
from domain.crm import AccountIdentity
from domain.ports import CrmAdapter


def hubspot_config(settings: Settings) -> HubSpotConfig:
    """The slice of the settings the HubSpot adapter reads."""
    return HubSpotConfig(api_base=settings.hubspot_api_base,
                         client_secret=settings.hubspot_client_secret,
                         app_id=settings.hubspot_app_id, timeout=settings.http_timeout)


def pipedrive_config(settings: Settings) -> PipedriveConfig:
    """The slice of the settings the Pipedrive adapter reads."""
    return PipedriveConfig(oauth_base=settings.pipedrive_oauth_base, timeout=settings.http_timeout)


def _identify_hubspot(settings: Settings, token: dict[str, object]) -> AccountIdentity:
    return hubspot.identify(hubspot_config(settings), token)


def _identify_pipedrive(settings: Settings, token: dict[str, object]) -> AccountIdentity:
    return pipedrive.identify(pipedrive_config(settings), token)


# What the install flow needs of each CRM: who is this token for?
IDENTIFY: dict[str, Callable[[Settings, dict[str, object]], AccountIdentity]] = {
    "hubspot": _identify_hubspot,
    "pipedrive": _identify_pipedrive,
}


def _installation_token(installation: object) -> str:
    from app.models import Installation
    from app.tokens import access_token

    return access_token(Installation, installation.id)  # type: ignore[attr-defined]


def _limiter(crm: str, window: RateLimitItem) -> Callable[[object], CrmLimiter]:
    """The shared rate window of one CRM account, keyed by the installation's account id."""
    def limiter(installation: object) -> CrmLimiter:
        return CrmLimiter(get_redis(), window, f"{crm}:{installation.account_id}")  # type: ignore[attr-defined]
    return limiter


# One adapter per CRM: an explicit registry, no import side effects. A third CRM is one more
# module implementing domain.ports.CrmAdapter, one more line here, and its manifest.
ADAPTERS: dict[str, CrmAdapter] = {
    "hubspot": hubspot.HubSpotCrm(_installation_token, _limiter("hubspot", HUBSPOT_LIMIT),
                                  lambda: hubspot_config(get_settings()),
                                  search_limiter=_limiter("hubspot-search", HUBSPOT_SEARCH)),
    "pipedrive": pipedrive.PipedriveCrm(_installation_token, _limiter("pipedrive", PIPEDRIVE_LIMIT),
                                        lambda: pipedrive_config(get_settings())),
}


class NoAdapter(LookupError):
    """No adapter is registered for this CRM."""


def adapter_for(crm: str) -> CrmAdapter:
    try:
        return ADAPTERS[crm]
    except KeyError:
        raise NoAdapter(f"no adapter for {crm}") from None
