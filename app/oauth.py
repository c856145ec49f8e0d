"""OAuth 2 for every provider Paydeck talks to, with per-provider behaviour kept as data."""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import requests
from flask import session
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from app.redis_conn import get_redis
from app.settings import Settings
from domain.loopback import allow_plain_http_on_loopback

log = logging.getLogger(__name__)

ProviderName = Literal["hubspot", "pipedrive", "xero"]
_STATE_KEY = "paydeck:oauth-state:{}"
_SESSION_STATES = "oauth_states"


@dataclass(frozen=True)
class Provider:
    name: ProviderName
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str
    scope: str
    # HubSpot wants the client credentials in the form body; Pipedrive and Xero want Basic.
    client_auth: Literal["basic", "body"]
    redirect_uri: str


def provider(name: ProviderName, settings: Settings) -> Provider:
    callback = f"{settings.public_url}/oauth/{name}/callback"
    if name == "hubspot":
        return Provider(name, settings.hubspot_authorize_url,
                        f"{settings.hubspot_api_base}/oauth/v1/token", settings.hubspot_client_id,
                        settings.hubspot_client_secret, settings.hubspot_scopes, "body", callback)
    if name == "pipedrive":
        base = settings.pipedrive_oauth_base
        return Provider(name, f"{base}/oauth/authorize", f"{base}/oauth/token",
                        settings.pipedrive_client_id, settings.pipedrive_client_secret,
                        settings.pipedrive_scopes, "basic", callback)
    return Provider(name, f"{settings.xero_login_base}/identity/connect/authorize",
                    f"{settings.xero_identity_base}/connect/token", settings.xero_client_id,
                    settings.xero_client_secret, settings.xero_scopes, "basic", callback)


class OAuthFailure(Exception):
    """The provider refused or failed a token request.

    `detail` is the provider's own words (its error_description / message), for the admin;
    `invalid_grant` means the grant is dead (a person must connect again); anything else
    (invalid_client, 5xx, 429, timeout, an unreadable body) may pass and is retried.
    """

    def __init__(self, message: str, *, invalid_grant: bool = False, transient: bool = False,
                 detail: str = "", status: int | None = None):
        super().__init__(message)
        self.invalid_grant = invalid_grant
        self.transient = transient
        self.detail = detail or message
        self.status = status


def authorization_url(p: Provider, state: str) -> str:
    allow_plain_http_on_loopback(p.authorize_url)
    oauth = OAuth2Session(p.client_id, redirect_uri=p.redirect_uri, scope=p.scope.split())
    url, _ = oauth.authorization_url(p.authorize_url, state=state)
    return url


def exchange_code(p: Provider, code: str, timeout: float) -> dict[str, Any]:
    """Trade an authorization code for tokens (form: grant_type, code, redirect_uri)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": p.redirect_uri}
    return _token_call(p, form, timeout)


def refresh(p: Provider, refresh_token: str, timeout: float) -> dict[str, Any]:
    """Use a refresh token. Xero rotates it: the caller must store the new one at once."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if p.name == "hubspot":
        # HubSpot's "Refresh an access token" (developers.hubspot.com/docs/api/oauth/
        # refresh-access-token; legacydocs .../methods/oauth2/refresh-access-token) requires
        # grant_type, client_id, client_secret and refresh_token in the form body; an older
        # version of that page also listed redirect_uri as required, so it is sent too.
        form["redirect_uri"] = p.redirect_uri
    return _token_call(p, form, timeout)


def token_form(p: Provider, form: dict[str, str]) -> tuple[dict[str, str], HTTPBasicAuth | None]:
    """The form and client authentication one token request sends, the provider's way.

    We build the body ourselves: requests-oauthlib's `refresh_token()` never adds `client_id`
    (its `include_client_id` only works with a `client_id` argument `fetch_token` passes), so
    every HubSpot refresh went out without it and HubSpot refused it.
    - HubSpot: client_id and client_secret in the form (oauth-v1.json /oauth/v1/token body;
      the refresh page above).
    - Pipedrive: HTTP Basic client_id:client_secret (pipedrive.readme.io/docs/
      marketplace-oauth-authorization, "Step 5: Getting the tokens" and "Refreshing the tokens").
    - Xero: HTTP Basic client_id:client_secret (developer.xero.com/documentation/guides/oauth2/
      auth-flow, "Exchange the code" and "Refreshing access tokens").
    """
    if p.client_auth == "body":
        return {**form, "client_id": p.client_id, "client_secret": p.client_secret}, None
    return dict(form), HTTPBasicAuth(p.client_id, p.client_secret)


