"""`FakeXero`: Xero's identity service (OAuth 2, tenants, /connections) and its Accounting API.

Real hosts login.xero.com, identity.xero.com and api.xero.com all map onto this app's root.
Xero's routing ignores case (xero-python calls ``/Connections``; the docs say
``/connections``), so this app does too. Installers passed as ``extensions=`` may add
endpoints (``fake.route``, ``fake.connected_tenant``, ``fake.lock``) before the Accounting API
(sandbox/xero/api.py) is installed, so their routes win; its test helpers are exposed here.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import jwt
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Request, Response

from sandbox.kit.clock import Clock
from sandbox.kit.faults import Fault
from sandbox.kit.grants import AccessToken, Grant, TokenPolicy, TokenProblem
from sandbox.kit.jsonio import json_response
from sandbox.kit.oauth import OAuthFake
from sandbox.kit.state import ScopedState
from sandbox.xero.api import DEFAULT_IDEMPOTENCY_TTL_S, ApiCall, XeroAccountingApi
from sandbox.xero.books import TenantBooks
from sandbox.xero.limits import RateLimitProblem, RateLimits
from sandbox.xero.regions import region_setup, zone_of
from sandbox.xero.webhooks import XeroWebhookSender
from sandbox.xero.wire import identity_problem, xero_utc

REFRESH_GRACE_S = 30 * 60  # platform-facts.md: old refresh token works 30 min after rotation
REFRESH_IDLE_TTL_S = 60 * 24 * 3600  # refresh tokens expire after 60 days unused
PAYDECK_SCOPES = (  # platform-facts: granular scopes for apps created after 2026-03-02
    "offline_access", "accounting.invoices", "accounting.payments", "accounting.contacts",
    "accounting.settings.read",
)
_DIRECT_GRANT_REDIRECT = "urn:paydeck:sandbox:direct-grant"
IDENTITY_ISSUER = "https://identity.xero.com"


@dataclass(frozen=True)
class XeroConsent:
    user_id: str
    auth_event_id: str


@dataclass(frozen=True)
class Tenant:
    """`region`: the starting books (sandbox/xero/regions.py); `timezone`: an
    Organisation.Timezone override (a Windows-style Xero name), None for the region's."""

    tenant_id: str
    name: str
    tenant_type: str = "ORGANISATION"
    region: str = "AU"
    timezone: str | None = None


@dataclass(frozen=True)
class Connection:
    connection_id: str
    tenant_id: str
    user_id: str
    auth_event_id: str
    created_at: float
    updated_at: float


