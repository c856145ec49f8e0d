"""Contact sync's safety nets over HTTP against the fakes (app.contact_sync.safety_net): a change
whose webhook was lost (the fakes' delivery fault-injected) still reaches the other side on the
next pass; a pass with nothing changed costs one Xero call and one CRM call; Paydeck's own
writes are never carried back; a pass that fails part-way resumes from its cursor; the HubSpot
search's 10,000-result cap is paged around."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select, update

import crm_adapters.changes as changes
import sandbox.hubspot.handlers as hubspot_handlers
import xero.client as xero_client
from app.contact_sync.safety_net import CRM_KIND, XERO_KIND, poll_contact_sync
from app.extensions import db
from app.models import SyncCursor
from app.redis_conn import get_redis
from tests.test_contact_sync_crm_to_xero import (  # noqa: F401 - fixtures
    contact,
    crm_events,
    hub,
    pd,
    posts,
    synced_pair,
    xero_events,
)
from tests.test_contact_sync_xero_to_crm import Env, hub_company, phone

SEARCH = "/crm/v3/objects/companies/search"


def net(env: Env, *, due: bool = True) -> int:
    """The minute cron runs (each side's last pass made `due` first), then the jobs it woke."""
    with env.app.app_context():
        if due:
            db.session.execute(update(SyncCursor).where(SyncCursor.kind.in_((XERO_KIND, CRM_KIND)))
                               .values(updated_at=datetime.now(timezone.utc) - timedelta(days=1)))
            db.session.commit()
        started = poll_contact_sync()
    env.work()
    return started


def cursor(env: Env, kind: str) -> SyncCursor:
    with env.app.app_context():
        row = db.session.scalars(select(SyncCursor).where(SyncCursor.kind == kind)).one()
        db.session.expunge(row)
        return row


def lose_crm_webhooks(env: Env) -> int:
    """Fault injection: the CRM fake's queued webhook events are dropped, never delivered."""
    hooks = env.crm.webhooks if hasattr(env.crm, "webhooks") and not isinstance(
        env.crm.webhooks, list) else env.crm.api.webhooks
    queued = hooks.queued()
    for item in queued:
        hooks.drop(item, "lost")
    return len(queued)


def contact_reads(env: Env) -> list[Any]:
    """GET /Contacts calls: the mirror's If-Modified-Since pages and the IDs= reads."""
    return [c for c in env.xero.api_calls if c.method == "GET" and c.path.endswith("/Contacts")]


# --- Xero -> CRM --------------------------------------------------------------------------------

def test_the_xero_net_catches_a_contact_change_whose_webhook_was_lost(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    net(hub)  # the net's first pass (nothing left to catch)
    hub.edit_contact(contact_id, Phones=[phone("5550 4242")])
    assert hub.xero.webhooks.lose_pending() == 1  # Xero's CONTACT event never arrives
    hub.work()
    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 1234"

    assert net(hub) == 2  # the Xero pass and the CRM pass

    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 4242"
    last = hub.audit_direction("xero_to_crm")[-1]
    assert last.trigger == "xero:contact" and last.detail["fields"]["phone"]["after"] == (
        "+61 2 5550 4242")


def test_the_xero_net_costs_one_call_when_nothing_changed_and_ignores_paydecks_writes(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    # A CRM edit reaches Xero by webhook: Paydeck's POST /Contacts changes the contact's
    # UpdatedDateUTC, and Xero's event for it is lost: the net must not carry it back.
    hub.crm.crm.set_properties("companies", company_id, {"phone": "+61 2 7777 0000"})
    crm_events(hub)
    assert contact(hub, contact_id).phones[0]["PhoneNumber"] == "+61 2 7777 0000"
    hub.xero.webhooks.lose_pending()
    hub.xero.clear_api_calls()
    hub.crm.clear_crm_calls()
    writes = len(hub.audit("contact_synced"))

    net(hub)

    # One If-Modified-Since page (it lists Paydeck's own write), no IDs= read, nothing written.
    (read,) = contact_reads(hub)
    query = parse_qs(read.query)
    assert "IDs" not in query and query["page"] == ["1"]
    assert hub.xero.count_calls() == 1
    assert len(hub.audit("contact_synced")) == writes
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch") == 0

    hub.xero.clear_api_calls()
    net(hub)  # and a pass with nothing at all changed: one call again
    assert hub.xero.count_calls() == 1 and len(contact_reads(hub)) == 1
    assert net(hub, due=False) == 0  # not due again within the interval: no pass, no call
    assert hub.xero.count_calls() == 1


def test_the_xero_net_resumes_from_its_cursor_after_a_failed_page(hub, monkeypatch):
    monkeypatch.setattr(xero_client, "PAGE_SIZE", 50)  # 1,000 a page in life
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    net(hub)
    for n in range(60):  # a busy day in Xero: 61 changed contacts, two pages
        hub.books.add_contact(f"Walk-in {n:03}")
    hub.edit_contact(contact_id, Phones=[phone("5550 4343")])
    hub.xero.webhooks.lose_pending()
    hub.xero.inject("5xx", method="GET", path_prefix="/Contacts", skip=1, status=503)
    hub.xero.clear_api_calls()

    net(hub)  # page 1 read, page 2 refused: the place is kept

    assert cursor(hub, XERO_KIND).page == 2
    hub.xero.clear_api_calls()
    net(hub)
    mirror_pages = [parse_qs(c.query)["page"] for c in contact_reads(hub)
                    if "IDs" not in parse_qs(c.query)]
    assert mirror_pages == [["2"]]  # resumed at page 2, not page 1
    assert cursor(hub, XERO_KIND).page is None
    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 4343"


# --- CRM -> Xero --------------------------------------------------------------------------------

def test_the_hubspot_net_catches_a_company_change_whose_webhook_was_lost(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    net(hub)
    hub.crm.crm.set_properties("companies", company_id, {"phone": "+61 2 6666 1111"})
    assert lose_crm_webhooks(hub) >= 1
    hub.crm.clear_crm_calls()

    net(hub)

    assert contact(hub, contact_id).phones[0]["PhoneNumber"] == "+61 2 6666 1111"
    (search,) = [c for c in hub.crm.crm_calls if c.path == SEARCH]
    body = search.json()
    assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    (flt,) = body["filterGroups"][0]["filters"]
    assert flt["propertyName"] == "hs_lastmodifieddate" and flt["operator"] == "GTE"
    assert hub.audit_direction("crm_to_xero")[-1].trigger == "hubspot:company"


def test_the_hubspot_net_costs_one_search_and_ignores_paydecks_own_company_writes(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    # A Xero edit reaches the company by webhook (Paydeck's batch update), and HubSpot's event
    # for Paydeck's own write is lost too: the company is newer, but by Paydeck's hand.
    hub.edit_contact(contact_id, Phones=[phone("5550 8888")])
    xero_events(hub)
    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 8888"
    lose_crm_webhooks(hub)
    hub.crm.clear_crm_calls()
    before = posts(hub)

    net(hub)

    assert hub.crm.count_crm_calls("POST", SEARCH) == 1
    assert hub.crm.count_crm_calls() == 1  # no batch read: nothing was fed
    assert posts(hub) == before


def test_the_hubspot_net_resumes_from_its_cursor(hub):
    hub.settings()
    synced_pair(hub)
    net(hub)
    stored = cursor(hub, CRM_KIND).position
    assert stored is not None
    hub.crm.clear_crm_calls()
    hub.crm.inject_crm("5xx", "POST", SEARCH, status=503)

    net(hub)  # HubSpot answers 503 (CrmRetryLater): the pass stops, the cursor is untouched
    assert cursor(hub, CRM_KIND).position == stored
    hub.crm.clear_crm_calls()
    net(hub)
    (search,) = [c for c in hub.crm.crm_calls if c.path == SEARCH]
    (flt,) = search.json()["filterGroups"][0]["filters"]
    assert int(flt["value"]) == int(stored.timestamp() * 1000)


def test_the_hubspot_net_pages_around_the_search_cap(hub, monkeypatch):
    # The cap as the docs give it is 10,000 results a query; here 300 (fake and reader alike),
    # so 450 changed companies need a second query from the newest change the first one read.
    monkeypatch.setattr(hubspot_handlers, "MAX_SEARCH_RESULTS", 300)
    monkeypatch.setattr(changes, "SEARCH_CAP", 300)
    monkeypatch.setattr(changes, "SEARCH_PAGE", 100)
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    net(hub)
    for n in range(450):
        hub.crm.crm.add_company(name=f"Walk-in {n:03}")
    hub.crm.crm.set_properties("companies", company_id, {"phone": "+61 2 6666 2222"})
    lose_crm_webhooks(hub)
    hub.crm.clear_crm_calls()

    net(hub)

    searches = [c.json() for c in hub.crm.crm_calls if c.path == SEARCH]
    assert all(c.status == 200 for c in hub.crm.crm_calls if c.path == SEARCH)
    afters = [s["after"] for s in searches]
    # 451 changed companies (plus the pair's own): query 1 reads 300 (after 0, 100, 200), query 2
    # starts again at after 0 from the newest modification read.
    assert afters[:4] == ["0", "100", "200", "0"]
    starts = [s["filterGroups"][0]["filters"][0]["value"] for s in searches]
    assert int(starts[3]) > int(starts[0])
    assert contact(hub, contact_id).phones[0]["PhoneNumber"] == "+61 2 6666 2222"


# --- Pipedrive ----------------------------------------------------------------------------------

def pd_pair(env: Env) -> tuple[int, str]:
    tax_field = env.crm.api.add_org_field("ABN")
    env.settings(tax_property=tax_field)
    org = env.crm.api.add_org("Initech")
    made = env.books.add_contact("Initech", TaxNumber="51 824 753 556")
    env.link(str(org), made.contact_id)
    env.contact_event(made.contact_id)
    crm_events(env)
    xero_events(env)
    return org, made.contact_id


def test_the_pipedrive_net_catches_an_organization_change_whose_webhook_was_lost(pd):
    org, contact_id = pd_pair(pd)
    net(pd)
    time.sleep(1.1)  # Pipedrive's update_time has whole seconds (see the CRM -> Xero tests)
    pd.crm.api.update_org(org, name="Initech Holdings")
    assert lose_crm_webhooks(pd) >= 1
    pd.crm.api.clear_calls()

    net(pd)

    assert contact(pd, contact_id).name == "Initech Holdings"
    (listing,) = [c for c in pd.crm.api.calls if c.path == "/api/v2/organizations"
                  and "updated_since" in parse_qs(c.query)]
    query = parse_qs(listing.query)
    assert query["sort_by"] == ["update_time"] and query["sort_direction"] == ["asc"]


def test_the_pipedrive_net_ignores_paydecks_patch_and_resumes_from_its_cursor(pd):
    org, contact_id = pd_pair(pd)  # the first sync PATCHed the organization (Paydeck's write)
    net(pd)
    stored = cursor(pd, CRM_KIND).position
    assert stored is not None
    pd.crm.api.clear_calls()
    before = posts(pd)

    net(pd)

    (listing,) = [c for c in pd.crm.api.calls if c.path.startswith("/api/v2/organizations")]
    since = parse_qs(listing.query)["updated_since"][0]
    assert since == stored.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "ids" not in parse_qs(listing.query)  # nothing fed: no batch read of the org
    assert posts(pd) == before


@pytest.mark.parametrize("kind", [XERO_KIND, CRM_KIND])
def test_the_net_does_nothing_while_contact_sync_is_off(hub, kind):
    hub.settings(enabled=False)
    hub.xero.clear_api_calls()
    assert net(hub) == 0
    assert hub.xero.count_calls() == 0 and hub.crm.count_crm_calls(path_prefix=SEARCH) == 0
    with hub.app.app_context():
        assert db.session.scalars(select(SyncCursor).where(SyncCursor.kind == kind)).all() == []


def test_ids_a_webhook_noted_but_no_job_took_are_woken_by_the_net(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    net(hub)
    hub.edit_contact(contact_id, Phones=[phone("5550 4444")])
    hub.xero.webhooks.lose_pending()
    with hub.app.app_context():  # noted, as the webhook does, but the job was never enqueued
        get_redis().sadd(f"paydeck:xero-contacts-changed:{hub.tenant}", contact_id)
        cursor_row = db.session.scalars(select(SyncCursor).where(SyncCursor.kind == XERO_KIND)).one()
        # and the mirror's pass would not see the change (as if it had read it already)
        cursor_row.position = datetime.now(timezone.utc) + timedelta(minutes=1)
        db.session.commit()

    net(hub)

    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 4444"
