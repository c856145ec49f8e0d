"""Paydeck emails an invoice through Xero (POST /Invoices/{id}/Email): from the engine's
"authorise and email" step and from the deal page's send / resend button (a job: the page
answers at once, Xero is called by the worker). Either way the link records when and to whom,
which the deal page shows as "Emailed to ... on ..."."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from app.connections import xero_client
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    Installation,
    InstallationStatus,
    InvoiceLink,
    ReviewItem,
    ReviewReason,
    StageAction,
)
from app.queueing import enqueue_once
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from xero.errors import FixData, ReconnectNeeded, RetryLater

log = logging.getLogger(__name__)

# Xero emails only approved invoices (the fake's EMAILABLE_STATUSES, after Xero's refusal
# "Invoices with a status of DRAFT cannot be emailed"): the button is offered for these.
EMAILABLE = ("AUTHORISED", "PAID")


def note_emailed(link: InvoiceLink, when: datetime | None = None) -> None:
    """Xero accepted the email: remember when, and to the address the invoice's contact had."""
    link.emailed_at = when or datetime.now(timezone.utc)
    link.emailed_to = (link.detail or {}).get("contact_email") or None


def email_problem(link: InvoiceLink | None) -> str:
    """Why this link's invoice cannot be emailed now ("" if it can)."""
    if link is None or not link.xero_invoice_id:
        return "This deal has no invoice in Xero yet."
    if link.status not in EMAILABLE:
        return f"Xero emails approved invoices only; this one is {(link.status or 'unknown').lower()}."
    return ""


def enqueue_email(link: InvoiceLink, user: str, attempt: str) -> None:
    """The deal page's button: email the invoice from a job (one per link at a time)."""
    enqueue_once(email_invoice_job, link.id, user, attempt, job_id=f"invoice-email-{link.id}",
                 job_timeout=120)


def email_invoice_job(link_id: int, user: str, attempt: str) -> str:
    """Job: email the link's invoice; a refusal becomes the deal's `email_failed` review
    item, Xero's limits a later try. Returns what happened (for the job's result)."""
    link = db.session.get(InvoiceLink, link_id)
    if link is None or email_problem(link):
        return "skipped"
    installation = db.session.get(Installation, link.installation_id)
    connection = installation.xero_connection if installation else None
    if (installation is None or installation.status != InstallationStatus.ACTIVE or connection is None
            or connection.status != ConnectionStatus.CONNECTED):
        return "not connected"
    try:
        xero_client(connection).email_invoice(link.xero_invoice_id, attempt=attempt)  # type: ignore[arg-type]
    except (RetryLater, TokenUnavailable) as exc:
        enqueue_once(email_invoice_job, link_id, user, attempt, job_id=f"invoice-email-{link_id}",
                     follow_up=True, delay=max(exc.seconds, 1.0), job_timeout=120)
        return "later"
    except (FixData, ReconnectNeeded, TokenReconnectNeeded) as exc:
        why = ("; ".join(getattr(exc, "messages", ()) or ()) or str(exc)).rstrip(".")
        db.session.add(ReviewItem(
            installation_id=link.installation_id, deal_id=link.deal_id,
            reason=ReviewReason.EMAIL_FAILED, action=StageAction.AUTHORISE_AND_EMAIL.value,
            detail=f"Xero did not email invoice {link.invoice_number}: {why}. Fix the contact's "
                   "email address in Xero, then send it again from the deal."))
        _audit(link, user, "refused", why)
        db.session.commit()
        return "refused"
    note_emailed(link)
    _audit(link, user, "ok", "")
    db.session.commit()
    return "sent"


def _audit(link: InvoiceLink, user: str, outcome: str, why: str) -> None:
    db.session.add(AuditEvent(installation_id=link.installation_id, deal_id=link.deal_id,
                              action="invoice_emailed", outcome=outcome,
                              detail={"by": user, "to": link.emailed_to, "error": why},
                              xero_ids={"invoice_id": link.xero_invoice_id}))
