"""Pipedrive: install identity (more in the CRM adapter issue)."""

from __future__ import annotations

import requests

from app.settings import Settings
from crm_adapters.base import AccountIdentity, CrmError


def identify(settings: Settings, token: dict[str, object]) -> AccountIdentity:
    """The company behind a token: GET {api_domain}/api/v1/users/me -> data.company_id.

    The token response carries `api_domain`, the company's own base URL (platform-facts).
    """
    api_domain = str(token.get("api_domain") or "").rstrip("/")
    if not api_domain.startswith(("https://", "http://")):
        raise CrmError("Pipedrive token response has no api_domain")
    try:
        response = requests.get(f"{api_domain}/api/v1/users/me", timeout=settings.http_timeout,
                                headers={"Authorization": f"Bearer {token['access_token']}"})
    except requests.RequestException as exc:
        raise CrmError(f"Pipedrive unreachable: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise CrmError(f"Pipedrive users/me answered {response.status_code}", response.status_code)
    data = response.json()["data"]
    return AccountIdentity(account_id=str(data["company_id"]),
                           account_name=data.get("company_name", ""),
                           user=data.get("email", ""), api_domain=api_domain)
