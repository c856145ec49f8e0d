"""Xero -> CRM contact sync over HTTP against the fakes: a signed Xero CONTACT webhook ->
the linked company gets the changed fields (HubSpot batch update, Pipedrive v2 organization
PATCH), audited with before and after; Paydeck's own write never bounces back; "ask"
conflicts become review items; out-of-scope contacts and a switched-off sync write nothing.

The fake Xero sends only INVOICE events (sandbox/xero/webhooks.py), so these tests sign and
post the CONTACT events themselves, in the shape platform-facts "Webhooks" gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactSyncSettings,
    Installation,
    InstallationSettings,
    ReviewItem,
    ReviewReason,
)
from app.queueing import QUEUE
from app.redis_conn import get_redis
from app.settings import PIPEDRIVE_SCOPES
from app.worker import PaydeckSimpleWorker
from sandbox.kit.server import LoopbackServer
from sandbox.kit.webhooks import hmac_sha256
from sandbox.pipedrive import FakePipedrive
from sandbox.xero import FakeXero
from sandbox.xero.books import TenantBooks
from tests.conftest import XERO_WEBHOOK_KEY, fake_settings

TAX = "abn"
STREET = {"AddressType": "STREET", "AddressLine1": "Level 3", "AddressLine2": "1 Main St",
          "City": "Sydney", "Region": "NSW", "PostalCode": "2000", "Country": "Australia"}


def phone(number: str) -> dict[str, str]:
    return {"PhoneType": "DEFAULT", "PhoneCountryCode": "61", "PhoneAreaCode": "2",
            "PhoneNumber": number}


@dataclass
class Env:
    app: Flask
    url: str
    crm: Any
    xero: FakeXero
    books: TenantBooks
    tenant: str

    def work(self) -> None:
        with self.app.app_context():
            PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=self.app).work(burst=True)

    def settings(self, tax_property: str = TAX, **values: Any) -> None:
        with self.app.app_context():
            installation = db.session.scalars(select(Installation)).one()
            row = db.session.get(ContactSyncSettings, installation.id)
            if row is None:
                row = ContactSyncSettings(installation_id=installation.id)
                db.session.add(row)
            for key, value in {"enabled": True, **values}.items():
                setattr(row, key, value)
            db.session.get(InstallationSettings, installation.id).tax_number_property = tax_property
            db.session.commit()

    def link(self, company_id: str, contact_id: str) -> None:
        with self.app.app_context():
            installation = db.session.scalars(select(Installation)).one()
            db.session.add(ContactLink(installation_id=installation.id, crm_object_type="company",
                                       crm_object_id=company_id, xero_contact_id=contact_id,
                                       linked_by="user"))
            db.session.commit()

    def edit_contact(self, contact_id: str, **fields: Any) -> None:
        """A bookkeeper saves the contact in Xero."""
        result = self.books.save_contacts([{"ContactID": contact_id, **fields}], summarize=True)
        assert not result.failed, result.failed

    def contact_event(self, *contact_ids: str, tenant: str | None = None) -> requests.Response:
        """Xero's webhook for changed contacts, signed with the webhook key."""
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        events = [{"resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{c}",
                   "resourceId": c, "eventDateUtc": now, "eventType": "UPDATE",
                   "eventCategory": "CONTACT", "tenantId": tenant or self.tenant,
                   "tenantType": "ORGANISATION"} for c in contact_ids]
        body = json.dumps({"events": events, "firstEventSequence": 1,
                           "lastEventSequence": len(events), "entropy": "ABCDEF"}).encode()
        response = requests.post(f"{self.url}/webhooks/xero", data=body, timeout=10, headers={
            "Content-Type": "application/json",
            "x-xero-signature": hmac_sha256(XERO_WEBHOOK_KEY, body)})
        assert response.status_code == 200 and response.content == b""
        self.work()
        return response

    def audit(self, action: str) -> list[AuditEvent]:
        with self.app.app_context():
            return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                           .order_by(AuditEvent.id)))

    def reviews(self) -> list[ReviewItem]:
        with self.app.app_context():
            return list(db.session.scalars(select(ReviewItem)))

    def the_link(self) -> ContactLink:
        with self.app.app_context():
            link = db.session.scalars(select(ContactLink)).one()
            db.session.expunge(link)
            return link


