"""Issue #11 points 2-4 against the fake Xero: dates in the organisation's timezone, the
contact's own terms, what finance did in Xero stays done, and nothing lost or adopted.

Golden values are worked out by hand from the vendors' rules (comments say how)."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.engine import clock, intake, keys, reviews
from app.engine.job import sync_installation
from app.engine.reviews import retry_review_item
from app.engine.steps import send
from app.extensions import db
from app.models import (AuditEvent, ContactLink, CrmKind, DealSyncRequest, Installation,
                        InstallationSettings, InvoiceLink, InvoiceLinkState, ReviewItem,
                        ReviewReason, ReviewStatus, StageAction, StageRule, XeroConnection)
from sandbox.memory_crm import deal
from tests.helpers import count, one
from tests.test_engine import env  # noqa: F401 - the engine's fixture: installed, connected

# 2026-06-30T14:30Z. Sydney keeps AEST (UTC+10) in winter (DST runs October to April), so it
# is 00:30 on 1 July there: the first day of Australia's 2026-27 financial year.
WON = datetime(2026, 6, 30, 14, 30, tzinfo=timezone.utc)


def _line_descriptions(invoice) -> list[str]:
    return [line.description for line in invoice.line_items]


def _open_items(env, reason=None) -> list[ReviewItem]:
    with env.app.app_context():
        query = select(ReviewItem).where(ReviewItem.status == ReviewStatus.OPEN)
        if reason is not None:
            query = query.where(ReviewItem.reason == reason)
        items = db.session.scalars(query).all()
        db.session.expunge_all()
        return list(items)


# --- 2. dates and terms ---------------------------------------------------------------------------

def test_a_deal_won_at_half_past_midnight_in_sydney_is_dated_1_july(env):
    env.crm.add(deal("201", closed_at=WON))

    env.request("201")
    env.work()

    (invoice,) = env.invoices_for("201")
    assert invoice.date == date(2026, 7, 1)  # not 2026-06-30, the UTC date
    assert invoice.due_date == date(2026, 7, 31)  # org terms: 30 days after the invoice date


def test_a_deal_without_a_close_moment_is_dated_now_in_the_organisations_zone(env, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: WON)
    env.crm.add(deal("202"))

    env.request("202")
    env.work()

    assert env.invoices_for("202")[0].date == date(2026, 7, 1)


def test_a_forecast_close_date_in_the_future_is_not_the_invoice_date(env, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: WON)
    env.crm.add(deal("203", closed_at=WON + timedelta(days=40)))

    env.request("203", StageAction.DRAFT)
    env.work()

    assert env.invoices_for("203")[0].date == date(2026, 7, 1)


def test_an_unknown_organisation_timezone_is_a_review_item_not_a_guess(env):
    # In Xero's TimeZone enum, but CLDR's windowsZones.xml no longer maps it.
    env.books.set_timezone("MIDATLANTICSTANDARDTIME")
    env.crm.add(deal("204"))

    env.request("204")
    env.work()

    assert env.invoices_for("204") == []
    (item,) = _open_items(env)
    assert item.reason == ReviewReason.UNKNOWN_TIMEZONE and "MIDATLANTICSTANDARDTIME" in item.detail


def test_reference_data_cached_before_the_timezone_was_read_is_read_again(env):
    import json

    from app.redis_conn import get_redis

    env.crm.add(deal("207"))
    env.request("207")
    env.work()
    with env.app.app_context():
        (key,) = get_redis().keys("paydeck:xero-ref:*")
        old = json.loads(get_redis().hget(key, "data"))
        del old["timezone"]  # a copy made before Paydeck read Organisation.Timezone
        get_redis().hset(key, "data", json.dumps(old))
    env.crm.add(deal("208", closed_at=WON))

    env.request("208")
    env.work()

    assert env.invoices_for("208")[0].date == date(2026, 7, 1)
    assert _open_items(env) == []


def _settings(env, **values) -> None:
    with env.app.app_context():
        row = db.session.get(InstallationSettings, env.installation_id)
        for key, value in values.items():
            setattr(row, key, value)
        db.session.commit()


def test_the_contacts_own_sales_terms_win_over_the_installation_default(env):
    env.books.add_contact("Initech Pty Ltd", EmailAddress="ap@initech.example",
                          PaymentTerms={"Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}})
    env.crm.add(deal("205", closed_at=WON))

    env.request("205")
    env.work()

    # Invoice date 1 July (see above); DAYSAFTERBILLDATE 14 -> 15 July, not the 30-day default.
    assert env.invoices_for("205")[0].due_date == date(2026, 7, 15)


def test_the_admin_can_turn_the_contacts_own_terms_off(env):
    _settings(env, use_contact_terms=False, payment_terms={"type": "days_after_invoice", "days": 7})
    env.books.add_contact("Initech Pty Ltd", EmailAddress="ap@initech.example",
                          PaymentTerms={"Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}})
    env.crm.add(deal("206", closed_at=WON))

    env.request("206")
    env.work()

    assert env.invoices_for("206")[0].due_date == date(2026, 7, 8)  # 1 July + 7 days


# --- 3. what finance did in Xero stays done ------------------------------------------------------

FINANCE_LINES = [{"Description": "Agreed with the customer", "Quantity": 1, "UnitAmount": 250,
                  "AccountCode": "200", "TaxType": "OUTPUT"}]


def _draft_edited_by_finance(env, deal_id: str):
    env.crm.add(deal(deal_id))
    env.request(deal_id, StageAction.DRAFT)
    env.work()
    (draft,) = env.invoices_for(deal_id)
    edited = env.books.edit_invoice(draft.invoice_id, {"LineItems": FINANCE_LINES})
    assert edited.updated_ms > draft.updated_ms
    env.crm.add(deal(deal_id, lines=3))  # the deal changed too
    return edited


def test_a_draft_finance_edited_is_not_overwritten_by_the_next_rule(env):
    edited = _draft_edited_by_finance(env, "301")
    env.fake.clear_api_calls()

    env.request("301", StageAction.AUTHORISE)
    env.work()

    (invoice,) = env.invoices_for("301")
    assert invoice == edited  # Xero's version untouched: same lines, status and UpdatedDateUTC
    assert env.fake.count_calls(method="POST", path_prefix="/Invoices") == 0
    (item,) = _open_items(env)
    assert item.reason == ReviewReason.XERO_EDITED and "keep xero's" in item.detail.lower()
    assert item.candidates[0]["invoice_number"] == edited.invoice_number


def test_keep_xeros_closes_the_item_and_sends_nothing(env):
    edited = _draft_edited_by_finance(env, "302")
    env.request("302", StageAction.AUTHORISE)
    env.work()
    (item,) = _open_items(env)
    env.fake.clear_api_calls()

    with env.app.app_context():
        assert reviews.keep_xero_version(item.id)
    env.work()

    assert env.invoices_for("302") == [edited]
    assert env.fake.count_calls(method="POST", path_prefix="/Invoices") == 0
    assert _open_items(env) == []
    assert count(env.app, AuditEvent, AuditEvent.action == "review_kept_xero") == 1


def test_a_plain_retry_cannot_settle_a_xero_edited_item(env):
    """Found in review: only the template hid Retry on a "Xero has edits" item; a retry
    closed it and the next run opened another. Keep Xero's or re-send decides; retry refuses."""
    edited = _draft_edited_by_finance(env, "304")
    env.request("304", StageAction.AUTHORISE)
    env.work()
    (item,) = _open_items(env)

    with env.app.app_context():
        assert reviews.retry_review_item(item.id) is False
    env.work()

    assert env.invoices_for("304") == [edited]
    assert [i.id for i in _open_items(env)] == [item.id]


