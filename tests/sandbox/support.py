"""An OAuth client for the fakes, speaking each vendor's dialect over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

import requests

from sandbox.kit.oauth import OAuthFake

TIMEOUT = 5.0
REDIRECT_URI = "https://paydeck.test/oauth/callback"

T = TypeVar("T")
F = TypeVar("F", bound=OAuthFake[Any])


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def run_concurrently(count: int, call: Callable[[int], T]) -> list[T]:
    """Run `call(i)` for i in range(count) on threads released together."""
    barrier = threading.Barrier(count)

    def gated(i: int) -> T:
        barrier.wait(timeout=TIMEOUT)
        return call(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(gated, i) for i in range(count)]
        return [future.result(timeout=2 * TIMEOUT) for future in futures]


class FormInputs(HTMLParser):
    """Collects the forms of an HTML page: action, hidden inputs, submit value."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": attr["action"], "method": attr["method"], "fields": {}})
        elif tag in ("input", "button") and self.forms and "name" in attr:
            self.forms[-1]["fields"][attr["name"]] = attr.get("value", "")


@dataclass
class OAuthHarness(Generic[F]):
    """A running fake plus a client that authenticates the way its vendor wants."""

    name: str
    fake: F
    url: str
    scope: str
    api_path: str
    """An endpoint that needs a bearer token."""

    def authorize(self, **overrides: str | None) -> requests.Response:
        """GET the authorize endpoint; a None override drops that parameter."""
        params: dict[str, str | None] = {
            "client_id": self.fake.client_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": self.scope,
            "state": "st-123",
            **overrides,
        }
        sent = {k: v for k, v in params.items() if v is not None}
        return requests.get(
            self.url + self.fake.authorize_path, params=sent, allow_redirects=False, timeout=TIMEOUT
        )

    def authorize_code(self, **overrides: str | None) -> str:
        response = self.authorize(**overrides)
        assert response.status_code == 302, response.text
        return query_of(response.headers["Location"])["code"]

    def token(
        self,
        form: dict[str, str],
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        style: str | None = None,
    ) -> requests.Response:
        cid = client_id or self.fake.client_id
        secret = client_secret or self.fake.client_secret
        data = dict(form)
        auth = None
        if (style or self.fake.client_auth) == "basic":
            auth = (cid, secret)
        else:
            data.update(client_id=cid, client_secret=secret)
        return requests.post(self.url + self.fake.token_path, data=data, auth=auth, timeout=TIMEOUT)

    def exchange(
        self, code: str, redirect_uri: str = REDIRECT_URI, **extra: str
    ) -> requests.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            **extra,
        }
        return self.token(form)

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def login(self, **overrides: str | None) -> dict[str, Any]:
        response = self.exchange(self.authorize_code(**overrides))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def api_get(self, access_token: str | None, path: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {access_token}"} if access_token is not None else {}
        return requests.get(self.url + (path or self.api_path), headers=headers, timeout=TIMEOUT)