def _serve(app_factory, browser, crm: str, crm_fake: tuple[Any, str],
           xero_fake: tuple[FakeXero, str], **overrides: Any) -> Env:
    xero, _ = xero_fake
    tenant = xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(**{crm: crm_fake}, xero=xero_fake), **overrides)
    assert browser.get(f"{url}/install/{crm}").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    env = Env(app, url, crm_fake[0], xero, xero.accounting(tenant), tenant)
    env.work()
    return env


@pytest.fixture
def hub(app_factory, fake_hubspot, fake_xero, browser) -> Env:
    hubspot, _ = fake_hubspot
    env = _serve(app_factory, browser, "hubspot", fake_hubspot, fake_xero,
                 hubspot_app_id=str(hubspot.app_id))
    hubspot.crm.add_property("companies", TAX, "ABN")
    return env


@pytest.fixture
def pd(app_factory, fake_xero, browser) -> Iterator[Env]:
    pipedrive = FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split()))
    with LoopbackServer(pipedrive) as server:
        yield _serve(app_factory, browser, "pipedrive", (pipedrive, server.url), fake_xero)


def hub_company(env: Env, company_id: str) -> dict[str, Any]:
    return env.crm.crm.object_properties("companies", company_id)


def linked_initech(env: Env, **company: Any) -> tuple[str, str]:
    """A HubSpot company and a Xero contact, linked, synced once (the first sync fills what
    the company lacks); returns (company id, contact id)."""
    company_id = env.crm.crm.add_company(name="Initech", **company)
    contact = env.books.add_contact("Initech", TaxNumber="51 824 753 556",
                                    Phones=[phone("5550 1234")], Addresses=[STREET])
    env.link(company_id, contact.contact_id)
    env.contact_event(contact.contact_id)
    return company_id, contact.contact_id


# --- HubSpot ------------------------------------------------------------------------------------

def test_the_first_sync_fills_the_companys_empty_fields_in_one_batch_update(hub):
    hub.settings()
    company_id = hub.crm.crm.add_company(name="Initech", phone="+61 2 9999 0000")
    contact = hub.books.add_contact("Initech", TaxNumber="51 824 753 556",
                                    Phones=[phone("5550 1234")], Addresses=[STREET])
    hub.link(company_id, contact.contact_id)
    hub.crm.clear_crm_calls()

    hub.contact_event(contact.contact_id)

    stored = hub_company(hub, company_id)
    assert [stored[k] for k in ("address", "city", "state", "zip", "country")] == [
        "Level 3, 1 Main St", "Sydney", "NSW", "2000", "Australia"]
    assert stored[TAX] == "51 824 753 556"
    # Both sides had a phone, never synced: the CRM wins by default, and the CRM -> Xero
    # direction is not built yet, so nothing is written either way.
    assert stored["phone"] == "+61 2 9999 0000"
    assert hub.books.contact(contact.contact_id).phones[0]["PhoneNumber"] == "5550 1234"
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/update") == 1
    assert hub.crm.count_crm_calls("PATCH", f"/crm/v3/objects/companies/{company_id}") == 0
    (event,) = hub.audit("contact_synced")
    assert event.outcome == "ok" and event.xero_ids == {"contact_id": contact.contact_id}
    assert event.detail["direction"] == "xero_to_crm" and event.detail["company"] == company_id
    assert event.detail["fields"]["tax_number"] == {
        "before": "", "after": "51 824 753 556", "why": "changed_in_xero"}
    assert event.detail["fields"]["street_address"]["after"] == {
        "lines": "Level 3, 1 Main St", "city": "Sydney", "region": "NSW", "postal_code": "2000",
        "country": "Australia"}
    assert set(event.detail["fields"]) == {"tax_number", "street_address"}
    link = hub.the_link()
    assert link.last_origin == "xero" and link.crm_written_version is not None
    assert link.xero_version is not None and link.synced_at is not None


