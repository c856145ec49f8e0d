"""Helpers shared by the page views: the admin's installation, CSRF, framing, message pages,
and the URLs of the pages opened inside the CRMs."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Response, abort, g, make_response, render_template, request, session

from sqlalchemy import select

from app.access.rules import may_act, may_see_money, refuse_action
from app.access.viewer import Viewer, page_locale, viewer_for
from app.card_data.alerts import installation_alerts
from app.connection_state import connection_notices
from app.extensions import db
from app.models import CrmKind, Installation, InstallationStatus
from app.page_format import use_locale
from app.runtime import get_settings
from app.ui_auth import View, issue_view_token, page_ttl, read_pipedrive_token, read_view_token
from app.ui_auth import refuse_view

_INSTALLATION = "installation_id"
_USER = "user"
_CSRF = "csrf_token"


def sign_in(installation: Installation, user: str | None = None) -> None:
    """Remember, in this browser, that its user installed (and so administers) `installation`.
    `user` names them (CRM email or user id); the installing admin when not given."""
    session.clear()
    session[_INSTALLATION] = installation.id
    session[_USER] = user if user is not None else installation.installed_by
    session.permanent = False


def signed_in_user() -> str:
    """Who signed this browser in (see `sign_in`); empty if nobody."""
    return str(session.get(_USER) or "")


def current_installation() -> Installation | None:
    installation_id = session.get(_INSTALLATION)
    if installation_id is None:
        return None
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return None  # uninstalled, or its CRM grant is gone: install again first
    return installation


def require_installation() -> Installation:
    installation = current_installation()
    if installation is None:
        abort(message_page("Open Paydeck from your CRM",
                           "This page belongs to a Paydeck installation. Open Paydeck from "
                           "HubSpot or Pipedrive (or install it again) to continue.", 401))
    return installation


def view_installation(view: View) -> Installation:
    """The active installation a (verified) view token names, or a 401 page."""
    installation = db.session.get(Installation, view.installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        abort(message_page("Paydeck is not active here",
                           "Paydeck was uninstalled from this account, or lost access to it: an "
                           "admin installs it again from the CRM's marketplace.", 401))
    return installation


def page_installation(view: View, installation_id: int) -> Installation:
    """The installation a page's URL names, if the token is for it; the page then formats in
    its viewer's locale and zone. Another installation's token is refused (401)."""
    if view.installation_id != installation_id:
        refuse_view("view token is for another installation", expired=False)
    installation = view_installation(view)
    use_locale(*page_locale(viewer_for(installation, view.user)))
    return installation


def active_installation(crm: CrmKind, account_id: str) -> Installation | None:
    """The active installation of a CRM account (a portal, a Pipedrive company), if any."""
    return db.session.scalar(select(Installation).where(
        Installation.crm == crm, Installation.account_id == account_id,
        Installation.status == InstallationStatus.ACTIVE))


def pipedrive_caller() -> tuple[Installation, str]:
    """The active installation and the user a Pipedrive extension's JWT (`?token=`, verified
    on every load) names: (installation, userId). A 401 for a bad token, 404 if not installed."""
    claims = read_pipedrive_token(request.args.get("token"))
    installation = active_installation(CrmKind.PIPEDRIVE, str(claims.get("companyId", "")))
    if installation is None:
        abort(404, "Paydeck is not installed in this Pipedrive company")
    return installation, str(claims.get("userId", ""))


@dataclass(frozen=True)
class CallbackWords:
    """What an OAuth callback's refusal pages say (install: HubSpot or Pipedrive; Xero connect)."""

    expired: str  # the message of "This link has expired"
    cancelled: str  # the title when the vendor did not grant access
    party: str  # who did not grant it
    unchanged: str  # what that left as it was
    failed: str  # the title when no code came
    no_code: str


def authorization_code(state_valid: bool, words: CallbackWords) -> str:
    """The authorization code an OAuth callback brings, else a 400 page saying why there is none."""
    if not state_valid:
        abort(message_page("This link has expired", words.expired, 400))
    if request.args.get("error"):
        abort(message_page(words.cancelled, f"{words.party} did not grant access "
                           f"({request.args['error']}). {words.unchanged}", 400))
    code = request.args.get("code")
    if not code:
        abort(message_page(words.failed, words.no_code, 400))
    return code


