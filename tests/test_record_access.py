"""Issue #12: record visibility and who sees money / who acts, each attack replayed over HTTP
against the fake CRMs and seen refused.

HubSpot: the card fetch is v3-signed by HubSpot over the whole URL (objectId included), the
view token binds the object; owners come from GET /crm/v3/owners?email= and the deal's
`hubspot_owner_id`; the installing user is the only admin Paydeck can know of.
Pipedrive: the panel JWT signs only userId and companyId, so the record id is checked against
Pipedrive (owner_id, visible_to, followers); admins from GET /v1/users/{id} `is_admin`.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Iterator
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Installation, InstallationSettings, InvoiceLink, InvoiceLinkState
from app.models import ReviewItem, ReviewReason, ReviewStatus
from app.settings import PIPEDRIVE_SCOPES
from crm_adapters.hubspot import sign_v3
from sandbox.pipedrive import FakePipedrive
from sandbox.kit.server import LoopbackServer
from tests.conftest import fake_settings
from tests.test_cards import INSTALLER, card, card_get  # noqa: F401  (the `card` fixture)
from tests.test_company_import import _work

REP, OTHER = "rep@example.com", "other@example.com"
# What the deal page says once a push is enqueued (app/engine/push.py PushPlan.done).
PUSHED = "The card updates in a few seconds."


# --- helpers ------------------------------------------------------------------------------------

def _set(app, **values: str) -> None:
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        for name, value in values.items():
            setattr(settings, name, value)
        db.session.commit()


def _installation_id(app) -> int:
    with app.app_context():
        return db.session.scalars(select(Installation.id)).one()


def _invoice(app, deal_id: str, total: str = "330.00", contact_id: str | None = None) -> None:
    """An authorised invoice on the deal, as the engine records it (figures seeded, not
    computed: the tests look only for whether they are shown)."""
    with app.app_context():
        db.session.add(InvoiceLink(installation_id=_installation_id(app), deal_id=deal_id,
                                   reference=f"deal {deal_id}", idempotency_key=f"k{deal_id}",
                                   state=InvoiceLinkState.CREATED, status="AUTHORISED",
                                   deal_status="awaiting_payment", xero_invoice_id=f"inv-{deal_id}",
                                   xero_contact_id=contact_id, invoice_number=f"INV-{deal_id}",
                                   currency="AUD", total=Decimal(total), amount_due=Decimal(total),
                                   amount_paid=Decimal("0")))
        db.session.commit()


def _refusals(app) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).where(AuditEvent.action == "access_refused")).all()


def _links(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(InvoiceLink)).all())


# --- HubSpot --------------------------------------------------------------------------------------

@pytest.fixture
def hub(card):
    """The card fixture plus two reps who are HubSpot owners; a deal owned by REP."""
    app, url, hubspot, _ = card
    rep_owner = hubspot.crm.add_owner(REP, "Rae", "Rep")
    hubspot.crm.add_owner(OTHER, "Otto", "Other")
    company = hubspot.crm.add_company(name="Globex", hubspot_owner_id=rep_owner)
    deal_id = hubspot.crm.add_deal(dealname="Rep's deal", company_id=company,
                                   hubspot_owner_id=rep_owner, amount="100")
    return app, url, hubspot, deal_id, company


def _card(hub, user: str, object_id: str, object_type: str = "deals") -> dict:
    app, url, hubspot, *_ = hub
    response = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": object_type,
                                                     "objectId": object_id, "userEmail": user})
    assert response.status_code == 200
    return response.json()


def _token(page_url: str) -> str:
    return requests.utils.unquote(page_url.split("t=")[1].split("&")[0])


def _action(app, page_token: str, action: str, target: object = "") -> str:
    """The action token the page opened with `page_token` would carry in its form. The page
    leaves the form out for a viewer who may not act, but the server must refuse the action
    all the same (the setting may change while a page is open), so the tests mint it."""
    from app.ui_auth import View, _lookup, issue_action_token

    with app.test_request_context():
        claims = _lookup(page_token, "missing")
        view = View(int(claims["ins"]), str(claims["usr"]), str(claims["typ"]), str(claims["oid"]),
                    int(claims["na"]))
        return issue_action_token(view, action, str(target))


def test_hubspot_a_rep_who_does_not_own_the_deal_cannot_push_by_default(hub):
    app, url, hubspot, deal_id, _ = hub

    other = _card(hub, OTHER, deal_id)
    page = requests.get(other["open_url"], timeout=10)
    pushed = requests.post(f"{url}/ui/deal/{deal_id}/push", data={"a": _action(app, _token(other["open_url"]), "push")}, timeout=10)

    assert other["may_act"] is False
    assert page.status_code == 200 and "Push to Xero" not in page.text
    assert pushed.status_code == 403 and "owner and admins" in pushed.text
    (refusal,) = _refusals(app)
    assert refusal.detail == {"user": OTHER, "kind": "deal", "record_id": deal_id, "action": "push",
                              "reason": "only the deal's owner and admins may push"}
    assert _links(app) == 0  # nothing was queued, so nothing was booked


@pytest.mark.parametrize("who", [REP, INSTALLER])
def test_hubspot_the_deal_owner_and_the_admin_may_push(hub, who):
    app, url, hubspot, deal_id, _ = hub
    body = _card(hub, who, deal_id)

    pushed = requests.post(f"{url}/ui/deal/{deal_id}/push", data={"a": _action(app, _token(body["open_url"]), "push")}, timeout=10)

    assert body["may_act"] is True
    assert pushed.status_code == 200 and PUSHED in pushed.text, pushed.text
    assert _refusals(app) == []


def test_hubspot_admins_only_actions_refuse_the_owner_too(hub):
    app, url, hubspot, deal_id, _ = hub
    _set(app, action_permission="admins")

    pushed = requests.post(f"{url}/ui/deal/{deal_id}/push",
                           data={"a": _action(app, _token(_card(hub, REP, deal_id)["open_url"]), "push")}, timeout=10)

    assert pushed.status_code == 403 and "only admins" in pushed.text


def test_hubspot_review_retry_and_dismiss_follow_the_action_setting(hub):
    app, url, hubspot, deal_id, _ = hub
    with app.app_context():
        installation_id = _installation_id(app)
        items = [ReviewItem(installation_id=installation_id, deal_id=deal_id, reason=ReviewReason.NO_LINE_ITEMS,
                            detail="deal amount 100.00 but no line items", action="authorise")
                 for _ in range(3)]
        db.session.add_all(items)
        db.session.commit()
        first, second, third = (i.id for i in items)

    other_review = _token(_card(hub, OTHER, deal_id)["review_url"])
    other_deal = _token(_card(hub, OTHER, deal_id)["open_url"])
    refused = [requests.post(f"{url}/ui/review/{installation_id}/{first}/dismiss", data={"a": _action(app, other_review, "dismiss", first)}, timeout=10),
               requests.post(f"{url}/ui/review/{installation_id}/{first}/retry", data={"a": _action(app, other_review, "retry", first)}, timeout=10),
               requests.post(f"{url}/ui/deal/{deal_id}/review/{first}/retry", data={"a": _action(app, other_deal, "retry", first)}, timeout=10)]
    owner = requests.post(f"{url}/ui/review/{installation_id}/{second}/dismiss",
                          data={"a": _action(app, _token(_card(hub, REP, deal_id)["review_url"]), "dismiss", second)}, timeout=10)
    admin = requests.post(f"{url}/ui/review/{installation_id}/{third}/dismiss",
                          data={"a": _action(app, _token(_card(hub, INSTALLER, deal_id)["review_url"]), "dismiss", third)}, timeout=10)

    assert [r.status_code for r in refused] == [403, 403, 403]
    assert owner.status_code == 200 and "Dismissed." in owner.text
    assert admin.status_code == 200 and "Dismissed." in admin.text
    with app.app_context():
        statuses = dict(db.session.execute(select(ReviewItem.id, ReviewItem.status)).all())
    assert statuses == {first: ReviewStatus.OPEN, second: ReviewStatus.DISMISSED, third: ReviewStatus.DISMISSED}
    assert [e.detail["action"] for e in _refusals(app)] == ["dismiss", "retry", "retry"]


def test_hubspot_money_is_hidden_from_reps_when_only_admins_may_see_it(hub):
    app, url, hubspot, deal_id, _ = hub
    _invoice(app, deal_id, "4321.00")
    _set(app, money_visibility="admins")

    rep = _card(hub, REP, deal_id)  # the owner, but not an admin
    page = requests.get(rep["open_url"], timeout=10)
    admin = _card(hub, INSTALLER, deal_id)

    for key in ("total", "amount_due", "amount_paid", "invoice_url"):
        assert key not in rep, key
    assert rep["amounts_hidden"] == "Amounts hidden by your admin's settings"
    assert rep["invoice_number"] == f"INV-{deal_id}" and rep["invoiced"] is True
    assert "4,321.00" not in page.text and "4321" not in page.text
    assert "Amounts hidden by your admin&#39;s settings" in page.text
    assert admin["total"] == "4321.00" and "amounts_hidden" not in admin
    assert "4,321.00" in requests.get(admin["open_url"], timeout=10).text  # Babel-formatted


def test_hubspot_owners_and_admins_money_shows_the_owner_and_hides_other_reps(hub):
    app, url, hubspot, deal_id, _ = hub
    _invoice(app, deal_id, "4321.00")
    _set(app, money_visibility="owners_and_admins")

    assert _card(hub, REP, deal_id)["total"] == "4321.00"
    assert "total" not in _card(hub, OTHER, deal_id)


def test_hubspot_everyone_sees_money_by_default(hub):
    app, url, hubspot, deal_id, _ = hub
    _invoice(app, deal_id, "4321.00")

    other = _card(hub, OTHER, deal_id)

    assert other["total"] == "4321.00" and "amounts_hidden" not in other
    assert "4,321.00" in requests.get(other["open_url"], timeout=10).text


def test_hubspot_company_page_hides_what_is_owed_and_refuses_linking(hub):
    app, url, hubspot, deal_id, company = hub
    xero_contact = "6f2a1c3e-8d4b-4f7a-9c1e-2b3d4e5f6a7b"
    _invoice(app, deal_id, "777.00", contact_id=xero_contact)
    with app.app_context():
        from app.models import ContactLink
        db.session.add(ContactLink(installation_id=_installation_id(app), crm_object_type="company",
                                   crm_object_id=company, xero_contact_id=xero_contact, linked_by="user"))
        db.session.commit()
    _set(app, money_visibility="admins")

    other = _card(hub, OTHER, company, "companies")
    page = requests.get(other["open_url"], timeout=10)
    link = requests.post(f"{url}/ui/company/{company}/link",
                         data={"a": _action(app, _token(other["open_url"]), "link"), "contact_id": xero_contact}, timeout=10)
    imported = requests.post(f"{url}/ui/company/{company}/import",
                             data={"a": _action(app, _token(other["open_url"]), "import"), "contact_id": xero_contact}, timeout=10)

    assert page.status_code == 200 and "777.00" not in page.text and "Amounts hidden" in page.text
    assert "Copy its details" not in page.text
    assert (link.status_code, imported.status_code) == (403, 403)
    assert "777.00" in requests.get(_card(hub, INSTALLER, company, "companies")["open_url"], timeout=10).text


def test_hubspot_the_signed_object_and_the_token_s_object_cannot_be_swapped(hub):
    """The card's objectId is inside the URL HubSpot signs; the view token binds its object."""
    app, url, hubspot, deal_id, _ = hub
    other_deal = hubspot.crm.add_deal(dealname="Someone else's", amount="5")
    params = {"portalId": hubspot.portal_id, "objectType": "deals", "objectId": other_deal, "userEmail": OTHER}
    full = f"{url}/hubspot/card?{urlencode(params)}"
    ts = str(int(time.time() * 1000))
    signature = sign_v3(hubspot.client_secret, "GET", full, b"", ts)
    swapped = requests.get(full.replace(f"objectId={other_deal}", f"objectId={deal_id}"), timeout=10,
                           headers={"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": ts})
    token = _token(_card(hub, OTHER, other_deal)["open_url"])

    retargeted_page = requests.get(f"{url}/ui/deal/{deal_id}", params={"t": token}, timeout=10)
    retargeted_push = requests.post(f"{url}/ui/deal/{deal_id}/push", data={"a": _action(app, token, "push")}, timeout=10)

    assert swapped.status_code == 401
    assert (retargeted_page.status_code, retargeted_push.status_code) == (401, 401)


