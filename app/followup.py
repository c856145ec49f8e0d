"""What follows an invoice's status: the daily overdue follow-up (the deal flagged, its
owner told once per overdue episode) and the alerts that email the installing admin the
open review items."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import select

from app.extensions import db
from app.lifecycle import confirm_crm_grant
from app.mailer import send_email
from app.models import (
    AuditEvent,
    Installation,
    InstallationStatus,
    InvoiceLink,
    InvoiceLinkState,
    ReviewItem,
    ReviewStatus,
)
from app.runtime import get_settings
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.wiring import NoAdapter, adapter_for
from app.writeback import link_fields
from crm_adapters.base import CrmError, CrmReconnectNeeded

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- overdue follow-up --------------------------------------------------------------------------

def overdue_sweep() -> int:
    """Daily: flag overdue invoices on their deals and tell each owner - once per overdue
    episode (the episode ends when the invoice is paid, voided or its due date moves on)."""
    today = _now().date()
    links = db.session.scalars(select(InvoiceLink).join(Installation).where(
        Installation.status == InstallationStatus.ACTIVE,
        InvoiceLink.state == InvoiceLinkState.CREATED, InvoiceLink.status == "AUTHORISED",
        InvoiceLink.due_date < today, InvoiceLink.amount_due > 0,
        InvoiceLink.overdue_notified_at.is_(None))).all()
    told = 0
    for link in links:
        installation = db.session.get(Installation, link.installation_id)
        assert installation is not None
        if installation.status != InstallationStatus.ACTIVE:
            continue  # found gone earlier in this sweep
        link.deal_status = "overdue"
        try:
            adapter = adapter_for(installation.crm.value)
            adapter.notify_owner(installation, link.deal_id, link.owner_id,
                                 f"Invoice {link.invoice_number} is overdue",
                                 f"{link.amount_due} {link.currency} was due on {link.due_date}. "
                                 f"{link.online_url}")
            adapter.write_invoice_fields(installation, [link_fields(link)])
        except (CrmError, NoAdapter, TokenReconnectNeeded, TokenUnavailable) as exc:
            # Not sent now (overdue_notified_at stays empty): the next daily sweep tries again.
            log.warning("overdue notice for deal %s not sent: %s", link.deal_id, exc)
            db.session.rollback()
            if isinstance(exc, CrmReconnectNeeded):
                confirm_crm_grant(link.installation_id)  # gone? then it is not swept again
            continue
        link.overdue_notified_at = _now()
        db.session.add(AuditEvent(installation_id=link.installation_id, deal_id=link.deal_id,
                                  action="overdue_notice", outcome="ok",
                                  xero_ids={"invoice_id": link.xero_invoice_id}))
        db.session.commit()
        told += 1
    return told


# --- alerts to the installing admin ---------------------------------------------------------------

def alert_admins() -> int:
    """Cron: email each installation's admin the review items not yet reported (failed syncs,
    reconnect needed). Review items are the record either way; email needs SMTP_HOST."""
    settings = get_settings()
    if not settings.smtp_host:
        return 0
    pending = db.session.scalars(select(ReviewItem).where(
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.notified_at.is_(None))).all()
    by_installation: dict[int, list[ReviewItem]] = {}
    for item in pending:
        by_installation.setdefault(item.installation_id, []).append(item)
    sent = 0
    for installation_id, items in by_installation.items():
        installation = db.session.get(Installation, installation_id)
        # A customer who uninstalled hears nothing more (reconnect-needed ones do: that is
        # how the admin learns of it).
        if installation is None or installation.status == InstallationStatus.UNINSTALLED \
                or "@" not in (installation.installed_by or ""):
            continue
        _send_email(installation.installed_by, f"Paydeck: {len(items)} item(s) need attention",
                    "\n".join(f"- {i.reason.value}: deal {i.deal_id or '-'}: {i.detail}" for i in items))
        for item in items:
            item.notified_at = _now()
        db.session.commit()
        sent += 1
    return sent


def _send_email(to: str, subject: str, body: str) -> None:
    send_email(get_settings(), to, subject, body)
