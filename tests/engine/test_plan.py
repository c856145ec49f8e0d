"""Steps load_reference_data and plan_updates, alone."""

from __future__ import annotations

from datetime import timedelta

from app.engine.steps.links import load_links
from app.engine.steps.plan import load_reference_data, plan_updates
from app.extensions import db
from app.models import InvoiceLinkState, ReviewItem, ReviewReason, StageAction
from tests.engine.conftest import REF, WRITTEN, invoice

REFERENCE = "HubSpot 4711 deal 1"


def planned(batch, xero_invoice, action=StageAction.AUTHORISE, **link):
    batch.link("1", xero_invoice_id="inv-1", status="DRAFT", paydeck_written_at=WRITTEN, **link)
    batch.xero.invoices["inv-1"] = xero_invoice
    ctx = batch.context("1", action=action)
    load_links(ctx)
    plan_updates(ctx)
    return ctx, ctx.items[0]


def test_reference_data_is_read_once_then_served_from_the_cache(batch):
    first, second = batch.context("1"), batch.context("2")

    load_reference_data(first)
    load_reference_data(second)

    assert first.ref == second.ref == REF
    assert batch.xero.names() == ["reference_data"]


def test_paydecks_own_untouched_draft_is_updated(batch):
    ctx, w = planned(batch, invoice(REFERENCE, status="DRAFT"))

    assert w.update_of == "inv-1" and not w.done
    assert w.audit["wanted_status"] == "AUTHORISED"
    assert batch.xero.calls == [("invoices_by_ids", ["inv-1"])]


def test_a_draft_finance_edited_in_xero_is_a_review_item_not_overwritten(batch):
    edited = invoice(REFERENCE, status="DRAFT", updated_at=WRITTEN + timedelta(minutes=3))

    ctx, w = planned(batch, edited)

    assert w.done and w.update_of is None
    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.XERO_EDITED


def test_an_approved_invoice_whose_email_failed_only_owes_the_email(batch):
    ctx, w = planned(batch, invoice(REFERENCE, sent_to_contact=False),
                     action=StageAction.AUTHORISE_AND_EMAIL)

    assert w.email_only and not w.done and w.update_of is None
    assert w.link.status == "AUTHORISED"  # the link shows Xero's state


def test_an_invoice_gone_from_xero_leaves_the_deal_unchanged(batch):
    batch.link("1", xero_invoice_id="inv-1")
    ctx = batch.context("1")
    load_links(ctx)

    plan_updates(ctx)

    assert ctx.items[0].done and "no longer in Xero" in ctx.items[0].audit["unchanged"]


def test_a_deal_without_an_invoice_is_not_planned(batch):
    batch.link("1", InvoiceLinkState.PENDING)
    ctx = batch.context("1", "2")
    load_links(ctx)

    plan_updates(ctx)

    assert batch.xero.calls == [] and not any(w.done for w in ctx.items)