# --- Pipedrive ------------------------------------------------------------------------------------

@pytest.fixture
def pd(app_factory, fake_xero, browser) -> Iterator[tuple]:
    """Installed in a fake Pipedrive by its admin (pipedrive.user_id), connected to Xero; two
    reps; a private deal of rep A followed by nobody, a shared deal of rep A, a private org."""
    pipedrive = FakePipedrive(client_secret="pd-secret-of-at-least-32-bytes-long",
                              scopes=tuple(PIPEDRIVE_SCOPES.split()))
    fake_xero[0].add_tenant("Acme Pty Ltd")
    with LoopbackServer(pipedrive) as server:
        app, url = app_factory.serve(**fake_settings(pipedrive=(pipedrive, server.url), xero=fake_xero))
        assert browser.get(f"{url}/install/pipedrive").status_code == 200
        assert browser.get(f"{url}/connect/xero").status_code == 200
        _work(app)
        api = pipedrive.api
        rep_a = api.add_user("Rae Rep", REP)
        rep_b = api.add_user("Otto Other", OTHER)
        follower = api.add_user("Fay Follower", "fay@example.com")
        org = api.add_org("Initech", owner_id=rep_a, visible_to=1)
        private = api.add_deal("Private", value="900", owner_id=rep_a, org_id=org, visible_to=1,
                               followers=[follower])
        shared = api.add_deal("Shared", value="50", owner_id=rep_a, visible_to=3)
        yield {"app": app, "url": url, "pipedrive": pipedrive, "a": rep_a, "b": rep_b,
               "follower": follower, "org": org, "private": private, "shared": shared}


