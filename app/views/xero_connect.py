"""Connecting an installation to one Xero organisation, and switching it. (Disconnecting is on
the settings page: app/views/settings.py.)"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, session, url_for
from sqlalchemy import select

from app.crm_names import crm_name
from app.runtime import get_settings
from app.extensions import db
from app.connections import xero_config
from app.models import AuditEvent, ConnectionStatus, Installation, InstallationStatus, XeroConnection
from app.oauth import OAuthFailure, authorization_url, consume_state, exchange_code, issue_state, provider
from app.ui_auth import read_action_token
from app.views.common import CallbackWords, allow_form_target, authorization_code, check_csrf, csrf_token
from app.views.common import current_installation, message_page, require_installation, view_installation
from xero import identity
from xero.identity import Tenant, XeroIdentityError

log = logging.getLogger(__name__)
bp = Blueprint("xero_connect", __name__)
_CHOOSING = "xero_choosing"  # session: the installation this browser may pick an organisation for


@bp.route("/connect/xero", methods=["GET", "POST"])
def start() -> Response | str:
    """Start connecting an installation to Xero.

    From the settings page (inside a CRM iframe, no cookies) a form posts its `connect` action
    token `a` into a new top-level window: that only shows a confirmation naming the CRM account.
    Nothing about this browser's session changes (a token from a link never signs a browser
    in: the login-CSRF of issue #12); Confirm posts back with a CSRF token bound to this
    browser's session. Right after a CRM install, the browser signed in by that install's
    OAuth callback goes straight on to Xero."""
    token = request.form.get("a")  # never from the query string: tokens stay out of URLs
    if token:
        installation, _ = _settings_admin(token, once=False)
        return _confirmation(installation, token)
    return _to_xero(require_installation())


@bp.post("/connect/xero/confirm")
def confirm() -> Response:
    check_csrf()
    installation, _ = _settings_admin(request.form.get("a", ""), once=True)
    return _to_xero(installation)


def _confirmation(installation: Installation, token: str) -> str:
    # Its form posts to /connect/xero/confirm, which redirects to Xero's authorize page.
    allow_form_target(provider("xero", get_settings()).authorize_url)
    return render_template("connect_xero.html", installation=installation, token=token,
                           crm=crm_name(installation), csrf_token=csrf_token(),
                           current=installation.xero_connection)


def _to_xero(installation: Installation) -> Response:
    settings = get_settings()
    p = provider("xero", settings)
    if not p.client_id:
        return message_page("Not configured", "Xero credentials are not set on this server.", 503)
    # The state names the installation and is bound to this browser (app.oauth): the
    # callback takes the installation from it, not from who this browser is signed in as.
    state = issue_state("connect:xero", settings.oauth_state_ttl, installation_id=installation.id)
    return redirect(authorization_url(p, state))


@bp.get("/oauth/xero/callback")
def callback() -> Response:
    settings = get_settings()
    state = consume_state(request.args.get("state"), "connect:xero")
    installation = db.session.get(Installation, state["installation_id"]) if state else None
    code = authorization_code(
        installation is not None and installation.status == InstallationStatus.ACTIVE, CallbackWords(
            "The Xero link was already used, is too old, or was started elsewhere. Connect to Xero "
            "again.", "Xero not connected", "Xero", "Nothing was changed.", "Xero not connected",
            "Xero sent no authorization code."))
    assert installation is not None  # else authorization_code answered
    try:
        token = exchange_code(provider("xero", settings), code, settings.http_timeout)
        # Only this sign-in's organisations: the same Xero user may have connected another
        # installation to another organisation, which must be neither offered nor detached.
        event = identity.auth_event_id(token["access_token"])
        if event is None:
            log.warning("installation %s: Xero access token has no authentication_event_id; "
                        "listing every connection of the user", installation.id)
        organisations = identity.list_organisations(xero_config(settings), token["access_token"], event)
    except (OAuthFailure, XeroIdentityError) as exc:
        log.warning("installation %s: Xero connect failed: %s", installation.id, exc)
        return message_page("Xero not connected", "Xero refused the authorization (it may "
                            "have expired). Connect to Xero again.", 400)
    if not organisations:
        return message_page("No organisation chosen", "Xero granted access to no organisation. "
                            "Connect again and tick the organisation to invoice into.", 400)
    _store_connection(installation, token, organisations)
    # This browser finished the round trip it confirmed: it may pick the organisation.
    session[_CHOOSING] = installation.id
    if installation.xero_connection and installation.xero_connection.status == ConnectionStatus.PENDING_TENANT:
        return redirect(url_for("xero_connect.choose_organisation"))
    return _finished(installation)


def _finished(installation: Installation) -> Response:
    signed_in = current_installation()
    if signed_in is not None and signed_in.id == installation.id:
        return redirect(url_for("install.setup"))
    connection = installation.xero_connection
    return message_page("Connected to Xero", f"{crm_name(installation)} account "
                        f"{installation.account_name or installation.account_id} now invoices into "
                        f"{connection.tenant_name if connection else 'Xero'}. Close this window and "
                        "reload Paydeck's settings in your CRM.")


def _choosing_installation() -> Installation:
    """The installation whose Xero round trip this browser just finished, else the signed-in one."""
    installation_id = session.get(_CHOOSING)
    installation = db.session.get(Installation, installation_id) if installation_id else None
    if installation is not None and installation.status == InstallationStatus.ACTIVE:
        return installation
    return require_installation()


@bp.route("/connect/xero/organisation", methods=["GET", "POST"])
def choose_organisation() -> Response | str:
    installation = _choosing_installation()
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.PENDING_TENANT:
        return _finished(installation)
    if request.method == "GET":
        return render_template("choose_organisation.html", choices=connection.tenant_choices,
                               csrf_token=csrf_token())
    check_csrf()
    chosen = next((c for c in connection.tenant_choices
                   if c["tenant_id"] == request.form.get("tenant_id")), None)
    if chosen is None:
        return message_page("Unknown organisation", "Choose one of the listed organisations.", 400)
    _drop_unchosen(connection, chosen)
    _connect_tenant(connection, Tenant(chosen["connection_id"], chosen["tenant_id"],
                                       chosen["tenant_name"]))
    db.session.commit()
    session.pop(_CHOOSING, None)
    return _finished(installation)


@bp.get("/connect/xero/status")
def status() -> Response:
    """The admin's view of the connection, for pages and the CRM card."""
    installation = require_installation()
    connection = installation.xero_connection
    if connection is None:
        return jsonify({"installation_id": installation.id, "xero": None})
    return jsonify({
        "installation_id": installation.id,
        "xero": {
            "status": connection.status.value,
            "detail": connection.status_detail,
            "tenant_id": connection.tenant_id,
            "tenant_name": connection.tenant_name,
            "last_used_at": _iso(connection.last_used_at),
            "token_refreshed_at": _iso(connection.token_refreshed_at),
        },
    })


