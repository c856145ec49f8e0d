"""Pipedrive's pages load @pipedrive/app-extensions-sdk from Paydeck's own pinned copy (no CDN),
under a CSP that allows scripts from Paydeck only; the deal panel links to the review queue,
which is a Pipedrive custom modal of its own."""

from __future__ import annotations

import hashlib
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests

from app.views.common import PIPEDRIVE_REVIEW_MODAL
from tests.conftest import fake_settings

ROOT = Path(__file__).resolve().parent.parent
SDK_VERSION = "0.15.1"
SDK_DIR = ROOT / "app" / "static" / "vendor" / "pipedrive-app-extensions-sdk" / SDK_VERSION
SDK_PATH = f"/static/vendor/pipedrive-app-extensions-sdk/{SDK_VERSION}/index.umd.js"


class Page(HTMLParser):
    """The scripts and links of a page, as a browser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_scripts: list[str] = []
        self.links: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.handlers += [f"<{tag} {name}>" for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = "src" not in attributes
        elif tag == "a":
            self.links.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def directives(csp: str) -> dict[str, list[str]]:
    parts = (d.split() for d in csp.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


@pytest.fixture
def pd(app_factory, fake_pipedrive, fake_xero, browser):
    pipedrive, _ = fake_pipedrive
    fake_xero[0].add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive, xero=fake_xero))
    browser.get(f"{url}/install/pipedrive")
    browser.get(f"{url}/connect/xero")
    return app, url, pipedrive


def assert_pipedrive_page_scripts(response: requests.Response) -> None:
    """Paydeck's copy of the SDK, then Paydeck's glue; nothing inline, nothing from elsewhere."""
    page = Page(response.text)
    sources = [s.get("src") or "" for s in page.scripts]
    # js/flash.js (pages that show a one-off message take it out of the URL) is Paydeck's own.
    assert [s for s in sources if s != "/static/js/flash.js"] == [
        "/static/js/pages.js", SDK_PATH, "/static/js/pipedrive.js"], sources
    assert page.inline_scripts == [] and page.handlers == []
    assert "jsdelivr" not in response.text and "cdn." not in response.text
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]


def test_the_deal_panel_loads_the_sdk_from_paydeck_and_links_to_the_review_queue(pd):
    app, url, pipedrive = pd
    deal_id = pipedrive.api.add_deal("Website")

    response = requests.get(pipedrive.panel_url(f"{url}/pipedrive/panel/deal", "deal", deal_id), timeout=10)

    assert response.status_code == 200 and f"/ui/deal/{deal_id}?" in response.url
    query = parse_qs(urlsplit(response.url).query)
    # Pipedrive's `id` survives the redirect: the SDK reads it from the URL (its README).
    assert query["pd"] == ["1"] and query["id"] == [str(deal_id)]
    assert_pipedrive_page_scripts(response)
    [review] = [a for a in Page(response.text).links if a.get("data-pipedrive-modal")]
    assert review["data-pipedrive-modal"] == PIPEDRIVE_REVIEW_MODAL
    queue = requests.get(urljoin(response.url, review["href"] or ""), timeout=10)
    assert queue.status_code == 200 and "Needs attention" in queue.text
    assert_pipedrive_page_scripts(queue)  # the queue, opened in the panel, is a Pipedrive page too


@pytest.mark.parametrize("path", [SDK_PATH, "/static/js/pipedrive.js", "/static/js/pages.js"])
def test_the_scripts_are_served_by_paydeck_as_javascript(pd, path):
    app, url, pipedrive = pd

    response = requests.get(f"{url}{path}", timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript")
    if path == SDK_PATH:
        assert response.content == (SDK_DIR / "index.umd.js").read_bytes()
        assert b"AppExtensionsSDK" in response.content  # the UMD build's global


def test_the_vendored_sdk_is_npms_release_with_its_licence():
    """SOURCE.md names the npm tarball and the file's sha256; an edited copy fails here."""
    source = (SDK_DIR / "SOURCE.md").read_text()
    stated = re.search(r"sha256 of `index.umd.js`: `([0-9a-f]{64})`", source)
    assert stated is not None
    assert hashlib.sha256((SDK_DIR / "index.umd.js").read_bytes()).hexdigest() == stated.group(1)
    assert f"app-extensions-sdk-{SDK_VERSION}.tgz" in source
    licence = (SDK_DIR / "LICENSE.md").read_text()
    assert "MIT License" in licence and "Pipedrive" in licence
    template = (ROOT / "app" / "templates" / "_pipedrive_sdk.html").read_text()
    assert f"vendor/pipedrive-app-extensions-sdk/{SDK_VERSION}/index.umd.js" in template


def test_the_review_modal_verifies_its_jwt_and_opens_the_queue(pd):
    app, url, pipedrive = pd
    modal = f"{url}/pipedrive/modal/review"

    response = requests.get(pipedrive.panel_url(modal, "deal", 1), timeout=10)

    assert response.status_code == 200 and "/ui/review/" in response.url
    assert parse_qs(urlsplit(response.url).query)["pd"] == ["1"]
    assert "Needs attention" in response.text
    assert_pipedrive_page_scripts(response)

    def load(secret: str, **claims: object) -> int:
        token = jwt.encode({"companyId": pipedrive.company_id, "userId": pipedrive.user_id,
                            "exp": int(time.time()) + 300, **claims}, secret, algorithm="HS256")
        return requests.get(modal, params={"token": token}, timeout=10,
                            allow_redirects=False).status_code

    assert load(pipedrive.client_secret) == 302
    assert load("forged-secret-of-at-least-32-bytes-long") == 401
    assert load(pipedrive.client_secret, exp=int(time.time()) - 10) == 401
    assert load(pipedrive.client_secret, companyId=1) == 404
    assert requests.get(modal, timeout=10).status_code == 401


def test_no_template_runs_inline_script():
    """script-src 'self' blocks inline <script> and on*= handlers: none may be left to break."""
    for path in sorted((ROOT / "app" / "templates").glob("*.html")):
        page = Page(path.read_text())
        assert page.inline_scripts == [], path.name
        assert page.handlers == [], path.name
        assert all((s.get("src") or "").startswith("{{ url_for('static'") for s in page.scripts), path.name