def _token_call(p: Provider, form: dict[str, str], timeout: float) -> dict[str, Any]:
    allow_plain_http_on_loopback(p.token_url)
    data, auth = token_form(p, form)
    try:
        response = requests.post(p.token_url, data=data, auth=auth, timeout=timeout,
                                 headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise OAuthFailure(f"{p.name}: token endpoint unreachable ({exc.__class__.__name__})",
                           transient=True,
                           detail=f"{_VENDOR[p.name]}'s token endpoint did not answer "
                                  f"({exc.__class__.__name__})") from exc
    body = _json_object(response)
    if response.status_code == 200 and body and body.get("access_token"):
        return _token(body)
    raise _failure(p, response.status_code, body)


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:  # a non-JSON body, e.g. an HTML 502 page from a proxy
        return None
    return body if isinstance(body, dict) else None


def _token(body: dict[str, Any]) -> dict[str, Any]:
    """The response plus `expires_at` (epoch seconds), as OAuthTokens.set_tokens reads it."""
    token = dict(body)
    expires_in = body.get("expires_in")
    if isinstance(expires_in, (int, float)) or (isinstance(expires_in, str) and expires_in.isdigit()):
        token["expires_at"] = time.time() + float(expires_in)
    if "scope" not in token and isinstance(body.get("scopes"), list):
        token["scope"] = body["scopes"]  # HubSpot lists scopes as an array
    return token


# HubSpot's legacy token errors carry a `status` code instead of RFC 6749's `error`
# (e.g. {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}; not on
# HubSpot's reference pages - seen in HubSpot community threads and nango.dev's write-up):
# these mean the grant itself is dead, like invalid_grant.
_VENDOR = {"hubspot": "HubSpot", "pipedrive": "Pipedrive", "xero": "Xero"}
_DEAD_GRANT_CODES = {"invalid_grant", "BAD_REFRESH_TOKEN", "BAD_AUTH_CODE"}


def _failure(p: Provider, status: int, body: dict[str, Any] | None) -> OAuthFailure:
    if body is None:
        return OAuthFailure(f"{p.name}: unreadable token response (HTTP {status})",
                            transient=True, status=status,
                            detail=f"{_VENDOR[p.name]}'s token endpoint answered HTTP {status} "
                                   "without JSON")
    code = str(body.get("error") or body.get("status") or f"HTTP {status}")
    words = str(body.get("error_description") or body.get("message") or "").strip()
    detail = f"{code}: {words}" if words and words != code else code
    return OAuthFailure(f"{p.name}: {detail}", invalid_grant=code in _DEAD_GRANT_CODES,
                        transient=status >= 500 or status == 429, status=status, detail=detail)


# --- state: one-time, short-lived, bound to the browser that started the flow ---------------

def issue_state(purpose: str, ttl: int, **data: Any) -> str:
    """A random `state` stored server-side (Redis) and remembered in this browser's session."""
    state = secrets.token_urlsafe(32)
    get_redis().set(_STATE_KEY.format(state), json.dumps({"purpose": purpose, **data}), ex=ttl)
    issued = [s for s in session.get(_SESSION_STATES, []) if s != state][-4:]
    session[_SESSION_STATES] = [*issued, state]
    return state


def consume_state(state: str | None, purpose: str) -> dict[str, Any] | None:
    """The data stored with `state` if it is valid here and now; usable once only."""
    if not state or len(state) > 128:
        return None
    browser_states = session.get(_SESSION_STATES, [])
    if state not in browser_states:
        # Another browser (or a forged link): leave the state for the real installer.
        return None
    session[_SESSION_STATES] = [s for s in browser_states if s != state]
    raw = get_redis().getdel(_STATE_KEY.format(state))
    if raw is None:
        return None
    data: dict[str, Any] = json.loads(raw)
    return data if data.get("purpose") == purpose else None