def _settings_admin(token: str, *, once: bool) -> tuple[Installation, str]:
    """The installation and admin a `connect` action token (from the settings page) names, or
    a 401. Spent (`once`) by the confirmation's POST, which goes on to Xero."""
    view = read_action_token(token, "connect", "settings", once=once)
    if view.object_id != str(view.installation_id):
        abort(401, "view token is for another installation")
    return view_installation(view), view.user


def _store_connection(installation: Installation, token: dict,
                      organisations: list[Tenant]) -> None:
    connection = installation.xero_connection
    if connection is None:
        connection = XeroConnection(installation_id=installation.id,
                                    status=ConnectionStatus.PENDING_TENANT)
        db.session.add(connection)
        installation.xero_connection = connection
    elif connection.xero_connection_id and connection.tenant_id not in {
        t.tenant_id for t in organisations
    }:
        # Switching organisation: detach the old one. (Not a revoke of the old grant: Xero
        # may have moved the re-authorised connections onto the new grant.)
        _detach(token["access_token"], connection.xero_connection_id, installation.id)
    connection.set_tokens(token, datetime.now(timezone.utc))
    connection.status_detail = ""
    if len(organisations) == 1:
        _connect_tenant(connection, organisations[0])
    else:
        connection.status = ConnectionStatus.PENDING_TENANT
        connection.tenant_choices = [
            {"connection_id": t.connection_id, "tenant_id": t.tenant_id, "tenant_name": t.tenant_name}
            for t in organisations
        ]
    db.session.commit()


def _detach(access_token: str, xero_connection_id: str, installation_id: int) -> None:
    """Detach an organisation from the Xero user's connections - unless another Paydeck
    installation still invoices through that connection: a Xero connection belongs to the user
    and the app, not to one grant (a later sign-in of the same user re-authorises the same
    connection id), so detaching it would cut that installation off too."""
    if _used_elsewhere(xero_connection_id, installation_id):
        log.info("not detaching Xero connection %s: another installation uses it",
                 xero_connection_id)
        return
    try:
        identity.remove_connection(xero_config(get_settings()), access_token, xero_connection_id)
    except XeroIdentityError as exc:
        log.warning("could not detach Xero connection %s: %s", xero_connection_id, exc)


def _connect_tenant(connection: XeroConnection, tenant: Tenant) -> None:
    connection.tenant_id = tenant.tenant_id
    connection.tenant_name = tenant.tenant_name
    connection.xero_connection_id = tenant.connection_id
    connection.tenant_choices = []
    connection.status = ConnectionStatus.CONNECTED
    connection.connected_at = datetime.now(timezone.utc)
    db.session.add(AuditEvent(installation_id=connection.installation_id, action="xero_connected",
                              outcome="ok", xero_ids={"tenant_id": tenant.tenant_id},
                              detail={"tenant_name": tenant.tenant_name}))


def _drop_unchosen(connection: XeroConnection, chosen: dict[str, str]) -> None:
    """Detach the organisations the admin did not pick, so the grant reaches only one."""
    assert connection.access_token
    for choice in connection.tenant_choices:
        if choice["tenant_id"] != chosen["tenant_id"]:
            _detach(connection.access_token, choice["connection_id"], connection.installation_id)


def _used_elsewhere(xero_connection_id: str, installation_id: int) -> bool:
    return db.session.scalar(select(XeroConnection.id).where(
        XeroConnection.xero_connection_id == xero_connection_id,
        XeroConnection.installation_id != installation_id,
        XeroConnection.status.in_((ConnectionStatus.CONNECTED,
                                   ConnectionStatus.RECONNECT_NEEDED))).limit(1)) is not None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