def _panel(env, resource: str, record_id: int, user_id: int) -> requests.Response:
    pipedrive: FakePipedrive = env["pipedrive"]
    return requests.get(pipedrive.panel_url(f"{env['url']}/pipedrive/panel/{resource}", resource,
                                            record_id, user_id=user_id), timeout=10, allow_redirects=False)


def test_pipedrive_a_rep_cannot_open_another_rep_s_private_deal_by_id(pd):
    _invoice(pd["app"], str(pd["private"]), "900.00")

    stranger = _panel(pd, "deal", pd["private"], pd["b"])

    assert stranger.status_code == 403 and "private to its owner and followers" in stranger.text
    assert "900.00" not in stranger.text and "Location" not in stranger.headers
    (refusal,) = _refusals(pd["app"])
    assert refusal.detail["user"] == str(pd["b"]) and refusal.detail["record_id"] == str(pd["private"])
    assert refusal.detail["action"] == "view"


@pytest.mark.parametrize("who", ["a", "follower", "admin"])
def test_pipedrive_the_owner_a_follower_and_an_admin_may_open_a_private_deal(pd, who):
    user = pd["pipedrive"].user_id if who == "admin" else pd[who]
    _invoice(pd["app"], str(pd["private"]), "900.00")

    opened = _panel(pd, "deal", pd["private"], user)

    assert opened.status_code == 302 and f"/ui/deal/{pd['private']}?t=" in opened.headers["Location"]
    assert "900.00" in requests.get(opened.headers["Location"], timeout=10).text


