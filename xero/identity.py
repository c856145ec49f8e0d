"""Xero's identity endpoints: which organisations a grant reaches, and revoking a grant.

Source: developer.xero.com/documentation/oauth2/auth-flow (connections, revocation);
shared/specs/xero/xero-identity.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
import requests

from domain.errors import VendorError
from xero.config import XeroConfig


class XeroIdentityError(VendorError):
    """Xero's identity service refused or failed a call."""


@dataclass(frozen=True)
class Tenant:
    connection_id: str
    tenant_id: str
    tenant_name: str


def list_organisations(config: XeroConfig, access_token: str,
                       auth_event_id: str | None = None) -> list[Tenant]:
    """The organisations (not practices) this access token may act on; with `auth_event_id`,
    only those authorised in that sign-in (GET /connections?authEventId=, xero-identity.yaml).

    Without the filter the list holds every organisation the Xero *user* ever connected to
    this app - including ones another Paydeck installation of the same user invoices into."""
    params = {"authEventId": auth_event_id} if auth_event_id else None
    response = _call("GET", f"{config.api_base}/connections", config, params=params,
                     headers={"Authorization": f"Bearer {access_token}"})
    return [
        Tenant(c["id"], c["tenantId"], c.get("tenantName") or "")
        for c in response.json()
        if c.get("tenantType") == "ORGANISATION"
    ]


def auth_event_id(access_token: str) -> str | None:
    """The `authentication_event_id` claim of a Xero access token (a JWT), if it has one.

    Read without verifying the signature, on purpose: the token is the one Xero's token
    endpoint just handed us over TLS in our own back-channel call, and the claim only narrows
    a GET /connections that Xero itself authorises with that same token - a forged claim
    could only hide connections from us, never grant any. (Verifying would mean fetching
    Xero's JWKS for no gain.) Source of the claim: developer.xero.com/documentation/guides/
    oauth2/auth-flow, "Check the tenants you're authorized to access"."""
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    event = claims.get("authentication_event_id") if isinstance(claims, dict) else None
    return event if isinstance(event, str) and event else None


def remove_connection(config: XeroConfig, access_token: str, connection_id: str) -> None:
    """Detach one organisation from the grant (DELETE /connections/{id})."""
    _call("DELETE", f"{config.api_base}/connections/{connection_id}", config,
          headers={"Authorization": f"Bearer {access_token}"}, ok=(204, 404))


def revoke(config: XeroConfig, refresh_token: str) -> None:
    """Revoke the whole grant: its refresh token and every access token issued from it."""
    _call("POST", f"{config.identity_base}/connect/revocation", config,
          data={"token": refresh_token}, auth=(config.client_id, config.client_secret))


def _call(method: str, url: str, config: XeroConfig, ok: tuple[int, ...] = (200, 204),
          **kwargs: object) -> requests.Response:
    try:
        response = requests.request(method, url, timeout=config.timeout, **kwargs)  # type: ignore[arg-type]
    except requests.RequestException as exc:
        raise XeroIdentityError(f"Xero unreachable: {exc.__class__.__name__}") from exc
    if response.status_code not in ok:
        raise XeroIdentityError(f"Xero answered {response.status_code} to {method} {url}",
                                response.status_code)
    return response
