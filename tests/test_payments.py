"""Payment status back on the deal: Xero webhooks, the safety-net poll, overdue follow-up,
and alerts."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select, update

from app.engine.intake import request_invoices
from app.extensions import db
from app.models import AuditEvent, InvoiceLink, ReviewItem, ReviewReason, StageAction, XeroConnection
from app.followup import alert_admins, overdue_sweep
from app.payments import poll_invoices
from sandbox.memory_crm import deal
from tests.conftest import XERO_WEBHOOK_KEY
from tests.helpers import count, one
from tests.test_engine import env  # noqa: F401 - the engine's fixture: installed, connected


@pytest.fixture
def paid_env(env, xero_connected):  # noqa: F811
    """One authorised invoice for deal 500, and the Paydeck URL Xero's webhooks go to."""
    _, url, _ = xero_connected
    env.crm.add(deal("500"))
    env.request("500")
    env.work()
    env.url = url
    env.invoice = env.invoices_for("500")[0]
    return env


def deliver(env):
    response = env.fake.webhooks.deliver(f"{env.url}/webhooks/xero", XERO_WEBHOOK_KEY)
    env.work()
    return response


def shown(env, deal_id="500"):
    return env.crm.last_written(deal_id)


def test_intent_to_receive_and_forged_signatures(paid_env):
    url = f"{paid_env.url}/webhooks/xero"

    assert paid_env.fake.webhooks.intent_to_receive(url, XERO_WEBHOOK_KEY)
    forged = requests.post(url, data=b'{"events": []}', timeout=5,
                           headers={"x-xero-signature": "bm9wZQ=="})
    assert forged.status_code == 401 and forged.content == b""
    assert paid_env.fake.webhooks.intent_to_receive(url, "the wrong key") is False


def test_part_payment_then_full_payment_reach_the_deal(paid_env):
    env = paid_env
    env.books.pay(env.invoice.invoice_id, Decimal("100.00"))

    response = deliver(env)

    assert response.status_code == 200 and response.content == b""
    part = shown(env)
    assert (part.invoice_status, part.amount_paid, part.amount_due) == ("Partially paid", "100.00", "230.00")
    env.books.pay(env.invoice.invoice_id, Decimal("230.00"), paid_on=date(2026, 11, 20))
    deliver(env)
    paid = shown(env)
    assert (paid.invoice_status, paid.amount_due, paid.paid_date) == ("Paid", "0.00", "2026-11-20")
    assert count(env.app, AuditEvent, AuditEvent.action == "payment_status") == 2


def test_a_deleted_payment_moves_the_deal_back(paid_env):
    env = paid_env
    payment = env.books.pay(env.invoice.invoice_id, Decimal("330.00"))
    deliver(env)
    assert shown(env).invoice_status == "Paid"

    env.books.delete_payment(env.invoice.invoice_id, payment.payment_id)
    deliver(env)

    back = shown(env)
    assert (back.invoice_status, back.amount_due, back.paid_date) == ("Awaiting payment", "330.00", None)


def test_void_after_a_payment_is_removed(paid_env):
    """Xero voids only unpaid invoices: the payment is deleted first, then the invoice voided."""
    env = paid_env
    payment = env.books.pay(env.invoice.invoice_id, Decimal("50.00"))
    deliver(env)
    assert shown(env).invoice_status == "Partially paid"

    env.books.delete_payment(env.invoice.invoice_id, payment.payment_id)
    env.books.void(env.invoice.invoice_id)
    deliver(env)

    assert (shown(env).invoice_status, shown(env).amount_paid) == ("Voided", "0.00")


def test_void_and_credit_note(paid_env):
    env = paid_env
    env.crm.add(deal("501", org="Other Co", email="ap@other.example"))
    env.request("501")
    env.work()
    other = env.invoices_for("501")[0]

    env.books.void(env.invoice.invoice_id)
    env.books.credit(other.invoice_id, Decimal("330.00"))
    deliver(env)

    assert shown(env, "500").invoice_status == "Voided"
    assert shown(env, "501").invoice_status == "Credited"


