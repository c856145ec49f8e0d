"""Step send, alone: links first, then Xero, then each answer on its deal."""

from __future__ import annotations

from app.engine.steps.build import build
from app.engine.steps.deals import fetch_deals
from app.engine.steps.send import send
from app.extensions import db
from app.models import InvoiceLink, InvoiceLinkState, ReviewItem, ReviewReason
from sandbox.memory_crm import deal
from tests.engine.conftest import REF, invoice
from xero.errors import BatchMismatch, FixData


def built(batch, *deal_ids):
    for deal_id in deal_ids:
        batch.crm.add(deal(deal_id))
    ctx = batch.context(*deal_ids)
    fetch_deals(ctx)
    ctx.ref = REF
    for w in ctx.items:
        w.contact_id = "c-1"
    build(ctx)
    return ctx


def test_the_pending_link_is_committed_before_xero_hears_of_the_invoice(batch):
    ctx = built(batch, "1")
    seen = []
    batch.xero.on_create = lambda: seen.extend(
        db.session.execute(db.select(InvoiceLink.state)).scalars().all())
    batch.xero.answers = [invoice("HubSpot 4711 deal 1", "inv-1")]

    send(ctx)

    assert seen == [InvoiceLinkState.PENDING]
    (w,) = ctx.items
    assert w.done and w.link.state == InvoiceLinkState.CREATED and w.link.xero_invoice_id == "inv-1"
    assert ctx.counts["created"] == 1


def test_an_answer_xero_left_out_keeps_the_link_pending_and_retries_that_deal(batch):
    ctx = built(batch, "1", "2")
    batch.xero.answers = [invoice("HubSpot 4711 deal 1", "inv-1"),
                          BatchMismatch("HubSpot 4711 deal 2", "no element carried it")]

    send(ctx)

    ok, left_out = ctx.items
    assert ok.link.state == InvoiceLinkState.CREATED
    assert left_out.link.state == InvoiceLinkState.PENDING and left_out.retry_in is not None
    assert ctx.counts == {**ctx.counts, "created": 1, "retry": 1}


def test_an_element_xero_refused_is_reviewed_with_xeros_words(batch):
    ctx = built(batch, "1")
    batch.xero.answers = [invoice("HubSpot 4711 deal 1", None, errors=("Contact is archived",))]

    send(ctx)

    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert (item.reason, item.detail) == (ReviewReason.XERO_VALIDATION, "Contact is archived")
    assert ctx.items[0].link.state == InvoiceLinkState.FAILED


def test_a_whole_batch_refused_is_each_deals_review_item(batch, monkeypatch):
    ctx = built(batch, "1", "2")

    def refuse(drafts, key):
        raise FixData(["A validation exception occurred"])

    monkeypatch.setattr(batch.xero, "create_invoices", refuse)

    send(ctx)

    assert [w.audit["errors"] for w in ctx.items] == [["A validation exception occurred"]] * 2


def test_an_update_goes_to_the_existing_invoice_with_a_stable_key(batch):
    ctx = built(batch, "1")
    ctx.items[0].update_of = "inv-1"
    ctx.items[0].link = batch.link("1", xero_invoice_id="inv-1", status="DRAFT")
    batch.xero.answers = [invoice("HubSpot 4711 deal 1", "inv-1")]

    send(ctx)
    (name, (updates, key)), = batch.xero.calls

    assert name == "update_invoices" and updates[0][0] == "inv-1" and key.startswith("paydeck-update-")
    assert ctx.counts["updated"] == 1
