"""FakeXero: offline_access, rotation with a 30-minute grace, revocation, connections."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from sandbox import FakeXero, LoopbackServer
from sandbox.kit.jsonio import json_response

from .support import TIMEOUT, OAuthHarness

MINUTE = 60
XERO_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}$")


def connections(
    xero: OAuthHarness[FakeXero], access_token: str, path: str = "/connections", **params: str
) -> list[dict[str, Any]]:
    response = requests.get(
        xero.url + path,
        params=params,
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def delete_connection(
    xero: OAuthHarness[FakeXero], access_token: str, connection_id: str
) -> requests.Response:
    return requests.delete(
        f"{xero.url}/connections/{connection_id}",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )


def revoke(
    xero: OAuthHarness[FakeXero], token: str, secret: str | None = None
) -> requests.Response:
    auth = (xero.fake.client_id, secret or xero.fake.client_secret)
    return requests.post(
        xero.url + "/connect/revocation", data={"token": token}, auth=auth, timeout=TIMEOUT
    )


def test_no_refresh_token_without_offline_access(xero: OAuthHarness[FakeXero]) -> None:
    body = xero.login(scope="accounting.invoices")
    assert "refresh_token" not in body
    assert body["scope"] == "accounting.invoices"
    assert xero.api_get(body["access_token"]).status_code == 200


def test_rotated_refresh_token_works_for_a_30_minute_grace(xero: OAuthHarness[FakeXero]) -> None:
    rt1 = xero.login()["refresh_token"]
    xero.fake.advance(2 * 3600)  # the grace counts from rotation, not from issue
    rt2 = xero.refresh(rt1).json()["refresh_token"]
    xero.fake.advance(29 * MINUTE)
    retry = xero.refresh(rt1)  # as if the response carrying rt2 had been lost
    assert retry.status_code == 200
    rt3 = retry.json()["refresh_token"]
    assert len({rt1, rt2, rt3}) == 3
    xero.fake.advance(1 * MINUTE)
    assert xero.refresh(rt1).json()["error"] == "invalid_grant"
    assert xero.refresh(rt2).status_code == 200  # rt2 was rotated out only 1 minute ago
    assert xero.refresh(rt3).status_code == 200


def test_refresh_token_expires_after_60_days_unused(xero: OAuthHarness[FakeXero]) -> None:
    tokens = xero.login()
    xero.fake.advance(60 * 24 * 3600)
    assert xero.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revocation_endpoint_revokes_the_grant_and_its_connections(
    xero: OAuthHarness[FakeXero],
) -> None:
    tokens = xero.login()
    assert revoke(xero, tokens["refresh_token"]).status_code == 200
    assert xero.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert xero.api_get(tokens["access_token"]).status_code == 401
    assert xero.fake.connections == []


def test_revocation_needs_client_credentials_and_ignores_unknown_tokens(
    xero: OAuthHarness[FakeXero],
) -> None:
    tokens = xero.login()
    bad = revoke(xero, tokens["refresh_token"], secret="wrong")
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    assert revoke(xero, "unknown-token").status_code == 200  # RFC 7009
    assert xero.refresh(tokens["refresh_token"]).status_code == 200


def test_connections_list_the_consented_tenants(xero: OAuthHarness[FakeXero]) -> None:
    second = xero.fake.add_tenant(
        "Second Org Ltd", tenant_id="fe79f7dd-b6d4-4a92-ba7b-538af6289c58"
    )
    body = connections(xero, xero.login()["access_token"])
    assert {c["tenantName"] for c in body} == {"Demo Company (AU)", "Second Org Ltd"}
    conn = next(c for c in body if c["tenantId"] == second)
    assert set(conn) == {
        "id",
        "authEventId",
        "tenantId",
        "tenantType",
        "tenantName",
        "createdDateUtc",
        "updatedDateUtc",
    }
    assert conn["tenantType"] == "ORGANISATION"
    uuid.UUID(conn["id"])
    uuid.UUID(conn["authEventId"])
    assert XERO_TIMESTAMP.match(conn["createdDateUtc"]), conn["createdDateUtc"]
    assert len({c["authEventId"] for c in body}) == 1


def test_consent_tenants_limits_what_a_consent_connects(xero: OAuthHarness[FakeXero]) -> None:
    wanted = xero.fake.add_tenant("Only This One")
    xero.fake.consent_tenants = [wanted]
    body = connections(xero, xero.login()["access_token"])
    assert [c["tenantId"] for c in body] == [wanted]


def test_consent_tenants_must_exist(xero: OAuthHarness[FakeXero]) -> None:
    with pytest.raises(ValueError):
        xero.fake.consent_tenants = [str(uuid.uuid4())]


def test_reconsent_updates_the_existing_connection(xero: OAuthHarness[FakeXero]) -> None:
    first = connections(xero, xero.login()["access_token"])
    xero.fake.advance(3600)
    second_tokens = xero.login()
    second = connections(xero, second_tokens["access_token"])
    assert [c["id"] for c in second] == [c["id"] for c in first]
    assert second[0]["authEventId"] != first[0]["authEventId"]
    assert second[0]["createdDateUtc"] == first[0]["createdDateUtc"]
    assert second[0]["updatedDateUtc"] > first[0]["updatedDateUtc"]
    filtered = connections(xero, second_tokens["access_token"], authEventId=first[0]["authEventId"])
    assert filtered == []


def test_connections_are_per_user(xero: OAuthHarness[FakeXero]) -> None:
    alice = xero.login()["access_token"]
    xero.fake.user_id = str(uuid.uuid4())
    xero.fake.consent_tenants = [xero.fake.add_tenant("Bob's Org")]
    bob = xero.login()["access_token"]
    assert [c["tenantName"] for c in connections(xero, alice)] == ["Demo Company (AU)"]
    bob_conns = connections(xero, bob)
    assert [c["tenantName"] for c in bob_conns] == ["Bob's Org"]
    assert delete_connection(xero, alice, bob_conns[0]["id"]).status_code == 404


def test_delete_connection(xero: OAuthHarness[FakeXero]) -> None:
    token = xero.login()["access_token"]
    conn_id = connections(xero, token)[0]["id"]
    response = delete_connection(xero, token, conn_id)
    assert response.status_code == 204
    assert response.content == b""
    assert connections(xero, token) == []
    assert delete_connection(xero, token, conn_id).status_code == 404
    assert delete_connection(xero, token, str(uuid.uuid4())).status_code == 404


def test_connection_endpoints_need_a_bearer_token(xero: OAuthHarness[FakeXero]) -> None:
    assert requests.get(xero.url + "/connections", timeout=TIMEOUT).status_code == 401
    response = requests.delete(f"{xero.url}/connections/{uuid.uuid4()}", timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_says_token_expired(xero: OAuthHarness[FakeXero]) -> None:
    token = xero.login()["access_token"]
    xero.fake.advance(1800)
    response = xero.api_get(token)
    assert response.status_code == 401
    assert response.json()["Detail"].startswith("TokenExpired")


def test_paths_ignore_case_like_xero(xero: OAuthHarness[FakeXero]) -> None:
    token = xero.login()["access_token"]
    body = connections(xero, token, path="/Connections")
    response = requests.delete(
        f"{xero.url}/CONNECTIONS/{body[0]['id'].upper()}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 204


def install_organisation_endpoint(fake: FakeXero) -> None:
    """A stand-in for a later accounting module extending the fake."""

    def organisation(request: Request) -> Response:
        _, tenant = fake.connected_tenant(request)
        return json_response({"Organisations": [{"Name": tenant.name}]})

    fake.route("/api.xro/2.0/Organisation", organisation)


def test_extensions_get_tenant_checked_endpoints() -> None:
    fake = FakeXero(extensions=[install_organisation_endpoint])
    tenant_id = fake.add_tenant("Extended Org")
    other_org = fake.add_tenant("Not Consented")
    fake.consent_tenants = [tenant_id]
    with LoopbackServer(fake) as server:
        xero = OAuthHarness("xero", fake, server.url, "offline_access", "/connections")
        token = xero.login()["access_token"]

        def get(tenant: str | None, bearer: str | None = token) -> requests.Response:
            headers = {"xero-tenant-id": tenant} if tenant else {}
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            return requests.get(
                server.url + "/api.xro/2.0/Organisation", headers=headers, timeout=TIMEOUT
            )

        assert get(tenant_id).json() == {"Organisations": [{"Name": "Extended Org"}]}
        assert get(other_org).status_code == 403
        assert get(None).status_code == 403
        assert get(tenant_id, bearer=None).status_code == 401
