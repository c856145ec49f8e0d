"""CRM -> Xero contact sync over HTTP against the fakes, with the fakes' own webhooks: a HubSpot
company.propertyChange (subscribed as app_manifest's webhooks-hsmeta.json says) or a
Pipedrive organization change webhook (registered at install) wakes the installation's job,
which sends the changed fields to Xero in POST /Contacts batches of 50; Paydeck's own writes
never bounce back either way (the fake Xero's CONTACT events, HubSpot INTEGRATION events,
Pipedrive API changes); each conflict rule; the one-click choice in the review queue."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Installation, ReviewItem, ReviewReason, ReviewStatus
from app.settings import PIPEDRIVE_SCOPES
from app.ui_auth import View, issue_view_token
from sandbox.kit.clock import Clock
from sandbox.kit.server import LoopbackServer
from sandbox.pipedrive import FakePipedrive
from tests.conftest import XERO_WEBHOOK_KEY
from tests.test_contact_sync_xero_to_crm import TAX, Env, _serve, hub_company, phone

MANIFEST = (Path(__file__).resolve().parents[1] / "app_manifest" / "hubspot" / "src" / "app"
            / "webhooks" / "webhooks-hsmeta.json")


def manifest_subscriptions() -> list[str]:
    """The app's webhook subscriptions as the fake takes them ("company.propertyChange:phone")."""
    subs = json.loads(MANIFEST.read_text())["config"]["subscriptions"]["legacyCrmObjects"]
    return [s["subscriptionType"] + (f":{s['propertyName']}" if s.get("propertyName") else "")
            for s in subs if s["active"]]


@pytest.fixture
def hub(app_factory, fake_hubspot, fake_xero, browser) -> Env:
    hubspot, _ = fake_hubspot
    env = _serve(app_factory, browser, "hubspot", fake_hubspot, fake_xero,
                 hubspot_app_id=str(hubspot.app_id))
    hubspot.crm.add_property("companies", TAX, "ABN")
    hubspot.subscribe(f"{env.url}/webhooks/hubspot", hubspot.client_secret,
                      manifest_subscriptions())
    return env


@pytest.fixture
def pd(app_factory, fake_xero, browser) -> Iterator[Env]:
    pipedrive = FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split()))
    with LoopbackServer(pipedrive) as server:
        yield _serve(app_factory, browser, "pipedrive", (pipedrive, server.url), fake_xero)


def crm_events(env: Env) -> list[Any]:
    """The CRM fake delivers its queued webhooks to Paydeck; Paydeck's jobs run."""
    if isinstance(env.crm, FakePipedrive):
        results = env.crm.deliver()
    else:
        results = env.crm.deliver(force=True)
    env.work()
    return results


def xero_events(env: Env) -> requests.Response | None:
    """The fake Xero delivers its CONTACT (and INVOICE) events; Paydeck's jobs run."""
    response = env.xero.webhooks.deliver(f"{env.url}/webhooks/xero", XERO_WEBHOOK_KEY)
    env.work()
    return response


def posts(env: Env) -> int:
    return env.xero.count_calls("POST", "/api.xro/2.0/Contacts")


def synced_pair(env: Env, **company: Any) -> tuple[str, str]:
    """A HubSpot company and its Xero contact, linked and synced once; every webhook so far
    delivered and its jobs run."""
    company_id = env.crm.crm.add_company(name="Initech", phone="+61 2 5550 1234", **company)
    contact = env.books.add_contact("Initech", TaxNumber="51 824 753 556",
                                    Phones=[phone("5550 1234")])
    env.link(company_id, contact.contact_id)
    env.contact_event(contact.contact_id)
    crm_events(env)
    xero_events(env)
    return company_id, contact.contact_id


def contact(env: Env, contact_id: str) -> Any:
    return env.books.contact(contact_id)


# --- HubSpot -------------------------------------------------------------------------------------

