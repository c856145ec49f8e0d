"""Sessions that do not die (issue #14, part 3): every UI route refuses an expired token with
the styled "This view has expired, reopen the card" page (401), never a bare 401; inside
Pipedrive that page names the JWT-verified entry the page renews itself through
(app/static/js/pipedrive.js: GET_SIGNED_TOKEN), and live pages say when they expire."""

from __future__ import annotations

import re
import time

import jwt
import pytest
import requests

from app.extensions import db
from app.models import CrmKind, Installation
from app.redis_conn import get_redis
from app.ui_auth import View, issue_action_token, issue_view_token

EXPIRED = "This view has expired, reopen the card."
STYLESHEET = '<link rel="stylesheet" href="/static/css/pages.css">'
SDK = "vendor/pipedrive-app-extensions-sdk/0.15.1/index.umd.js"
PD_SECRET = "pd-secret-of-at-least-32-bytes-long"

# Every /ui/ route, with the view its token names and the form action it takes (None: a page).
UI_ROUTES = {
    ("GET", "/ui/deal/<deal_id>"): ("deal", "12", None),
    ("POST", "/ui/deal/<deal_id>/push"): ("deal", "12", "push"),
    ("POST", "/ui/deal/<deal_id>/review/<int:item_id>/retry"): ("deal", "12", "retry"),
    ("GET", "/ui/deal/<deal_id>/invoice.pdf"): ("deal", "12", None),
    ("POST", "/ui/deal/<deal_id>/email"): ("deal", "12", "email"),
    ("GET", "/ui/company/<company_id>"): ("company", "34", None),
    ("POST", "/ui/company/<company_id>/link"): ("company", "34", "link"),
    ("POST", "/ui/company/<company_id>/import"): ("company", "34", "import"),
    ("POST", "/ui/company/<company_id>/unlink"): ("company", "34", "unlink"),
    ("GET", "/ui/review/<int:installation_id>"): ("review", "{ins}", None),
    ("GET", "/ui/review/<int:installation_id>/activity.csv"): ("review", "{ins}", None),
    ("POST", "/ui/review/<int:installation_id>/<int:item_id>/<any(retry, dismiss, keep, resend, use_xero, use_crm, pick_0, pick_1, pick_2, pick_3):verb>"):
        ("review", "{ins}", "dismiss"),
    ("GET", "/ui/settings/<int:installation_id>"): ("settings", "{ins}", None),
    ("POST", "/ui/settings/<int:installation_id>"): ("settings", "{ins}", "save"),
    ("POST", "/ui/settings/<int:installation_id>/disconnect"): ("settings", "{ins}", "disconnect"),
    ("GET", "/ui/settings/<int:installation_id>/contact-match"): ("settings", "{ins}", None),
    ("GET", "/ui/settings/<int:installation_id>/contact-match/status"): ("settings", "{ins}", None),
    ("POST", "/ui/settings/<int:installation_id>/contact-match/start"):
        ("settings", "{ins}", "match_start"),
    ("POST", "/ui/settings/<int:installation_id>/contact-match/apply"):
        ("settings", "{ins}", "match_apply"),
}
ENTRIES = {"deal": "/pipedrive/panel/deal?selectedIds=12",
           "company": "/pipedrive/panel/organization?selectedIds=34",
           "review": "/pipedrive/modal/review", "settings": "/pipedrive/settings"}


@pytest.fixture
def served(app_factory):
    app, url = app_factory.serve(pipedrive_client_secret=PD_SECRET)
    with app.app_context():
        installation = Installation(crm=CrmKind.PIPEDRIVE, account_id="7788990", installed_by="5")
        db.session.add(installation)
        db.session.commit()
        get_redis().set(f"paydeck:crm-user:{installation.id}:5", '{"admin": true, "email": "a@x.example"}')
        return app, url, installation.id


def _path(rule: str, object_id: str, ins: int) -> str:
    path = rule
    for name in ("<deal_id>", "<company_id>"):
        path = path.replace(name, object_id)
    return (path.replace("<int:installation_id>", str(ins)).replace("<int:item_id>", "9")
            .replace("<any(retry, dismiss, keep, resend, use_xero, use_crm, pick_0, pick_1, pick_2, pick_3):verb>", "dismiss"))


def test_the_table_covers_every_ui_route(served):
    app, _, _ = served
    rules = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/ui/")
             for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert rules == set(UI_ROUTES)


