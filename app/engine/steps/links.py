"""Steps: load each deal's InvoiceLink, and recover PENDING links by their Reference (a run
that died may have created the invoice in Xero: look before acting)."""

from __future__ import annotations

from sqlalchemy import select

from app.engine import clock
from app.engine.context import RunContext
from app.engine.keys import stamp
from app.extensions import db
from app.invoice_results import apply_invoice_result
from app.models import InvoiceLink, InvoiceLinkState, ReviewReason
from app.writeback import TRIGGER
from xero.client import InvoiceResult


def load_links(ctx: RunContext) -> None:
    ids = [w.request.deal_id for w in ctx.items]
    links = {l.deal_id: l for l in db.session.scalars(select(InvoiceLink).where(
        InvoiceLink.installation_id == ctx.installation.id, InvoiceLink.trigger == TRIGGER,
        InvoiceLink.deal_id.in_(ids)))}
    for w in ctx.items:
        w.link = links.get(w.request.deal_id)


def recover_uncertain(ctx: RunContext) -> None:
    """A PENDING link may have been created in Xero by a run that died: look before acting."""
    uncertain = [w for w in ctx.open() if w.link is not None
                 and w.link.state == InvoiceLinkState.PENDING]
    if not uncertain:
        return
    found = ctx.xero.invoices_by_reference([w.link.reference for w in uncertain])  # type: ignore[union-attr]
    claimed = _claimed_elsewhere(ctx, [r.invoice_id for rs in found.values() for r in rs
                                       if r.invoice_id])
    for w in uncertain:
        assert w.link is not None
        matches = [m for m in found.get(w.link.reference, []) if m.invoice_id not in claimed]
        if len(matches) == 1:
            apply_invoice_result(w.link, matches[0], clock.today())
            w.link.paydeck_written_at = matches[0].updated_at
            w.audit["recovered"] = True
            ctx.counts["recovered"] += 1
        elif len(matches) > 1:  # e.g. finance used "Copy to": never guess, never a third
            numbers = ", ".join(m.invoice_number or m.invoice_id or "?" for m in matches)
            ctx.review(w, ReviewReason.DUPLICATE_INVOICES,
                       f"{len(matches)} invoices in Xero carry the reference "
                       f"{w.link.reference!r}: {numbers}. Void or delete the extra "
                       "one(s) in Xero, then retry.",
                       [invoice_candidate(m) for m in matches])


def _claimed_elsewhere(ctx: RunContext, invoice_ids: list[str]) -> set[str]:
    """Invoices another installation's link holds: never adopted, whatever their
    Reference says (links from before 0008 used "HubSpot deal <id>", shared by every
    account of that CRM)."""
    if not invoice_ids:
        return set()
    return set(db.session.scalars(select(InvoiceLink.xero_invoice_id).where(
        InvoiceLink.installation_id != ctx.installation.id,
        InvoiceLink.xero_invoice_id.in_(invoice_ids))))


def invoice_candidate(r: InvoiceResult) -> dict[str, object]:
    """An invoice as a review item lists it."""
    return {"invoice_id": r.invoice_id, "invoice_number": r.invoice_number, "status": r.status,
            "updated_at": stamp(r.updated_at)}
