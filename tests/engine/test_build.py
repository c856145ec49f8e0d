"""Step build, alone (xero.build's arithmetic has its own tests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from app.engine.steps.build import build, invoice_date
from app.engine.steps.deals import fetch_deals
from app.extensions import db
from app.models import ReviewItem, ReviewReason, StageAction
from sandbox.memory_crm import deal
from tests.engine.conftest import REF

WON = datetime(2026, 6, 30, 14, 30, tzinfo=timezone.utc)


def ready(batch, *deal_ids, action=StageAction.AUTHORISE):
    for deal_id in deal_ids:
        batch.crm.add(deal(deal_id, closed_at=WON))
    ctx = batch.context(*deal_ids, action=action)
    fetch_deals(ctx)
    ctx.ref = REF
    for w in ctx.items:
        w.contact_id = "c-1"
    return ctx


def test_each_deal_with_a_contact_gets_a_draft_with_its_reference(batch):
    ctx = ready(batch, "1", action=StageAction.DRAFT)

    build(ctx)

    draft = ctx.items[0].draft
    assert draft is not None and draft.reference == "HubSpot 4711 deal 1"
    assert (draft.status, draft.contact_id) == ("DRAFT", "c-1")
    assert draft.date == date(2026, 7, 1)  # won 30 June 14:30 UTC: 1 July in Sydney


def test_a_deal_done_earlier_or_without_a_contact_is_not_built(batch):
    ctx = ready(batch, "1", "2")
    ctx.review(ctx.items[0], ReviewReason.AMBIGUOUS_CONTACT, "two contacts match")
    ctx.items[1].contact_id = None

    build(ctx)

    assert [w.draft for w in ctx.items] == [None, None]


def test_an_unknown_organisation_timezone_is_a_review_item(batch):
    ctx = ready(batch, "1")
    ctx.ref = replace(REF, timezone="MARS STANDARD TIME")

    build(ctx)

    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.UNKNOWN_TIMEZONE and ctx.items[0].draft is None


def test_what_the_builder_refuses_is_reviewed_with_its_problem(batch):
    ctx = ready(batch, "1")
    ctx.settings.default_account_code = None

    build(ctx)

    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert ctx.items[0].done and item.detail


def test_the_invoice_date_is_the_close_moment_unless_it_is_in_the_future():
    sydney = ZoneInfo("Australia/Sydney")
    closed = replace(deal("1"), closed_at=WON)

    assert invoice_date(closed, sydney, WON.replace(day=1, month=7)) == date(2026, 7, 1)
    assert invoice_date(closed, sydney, WON.replace(month=5)) == date(2026, 5, 31)  # not yet: now
