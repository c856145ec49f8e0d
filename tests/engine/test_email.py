"""Step send_emails, alone."""

from __future__ import annotations

from app.engine.steps.email import send_emails
from app.extensions import db
from app.models import ReviewItem, ReviewReason, StageAction
from xero.errors import FixData


def emailing(batch, *, email_only=False):
    ctx = batch.context("1", action=StageAction.AUTHORISE_AND_EMAIL)
    (w,) = ctx.items
    w.link = batch.link("1", xero_invoice_id="inv-1", status="AUTHORISED", invoice_number="INV-1")
    w.email_only = email_only
    if not email_only:
        w.draft, w.done = object(), True  # sent by the step before
    return ctx, w


def test_an_approved_invoice_of_an_email_rule_is_emailed(batch):
    ctx, w = emailing(batch)

    send_emails(ctx)

    assert batch.xero.calls == [("email_invoice", "inv-1")] and w.audit["emailed"] is True


def test_an_email_still_owed_is_sent_and_counts_as_an_update(batch):
    ctx, w = emailing(batch, email_only=True)

    send_emails(ctx)

    assert w.done and ctx.counts["updated"] == 1 and w.audit["emailed"] is True


def test_a_refused_email_is_that_deals_review_item(batch):
    batch.xero.email_refusal = FixData(["The contact has no email address."])
    ctx, w = emailing(batch, email_only=True)

    send_emails(ctx)

    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.EMAIL_FAILED and "has no email address" in item.detail
    assert ctx.counts == {**ctx.counts, "review": 1, "updated": 0}


def test_an_invoice_xero_refused_is_not_emailed(batch):
    ctx, w = emailing(batch)
    w.audit["errors"] = ["Contact is archived"]

    send_emails(ctx)

    assert batch.xero.calls == []