def test_resend_the_deal_overwrites_xeros_version(env):
    _draft_edited_by_finance(env, "303")
    env.request("303", StageAction.AUTHORISE)
    env.work()
    (item,) = _open_items(env)

    with env.app.app_context():
        assert reviews.resend_deal(item.id)
    env.work()

    (invoice,) = env.invoices_for("303")
    assert invoice.status == "AUTHORISED"
    assert _line_descriptions(invoice) == ["Service 1", "Service 2", "Service 3"]
    assert _open_items(env) == []


def test_resend_does_not_overwrite_an_edit_made_after_the_choice_was_shown(env):
    _draft_edited_by_finance(env, "304")
    env.request("304", StageAction.AUTHORISE)
    env.work()
    (item,) = _open_items(env)
    again = env.books.edit_invoice(env.invoices_for("304")[0].invoice_id,
                                   {"LineItems": [{**FINANCE_LINES[0], "UnitAmount": 300}]})

    with env.app.app_context():
        assert reviews.resend_deal(item.id)
    env.work()

    assert env.invoices_for("304") == [again]
    (newer,) = _open_items(env)
    assert newer.reason == ReviewReason.XERO_EDITED and newer.id != item.id


def test_an_invoice_finance_approved_is_never_rewritten(env):
    env.crm.add(deal("305"))
    env.request("305", StageAction.DRAFT)
    env.work()
    (draft,) = env.invoices_for("305")
    approved = env.books.edit_invoice(draft.invoice_id, {"Status": "AUTHORISED"})
    env.crm.add(deal("305", lines=2))

    env.request("305", StageAction.AUTHORISE)
    env.work()
    env.request("305", StageAction.DRAFT)  # a later draft rule: never back to DRAFT
    env.work()

    assert env.invoices_for("305") == [approved]
    link = one(env.app, InvoiceLink)
    assert link.status == "AUTHORISED"  # the link learnt what finance did
    assert env.crm.last_written("305").invoice_status == "Awaiting payment"


