"""Steps load_links and recover_uncertain, alone."""

from __future__ import annotations

from app.engine.steps.links import load_links, recover_uncertain
from app.extensions import db
from app.models import (CrmKind, Installation, InvoiceLink, InvoiceLinkState, ReviewItem,
                        ReviewReason)
from tests.engine.conftest import invoice

REFERENCE = "HubSpot 4711 deal 1"


def test_load_links_finds_each_deals_link_and_no_other(batch):
    batch.link("1")
    ctx = batch.context("1", "2")

    load_links(ctx)

    assert ctx.items[0].link is not None and ctx.items[0].link.deal_id == "1"
    assert ctx.items[1].link is None


def recovered(batch, *found):
    """Deal 1's link is PENDING and Xero has `found` under its Reference: recover it."""
    batch.link("1", InvoiceLinkState.PENDING)
    batch.xero.by_reference[REFERENCE] = list(found)
    ctx = batch.context("1")
    load_links(ctx)
    recover_uncertain(ctx)
    return ctx, ctx.items[0]


def test_a_pending_link_found_once_in_xero_is_adopted_not_created_again(batch):
    ctx, w = recovered(batch, invoice(REFERENCE, "inv-9"))

    assert w.link.state == InvoiceLinkState.CREATED and w.link.xero_invoice_id == "inv-9"
    assert w.link.paydeck_written_at is not None and w.audit["recovered"] is True
    assert ctx.counts["recovered"] == 1 and not w.done  # later steps still plan it
    assert batch.xero.calls == [("invoices_by_reference", [REFERENCE])]


def test_two_invoices_with_the_reference_are_a_review_item(batch):
    ctx, w = recovered(batch, invoice(REFERENCE, "inv-1"), invoice(REFERENCE, "inv-2"))

    assert w.done and w.link.state == InvoiceLinkState.PENDING
    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.DUPLICATE_INVOICES
    assert [c["invoice_id"] for c in item.candidates] == ["inv-1", "inv-2"]


def test_an_invoice_another_installations_link_holds_is_never_adopted(batch):
    other = Installation(crm=CrmKind.HUBSPOT, account_id="9999")
    db.session.add(other)
    db.session.flush()
    db.session.add(InvoiceLink(installation_id=other.id, deal_id="1", trigger="deal",
                               reference="HubSpot deal 1", idempotency_key="k-other",
                               state=InvoiceLinkState.CREATED, xero_invoice_id="inv-other"))

    ctx, w = recovered(batch, invoice(REFERENCE, "inv-other"))

    assert w.link.state == InvoiceLinkState.PENDING and not w.done
    assert ctx.counts["recovered"] == 0


def test_recovery_asks_xero_nothing_without_a_pending_link(batch):
    batch.link("1")
    ctx = batch.context("1")
    load_links(ctx)

    recover_uncertain(ctx)

    assert batch.xero.calls == []
