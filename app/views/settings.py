"""The admin's settings page: the Xero connection, stage rules per pipeline, Xero defaults,
product and tax mappings, contact matching and invoice options.

It opens inside the CRMs (a HubSpot modal, Pipedrive's app settings surface), so, like the card
pages, it uses no cookies: a `settings` page token (app.ui_auth) rides in the URL, and each
form (save, disconnect, connect Xero) carries its own single-use action token, which is also
the CSRF protection. Only the installing admin is handed one (the
HubSpot card, `/pipedrive/settings`, and `/setup` after install or Xero connect).

What the page offers comes from the CRM (pipelines, products) and Xero (accounts, tax rates,
items). Whatever could not be read is shown as saved and left untouched on save; everything
else is validated first and written in one transaction, or not at all. The form itself, one
class per section, is app.settings_forms; this module only routes.
"""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from app.access.rules import may_administer_pipedrive
from app.connection_state import connection_notices
from app.connections import revoke_grant
from app.contact_sync.initial.rows import ever_approved
from app.crm_names import crm_name
from app.extensions import db
from app.models import AuditEvent, ConnectionStatus, Installation
from app.settings_forms.form import SettingsForm
from app.settings_forms.sources import Sources, load_sources
from app.ui_auth import FORM_TTL, View, issue_action_token, issue_view_token, read_action_token
from app.ui_auth import read_view_token
from app.views.common import crm_frame_headers, message_page, page_installation, pipedrive_caller
from app.views.common import pipedrive_page_url, settings_view

bp = Blueprint("settings", __name__)
bp.after_request(crm_frame_headers)


@bp.get("/ui/settings/<int:installation_id>")
def settings_page(installation_id: int) -> Response:
    view = read_view_token(request.args.get("t"), "settings", str(installation_id))
    installation = page_installation(view, installation_id)
    sources = load_sources(installation, refresh=request.args.get("refresh") == "1")
    return _render(view, installation, sources, SettingsForm.saved(installation), {},
                   pipedrive=request.args.get("pd") == "1", message=request.args.get("m", ""))


@bp.post("/ui/settings/<int:installation_id>")
def save_settings(installation_id: int) -> Response:
    view = read_action_token(request.form.get("a"), "save", "settings", str(installation_id))
    installation = page_installation(view, installation_id)
    pipedrive = request.form.get("pd") == "1"
    # Checked against Xero as it is now, not an hour-old copy: an account archived since the
    # page loaded must not be saved as a default.
    sources = load_sources(installation, refresh=True)
    wanted, errors = SettingsForm.saved(installation).read(request.form, sources, crm_name(installation))
    if errors:
        return _render(view, installation, sources, wanted, errors, pipedrive=pipedrive,
                       message="", status=400)
    try:
        changes = wanted.save(installation)
        if changes:
            db.session.add(AuditEvent(installation_id=installation.id, action="settings_changed",
                                      outcome="ok", detail={"changes": changes, "by": view.user}))
        db.session.commit()
    except IntegrityError:  # a concurrent save of the same rows won the race
        db.session.rollback()
        return message_page("Saved elsewhere at the same time", "Someone saved these settings "
                            "while you were. Nothing of yours was saved: reload and try again.", 409)
    message = "Saved." if changes else "Saved. Nothing had changed."
    return redirect(_page_path(view, pipedrive, m=message))


@bp.post("/ui/settings/<int:installation_id>/disconnect")
def disconnect_xero(installation_id: int) -> Response:
    """Revoke the grant at Xero and forget the tokens (forgotten even if Xero does not confirm:
    the admin asked)."""
    view = read_action_token(request.form.get("a"), "disconnect", "settings", str(installation_id))
    installation = page_installation(view, installation_id)
    pipedrive = request.form.get("pd") == "1"
    connection = installation.xero_connection
    if connection is None or connection.status == ConnectionStatus.DISCONNECTED:
        return redirect(_page_path(view, pipedrive, m="Xero was not connected."))
    revoked = revoke_grant(connection, forget_on_failure=True, by=view.user)
    db.session.commit()
    message = ("Disconnected from Xero." if revoked else "Disconnected, with a warning: Paydeck "
               "forgot its Xero tokens, but Xero did not confirm the revocation. Remove Paydeck "
               "under Connected apps in Xero's settings to be sure.")
    return redirect(_page_path(view, pipedrive, m=message))


@bp.get("/pipedrive/settings")
def pipedrive_settings() -> Response:
    """Pipedrive's app settings surface (an iframe with `?token=<JWT>`, verified on every load)."""
    installation, user_id = pipedrive_caller()
    allowed, why = may_administer_pipedrive(installation, user_id)
    if not allowed:
        return message_page("Only admins change Paydeck's settings", why, 403)
    return redirect(pipedrive_page_url(settings_view(installation, user_id)))


def _page_path(view: View, pipedrive: bool, **args: str) -> str:
    return url_for("settings.settings_page", installation_id=view.installation_id,
                   t=issue_view_token(view, ttl=FORM_TTL), **({"pd": "1"} if pipedrive else {}), **args)


def _render(view: View, installation: Installation, sources: Sources, form: SettingsForm,
            errors: dict[str, str], *, pipedrive: bool, message: str, status: int = 200) -> Response:
    placed = form.placed_error_keys(sources)
    body = render_template(
        "settings.html", installation=installation, crm_name=crm_name(installation),
        connection=installation.xero_connection, token=issue_view_token(view, ttl=FORM_TTL),
        save_token=issue_action_token(view, "save", ttl=FORM_TTL),
        disconnect_token=issue_action_token(view, "disconnect"),
        # Not single use on the way: /connect/xero shows a confirmation carrying it, and
        # /connect/xero/confirm spends it (app/views/xero_connect.py).
        connect_token=issue_action_token(view, "connect"),
        connection_notices=connection_notices(installation), pipedrive=pipedrive, message=message,
        notices=sources.notices, errors=errors,
        unplaced_errors=[text for key, text in errors.items() if key not in placed],
        unplaced_errors_keys={key for key in errors if key not in placed},
        form=form, sources=sources, connect_url=url_for("xero_connect.start"),
        # The initial contact match: offered while contact sync is on and no match was ever
        # approved (a new one can be run from its page at any time).
        match_url=url_for("contact_match.match_page", installation_id=installation.id,
                          t=issue_view_token(view, ttl=FORM_TTL)),
        match_offered=not ever_approved(installation.id),
        **form.labels(sources))
    return make_response(body, status)
