"""Two-way contact sync of person links (issue #15 section 1: "a CRM company (or a person,
for B2C deals with no company)"), over HTTP against the fakes: a HubSpot contact or a
Pipedrive person and its Xero contact, both directions, each conflict rule on a person field,
Paydeck's own writes never bouncing back, the unique-name collision, persons switched off,
a B2C deal's person link syncing after its invoice, and another installation's data left
alone. Webhooks are the fakes' own: HubSpot contact.* events (subscribed as the app
manifest says), Pipedrive person webhooks (registered at install), Xero CONTACT events."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app.contact_sync.mapping import (
    FIELDS,
    ConflictRule,
    Direction,
    MappingError,
    person_mapping,
)
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactSyncSettings,
    CrmKind,
    Installation,
    InstallationSettings,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
    StageAction,
    StageRule,
)
from app.ui_auth import View, issue_view_token
from tests.test_contact_sync_crm_to_xero import (  # noqa: F401 - fixtures
    crm_events,
    hub,
    pd,
    posts,
    review_form,
    xero_events,
)
from tests.test_contact_sync_xero_to_crm import Env, phone

CONTACT_UPDATES = "/crm/v3/objects/contacts/batch/update"


def link_person(env: Env, person_id: str, contact_id: str) -> None:
    with env.app.app_context():
        installation = db.session.scalars(select(Installation).order_by(Installation.id)).first()
        db.session.add(ContactLink(installation_id=installation.id, crm_object_type="person",
                                   crm_object_id=person_id, xero_contact_id=contact_id,
                                   linked_by="match"))
        db.session.commit()


def person_link(env: Env) -> ContactLink:
    with env.app.app_context():
        link = db.session.scalars(select(ContactLink).where(
            ContactLink.crm_object_type == "person")).one()
        db.session.expunge(link)
        return link


def hub_person(env: Env, person_id: str) -> dict[str, Any]:
    return env.crm.crm.object_properties("contacts", person_id)


def xero_phone(contact: Any, kind: str) -> list[str]:
    return [p["PhoneNumber"] for p in contact.phones if p.get("PhoneType") == kind]


def synced_jane(env: Env, **properties: Any) -> tuple[str, str]:
    """A HubSpot contact Jane Doe and her Xero contact, linked, synced once (both alike, so
    nothing is written), every webhook so far delivered."""
    person = env.crm.crm.add_contact(firstname="Jane", lastname="Doe",
                                     email="jane@example.test", phone="+61 2 5550 1234",
                                     **properties)
    made = env.books.add_contact("Jane Doe", FirstName="Jane", LastName="Doe",
                                 EmailAddress="jane@example.test", Phones=[phone("5550 1234")])
    link_person(env, person, made.contact_id)
    env.contact_event(made.contact_id)
    crm_events(env)
    xero_events(env)
    return person, made.contact_id


# --- the mapping's person dimension (pure) -----------------------------------------------------

def test_person_rules_take_the_company_tables_directions_on_the_persons_own_properties():
    rules = person_mapping("hubspot", {"name": {"conflict": "ask"},
                                       "email": {"direction": "xero_to_crm"}})
    assert list(rules) == ["name", "first_name", "last_name", "email", "phone", "mobile",
                           "street_address", "tax_number"]
    # HubSpot has no whole-name contact property: the name goes to Xero only.
    assert rules["name"].crm_read_only and rules["name"].to_xero and not rules["name"].to_crm
    # First and last name follow the name's row (its conflict rule), both ways.
    assert (rules["first_name"].crm_property, rules["first_name"].conflict) == (
        "firstname", ConflictRule.ASK)
    assert rules["first_name"].to_crm and rules["first_name"].to_xero
    assert rules["email"].direction == Direction.XERO_TO_CRM
    assert rules["mobile"].crm_property == "mobilephone"
    assert not rules["tax_number"].active  # no default person property: the admin names one
    assert "first_name" not in FIELDS  # the company table is unchanged

    pipedrive = person_mapping("pipedrive", None, {"tax_number": {"crm_property": "f00d"}})
    assert pipedrive["name"].to_crm and pipedrive["name"].to_xero
    assert not pipedrive["first_name"].to_crm and pipedrive["first_name"].to_xero
    assert pipedrive["tax_number"].active and pipedrive["tax_number"].conflict == ConflictRule.XERO
    assert not pipedrive["street_address"].active  # a v2 person has no standard address

    with pytest.raises(MappingError):
        person_mapping("hubspot", None, {"email": {"direction": "off"}})  # directions: the table's
    with pytest.raises(MappingError):
        person_mapping("hubspot", None, {"contact_persons": {"crm_property": "x"}})


# --- HubSpot contacts ---------------------------------------------------------------------------

def test_a_hubspot_contact_change_reaches_xero_and_paydecks_write_does_not_bounce(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)
    assert posts(hub) == 0  # both alike at the first pass
    before_audit = len(hub.audit("contact_synced"))

    hub.crm.crm.set_properties("contacts", person, {"lastname": "Smith",
                                                    "mobilephone": "+61 400 111 222"})
    results = crm_events(hub)

    sent = [e for r in results for e in json.loads(r.body)]
    assert {(e["subscriptionType"], e["propertyName"]) for e in sent} == {
        ("contact.propertyChange", "lastname"), ("contact.propertyChange", "mobilephone")}
    assert [r.status for r in results] == [200]
    stored = hub.books.contact(contact_id)
    assert (stored.name, stored.first_name, stored.last_name) == ("Jane Smith", "Jane", "Smith")
    assert xero_phone(stored, "MOBILE") == ["+61 400 111 222"]
    assert posts(hub) == 1
    (event,) = hub.audit_direction("crm_to_xero")
    assert event.trigger == "hubspot:person" and event.detail["person"] == person
    assert "company" not in event.detail
    assert event.detail["fields"] == {
        "name": {"before": "Jane Doe", "after": "Jane Smith", "why": "changed_in_crm"},
        "last_name": {"before": "Doe", "after": "Smith", "why": "changed_in_crm"},
        "mobile": {"before": "", "after": "+61 400 111 222", "why": "changed_in_crm"}}
    assert len(hub.audit("contact_synced")) == before_audit + 1

    # Xero announces Paydeck's POST /Contacts: the pass finds Xero at the version Paydeck
    # wrote and writes nothing anywhere.
    xero_events(hub)
    assert posts(hub) == 1 and hub.crm.count_crm_calls("POST", CONTACT_UPDATES) == 0
    assert len(hub.audit("contact_synced")) == before_audit + 1
    assert person_link(hub).last_origin == "crm"


def test_a_xero_change_reaches_the_hubspot_contact_and_its_integration_echo_is_dropped(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)
    hub.crm.clear_crm_calls()

    # A bookkeeper renames her in Xero and changes her email.
    hub.edit_contact(contact_id, Name="Janet Doe", FirstName="Janet",
                     EmailAddress="janet@example.test")
    xero_events(hub)

    stored = hub_person(hub, person)
    assert (stored["firstname"], stored["lastname"], stored["email"]) == (
        "Janet", "Doe", "janet@example.test")
    assert hub.crm.count_crm_calls("POST", CONTACT_UPDATES) == 1
    assert posts(hub) == 0  # the whole name is HubSpot's to compute: nothing back to Xero
    (event,) = hub.audit_direction("xero_to_crm")
    assert event.detail["fields"] == {
        "first_name": {"before": "Jane", "after": "Janet", "why": "changed_in_xero"},
        "email": {"before": "jane@example.test", "after": "janet@example.test",
                  "why": "changed_in_xero"}}

    results = crm_events(hub)  # HubSpot announces Paydeck's write: INTEGRATION, our app id
    sent = [e for r in results for e in json.loads(r.body)]
    assert sent and {(e["changeSource"], e["sourceId"]) for e in sent} == {
        ("INTEGRATION", str(hub.crm.app_id))}
    assert posts(hub) == 0 and hub.crm.count_crm_calls("POST", CONTACT_UPDATES) == 1


def both_changed(env: Env, person: str, contact_id: str, prop: str, crm_value: str,
                 xero: dict[str, Any], crm_first: bool = False) -> None:
    steps = [lambda: env.crm.crm.set_properties("contacts", person, {prop: crm_value}),
             lambda: env.edit_contact(contact_id, **xero)]
    for step in steps if crm_first else reversed(steps):
        step()
        time.sleep(0.05)  # so that "most recent" can tell them apart
    crm_events(env)
    xero_events(env)


@pytest.mark.parametrize("fields, crm_first, winner", [
    ({}, False, "crm"),  # the default for email: the CRM wins
    ({"email": {"conflict": "xero"}}, False, "xero"),
    ({"email": {"conflict": "most_recent"}}, False, "crm"),  # Xero first, then the CRM
    ({"email": {"conflict": "most_recent"}}, True, "xero"),
])
def test_each_conflict_rule_decides_a_persons_email(hub, fields, crm_first, winner):
    hub.settings(persons=True, fields=fields)
    person, contact_id = synced_jane(hub)
    both_changed(hub, person, contact_id, "email", "jane@crm.test",
                 {"EmailAddress": "jane@xero.test"}, crm_first)
    expected = "jane@crm.test" if winner == "crm" else "jane@xero.test"
    assert hub.books.contact(contact_id).email_address == expected
    assert hub_person(hub, person)["email"] == expected
    assert hub.reviews() == []


def test_xero_wins_a_persons_tax_number_by_default_on_the_chosen_property(hub):
    hub.crm.crm.add_property("contacts", "tax_id", "Tax ID")
    hub.settings(persons=True, person_fields={"tax_number": {"crm_property": "tax_id"}})
    person, contact_id = synced_jane(hub)
    both_changed(hub, person, contact_id, "tax_id", "11 111 111 111",
                 {"TaxNumber": "22 222 222 222"})
    assert hub_person(hub, person)["tax_id"] == "22 222 222 222"
    assert hub.books.contact(contact_id).tax_number == "22 222 222 222"


def test_ask_opens_a_review_item_for_the_person_and_one_click_keeps_xeros(hub):
    hub.settings(persons=True, fields={"email": {"conflict": "ask"}})
    person, contact_id = synced_jane(hub)
    both_changed(hub, person, contact_id, "email", "jane@crm.test",
                 {"EmailAddress": "jane@xero.test"})
    (item,) = hub.reviews()
    assert item.reason == ReviewReason.CONTACT_CONFLICT
    assert item.candidates == [{"field": "email", "side": "xero", "value": "jane@xero.test"},
                               {"field": "email", "side": "crm", "value": "jane@crm.test"}]
    assert (hub.books.contact(contact_id).email_address, hub_person(hub, person)["email"]) == (
        "jane@xero.test", "jane@crm.test")  # nothing written while it waits

    url, action_token = review_form(hub, item.id, "use_xero")
    assert requests.post(url, data={"a": action_token}, timeout=10).status_code == 200
    hub.work()

    assert hub_person(hub, person)["email"] == "jane@xero.test"
    (item,) = hub.reviews()
    assert item.status == ReviewStatus.RESOLVED and person_link(hub).open_conflicts == {}


def test_a_rename_to_a_name_another_xero_contact_has_becomes_a_review_item(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)
    hub.books.add_contact("John Citizen")
    xero_events(hub)

    hub.crm.crm.set_properties("contacts", person, {"firstname": "John",
                                                    "lastname": "Citizen"})
    crm_events(hub)

    assert hub.books.contact(contact_id).name == "Jane Doe"  # Xero refused the whole element
    (item,) = hub.reviews()
    assert item.reason == ReviewReason.CONTACT_CONFLICT
    assert item.detail.startswith("The person was renamed to John Citizen in the CRM, but "
                                  "another Xero contact already has that name")
    assert person_link(hub).open_conflicts == {"name": item.id}
    (event,) = hub.audit("contact_conflict")
    assert event.detail["person"] == person and event.detail["why"] == "name_taken_in_xero"


def test_persons_switched_off_sync_nothing_either_way(hub):
    hub.settings()  # contact sync on, persons not chosen
    person = hub.crm.crm.add_contact(firstname="Jane", lastname="Doe")
    made = hub.books.add_contact("Jane Doe", EmailAddress="jane@example.test")
    link_person(hub, person, made.contact_id)
    crm_events(hub)
    hub.contact_event(made.contact_id)
    hub.crm.crm.set_properties("contacts", person, {"lastname": "Smith"})
    crm_events(hub)

    assert hub.books.contact(made.contact_id).name == "Jane Doe"
    assert hub_person(hub, person).get("email") in (None, "")
    assert posts(hub) == 0 and hub.crm.count_crm_calls("POST", CONTACT_UPDATES) == 0
    assert person_link(hub).synced_at is None and hub.audit("contact_synced") == []


def test_another_installations_person_link_is_never_read_or_written(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)
    with hub.app.app_context():  # the same CRM id and Xero contact id, in another account
        other = Installation(crm=CrmKind.HUBSPOT, account_id="990001")
        db.session.add(other)
        db.session.flush()
        db.session.add(ContactSyncSettings(installation_id=other.id, enabled=True, persons=True))
        other_id = other.id
        db.session.add(ContactLink(installation_id=other_id, crm_object_type="person",
                                   crm_object_id=person, xero_contact_id=contact_id))
        db.session.commit()

    hub.crm.crm.set_properties("contacts", person, {"lastname": "Smith"})
    crm_events(hub)
    hub.edit_contact(contact_id, EmailAddress="jane.smith@example.test")
    xero_events(hub)

    assert hub.books.contact(contact_id).name == "Jane Smith"
    assert hub_person(hub, person)["email"] == "jane.smith@example.test"
    with hub.app.app_context():
        theirs = db.session.scalars(select(ContactLink).where(
            ContactLink.installation_id == other_id)).one()
        assert (theirs.synced_at, theirs.field_hashes, theirs.crm_version) == (None, {}, None)
        assert db.session.scalars(select(AuditEvent).where(
            AuditEvent.installation_id == other_id)).all() == []


# --- Pipedrive persons -------------------------------------------------------------------------

def linked_pd_jane(env: Env) -> tuple[int, Any]:
    """Persons synced; a Pipedrive person Jane Doe and her Xero contact, linked, and Xero's
    CONTACT webhook for it sent (the CRM's own webhooks not yet delivered)."""
    env.settings(persons=True)
    person = env.crm.api.add_person("Jane Doe", email="jane@example.test")
    made = env.books.add_contact("Jane Doe", FirstName="Jane", LastName="Doe",
                                 EmailAddress="jane@example.test")
    link_person(env, str(person), made.contact_id)
    env.contact_event(made.contact_id)
    return person, made


def test_pipedrive_a_person_change_reaches_xero_and_paydecks_write_does_not_bounce(pd):
    person, made = linked_pd_jane(pd)
    created = crm_events(pd)  # create.person (the web app), answered
    assert ("person", "create", "app", 200) in [
        (r.entity, r.action, r.payload["meta"]["change_source"], r.status) for r in created]
    xero_events(pd)
    assert posts(pd) == 0

    time.sleep(1.1)  # Pipedrive's update_time has whole seconds (see the company tests)
    pd.crm.api.update_person(person, name="Jane Smith")  # a user, in Pipedrive's web app
    results = crm_events(pd)

    assert [(r.entity, r.action, r.payload["meta"]["change_source"], r.status)
            for r in results] == [("person", "change", "app", 200)]
    stored = pd.books.contact(made.contact_id)
    assert (stored.name, stored.first_name, stored.last_name) == ("Jane Smith", "Jane", "Smith")
    assert posts(pd) == 1
    (event,) = pd.audit_direction("crm_to_xero")
    assert event.trigger == "pipedrive:person" and event.detail["fields"] == {
        "name": {"before": "Jane Doe", "after": "Jane Smith", "why": "changed_in_crm"},
        "last_name": {"before": "Doe", "after": "Smith", "why": "changed_in_crm"}}
    xero_events(pd)
    crm_events(pd)
    assert pd.crm.api.count_calls("PATCH", f"/api/v2/persons/{person}") == 0
    assert posts(pd) == 1


def test_pipedrive_xero_changes_reach_the_person_and_the_api_echo_is_paydecks_own(pd):
    tax_field = pd.crm.api.add_person_field("Tax ID")
    pd.settings(persons=True, person_fields={"tax_number": {"crm_property": tax_field}})
    person = pd.crm.api.add_person("Jane Doe", email="jane@example.test",
                                   phones=[{"value": "+61 400 111 222", "label": "mobile"}])
    made = pd.books.add_contact("Jane Doe", FirstName="Jane", LastName="Doe",
                                EmailAddress="jane@example.test", TaxNumber="51 824 753 556")
    link_person(pd, str(person), made.contact_id)
    crm_events(pd)

    pd.contact_event(made.contact_id)  # first sync: Xero's tax number fills the empty field
    stored = pd.crm.api.person(person)
    assert stored.custom_fields[tax_field] == "51 824 753 556"
    crm_events(pd)
    xero_events(pd)
    time.sleep(1.1)
    pd.crm.api.clear_calls()

    # The first sync sent the mobile to Xero; the bookkeeper adds a work phone beside it.
    assert xero_phone(pd.books.contact(made.contact_id), "MOBILE") == ["+61 400 111 222"]
    sent_to_xero = posts(pd)
    pd.edit_contact(made.contact_id, EmailAddress="jane.smith@example.test",
                    Phones=[phone("5550 1234"),
                            {"PhoneType": "MOBILE", "PhoneNumber": "+61 400 111 222"}])
    xero_events(pd)

    stored = pd.crm.api.person(person)
    assert stored.emails == [{"value": "jane.smith@example.test", "primary": True,
                              "label": "work"}]
    # The work phone is added beside the mobile, which stays as it was.
    assert stored.phones == [{"value": "+61 400 111 222", "primary": False, "label": "mobile"},
                             {"value": "+61 2 5550 1234", "primary": False, "label": "work"}]
    assert pd.crm.api.count_calls("PATCH", f"/api/v2/persons/{person}") == 1
    echo = crm_events(pd)  # change.person through the API at the version Paydeck wrote
    assert [(r.entity, r.action, r.payload["meta"]["change_source"]) for r in echo] == [
        ("person", "change", "api")]
    assert posts(pd) == sent_to_xero  # nothing went back to Xero


def test_pipedrive_registers_person_webhooks_at_install(pd):
    hooks = {(h.event_object, h.event_action) for h in pd.crm.api.webhooks.hooks}
    assert {("person", "change"), ("person", "create")} <= hooks


# --- a B2C deal: invoiced to its person, whose link then syncs -----------------------------------

def test_a_b2c_deals_person_link_syncs_and_the_deal_page_shows_its_state(hub):
    hub.settings(persons=True)
    with hub.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.add(StageRule(installation_id=installation.id, pipeline_id="default",
                                 stage_id="closedwon", action=StageAction.AUTHORISE))
        db.session.commit()
        installation_id, installer = installation.id, installation.installed_by
    person = hub.crm.crm.add_contact(firstname="Sam", lastname="Buyer",
                                     email="sam@example.test")
    product = hub.crm.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    deal = hub.crm.crm.add_deal(dealname="Kitchen", contact_ids=[person],
                                line_items=[{"hs_product_id": product, "quantity": "1"}])
    crm_events(hub)
    hub.crm.crm.set_deal_properties(deal, dealstage="closedwon")
    crm_events(hub)

    (invoice,) = hub.books.invoices
    link = person_link(hub)
    assert (link.crm_object_id, link.xero_contact_id) == (person, invoice.contact_id)
    xero_events(hub)  # the new contact's CREATE event: the first pass fills Xero's gaps
    assert hub.books.contact(invoice.contact_id).name == "Sam Buyer"

    hub.edit_contact(invoice.contact_id, Phones=[phone("5550 4321")])
    xero_events(hub)
    assert hub_person(hub, person)["phone"] == "+61 2 5550 4321"

    token = issue_view_token_in(hub, View(installation_id, installer, "deal", deal))
    page = requests.get(f"{hub.url}/ui/deal/{deal}", params={"t": token}, timeout=10)
    assert page.status_code == 200
    assert re.search(r"Contact sync of the deal's contact: <span[^>]*>In sync</span>", page.text)
    assert "Last change in HubSpot" in page.text


def issue_view_token_in(env: Env, view: View) -> str:
    with env.app.app_context():
        return issue_view_token(view)


# --- the parsers ---------------------------------------------------------------------------------

def test_the_parsers_tell_person_events_from_company_events():
    from crm_adapters import hubspot, pipedrive
    from domain.crm import WebhookRequest

    events = [{"subscriptionType": "contact.propertyChange", "propertyName": "email",
               "objectId": 5, "portalId": 9, "eventId": 1, "changeSource": "CRM_UI"},
              {"subscriptionType": "contact.creation", "objectId": 6, "portalId": 9,
               "eventId": 2, "changeSource": "INTEGRATION", "sourceId": "77"},
              {"subscriptionType": "company.creation", "objectId": 5, "portalId": 9,
               "eventId": 3, "changeSource": "CRM_UI"}]
    parsed = hubspot.parse_webhook(WebhookRequest("POST", "u", {}, json.dumps(events).encode()),
                                   "77")
    assert [(c.object_type, c.company_id, c.own_change) for c in parsed.companies] == [
        ("person", "5", False), ("person", "6", True), ("company", "5", False)]

    body = {"meta": {"action": "change", "entity": "person", "entity_id": "3",
                     "company_id": "42", "id": "e1", "change_source": "api"},
            "data": {"id": 3, "update_time": "2026-12-02T10:00:00Z"}, "previous": {"name": "x"}}
    (change,) = pipedrive.parse_webhook(WebhookRequest(
        "POST", "u", {}, json.dumps(body).encode())).companies
    assert (change.object_type, change.company_id, change.via_api) == ("person", "3", True)


def test_the_manifest_subscribes_the_contact_properties_person_sync_reads():
    from crm_adapters.hubspot_persons import PERSON_FIELD_PROPERTIES
    from tests.test_contact_sync_crm_to_xero import MANIFEST

    subs = json.loads(MANIFEST.read_text())["config"]["subscriptions"]["legacyCrmObjects"]
    assert {"subscriptionType": "contact.creation", "active": True} in subs
    watched = {s["propertyName"] for s in subs
               if s["subscriptionType"] == "contact.propertyChange" and s["active"]}
    assert watched == set(PERSON_FIELD_PROPERTIES.values())


# --- settings: persons on/off and a person's tax number property --------------------------------

def test_the_contacts_section_saves_persons_and_their_tax_number_property(app):
    from werkzeug.datastructures import MultiDict

    from app.settings_forms.contacts import ContactsSection
    from app.settings_forms.sources import Sources

    installation = Installation(crm=CrmKind.HUBSPOT, account_id="62515")
    db.session.add(installation)
    db.session.commit()
    form = MultiDict([("contact_sync", "on"), ("contact_persons", "on"),
                      ("contact_roles", "customer"), ("contact_person_tax_property", " tax_id ")])
    errors: dict[str, str] = {}
    section = ContactsSection.saved(installation.id).read(form, Sources(None, None, None, []),
                                                          errors)
    assert errors == {}
    changed = section.save(installation.id)["contacts"]
    assert changed["persons"] == {"from": False, "to": True}
    assert changed["person_fields"] == {"from": {},
                                        "to": {"tax_number": {"crm_property": "tax_id"}}}
    db.session.commit()
    saved = ContactsSection.saved(installation.id)
    assert saved.persons and saved.person_tax_property == "tax_id"
    row = db.session.get(ContactSyncSettings, installation.id)
    assert person_mapping("hubspot", row.fields, row.person_fields)["tax_number"].crm_property \
        == "tax_id"

    too_long = MultiDict([("contact_roles", "customer"),
                          ("contact_person_tax_property", "x" * 500)])
    errors = {}
    saved.read(too_long, Sources(None, None, None, []), errors)
    assert "at most" in errors["contact_person_tax_property"]


# --- batches: what 120 changed persons cost ------------------------------------------------------

def test_120_changed_hubspot_contacts_make_three_post_contacts_and_two_batch_reads(hub):
    hub.settings(persons=True)
    pairs = []
    for n in range(120):
        person = hub.crm.crm.add_contact(firstname="Customer", lastname=f"{n:03}")
        made = hub.books.add_contact(f"Customer {n:03}", FirstName="Customer",
                                     LastName=f"{n:03}")
        link_person(hub, person, made.contact_id)
        pairs.append((person, made.contact_id))
    crm_events(hub)  # 120 contact.creation events: the first pass, nothing differs
    xero_events(hub)
    assert posts(hub) == 0
    reads = hub.xero.count_calls("GET", "/api.xro/2.0/Contacts")
    hub.crm.clear_crm_calls()

    for n, (person, _) in enumerate(pairs):
        hub.crm.crm.set_properties("contacts", person, {"phone": f"+61 2 5550 {n:04}"})
    results = crm_events(hub)

    assert [len(json.loads(r.body)) for r in results] == [100, 20]  # HubSpot's batches
    assert posts(hub) == 3  # 50 + 50 + 20
    assert hub.xero.count_calls("GET", "/api.xro/2.0/Contacts") == reads + 3  # 50 ids a read
    # Both webhook POSTs are answered before the worker runs: one pass takes all 120 ids and
    # reads the contacts in HubSpot batches of 100 (100 + 20), never one call per contact.
    contact_reads = hub.crm.count_crm_calls("POST", "/crm/v3/objects/contacts/batch/read")
    assert contact_reads == 2
    assert all(xero_phone(hub.books.contact(c), "DEFAULT") == [f"+61 2 5550 {n:04}"]
               for n, (_, c) in enumerate(pairs))
    assert len(hub.audit_direction("crm_to_xero")) == 120


def test_a_person_whose_names_were_cleared_never_sends_xero_an_empty_name(hub):
    hub.settings(persons=True)
    person, contact_id = synced_jane(hub)

    hub.crm.crm.set_properties("contacts", person, {"firstname": "", "lastname": ""})
    crm_events(hub)

    stored = hub.books.contact(contact_id)
    assert (stored.name, stored.first_name or "", stored.last_name or "") == ("Jane Doe", "", "")
    (event,) = hub.audit_direction("crm_to_xero")
    assert event.outcome == "ok" and set(event.detail["fields"]) == {"first_name", "last_name"}
    writes = posts(hub)
    xero_events(hub)  # the echo, and a pass over the name left waiting: nothing more sent
    crm_events(hub)
    assert posts(hub) == writes and len(hub.audit_direction("crm_to_xero")) == 1