def test_a_phone_changed_in_xero_reaches_the_company_and_never_bounces_back(hub):
    hub.settings()
    company_id, contact_id = linked_initech(hub)
    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 1234"  # filled by the first sync
    hub.edit_contact(contact_id, Phones=[phone("5550 9876")])
    hub.crm.clear_crm_calls()

    hub.contact_event(contact_id)

    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 9876"
    before_after = hub.audit("contact_synced")[-1].detail["fields"]
    assert before_after == {"phone": {"before": "+61 2 5550 1234", "after": "+61 2 5550 9876",
                                      "why": "changed_in_xero"}}
    # The same event again (Xero retries), and the company now holds what Paydeck wrote:
    # nothing is written, nothing audited.
    hub.crm.clear_crm_calls()
    hub.contact_event(contact_id)
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/update") == 0
    assert len(hub.audit("contact_synced")) == 2


def test_a_field_the_mapping_turns_off_or_sends_only_to_xero_is_not_written(hub):
    hub.settings(fields={"phone": {"direction": "crm_to_xero"}, "tax_number": {"direction": "off"}})
    company_id, contact_id = linked_initech(hub, phone="+61 2 9999 0000")
    hub.edit_contact(contact_id, Phones=[phone("5550 9876")], TaxNumber="99 999 999 999")
    hub.crm.clear_crm_calls()

    hub.contact_event(contact_id)

    stored = hub_company(hub, company_id)
    assert stored["phone"] == "+61 2 9999 0000" and not stored.get(TAX)
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/update") == 0


def test_both_changed_xero_wins_the_tax_number_by_default(hub):
    hub.settings()
    company_id, contact_id = linked_initech(hub)
    hub.crm.crm.set_properties("companies", company_id, {TAX: "11 111 111 111"})
    hub.edit_contact(contact_id, TaxNumber="22 222 222 222")

    hub.contact_event(contact_id)

    assert hub_company(hub, company_id)[TAX] == "22 222 222 222"
    assert hub.audit("contact_synced")[-1].detail["fields"]["tax_number"] == {
        "before": "11 111 111 111", "after": "22 222 222 222", "why": "both_changed_xero_wins"}


def test_both_changed_with_ask_opens_one_review_item_with_both_values(hub):
    hub.settings(fields={"name": {"conflict": "ask"}})
    company_id, contact_id = linked_initech(hub)
    hub.crm.crm.set_properties("companies", company_id, {"name": "Initech (CRM)"})
    hub.edit_contact(contact_id, Name="Initech (Xero)")

    hub.contact_event(contact_id)
    hub.contact_event(contact_id)  # asked once, not again while it waits

    assert hub_company(hub, company_id)["name"] == "Initech (CRM)"
    (item,) = hub.reviews()
    assert item.reason == ReviewReason.CONTACT_CONFLICT and item.contact_link_id is not None
    assert item.candidates == [{"field": "name", "side": "xero", "value": "Initech (Xero)"},
                               {"field": "name", "side": "crm", "value": "Initech (CRM)"}]
    assert hub.the_link().open_conflicts == {"name": item.id}
    (asked,) = hub.audit("contact_conflict")
    assert (asked.detail["xero"], asked.detail["crm"]) == ("Initech (Xero)", "Initech (CRM)")


