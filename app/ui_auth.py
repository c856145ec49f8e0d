"""Who may see a card or page inside a CRM, with no cookies (third-party cookies are blocked in
iframes): every page and action carries a short-lived signed view token.

- HubSpot: the app card calls `/hubspot/card` with `hubspot.fetch`, which HubSpot signs (v3);
  the JSON it returns carries iframe URLs with a view token we sign.
- Pipedrive: the custom panel loads our page with `?token=<JWT>` signed with the app's
  secret (HS256); verified on every load, then a view token of ours takes over.
- A view token names one installation and one object; actions POST it back (per-view token).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from flask import abort, current_app

from app import get_settings

VIEW_TTL = 900  # seconds: long enough to work in a card, short enough to be useless later
_ISSUER = "paydeck-view"


@dataclass(frozen=True)
class View:
    installation_id: int
    user: str
    object_type: str  # deal | company | review | settings
    object_id: str


def issue_view_token(view: View, ttl: int = VIEW_TTL) -> str:
    now = int(time.time())
    claims = {"iss": _ISSUER, "iat": now, "exp": now + ttl, "ins": view.installation_id,
              "usr": view.user, "typ": view.object_type, "oid": view.object_id}
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm="HS256")


def read_view_token(token: str | None, object_type: str, object_id: str | None = None) -> View:
    """The view a token grants, or a 401 page: missing, forged, expired, or for another object."""
    if not token:
        abort(401, "missing view token")
    try:
        claims: dict[str, Any] = jwt.decode(token, current_app.config["SECRET_KEY"],
                                            algorithms=["HS256"], issuer=_ISSUER,
                                            options={"require": ["exp", "iat", "iss"]})
    except jwt.PyJWTError:
        abort(401, "invalid or expired view token")
    view = View(int(claims["ins"]), str(claims.get("usr", "")), str(claims["typ"]), str(claims["oid"]))
    if view.object_type != object_type or (object_id is not None and view.object_id != object_id):
        abort(401, "view token is for another record")
    return view


def read_pipedrive_token(token: str | None) -> dict[str, Any]:
    """Pipedrive's panel JWT (HS256 with the extension's secret - the client secret unless set
    otherwise), verified on every load."""
    secret = get_settings().pipedrive_jwt_secret or get_settings().pipedrive_client_secret
    if not token or not secret:
        abort(401, "missing Pipedrive token")
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"],
                                            options={"require": ["exp"]})
    except jwt.PyJWTError:
        abort(401, "invalid or expired Pipedrive token")
    return claims
