"""app/settings_forms/contacts.py (on the settings page: tests/test_settings_page_contacts.py): the Contacts section reads
the mapping table, keeps only what differs from the defaults, refuses what cannot be a rule,
and saves to ContactSyncSettings."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.contact_sync.mapping import ConflictRule, Direction
from app.extensions import db
from app.models import ContactSyncSettings, CrmKind, Installation, InstallationSettings
from app.settings_forms.contacts import ContactsSection
from app.settings_forms.sources import Sources
from xero.client import ContactGroupInfo

NONE = Sources(None, None, None, [])


def row(name, direction="both", conflict="crm", prop=""):
    return [("contact_field", name), ("contact_direction", direction),
            ("contact_conflict", conflict), ("contact_property", prop)]


def submitted(*rows_, roles=("customer", "unassigned"), groups=(), on=True):
    pairs = [p for r in rows_ for p in r] + [("contact_roles", r) for r in roles]
    pairs += [("contact_groups", g) for g in groups] + ([("contact_sync", "on")] if on else [])
    return MultiDict(pairs)


def test_only_what_differs_from_the_defaults_is_kept():
    errors: dict[str, str] = {}
    section = ContactsSection("hubspot").read(submitted(
        row("name", "both", "ask", "name"), row("phone", "both", "crm", "phone"),
        row("email", "xero_to_crm", "crm", "billing_email"), row("currency", "off", "xero")),
        NONE, errors)
    assert errors == {}
    assert section.overrides == {"name": {"conflict": "ask"},
                                 "email": {"direction": "xero_to_crm", "crm_property": "billing_email"},
                                 "currency": {"direction": "off"}}
    assert section.rules["name"].conflict == ConflictRule.ASK
    assert section.rules["email"].active and section.rules["email"].direction == Direction.XERO_TO_CRM
    assert section.enabled


def test_what_cannot_be_a_rule_is_refused_beside_its_field():
    errors: dict[str, str] = {}
    ContactsSection("pipedrive").read(submitted(
        row("website", "both", "crm", "website"), row("name", "sideways"),
        row("fax"), roles=()), NONE, errors)
    assert "cannot write Website" in errors["contact:website"]
    assert "contact:name" in errors and "contacts" in errors and "contact_roles" in errors


def test_saved_to_contact_sync_settings_and_read_back(app):
    installation = Installation(crm=CrmKind.PIPEDRIVE, account_id="42")
    db.session.add(installation)
    db.session.flush()
    db.session.add(InstallationSettings(installation_id=installation.id, tax_number_property="abc"))
    db.session.commit()
    section = ContactsSection.saved(installation.id)
    assert (section.crm, section.enabled, section.roles) == ("pipedrive", False,
                                                             ["customer", "unassigned"])
    assert section.rules["tax_number"].crm_property == "abc"
    errors: dict[str, str] = {}
    chosen = section.read(submitted(row("name", "both", "most_recent", "name"),
                                    roles=("customer",), groups=("g-1",)),
                          Sources(None, None, None, [], [ContactGroupInfo("g-1", "Customers")]),
                          errors)
    assert errors == {}
    assert chosen.save(installation.id) == {"contacts": {
        "enabled": {"from": False, "to": True},
        "fields": {"from": {}, "to": {"name": {"conflict": "most_recent"}}},
        "roles": {"from": ["customer", "unassigned"], "to": ["customer"]},
        "groups": {"from": [], "to": ["g-1"]}}}
    db.session.commit()
    stored = db.session.scalars(select(ContactSyncSettings)).one()
    assert stored.fields == {"name": {"conflict": "most_recent"}} and stored.enabled
    assert ContactsSection.saved(installation.id).save(installation.id) == {}


def test_groups_are_kept_as_saved_when_xeros_groups_could_not_be_read():
    errors: dict[str, str] = {}
    saved = ContactsSection("hubspot", groups=["g-1"])
    chosen = saved.read(submitted(groups=()), NONE, errors)  # the page showed no checkboxes
    assert errors == {} and chosen.groups == ["g-1"]


def test_a_group_xero_does_not_list_is_refused_unless_it_was_chosen_before():
    listed = Sources(None, None, None, [], [ContactGroupInfo("g-1", "Customers")])
    errors: dict[str, str] = {}
    ContactsSection("hubspot").read(submitted(groups=("g-9",)), listed, errors)
    assert errors == {"contact_groups": "Choose from the contact groups Xero lists."}
    errors = {}
    kept = ContactsSection("hubspot", groups=["g-gone"]).read(
        submitted(groups=("g-gone", "g-1")), listed, errors)
    assert errors == {} and kept.groups == ["g-gone", "g-1"]