def test_pipedrive_a_company_wide_deal_opens_for_any_rep(pd):
    assert _panel(pd, "deal", pd["shared"], pd["b"]).status_code == 302


def test_pipedrive_a_private_organization_is_refused_to_other_reps(pd):
    assert _panel(pd, "organization", pd["org"], pd["b"]).status_code == 403
    assert _panel(pd, "organization", pd["org"], pd["a"]).status_code == 302


def test_pipedrive_an_unknown_record_fails_closed(pd):
    assert _panel(pd, "deal", 987654, pd["b"]).status_code == 403


def test_pipedrive_the_visibility_answer_is_cached_briefly(pd):
    pipedrive: FakePipedrive = pd["pipedrive"]
    _panel(pd, "deal", pd["private"], pd["follower"])
    before = len(pipedrive.api.calls)

    again = _panel(pd, "deal", pd["private"], pd["follower"])

    assert again.status_code == 302
    assert len(pipedrive.api.calls) == before  # the user, the deal and its followers: from Redis


@pytest.mark.parametrize("who, status", [("b", 403), ("a", 200), ("admin", 200)])
def test_pipedrive_push_follows_the_action_setting(pd, who, status):
    user = pd["pipedrive"].user_id if who == "admin" else pd[who]
    opened = _panel(pd, "deal", pd["shared"], user)  # shared: every rep may open it

    pushed = requests.post(f"{pd['url']}/ui/deal/{pd['shared']}/push",
                           data={"a": _action(pd["app"], _token(opened.headers["Location"]), "push")}, timeout=10)

    assert pushed.status_code == status
    assert (PUSHED in pushed.text) == (status == 200), pushed.text