def test_a_contact_outside_the_chosen_groups_is_not_synced(hub):
    hub.settings(contact_groups=["a-group-id"])  # the fake's contacts are in no group
    company_id = hub.crm.crm.add_company(name="Initech")
    contact = hub.books.add_contact("Initech", TaxNumber="51 824 753 556")
    hub.link(company_id, contact.contact_id)
    hub.crm.clear_crm_calls()

    hub.contact_event(contact.contact_id)

    assert not hub_company(hub, company_id).get(TAX)
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/update") == 0


def test_contact_sync_switched_off_wakes_nothing_and_writes_nothing(hub):
    hub.settings(enabled=False)
    company_id = hub.crm.crm.add_company(name="Initech")
    contact = hub.books.add_contact("Initech", TaxNumber="51 824 753 556")
    hub.link(company_id, contact.contact_id)
    hub.crm.clear_crm_calls()
    xero_calls = hub.xero.count_calls("GET", "/api.xro/2.0/Contacts")

    hub.contact_event(contact.contact_id)

    assert hub.crm.count_crm_calls() == 0
    assert hub.xero.count_calls("GET", "/api.xro/2.0/Contacts") == xero_calls
    assert hub.audit("contact_synced") == []


def test_an_unlinked_contact_and_another_tenants_event_are_left_alone(hub):
    hub.settings()
    contact = hub.books.add_contact("Nobody Linked", TaxNumber="51 824 753 556")
    hub.crm.clear_crm_calls()

    hub.contact_event(contact.contact_id)
    hub.contact_event(contact.contact_id, tenant="00000000-0000-0000-0000-000000000000")

    assert hub.crm.count_crm_calls() == 0 and hub.audit("contact_synced") == []


def test_a_crm_that_is_down_leaves_the_change_waiting_and_it_is_written_later(hub):
    hub.settings()
    company_id, contact_id = linked_initech(hub)
    hub.edit_contact(contact_id, Phones=[phone("5550 9876")])
    hub.crm.inject_crm("5xx", path_prefix="/crm/v3/objects/companies/batch/update", status=503)

    hub.contact_event(contact_id)

    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 1234"
    assert len(hub.audit("contact_synced")) == 1  # only the first sync's
    with hub.app.app_context():  # the contact stays noted for the retry
        assert get_redis().smembers(f"paydeck:xero-contacts-changed:{hub.tenant}") == {
            contact_id.encode()}
    hub.contact_event(contact_id)  # the next event brings the retry forward
    assert hub_company(hub, company_id)["phone"] == "+61 2 5550 9876"
    assert hub.audit("contact_synced")[-1].outcome == "ok"


# --- Pipedrive ------------------------------------------------------------------------------------

def test_pipedrive_the_organization_gets_xeros_changes_by_v2_patch(pd):
    tax_field = pd.crm.api.add_org_field("ABN")
    pd.settings(tax_property=tax_field)
    org = pd.crm.api.add_org("Initech")
    contact = pd.books.add_contact("Initech", TaxNumber="51 824 753 556", Addresses=[STREET],
                                   Phones=[phone("5550 1234")])
    pd.link(str(org), contact.contact_id)

    pd.contact_event(contact.contact_id)

    stored = pd.crm.api.org(org)
    assert stored.custom_fields[tax_field] == "51 824 753 556"
    assert stored.address["locality"] == "Sydney" and stored.address["route"] == "Level 3, 1 Main St"
    assert pd.crm.api.count_calls("PATCH", f"/api/v2/organizations/{org}") == 1
    (event,) = pd.audit("contact_synced")
    assert set(event.detail["fields"]) == {"tax_number", "street_address"}  # no phone field

    pd.edit_contact(contact.contact_id, TaxNumber="22 222 222 222")
    pd.contact_event(contact.contact_id)
    assert pd.crm.api.org(org).custom_fields[tax_field] == "22 222 222 222"
    pd.contact_event(contact.contact_id)  # the echo: nothing more
    assert pd.crm.api.count_calls("PATCH", f"/api/v2/organizations/{org}") == 2
