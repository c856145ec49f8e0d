"""OAuth 2 authorisation state (codes, grants, access and refresh tokens): no HTTP and no
locking - the owning fake holds its lock around every call; times come from its `Clock`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from sandbox.kit.clock import Clock

ConsentT = TypeVar("ConsentT")
"""Vendor snapshot taken when the user consents (user, portal, company...)."""

TokenProblem = Literal["missing", "unknown", "expired", "revoked"]


class OAuthError(Exception):
    """An RFC 6749 error: `error` code, human description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.param = param
        """The form field or credential at fault (client_id, refresh_token...), if one is."""


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


class InvalidToken(Exception):
    """A bearer token the API must answer with 401."""

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem)
        self.problem: TokenProblem = problem


@dataclass(frozen=True)
class TokenPolicy:
    """Lifetimes and refresh behaviour of one vendor's authorisation server."""

    code_ttl: float
    access_ttl: float
    rotate_refresh_tokens: bool
    refresh_grace: float = 0.0
    """How long a rotated-out refresh token keeps working (Xero: 30 min)."""
    refresh_idle_ttl: float | None = None
    """A refresh token unused this long stops working (Xero: 60 days)."""
    offline_scope: str | None = None
    """Scope without which no refresh token is issued (Xero: offline_access)."""


@dataclass
class Grant(Generic[ConsentT]):
    """One authorisation: created by a code exchange, extended by refreshes."""

    grant_id: str
    client_id: str
    scopes: tuple[str, ...]
    consent: ConsentT
    created_at: float
    refresh_token: str | None = None
    revoked: bool = False


@dataclass
class AuthCode(Generic[ConsentT]):
    """An outstanding code and the grant redeeming it creates (`created_at` set then)."""

    grant: Grant[ConsentT]
    redirect_uri: str
    expires_at: float
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used: bool = False


@dataclass
class AccessToken(Generic[ConsentT]):
    value: str
    grant: Grant[ConsentT]
    expires_at: float


@dataclass
class _RefreshRecord(Generic[ConsentT]):
    grant: Grant[ConsentT]
    last_used: float
    superseded_at: float | None = None


def pkce_matches(challenge: str, method: str | None, verifier: str) -> bool:
    """RFC 7636 check of `verifier` against the authorize request's challenge."""
    if (method or "plain") == "plain":
        expected = verifier
    else:
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(expected, challenge)


class GrantStore(Generic[ConsentT]):
    """Codes, grants and tokens of one fake authorisation server."""

    def __init__(self, policy: TokenPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock
        self._codes: dict[str, AuthCode[ConsentT]] = {}
        self._grants: list[Grant[ConsentT]] = []
        self._access: dict[str, AccessToken[ConsentT]] = {}
        self._refresh: dict[str, _RefreshRecord[ConsentT]] = {}
        # How access token values are made: (grant, issued at, expires at) -> value. Opaque
        # random strings unless a vendor's tokens carry claims (Xero's are JWTs).
        self.mint_access: Callable[[Grant[ConsentT], float, float], str] = (
            lambda grant, issued, expires: secrets.token_urlsafe(32))

    @property
    def grants(self) -> list[Grant[ConsentT]]:
        return list(self._grants)

    def issue_code(self, client_id: str, redirect_uri: str, scopes: tuple[str, ...],
                   consent: ConsentT, code_challenge: str | None = None,
                   code_challenge_method: str | None = None) -> str:
        value = secrets.token_urlsafe(24)
        grant = Grant(str(uuid.uuid4()), client_id, scopes, consent, created_at=0.0)
        self._codes[value] = AuthCode(grant, redirect_uri, self._clock.now() + self.policy.code_ttl,
                                      code_challenge, code_challenge_method)
        return value

    def expire_codes(self) -> None:
        """Make every outstanding authorization code expired."""
        now = self._clock.now()
        for code in self._codes.values():
            code.expires_at = min(code.expires_at, now)

    def redeem_code(self, value: str, client_id: str, redirect_uri: str | None,
                    code_verifier: str | None) -> Grant[ConsentT]:
        """Consume a code and create its grant, or raise invalid_grant."""
        code = self._codes.get(value)
        if code is None or code.used:
            raise invalid_grant("authorization code is unknown or already used")
        if self._clock.now() >= code.expires_at:
            raise invalid_grant("authorization code has expired")
        if code.grant.client_id != client_id:
            raise invalid_grant("authorization code was issued to another client")
        if redirect_uri != code.redirect_uri:
            raise invalid_grant("redirect_uri does not match the authorization request")
        if code.code_challenge is not None and not (
            code_verifier
            and pkce_matches(code.code_challenge, code.code_challenge_method, code_verifier)
        ):
            raise invalid_grant("code_verifier does not match the code_challenge")
        code.used = True
        code.grant.created_at = self._clock.now()
        self._grants.append(code.grant)
        return code.grant

    def grant_for_refresh(self, refresh_token: str, client_id: str) -> Grant[ConsentT]:
        """The live grant behind `refresh_token`, or raise invalid_grant."""
        record = self._refresh.get(refresh_token)
        if record is None or record.grant.revoked:
            raise invalid_grant("refresh token is unknown or revoked")
        if record.grant.client_id != client_id:
            raise invalid_grant("refresh token was issued to another client")
        now = self._clock.now()
        if record.superseded_at is not None and now - record.superseded_at >= self.policy.refresh_grace:
            raise invalid_grant("refresh token has been replaced by a newer one")
        idle_ttl = self.policy.refresh_idle_ttl
        if idle_ttl is not None and now - record.last_used >= idle_ttl:
            raise invalid_grant("refresh token has expired")
        record.last_used = now
        return record.grant

    def issue_tokens(self, grant: Grant[ConsentT]) -> tuple[AccessToken[ConsentT], str | None]:
        """A new access token, plus the refresh token the client should now keep."""
        now = self._clock.now()
        expires = now + self.policy.access_ttl
        access = AccessToken(self.mint_access(grant, now, expires), grant, expires)
        self._access[access.value] = access
        return access, self._next_refresh_token(grant, now)

    def _next_refresh_token(self, grant: Grant[ConsentT], now: float) -> str | None:
        offline = self.policy.offline_scope
        if offline is not None and offline not in grant.scopes:
            return None
        current = grant.refresh_token
        if current is not None:
            if not self.policy.rotate_refresh_tokens:
                return current
            self._refresh[current].superseded_at = now
        grant.refresh_token = secrets.token_urlsafe(32)
        self._refresh[grant.refresh_token] = _RefreshRecord(grant, last_used=now)
        return grant.refresh_token

    def access_token(self, value: str) -> AccessToken[ConsentT]:
        """The live access token `value`, or raise InvalidToken."""
        token = self._access.get(value)
        if token is None:
            raise InvalidToken("unknown")
        if token.grant.revoked:
            raise InvalidToken("revoked")
        if self._clock.now() >= token.expires_at:
            raise InvalidToken("expired")
        return token

    def grant_of(self, token: str) -> Grant[ConsentT] | None:
        """The grant that issued a refresh or access token, live or not."""
        access = self._access.get(token)
        return access.grant if access is not None else self.grant_of_refresh_token(token)

    def grant_of_refresh_token(self, token: str) -> Grant[ConsentT] | None:
        record = self._refresh.get(token)
        return record.grant if record is not None else None

    def revoke(self, grant: Grant[ConsentT]) -> None:
        grant.revoked = True
