"""Fake HubSpot OAuth server (app.hubspot.com and api.hubapi.com on one root).

A later CRM API module (deals, line items...) adds endpoints with
``fake.route(rule, handler, methods)`` and authenticates them with
``fake.require_bearer(request)``; the portal of a token is
``access.grant.consent.hub_id``.

The CRM API and webhook delivery (sandbox/hubspot_crm.py) are installed on every
FakeHubSpot. Their test helpers are exposed here: `crm` / `crm_for()` (seeding),
`issue_token()`, `crm_calls`, `count_crm_calls()`, `inject_crm()`, `crm_rate_limits`,
`subscribe()`, `deliver()`, `auto_deliver`, `webhooks`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from werkzeug.wrappers import Request, Response

from sandbox.kit.clock import Clock
from sandbox.kit.grants import Grant, InvalidToken, OAuthError, TokenPolicy, TokenProblem
from sandbox.hubspot_crm import (
    SANDBOX_CRM_SCOPES,
    CrmCall,
    CrmFault,
    CrmFaultKind,
    CrmRateLimits,
    DeliveryResult,
    HubSpotCrmApi,
    PortalCrm,
    WebhookApp,
    WebhookHub,
    signature_v3,
    signed_uri,
)
from sandbox.kit.oauth import OAuthFake
from sandbox.kit.jsonio import json_response

_DIRECT_GRANT_REDIRECT = "urn:paydeck:sandbox:direct-grant"


@dataclass(frozen=True)
class HubSpotInstall:
    """Who installed the app, captured at consent."""

    hub_id: int
    hub_domain: str
    app_id: int
    user_id: int
    user_email: str


def hubspot_error(status: int, category: str, message: str, **extra: Any) -> Response:
    """HubSpot's error document (oauth-v1.json `Error`: category, correlationId, message)."""
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    return json_response({**body, **extra}, status=status)


_LEGACY_STATUS = {
    "client_id": "BAD_CLIENT_ID",
    "client_secret": "BAD_CLIENT_SECRET",
    "refresh_token": "BAD_REFRESH_TOKEN",
    "code": "BAD_AUTH_CODE",
    "redirect_uri": "BAD_REDIRECT_URI",
    "grant_type": "BAD_GRANT_TYPE",
}


