"""OAuth 2 for every provider Paydeck talks to, with per-provider behaviour kept as data."""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from flask import session
from oauthlib.oauth2 import InvalidGrantError, OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from app.redis_conn import get_redis
from app.settings import Settings

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
    """The provider refused or failed a token request."""

    def __init__(self, message: str, *, invalid_grant: bool = False, transient: bool = False):
        super().__init__(message)
        self.invalid_grant = invalid_grant
        self.transient = transient


def authorization_url(p: Provider, state: str) -> str:
    allow_plain_http_on_loopback(p.authorize_url)
    oauth = OAuth2Session(p.client_id, redirect_uri=p.redirect_uri, scope=p.scope.split())
    url, _ = oauth.authorization_url(p.authorize_url, state=state)
    return url


def exchange_code(p: Provider, code: str, timeout: float) -> dict[str, Any]:
    """Trade an authorization code for tokens."""
    oauth = _token_session(p, redirect_uri=p.redirect_uri)
    return _token_call(p, lambda kw: oauth.fetch_token(p.token_url, code=code, **kw), timeout)


def refresh(p: Provider, refresh_token: str, timeout: float) -> dict[str, Any]:
    """Use a refresh token. Xero rotates it: the caller must store the new one at once."""
    oauth = _token_session(p)
    return _token_call(
        p, lambda kw: oauth.refresh_token(p.token_url, refresh_token=refresh_token, **kw), timeout
    )


def _token_session(p: Provider, redirect_uri: str | None = None) -> OAuth2Session:
    oauth = OAuth2Session(p.client_id, redirect_uri=redirect_uri)

    def reject_server_errors(response: requests.Response) -> requests.Response:
        # oauthlib would try to parse a 5xx/429 page as a token response; it is an outage.
        if response.status_code >= 500 or response.status_code == 429:
            raise OAuthFailure(f"{p.name}: token endpoint answered {response.status_code}",
                               transient=True)
        return response

    oauth.register_compliance_hook("access_token_response", reject_server_errors)
    oauth.register_compliance_hook("refresh_token_response", reject_server_errors)
    return oauth


def _token_call(p: Provider, call: Any, timeout: float) -> dict[str, Any]:
    allow_plain_http_on_loopback(p.token_url)
    if p.client_auth == "basic":
        kwargs: dict[str, Any] = {"auth": HTTPBasicAuth(p.client_id, p.client_secret),
                                  "include_client_id": False}
    else:
        kwargs = {"include_client_id": True, "client_secret": p.client_secret}
    try:
        return dict(call({**kwargs, "timeout": timeout}))
    except InvalidGrantError as exc:
        raise OAuthFailure(f"{p.name}: {exc.description or 'invalid_grant'}",
                           invalid_grant=True) from exc
    except OAuth2Error as exc:
        transient = (exc.status_code or 0) >= 500
        raise OAuthFailure(f"{p.name}: {exc.error}: {exc.description or ''}".strip(),
                           transient=transient) from exc
    except requests.RequestException as exc:
        raise OAuthFailure(f"{p.name}: token endpoint unreachable ({exc.__class__.__name__})",
                           transient=True) from exc
    except ValueError as exc:  # a non-JSON body, e.g. an HTML 502 page from a proxy
        raise OAuthFailure(f"{p.name}: unreadable token response", transient=True) from exc


def allow_plain_http_on_loopback(url: str) -> None:
    """oauthlib refuses http:// token URLs; allow them only for the loopback sandbox and tests."""
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")


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