def test_a_draft_rule_never_moves_an_invoice_awaiting_approval_back(env):
    env.crm.add(deal("306"))
    env.request("306", StageAction.DRAFT)
    env.work()
    (draft,) = env.invoices_for("306")
    submitted = env.books.edit_invoice(draft.invoice_id, {"Status": "SUBMITTED"})

    env.request("306", StageAction.DRAFT)
    env.work()

    assert env.invoices_for("306") == [submitted]
    assert _open_items(env) == []


def _rule(env, stage_id: str, action: StageAction) -> None:
    with env.app.app_context():
        db.session.add(StageRule(installation_id=env.installation_id, pipeline_id="default",
                                 stage_id=stage_id, action=action))
        db.session.commit()


def _webhook(env, deal_id: str, action: StageAction, event: str) -> None:
    """What app.views.webhooks stages for a HubSpot stage change."""
    with env.app.app_context():
        intake.request_invoice(env.installation_id, deal_id, action, f"hubspot:{event}")


def test_a_deal_dragged_to_closed_won_and_straight_back_gets_the_rule_of_where_it_is(env):
    _rule(env, "closedwon", StageAction.AUTHORISE)
    _rule(env, "contractsent", StageAction.DRAFT)
    env.crm.add(deal("307", stage_id="contractsent"))  # already back when the job reads it

    _webhook(env, "307", StageAction.AUTHORISE, "e-won")
    env.work()

    (invoice,) = env.invoices_for("307")
    assert invoice.status == "DRAFT"


def test_a_deal_dragged_back_to_a_stage_without_a_rule_gets_no_invoice(env):
    _rule(env, "closedwon", StageAction.AUTHORISE)
    env.crm.add(deal("308", stage_id="appointmentscheduled"))

    _webhook(env, "308", StageAction.AUTHORISE, "e-won-2")
    env.work()

    assert env.invoices_for("308") == []
    assert count(env.app, DealSyncRequest) == 0


# --- 4. nothing lost, nothing adopted --------------------------------------------------------

