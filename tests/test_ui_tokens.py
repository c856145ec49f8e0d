"""Issue #12, tokens: short opaque page tokens, single-purpose action tokens, no renewal.

Every test replays the attack over HTTP against a served app (the real Redis-backed token
store) and checks it is refused and that nothing happened.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from rq import Queue
from sqlalchemy import select

from app.extensions import db
from app.queueing import QUEUE
from app.models import (
    ConnectionStatus,
    Installation,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
    XeroConnection,
)
from app.redis_conn import get_redis
from app.ui_auth import View, issue_view_token
from tests.helpers import form_fields
from tests.test_cards import INSTALLER, card, card_get  # noqa: F401 - the served, Xero-connected app
from tests.test_settings_page import Form, form_of, hubspot_admin, page  # noqa: F401


def _t(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def _card(ctx, object_type: str = "deals", object_id: str | None = None, **extra) -> dict:
    app, url, hubspot, deal_id = ctx
    return card_get(url, hubspot.client_secret, {
        "portalId": hubspot.portal_id, "objectType": object_type,
        # The installing admin: under the default "owners and admins act" a rep who does not
        # own the deal gets no action forms (tests/test_record_access.py covers that).
        "objectId": object_id or deal_id, "userEmail": INSTALLER, **extra}).json()


def _queued(app) -> int:
    with app.app_context():
        return Queue(QUEUE, connection=get_redis()).count


def _review_items(app, installation_id: int, deal_id: str, n: int = 2) -> list[int]:
    with app.app_context():
        items = [ReviewItem(installation_id=installation_id, deal_id=deal_id,
                            reason=ReviewReason.NO_LINE_ITEMS, detail=f"item {i}", action="authorise")
                 for i in range(n)]
        db.session.add_all(items)
        db.session.commit()
        return [i.id for i in items]


def _status(app, item_id: int) -> ReviewStatus:
    with app.app_context():
        return db.session.get(ReviewItem, item_id).status


def _installation_id(app) -> int:
    with app.app_context():
        return db.session.scalars(select(Installation.id)).one()


# --- short page tokens ------------------------------------------------------------------------

def test_page_urls_carry_a_short_opaque_token_not_a_jwt(card):
    body = _card(card)

    for key in ("open_url", "review_url"):
        token = _t(body[key])
        assert len(token) == 22 and "." not in token, token  # was a ~250-character JWT
        assert len(body[key]) < 120, body[key]


# --- one token, one purpose ---------------------------------------------------------------------

def test_a_page_token_cannot_push_and_a_push_token_cannot_open_a_page(card):
    app, url, _, deal_id = card
    open_url = _card(card)["open_url"]
    push = form_fields(requests.get(open_url, timeout=10).text, f"/ui/deal/{deal_id}/push")
    queued = _queued(app)

    with_page_token = requests.post(f"{url}/ui/deal/{deal_id}/push", data={"a": _t(open_url)}, timeout=10)
    in_the_old_field = requests.post(f"{url}/ui/deal/{deal_id}/push", data={"t": _t(open_url)}, timeout=10)
    page_with_push_token = requests.get(f"{url}/ui/deal/{deal_id}", params={"t": push["a"]}, timeout=10)

    assert (with_page_token.status_code, in_the_old_field.status_code) == (401, 401)
    assert page_with_push_token.status_code == 401
    assert _queued(app) == queued  # nothing was asked of the engine


def test_a_push_token_is_used_once(card):
    app, url, _, deal_id = card
    push = form_fields(requests.get(_card(card)["open_url"], timeout=10).text, f"/ui/deal/{deal_id}/push")
    queued = _queued(app)

    first = requests.post(f"{url}/ui/deal/{deal_id}/push", data=push, timeout=10)
    replayed = requests.post(f"{url}/ui/deal/{deal_id}/push", data=push, timeout=10)

    assert first.status_code == 200 and "The card updates in a few seconds." in first.text
    assert replayed.status_code == 401
    assert _queued(app) == queued + 1


def test_a_push_token_cannot_push_another_deal_retry_or_dismiss(card):
    app, url, _, deal_id = card
    installation_id = _installation_id(app)
    (item,) = _review_items(app, installation_id, deal_id, 1)
    push = form_fields(requests.get(_card(card)["open_url"], timeout=10).text, f"/ui/deal/{deal_id}/push")
    queued = _queued(app)

    other_deal = requests.post(f"{url}/ui/deal/424242/push", data=push, timeout=10)
    retry = requests.post(f"{url}/ui/deal/{deal_id}/review/{item}/retry", data=push, timeout=10)
    dismiss = requests.post(f"{url}/ui/review/{installation_id}/{item}/dismiss", data=push, timeout=10)

    assert (other_deal.status_code, retry.status_code, dismiss.status_code) == (401, 401, 401)
    assert _status(app, item) == ReviewStatus.OPEN and _queued(app) == queued
    # ... and the refusals did not spend it: the push it was minted for still works.
    assert requests.post(f"{url}/ui/deal/{deal_id}/push", data=push, timeout=10).status_code == 200


def test_review_tokens_are_per_item_and_per_verb(card):
    app, url, _, deal_id = card
    installation_id = _installation_id(app)
    first, second = _review_items(app, installation_id, deal_id)
    queue = requests.get(_card(card)["review_url"], timeout=10).text
    retry_first = form_fields(queue, f"/{first}/retry")
    dismiss_first = form_fields(queue, f"/{first}/dismiss")

    retry_as_dismiss = requests.post(f"{url}/ui/review/{installation_id}/{first}/dismiss",
                                     data=retry_first, timeout=10)
    for_another_item = requests.post(f"{url}/ui/review/{installation_id}/{second}/dismiss",
                                     data=dismiss_first, timeout=10)
    deal_page_retry = form_fields(requests.get(_card(card)["open_url"], timeout=10).text,
                                  f"/review/{first}/retry")
    from_the_deal_page = requests.post(f"{url}/ui/review/{installation_id}/{first}/dismiss",
                                       data=deal_page_retry, timeout=10)

    assert (retry_as_dismiss.status_code, for_another_item.status_code,
            from_the_deal_page.status_code) == (401, 401, 401)
    assert _status(app, first) == _status(app, second) == ReviewStatus.OPEN
    done = requests.post(f"{url}/ui/review/{installation_id}/{first}/dismiss", data=dismiss_first, timeout=10)
    again = requests.post(f"{url}/ui/review/{installation_id}/{first}/dismiss", data=dismiss_first, timeout=10)
    assert "Dismissed." in done.text and again.status_code == 401
    assert _status(app, first) == ReviewStatus.DISMISSED and _status(app, second) == ReviewStatus.OPEN


def test_a_link_token_cannot_import_and_is_used_once(card, fake_xero):
    app, url, hubspot, deal_id = card
    xero, _ = fake_xero
    contact = xero.accounting(xero.tenants[0].tenant_id).add_contact("Initech Holdings")
    company_id = hubspot.crm.associated_ids("deals", deal_id, "companies")[0]
    found = requests.get(_card(card, "companies", company_id)["open_url"], params={"q": "initech"},
                         timeout=10)
    link = {**form_fields(found.text, "/link"), "contact_id": contact.contact_id}

    as_import = requests.post(f"{url}/ui/company/{company_id}/import", data=link, timeout=10)
    linked = requests.post(f"{url}/ui/company/{company_id}/link", data=link, timeout=10)
    replayed = requests.post(f"{url}/ui/company/{company_id}/link", data=link, timeout=10)

    assert as_import.status_code == 401
    assert linked.status_code == 200 and "Linked to Initech Holdings" in linked.text
    assert replayed.status_code == 401


def test_settings_save_and_disconnect_tokens_are_single_purpose_and_single_use(hubspot_admin):
    ctx = hubspot_admin
    app, url, installation_id = ctx["app"], ctx["url"], ctx["installation_id"]
    settings = page(ctx).text
    save = form_of(ctx, page(ctx)).rule("default", "closedwon", "draft")
    disconnect = form_fields(settings, f"/ui/settings/{installation_id}/disconnect")
    save_path, disconnect_path = f"{url}/ui/settings/{installation_id}", f"{url}/ui/settings/{installation_id}/disconnect"
    page_token = _t(ctx["settings_url"])

    refused = [
        requests.post(save_path, data=[(k, v) for k, v in save.data() if k != "a"] + [("a", page_token)], timeout=10),
        requests.post(save_path, data=[(k, v) for k, v in save.data() if k != "a"] + [("a", disconnect["a"])], timeout=10),
        requests.post(disconnect_path, data={"a": page_token}, timeout=10),
        requests.post(disconnect_path, data={"a": save.values("a")[0]}, timeout=10),
        requests.get(save_path, params={"t": save.values("a")[0]}, timeout=10),  # an action token opens nothing
    ]
    assert [r.status_code for r in refused] == [401] * 5
    with app.app_context():
        assert db.session.scalars(select(XeroConnection)).one().status == ConnectionStatus.CONNECTED

    saved = requests.post(save_path, data=save.data(), timeout=10)
    resaved = requests.post(save_path, data=save.data(), timeout=10)
    assert saved.status_code == 200 and "Saved." in saved.text and resaved.status_code == 401
    done = requests.post(disconnect_path, data=disconnect, timeout=10)
    redone = requests.post(disconnect_path, data=disconnect, timeout=10)
    assert "Disconnected from Xero." in done.text and redone.status_code == 401


def test_xero_connect_needs_the_connect_token_and_confirm_spends_it(hubspot_admin, browser):
    ctx = hubspot_admin
    url = ctx["url"]
    settings = page(ctx).text
    connect = form_fields(settings, "/connect/xero")
    save_token = form_of(ctx, page(ctx)).values("a")[0]

    with_page_token = browser.post(f"{url}/connect/xero", data={"a": _t(ctx["settings_url"])}, allow_redirects=False)
    with_save_token = browser.post(f"{url}/connect/xero", data={"a": save_token}, allow_redirects=False)
    assert (with_page_token.status_code, with_save_token.status_code) == (401, 401)

    confirmation = browser.post(f"{url}/connect/xero", data=connect, allow_redirects=False)
    go = Form(confirmation.text, "/connect/xero/confirm").data()
    first = browser.post(f"{url}/connect/xero/confirm", data=go, allow_redirects=False)
    replayed = browser.post(f"{url}/connect/xero/confirm", data=go, allow_redirects=False)
    assert confirmation.status_code == 200 and first.status_code == 302
    assert replayed.status_code == 401


# --- no indefinite renewal ----------------------------------------------------------------------

LIFETIME = 3  # seconds: the first token of the chain


def test_a_chain_of_pages_and_actions_cannot_outlive_the_first_token(card):
    """Everything a page hands out expires with the token the page was opened with: links to
    other pages, form tokens, and the page an action redirects to."""
    app, url, _, deal_id = card
    installation_id = _installation_id(app)
    (item,) = _review_items(app, installation_id, deal_id, 1)
    with app.app_context():
        before = set(get_redis().scan_iter("paydeck:ui-token:*"))
        first = issue_view_token(View(installation_id, INSTALLER, "deal", deal_id), ttl=LIFETIME)
    born = time.time()

    deal_page = requests.get(f"{url}/ui/deal/{deal_id}", params={"t": first}, timeout=10)
    review_link = deal_page.text.split('href="')[1:]
    (review_link,) = [h.split('"')[0].replace("&amp;", "&") for h in review_link if "/ui/review/" in h]
    review_page = requests.get(review_link, timeout=10)
    dismiss = form_fields(review_page.text, f"/{item}/dismiss")
    retry = form_fields(deal_page.text, f"/review/{item}/retry")
    pushed = requests.post(f"{url}/ui/deal/{deal_id}/push", data=form_fields(deal_page.text, "/push"),
                           timeout=10, allow_redirects=False)
    after_push = f"{url}{pushed.headers['Location']}" if pushed.headers["Location"].startswith("/") \
        else pushed.headers["Location"]
    second_hop = requests.get(after_push, timeout=10)
    push_again = form_fields(second_hop.text, "/push")
    assert (review_page.status_code, pushed.status_code, second_hop.status_code) == (200, 302, 200)
    with app.app_context():  # and Redis was told so: no derived token outlives the first
        minted = set(get_redis().scan_iter("paydeck:ui-token:*")) - before
        ttls = [get_redis().ttl(k) for k in minted]
    assert len(ttls) >= 5 and max(ttls) <= LIFETIME  # page, review page, push, retry, dismiss...

    time.sleep(max(0.0, born + LIFETIME + 1.1 - time.time()))

    assert requests.get(review_link, timeout=10).status_code == 401
    assert requests.get(after_push, timeout=10).status_code == 401
    assert requests.post(f"{url}/ui/review/{installation_id}/{item}/dismiss", data=dismiss,
                         timeout=10).status_code == 401
    assert requests.post(f"{url}/ui/deal/{deal_id}/review/{item}/retry", data=retry,
                         timeout=10).status_code == 401
    assert requests.post(f"{url}/ui/deal/{deal_id}/push", data=push_again, timeout=10).status_code == 401
    assert _status(app, item) == ReviewStatus.OPEN


def test_the_settings_page_issues_nothing_that_outlives_its_token(hubspot_admin):
    ctx = hubspot_admin
    app, url, installation_id = ctx["app"], ctx["url"], ctx["installation_id"]
    with app.app_context():
        first = issue_view_token(View(installation_id, "admin", "settings", str(installation_id)),
                                 ttl=LIFETIME)
    born = time.time()
    opened = requests.get(f"{url}/ui/settings/{installation_id}", params={"t": first}, timeout=10)
    save = form_of(ctx, opened)
    saved = requests.post(f"{url}/ui/settings/{installation_id}", data=save.data(), timeout=10,
                          allow_redirects=False)
    reopened = f"{url}{saved.headers['Location']}"
    disconnect = form_fields(requests.get(reopened, timeout=10).text, f"/{installation_id}/disconnect")

    time.sleep(max(0.0, born + LIFETIME + 1.1 - time.time()))

    assert requests.get(reopened, timeout=10).status_code == 401
    assert requests.post(f"{url}/ui/settings/{installation_id}/disconnect", data=disconnect,
                         timeout=10).status_code == 401
    with app.app_context():
        assert db.session.scalars(select(XeroConnection)).one().status == ConnectionStatus.CONNECTED


def test_tokens_are_stored_hashed(card):
    """A copy of Redis hands out no usable token: only SHA-256 digests are keys."""
    app, _, _, _ = card
    token = _t(_card(card)["open_url"])
    with app.app_context():
        keys = [k.decode() if isinstance(k, bytes) else k for k in get_redis().scan_iter("paydeck:ui-token:*")]
        values = [get_redis().get(k) for k in keys]
    assert keys and all(token not in k for k in keys)
    assert all(token.encode() not in (v or b"") for v in values)


def test_with_redis_down_a_page_is_503_not_500(app_factory):
    """Tokens live in Redis: without it no page can be opened, and the answer says so."""
    app = app_factory.create(redis_url="redis://127.0.0.1:9/0")  # the discard port: refused
    client = app.test_client()

    page = client.get("/ui/deal/1", query_string={"t": "A" * 22})
    action = client.post("/ui/deal/1/push", data={"a": "A" * 22})

    assert (page.status_code, action.status_code) == (503, 503)


def test_of_eight_simultaneous_pushes_with_one_token_exactly_one_is_done(card):
    from concurrent.futures import ThreadPoolExecutor

    app, url, _, deal_id = card
    push = form_fields(requests.get(_card(card)["open_url"], timeout=10).text, f"/ui/deal/{deal_id}/push")
    queued = _queued(app)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{url}/ui/deal/{deal_id}/push", data=push,
                                                        timeout=10, allow_redirects=False).status_code,
                                range(8)))

    assert sorted(answers) == [302] + [401] * 7
    assert _queued(app) == queued + 1
