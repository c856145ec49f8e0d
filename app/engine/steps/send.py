"""Step: send the built invoices - each new one's link committed PENDING first - in batches
with an Idempotency-Key, and apply each answer to its deal."""

from __future__ import annotations

from collections.abc import Sequence

from app.engine import clock
from app.engine.context import DealWork, RunContext
from app.engine.keys import draft_hash, key
from app.engine.reference import forget_reference_data
from app.extensions import db
from app.invoice_results import apply_invoice_result
from app.models import InvoiceLink, InvoiceLinkState, ReviewReason
from app.writeback import TRIGGER
from xero.client import BATCH_SIZE, InvoiceResult
from xero.errors import BatchMismatch, FixData


def send(ctx: RunContext) -> None:
    creates = [w for w in ctx.items if w.draft is not None and w.update_of is None]
    updates = [w for w in ctx.items if w.draft is not None and w.update_of is not None]
    for w in creates:
        _ensure_pending_link(ctx, w)
    db.session.commit()  # the links exist before Xero hears of the invoices
    for start in range(0, len(creates), BATCH_SIZE):
        chunk = creates[start:start + BATCH_SIZE]
        idempotency = key("create", [w.link.idempotency_key for w in chunk])  # type: ignore[union-attr]
        try:
            results = ctx.xero.create_invoices([w.draft for w in chunk], idempotency)  # type: ignore[misc]
        except FixData as exc:  # the whole batch refused (should not happen with summarizeErrors=false)
            results = [_failed(w.draft.reference, exc.messages) for w in chunk]  # type: ignore[union-attr,misc]
        apply_all(ctx, chunk, results, "created")
    for start in range(0, len(updates), BATCH_SIZE):
        chunk = updates[start:start + BATCH_SIZE]
        idempotency = key("update", [f"{w.update_of}:{w.draft.status}:{draft_hash(w.draft)}" for w in chunk])  # type: ignore[union-attr]
        results = ctx.xero.update_invoices([(w.update_of, w.draft) for w in chunk], idempotency)  # type: ignore[misc]
        apply_all(ctx, chunk, results, "updated")


def _ensure_pending_link(ctx: RunContext, w: DealWork) -> None:
    if w.link is None:
        deal_id = w.request.deal_id
        w.link = InvoiceLink(installation_id=ctx.installation.id, deal_id=deal_id,
                             trigger=TRIGGER, reference=w.draft.reference,  # type: ignore[union-attr]
                             idempotency_key=key("invoice", [str(ctx.installation.id),
                                                             deal_id, TRIGGER]))
        db.session.add(w.link)
    w.link.state = InvoiceLinkState.PENDING


def apply_all(ctx: RunContext, chunk: list[DealWork],
              results: Sequence[InvoiceResult | BatchMismatch], verb: str) -> None:
    """`results` line up with `chunk` (xero.client.line_up matched them by key)."""
    for w, result in zip(chunk, results, strict=True):
        assert w.draft is not None and w.link is not None
        if isinstance(result, BatchMismatch):
            # Created or not, we cannot tell: a create keeps its PENDING link, so the next
            # run looks the invoice up by Reference before sending it again.
            ctx.retry(w, result)
        elif result.errors or not result.invoice_id:
            _refused(ctx, w, w.link, list(result.errors) or ["Xero returned no invoice id"])
        else:
            _sent(ctx, w, w.link, result)
            ctx.counts[verb] += 1
    db.session.commit()


def _refused(ctx: RunContext, w: DealWork, link: InvoiceLink, messages: list[str]) -> None:
    link.state = (InvoiceLinkState.CREATED if w.update_of else InvoiceLinkState.FAILED)
    w.audit["errors"] = messages
    ctx.review(w, ReviewReason.XERO_VALIDATION, "; ".join(messages))
    # Our checks passed but Xero disagreed: our copy of its settings may be stale.
    forget_reference_data(ctx.installation.id)


def _sent(ctx: RunContext, w: DealWork, link: InvoiceLink, result: InvoiceResult) -> None:
    apply_invoice_result(link, result, clock.today())
    link.paydeck_written_at = result.updated_at
    link.owner_id = w.deal.owner_id if w.deal else None
    link.xero_contact_id = link.xero_contact_id or w.contact_id
    w.audit.update(xero_invoice_id=result.invoice_id, invoice_number=result.invoice_number,
                   status=result.status)
    w.done = True


def _failed(reference: str, messages: Sequence[str]) -> InvoiceResult:
    return InvoiceResult(reference, None, None, None, None, None, None, None, None, None,
                         tuple(messages))