def test_a_closed_won_arriving_while_the_job_works_on_the_deal_is_not_lost(env, monkeypatch):
    env.crm.add(deal("401"))
    arrived = threading.Event()
    apply_all = send.apply_all

    def created_then_approval_arrives(run, chunk, results, verb):
        apply_all(run, chunk, results, verb)
        if not arrived.is_set():  # the draft exists in Xero; the run has not finished yet
            arrived.set()
            other = threading.Thread(target=env.request, args=("401", StageAction.AUTHORISE))
            other.start()  # another web worker (the Closed Won webhook), its own session
            other.join(10)

    monkeypatch.setattr(send, "apply_all", created_then_approval_arrives)
    env.request("401", StageAction.DRAFT)
    env.work()

    assert arrived.is_set()
    (invoice,) = env.invoices_for("401")
    assert invoice.status == "AUTHORISED"
    assert count(env.app, DealSyncRequest) == 0


def test_a_customer_without_email_fails_only_its_own_email(env):
    env.crm.add(deal("402", org="Mailable Co", email="ap@mailable.example"))
    env.crm.add(deal("403", org="Silent Co", email=""))

    env.request("402", StageAction.AUTHORISE_AND_EMAIL)
    env.request("403", StageAction.AUTHORISE_AND_EMAIL)
    env.work()

    (good,), (quiet,) = env.invoices_for("402"), env.invoices_for("403")
    assert good.status == quiet.status == "AUTHORISED"
    assert [e.invoice_id for e in env.books.emailed] == [good.invoice_id]
    (item,) = _open_items(env)
    assert (item.deal_id, item.reason) == ("403", ReviewReason.EMAIL_FAILED)

    env.books.add_contact("Silent Co", ContactID=quiet.contact_id, EmailAddress="ap@silent.example")
    with env.app.app_context():
        assert retry_review_item(item.id)
    env.work()

    assert [e.invoice_id for e in env.books.emailed] == [good.invoice_id, quiet.invoice_id]
    assert env.invoices_for("403") == [env.books.invoice(quiet.invoice_id)]  # no new invoice
    assert _open_items(env) == []


def _second_installation(env, account_id: str = "portal-B") -> int:
    """Another HubSpot account invoicing into the same Xero organisation (same tenant)."""
    with env.app.app_context():
        first = db.session.scalars(select(XeroConnection)).one()
        other = Installation(crm=CrmKind.HUBSPOT, account_id=account_id, account_name="B")
        db.session.add(other)
        db.session.flush()
        db.session.add(XeroConnection(
            installation_id=other.id, tenant_id=first.tenant_id, tenant_name=first.tenant_name,
            status=first.status, access_token=first.access_token,
            refresh_token=first.refresh_token, token_expires_at=first.token_expires_at,
            scopes=first.scopes))
        db.session.add(InstallationSettings(installation_id=other.id, default_account_code="200",
                                            default_tax_type="OUTPUT"))
        db.session.commit()
        return other.id


def test_two_crm_accounts_on_one_organisation_never_adopt_each_others_invoice(env):
    other_id = _second_installation(env)
    env.crm.add(deal("123"))
    env.request("123")
    env.work()  # account A's invoice for its deal 123
    env.fake.inject("5xx", method="PUT", path_prefix="/Invoices", status=503)

    with env.app.app_context():
        intake.request_invoice(other_id, "123", StageAction.AUTHORISE, "test:B")
        sync_installation(other_id)  # B's create fails before Xero made anything
        db.session.execute(DealSyncRequest.__table__.update().values(not_before=None))
        db.session.commit()
        sync_installation(other_id)  # B looks its invoice up by Reference, then creates it

    a, b = (one(env.app, InvoiceLink, InvoiceLink.installation_id == i)
            for i in (env.installation_id, other_id))
    assert a.reference != b.reference and "portal-B" in b.reference
    assert len(env.invoices_for("123")) == 2
    assert a.xero_invoice_id != b.xero_invoice_id and b.state == InvoiceLinkState.CREATED