def test_pipedrive_money_hidden_from_reps_when_only_admins_may_see_it(pd):
    _invoice(pd["app"], str(pd["shared"]), "50.00")
    _set(pd["app"], money_visibility="admins")

    rep = requests.get(_panel(pd, "deal", pd["shared"], pd["a"]).headers["Location"], timeout=10)
    admin = requests.get(_panel(pd, "deal", pd["shared"], pd["pipedrive"].user_id).headers["Location"],
                         timeout=10)

    assert "50.00" not in rep.text and "Amounts hidden" in rep.text
    assert "50.00" in admin.text


def test_pipedrive_dismiss_in_the_review_queue_follows_the_action_setting(pd):
    app, url = pd["app"], pd["url"]
    installation_id = _installation_id(app)
    with app.app_context():
        item = ReviewItem(installation_id=installation_id, deal_id=str(pd["shared"]),
                          reason=ReviewReason.NO_LINE_ITEMS, detail="no lines", action="authorise")
        db.session.add(item)
        db.session.commit()
        item_id = item.id

    def review_token(user_id: int) -> str:
        pipedrive: FakePipedrive = pd["pipedrive"]
        modal = requests.get(pipedrive.panel_url(f"{url}/pipedrive/modal/review", "deal", pd["shared"],
                                                 user_id=user_id), timeout=10, allow_redirects=False)
        return _token(modal.headers["Location"])

    refused = requests.post(f"{url}/ui/review/{installation_id}/{item_id}/dismiss",
                            data={"a": _action(pd["app"], review_token(pd["b"]), "dismiss", item_id)}, timeout=10)
    owner = requests.post(f"{url}/ui/review/{installation_id}/{item_id}/dismiss",
                          data={"a": _action(pd["app"], review_token(pd["a"]), "dismiss", item_id)}, timeout=10)

    assert refused.status_code == 403
    assert owner.status_code == 200 and "Dismissed." in owner.text


def test_pipedrive_no_answer_is_not_a_yes(pd):
    """Pipedrive failing on the deal read: the owner's push and a follower's panel are refused
    (fail closed), and nothing is cached, so the next try asks again."""
    from sandbox.kit.faults import Fault

    pipedrive: FakePipedrive = pd["pipedrive"]
    opened = _panel(pd, "deal", pd["shared"], pd["a"])
    token = _token(opened.headers["Location"])
    from app.redis_conn import get_redis
    with pd["app"].app_context():
        for key in get_redis().scan_iter("paydeck:crm-record:*"):
            get_redis().delete(key)  # the panel's cached answer: make the push ask again
    pipedrive.api.inject(Fault("5xx", method="GET", path_prefix="/api/v2/deals", status=500, remaining=None))

    pushed = requests.post(f"{pd['url']}/ui/deal/{pd['shared']}/push", data={"a": _action(pd["app"], token, "push")}, timeout=10)
    follower = _panel(pd, "deal", pd["private"], pd["follower"])

    assert pushed.status_code == 403 and follower.status_code == 403
    assert "could not confirm" in follower.text
    pipedrive.api.faults.clear()
    assert _panel(pd, "deal", pd["private"], pd["follower"]).status_code == 302


def test_an_installation_wide_review_item_is_for_admins_only(hub):
    """Found in review: an item with no deal (reconnect needed, connection failing) was
    checked as the owner of deal "" (a CRM call with an empty id). Only admins act on it."""
    app, url, hubspot, deal_id, _ = hub
    with app.app_context():
        installation_id = _installation_id(app)
        items = [ReviewItem(installation_id=installation_id, deal_id=None,
                            reason=ReviewReason.RECONNECT_NEEDED, detail="Reconnect Xero")
                 for _ in range(2)]
        db.session.add_all(items)
        db.session.commit()
        first, second = (i.id for i in items)

    rep = requests.post(f"{url}/ui/review/{installation_id}/{first}/dismiss",
                        data={"a": _action(app, _token(_card(hub, REP, deal_id)["review_url"]),
                                           "dismiss", first)}, timeout=10)
    admin = requests.post(f"{url}/ui/review/{installation_id}/{second}/dismiss",
                          data={"a": _action(app, _token(_card(hub, INSTALLER, deal_id)["review_url"]),
                                             "dismiss", second)}, timeout=10)

    assert rep.status_code == 403 and admin.status_code == 200
    with app.app_context():
        statuses = dict(db.session.execute(select(ReviewItem.id, ReviewItem.status)).all())
    assert statuses == {first: ReviewStatus.OPEN, second: ReviewStatus.DISMISSED}