class FakeHubSpot(OAuthFake[HubSpotInstall]):
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

    def __init__(
        self,
        client_id: str = "paydeck-hubspot-client",
        client_secret: str = "paydeck-hubspot-secret",
        *,
        portal_id: int = 4455667,
        app_id: int = 3344556,
        user_id: int = 7654321,
        user_email: str = "owner@example.com",
        hub_domain: str | None = None,
        currency: str = "AUD",
        time_zone: str = "Australia/Sydney",
        redirect_uris: Sequence[str] | None = None,
        interactive: bool = False,
        code_ttl: float = 300,
        access_ttl: float = 1800,
        clock: Clock | None = None,
        crm_rate_limits: CrmRateLimits | None = None,
        developer_api_key: str = "paydeck-developer-api-key",
    ) -> None:
        # HubSpot refresh tokens do not rotate and do not expire while the app is installed.
        policy = TokenPolicy(code_ttl=code_ttl, access_ttl=access_ttl, rotate_refresh_tokens=False)
        super().__init__(
            client_id,
            client_secret,
            policy=policy,
            redirect_uris=redirect_uris,
            interactive=interactive,
            clock=clock,
        )
        self.portal_id = portal_id
        self.app_id = app_id
        self.user_id = user_id
        self.user_email = user_email
        self.hub_domain = hub_domain
        self.currency = currency
        self.time_zone = time_zone
        self.route("/oauth/v1/access-tokens/<token>", self._access_token_info)
        self.route(
            "/oauth/v1/refresh-tokens/<token>", self._delete_refresh_token, methods=("DELETE",)
        )
        self.route("/account-info/v3/details", self._account_details)
        # The app uninstalling itself (developers.hubspot.com/docs/api-reference/latest/
        # app-management/app-uninstalls/guide): 204, no body; the legacy path is v3.
        for version in ("v3", "2026-03"):
            self.route(f"/appinstalls/{version}/external-install", self._external_uninstall,
                       methods=("DELETE",))
        self.developer_api_key = developer_api_key
        self.crm_api = HubSpotCrmApi(self, limits=crm_rate_limits)

    # ----- CRM API helpers (sandbox/hubspot_crm.py) ----------------------------

    @property
    def crm(self) -> PortalCrm:
        """The CRM of portal `portal_id` (the default portal) for seeding and assertions."""
        return self.crm_api.portal(self.portal_id)

    def crm_for(self, portal_id: int) -> PortalCrm:
        return self.crm_api.portal(portal_id)

    def issue_token(
        self, portal_id: int | None = None, scopes: Sequence[str] = SANDBOX_CRM_SCOPES
    ) -> str:
        """A live access token for `portal_id` (default `self.portal_id`), no browser dance.

        Creates a grant (the app is then installed in that portal, so its webhooks fire).
        """
        with self.lock:
            hub_id = self.portal_id if portal_id is None else portal_id
            domain = self.hub_domain or f"portal-{hub_id}.example.com"
            consent = HubSpotInstall(hub_id, domain, self.app_id, self.user_id, self.user_email)
            code = self.store.issue_code(
                self.client_id, _DIRECT_GRANT_REDIRECT, tuple(scopes), consent
            )
            grant = self.store.redeem_code(code, self.client_id, _DIRECT_GRANT_REDIRECT, None)
            access, _ = self.store.issue_tokens(grant)
            return access.value

    @property
    def crm_calls(self) -> list[CrmCall]:
        """Every CRM API call, oldest first (see `CrmCall`)."""
        return self.crm_api.calls

    def count_crm_calls(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
        portal_id: int | None = None,
    ) -> int:
        return self.crm_api.count_calls(method, path_prefix, status, portal_id)

    def clear_crm_calls(self) -> None:
        self.crm_api.clear_calls()

    def inject_crm(
        self,
        kind: CrmFaultKind,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int | None = 1,
        status: int | None = None,
        delay: float | None = None,
        *,
        portal_id: int | None = None,
        policy_name: str = "TEN_SECONDLY_ROLLING",
    ) -> CrmFault:
        """Make the next `times` matching CRM calls fail (None: until cleared).

        kind: "5xx" (answer `status`, default 500, without doing anything), "429"
        (HubSpot's rate-limit answer with `policy_name`), "slow" (sleep `delay` real
        seconds, then proceed). `path_prefix` is a full path prefix, e.g.
        "/crm/v3/objects/deals/batch".
        """
        fault = CrmFault(
            kind, method, path_prefix, portal_id, times, status, delay, policy_name
        )
        return self.crm_api.inject(fault)

    def clear_crm_faults(self) -> None:
        with self.lock:
            self.crm_api.faults.clear()

    @property
    def crm_rate_limits(self) -> CrmRateLimits:
        """The live limits; assign fields (``fake.crm_rate_limits.per_window = 5``) to tune."""
        return self.crm_api.limiter.limits

    def reset_crm_rate_limits(self) -> None:
        with self.lock:
            self.crm_api.limiter.reset()

    # ----- uninstall ---------------------------------------------------------

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
            grants = [g for g in self.store.grants
                      if g.consent.hub_id == hub_id and not g.revoked]
            for grant in grants:
                self._revoke(grant)
        return len(grants)

    # ----- webhooks (sandbox/hubspot_crm.py WebhookHub) --------------------------

    @property
    def webhooks(self) -> WebhookHub:
        """Queue, delivery log and knobs (retry_delays, timeout, max_attempts, max_batch)."""
        return self.crm_api.webhooks

    def subscribe(
        self,
        target_url: str,
        client_secret: str | None = None,
        subscriptions: Iterable[str] = ("deal.propertyChange:dealstage", "deal.creation"),
        app_id: int | None = None,
        *,
        active: bool = True,
    ) -> WebhookApp:
        """Set an app's webhook target URL and add subscriptions like
        "deal.propertyChange:dealstage" or "deal.creation" (default app: this fake's,
        signing with its client secret)."""
        return self.webhooks.subscribe(
            self.app_id if app_id is None else app_id,
            target_url,
            self.client_secret if client_secret is None else client_secret,
            subscriptions,
            active=active,
        )

    def deliver(self, *, force: bool = False, duplicate: bool = False) -> list[DeliveryResult]:
        """POST the due webhook events now; see `WebhookHub.deliver`."""
        return self.webhooks.deliver(force=force, duplicate=duplicate)

    # ----- app cards (UI extensions) -----------------------------------------

    def card_fetch(
        self, url: str, params: Mapping[str, str] | None = None, *, user_email: str | None = None,
        timeout: float = 15.0,
    ) -> requests.Response:
        """What an app card's `hubspot.fetch(url)` does: HubSpot adds the viewing user's and
        portal's ids to the query and signs the GET with the app's client secret (v3)."""
        query = {**(params or {}), "userId": str(self.user_id),
                 "userEmail": user_email or self.user_email, "appId": str(self.app_id),
                 "portalId": str(self.portal_id)}
        full = f"{url}?{urlencode(query)}"
        timestamp = str(int(self.now() * 1000))
        signature = signature_v3(self.client_secret, "GET", signed_uri(full), b"", timestamp)
        return requests.get(full, timeout=min(timeout, 15.0), headers={
            "X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp})

    @property
    def auto_deliver(self) -> bool:
        return self.webhooks.auto_deliver

    @auto_deliver.setter
    def auto_deliver(self, enabled: bool) -> None:
        self.webhooks.auto_deliver = enabled

    # ----- OAuth hooks -------------------------------------------------------

    def make_consent(self) -> HubSpotInstall:
        domain = self.hub_domain or f"portal-{self.portal_id}.example.com"
        return HubSpotInstall(self.portal_id, domain, self.app_id, self.user_id, self.user_email)

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
        return {
            "error": err.error,
            "error_description": err.description,
            "status": _LEGACY_STATUS.get(err.param or "", "BAD_REQUEST")
            if err.status < 500 else "error",
            "message": err.description,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        }

    def unauthorized_response(self, problem: TokenProblem) -> Response:
        if problem == "expired":
            return hubspot_error(
                401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired."
            )
        return hubspot_error(
            401, "INVALID_AUTHENTICATION", "Authentication credentials not found or invalid."
        )

    # ----- endpoints ---------------------------------------------------------

    def _access_token_info(self, request: Request, token: str) -> Response:
        with self.lock:
            try:
                access = self.store.access_token(token)
            except InvalidToken as exc:
                if exc.problem == "expired":
                    return hubspot_error(
                        401, "EXPIRED_AUTHENTICATION", "The access token has expired."
                    )
                return hubspot_error(404, "OBJECT_NOT_FOUND", "The access token was not found.")
            remaining = math.ceil(access.expires_at - self.clock.now())
        install = access.grant.consent
        return json_response(
            {
                "token": access.value,
                "user": install.user_email,
                "hub_domain": install.hub_domain,
                "scopes": list(access.grant.scopes),
                "hub_id": install.hub_id,
                "app_id": install.app_id,
                "expires_in": remaining,
                "user_id": install.user_id,
                "token_type": "access",
            }
        )

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
        portal = self.require_bearer(request).grant.consent.hub_id
        self.uninstall_app(portal)
        return Response(status=204)

    def _account_details(self, request: Request) -> Response:
        install = self.require_bearer(request).grant.consent
        return json_response(
            {
                "portalId": install.hub_id,
                "accountType": "STANDARD",
                "timeZone": self.time_zone,
                "companyCurrency": self.currency,
                "additionalCurrencies": [],
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )
