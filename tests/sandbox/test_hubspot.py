"""FakeHubSpot: body client auth, non-rotating refresh, token info, account details."""

from __future__ import annotations

import requests

from sandbox import FakeHubSpot

from .support import TIMEOUT, OAuthHarness


def token_info(hubspot: OAuthHarness[FakeHubSpot], token: str) -> requests.Response:
    return requests.get(f"{hubspot.url}/oauth/v1/access-tokens/{token}", timeout=TIMEOUT)


def test_token_response_matches_hubspot(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    body = hubspot.login()
    assert body["token_type"] == "bearer"
    assert body["token_use"] == "access_token"
    assert body["scopes"] == hubspot.scope.split()
    assert "hub_id" not in body  # clients must read it from the access-token info


def test_refresh_returns_the_same_refresh_token(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    first = hubspot.login()
    second = hubspot.refresh(first["refresh_token"]).json()
    third = hubspot.refresh(first["refresh_token"]).json()
    assert first["refresh_token"] == second["refresh_token"] == third["refresh_token"]
    assert len({first["access_token"], second["access_token"], third["access_token"]}) == 3


def test_access_token_info(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    fake = hubspot.fake
    token = hubspot.login()["access_token"]
    fake.advance(100)
    response = token_info(hubspot, token)
    assert response.status_code == 200
    assert response.json() == {
        "token": token,
        "user": fake.user_email,
        "hub_domain": f"portal-{fake.portal_id}.example.com",
        "scopes": hubspot.scope.split(),
        "hub_id": 4455667,
        "app_id": fake.app_id,
        "expires_in": 1700,
        "user_id": fake.user_id,
        "token_type": "access",
    }


def test_portal_is_captured_per_install(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    fake = hubspot.fake
    first = hubspot.login()["access_token"]
    fake.portal_id = 998877
    second = hubspot.login()["access_token"]
    assert token_info(hubspot, first).json()["hub_id"] == 4455667
    assert token_info(hubspot, second).json()["hub_id"] == 998877


def test_access_token_info_for_bad_tokens(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    assert token_info(hubspot, "unknown").status_code == 404
    expired = hubspot.login()["access_token"]
    hubspot.fake.advance(1800)
    response = token_info(hubspot, expired)
    assert response.status_code == 401
    assert response.json()["category"] == "EXPIRED_AUTHENTICATION"
    revoked = hubspot.login()["access_token"]
    hubspot.fake.revoke_grant()
    assert token_info(hubspot, revoked).status_code == 404


def test_errors_carry_hubspot_and_oauth_fields(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    body = hubspot.refresh("unknown").json()
    assert body["error"] == "invalid_grant"
    assert {"message", "correlationId", "category"} <= set(body)
    api = hubspot.api_get("unknown").json()
    assert api["category"] == "INVALID_AUTHENTICATION"


def test_account_details(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    response = hubspot.api_get(hubspot.login()["access_token"])
    assert response.status_code == 200
    body = response.json()
    assert body["portalId"] == 4455667
    assert body["companyCurrency"] == "AUD"


def test_deleting_the_refresh_token_uninstalls(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    tokens = hubspot.login()
    url = f"{hubspot.url}/oauth/v1/refresh-tokens/{tokens['refresh_token']}"
    assert requests.delete(url, timeout=TIMEOUT).status_code == 204
    assert hubspot.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert hubspot.api_get(tokens["access_token"]).status_code == 401
    assert requests.delete(url, timeout=TIMEOUT).status_code == 404


def test_an_admin_uninstalling_the_app_kills_its_tokens_in_that_portal_only(
        hubspot: OAuthHarness[FakeHubSpot]) -> None:
    fake = hubspot.fake
    here = hubspot.login()
    fake.portal_id = 999
    elsewhere = hubspot.login()

    assert fake.uninstall_app(999) == 1

    assert hubspot.refresh(elsewhere["refresh_token"]).json()["error"] == "invalid_grant"
    assert hubspot.api_get(elsewhere["access_token"]).status_code == 401
    assert hubspot.refresh(here["refresh_token"]).status_code == 200
    assert fake.uninstall_app(999) == 0


def test_the_app_can_uninstall_itself(hubspot: OAuthHarness[FakeHubSpot]) -> None:
    """DELETE /appinstalls/2026-03/external-install with the account's token: 204, no body."""
    tokens = hubspot.login()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    url = f"{hubspot.url}/appinstalls/2026-03/external-install"

    response = requests.delete(url, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 204 and response.content == b""
    assert hubspot.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert requests.delete(url, headers=headers, timeout=TIMEOUT).status_code == 401
