"""Fake Pipedrive: the OAuth server (oauth.pipedrive.com) and, as ``fake.api``, the company
API (api.py: API v2 records, app webhooks with v2 payloads, token-based limits) on one root.

Seeding helpers are on ``fake.api`` (``fake.api.add_deal(...)``); the test knobs here:
`api_calls`, `count_api_calls()`, `inject_api()`, `rate_limits`, `deliver()`,
`auto_deliver`, `webhooks`, `webhook_deliveries`, `dropped_webhook_events`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from werkzeug.wrappers import Request, Response

from sandbox.kit.clock import Clock
from sandbox.kit.faults import Fault
from sandbox.kit.grants import Grant, OAuthError, TokenPolicy, TokenProblem
from sandbox.kit.jsonio import json_response
from sandbox.kit.oauth import OAuthFake
from sandbox.pipedrive.api import ApiCall, FaultKind, PipedriveApi, RateLimits
from sandbox.pipedrive.parse import ERROR_INFO
from sandbox.pipedrive.records import DEFAULT_CURRENCY, Shape
from sandbox.pipedrive.webhooks import WEBHOOK_TIMEOUT_S, DeliveryResult, DroppedEvent, Webhook

DEFAULT_SCOPES = ("base", "deals:full", "contacts:read", "products:read", "admin")
# GET /v1/users/me: the installing user, as the consent captured them.
USER_ME = Shape(
    "id=user_id name=user_name email=user_email company_id company_name company_domain", "",
    {"default_currency": DEFAULT_CURRENCY, "locale": "en_AU", "lang": 1,
     "timezone_name": "Australia/Sydney", "active_flag": True, "is_admin": 1, "is_you": True},
)


def _forward(path: str) -> Any:
    """A property that reads (and sets) ``self.<path>``, e.g. ``api.webhooks.auto``."""
    *owner, name = path.split(".")

    def target(self: Any) -> Any:
        return functools.reduce(getattr, owner, self)

    return property(lambda self: getattr(target(self), name),
                    lambda self, value: setattr(target(self), name, value))


@dataclass(frozen=True)
class PipedriveInstall:
    """The user and company that installed the app, captured at consent (defaults: the
    fake's own install)."""

    user_id: int = 11223344
    user_name: str = "Pat Owner"
    user_email: str = "pat@acme.example"
    company_id: int = 7788990
    company_name: str = "Acme Pty Ltd"
    company_domain: str = "acme"


class FakePipedrive(OAuthFake[PipedriveInstall]):
    """Stateful fake of Pipedrive's OAuth server, /users/me and the uninstall callback."""

    vendor = "Pipedrive"
    authorize_path = "/oauth/authorize"
    token_path = "/oauth/token"
    revocation_path = "/oauth/revoke"
    client_auth = "basic"
    # POST https://oauth.pipedrive.com/oauth/token with HTTP Basic client_id:client_secret
    # (pipedrive.readme.io/docs/marketplace-oauth-authorization, "Step 5: Getting the tokens":
    # form grant_type=authorization_code, code, redirect_uri; "Refreshing the tokens":
    # grant_type=refresh_token, refresh_token): the kit's default `required_fields`.
    # pipedrive.readme.io/docs/marketplace-oauth-and-api-proxy-status-codes lists every
    # /oauth/token refusal under 400 Bad Request, "Invalid client: ..." included.
    invalid_client_status = 400

    def __init__(self, client_id: str = "paydeck-pipedrive-client",
                 client_secret: str = "paydeck-pipedrive-client-secret-0123456789", *,
                 scopes: Sequence[str] = DEFAULT_SCOPES, redirect_uris: Sequence[str] | None = None,
                 interactive: bool = False, code_ttl: float = 300, access_ttl: float = 1800,
                 clock: Clock | None = None, http_timeout: float = 10.0,
                 rate_limits: RateLimits | None = None,
                 webhook_timeout: float = WEBHOOK_TIMEOUT_S, **install: Any) -> None:
        """`install`: who installs the app, as `PipedriveInstall` fields (company_id=...);
        tests may change them on the fake later."""
        policy = TokenPolicy(code_ttl=code_ttl, access_ttl=access_ttl, rotate_refresh_tokens=True)
        super().__init__(client_id, client_secret, policy=policy, redirect_uris=redirect_uris,
                         interactive=interactive, clock=clock)
        (self.user_id, self.user_name, self.user_email, self.company_id, self.company_name,
         self.company_domain) = astuple(PipedriveInstall(**install))
        self.scopes = tuple(scopes)
        self.http_timeout = http_timeout
        self.route(self.revocation_path, self.revocation_endpoint, methods=("POST",))
        self.route("/api/v1/users/me", self._users_me)
        self.api = PipedriveApi(self, limits=rate_limits, webhook_timeout=webhook_timeout)

    # Every company API call, oldest first, with the tokens each cost.
    api_calls: list[ApiCall] = _forward("api.calls")
    # The live limits; assign fields to tune them.
    rate_limits: RateLimits = _forward("api.limiter.limits")
    # Deliver webhooks in a background thread right after each change.
    auto_deliver: bool = _forward("api.webhooks.auto")
    webhooks: list[Webhook] = _forward("api.webhooks.hooks")
    webhook_deliveries: list[DeliveryResult] = _forward("api.webhooks.results")
    dropped_webhook_events: list[DroppedEvent] = _forward("api.webhooks.dropped_events")

    def count_api_calls(self, method: str | None = None, path_prefix: str | None = None,
                        status: int | None = None, company_id: int | None = None) -> int:
        """Matching calls; `path_prefix` may omit ``/api/v2`` (``"/deals"``)."""
        return self.api.count_calls(method, path_prefix, status, company_id)

    def inject_api(self, kind: FaultKind, method: str | None = None,
                   path_prefix: str | None = None, times: int | None = 1,
                   status: int | None = None, delay: float | None = None,
                   company_id: int | None = None) -> Fault:
        """Make the next `times` matching API calls fail (None: until cleared).

        kind: "5xx" (answer `status`, default 500, without doing anything; tokens are
        charged), "429" (as if the burst limit were hit; nothing charged), "slow"
        (sleep `delay` real seconds, then proceed).
        """
        fault = Fault(kind, method, path_prefix, scope=company_id, remaining=times,
                      status=status, delay=delay)
        return self.api.inject(fault)

    def clear_api_faults(self) -> None:
        with self.lock:
            self.api.faults.clear()

    def deliver(self) -> list[DeliveryResult]:
        """Send the webhook deliveries due now (fake clock); one result per POST."""
        return self.api.webhooks.deliver()

    def panel_url(self, url: str, resource: str, selected_id: int | str, *,
                  jwt_secret: str | None = None, ttl: int = 300, user_id: int | None = None) -> str:
        """The URL Pipedrive loads in a custom panel's iframe: our page with `token` (a JWT
        signed HS256 with the extension's secret - the client secret unless set) and the
        viewing user's (default: the installing user's), company's and record's ids
        (custom-ui-extensions)."""
        now = int(self.now())
        user_id = self.user_id if user_id is None else user_id
        claims = {"userId": user_id, "companyId": self.company_id, "iat": now, "exp": now + ttl}
        token = jwt.encode(claims, jwt_secret or self.client_secret, algorithm="HS256")
        return f"{url}?" + urlencode({
            "token": token, "id": str(selected_id), "selectedIds": str(selected_id),
            "userId": str(user_id), "companyId": str(self.company_id),
            "resource": resource, "view": "details"})

    def make_consent(self) -> PipedriveInstall:
        return PipedriveInstall(**{f.name: getattr(self, f.name) for f in fields(PipedriveInstall)})

    def granted_scopes(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        # Pipedrive ignores any scope parameter: scopes are set on the app in Developer Hub.
        return self.scopes

    def token_extras(self, request: Request, grant: Grant[PipedriveInstall]) -> dict[str, Any]:
        # Real api_domain is https://<company>.pipedrive.com; here it is this fake's root.
        return {"scope": ",".join(grant.scopes), "api_domain": request.host_url.rstrip("/")}

    def missing_field_error(self, name: str) -> OAuthError:
        # The status-codes page above: "Missing parameter: grant_type"; "Invalid request:
        # redirect_uri is not a valid URI" (missing or not a URI). Unclear: it names no message
        # for a missing code or refresh_token; RFC 6749's invalid_request is used for those.
        words = ("Invalid request: redirect_uri is not a valid URI" if name == "redirect_uri"
                 else f"Missing parameter: {name}")
        return OAuthError("invalid_request", words, param=name)

    def client_error(self, description: str, param: str) -> OAuthError:
        # The status-codes page above: "Invalid client: cannot retrieve client credentials"
        # (client_id or client_secret not sent) / "Invalid client: client is invalid".
        words = ("Invalid client: cannot retrieve client credentials" if "missing" in description
                 else "Invalid client: client is invalid")
        return OAuthError("invalid_client", words, self.invalid_client_status, param=param)

    def error_body(self, err: OAuthError) -> dict[str, Any]:
        return {"success": False, "error": err.error, "error_description": err.description,
                "message": err.description}

    def unauthorized_response(self, problem: TokenProblem) -> Response:
        body = {"success": False, "error": "unauthorized access", "errorCode": 401,
                "error_info": ERROR_INFO}
        return json_response(body, status=401)

    def send_uninstall(self, callback_url: str, client_secret: str | None = None, *,
                       company_id: int | None = None, user_id: int | None = None,
                       revoke_tokens: bool = True, remove_webhooks: bool = True
                       ) -> requests.Response:
        """Uninstall the app as Pipedrive does: ``DELETE callback_url`` with JSON ``{client_id,
        company_id, user_id, timestamp}`` and HTTP Basic ``client_id:client_secret`` (pass
        `client_secret` to send wrong ones). Company and user default to the fake's current
        ones. With `revoke_tokens` their grants are revoked first (an uninstall invalidates
        the app's tokens); with `remove_webhooks` the app's webhooks that user made in that
        company are deleted (webhooks-for-apps)."""
        company = self.company_id if company_id is None else company_id
        user = self.user_id if user_id is None else user_id
        with self.lock:
            mine = [g for g in self.store.grants
                    if (g.consent.company_id, g.consent.user_id) == (company, user)]
            for grant in mine if revoke_tokens else []:
                self._revoke(grant)
            hooks = self.api.webhooks.hooks_of(company, self.client_id) if remove_webhooks else []
            for hook in [h for h in hooks if h.user_id == user]:
                self.api.webhooks.remove(hook.id)
        # The timestamp format is not documented (platform-facts: unverified); ISO 8601 UTC.
        stamp = datetime.fromtimestamp(self.clock.now(), tz=UTC).isoformat(timespec="milliseconds")
        body: dict[str, str | int] = {"client_id": self.client_id, "company_id": company,
                                      "user_id": user, "timestamp": stamp.replace("+00:00", "Z")}
        secret = self.client_secret if client_secret is None else client_secret
        return requests.delete(callback_url, json=body, auth=(self.client_id, secret),
                               timeout=self.http_timeout)

    def _users_me(self, request: Request) -> Response:
        install = self.require_bearer(request).grant.consent
        return json_response({"success": True, "data": USER_ME.render(install)})
