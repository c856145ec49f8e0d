"""Step: email the approved invoices of "authorise and email" rules (and the emails still
owed from before); one refused email is that deal's review item, not the run's failure."""

from __future__ import annotations

from app.engine.context import DealWork, RunContext
from app.invoice_email import note_emailed
from app.models import InvoiceLink, ReviewReason, StageAction
from xero.errors import FixData


def send_emails(ctx: RunContext) -> None:
    sent = [w for w in ctx.items if w.draft is not None and w.update_of is None] + [
        w for w in ctx.items if w.draft is not None and w.update_of is not None]
    owed = [w for w in ctx.items if w.email_only and not w.done]
    for w in sent + owed:
        if w.action == StageAction.AUTHORISE_AND_EMAIL and w.link and \
                w.link.status == "AUTHORISED" and not w.audit.get("errors"):
            _email(ctx, w, w.link)
    for w in owed:
        if not w.done:
            w.done = True
            ctx.counts["updated"] += 1


def _email(ctx: RunContext, w: DealWork, link: InvoiceLink) -> None:
    try:
        ctx.xero.email_invoice(link.xero_invoice_id, attempt=w.source)  # type: ignore[arg-type]
    except FixData as exc:
        why = ("; ".join(exc.messages) or str(exc)).rstrip(".")
        ctx.review(w, ReviewReason.EMAIL_FAILED,
                   f"Invoice {link.invoice_number} is approved, but Xero did not email it: "
                   f"{why}. Fix the contact's email address in Xero, then retry.")
        return
    note_emailed(link)  # the deal page: "Emailed to ... on ..."
    w.audit["emailed"] = True
