"""HubSpot's OAuth v1 endpoints and account info (app.hubspot.com and api.hubapi.com on one
root), on the kit's OAuth server."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.hubspot.errors import hubspot_error
from sandbox.hubspot.state import HubSpotInstall
from sandbox.kit.clock import Clock
from sandbox.kit.grants import Grant, InvalidToken, OAuthError, TokenPolicy, TokenProblem
from sandbox.kit.jsonio import json_response
from sandbox.kit.oauth import OAuthFake

_LEGACY_STATUS = {"client_id": "BAD_CLIENT_ID", "client_secret": "BAD_CLIENT_SECRET",
                  "refresh_token": "BAD_REFRESH_TOKEN", "code": "BAD_AUTH_CODE",
                  "redirect_uri": "BAD_REDIRECT_URI", "grant_type": "BAD_GRANT_TYPE"}


class HubSpotOAuth(OAuthFake[HubSpotInstall]):
    """Stateful fake of HubSpot's OAuth v1 endpoints and account info."""

    vendor = "HubSpot"
    authorize_path = "/oauth/authorize"
    token_path = "/oauth/v1/token"
    client_auth = "body"
    token_type = "bearer"  # HubSpot's documented responses use lower case
    # POST /oauth/v1/token, form body only (developers.hubspot.com/docs/api/oauth-quickstart-
    # guide and .../oauth/tokens "Generate initial access and refresh tokens": grant_type,
    # client_id, client_secret, redirect_uri, code; .../oauth/refresh-access-token "Refresh an
    # access token": grant_type, client_id, client_secret, refresh_token). client_id and
    # client_secret are checked by `authenticate_client` (client_auth = "body").
    # Unclear: an older version of the refresh page also lists redirect_uri as required for a
    # refresh; the current one does not, so the fake does not insist on it (Paydeck sends it).
    # oauth-v1.json marks no body field required at all.
    required_fields = {
        "authorization_code": ("code", "redirect_uri"),
        "refresh_token": ("refresh_token",),
    }

    def __init__(self, client_id: str = "paydeck-hubspot-client",
                 client_secret: str = "paydeck-hubspot-secret", *, portal_id: int = 4455667,
                 app_id: int = 3344556, user_id: int = 7654321,
                 user_email: str = "owner@example.com", hub_domain: str | None = None,
                 currency: str = "AUD", time_zone: str = "Australia/Sydney",
                 redirect_uris: Sequence[str] | None = None, interactive: bool = False,
                 code_ttl: float = 300, access_ttl: float = 1800, clock: Clock | None = None,
                 developer_api_key: str = "paydeck-developer-api-key") -> None:
        # HubSpot refresh tokens do not rotate and do not expire while the app is installed.
        policy = TokenPolicy(code_ttl=code_ttl, access_ttl=access_ttl, rotate_refresh_tokens=False)
        super().__init__(client_id, client_secret, policy=policy, redirect_uris=redirect_uris,
                         interactive=interactive, clock=clock)
        self.portal_id, self.app_id, self.user_id = portal_id, app_id, user_id
        self.user_email, self.hub_domain = user_email, hub_domain
        self.currency, self.time_zone = currency, time_zone
        self.developer_api_key = developer_api_key
        self.route("/oauth/v1/access-tokens/<token>", self._access_token_info)
        self.route("/oauth/v1/refresh-tokens/<token>", self._delete_refresh_token,
                   methods=("DELETE",))
        self.route("/account-info/v3/details", self._account_details)
        # The app uninstalling itself (developers.hubspot.com/docs/api-reference/latest/
        # app-management/app-uninstalls/guide): 204, no body; the legacy path is v3.
        for version in ("v3", "2026-03"):
            self.route(f"/appinstalls/{version}/external-install", self._external_uninstall,
                       methods=("DELETE",))

    def install(self, portal_id: int | None = None) -> HubSpotInstall:
        """Who installs the app in `portal_id` (default `self.portal_id`)."""
        hub_id = self.portal_id if portal_id is None else portal_id
        domain = self.hub_domain or f"portal-{hub_id}.example.com"
        return HubSpotInstall(hub_id, domain, self.app_id, self.user_id, self.user_email)

    def uninstall_app(self, portal_id: int | None = None) -> int:
        """A portal admin uninstalls the app in HubSpot (default: `self.portal_id`).

        Every grant of the app in that portal is revoked: refresh tokens then answer 400
        invalid_grant, access tokens 401, and the portal's events stop reaching the app's
        webhooks (they fire only where the app is installed). HubSpot sends the app no
        notification of it (see app/lifecycle.py for what its docs offer). Returns how many
        grants were revoked.
        """
        hub_id = self.portal_id if portal_id is None else portal_id
        with self.lock:
            grants = [g for g in self.store.grants if g.consent.hub_id == hub_id and not g.revoked]
            for grant in grants:
                self._revoke(grant)
        return len(grants)

    # ----- OAuth hooks -------------------------------------------------------

    def make_consent(self) -> HubSpotInstall:
        return self.install()

    def token_extras(self, request: Request, grant: Grant[HubSpotInstall]) -> dict[str, Any]:
        # oauth-v1.json AccessTokenResponse requires token_use; HubSpot lists scopes
        # as an array. hub_id is optional in the spec and deliberately left out:
        # clients must read it from /oauth/v1/access-tokens/{token}.
        return {"token_use": "access_token", "scopes": list(grant.scopes)}

    def error_body(self, err: OAuthError) -> dict[str, Any]:
        # HubSpot's Error shape (oauth-v1.json `Error`: message, correlationId, category) with
        # the legacy `status` code its token endpoint answers in practice, e.g.
        # {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}
        # (HubSpot community "What to do when you suddenly get BAD_REFRESH_TOKEN", nango.dev
        # "HubSpot OAuth BAD_REFRESH_TOKEN"; BAD_CLIENT_ID likewise). Unclear: HubSpot's
        # reference pages list none of these codes; the other BAD_* names are by analogy.
        # The RFC 6749 `error`/`error_description` are kept too (HubSpot "sometimes" sends
        # invalid_grant, per nango.dev); Paydeck reads either.
        category = "INVALID_AUTHENTICATION" if err.status == 401 else "VALIDATION_ERROR"
        legacy = _LEGACY_STATUS.get(err.param or "", "BAD_REQUEST")
        return {"error": err.error, "error_description": err.description,
                "status": legacy if err.status < 500 else "error", "message": err.description,
                "correlationId": str(uuid.uuid4()), "category": category}

    def unauthorized_response(self, problem: TokenProblem) -> Response:
        if problem == "expired":
            return hubspot_error(401, "EXPIRED_AUTHENTICATION",
                                 "The OAuth token used to make this call expired.")
        return hubspot_error(401, "INVALID_AUTHENTICATION",
                             "Authentication credentials not found or invalid.")

    # ----- endpoints ---------------------------------------------------------

    def _access_token_info(self, request: Request, token: str) -> Response:
        with self.lock:
            try:
                access = self.store.access_token(token)
            except InvalidToken as exc:
                if exc.problem == "expired":
                    return hubspot_error(401, "EXPIRED_AUTHENTICATION", "The access token has expired.")
                return hubspot_error(404, "OBJECT_NOT_FOUND", "The access token was not found.")
            remaining = math.ceil(access.expires_at - self.clock.now())
        install = access.grant.consent
        return json_response({
            "token": access.value, "user": install.user_email, "hub_domain": install.hub_domain,
            "scopes": list(access.grant.scopes), "hub_id": install.hub_id,
            "app_id": install.app_id, "expires_in": remaining, "user_id": install.user_id,
            "token_type": "access",
        })

    def _delete_refresh_token(self, request: Request, token: str) -> Response:
        """Uninstall the app from the portal: the refresh token's grant is revoked."""
        with self.lock:
            grant = self.store.grant_of_refresh_token(token)
            if grant is None or grant.revoked:
                return hubspot_error(404, "OBJECT_NOT_FOUND", "The refresh token was not found.")
            self._revoke(grant)
        return Response(status=204)

    def _external_uninstall(self, request: Request) -> Response:
        """DELETE /appinstalls/.../external-install: uninstall from the token's portal."""
        self.uninstall_app(self.require_bearer(request).grant.consent.hub_id)
        return Response(status=204)

    def _account_details(self, request: Request) -> Response:
        install = self.require_bearer(request).grant.consent
        return json_response({
            "portalId": install.hub_id, "accountType": "STANDARD", "timeZone": self.time_zone,
            "companyCurrency": self.currency, "additionalCurrencies": [],
            "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1",
        })