def test_events_for_invoices_paydeck_did_not_make_are_ignored(paid_env):
    env = paid_env
    deliver(env)  # Paydeck's own invoice's events first
    before = len(env.crm.written)
    contact = env.books.contacts[0]
    env.books.add_invoice({"Type": "ACCREC", "Contact": {"ContactID": contact.contact_id},
                           "Status": "AUTHORISED", "DueDate": "2026-12-31", "LineItems": [
                               {"Description": "x", "Quantity": 1, "UnitAmount": 5, "AccountCode": "200",
                                "TaxType": "OUTPUT"}]})

    deliver(env)

    assert len(env.crm.written) == before


def test_missed_webhooks_are_caught_by_one_poll(env):  # noqa: F811
    """Webhooks off; 200 invoices change in Xero; one poll puts every one on its deal."""
    for n in range(200):
        env.crm.add(deal(str(1000 + n), org=f"Company {n}", email=f"ap@c{n}.example"))
    with env.app.app_context():
        request_invoices(env.installation_id, [(str(1000 + n), StageAction.AUTHORISE, "t") for n in range(200)])
    env.work()
    assert len(env.books.invoices) == 200
    for invoice in env.books.invoices:
        env.books.pay(invoice.invoice_id, Decimal("100.00"))
    env.crm.written.clear()
    calls_before = env.fake.count_calls(method="GET", path_prefix="/Invoices")

    with env.app.app_context():
        connection_id = db.session.scalars(select(XeroConnection.id)).one()
        counts = poll_invoices(connection_id)

    assert counts["changed"] == 200
    assert {w.deal_id for w in env.crm.written} == {str(1000 + n) for n in range(200)}
    assert all(w.invoice_status == "Partially paid" for w in env.crm.written)
    assert env.fake.count_calls(method="GET", path_prefix="/Invoices") - calls_before == 1
    with env.app.app_context():  # the next poll starts where this one stopped
        assert poll_invoices(connection_id)["changed"] == 0


def test_overdue_deals_are_flagged_and_the_owner_told_once_per_episode(paid_env, monkeypatch):
    env = paid_env
    notices = []
    monkeypatch.setattr(env.crm, "notify_owner",
                        lambda inst, deal_id, owner, subject, body: notices.append((deal_id, subject)) or "t1",
                        raising=False)
    with env.app.app_context():
        db.session.execute(update(InvoiceLink).values(due_date=date.today() - timedelta(days=3)))
        db.session.commit()

        assert overdue_sweep() == 1
        assert overdue_sweep() == 0  # no daily spam

    assert notices == [("500", f"Invoice {env.invoice.invoice_number} is overdue")]
    assert shown(env).invoice_status == "Overdue"
    env.books.pay(env.invoice.invoice_id, Decimal("330.00"))
    deliver(env)
    assert one(env.app, InvoiceLink).overdue_notified_at is None  # the episode ended


def test_a_failing_crm_token_skips_that_overdue_notice_and_the_sweep_goes_on(paid_env, monkeypatch):
    """Found in review: one installation whose CRM token refresh is failing aborted the daily
    sweep for every installation after it. It is skipped and told again the next day."""
    from app.tokens import TokenUnavailable

    env = paid_env
    tries = []

    def failing(inst, deal_id, owner, subject, body):
        tries.append(deal_id)
        raise TokenUnavailable("hubspot: invalid_client", seconds=30)

    monkeypatch.setattr(env.crm, "notify_owner", failing, raising=False)
    with env.app.app_context():
        db.session.execute(update(InvoiceLink).values(due_date=date.today() - timedelta(days=3)))
        db.session.commit()

        assert overdue_sweep() == 0  # nothing told, no exception

    assert tries == ["500"]
    assert one(env.app, InvoiceLink).overdue_notified_at is None  # so the next sweep retries


