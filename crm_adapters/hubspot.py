"""HubSpot: install identity (more in the CRM adapter issue)."""

from __future__ import annotations

import requests

from app.settings import Settings
from crm_adapters.base import AccountIdentity, CrmError


def identify(settings: Settings, token: dict[str, object]) -> AccountIdentity:
    """The portal (hub) id behind an access token: GET /oauth/v1/access-tokens/{token}."""
    url = f"{settings.hubspot_api_base}/oauth/v1/access-tokens/{token['access_token']}"
    try:
        response = requests.get(url, timeout=settings.http_timeout)
    except requests.RequestException as exc:
        raise CrmError(f"HubSpot unreachable: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise CrmError(f"HubSpot token info answered {response.status_code}", response.status_code)
    info = response.json()
    return AccountIdentity(account_id=str(info["hub_id"]), account_name=info.get("hub_domain", ""),
                           user=info.get("user", ""), api_domain=settings.hubspot_api_base)
