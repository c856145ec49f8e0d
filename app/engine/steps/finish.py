"""Last steps: what each deal shows (its invoice, or why it has none), one AuditEvent per
deal, the handled requests deleted (only at the version the run read), the write back."""

from __future__ import annotations

from datetime import timedelta

from app.engine import clock
from app.engine.context import DealWork, RunContext
from app.engine.outcomes import delete_handled
from app.extensions import db
from app.models import AuditEvent, InvoiceLinkState
from app.writeback import link_fields, write_back
from domain.crm import InvoiceFields


def collect_fields(ctx: RunContext) -> None:
    """The invoice fields of each deal with an invoice; the last review's words otherwise."""
    for w in ctx.items:
        link = w.link
        if link is not None and link.state == InvoiceLinkState.CREATED:
            ctx.fields.append(link_fields(link))
        elif w.audit.get("review"):
            detail = w.audit["review"][-1]["detail"]  # type: ignore[index]
            ctx.fields.append(InvoiceFields(deal_id=w.request.deal_id,
                                            last_sync_error=str(detail)[:250]))


def record(ctx: RunContext) -> None:
    """Audit every deal, delete what was handled, hold back the deals left for later."""
    for w in ctx.items:
        db.session.add(AuditEvent(
            installation_id=ctx.installation.id, deal_id=w.request.deal_id,
            action="invoice_sync", trigger=w.request.source,
            outcome=_outcome(w), detail={k: v for k, v in w.audit.items()
                                         if k not in ("xero_invoice_id",)} | {
                "requested": w.action.value},
            xero_ids={"invoice_id": w.link.xero_invoice_id} if w.link and w.link.xero_invoice_id else {}))
    handled = {w.request.id: w.version for w in ctx.items if w.retry_in is None and (
        w.done or w.link is None or w.link.state != InvoiceLinkState.PENDING)}
    delete_handled(handled)
    for w in ctx.items:
        if w.retry_in is not None:
            w.request.not_before = clock.now() + timedelta(seconds=w.retry_in)
            w.request.attempts += 1
    db.session.commit()


def write_back_fields(ctx: RunContext) -> None:
    if ctx.fields:
        write_back(ctx.installation, ctx.fields)


def _outcome(w: DealWork) -> str:
    if w.retry_in is not None:
        return "retry"
    if w.audit.get("review"):
        return "review"
    if w.audit.get("unchanged"):
        return "unchanged"
    if w.link is not None and w.link.state == InvoiceLinkState.PENDING:
        return "pending"
    return "ok"