@pytest.mark.parametrize("pipedrive", [False, True], ids=["hubspot", "pipedrive"])
@pytest.mark.parametrize("route", list(UI_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_every_ui_route_answers_an_expired_token_with_the_styled_page(served, route, pipedrive):
    app, url, ins = served
    method, rule = route
    kind, object_id, action = UI_ROUTES[route]
    object_id = object_id.format(ins=ins)
    with app.app_context():
        view = View(ins, "5", kind, object_id)
        # Born dead (ttl -1) exactly as a token past its 15 minutes: Redis no longer has it.
        token = (issue_view_token(view, ttl=-1) if action is None
                 else issue_action_token(view, action, "9" if "item_id" in rule else "", ttl=-1))
    path = _path(rule, object_id, ins)
    if method == "GET":
        answer = requests.get(f"{url}{path}", params={"t": token, **({"pd": "1"} if pipedrive else {})},
                              timeout=10)
    else:
        answer = requests.post(f"{url}{path}", data={"a": token, **({"pd": "1"} if pipedrive else {})},
                               timeout=10)

    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<h1>This view has expired</h1>" in answer.text and EXPIRED in answer.text
    assert STYLESHEET in answer.text  # Paydeck's page, not Werkzeug's "Unauthorized"
    assert "Unauthorized" not in answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" not in answer.headers["Content-Security-Policy"]  # shown in the CRM's iframe
    renew = re.search(r'data-renew-url="([^"]*)"', answer.text)
    if pipedrive:
        assert renew and renew.group(1).replace("&amp;", "&") == ENTRIES[kind]
        assert 'data-renew-auto="1"' in answer.text and SDK in answer.text
    else:
        assert renew is None and SDK not in answer.text  # HubSpot: the card reopens it fresh


def test_a_forged_or_missing_token_gets_the_styled_page_too(served):
    _, url, _ = served
    for params in ({}, {"t": "x" * 22}, {"t": "y" * 200}):
        answer = requests.get(f"{url}/ui/deal/12", params=params, timeout=10)
        assert answer.status_code == 401 and EXPIRED in answer.text and STYLESHEET in answer.text


def test_a_form_sent_twice_gets_the_styled_page(served):
    app, url, ins = served
    with app.app_context():
        token = issue_action_token(View(ins, "5", "review", str(ins)), "dismiss", "9")
    first = requests.post(f"{url}/ui/review/{ins}/9/dismiss", data={"a": token}, timeout=10)
    again = requests.post(f"{url}/ui/review/{ins}/9/dismiss", data={"a": token}, timeout=10)
    assert first.status_code == 404  # no item 9: the token was spent all the same
    assert again.status_code == 401 and EXPIRED in again.text  # a spent token is gone
    assert STYLESHEET in again.text


@pytest.mark.parametrize("entry, query", [
    ("/pipedrive/panel/deal", {"selectedIds": "12", "id": "ext-1"}),
    ("/pipedrive/panel/organization", {"selectedIds": "34"}),
    ("/pipedrive/modal/review", {}),
    ("/pipedrive/settings", {}),
])
def test_an_expired_pipedrive_jwt_gets_the_styled_page_that_renews_through_the_same_entry(served, entry, query):
    _, url, _ = served
    stale = jwt.encode({"companyId": 7788990, "userId": 5, "exp": int(time.time()) - 10}, PD_SECRET,
                       algorithm="HS256")
    answer = requests.get(f"{url}{entry}", params={**query, "token": stale}, timeout=10,
                          allow_redirects=False)
    assert answer.status_code == 401 and EXPIRED in answer.text and SDK in answer.text
    renew = re.search(r'data-renew-url="([^"]*)"', answer.text).group(1).replace("&amp;", "&")
    assert renew.split("?")[0] == entry and "token=" not in renew
    for key, value in query.items():
        assert f"{key}={value}" in renew


def test_a_live_page_says_when_its_token_expires(served):
    app, url, ins = served
    with app.app_context():
        token = issue_view_token(View(ins, "5", "review", str(ins)))
    before = time.time()
    page = requests.get(f"{url}/ui/review/{ins}", params={"t": token, "pd": "1"}, timeout=10)
    expires = int(re.search(r'<body data-expires-at="(\d+)"', page.text).group(1))
    assert page.status_code == 200 and before + 890 <= expires <= before + 901
