"""The contact sync safety nets for person links (B2C deals' contacts: HubSpot contacts,
Pipedrive persons), over HTTP against the fakes: a person change whose webhook was lost
reaches Xero on the next pass, read from the persons' own cursor (HubSpot's contacts search
on `lastmodifieddate`, Pipedrive's v2 persons list with `updated_since`); a Xero change to a
contact linked to a person is caught too; Paydeck's own writes are never carried back; with
persons not synced, the net reads no person at all."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from app.contact_sync.safety_net import CRM_CURSORS
from tests.test_contact_sync_crm_to_xero import (  # noqa: F401 - fixtures
    crm_events,
    hub,
    pd,
    posts,
    xero_events,
)
from tests.test_contact_sync_persons import hub_person, linked_pd_jane, synced_jane
from tests.test_contact_sync_safety_net import SEARCH, cursor, lose_crm_webhooks, net
from tests.test_contact_sync_xero_to_crm import phone

CONTACT_SEARCH = "/crm/v3/objects/contacts/search"


def searches(env, path: str) -> list[dict]:
    return [c.json() for c in env.crm.crm_calls if c.path == path]


# --- HubSpot contacts ---------------------------------------------------------------------------

def test_the_hubspot_net_catches_a_contact_change_whose_webhook_was_lost(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)
    net(hub)  # the first pass: nothing to catch
    hub.crm.crm.set_properties("contacts", person, {"lastname": "Smith"})
    assert lose_crm_webhooks(hub) >= 1  # HubSpot's contact.propertyChange never arrives
    hub.work()
    assert hub.books.contact(contact_id).name == "Jane Doe"
    hub.crm.clear_crm_calls()

    net(hub)

    stored = hub.books.contact(contact_id)
    assert (stored.name, stored.last_name) == ("Jane Smith", "Smith")
    (search,) = searches(hub, CONTACT_SEARCH)
    # Contacts' own modified property (crm_adapters.changes.CONTACT_MODIFIED).
    assert search["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    (flt,) = search["filterGroups"][0]["filters"]
    assert flt["propertyName"] == "lastmodifieddate" and flt["operator"] == "GTE"
    assert len(searches(hub, SEARCH)) == 1  # the companies' pass ran beside it
    assert hub.audit_direction("crm_to_xero")[-1].trigger == "hubspot:person"
    assert cursor(hub, CRM_CURSORS["person"]).position is not None


def test_the_hubspot_net_ignores_paydecks_own_contact_writes_and_costs_one_search(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)
    # A Xero edit reaches the HubSpot contact by webhook (Paydeck's batch update); HubSpot's
    # event for Paydeck's own write is lost: the contact is newer, but by Paydeck's hand.
    hub.edit_contact(contact_id, Phones=[phone("5550 9999")])
    xero_events(hub)
    assert hub_person(hub, person)["phone"] == "+61 2 5550 9999"
    lose_crm_webhooks(hub)
    hub.crm.clear_crm_calls()
    before = posts(hub)

    net(hub)

    assert hub.crm.count_crm_calls("POST", CONTACT_SEARCH) == 1
    assert hub.crm.count_crm_calls("POST", SEARCH) == 1
    assert hub.crm.count_crm_calls() == 2  # no batch read: nothing was fed
    assert posts(hub) == before


def test_with_persons_not_synced_the_net_reads_no_contact(hub):
    hub.settings(persons=False)
    person, contact_id = synced_jane(hub)  # a person link left from when persons were synced
    hub.crm.crm.set_properties("contacts", person, {"lastname": "Smith"})
    lose_crm_webhooks(hub)
    hub.edit_contact(contact_id, Phones=[phone("5550 7777")])
    hub.xero.webhooks.lose_pending()
    hub.crm.clear_crm_calls()
    before = posts(hub)

    net(hub)

    assert hub.crm.count_crm_calls("POST", CONTACT_SEARCH) == 0
    assert hub.crm.count_crm_calls("POST", SEARCH) == 1
    assert hub.books.contact(contact_id).name == "Jane Doe" and posts(hub) == before
    assert hub_person(hub, person)["phone"] == "+61 2 5550 1234"


def test_the_xero_net_catches_a_change_to_a_contact_linked_to_a_person(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)
    net(hub)
    hub.edit_contact(contact_id, Phones=[phone("5550 4242")])
    assert hub.xero.webhooks.lose_pending() == 1  # Xero's CONTACT event never arrives
    hub.work()
    assert hub_person(hub, person)["phone"] == "+61 2 5550 1234"

    net(hub)

    assert hub_person(hub, person)["phone"] == "+61 2 5550 4242"
    last = hub.audit_direction("xero_to_crm")[-1]
    assert last.trigger == "xero:contact" and last.detail["person"] == person


# --- Pipedrive persons --------------------------------------------------------------------------

def test_the_pipedrive_net_catches_a_person_change_whose_webhook_was_lost(pd):
    person, made = linked_pd_jane(pd)
    crm_events(pd)
    xero_events(pd)
    net(pd)
    time.sleep(1.1)  # Pipedrive's update_time has whole seconds (see the company tests)
    pd.crm.api.update_person(person, name="Jane Smith")  # a user, in Pipedrive's web app
    assert lose_crm_webhooks(pd) >= 1
    pd.crm.api.clear_calls()
    before = posts(pd)

    net(pd)

    stored = pd.books.contact(made.contact_id)
    assert (stored.name, stored.last_name) == ("Jane Smith", "Smith")
    assert posts(pd) == before + 1
    (listing,) = [c for c in pd.crm.api.calls if c.path == "/api/v2/persons"
                  and "updated_since" in parse_qs(c.query)]
    query = parse_qs(listing.query)
    assert query["sort_by"] == ["update_time"] and query["sort_direction"] == ["asc"]
    assert cursor(pd, CRM_CURSORS["person"]).position is not None
