"""Invoice fields onto the CRM's deals: what a deal shows of its invoice (`link_fields`), the
write itself, and the job that retries it when the CRM is busy. Used by the engine and by
payments; it knows neither."""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal

from rq import Retry
from sqlalchemy import select

from app.extensions import db
from app.lifecycle import confirm_crm_grant
from app.models import AuditEvent, Installation, InstallationStatus, InvoiceLink, InvoiceLinkState
from app.queueing import enqueue_once
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.wiring import NoAdapter, adapter_for
from crm_adapters.base import CrmError, CrmReconnectNeeded, CrmRetryLater
from domain.crm import InvoiceFields
from xero.status import LABELS

log = logging.getLogger(__name__)

TRIGGER = "deal"  # one invoice per deal; later rules update it


def write_back(installation: Installation, updates: list[InvoiceFields]) -> None:
    """Write invoice fields onto deals; if the CRM is busy or down, a job retries later (the
    fields are derived from our links, so nothing is lost meanwhile). Nothing is written for
    an installation that is not active: no CRM call for a customer who left."""
    if installation.status != InstallationStatus.ACTIVE:
        return
    try:
        adapter_for(installation.crm.value).write_invoice_fields(installation, updates)
    except NoAdapter:
        log.info("no writeback for %s yet", installation.crm.value)
    except (CrmReconnectNeeded, TokenReconnectNeeded) as exc:
        # Nothing is lost (the fields derive from our links); if the grant is gone the
        # installation stops being served, if not the next change writes them.
        log.warning("writeback for installation %s refused: %s", installation.id, exc)
        if isinstance(exc, CrmReconnectNeeded):
            confirm_crm_grant(installation.id)
    except (CrmRetryLater, TokenUnavailable) as exc:
        # Busy or down, or its token refresh failing (the grant shows "failing" meanwhile):
        # a job writes the fields later. Never raised: the caller has committed its work.
        _defer(installation, updates, exc)
    except CrmError as exc:  # the CRM refused the write itself (a 4xx): a person must look
        deal_ids = sorted({u.deal_id for u in updates})
        log.warning("writeback for installation %s refused: %s", installation.id, exc)
        db.session.add(AuditEvent(installation_id=installation.id, action="writeback",
                                  outcome="failed", detail={"deals": deal_ids[:200],
                                                            "error": str(exc)[:500]}))
        db.session.commit()


def _defer(installation: Installation, updates: list[InvoiceFields],
           exc: CrmRetryLater | TokenUnavailable) -> None:
    """One retried job per set of deals (its id is a digest of their ids)."""
    deal_ids = sorted({u.deal_id for u in updates})
    log.warning("writeback for installation %s deferred: %s", installation.id, exc)
    digest = hashlib.sha256("\x1f".join(deal_ids).encode()).hexdigest()[:48]
    enqueue_once(write_back_deals, installation.id, deal_ids, delay=max(exc.seconds, 5.0),
                 job_id=f"writeback-{installation.id}-{digest[-16:]}",
                 job_timeout=300, retry=Retry(max=5, interval=[30, 120, 600, 1800, 3600]))


def write_back_deals(installation_id: int, deal_ids: list[str]) -> int:
    """Job: write the current invoice fields of these deals onto the CRM."""
    installation = db.session.get(Installation, installation_id)
    if installation is None or installation.status != InstallationStatus.ACTIVE:
        return 0
    links = db.session.scalars(select(InvoiceLink).where(
        InvoiceLink.installation_id == installation_id, InvoiceLink.trigger == TRIGGER,
        InvoiceLink.deal_id.in_(deal_ids), InvoiceLink.state == InvoiceLinkState.CREATED)).all()
    updates = [link_fields(link) for link in links]
    if updates:
        adapter_for(installation.crm.value).write_invoice_fields(installation, updates)
    return len(updates)


def link_fields(link: InvoiceLink, error: str = "") -> InvoiceFields:
    """What the deal shows of its invoice."""
    status = LABELS.get(link.deal_status or "", link.status)
    return InvoiceFields(
        deal_id=link.deal_id, invoice_number=link.invoice_number, invoice_status=status,
        amount_due=_money(link.amount_due), amount_paid=_money(link.amount_paid),
        due_date=link.due_date.isoformat() if link.due_date else None,
        paid_date=link.paid_on.isoformat() if link.paid_on else None,
        invoice_url=link.customer_url or link.online_url, last_sync_error=error)


def _money(value: Decimal | None) -> str | None:
    """Money as CRM number text with Xero's two decimals (the column keeps four)."""
    return None if value is None else str(value.quantize(Decimal("0.01")))
