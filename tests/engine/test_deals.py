"""Steps fetch_deals and follow_current_stage, alone."""

from __future__ import annotations

from app import wiring
from app.engine.steps.deals import fetch_deals, follow_current_stage
from app.extensions import db
from app.models import ReviewItem, ReviewReason, StageAction, StageRule
from sandbox.memory_crm import deal


def test_fetch_deals_reads_the_batch_once_and_reviews_a_deal_the_crm_lost(batch):
    batch.crm.add(deal("1"))
    ctx = batch.context("1", "2")

    assert fetch_deals(ctx) is True

    one, two = ctx.items
    assert one.deal is not None and not one.done
    assert two.deal is None and two.done
    assert batch.crm.fetches == 1
    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert (item.deal_id, item.reason) == ("2", ReviewReason.SYNC_FAILED)
    assert ctx.counts["review"] == 1


def test_fetch_deals_without_an_adapter_sends_every_deal_to_review(batch, monkeypatch):
    monkeypatch.delitem(wiring.ADAPTERS, "hubspot")
    ctx = batch.context("1", "2")

    assert fetch_deals(ctx) is False

    assert all(w.done for w in ctx.items) and ctx.source is None
    assert [w.audit["review"][0]["detail"] for w in ctx.items] == ["no adapter for hubspot"] * 2


def test_a_webhook_request_follows_the_stage_the_deal_is_in_now(batch):
    db.session.add(StageRule(installation_id=batch.installation_id, pipeline_id="p",
                             stage_id="won", action=StageAction.AUTHORISE_AND_EMAIL))
    db.session.commit()
    batch.crm.add(deal("1", stage_id="won"))
    batch.crm.add(deal("2", stage_id="lost"))
    ctx = batch.context("1", "2", action=StageAction.DRAFT, source="hubspot:event:9")
    fetch_deals(ctx)

    follow_current_stage(ctx)

    won, lost = ctx.items
    assert won.action == StageAction.AUTHORISE_AND_EMAIL and not won.done
    assert lost.done and "stage lost, which has no invoice rule" in lost.audit["unchanged"]
    assert ctx.counts["unchanged"] == 1


def test_a_push_from_the_card_keeps_its_action_whatever_the_stage(batch):
    batch.crm.add(deal("1", stage_id="lost"))
    ctx = batch.context("1", action=StageAction.DRAFT, source="card:user-7")
    fetch_deals(ctx)

    follow_current_stage(ctx)

    (w,) = ctx.items
    assert w.action == StageAction.DRAFT and not w.done and "stage_now" not in w.audit
