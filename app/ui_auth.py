"""Who may see a card or page inside a CRM, with no cookies (third-party cookies are blocked in
iframes): every page and every action carries a short-lived token of ours.

- HubSpot: the app card calls `/hubspot/card` with `hubspot.fetch`, which HubSpot signs (v3);
  the JSON it returns carries iframe URLs with a page token.
- Pipedrive: the custom panel loads our page with `?token=<JWT>` signed with the app's
  secret (HS256); verified on every load, then a page token of ours takes over.
- Those two (and `/pipedrive/settings`, `/setup` for the signed-in admin) are the only places
  that mint a *fresh* page token. Everything a page hands out - links to other pages, the
  token each form posts, the page after an action - is minted from the view that page was
  opened with and expires no later than it (`View.not_after`): a chain of page loads and
  actions cannot outlive the first token.

Two kinds of token, never interchangeable:

- page tokens (`issue_view_token` / `read_view_token`) ride in page URLs (`?t=`) and in GET
  forms (search, filter). They name one installation, one user and one object.
- action tokens (`issue_action_token` / `read_action_token`) ride only in POST forms (`a`).
  Each names one action (push, save, ...) on one object, optionally one target (a review
  item), for one user, lives `ACTION_TTL` at most, and is used once when the action says so.

Why opaque tokens in Redis rather than signed ones: a page URL now carries 22 random
characters (128 bits from `secrets`) instead of a ~250-character JWT whose claims anyone can
read; single use and revocation need server state anyway (a signed token cannot be "spent");
and Redis's TTL expires them with no sweeping. Redis stores only the SHA-256 of each token,
so a copy of Redis hands out no usable token. The cost: pages need Redis (so do the jobs
behind every button); when it is down a page answers 503, never a 500.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from flask import abort, g, make_response, render_template, request
from redis.exceptions import RedisError

from app.runtime import get_settings
from app.redis_conn import get_redis

VIEW_TTL = 900  # seconds: long enough to work in a card, short enough to be useless later
# (the default of the page_token_seconds setting, which the pages read)
# The settings page's tokens: the page opened from the card (or /pipedrive/settings, /setup)
# and the save form's single-use token. The form is long (stages, products, tax labels), so
# this is more than the pages' VIEW_TTL; nothing the page issues outlives the token it was
# opened with, so an admin who needs longer reopens it from the CRM.
FORM_TTL = 1800
ACTION_TTL = 600  # seconds: a form's token; never beyond the page's own token
TOKEN_BYTES = 16  # 128 random bits: 22 URL-safe characters
_PREFIX = "paydeck:ui-token:"
PAGE, ACTION = "page", "action"


@dataclass(frozen=True)
class View:
    installation_id: int
    user: str
    object_type: str  # deal | company | review | settings
    object_id: str
    # Epoch seconds after which nothing minted from this view may live: the expiry of the
    # token it was read from. 0 for a fresh view (built by a card endpoint from a CRM's proof).
    not_after: int = field(default=0, compare=False)


def issue_view_token(view: View, ttl: int | None = None) -> str:
    """A page token for `view`, living `ttl` seconds (default: the page_token_seconds setting)
    but never beyond `view.not_after`."""
    return _issue([_claims(view, PAGE, "", "")], ttl or get_settings().page_token_seconds)[0]


def page_ttl(object_type: str) -> int:
    """How long a fresh page token for this kind of page lives (settings: as long as its form)."""
    return FORM_TTL if object_type == "settings" else get_settings().page_token_seconds


def read_view_token(token: str | None, object_type: str, object_id: str | None = None) -> View:
    """The view a page token grants, or a 401: missing, unknown, expired, an action token, or
    for another object."""
    claims = _lookup(token, "missing view token")
    return _view(claims, PAGE, object_type, object_id)


def issue_action_token(view: View, action: str, target: str = "", ttl: int = ACTION_TTL) -> str:
    """A token for one `action` on the view's object (and `target`, e.g. a review item id)."""
    return _issue([_claims(view, ACTION, action, target)], ttl)[0]


def issue_action_tokens(view: View, action: str, targets: Iterable[str],
                        ttl: int = ACTION_TTL) -> dict[str, str]:
    """One action token per target (a page listing many items), written in one round trip."""
    wanted = [str(t) for t in targets]
    return dict(zip(wanted, _issue([_claims(view, ACTION, action, t) for t in wanted], ttl)))


def read_action_token(token: str | None, action: str, object_type: str,
                      object_id: str | None = None, target: str = "", *, once: bool = True) -> View:
    """The view an action token grants for exactly `action` on `object_type`/`object_id`
    (and `target`), or a 401. With `once`, the token is spent: a second use is refused, and of
    two racing uses exactly one wins (Redis DEL answers 1 to one of them)."""
    claims = _lookup(token, "missing action token")
    view = _view(claims, ACTION, object_type, object_id)
    if claims.get("act") != action or str(claims.get("tgt", "")) != str(target):
        refuse_view("this form's token is for another action", expired=False)
    if once and not _redis_call(lambda r: r.delete(_key(token or ""))):
        abort(_refusal_page("This form was already sent",
                            "It was submitted once already, so it was not sent again. Reopen the "
                            "card to see where things stand.", "already submitted", 401, auto=False))
    return view


def revoke_token(token: str) -> None:
    """Forget a page or action token now (it is refused from then on)."""
    _redis_call(lambda r: r.delete(_key(token)))


