"""The database itself refuses what must never happen twice."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CrmKind, Installation, InvoiceLink, WebhookReceipt


def _installation(account_id: str = "42") -> Installation:
    installation = Installation(crm=CrmKind.HUBSPOT, account_id=account_id)
    db.session.add(installation)
    db.session.commit()
    return installation


def test_one_installation_per_crm_account(app):
    _installation()
    db.session.add(Installation(crm=CrmKind.HUBSPOT, account_id="42"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(Installation(crm=CrmKind.PIPEDRIVE, account_id="42"))  # another CRM: fine
    db.session.commit()


def test_one_invoice_link_per_deal_and_trigger(app):
    installation = _installation()

    def link(trigger: str) -> InvoiceLink:
        return InvoiceLink(installation_id=installation.id, deal_id="d1", trigger=trigger,
                           reference="Deal d1", idempotency_key=f"k-{trigger}")

    db.session.add(link("deal"))
    db.session.commit()
    db.session.add(link("deal"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_a_webhook_event_is_recorded_once(app):
    db.session.add(WebhookReceipt(source="hubspot", event_key="evt-1"))
    db.session.commit()
    db.session.add(WebhookReceipt(source="hubspot", event_key="evt-1"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_an_admin_session_sees_only_its_own_installation(app_factory, fake_hubspot, browser):
    """Two portals, two admins: each status page shows its own installation only."""
    from tests.conftest import Browser, fake_settings

    fake, _ = fake_hubspot
    served, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot))
    browser.get(f"{url}/install/hubspot")
    fake.portal_id = 999001
    with Browser() as other_admin:
        other_admin.get(f"{url}/install/hubspot")
        theirs = other_admin.get(f"{url}/connect/xero/status").json()
        their_page = other_admin.get(f"{url}/setup").text
    mine = browser.get(f"{url}/connect/xero/status").json()
    my_page = browser.get(f"{url}/setup").text

    assert mine["installation_id"] != theirs["installation_id"]
    assert "999001" in their_page and "999001" not in my_page
