"""Issue #12: a strict CSP on every response - the install, connect, setup and message pages
included - with framing by the CRMs only on the CRM pages, and nothing inline to break."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import requests

from app.views.common import CRM_FRAMED_BLUEPRINTS
from tests.helpers import form_fields
from tests.test_no_500 import GARBAGE_QUERY, _routes
from tests.test_settings_page import hubspot_admin, page  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
STRICT = {"default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
          "object-src": "'none'", "base-uri": "'none'"}


def policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else ""
            for d in (part.strip() for part in header.split(";")) if d}


def assert_strict(response, framed: bool, where: str) -> None:
    csp = policy(response)
    for directive, value in STRICT.items():
        assert csp.get(directive) == value, (where, directive, csp)
    assert csp.get("form-action", "").startswith("'self'"), where
    assert "unsafe" not in response.headers["Content-Security-Policy"], where
    if framed:
        assert "pipedrive.com" in csp["frame-ancestors"] and "hubspot.com" in csp["frame-ancestors"], where
    else:
        assert csp["frame-ancestors"] == "'none'" and response.headers["X-Frame-Options"] == "DENY", where
    assert response.headers["Referrer-Policy"] == "no-referrer", where


def test_every_route_answers_with_the_strict_policy(app_factory):
    flask_app = app_factory.create(hubspot_client_id="id", hubspot_client_secret="secret",
                                   pipedrive_client_id="id", pipedrive_client_secret="secret",
                                   xero_client_id="id", xero_client_secret="secret",
                                   xero_webhook_key="key")
    client = flask_app.test_client()
    blueprints = {rule.rule: rule.endpoint.split(".")[0] for rule in flask_app.url_map.iter_rules()}
    seen_html = 0
    for method, path in _routes(flask_app):
        response = client.open(path, method=method, query_string=GARBAGE_QUERY,
                               data={"csrf_token": "x"} if method != "GET" else None)
        endpoint = flask_app.url_map.bind("localhost").match(path, method=method)[0]
        framed = endpoint.split(".")[0] in CRM_FRAMED_BLUEPRINTS
        assert_strict(response, framed, f"{method} {path} -> {response.status_code}")
        seen_html += response.mimetype == "text/html"
    assert seen_html > 10 and blueprints


def test_a_crm_page_may_be_framed_by_the_crms_and_a_top_level_page_by_nobody(hubspot_admin, browser):
    ctx = hubspot_admin
    settings = page(ctx)
    assert_strict(settings, True, "settings page")
    assert settings.headers["Cache-Control"] == "no-store"
    home = requests.get(f"{ctx['url']}/", timeout=10)
    assert_strict(home, False, "home (message page)")


def test_the_xero_confirmation_may_post_on_to_xeros_authorize_page_only(hubspot_admin, browser):
    """CSP form-action governs the redirect after a submit: the confirm POST answers 302 to
    Xero's authorize URL, so that page (and only that page) names Xero's login origin."""
    ctx = hubspot_admin
    confirmation = browser.post(f"{ctx['url']}/connect/xero", allow_redirects=False,
                                data=form_fields(page(ctx).text, "/connect/xero"))
    assert confirmation.status_code == 200
    assert_strict(confirmation, False, "connect confirmation")
    go = browser.post(f"{ctx['url']}/connect/xero/confirm", allow_redirects=False,
                      data=form_fields(confirmation.text, "/connect/xero/confirm"))
    xero = urlsplit(go.headers["Location"])
    assert policy(confirmation)["form-action"] == f"'self' {xero.scheme}://{xero.netloc}"
    assert policy(page(ctx))["form-action"] == "'self'"


def test_no_template_has_inline_styles_or_scripts():
    """style-src 'self' blocks <style> blocks and style="" attributes; script-src 'self' inline
    scripts and on*= handlers (tests/test_pipedrive_sdk.py parses the scripts in detail)."""
    for path in sorted((ROOT / "app" / "templates").glob("*.html")):
        text = path.read_text()
        assert not re.search(r"<style\b", text, re.I), path.name
        assert not re.search(r"\sstyle\s*=", text, re.I), path.name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text, re.I), path.name
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), path.name
