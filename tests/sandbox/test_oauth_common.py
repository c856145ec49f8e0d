"""OAuth behaviour the three fakes share, each exercised over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest
import requests

from sandbox import OAuthFake

from .support import REDIRECT_URI, TIMEOUT, FormInputs, OAuthHarness, query_of, run_concurrently

ROTATES = {"xero": True, "hubspot": False, "pipedrive": True}


def assert_oauth_error(response: requests.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


# ----- authorize -------------------------------------------------------------


def test_authorize_redirects_back_with_a_code_and_the_state(
    vendor: OAuthHarness[OAuthFake[Any]],
) -> None:
    response = vendor.authorize(state="xyz")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    params = query_of(location)
    assert params["state"] == "xyz"
    assert params["code"]


def test_redirect_keeps_an_existing_query(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    vendor.fake.redirect_uris = None
    response = vendor.authorize(redirect_uri="https://paydeck.test/cb?next=%2Fdeals")
    params = query_of(response.headers["Location"])
    assert params["next"] == "/deals"
    assert params["code"]


def test_unknown_client_gets_an_error_page_not_a_redirect(
    vendor: OAuthHarness[OAuthFake[Any]],
) -> None:
    response = vendor.authorize(client_id="somebody-else")
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_unregistered_redirect_uri_is_refused_without_redirect(
    vendor: OAuthHarness[OAuthFake[Any]],
) -> None:
    response = vendor.authorize(redirect_uri="https://evil.test/cb")
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_any_redirect_uri_is_allowed_when_none_are_registered(
    vendor: OAuthHarness[OAuthFake[Any]],
) -> None:
    vendor.fake.redirect_uris = None
    response = vendor.authorize(redirect_uri="http://127.0.0.1:9/cb")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("http://127.0.0.1:9/cb?code=")


def test_wrong_response_type_redirects_with_an_error(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    params = query_of(vendor.authorize(response_type="token").headers["Location"])
    assert params["error"] == "unsupported_response_type"
    assert "code" not in params


def test_deny_redirects_with_access_denied_once(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    vendor.fake.next_consent = "deny"
    denied = query_of(vendor.authorize(state="s1").headers["Location"])
    assert denied["error"] == "access_denied"
    assert denied["error_description"]
    assert denied["state"] == "s1"
    assert "code" not in denied
    assert "code" in query_of(vendor.authorize().headers["Location"])


def test_next_consent_rejects_other_values(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    with pytest.raises(ValueError):
        vendor.fake.next_consent = "maybe"  # type: ignore[assignment]


@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_interactive_consent_page_posts_the_decision(
    vendor: OAuthHarness[OAuthFake[Any]], decision: str
) -> None:
    vendor.fake.interactive = True
    page = vendor.authorize(state="s2")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    parser = FormInputs()
    parser.feed(page.text)
    form = next(f for f in parser.forms if f["fields"]["decision"] == decision)
    assert form["method"] == "post"
    posted = requests.post(
        vendor.url + form["action"], data=form["fields"], allow_redirects=False, timeout=TIMEOUT
    )
    params = query_of(posted.headers["Location"])
    assert params["state"] == "s2"
    assert ("code" in params) == (decision == "allow")
    assert (params.get("error") == "access_denied") == (decision == "deny")


# ----- authorization codes ---------------------------------------------------


def test_code_exchange_returns_bearer_tokens(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    response = vendor.exchange(vendor.authorize_code())
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["access_token"] and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    assert body["expires_in"] == 1800
    assert body["token_type"].lower() == "bearer"
    assert vendor.api_get(body["access_token"]).status_code == 200


def test_code_is_single_use(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    code = vendor.authorize_code()
    assert vendor.exchange(code).status_code == 200
    assert_oauth_error(vendor.exchange(code), 400, "invalid_grant")


def test_concurrent_exchanges_of_one_code_succeed_once(
    vendor: OAuthHarness[OAuthFake[Any]],
) -> None:
    code = vendor.authorize_code()
    statuses = run_concurrently(8, lambda _: vendor.exchange(code).status_code)
    assert sorted(statuses) == [200] + [400] * 7


def test_unknown_code_is_invalid_grant(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    assert_oauth_error(vendor.exchange("not-a-code"), 400, "invalid_grant")


def test_code_is_bound_to_its_redirect_uri(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    code = vendor.authorize_code()
    assert_oauth_error(
        vendor.exchange(code, redirect_uri="https://paydeck.test/other"), 400, "invalid_grant"
    )


def test_code_expires_after_code_ttl(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    fresh, stale = vendor.authorize_code(), vendor.authorize_code()
    vendor.fake.advance(299)
    assert vendor.exchange(fresh).status_code == 200
    vendor.fake.advance(1)
    assert_oauth_error(vendor.exchange(stale), 400, "invalid_grant")


def test_expire_codes_expires_outstanding_codes(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    code = vendor.authorize_code()
    vendor.fake.expire_codes()
    assert_oauth_error(vendor.exchange(code), 400, "invalid_grant")
    assert vendor.exchange(vendor.authorize_code()).status_code == 200


def test_pkce_verifier_must_match_the_challenge(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    verifier = "v" * 50
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert_oauth_error(vendor.exchange(vendor.authorize_code(**pkce)), 400, "invalid_grant")
    wrong = vendor.exchange(vendor.authorize_code(**pkce), code_verifier="w" * 50)
    assert_oauth_error(wrong, 400, "invalid_grant")
    assert vendor.exchange(vendor.authorize_code(**pkce), code_verifier=verifier).status_code == 200


def test_unsupported_grant_type(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    response = vendor.token({"grant_type": "client_credentials"})
    assert_oauth_error(response, 400, "unsupported_grant_type")


def test_missing_code_is_invalid_request(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    response = vendor.token({"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI})
    assert_oauth_error(response, 400, "invalid_request")


# ----- client authentication -------------------------------------------------


def test_wrong_client_secret_is_invalid_client(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    code = vendor.authorize_code()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    status = vendor.fake.invalid_client_status  # Pipedrive answers 400 (its status-codes page)
    assert_oauth_error(vendor.token(form, client_secret="wrong"), status, "invalid_client")
    assert vendor.exchange(code).status_code == 200  # a failed client auth does not burn the code


def test_credentials_must_use_the_vendors_auth_style(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    """HubSpot wants them in the form body; Xero and Pipedrive want HTTP Basic."""
    other = "body" if vendor.fake.client_auth == "basic" else "basic"
    form = {
        "grant_type": "authorization_code",
        "code": vendor.authorize_code(),
        "redirect_uri": REDIRECT_URI,
    }
    status = vendor.fake.invalid_client_status
    assert_oauth_error(vendor.token(form, style=other), status, "invalid_client")


# ----- refresh ---------------------------------------------------------------


def test_refresh_issues_a_new_access_token(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    first = vendor.login()
    response = vendor.refresh(first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 1800
    assert vendor.api_get(second["access_token"]).status_code == 200
    assert (
        vendor.api_get(first["access_token"]).status_code == 200
    )  # old one lives until it expires
    rotated = second["refresh_token"] != first["refresh_token"]
    assert rotated == ROTATES[vendor.name]


def test_unknown_refresh_token_is_invalid_grant(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    assert_oauth_error(vendor.refresh("nope"), 400, "invalid_grant")


def test_revoke_grant_kills_refresh_and_access_tokens(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    kept, revoked = vendor.login(), vendor.login()
    grant = vendor.fake.revoke_grant(revoked["refresh_token"])
    assert grant.revoked
    assert_oauth_error(vendor.refresh(revoked["refresh_token"]), 400, "invalid_grant")
    assert vendor.api_get(revoked["access_token"]).status_code == 401
    assert vendor.api_get(kept["access_token"]).status_code == 200
    assert vendor.refresh(kept["refresh_token"]).status_code == 200


def test_revoke_grant_defaults_to_the_newest_grant(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    older, newer = vendor.login(), vendor.login()
    vendor.fake.revoke_grant()
    assert vendor.api_get(newer["access_token"]).status_code == 401
    assert vendor.api_get(older["access_token"]).status_code == 200


def test_revoke_grant_of_unknown_token_raises(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    with pytest.raises(LookupError):
        vendor.fake.revoke_grant("unknown")


def test_revoke_all(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    tokens = [vendor.login(), vendor.login()]
    vendor.fake.revoke_all()
    for token in tokens:
        assert vendor.api_get(token["access_token"]).status_code == 401
        assert_oauth_error(vendor.refresh(token["refresh_token"]), 400, "invalid_grant")


def test_access_token_expires_but_refresh_still_works(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    tokens = vendor.login()
    vendor.fake.advance(1799)
    assert vendor.api_get(tokens["access_token"]).status_code == 200
    vendor.fake.advance(1)
    assert vendor.api_get(tokens["access_token"]).status_code == 401
    fresh = vendor.refresh(tokens["refresh_token"]).json()
    assert vendor.api_get(fresh["access_token"]).status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer unknown-token", "Basic dXNlcjpwYXNz"]
)
def test_api_rejects_bad_bearer_credentials(
    vendor: OAuthHarness[OAuthFake[Any]], authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(vendor.url + vendor.api_path, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/json")


def test_concurrent_refreshes_with_one_token(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    """Rotation without grace (Pipedrive) lets exactly one of 8 racing refreshes win."""
    refresh_token = vendor.login()["refresh_token"]
    vendor.fake.set_token_delay(0.1)
    statuses = run_concurrently(8, lambda _: vendor.refresh(refresh_token).status_code)
    winners = {"xero": 8, "hubspot": 8, "pipedrive": 1}[vendor.name]
    assert statuses.count(200) == winners
    assert statuses.count(400) == 8 - winners
    assert vendor.fake.refresh_count == 8


# ----- introspection ---------------------------------------------------------


def test_token_requests_are_logged(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    tokens = vendor.login()
    vendor.fake.advance(60)
    vendor.refresh(tokens["refresh_token"])
    vendor.refresh("bogus")
    log = vendor.fake.token_requests
    assert [r["grant_type"] for r in log] == [
        "authorization_code",
        "refresh_token",
        "refresh_token",
    ]
    assert [r["status"] for r in log] == [200, 200, 400]
    assert [r["error"] for r in log] == [None, None, "invalid_grant"]
    assert log[1]["refresh_token"] == tokens["refresh_token"]
    assert log[1]["time"] - log[0]["time"] >= 60
    assert all(r["client_id"] == vendor.fake.client_id for r in log)
    assert vendor.fake.refresh_count == 2


def test_token_delay_lets_token_calls_overlap(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    codes = [vendor.authorize_code() for _ in range(8)]
    vendor.fake.set_token_delay(0.25)
    began = time.monotonic()
    statuses = run_concurrently(8, lambda i: vendor.exchange(codes[i]).status_code)
    elapsed = time.monotonic() - began
    assert statuses == [200] * 8
    assert 0.25 <= elapsed < 8 * 0.25 / 2, f"calls did not overlap ({elapsed:.2f}s)"


def test_grants_track_their_tokens(vendor: OAuthHarness[OAuthFake[Any]]) -> None:
    tokens = vendor.login()
    grant = vendor.fake.grant_for(tokens["access_token"])
    assert grant is not None
    assert grant is vendor.fake.grant_for(tokens["refresh_token"])
    assert vendor.fake.grants == [grant]
    assert vendor.fake.grant_for("unknown") is None