def test_an_invoice_with_the_old_reference_is_still_found_by_the_installation_that_made_it(env):
    other_id = _second_installation(env)
    env.crm.add(deal("124"))
    contact = env.books.add_contact("Initech Pty Ltd", EmailAddress="ap@initech.example")
    old = env.books.add_invoice({"Type": "ACCREC", "Contact": {"ContactID": contact.contact_id},
                                 "Reference": "HubSpot deal 124", "Status": "DRAFT",
                                 "LineItems": FINANCE_LINES})
    with env.app.app_context():  # A's link from before the account was in the reference
        db.session.add(InvoiceLink(installation_id=env.installation_id, deal_id="124",
                                   trigger="deal", reference="HubSpot deal 124",
                                   idempotency_key="paydeck-invoice-old-124",
                                   state=InvoiceLinkState.PENDING))
        db.session.commit()

    env.request("124")
    with env.app.app_context():
        intake.request_invoice(other_id, "124", StageAction.AUTHORISE, "test:B")
    env.work()

    a = one(env.app, InvoiceLink, InvoiceLink.installation_id == env.installation_id)
    b = one(env.app, InvoiceLink, InvoiceLink.installation_id == other_id)
    assert a.xero_invoice_id == old.invoice_id and a.reference == "HubSpot deal 124"
    assert b.xero_invoice_id != old.invoice_id and b.reference.endswith("portal-B deal 124")


def test_a_pending_link_with_the_old_reference_never_adopts_another_accounts_invoice(env):
    other_id = _second_installation(env)
    env.crm.add(deal("125"))
    contact = env.books.add_contact("Initech Pty Ltd", EmailAddress="ap@initech.example")
    a_invoice = env.books.add_invoice({"Type": "ACCREC", "Contact": {"ContactID": contact.contact_id},
                                       "Reference": "HubSpot deal 125", "LineItems": FINANCE_LINES})
    with env.app.app_context():  # both links from before the account was in the reference
        db.session.add(InvoiceLink(installation_id=env.installation_id, deal_id="125",
                                   trigger="deal", reference="HubSpot deal 125",
                                   idempotency_key="paydeck-invoice-a-125",
                                   state=InvoiceLinkState.CREATED,
                                   xero_invoice_id=a_invoice.invoice_id, status="DRAFT"))
        db.session.add(InvoiceLink(installation_id=other_id, deal_id="125", trigger="deal",
                                   reference="HubSpot deal 125",
                                   idempotency_key="paydeck-invoice-b-125",
                                   state=InvoiceLinkState.PENDING))
        intake.request_invoice(other_id, "125", StageAction.DRAFT, "test:B")
    env.work()

    b = one(env.app, InvoiceLink, InvoiceLink.installation_id == other_id)
    assert b.state == InvoiceLinkState.CREATED and b.xero_invoice_id != a_invoice.invoice_id
    assert env.books.invoice(a_invoice.invoice_id) == a_invoice  # A's invoice untouched


def test_two_invoices_with_a_deals_reference_are_a_review_item_never_a_third(env):
    env.crm.add(deal("405"))
    with env.app.app_context():
        installation = db.session.get(Installation, env.installation_id)
        reference = keys.reference(installation, "405")
        db.session.add(InvoiceLink(installation_id=env.installation_id, deal_id="405",
                                   trigger="deal", reference=reference,
                                   idempotency_key="paydeck-invoice-405",
                                   state=InvoiceLinkState.PENDING))
        db.session.commit()
    contact = env.books.add_contact("Initech Pty Ltd", EmailAddress="ap@initech.example")
    copies = [env.books.add_invoice({"Type": "ACCREC", "Contact": {"ContactID": contact.contact_id},
                                     "Reference": reference, "LineItems": FINANCE_LINES})
              for _ in range(2)]  # the original and finance's "Copy to"

    env.request("405")
    env.work()

    assert sorted(i.invoice_id for i in env.invoices_for("405")) == sorted(
        c.invoice_id for c in copies)
    (item,) = _open_items(env)
    assert item.reason == ReviewReason.DUPLICATE_INVOICES
    assert all(c.invoice_number in item.detail for c in copies)
    assert sorted(c["invoice_number"] for c in item.candidates) == sorted(
        c.invoice_number for c in copies)


