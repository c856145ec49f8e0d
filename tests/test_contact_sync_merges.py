"""Merges, archives and name collisions in two-way contact sync (issue #15 section 3), over
HTTP against the fakes: a Xero contact merged into another (MergedToContactID on the merged
one) moves the link to the survivor, audited; an archived one (ContactStatus ARCHIVED) flags
the link with one review item; neither creates a record. A CRM rename that Xero refuses by
its unique-name rule becomes a review item, not a retry on every pass."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import ContactLink, ReviewItem, ReviewReason, ReviewStatus
from tests.test_contact_sync_crm_to_xero import contact, crm_events, hub, posts, synced_pair  # noqa: F401
from tests.test_contact_sync_xero_to_crm import hub_company, phone

PUT_CONTACTS = ("PUT", "/api.xro/2.0/Contacts")


def link_of(env):
    return env.the_link()


def items(env, reason):
    return [i for i in env.reviews() if i.reason == reason]


def test_a_contact_merged_in_xero_moves_the_link_to_the_survivor_and_creates_nothing(hub):
    hub.settings()
    company_id, merged_id = synced_pair(hub)
    survivor = hub.books.add_contact("Initech Group", Phones=[phone("5550 9999")])
    contacts_before = len(hub.books.contact_by_id)
    hub.books.merge_contact(merged_id, survivor.contact_id)

    hub.contact_event(merged_id)

    link = link_of(hub)
    assert link.xero_contact_id == survivor.contact_id and link.xero_status is None
    (moved,) = hub.audit("contact_link_moved")
    assert moved.detail["before"]["contact_id"] == merged_id
    assert moved.detail["after"] == {"contact_id": survivor.contact_id}
    assert moved.detail["why"] == "merged_in_xero" and moved.detail["company"] == company_id
    # The company now follows the contact Xero kept (CRM wins only what changed in the CRM).
    company = hub_company(hub, company_id)
    assert company["name"] == "Initech Group" and company["phone"] == "+61 2 5550 9999"
    assert hub.xero.count_calls(*PUT_CONTACTS) == 0
    assert len(hub.books.contact_by_id) == contacts_before
    # A later change in the CRM reaches the survivor; the merged contact stays as it was.
    hub.crm.crm.set_properties("companies", company_id, {"phone": "+61 2 7777 0000"})
    crm_events(hub)
    assert contact(hub, survivor.contact_id).phones[0]["PhoneNumber"] == "+61 2 7777 0000"
    assert contact(hub, merged_id).contact_status == "ARCHIVED"
    assert contact(hub, merged_id).phones[0]["PhoneNumber"] != "+61 2 7777 0000"
    assert hub.xero.count_calls(*PUT_CONTACTS) == 0


def test_the_fake_returns_merged_to_contact_id_only_on_the_full_contact():
    from sandbox.xero import render
    from sandbox.xero.state import Contact

    merged = Contact("a", "Initech", contact_status="ARCHIVED", merged_to="b")
    assert render.contact(merged, is_customer=False)["MergedToContactID"] == "b"
    assert "MergedToContactID" not in render.contact(merged, is_customer=False, summary=True)
    assert "MergedToContactID" not in render.contact(Contact("c", "Globex"), is_customer=False)


def test_a_contact_archived_in_xero_flags_the_link_with_one_review_item_and_writes_nothing(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    hub.books.archive_contact(contact_id)
    company_before = hub_company(hub, company_id)
    before = posts(hub)

    hub.contact_event(contact_id)
    hub.contact_event(contact_id)  # again: still one review item

    link = link_of(hub)
    assert link.xero_status == "archived" and link.xero_contact_id == contact_id
    (item,) = items(hub, ReviewReason.CONTACT_ARCHIVED)
    assert item.status == ReviewStatus.OPEN and item.contact_link_id == link.id
    assert "archived in Xero" in item.detail
    assert item.detail.endswith("Restore it in Xero, or link the company to another contact.")
    assert [e.detail["after"] for e in hub.audit("contact_archived")] == [{"xero_status": "archived"}]
    # A CRM change meanwhile goes nowhere: nothing written to the archived contact, no new one.
    hub.crm.crm.set_properties("companies", company_id, {"phone": "+61 2 7777 0000"})
    crm_events(hub)
    assert posts(hub) == before and hub.xero.count_calls(*PUT_CONTACTS) == 0
    assert hub_company(hub, company_id)["name"] == company_before["name"]
    assert contact(hub, contact_id).contact_status == "ARCHIVED"


def test_a_rename_that_collides_with_another_xero_contact_becomes_a_review_item_not_a_retry_loop(hub):
    hub.settings()
    company_id, contact_id = synced_pair(hub)
    hub.books.add_contact("Globex")

    hub.crm.crm.set_properties("companies", company_id, {"name": "Globex"})
    crm_events(hub)

    assert contact(hub, contact_id).name == "Initech"
    (item,) = items(hub, ReviewReason.CONTACT_CONFLICT)
    assert item.status == ReviewStatus.OPEN and "another Xero contact already has that name" in item.detail
    assert {(c["side"], c["value"]) for c in item.candidates} == {("xero", "Initech"), ("crm", "Globex")}
    assert link_of(hub).open_conflicts == {"name": item.id}
    (conflict,) = hub.audit("contact_conflict")
    assert conflict.detail["why"] == "name_taken_in_xero"
    assert "already assigned to another contact" in conflict.detail["error"]

    # The next change sends what Xero can take, without the name: no second refusal.
    posted = posts(hub)
    hub.crm.crm.set_properties("companies", company_id, {"phone": "+61 2 7777 0000"})
    crm_events(hub)
    assert posts(hub) == posted + 1
    assert contact(hub, contact_id).phones[0]["PhoneNumber"] == "+61 2 7777 0000"
    assert contact(hub, contact_id).name == "Initech"
    assert len(items(hub, ReviewReason.CONTACT_CONFLICT)) == 1
    assert hub.audit_direction("crm_to_xero")[-1].outcome == "ok"
    assert "name" not in hub.audit_direction("crm_to_xero")[-1].detail["fields"]

    # One click keeps Xero's name: it is written to the company and the item closes.
    from app.engine.reviews import choose_contact_value
    with hub.app.app_context():
        assert choose_contact_value(item.id, "xero")
    hub.work()
    assert hub_company(hub, company_id)["name"] == "Initech"
    with hub.app.app_context():
        assert db.session.get(ReviewItem, item.id).status == ReviewStatus.RESOLVED
        assert db.session.scalars(select(ContactLink)).one().open_conflicts == {}
