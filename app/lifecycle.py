"""Noticing that a CRM account has let Paydeck go, where the CRM does not say so.

Pipedrive calls our uninstall callback (app/views/install.py). HubSpot does not: what its
documentation offers (checked 2026-12) is
- push webhooks of a project app (webhooks-hsmeta.json, developers.hubspot.com/docs/apps/
  developer-platform/add-features/configure-webhooks): subscriptions `crmObjects`,
  `legacyCrmObjects`, `hubEvents` - no app install or uninstall event;
- the webhooks journal API (developers.hubspot.com/docs/api-reference/latest/webhooks-journal/
  guide): subscriptions of type APP_LIFECYCLE_EVENT with actions APP_INSTALL / APP_UNINSTALL,
  but written to a journal the app polls with a client-credentials token (and reads as files
  from presigned URLs) - not a push, and its entry format is not documented where we could
  read it, so Paydeck does not consume it yet;
- DELETE /appinstalls/2026-03/external-install: the app uninstalling itself.
An uninstall revokes the app's tokens at once (the refresh token answers 400
BAD_REFRESH_TOKEN / invalid_grant, API calls 401). So Paydeck detects it from the tokens:
- a refused refresh: app/tokens.py marks the installation RECONNECT_NEEDED;
- a 401 on an API call while our access token had not expired: `confirm_crm_grant` refreshes
  once, now, to tell a revoked grant from a passing fault.
RECONNECT_NEEDED, not UNINSTALLED: a dead token cannot tell an uninstall from a revoked grant.
Either way every job then leaves the installation alone (they serve ACTIVE installations only),
the admin gets a review item (and an email) saying how to come back, and a reinstall makes it
ACTIVE again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from app.extensions import db
from app.models import Installation, InstallationStatus
from app.tokens import ReconnectNeeded, TokenUnavailable, access_token

log = logging.getLogger(__name__)


def confirm_crm_grant(installation_id: int) -> bool:
    """After the CRM refused our access token: is the installation's grant still alive?

    Expires the stored access token and asks for a fresh one - exactly one refresh, under the
    token code's lock. False when the refresh was refused (the installation is then marked
    RECONNECT_NEEDED by app/tokens.py) or it is already not active; True when the grant still
    works or the CRM cannot be asked right now (the next job asks again).
    """
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return False
    installation.token_expires_at = datetime.now(timezone.utc)  # makes the next use refresh
    db.session.commit()
    try:
        access_token(Installation, installation_id)
    except ReconnectNeeded as exc:
        log.warning("installation %s: the CRM grant is gone (%s)", installation_id, exc)
        db.session.expire_all()  # tokens.py wrote the new status in its own session
        return False
    except TokenUnavailable as exc:
        log.info("installation %s: could not confirm the CRM grant now: %s", installation_id, exc)
        return True
    return True
