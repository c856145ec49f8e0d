"""The company card's contact-sync state (issue #15 section 4), over real HTTP against the
loopback fakes: in sync or waiting, the last change on each side in the viewer's zone, the
open conflicts with a link to the review queue; nothing when the company is not linked."""

from __future__ import annotations

from datetime import datetime, timezone

import requests
from sqlalchemy import select

from app import formatting
from app.access.viewer import page_locale, viewer_for
from app.connections import xero_client
from app.engine.reference import reference_data
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactSyncSettings,
    Installation,
    ReviewItem,
    ReviewReason,
)
from tests.test_company_import import company_url, hub, initech_contact, post, token_of  # noqa: F401

XERO_CHANGED = datetime(2026, 3, 4, 23, 30, tzinfo=timezone.utc)  # the 5th in Sydney
CRM_CHANGED = datetime(2026, 3, 5, 1, 15, tzinfo=timezone.utc)


def linked_company(hub, *, enabled=True):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)
    page = company_url(hub, company)
    assert post(hub, company, "link", token_of(page), contact_id).status_code in (200, 302)
    with hub.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        db.session.add(ContactSyncSettings(installation_id=installation.id, enabled=enabled,
                                           fields={}, xero_roles=["customer", "unassigned"],
                                           contact_groups=[]))
        link = db.session.scalars(select(ContactLink)).one()
        link.xero_version, link.crm_version = XERO_CHANGED, CRM_CHANGED
        link.synced_at, link.last_origin = CRM_CHANGED, "crm"
        db.session.commit()
        # What the settings page and the engine keep of the organisation (its zone among it):
        # read once, as they do, so pages format in the organisation's zone.
        reference_data(installation, installation.xero_connection,
                       xero_client(installation.xero_connection))
    return company, page


def zoned(hub, moment):
    """`moment` as the installing admin's pages show it (their zone, else the organisation's)."""
    with hub.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        locale, tz = page_locale(viewer_for(installation, hub.crm.user_email))
    assert tz and tz != "UTC"  # the fake Xero organisation's zone: not UTC
    return formatting.when(moment, tz, locale), formatting.when(moment, "UTC", locale)


def test_a_synced_link_shows_in_sync_and_each_sides_last_change_in_the_viewers_zone(hub):
    company, page = linked_company(hub)

    text = requests.get(page, timeout=10).text

    assert "Contact sync:" in text and "In sync" in text and "Waiting" not in text
    xero_local, xero_utc = zoned(hub, XERO_CHANGED)
    crm_local, _ = zoned(hub, CRM_CHANGED)
    assert xero_local != xero_utc
    assert f"<dt>Last change in Xero</dt><dd>{xero_local}</dd>" in text
    assert f"<dt>Last change in HubSpot</dt><dd>{crm_local}</dd>" in text
    assert "the last change came from HubSpot" in text
    assert "open item" not in text


def test_an_open_conflict_shows_waiting_with_the_conflict_and_a_link_to_the_review_queue(hub):
    company, page = linked_company(hub)
    with hub.app.app_context():
        link = db.session.scalars(select(ContactLink)).one()
        item = ReviewItem(installation_id=link.installation_id, contact_link_id=link.id,
                          reason=ReviewReason.CONTACT_CONFLICT,
                          detail="The phone changed in both Xero and the CRM since they were "
                                 "last in sync, and the mapping says to ask: choose which value to keep.",
                          candidates=[{"field": "phone", "side": "xero", "value": "1"},
                                      {"field": "phone", "side": "crm", "value": "2"}])
        db.session.add(item)
        db.session.flush()
        link.open_conflicts = {"phone": item.id}
        db.session.commit()

    response = requests.get(page, timeout=10)

    text = response.text
    assert "Waiting" in text and "In sync" not in text
    assert "1 open item for a person" in text and "The phone changed in both Xero" in text
    assert "Decide in the review queue" in text
    review = [line for line in text.splitlines() if "Decide in the review queue" in line][0]
    href = review.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    queue = requests.get(href if href.startswith("http") else hub.url + href, timeout=10)
    assert queue.status_code == 200 and "The phone changed in both Xero" in queue.text


def test_a_failed_write_or_a_link_never_synced_is_waiting(hub):
    company, page = linked_company(hub)
    with hub.app.app_context():
        link = db.session.scalars(select(ContactLink)).one()
        db.session.add(AuditEvent(installation_id=link.installation_id, action="contact_synced",
                                  outcome="failed", detail={"company": company,
                                                            "direction": "crm_to_xero",
                                                            "fields": {}, "error": "Xero said no"}))
        db.session.commit()
    text = requests.get(page, timeout=10).text
    assert "Waiting" in text and "The last write failed and is tried again: Xero said no" in text

    with hub.app.app_context():
        link = db.session.scalars(select(ContactLink)).one()
        link.synced_at = link.xero_version = link.crm_version = None
        db.session.query(AuditEvent).filter_by(action="contact_synced").delete()
        db.session.commit()
    text = requests.get(page, timeout=10).text
    assert "Waiting" in text and "not synced yet" in text


def test_sync_off_says_so_and_an_unlinked_company_shows_no_sync_state(hub):
    company, page = linked_company(hub, enabled=False)
    text = requests.get(page, timeout=10).text
    assert "Contact sync is off" in text and "Contact sync:" not in text

    other = hub.crm.crm.add_company(name="Globex")
    text = requests.get(company_url(hub, other), timeout=10).text
    assert "Contact sync" not in text


def test_a_link_whose_xero_contact_is_archived_shows_waiting_and_says_why(hub):
    company, page = linked_company(hub)
    with hub.app.app_context():
        link = db.session.scalars(select(ContactLink)).one()
        link.xero_status = "archived"
        db.session.add(ReviewItem(installation_id=link.installation_id, contact_link_id=link.id,
                                  reason=ReviewReason.CONTACT_ARCHIVED,
                                  detail="The Xero contact Initech Holdings is archived in Xero"))
        db.session.commit()

    text = requests.get(page, timeout=10).text

    assert "Waiting" in text and "The Xero contact is archived: nothing syncs" in text
    assert "The Xero contact Initech Holdings is archived in Xero" in text
