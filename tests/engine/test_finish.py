"""Steps collect_fields, record and write_back_fields, alone."""

from __future__ import annotations

from app.engine.steps.finish import collect_fields, record, write_back_fields
from app.extensions import db
from app.models import AuditEvent, DealSyncRequest, InvoiceLinkState, ReviewReason


def test_each_deal_shows_its_invoice_or_why_it_has_none(batch):
    ctx = batch.context("1", "2", "3")
    invoiced, reviewed, untouched = ctx.items
    invoiced.link = batch.link("1", xero_invoice_id="inv-1", invoice_number="INV-1", status="DRAFT")
    ctx.review(reviewed, ReviewReason.SYNC_FAILED, "the deal no longer exists in the CRM")

    collect_fields(ctx)
    write_back_fields(ctx)

    assert [(f.deal_id, f.invoice_number, f.last_sync_error) for f in batch.crm.written] == [
        ("1", "INV-1", ""), ("2", None, "the deal no longer exists in the CRM")]


def test_record_audits_every_deal_and_deletes_only_what_it_handled(batch):
    ctx = batch.context("done", "pending", "merged", "later")
    done, pending, merged, later = ctx.items
    ctx.unchanged(done, "already AUTHORISED")
    pending.link = batch.link("pending", InvoiceLinkState.PENDING)  # its create was not answered
    ctx.unchanged(merged, "already AUTHORISED")
    merged.request.version += 1  # a request merged in while the run worked
    db.session.commit()
    later.retry_in, later.done = 90.0, True

    record(ctx)

    waiting = {r.deal_id: r for r in db.session.scalars(db.select(DealSyncRequest))}
    assert set(waiting) == {"pending", "merged", "later"}
    assert waiting["later"].attempts == 1 and waiting["later"].not_before is not None
    outcomes = dict(db.session.execute(db.select(AuditEvent.deal_id, AuditEvent.outcome)).all())
    assert outcomes == {"done": "unchanged", "pending": "pending", "merged": "unchanged",
                        "later": "retry"}


def test_nothing_is_written_back_when_no_deal_has_anything_to_show(batch):
    ctx = batch.context("1")

    collect_fields(ctx)
    write_back_fields(ctx)

    assert ctx.fields == [] and batch.crm.written == []
