"""Installing Paydeck into a CRM account (HubSpot portal, Pipedrive company), and uninstalling."""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
from datetime import datetime, timezone

from flask import Blueprint, Response, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.runtime import get_settings
from app.extensions import db
from app.models import AuditEvent, CrmKind, Installation, InstallationSettings, InstallationStatus
from app.oauth import OAuthFailure, authorization_url, consume_state, exchange_code, issue_state, provider
from app.views.common import CallbackWords, authorization_code, message_page, page_url, require_installation
from app.views.common import settings_view, sign_in, signed_in_user
from app.wiring import IDENTIFY
from domain.crm import AccountIdentity
from crm_adapters.base import CrmError

log = logging.getLogger(__name__)
bp = Blueprint("install", __name__)

CRMS = "any(hubspot, pipedrive)"


@bp.get("/")
def home() -> Response:
    """A visitor's first stop: the sandbox console when it runs, else how to install."""
    settings = get_settings()
    if settings.sandbox_url:
        return redirect(settings.sandbox_url)
    return message_page("Paydeck is running", "Install Paydeck from the HubSpot or Pipedrive "
                        "marketplace (or open /install/hubspot or /install/pipedrive), then "
                        "connect Xero from its settings page.")


@bp.get(f"/install/<{CRMS}:crm>")
def start(crm: str) -> Response:
    """Send the browser to the CRM's consent screen (the marketplace 'Install' button lands here)."""
    p = provider(crm, get_settings())  # type: ignore[arg-type]
    if not p.client_id:
        return message_page("Not configured", f"{crm.capitalize()} credentials are not set "
                            "on this Paydeck server.", 503)
    state = issue_state(f"install:{crm}", get_settings().oauth_state_ttl)
    return redirect(authorization_url(p, state))


@bp.get(f"/oauth/<{CRMS}:crm>/callback")
def callback(crm: str) -> Response:
    """The CRM sends the browser back here with a code (or an error) and our state."""
    settings = get_settings()
    state = consume_state(request.args.get("state"), f"install:{crm}")
    code = authorization_code(state is not None, CallbackWords(
        "The install link was already used, is too old, or was started in another browser. "
        "Start the install again.", "Install cancelled", crm.capitalize(), "Nothing was installed.",
        "Install failed", "The CRM sent no authorization code."))
    try:
        token = exchange_code(provider(crm, settings), code, settings.http_timeout)  # type: ignore[arg-type]
        identity = IDENTIFY[crm](settings, token)
    except (OAuthFailure, CrmError) as exc:
        log.warning("install %s failed: %s", crm, exc)
        return message_page("Install failed", f"{crm.capitalize()} refused the authorization "
                            "(it may have expired). Start the install again.", 400)
    installation = _store_installation(CrmKind(crm), identity, token)
    from app.jobs import enqueue_setup_crm

    enqueue_setup_crm(installation.id)
    sign_in(installation)
    return redirect(url_for("install.setup"))


@bp.get("/setup")
def setup() -> Response:
    """Where install and Xero connect end: the signed-in admin's settings page."""
    installation = require_installation()
    return redirect(page_url(settings_view(installation, signed_in_user())))


@bp.delete("/oauth/pipedrive/callback")
def pipedrive_uninstall() -> tuple[str, int]:
    """Pipedrive's uninstall callback: DELETE, JSON body, HTTP Basic with our client credentials.

    Source: pipedrive.readme.io/docs/app-uninstallation.
    """
    settings = get_settings()
    if not settings.pipedrive_client_id or not _basic_auth_matches(
        settings.pipedrive_client_id, settings.pipedrive_client_secret
    ):
        return "unauthorized", 401
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "company_id" not in body:
        return "malformed uninstall body", 400
    installation = db.session.scalar(select(Installation).where(
        Installation.crm == CrmKind.PIPEDRIVE, Installation.account_id == str(body["company_id"])))
    if installation is None:
        log.info("uninstall for unknown Pipedrive company %s", body["company_id"])
        return "", 200
    from app.jobs import enqueue_revoke_xero

    installation.status = InstallationStatus.UNINSTALLED
    installation.uninstalled_at = datetime.now(timezone.utc)
    installation.clear_tokens()
    installation.webhook_user = installation.webhook_password = None
    db.session.add(AuditEvent(installation_id=installation.id, action="uninstalled",
                              outcome="ok", detail={"user_id": body.get("user_id")}))
    db.session.commit()
    # Holding Xero access for a customer who left is a liability: revoke it, off the request.
    enqueue_revoke_xero(installation.id)
    return "", 200


def _new_webhook_credentials(installation: Installation) -> None:
    """A fresh random Basic pair for the installation's Pipedrive webhooks: at first install
    and whenever it comes back after an uninstall (the old pair died with the old webhooks).
    Both parts change, so the setup job can tell its hooks from stale ones by the user alone.
    A re-consent of an active installation keeps its pair: its webhooks keep working."""
    installation.webhook_user = secrets.token_hex(12)
    installation.webhook_password = secrets.token_urlsafe(32)


def _basic_auth_matches(user: str, password: str) -> bool:
    header = request.headers.get("Authorization", "")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return hmac.compare_digest(header.encode(), expected.encode())


def _store_installation(crm: CrmKind, identity: AccountIdentity, token: dict) -> Installation:
    """Create the installation, or update it on a reinstall: never two for one CRM account."""
    now = datetime.now(timezone.utc)
    for _attempt in range(2):
        installation = db.session.scalar(select(Installation).where(
            Installation.crm == crm, Installation.account_id == identity.account_id))
        reinstall = installation is not None
        if installation is None:
            installation = Installation(crm=crm, account_id=identity.account_id)
            db.session.add(installation)
        returning = installation.status != InstallationStatus.ACTIVE
        installation.account_name = identity.account_name
        installation.api_domain = identity.api_domain
        installation.installed_by = identity.user
        installation.status = InstallationStatus.ACTIVE
        installation.uninstalled_at = None
        installation.set_tokens(token, now)
        if crm == CrmKind.PIPEDRIVE and (returning or not installation.webhook_password):
            _new_webhook_credentials(installation)
        try:
            db.session.flush()
        except IntegrityError:  # a concurrent callback for the same account won the insert
            db.session.rollback()
            continue
        if installation.settings is None:
            db.session.add(InstallationSettings(installation_id=installation.id))
        db.session.add(AuditEvent(installation_id=installation.id,
                                  action="reinstalled" if reinstall else "installed",
                                  outcome="ok", detail={"by": identity.user}))
        db.session.commit()
        return installation
    raise RuntimeError(f"could not store installation {crm.value}/{identity.account_id}")
