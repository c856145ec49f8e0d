"""FakePipedrive: api_domain, /users/me, revocation and the uninstall callback."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from sandbox import FakePipedrive, LoopbackServer

from .support import TIMEOUT, OAuthHarness

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Recorder:
    """A WSGI app that records every request and answers 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "body": request.get_data(),
                }
            )
        return Response("ok")(environ, start_response)


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    app = Recorder()
    with LoopbackServer(app) as server:
        yield app, server.url


def basic_credentials(headers: dict[str, str]) -> str:
    scheme, _, encoded = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(encoded).decode()


def test_token_response_has_api_domain_and_app_scopes(
    pipedrive: OAuthHarness[FakePipedrive],
) -> None:
    body = pipedrive.login(scope="ignored")
    assert body["api_domain"] == pipedrive.url
    assert body["scope"] == "base,deals:full,contacts:read,products:read,admin"
    refreshed = pipedrive.refresh(body["refresh_token"]).json()
    assert refreshed["api_domain"] == pipedrive.url


def test_users_me(pipedrive: OAuthHarness[FakePipedrive]) -> None:
    fake = pipedrive.fake
    token = pipedrive.login()["access_token"]
    body = pipedrive.api_get(token).json()
    assert body["success"] is True
    data = body["data"]
    assert data["id"] == fake.user_id
    assert data["company_id"] == 7788990
    assert (data["name"], data["email"]) == (fake.user_name, fake.user_email)
    assert (data["company_name"], data["company_domain"]) == (
        fake.company_name,
        fake.company_domain,
    )


def test_unauthorised_api_call_has_pipedrive_shape(pipedrive: OAuthHarness[FakePipedrive]) -> None:
    body = pipedrive.api_get("unknown").json()
    assert body["success"] is False
    assert body["errorCode"] == 401


def test_revoke_endpoint(pipedrive: OAuthHarness[FakePipedrive]) -> None:
    tokens = pipedrive.login()
    fake = pipedrive.fake
    response = requests.post(
        pipedrive.url + "/oauth/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(fake.client_id, fake.client_secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert pipedrive.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_uninstall_callback_is_sent_like_pipedrive(
    pipedrive: OAuthHarness[FakePipedrive], recorder: tuple[Recorder, str]
) -> None:
    app, url = recorder
    fake = pipedrive.fake
    tokens = pipedrive.login()
    response = fake.send_uninstall(url + "/pipedrive/uninstall")
    assert response.status_code == 200
    [sent] = app.requests
    assert (sent["method"], sent["path"]) == ("DELETE", "/pipedrive/uninstall")
    assert sent["headers"]["Content-Type"] == "application/json"
    assert basic_credentials(sent["headers"]) == f"{fake.client_id}:{fake.client_secret}"
    body = json.loads(sent["body"])
    assert set(body) == {"client_id", "company_id", "user_id", "timestamp"}
    assert (body["client_id"], body["company_id"], body["user_id"]) == (
        fake.client_id,
        7788990,
        fake.user_id,
    )
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert pipedrive.api_get(tokens["access_token"]).status_code == 401


def test_uninstall_can_send_wrong_credentials_and_keep_tokens(
    pipedrive: OAuthHarness[FakePipedrive], recorder: tuple[Recorder, str]
) -> None:
    app, url = recorder
    fake = pipedrive.fake
    tokens = pipedrive.login()
    fake.send_uninstall(url, client_secret="not-the-secret", revoke_tokens=False)
    assert basic_credentials(app.requests[0]["headers"]) == f"{fake.client_id}:not-the-secret"
    assert pipedrive.api_get(tokens["access_token"]).status_code == 200


def test_uninstall_revokes_only_that_company(
    pipedrive: OAuthHarness[FakePipedrive], recorder: tuple[Recorder, str]
) -> None:
    _, url = recorder
    fake = pipedrive.fake
    first = pipedrive.login()["access_token"]
    fake.company_id = 1234
    second = pipedrive.login()["access_token"]
    fake.send_uninstall(url, company_id=7788990)
    assert pipedrive.api_get(first).status_code == 401
    assert pipedrive.api_get(second).status_code == 200
