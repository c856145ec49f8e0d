"""The OAuth 2 authorisation-code server the three fake vendors share (vendors set class
attributes and override the hooks)."""

from __future__ import annotations

import hmac
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, ClassVar, Generic, Literal, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from werkzeug.exceptions import Unauthorized
from werkzeug.wrappers import Request, Response

from sandbox.kit.clock import Clock
from sandbox.kit.faults import Fault, FaultInjector
from sandbox.kit.grants import (AccessToken, ConsentT, Grant, GrantStore, InvalidToken, OAuthError,
                                TokenPolicy, TokenProblem)
from sandbox.kit.jsonio import json_response
from sandbox.kit.routing import FakeService

ClientAuth = Literal["basic", "body"]
TokenFaultKind = Literal["invalid_client", "5xx", "429", "garbage", "slow"]
Decision = Literal["allow", "deny"]
_DECISIONS: dict[str, Decision] = {"allow": "allow", "deny": "deny"}
_AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state",
                     "code_challenge", "code_challenge_method")
_HTML_FAULTS = {"5xx": "Service Unavailable", "garbage": "Gateway says hi"}


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def add_query(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` appended to any query it already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _html(body: str, status: int = 200) -> Response:
    return Response(f"<!doctype html><html>{body}</html>", status=status,
                    content_type="text/html; charset=utf-8")


def consent_page(action: str, params: Mapping[str, str], app_name: str) -> Response:
    """A minimal Allow/Deny page; each button posts the authorize request back."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items()
    )
    forms = "".join(
        f'<form method="post" action="{escape(action)}">{hidden}'
        f'<button type="submit" name="decision" value="{decision}" id="{decision}">'
        f"{decision.title()}</button></form>" for decision in get_args(Decision)
    )
    return _html(
        "<head><title>Authorise app</title></head><body>"
        f"<h1>{escape(app_name)} wants access</h1>"
        f"<p>Scopes: <code>{escape(params.get('scope', ''))}</code></p>{forms}</body>"
    )


def error_page(message: str) -> Response:
    return _html(f"<body><h1>Error</h1><p>{escape(message)}</p></body>", status=400)


class OAuthFake(FakeService, ABC, Generic[ConsentT]):
    """A fake vendor authorisation server bound to one registered client; every state change
    happens under `self.lock`, every expiry uses `self.clock` (tests `advance()` it)."""

    vendor: ClassVar[str]
    authorize_path: ClassVar[str]
    token_path: ClassVar[str]
    client_auth: ClassVar[ClientAuth]
    token_type: ClassVar[str] = "Bearer"
    # Form fields each grant type must carry besides the client credentials (which
    # `authenticate_client` checks the vendor's way). Vendors cite their docs where they set it.
    # RFC 6749 4.1.3 (code exchange: code, redirect_uri) and 6 (refresh: refresh_token).
    required_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "authorization_code": ("code", "redirect_uri"),
        "refresh_token": ("refresh_token",),
    }
    # RFC 6749 5.2: 401 when the client tried to authenticate; vendors may answer 400.
    invalid_client_status: ClassVar[int] = 401

    def __init__(self, client_id: str, client_secret: str, *, policy: TokenPolicy,
                 redirect_uris: Sequence[str] | None = None, interactive: bool = False,
                 clock: Clock | None = None) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris) if redirect_uris is not None else None
        self.interactive = interactive
        self.clock = clock or Clock()
        self.store: GrantStore[ConsentT] = GrantStore(policy, self.clock)
        self._next_consent: Decision = "allow"
        self._token_delay = 0.0
        self._token_log: list[dict[str, Any]] = []
        self._token_faults = FaultInjector(get_args(TokenFaultKind))  # scope: the grant type
        self.route(self.authorize_path, self._authorize, methods=("GET", "POST"))
        self.route(self.token_path, self._token, methods=("POST",))

    # ----- hooks for vendor subclasses -------------------------------------

    @abstractmethod
    def make_consent(self) -> ConsentT:
        """Snapshot of who consented (user, account), stored on the grant; called under the
        lock each time a user allows access."""

    @abstractmethod
    def unauthorized_response(self, problem: TokenProblem) -> Response:
        """The vendor's 401 for an API call with a bad bearer token."""

    def granted_scopes(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        return requested

    def token_extras(self, request: Request, grant: Grant[ConsentT]) -> dict[str, Any]:
        """Vendor fields added to every successful token response."""
        return {"scope": " ".join(grant.scopes)}

    def error_body(self, err: OAuthError) -> dict[str, Any]:
        return {"error": err.error, "error_description": err.description}

    def on_grant_revoked(self, grant: Grant[ConsentT]) -> None:
        """Called under the lock after `grant` is revoked (e.g. drop connections)."""

    def missing_field_error(self, name: str) -> OAuthError:
        """The vendor's answer to a token request without a required form field."""
        return OAuthError("invalid_request", f"{name} is required", param=name)

    def client_error(self, description: str, param: str) -> OAuthError:
        """The vendor's answer to missing or wrong client credentials (RFC 6749 5.2)."""
        return OAuthError("invalid_client", description, self.invalid_client_status, param=param)

    # ----- test controls and introspection ---------------------------------

    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @property
    def next_consent(self) -> Decision:
        """What the next non-interactive authorize answers; resets to "allow" after use."""
        return self._next_consent

    @next_consent.setter
    def next_consent(self, decision: Decision) -> None:
        if decision not in _DECISIONS:
            raise ValueError(f"next_consent must be 'allow' or 'deny', not {decision!r}")
        with self.lock:
            self._next_consent = decision

    def set_token_delay(self, seconds: float) -> None:
        """Sleep this long in the token endpoint before taking the lock."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._token_delay = seconds

    def expire_codes(self) -> None:
        with self.lock:
            self.store.expire_codes()

    def inject_token_fault(self, kind: TokenFaultKind, times: int | None = 1, *,
                           grant_type: str | None = "refresh_token", status: int | None = None,
                           delay: float = 0.0) -> Fault:
        """Make the next `times` token calls (of `grant_type`; None: any) fail (None: until
        cleared). kind: "invalid_client" (the vendor's own refusal, as after a rotated client
        secret), "5xx" (`status`, default 503), "429", "garbage" (200 with an HTML body),
        "slow" (sleep `delay` real seconds, then answer normally)."""
        fault = Fault(kind, scope=grant_type, remaining=times, status=status, delay=delay)
        with self.lock:
            return self._token_faults.add(fault)

    def clear_token_faults(self) -> None:
        with self.lock:
            self._token_faults.clear()

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """One dict per token-endpoint call, oldest first (keys: `_log_token_call`)."""
        with self.lock:
            return [dict(entry) for entry in self._token_log]

    @property
    def refresh_count(self) -> int:
        """Token-endpoint calls with grant_type=refresh_token, failed ones included."""
        return sum(1 for r in self.token_requests if r["grant_type"] == "refresh_token")

    @property
    def grants(self) -> list[Grant[ConsentT]]:
        with self.lock:
            return self.store.grants

    def grant_for(self, token: str) -> Grant[ConsentT] | None:
        """The grant that issued this access or refresh token."""
        with self.lock:
            return self.store.grant_of(token)

    def revoke_grant(self, refresh_token: str | None = None) -> Grant[ConsentT]:
        """Revoke the grant of `refresh_token` (default: the newest grant): its refresh tokens
        then fail with invalid_grant and its access tokens with 401."""
        with self.lock:
            grants = self.store.grants if refresh_token is None else [self.store.grant_of(refresh_token)]
            grant = grants[-1] if grants else None
            if grant is None:
                raise LookupError("no grant matches that refresh token")
            self._revoke(grant)
            return grant

    def revoke_all(self) -> None:
        with self.lock:
            for grant in self.store.grants:
                self._revoke(grant)

    def require_bearer(self, request: Request) -> AccessToken[ConsentT]:
        """The request's live access token; otherwise abort with the vendor's 401."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        problem: TokenProblem = "missing"
        if scheme.lower() == "bearer" and value.strip():
            with self.lock:
                try:
                    return self.store.access_token(value.strip())
                except InvalidToken as exc:
                    problem = exc.problem
        raise Unauthorized(response=self.unauthorized_response(problem))

    # ----- shared internals --------------------------------------------------

    def _revoke(self, grant: Grant[ConsentT]) -> None:
        if not grant.revoked:
            self.store.revoke(grant)
            self.on_grant_revoked(grant)

    def oauth_error_response(self, err: OAuthError) -> Response:
        headers = {"Cache-Control": "no-store"}
        if err.status == 401 and self.client_auth == "basic":
            headers["WWW-Authenticate"] = f'Basic realm="{self.vendor}"'
        return json_response(self.error_body(err), status=err.status, headers=headers)

    def authenticate_client(self, request: Request) -> str:
        """Check the client credentials the vendor's way; return the client_id."""
        auth = request.authorization
        if self.client_auth == "body":
            client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
        elif auth is None or auth.type != "basic":
            client_id = secret = None
        else:
            client_id, secret = auth.username, auth.password
        if not client_id or not secret:
            how = "HTTP Basic" if self.client_auth == "basic" else "client_id/client_secret fields"
            raise self.client_error(f"client credentials missing; send them as {how}",
                                    "client_secret" if client_id else "client_id")
        if not _same(client_id, self.client_id):
            raise self.client_error("client authentication failed", "client_id")
        if not _same(secret, self.client_secret):
            raise self.client_error("client authentication failed", "client_secret")
        return client_id

    # ----- authorize endpoint ------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        source = request.args if request.method == "GET" else request.form
        params = {k: source[k] for k in _AUTHORIZE_FIELDS if k in source}
        # Errors that must not redirect back (RFC 6749 4.1.2.1) get a page of their own.
        redirect_uri = params.get("redirect_uri")
        if not _same(params.get("client_id", ""), self.client_id):
            return error_page("unknown client_id")
        if not redirect_uri:
            return error_page("redirect_uri is required")
        if self.redirect_uris is not None and redirect_uri not in self.redirect_uris:
            return error_page("redirect_uri is not registered for this app")
        if params.get("response_type") != "code":
            return self._redirect(params, error="unsupported_response_type",
                                  error_description="response_type must be code")
        if request.method == "GET" and self.interactive:
            return consent_page(request.path, params, self.vendor)
        if request.method == "GET":
            with self.lock:
                decision: Decision | None = self._next_consent
                self._next_consent = "allow"
        else:
            decision = _DECISIONS.get(request.form.get("decision", ""))
        if decision is None:
            return error_page("decision must be allow or deny")
        if decision == "deny":
            return self._redirect(params, error="access_denied",
                                  error_description="The user denied the authorisation request")
        with self.lock:
            code = self.store.issue_code(
                params["client_id"], params["redirect_uri"],
                self.granted_scopes(tuple(params.get("scope", "").split())), self.make_consent(),
                params.get("code_challenge"), params.get("code_challenge_method"))
        return self._redirect(params, code=code)

    def _redirect(self, params: Mapping[str, str], **result: str) -> Response:
        if "state" in params:
            result["state"] = params["state"]
        return Response(status=302, headers={"Location": add_query(params["redirect_uri"], result)})

    # ----- token endpoint ----------------------------------------------------

    def _token(self, request: Request) -> Response:
        if self._token_delay > 0:
            time.sleep(self._token_delay)  # deliberate: lets concurrent token calls overlap
        with self.lock:
            fault = self._token_faults.take("POST", self.token_path, request.form.get("grant_type"))
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay or 0.0)
        elif fault is not None:
            return self._fault_response(request, fault)
        with self.lock:
            try:
                body = self._grant_tokens(request, self.authenticate_client(request))
            except OAuthError as err:
                self._log_token_call(request, err)
                return self.oauth_error_response(err)
            self._log_token_call(request, None)
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _fault_response(self, request: Request, fault: Fault) -> Response:
        if fault.kind == "invalid_client":
            err = self.client_error("client authentication failed", "client_secret")
        elif fault.kind == "429":
            err = OAuthError("rate_limited", "Too many requests", 429)
        elif fault.kind == "5xx":
            err = OAuthError("server_error", "Service unavailable", fault.status or 503)
        else:
            err = OAuthError("garbage", "an HTML page where JSON belongs", 200)
        with self.lock:
            self._log_token_call(request, err)
        if fault.kind in _HTML_FAULTS:
            return Response(f"<html><body>{_HTML_FAULTS[fault.kind]}</body></html>",
                            status=err.status, content_type="text/html")
        if fault.kind == "429":
            return json_response(self.error_body(err), status=429, headers={"Retry-After": "10"})
        return self.oauth_error_response(err)

    def _grant_tokens(self, request: Request, client_id: str) -> dict[str, Any]:
        form = request.form
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise self.missing_field_error("grant_type")
        if grant_type not in self.required_fields:
            raise OAuthError("unsupported_grant_type",
                             f"grant_type {grant_type!r} is not supported", param="grant_type")
        for name in self.required_fields[grant_type]:
            if not form.get(name):
                raise self.missing_field_error(name)
        code = grant_type == "authorization_code"
        try:
            if code:
                grant = self.store.redeem_code(form["code"], client_id, form.get("redirect_uri"),
                                               form.get("code_verifier"))
            else:
                grant = self.store.grant_for_refresh(form["refresh_token"], client_id)
        except OAuthError as err:
            err.param = err.param or ("code" if code else "refresh_token")
            raise
        access, refresh = self.store.issue_tokens(grant)
        body: dict[str, Any] = {"access_token": access.value, "token_type": self.token_type,
                                "expires_in": int(self.store.policy.access_ttl)}
        if refresh is not None:
            body["refresh_token"] = refresh
        return {**body, **self.token_extras(request, grant)}

    def _log_token_call(self, request: Request, error: OAuthError | None) -> None:
        """Append to `token_requests`: grant_type, time (fake clock), status, error (None on
        success), client_id, code, refresh_token (as presented, or None), fields (the form's
        field names, sorted), basic_auth (HTTP Basic credentials sent). Caller holds the lock."""
        form, auth = request.form, request.authorization
        self._token_log.append({
            "grant_type": form.get("grant_type"),
            "time": self.clock.now(),
            "status": 200 if error is None else error.status,
            "error": None if error is None else error.error,
            "client_id": auth.username if auth is not None else form.get("client_id"),
            "code": form.get("code"),
            "refresh_token": form.get("refresh_token"),
            "fields": sorted(form.keys()),
            "basic_auth": auth is not None and auth.type == "basic",
        })

    # ----- RFC 7009 revocation (registered by vendors that have it) ----------

    def revocation_endpoint(self, request: Request) -> Response:
        """Revoke the grant of the posted access or refresh token; 200 even if unknown."""
        try:
            self.authenticate_client(request)
            token = request.form.get("token")
            if not token:
                raise OAuthError("invalid_request", "token is required")
        except OAuthError as err:
            return self.oauth_error_response(err)
        with self.lock:
            grant = self.store.grant_of(token)
            if grant is not None and grant.client_id == self.client_id:
                self._revoke(grant)
        return Response(status=200)