def _claims(view: View, kind: str, action: str, target: str) -> dict[str, Any]:
    return {"k": kind, "ins": view.installation_id, "usr": view.user, "typ": view.object_type,
            "oid": view.object_id, "act": action, "tgt": str(target), "na": view.not_after}


def _issue(batch: list[dict[str, Any]], ttl: int) -> list[str]:
    """Mint one token per claims dict, each expiring `ttl` from now or at its `na`, whichever
    is sooner; written in one round trip."""
    now = time.time()
    minted: list[tuple[str, dict[str, Any], int]] = []
    for claims in batch:
        expires = min(now + ttl, claims["na"]) if claims["na"] else now + ttl
        minted.append((secrets.token_urlsafe(TOKEN_BYTES), {**claims, "na": math.floor(expires)},
                       math.floor(expires - now)))

    def write(r: Any) -> None:
        pipe = r.pipeline(transaction=False)
        for token, claims, seconds in minted:
            # A token minted from an expired view is born dead: not stored, so refused.
            if seconds > 0:
                pipe.set(_key(token), json.dumps(claims), ex=seconds)
        pipe.execute()

    _redis_call(write)
    return [token for token, _, _ in minted]


def _lookup(token: str | None, missing: str) -> dict[str, Any]:
    if not token:
        refuse_view(missing)
    if len(token) > 64:  # ours are 22 characters; nothing longer is worth a Redis call
        refuse_view("invalid or expired token")
    raw = _redis_call(lambda r: r.get(_key(token)))
    if raw is None:
        refuse_view("invalid or expired token")
    claims: dict[str, Any] = json.loads(raw)
    if claims["na"] < time.time():  # Redis expires keys lazily to the second: be exact
        refuse_view("invalid or expired token")
    return claims


def _view(claims: dict[str, Any], kind: str, object_type: str, object_id: str | None) -> View:
    if claims.get("k") != kind:
        refuse_view("a page token cannot act, and an action token cannot open a page", expired=False)
    view = View(int(claims["ins"]), str(claims.get("usr", "")), str(claims["typ"]),
                str(claims["oid"]), int(claims["na"]))
    if view.object_type != object_type or (object_id is not None and view.object_id != object_id):
        refuse_view("token is for another record", expired=False)
    if kind == PAGE:  # the page says when it expires: Pipedrive's pages renew before then
        g.paydeck_view_expires = view.not_after
    return view


def _key(token: str) -> str:
    return _PREFIX + hashlib.sha256(token.encode()).hexdigest()


def _redis_call(call: Any) -> Any:
    try:
        return call(get_redis())
    except RedisError:
        abort(_refusal_page("Paydeck cannot open this view right now",
                            "Paydeck cannot check its page tokens (its Redis store is unavailable). "
                            "Try again in a minute.", "Redis is unavailable", 503, auto=False))


def read_pipedrive_token(token: str | None) -> dict[str, Any]:
    """Pipedrive's panel JWT (HS256 with the extension's secret - the client secret unless set
    otherwise), verified on every load."""
    secret = get_settings().pipedrive_jwt_secret or get_settings().pipedrive_client_secret
    if not token or not secret:
        refuse_view("missing Pipedrive token")
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"],
                                            options={"require": ["exp"]})
    except jwt.PyJWTError:
        refuse_view("invalid or expired Pipedrive token")
    return claims


# --- refusals: a styled page, never a bare 401 ---------------------------------------------------

EXPIRED_TITLE = "This view has expired"
EXPIRED_MESSAGE = "This view has expired, reopen the card."


def refuse_view(reason: str, *, expired: bool = True) -> None:
    """Refuse a page or form whose token does not hold (401): a styled page saying the view
    has expired. Inside Pipedrive it renews itself (app/static/js/pipedrive.js: a fresh
    signed token from the SDK, then the JWT-verified entry of the same view); in HubSpot the
    card fetches fresh URLs each time a button opens a page, so reopening it is the fix."""
    abort(_refusal_page(EXPIRED_TITLE, EXPIRED_MESSAGE, reason, 401, auto=expired))


def _refusal_page(title: str, message: str, reason: str, status: int, *, auto: bool) -> Any:
    renew = pipedrive_entry(request.path, request.args) if _in_pipedrive() else None
    response = make_response(render_template(
        "message.html", title=title, message=message, detail=reason, renew_url=renew,
        renew_auto=auto and renew is not None, pipedrive=renew is not None), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _in_pipedrive() -> bool:
    return (request.path.startswith("/pipedrive/") or request.args.get("pd") == "1"
            or (request.method == "POST" and request.form.get("pd") == "1"))


def pipedrive_entry(path: str, args: Any) -> str | None:
    """The JWT-verified Pipedrive entry that opens the view at `path` afresh (its `token`
    added by the page), or None. Pipedrive's own query (`id`, `selectedIds`...) is kept for
    an entry; the record id of a page is what the panel entry checks again (app/access/rules.py)."""
    parts = path.strip("/").split("/")
    if parts[0] == "pipedrive":
        kept = {k: v for k, v in args.items() if k != "token" and len(v) <= 128}
        return path + ("?" + urlencode(kept) if kept else "")
    if len(parts) < 3 or parts[0] != "ui":
        return None
    kind, object_id = parts[1], parts[2]
    if kind == "review":
        return "/pipedrive/modal/review"
    if kind == "settings":
        return "/pipedrive/settings"
    panel = {"deal": "deal", "company": "organization"}.get(kind)
    if panel and object_id.isascii() and object_id.isdigit() and len(object_id) <= 20:
        return f"/pipedrive/panel/{panel}?selectedIds={object_id}"
    return None