class FakeXero(OAuthFake[XeroConsent]):
    """Stateful fake of Xero's OAuth 2 server and connections API."""

    vendor = "Xero"
    case_insensitive_paths = True  # see the module docstring
    authorize_path = "/identity/connect/authorize"
    token_path = "/connect/token"
    revocation_path = "/connect/revocation"
    client_auth = "basic"
    # POST https://identity.xero.com/connect/token with "authorization: Basic
    # base64(client_id:client_secret)" (developer.xero.com/documentation/guides/oauth2/auth-flow,
    # "3. Exchange the code": form grant_type=authorization_code, code, redirect_uri;
    # "Refreshing access tokens": grant_type=refresh_token, refresh_token: the kit's default
    # `required_fields`); errors are RFC 6749 5.2 JSON, e.g. {"error": "invalid_grant"}.
    # Unclear: the guide shows only Basic client authentication, so the fake refuses
    # credentials sent in the body.

    def __init__(self, client_id: str = "paydeck-xero-client",
                 client_secret: str = "paydeck-xero-secret", *,
                 redirect_uris: Sequence[str] | None = None, interactive: bool = False,
                 code_ttl: float = 300, access_ttl: float = 1800, clock: Clock | None = None,
                 user_id: str | None = None, extensions: Iterable[Callable[[FakeXero], None]] = (),
                 rate_limits: RateLimits | None = None,
                 idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL_S) -> None:
        policy = TokenPolicy(code_ttl=code_ttl, access_ttl=access_ttl, rotate_refresh_tokens=True,
                             refresh_grace=REFRESH_GRACE_S, refresh_idle_ttl=REFRESH_IDLE_TTL_S,
                             offline_scope="offline_access")
        super().__init__(client_id, client_secret, policy=policy, redirect_uris=redirect_uris,
                         interactive=interactive, clock=clock)
        self.user_id = user_id or str(uuid.uuid4())
        # Xero signs its access tokens (RS256, keys at /.well-known/openid-configuration/jwks);
        # the fake signs HS256 with a key of its own: nobody outside the fake verifies them.
        self.token_signing_key = secrets.token_urlsafe(32)
        self.store.mint_access = self._mint_access_token
        self._tenants: dict[str, Tenant] = {}
        self._consent_tenants: list[str] | None = None
        self._connections: dict[str, Connection] = {}
        self._books: ScopedState[str, TenantBooks] = ScopedState(self.lock, self._new_books)
        self.webhooks = XeroWebhookSender(  # sandbox/xero/webhooks.py
            lambda: [self.accounting(tenant.tenant_id) for tenant in self.tenants])
        self.route(self.revocation_path, self.revocation_endpoint, methods=("POST",))
        self.route("/connections", self._list_connections)
        self.route("/connections/<connection_id>", self._delete_connection, methods=("DELETE",))
        for install in extensions:
            install(self)
        self.accounting_api = XeroAccountingApi(self, self.clock, self.tenant_of, self.accounting,
                                                limits=rate_limits, idempotency_ttl=idempotency_ttl)

    # ----- tenants and connections -------------------------------------------

    def add_tenant(self, name: str, tenant_id: str | None = None, *, region: str = "AU",
                   timezone: str | None = None) -> str:
        """A Xero organisation seeded as a new one in `region` ("AU", "NZ", "UK", "US"),
        optionally in another `timezone` (e.g. "WAUSTRALIASTANDARDTIME" for Perth)."""
        region_setup(region)  # ValueError now, not at the first API call
        if timezone is not None:
            zone_of(timezone)
        tenant = Tenant(tenant_id or str(uuid.uuid4()), name, region=region, timezone=timezone)
        with self.lock:
            if tenant.tenant_id in self._tenants:
                raise ValueError(f"tenant {tenant.tenant_id} already exists")
            self._tenants[tenant.tenant_id] = tenant
        return tenant.tenant_id

    @property
    def tenants(self) -> list[Tenant]:
        with self.lock:
            return list(self._tenants.values())

    @property
    def consent_tenants(self) -> list[str] | None:
        """Tenant ids the next consents authorise; None means every tenant."""
        with self.lock:
            return None if self._consent_tenants is None else list(self._consent_tenants)

    @consent_tenants.setter
    def consent_tenants(self, tenant_ids: Sequence[str] | None) -> None:
        with self.lock:
            unknown = set(tenant_ids or ()) - set(self._tenants)
            if unknown:
                raise ValueError(f"unknown tenant ids: {sorted(unknown)}")
            self._consent_tenants = None if tenant_ids is None else list(tenant_ids)

    @property
    def connections(self) -> list[Connection]:
        with self.lock:
            return list(self._connections.values())

    def connected_tenant(self, request: Request) -> tuple[AccessToken[XeroConsent], Tenant]:
        """Bearer check (401) plus the `xero-tenant-id` header every accounting call needs:
        403 when it names a tenant the token's user has no connection to (as Xero does)."""
        access = self.require_bearer(request)
        tenant_id = request.headers.get("xero-tenant-id", "")
        with self.lock:
            for conn in self._user_connections(access):
                if conn.tenant_id.lower() == tenant_id.lower():
                    return access, self._tenants[conn.tenant_id]
        raise Forbidden(response=identity_problem(403, "Forbidden", "AuthenticationUnsuccessful"))

    def tenant_of(self, request: Request) -> str:
        """The tenant id of an authenticated accounting call (see `connected_tenant`)."""
        return self.connected_tenant(request)[1].tenant_id

    def issue_token_for_tenant(self, tenant_id: str, scopes: Sequence[str] = PAYDECK_SCOPES) -> str:
        """A live access token connected to `tenant_id`, without the browser dance: a grant
        (as a code exchange makes) and the user's connection to the tenant."""
        with self.lock:
            if tenant_id not in self._tenants:
                raise ValueError(f"unknown tenant {tenant_id}")
            consent = XeroConsent(self.user_id, str(uuid.uuid4()))
            self._connect(consent, tenant_id)
            code = self.store.issue_code(self.client_id, _DIRECT_GRANT_REDIRECT, tuple(scopes),
                                         consent)
            grant = self.store.redeem_code(code, self.client_id, _DIRECT_GRANT_REDIRECT, None)
            access, _ = self.store.issue_tokens(grant)
            return access.value

    # ----- accounting API helpers (sandbox/xero/api.py) -----------------------

    def accounting(self, tenant_id: str) -> TenantBooks:
        """The tenant's books (seeded for its region on first use), for seeding and assertions."""
        return self._books[tenant_id]

    def _new_books(self, tenant_id: str) -> TenantBooks:
        if tenant_id not in self._tenants:
            raise KeyError(f"unknown tenant {tenant_id}")
        tenant = self._tenants[tenant_id]
        return TenantBooks(tenant_id, tenant.name, self.lock, self.clock, region=tenant.region,
                           timezone=tenant.timezone)

    def enable_currency(self, tenant_id: str, code: str) -> None:
        self.accounting(tenant_id).enable_currency(code)

    def inject(self, kind: str, *, method: str | None = None, path_prefix: str | None = None,
               times: int | None = 1, status: int | None = None, delay: float | None = None,
               problem: RateLimitProblem = "minute", retry_after: int | None = None,
               tenant_id: str | None = None, skip: int = 0) -> Fault:
        """Make the next `times` matching accounting calls fail (None: until cleared), after
        letting `skip` through. kind: "5xx" (answer `status`, default 500, doing nothing),
        "429" (the `problem` limit, `retry_after`), "slow" (sleep `delay` real seconds, then
        proceed), "lost_response" (do the call, drop the connection), "short_answer" (do the
        call, leave the batch answer's last element out). `path_prefix`: "/Invoices" or
        "/api.xro/2.0/Invoices", any case."""
        fault = Fault(kind, method, path_prefix, tenant_id, times, status, delay, problem,
                      retry_after, skip)
        return self.accounting_api.inject(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.accounting_api.faults.clear()

    @property
    def api_calls(self) -> list[ApiCall]:
        """Every accounting API call, oldest first (see `ApiCall`)."""
        return self.accounting_api.call_log.calls

    def clear_api_calls(self) -> None:
        self.accounting_api.call_log.clear()

    def count_calls(self, method: str | None = None, path_prefix: str | None = None,
                    status: int | None = None, tenant_id: str | None = None) -> int:
        return self.accounting_api.call_log.count(method, path_prefix, status, tenant_id)

    @property
    def rate_limits(self) -> RateLimits:
        """The live limits; assign fields (``fake.rate_limits.per_day = 10``) to tune."""
        return self.accounting_api.limiter.limits

    @property
    def idempotency_ttl(self) -> float:
        """How long an Idempotency-Key's answer is replayed (set with the constructor's)."""
        return self.accounting_api.idempotency.ttl

    def reset_rate_limits(self) -> None:
        """Forget every window and in-flight count (e.g. between benchmark phases)."""
        with self.lock:
            self.accounting_api.limiter.reset()

    # ----- OAuth hooks -------------------------------------------------------

    def _mint_access_token(self, grant: Grant[XeroConsent], issued: float, expires: float) -> str:
        """A JWT like Xero's access tokens. Claims as a decoded Xero access token shows them
        (developer.xero.com/documentation/guides/oauth2/auth-flow, "Check the tenants you're
        authorized to access": filter GET /connections by the token's
        `authentication_event_id`; the connections' `authEventId` is the same id:
        shared/specs/xero/xero-identity.yaml, Connection.authEventId)."""
        consent = grant.consent
        claims = {
            "nbf": int(issued), "exp": int(expires), "iss": IDENTITY_ISSUER,
            "aud": f"{IDENTITY_ISSUER}/resources", "client_id": grant.client_id,
            "sub": consent.user_id, "auth_time": int(grant.created_at),
            "xero_userid": consent.user_id, "global_session_id": grant.grant_id.replace("-", ""),
            "jti": secrets.token_hex(16), "authentication_event_id": consent.auth_event_id,
            "scope": list(grant.scopes),
        }
        return jwt.encode(claims, self.token_signing_key, algorithm="HS256")

    def make_consent(self) -> XeroConsent:
        """Connect the consented tenants (caller holds the lock)."""
        consent = XeroConsent(self.user_id, str(uuid.uuid4()))
        tenant_ids = self._consent_tenants
        for tenant_id in list(self._tenants) if tenant_ids is None else tenant_ids:
            self._connect(consent, tenant_id)
        return consent

    def _connect(self, consent: XeroConsent, tenant_id: str) -> None:
        """Create the user's connection to a tenant, or re-authorise the existing one."""
        now = self.clock.now()
        conn = next((c for c in self._connections.values()
                     if c.user_id == consent.user_id and c.tenant_id == tenant_id), None)
        conn = conn or Connection(str(uuid.uuid4()), tenant_id, consent.user_id, "", now, now)
        self._connections[conn.connection_id] = replace(
            conn, auth_event_id=consent.auth_event_id, updated_at=now)

    def on_grant_revoked(self, grant: Grant[XeroConsent]) -> None:
        """Revoking a grant disconnects the tenants that consent authorised."""
        event = grant.consent.auth_event_id
        for conn_id, conn in list(self._connections.items()):
            if conn.auth_event_id == event and conn.user_id == grant.consent.user_id:
                del self._connections[conn_id]

    def unauthorized_response(self, problem: TokenProblem) -> Response:
        expired = problem == "expired"
        detail = "TokenExpired: token expired" if expired else "AuthenticationUnsuccessful"
        return identity_problem(401, "Unauthorized", detail,
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    # ----- endpoints ---------------------------------------------------------

    def _connection_json(self, conn: Connection) -> dict[str, Any]:
        tenant = self._tenants[conn.tenant_id]
        return {"id": conn.connection_id, "authEventId": conn.auth_event_id,
                "tenantId": tenant.tenant_id, "tenantType": tenant.tenant_type,
                "tenantName": tenant.name, "createdDateUtc": xero_utc(conn.created_at),
                "updatedDateUtc": xero_utc(conn.updated_at)}

    def _list_connections(self, request: Request) -> Response:
        access = self.require_bearer(request)
        event = request.args.get("authEventId")
        with self.lock:
            body = [self._connection_json(conn) for conn in self._user_connections(access)
                    if event is None or conn.auth_event_id == event]
        return json_response(body)

    def _user_connections(self, access: AccessToken[XeroConsent]) -> list[Connection]:
        return [c for c in self._connections.values() if c.user_id == access.grant.consent.user_id]

    def _delete_connection(self, request: Request, connection_id: str) -> Response:
        access = self.require_bearer(request)
        with self.lock:
            conn = self._connections.get(connection_id.lower())
            if conn is None or conn.user_id != access.grant.consent.user_id:
                detail = "The resource you're looking for cannot be found"
                return identity_problem(404, "NotFound", detail)
            del self._connections[conn.connection_id]
        return Response(status=204)