def csrf_token() -> str:
    token = session.get(_CSRF)
    if token is None:
        token = session[_CSRF] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    sent = request.form.get(_CSRF, "")
    expected = session.get(_CSRF, "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(message_page("Form expired", "Reload the page and try again.", 400))


def called_url() -> str:
    """The URL the CRM called: our public origin (TLS ends at the proxy) + the raw path and query,
    as signatures are computed over it."""
    path = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
    return f"{get_settings().public_url}{path}"


def crm_frame_headers(response: Response) -> Response:
    """For pages shown inside the CRMs' iframes: nothing may be cached between users (an
    after_request hook). Their CSP (framing by the CRMs only) is `security_headers`'s."""
    response.headers["Cache-Control"] = "no-store"
    return response


# The blueprints whose pages open inside a CRM (HubSpot's modal, Pipedrive's panels and
# settings surface): the only pages anything may frame, and only the CRMs.
CRM_FRAMED_BLUEPRINTS = frozenset({"cards", "invoice", "company", "review", "settings",
                                   "contact_match"})
_FORM_TARGETS = "paydeck.form_targets"


def allow_form_target(url: str) -> None:
    """Let this response's forms lead to `url`'s origin (CSP form-action also governs the
    redirects after a submit: the Xero confirmation's POST answers with a 302 to Xero)."""
    parts = urlsplit(url)
    g.setdefault(_FORM_TARGETS, set()).add(f"{parts.scheme}://{parts.netloc}")


def security_headers(response: Response) -> Response:
    """Every response (app-wide after_request): a strict CSP - scripts and styles only from
    Paydeck's own files, none inline (app/static/js, app/static/css; Pipedrive's SDK is served
    from app/static/vendor), no plugins, no <base>, forms only to Paydeck (plus an origin a
    view allows) - framing by the CRMs for the CRM pages and by nobody for the rest (install,
    connect, setup, message pages), and no Referer (page URLs carry tokens)."""
    framed = request.blueprint in CRM_FRAMED_BLUEPRINTS
    ancestors = get_settings().frame_ancestors if framed else "'none'"
    form_action = " ".join(["'self'", *sorted(g.get(_FORM_TARGETS, ()))])
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"object-src 'none'; base-uri 'none'; form-action {form_action}; "
        f"frame-ancestors {ancestors}")
    if not framed:
        response.headers["X-Frame-Options"] = "DENY"  # for browsers without frame-ancestors
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def message_page(title: str, message: str, status: int = 200, back_url: str | None = None) -> Response:
    """A page that says one thing (with a Back link to `back_url`, if given)."""
    return make_response(render_template("message.html", title=title, message=message,
                                         back_url=back_url), status)


def is_crm_id(value: str) -> bool:
    """A CRM record id as HubSpot and Pipedrive issue them: ASCII digits, at most 20
    (`str.isdigit` alone admits '²' and other characters `int()` refuses)."""
    return value.isascii() and value.isdigit() and len(value) <= 20


# Pipedrive's `id` on a custom UI extension's iframe URL identifies the extension instance for
# the SDK (@pipedrive/app-extensions-sdk README, Initialization: "If the URL is modified (e.g.
# with redirects), then it has to be passed manually"). Its format is not documented: anything
# short and URL-safe is passed on.
_PIPEDRIVE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def pipedrive_id_query() -> str:
    """`&id=...` to keep Pipedrive's extension id on a redirect into Paydeck's page ('' if none)."""
    value = request.args.get("id", "")
    return f"&{urlencode({'id': value})}" if _PIPEDRIVE_ID.match(value) else ""


def page_url(view: View, pipedrive: bool = False) -> str:
    """The page a view names, with a fresh page token (`pipedrive`: Pipedrive's panel mode)."""
    token = issue_view_token(view, ttl=page_ttl(view.object_type))
    return (f"{get_settings().public_url}/ui/{view.object_type}/{view.object_id}?t={token}"
            + ("&pd=1" if pipedrive else ""))


def pipedrive_page_url(view: View) -> str:
    """The page for Pipedrive's iframe: panel mode, keeping Pipedrive's `id` for the SDK."""
    return page_url(view, pipedrive=True) + pipedrive_id_query()


# The custom modal's name in Developer Hub (app_manifest/pipedrive/app.json `custom_modals`):
# the SDK's OPEN_MODAL takes a custom modal's "id or name" as action_id (SDK README).
PIPEDRIVE_REVIEW_MODAL = "Paydeck review queue"


def page_alerts(view: View, installation: Installation, pipedrive: bool) -> dict[str, Any]:
    """What a record page shows at its top about the whole installation: failing or lost
    connections, and open `reconnect_needed` review items that name no deal (a banner on
    every card), with the review queue they are closed in."""
    review = replace(view, object_type="review", object_id=str(installation.id))
    return {"connection_notices": connection_notices(installation),
            "alerts": installation_alerts(installation),
            "review_url": page_url(review, pipedrive=pipedrive),
            "review_modal": PIPEDRIVE_REVIEW_MODAL}


def settings_view(installation: Installation, user: str) -> View:
    """`user`'s view of the installation's settings page (for an entry point that proved who
    they are: the installer's card, /pipedrive/settings, /setup)."""
    return View(installation.id, user, "settings", str(installation.id))


# --- record pages (deal, company, review queue) -----------------------------------------------

@dataclass(frozen=True)
class Opened:
    """A record's page opened with its page token: by whom, and whether they see its money."""

    token: str | None
    view: View
    installation: Installation
    viewer: Viewer
    money: bool


def open_record(object_type: str, object_id: str) -> Opened:
    """The page token's view of this record (else a 401) and its viewer; the page formats in
    the viewer's locale and timezone."""
    token = request.args.get("t")
    view = read_view_token(token, object_type, object_id)
    installation = view_installation(view)
    viewer = viewer_for(installation, view.user)
    use_locale(*page_locale(viewer))
    return Opened(token, view, installation, viewer, may_see_money(viewer, object_type, object_id))


def form_pd() -> str | None:
    """`pd=1` again after a form from a page in Pipedrive's panel mode."""
    return "1" if request.form.get("pd") == "1" else None


def require_act(viewer: Viewer, kind: str, record_id: str, action: str) -> None:
    """A 403 page (audited) unless the settings let this viewer act on this record."""
    if not may_act(viewer, kind, record_id):
        abort(message_page("Not allowed", refuse_action(viewer, kind, record_id, action), 403))
