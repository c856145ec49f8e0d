"""A Xero batch answer that does not line up with the request is handled per element: the
element it leaves out waits and is looked up again, the rest of the batch goes on; never a
`zip()` ValueError, never a neighbour's result, never a review item for Xero's slip."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from app.engine.job import sync_installation
from app.extensions import db
from app.models import (
    ContactLink,
    DealSyncRequest,
    InvoiceLink,
    InvoiceLinkState,
    ReviewItem,
    ReviewReason,
)
from sandbox.memory_crm import deal
from tests.helpers import count
from tests.test_engine import env  # noqa: F401  (the fixture)
from xero.client import InvoiceResult, line_up
from xero.errors import BatchMismatch, RetryLater, Uncertain


def _result(reference: str, invoice_id: str) -> InvoiceResult:
    return InvoiceResult(reference, invoice_id, None, None, None, None, None, None, None, None)


def test_line_up_matches_by_key_not_by_position():
    answers = [_result("b", "2"), _result("a", "1"), _result("x", "9")]  # reordered, one extra

    lined = line_up(["a", "b", "c"], answers, lambda r: r.reference, "invoice")

    assert [getattr(r, "invoice_id", None) for r in lined[:2]] == ["1", "2"]
    assert isinstance(lined[2], BatchMismatch) and lined[2].key == "c"
    # Retry later, after a look-up (it may have been saved): never FixData.
    assert isinstance(lined[2], Uncertain) and isinstance(lined[2], RetryLater)


def test_line_up_refuses_two_answers_for_one_element():
    lined = line_up(["a"], [_result("a", "1"), _result("a", "2")], lambda r: r.reference, "invoice")

    assert isinstance(lined[0], BatchMismatch) and "2 results" in lined[0].reason


def _two_deals_answered_for_the_first(env, path: str, *deals: tuple[str, str]) -> None:  # noqa: F811
    """Deals `(id, name)` of "<name> Co" (ap@<name>.example) requested and worked while Xero
    answers each PUT to `path` with the first element only."""
    for deal_id, name in deals:
        env.crm.add(deal(deal_id, org=f"{name} Co", email=f"ap@{name.lower()}.example"))
    env.fake.inject("short_answer", method="PUT", path_prefix=path)
    for deal_id, _ in deals:
        env.request(deal_id)
    env.work()


def _run_again(env) -> None:  # noqa: F811
    with env.app.app_context():
        db.session.execute(DealSyncRequest.__table__.update().values(not_before=None))
        db.session.commit()
        sync_installation(env.installation_id)


def test_a_contact_left_out_of_xeros_answer_waits_and_the_other_deal_is_invoiced(env):  # noqa: F811
    _two_deals_answered_for_the_first(env, "/Contacts", ("201", "First"), ("202", "Second"))
    # Xero created both contacts but answered with the first only

    assert len(env.invoices_for("201")) == 1 and env.invoices_for("202") == []
    with env.app.app_context():
        waiting = db.session.scalars(select(DealSyncRequest)).one()
        assert (waiting.deal_id, waiting.attempts) == ("202", 1) and waiting.not_before
        assert count(env.app, ReviewItem) == 0
    _run_again(env)  # the contact mirror now has Second Co: matched, not created twice

    assert len(env.invoices_for("202")) == 1
    assert sorted(c.name for c in env.books.contacts if c.name.endswith(" Co")) == [
        "First Co", "Second Co"]
    assert count(env.app, ContactLink) == 2 and count(env.app, ReviewItem) == 0


def test_an_invoice_left_out_of_xeros_answer_is_found_by_reference_not_created_twice(env):  # noqa: F811
    _two_deals_answered_for_the_first(env, "/Invoices", ("211", "Third"), ("212", "Fourth"))
    # both invoices exist in Xero; the answer carried the first only

    with env.app.app_context():
        states = dict(db.session.execute(select(InvoiceLink.deal_id, InvoiceLink.state)).all())
    assert states == {"211": InvoiceLinkState.CREATED, "212": InvoiceLinkState.PENDING}
    assert count(env.app, ReviewItem) == 0
    _run_again(env)

    (invoice,) = env.invoices_for("212")
    with env.app.app_context():
        link = db.session.scalars(select(InvoiceLink).where(InvoiceLink.deal_id == "212")).one()
        assert (link.state, link.xero_invoice_id) == (InvoiceLinkState.CREATED, invoice.invoice_id)
    assert env.crm.last_written("212").invoice_number == invoice.invoice_number
    assert count(env.app, DealSyncRequest) == 0


def test_a_deal_xeros_answers_keep_leaving_out_backs_off_then_goes_to_review(env, monkeypatch):  # noqa: F811
    """Found in review: a deal left out of every answer retried every 60 s for ever. Its
    wait grows with its own tries (xero.errors.standard_backoff: 5 s x 4^(n-1), equal
    jitter), and after MAX_MISMATCH_TRIES a person is asked to look."""
    from app.engine.context import MAX_MISMATCH_TRIES

    env.crm.add(deal("221", org="Fifth Co", email="ap@fifth.example"))
    env.crm.add(deal("222", org="Sixth Co", email="ap@sixth.example"))
    from xero.client import XeroClient

    original = XeroClient.create_contacts

    def leaves_the_last_out(self, contacts):  # and does not create it: it comes up every run
        results = original(self, contacts[:-1]) if len(contacts) > 1 else []
        return [*results, BatchMismatch(contacts[-1].name, "no answer carried it")]

    monkeypatch.setattr(XeroClient, "create_contacts", leaves_the_last_out)
    env.request("221")
    env.request("222")

    waits = []
    for _ in range(MAX_MISMATCH_TRIES):
        env.work()
        with env.app.app_context():
            request = db.session.scalars(select(DealSyncRequest).where(DealSyncRequest.deal_id == "222")).first()
            if request is None:
                break
            waits.append((request.not_before - datetime.now(timezone.utc)).total_seconds())
        _run_again(env)

    assert waits[0] >= 55  # never below Xero's own 60 s
    assert waits[-1] > waits[0] * 2 or waits[-1] >= 290  # grows (5 x 4^4 = 1280, capped 600)
    with env.app.app_context():
        (item,) = db.session.scalars(select(ReviewItem).where(ReviewItem.deal_id == "222")).all()
    assert item.reason == ReviewReason.SYNC_FAILED and "left this deal out" in item.detail
    assert count(env.app, DealSyncRequest) == 0