def test_admins_are_emailed_once_about_review_items(env, app_factory):  # noqa: F811
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app = app_factory.create(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
        with app.app_context():
            db.session.add(ReviewItem(installation_id=env.installation_id, deal_id="9",
                                      reason=ReviewReason.RECONNECT_NEEDED, detail="Reconnect Xero"))
            db.session.commit()
            assert alert_admins() == 1
            assert alert_admins() == 0
    finally:
        controller.stop()

    ((to, content),) = inbox.messages
    assert to == ["owner@example.com"] and "Reconnect Xero" in content


def test_without_smtp_review_items_are_the_record(env):  # noqa: F811
    with env.app.app_context():
        db.session.add(ReviewItem(installation_id=env.installation_id, reason=ReviewReason.SYNC_FAILED,
                                  detail="x"))
        db.session.commit()
        assert alert_admins() == 0
        assert db.session.scalars(select(ReviewItem.notified_at)).one() is None


def test_a_429_during_refresh_keeps_the_change_and_comes_back(paid_env):
    from rq import Queue

    from app.queueing import QUEUE
    from app.payments import refresh_invoices
    from app.redis_conn import get_redis

    env = paid_env
    env.books.pay(env.invoice.invoice_id, Decimal("330.00"))
    env.fake.inject("429", method="GET", path_prefix="/Invoices", problem="minute", retry_after=2)

    deliver(env)

    assert shown(env).invoice_status != "Paid"
    with env.app.app_context():
        scheduled = Queue(QUEUE, connection=get_redis()).scheduled_job_registry.get_job_ids()
        assert any(j.startswith("xero-refresh-") for j in scheduled)
        get_redis().delete(*get_redis().keys("paydeck:xero-limit:*"))
        connection_id = db.session.scalars(select(XeroConnection.id)).one()
        assert refresh_invoices(connection_id) == 1
    assert shown(env).invoice_status == "Paid"


def test_the_deal_gets_the_customers_online_invoice_link(paid_env):
    env = paid_env
    env.books.pay(env.invoice.invoice_id, Decimal("10.00"))

    deliver(env)

    link = shown(env).invoice_url
    assert link.startswith("https://in.xero.com/")
    assert one(env.app, InvoiceLink).customer_url == link
    calls = env.fake.count_calls(path_prefix=f"/Invoices/{env.invoice.invoice_id}/OnlineInvoice")
    env.books.pay(env.invoice.invoice_id, Decimal("10.00"))
    deliver(env)
    assert env.fake.count_calls(path_prefix=f"/Invoices/{env.invoice.invoice_id}/OnlineInvoice") == calls


def test_a_failing_xero_token_refresh_during_refresh_keeps_the_change_and_backs_off(paid_env):
    """Issue #10: a refresh failing other than invalid_grant is retried with backoff, never
    lost: the payment's invoice id stays waiting and the job comes back later."""
    from rq import Queue

    from app.queueing import QUEUE
    from app.payments import refresh_invoices
    from app.redis_conn import get_redis

    env = paid_env
    env.books.pay(env.invoice.invoice_id, Decimal("330.00"))
    with env.app.app_context():
        connection = db.session.scalars(select(XeroConnection)).one()
        connection.token_expires_at = datetime.now(timezone.utc) - timedelta(minutes=1)
        db.session.commit()
        connection_id = connection.id
    env.fake.inject_token_fault("5xx", times=1)

    deliver(env)  # the webhook's refresh job meets the failing token endpoint

    assert shown(env).invoice_status != "Paid"
    with env.app.app_context():
        scheduled = Queue(QUEUE, connection=get_redis()).scheduled_job_registry.get_job_ids()
        assert any(j.startswith("xero-refresh-") for j in scheduled)
        assert refresh_invoices(connection_id) == 1  # the token endpoint answers again
    assert shown(env).invoice_status == "Paid"