def _link_company(env, contact_id: str) -> None:
    """A person linked the deals' company to this Xero contact (the company page)."""
    with env.app.app_context():
        db.session.add(ContactLink(installation_id=env.installation_id, crm_object_type="company",
                                   crm_object_id="co-Initech Pty Ltd",
                                   xero_contact_id=contact_id, linked_by="user"))
        db.session.commit()


def test_an_archived_linked_contact_is_a_review_item_and_retry_works_after_unarchiving(env):
    contact = env.books.add_contact("Initech Pty Ltd", EmailAddress="ap@initech.example")
    _link_company(env, contact.contact_id)
    env.books.archive_contact(contact.contact_id)
    env.crm.add(deal("406"))

    env.request("406")
    env.work()

    assert env.invoices_for("406") == []
    (item,) = _open_items(env)
    assert item.reason == ReviewReason.CONTACT_ARCHIVED
    assert "relink" in item.detail.lower() and "unarchive" in item.detail.lower()

    env.books.add_contact("Initech Pty Ltd", ContactID=contact.contact_id, ContactStatus="ACTIVE")
    with env.app.app_context():
        assert retry_review_item(item.id)
    env.work()

    (invoice,) = env.invoices_for("406")
    assert invoice.contact_id == contact.contact_id and invoice.status == "AUTHORISED"


def test_after_relinking_an_archived_contact_the_retry_invoices_the_new_one(env):
    old = env.books.add_contact("Initech (old)", EmailAddress="old@initech.example")
    new = env.books.add_contact("Initech Pty Ltd", EmailAddress="ap@initech.example")
    _link_company(env, old.contact_id)
    env.books.archive_contact(old.contact_id)
    env.crm.add(deal("408"))
    env.request("408")
    env.work()
    (item,) = _open_items(env)
    assert item.candidates[0]["crm_object_id"] == "co-Initech Pty Ltd"

    with env.app.app_context():  # what the company page's "link" does
        link = db.session.scalars(select(ContactLink)).one()
        link.xero_contact_id = new.contact_id
        db.session.commit()
        assert retry_review_item(item.id)
    env.work()

    (invoice,) = env.invoices_for("408")
    assert invoice.contact_id == new.contact_id


def test_a_prepayment_allocated_to_the_invoice_shows_as_paid_not_credited(env, xero_connected):
    from tests.conftest import XERO_WEBHOOK_KEY

    _, url, _ = xero_connected
    env.crm.add(deal("407"))
    env.request("407")
    env.work()
    (invoice,) = env.invoices_for("407")

    env.books.allocate_prepayment(invoice.invoice_id, invoice.total)  # 330.00, all of it
    env.fake.webhooks.deliver(f"{url}/webhooks/xero", XERO_WEBHOOK_KEY)
    env.work()

    assert env.crm.last_written("407").invoice_status == "Paid"  # was "Credited"
    link = one(env.app, InvoiceLink)
    assert (link.deal_status, link.status, link.amount_credited, link.amount_prepaid) == (
        "paid", "PAID", Decimal("330.0000"), Decimal("330.0000"))



def test_the_safety_net_poll_also_shows_a_prepaid_invoice_as_paid(env):
    from app.payments import poll_invoices

    env.crm.add(deal("409"))
    env.crm.add(deal("410", org="Other Co", email="ap@other.example"))
    env.request("409")
    env.request("410")
    env.work()
    prepaid, credited = env.invoices_for("409")[0], env.invoices_for("410")[0]
    env.books.allocate_overpayment(prepaid.invoice_id, prepaid.total)
    env.books.credit(credited.invoice_id, credited.total)  # a credit note: really credited
    calls = env.fake.count_calls(method="GET", path_prefix="/Invoices")

    with env.app.app_context():
        connection_id = db.session.scalars(select(XeroConnection.id)).one()
        poll_invoices(connection_id)

    assert env.crm.last_written("409").invoice_status == "Paid"
    assert env.crm.last_written("410").invoice_status == "Credited"
    # One full page (lines, payments and allocations on each invoice): no second read.
    assert env.fake.count_calls(method="GET", path_prefix="/Invoices") - calls == 1