def test_a_company_change_in_hubspot_reaches_xero_and_paydecks_write_does_not_bounce(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    before = posts(hub)
    crm_writes = hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/update")

    hub.crm.crm.set_properties("companies", company_id, {"phone": "+61 2 7777 0000",
                                                         "city": "Melbourne"})
    results = crm_events(hub)

    assert [r.status for r in results] == [200]
    assert json.loads(results[0].body)[0]["changeSource"] == "CRM_UI"
    stored = contact(hub, contact_id)
    assert stored.phones[0]["PhoneNumber"] == "+61 2 7777 0000"
    assert [a.get("City") for a in stored.addresses if a.get("AddressType") == "STREET"] == [
        "Melbourne"]
    assert posts(hub) == before + 1
    last = hub.audit_direction("crm_to_xero")[-1]
    assert last.outcome == "ok" and last.trigger == "hubspot:company"
    assert last.detail["fields"]["phone"] == {"before": "+61 2 5550 1234",
                                              "after": "+61 2 7777 0000",
                                              "why": "changed_in_crm"}
    assert last.detail["fields"]["street_address"]["after"]["city"] == "Melbourne"
    audited = len(hub.audit("contact_synced"))

    # Paydeck's POST /Contacts made the fake Xero announce a CONTACT UPDATE: the pass it wakes
    # finds Xero at the version Paydeck wrote, and writes nothing anywhere.
    response = xero_events(hub)
    assert response is not None and response.status_code == 200
    assert posts(hub) == before + 1
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/update") == crm_writes
    assert len(hub.audit("contact_synced")) == audited


def test_paydecks_own_hubspot_write_comes_back_as_integration_and_is_dropped(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    hub.edit_contact(contact_id, Phones=[phone("5550 9876")])
    xero_events(hub)  # Xero -> HubSpot: Paydeck writes the company through its app
    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 9876"
    before = posts(hub)
    hub.crm.clear_crm_calls()

    results = crm_events(hub)  # HubSpot announces that write: INTEGRATION, Paydeck's app id

    sent = [e for r in results for e in json.loads(r.body)]
    assert sent and {(e["changeSource"], e["sourceId"]) for e in sent} == {
        ("INTEGRATION", str(hub.crm.app_id))}
    assert [r.status for r in results] == [200]
    assert posts(hub) == before and hub.crm.count_crm_calls() == 0


def test_a_batch_of_120_changed_companies_makes_three_post_contacts(hub):
    hub.settings()
    pairs = []
    for n in range(120):
        company_id = hub.crm.crm.add_company(name=f"Customer {n:03}")
        made = hub.books.add_contact(f"Customer {n:03}")
        hub.link(company_id, made.contact_id)
        pairs.append((company_id, made.contact_id))
    crm_events(hub)  # 120 company.creation events: the first pass, nothing differs yet
    xero_events(hub)
    assert posts(hub) == 0
    reads = hub.xero.count_calls("GET", "/api.xro/2.0/Contacts")

    for n, (company_id, _) in enumerate(pairs):
        hub.crm.crm.set_properties("companies", company_id, {"phone": f"+61 2 5550 {n:04}"})
    results = crm_events(hub)

    assert [len(json.loads(r.body)) for r in results] == [100, 20]  # HubSpot's batches
    assert posts(hub) == 3  # 50 + 50 + 20
    assert hub.xero.count_calls("GET", "/api.xro/2.0/Contacts") == reads + 3  # 50 ids a read
    assert all(contact(hub, c).phones[0]["PhoneNumber"] == f"+61 2 5550 {n:04}"
               for n, (_, c) in enumerate(pairs))
    assert len(hub.audit_direction("crm_to_xero")) == 120


# --- the conflict rules (both sides changed since the last sync) ----------------------------------

def both_changed(env: Env, company_id: str, contact_id: str, crm_first: bool = False,
                 **change: tuple[str, str, Any]) -> None:
    """Each side changes the field (CRM property value, Xero field and value); the CRM's
    change is announced to Paydeck (its webhook), and Xero's webhook after."""
    for name, (prop, crm_value, xero_fields) in change.items():
        steps = [lambda: env.crm.crm.set_properties("companies", company_id, {prop: crm_value}),
                 lambda: env.edit_contact(contact_id, **xero_fields)]
        for step in steps if crm_first else reversed(steps):
            step()
            time.sleep(0.05)  # so that "most recent" can tell them apart
    crm_events(env)
    xero_events(env)


def test_the_crm_wins_the_name_by_default(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    both_changed(hub, company_id, contact_id,
                 name=("name", "Initech Global", {"Name": "Initech Pty"}))
    assert contact(hub, contact_id).name == "Initech Global"
    assert hub_company(hub, company_id)["name"] == "Initech Global"
    assert hub.audit_direction("crm_to_xero")[-1].detail["fields"]["name"]["why"] == \
        "both_changed_crm_wins"


def test_xero_wins_the_tax_number_by_default(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    both_changed(hub, company_id, contact_id,
                 tax=(TAX, "11 111 111 111", {"TaxNumber": "22 222 222 222"}))
    assert hub_company(hub, company_id)[TAX] == "22 222 222 222"
    assert contact(hub, contact_id).tax_number == "22 222 222 222"
    assert all("tax_number" not in e.detail["fields"] for e in hub.audit_direction("crm_to_xero"))


@pytest.mark.parametrize("crm_first, winner", [(True, "xero"), (False, "crm")])
def test_most_recent_wins(hub, crm_first, winner):
    hub.settings(fields={"name": {"conflict": "most_recent"}})
    company_id, contact_id = synced_pair(hub)
    both_changed(hub, company_id, contact_id, crm_first=crm_first,
                 name=("name", "Initech (CRM)", {"Name": "Initech (Xero)"}))
    expected = f"Initech ({'Xero' if winner == 'xero' else 'CRM'})"
    assert contact(hub, contact_id).name == expected
    assert hub_company(hub, company_id)["name"] == expected


def review_form(env: Env, item_id: int, verb: str) -> tuple[str, str]:
    """The review queue as the installer sees it: the button's form (action URL, token)."""
    with env.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        token = issue_view_token(View(installation.id, installation.installed_by, "review",
                                      str(installation.id)))
        installation_id = installation.id
    page = requests.get(f"{env.url}/ui/review/{installation_id}", params={"t": token},
                        timeout=10)
    assert page.status_code == 200
    action = f"/ui/review/{installation_id}/{item_id}/{verb}"
    found = re.search(re.escape(action) + r'">\s*<input type="hidden" name="a" value="([^"]+)"',
                      page.text)
    assert found, page.text
    return env.url + action, found.group(1)


@pytest.mark.parametrize("side", ["crm", "xero"])
def test_ask_opens_a_review_item_and_one_click_writes_the_chosen_value(hub, side):
    hub.settings(fields={"name": {"conflict": "ask"}})
    company_id, contact_id = synced_pair(hub)
    both_changed(hub, company_id, contact_id,
                 name=("name", "Initech (CRM)", {"Name": "Initech (Xero)"}))
    (item,) = hub.reviews()
    assert item.reason == ReviewReason.CONTACT_CONFLICT
    assert (contact(hub, contact_id).name, hub_company(hub, company_id)["name"]) == (
        "Initech (Xero)", "Initech (CRM)")  # nothing written while it waits

    url, action_token = review_form(hub, item.id, f"use_{side}")
    page = requests.post(url, data={"a": action_token}, timeout=10)
    assert page.status_code == 200 and "Keeping" in page.text
    hub.work()

    expected = "Initech (CRM)" if side == "crm" else "Initech (Xero)"
    assert contact(hub, contact_id).name == expected
    assert hub_company(hub, company_id)["name"] == expected
    (item,) = hub.reviews()
    assert item.status == ReviewStatus.RESOLVED
    assert hub.the_link().open_conflicts == {}
    direction = "crm_to_xero" if side == "crm" else "xero_to_crm"
    assert hub.audit_direction(direction)[-1].detail["fields"]["name"] == {
        "before": "Initech (Xero)" if side == "crm" else "Initech (CRM)", "after": expected,
        "why": "resolved_by_person"}
    # The write's own echoes change nothing more.
    writes = posts(hub)
    crm_events(hub)
    xero_events(hub)
    assert posts(hub) == writes and len(hub.reviews()) == 1


def test_a_bad_choice_or_a_second_click_is_refused_plainly(hub):
    hub.settings(fields={"name": {"conflict": "ask"}})
    company_id, contact_id = synced_pair(hub)
    both_changed(hub, company_id, contact_id,
                 name=("name", "Initech (CRM)", {"Name": "Initech (Xero)"}))
    (item,) = hub.reviews()
    url, action_token = review_form(hub, item.id, "use_crm")
    assert requests.post(url.replace("use_crm", "use_both"), data={"a": action_token},
                         timeout=10).status_code == 404
    assert requests.post(url, data={"a": "forged"}, timeout=10).status_code == 401
    assert requests.post(url, data={"a": action_token}, timeout=10).status_code == 200
    hub.work()
    # An action token is good for one click; once written, the item offers no choice.
    assert requests.post(url, data={"a": action_token}, timeout=10).status_code == 401
    with pytest.raises(AssertionError):
        review_form(hub, item.id, "use_crm")
    assert contact(hub, contact_id).name == "Initech (CRM)"


# --- Pipedrive -----------------------------------------------------------------------------------

def test_pipedrive_an_organization_change_reaches_xero_and_paydecks_patch_does_not_bounce(pd):
    tax_field = pd.crm.api.add_org_field("ABN")
    pd.settings(tax_property=tax_field)
    org = pd.crm.api.add_org("Initech")
    made = pd.books.add_contact("Initech", TaxNumber="51 824 753 556")
    pd.link(str(org), made.contact_id)
    pd.contact_event(made.contact_id)  # first sync: the tax number reaches the organization
    assert pd.crm.api.org(org).custom_fields[tax_field] == "51 824 753 556"
    echo = crm_events(pd)  # Pipedrive announces Paydeck's PATCH: change_source api
    assert [r.payload["meta"]["change_source"] for r in echo if r.entity == "organization"
            and r.action == "change"] == ["api"]
    xero_events(pd)
    before = posts(pd)
    patches = pd.crm.api.count_calls("PATCH", f"/api/v2/organizations/{org}")

    # Pipedrive's update_time has whole seconds; an edit within the second of Paydeck's own
    # write is the next test's case. This one is a second later.
    time.sleep(1.1)
    pd.crm.api.update_org(org, name="Initech Holdings")  # a user, in Pipedrive's web app
    results = crm_events(pd)

    assert [(r.entity, r.action, r.payload["meta"]["change_source"], r.status)
            for r in results] == [("organization", "change", "app", 200)]
    assert contact(pd, made.contact_id).name == "Initech Holdings"
    assert posts(pd) == before + 1
    assert pd.audit_direction("crm_to_xero")[-1].detail["fields"] == {
        "name": {"before": "Initech", "after": "Initech Holdings", "why": "changed_in_crm"}}
    # Xero's CONTACT event for Paydeck's write: nothing goes back to Pipedrive.
    xero_events(pd)
    crm_events(pd)
    assert pd.crm.api.count_calls("PATCH", f"/api/v2/organizations/{org}") == patches
    assert posts(pd) == before + 1


@pytest.fixture
def pd_one_second(app_factory, fake_xero, browser) -> Iterator[Env]:
    """Pipedrive whose clock stands still inside one second: every update_time is the same."""
    moment = float(int(time.time())) + 0.25
    pipedrive = FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split()), clock=Clock(lambda: moment))
    with LoopbackServer(pipedrive) as server:
        yield _serve(app_factory, browser, "pipedrive", (pipedrive, server.url), fake_xero)


def test_pipedrive_a_user_edit_in_the_second_of_paydecks_own_write_still_reaches_xero(
        pd_one_second):
    # update_time has whole seconds ("2026-06-30 14:30:00", Pipedrive v2 responses), so the
    # user's edit carries the version Paydeck stored as its own write; the webhook says a
    # person made it (meta.change_source "app", developers.pipedrive.com changelog "New field
    # for webhooks"), and that decides.
    pd = pd_one_second
    tax_field = pd.crm.api.add_org_field("ABN")
    pd.settings(tax_property=tax_field)
    org = pd.crm.api.add_org("Initech")
    made = pd.books.add_contact("Initech", TaxNumber="51 824 753 556")
    pd.link(str(org), made.contact_id)
    pd.contact_event(made.contact_id)  # first sync: Paydeck PATCHes the tax number
    written = pd.crm.api.org(org).update_time
    pd.crm.api.update_org(org, name="Initech Holdings")  # a user, the same second
    assert pd.crm.api.org(org).update_time == written

    results = crm_events(pd)  # Paydeck's own API echo and the user's change, both announced

    assert [(r.payload["meta"]["change_source"], r.status) for r in results
            if r.entity == "organization" and r.action == "change"] == [("api", 200), ("app", 200)]
    assert contact(pd, made.contact_id).name == "Initech Holdings"
    assert pd.audit_direction("crm_to_xero")[-1].detail["fields"]["name"] == {
        "before": "Initech", "after": "Initech Holdings", "why": "changed_in_crm"}
    # and Paydeck's own write still never bounces: its echo alone wrote nothing to Xero
    assert posts(pd) == 1


def test_pipedrive_registers_organization_webhooks_at_install(pd):
    hooks = {(h.event_object, h.event_action) for h in pd.crm.api.webhooks.hooks}
    assert {("organization", "change"), ("organization", "create")} <= hooks


# --- the fakes' contact events and the parsers ---------------------------------------------------

def test_the_fake_xero_announces_contacts_created_and_updated_signed_like_invoices(hub):
    made = hub.books.add_contact("Globex")
    pending = [e for e in hub.xero.webhooks.pending() if e["resourceId"] == made.contact_id]
    assert [(e["eventCategory"], e["eventType"]) for e in pending] == [("CONTACT", "CREATE")]
    assert pending[0]["resourceUrl"].endswith(f"/Contacts/{made.contact_id}")
    assert xero_events(hub).status_code == 200  # Paydeck verified the signature
    hub.edit_contact(made.contact_id, EmailAddress="ap@globex.test")
    assert [(e["eventCategory"], e["eventType"]) for e in hub.xero.webhooks.pending()] == [
        ("CONTACT", "UPDATE")]


def test_the_parsers_tell_company_events_and_paydecks_own_writes_apart():
    from crm_adapters import hubspot, pipedrive
    from domain.crm import WebhookRequest

    events = [{"subscriptionType": "company.propertyChange", "propertyName": "phone",
               "objectId": 5, "portalId": 9, "eventId": 1, "changeSource": "CRM_UI"},
              {"subscriptionType": "company.creation", "objectId": 6, "portalId": 9,
               "eventId": 2, "changeSource": "INTEGRATION", "sourceId": "77"},
              {"subscriptionType": "company.propertyChange", "propertyName": "phone",
               "objectId": 7, "portalId": 9, "eventId": 3, "changeSource": "INTEGRATION",
               "sourceId": "78"}]
    parsed = hubspot.parse_webhook(WebhookRequest("POST", "u", {}, json.dumps(events).encode()),
                                   "77")
    assert [(c.company_id, c.own_change) for c in parsed.companies] == [
        ("5", False), ("6", True), ("7", False)]  # another app's write is a change like any
    assert parsed.events == [] and parsed.ignored == 0

    body = {"meta": {"action": "change", "entity": "organization", "entity_id": "3",
                     "company_id": "42", "id": "e1", "change_source": "api"},
            "data": {"id": 3, "update_time": "2026-12-02T10:00:00Z"}, "previous": {"name": "x"}}
    parsed = pipedrive.parse_webhook(WebhookRequest("POST", "u", {}, json.dumps(body).encode()))
    (company,) = parsed.companies
    assert (company.company_id, company.via_api, company.version.isoformat()) == (
        "3", True, "2026-12-02T10:00:00+00:00")
    body["meta"]["action"] = "delete"  # a deletion (CRM-side merges and deletes)
    (company,) = pipedrive.parse_webhook(WebhookRequest(
        "POST", "u", {}, json.dumps(body).encode())).companies
    assert (company.company_id, company.kind, company.merged_ids) == ("3", "deleted", ())
    body["meta"]["action"] = "merge"  # not a v2 action: ignored
    assert pipedrive.parse_webhook(WebhookRequest(
        "POST", "u", {}, json.dumps(body).encode())).companies == []
