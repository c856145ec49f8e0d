"""What a person decides about a review item: dismiss it, retry the deal, re-send the deal
over Xero's edits, keep Xero's version, or (a contact conflict) keep Xero's or the CRM's
value of the field."""

from __future__ import annotations

from app.engine import clock
from app.engine.intake import request_invoice
from app.engine.keys import RESEND
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
    StageAction,
)


def dismiss_review_item(item_id: int) -> bool:
    """A person decided nothing should be done."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.status != ReviewStatus.OPEN:
        return False
    _close(item, ReviewStatus.DISMISSED, "review_dismissed")
    return True


def retry_review_item(item_id: int, source_kind: str = "retry") -> bool:
    """The one-click retry: resolve the item and ask for the deal's invoice again."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.status != ReviewStatus.OPEN or not item.deal_id:
        return False
    if item.reason == ReviewReason.XERO_EDITED and source_kind != RESEND:
        return False  # keep Xero's or re-send the deal: a plain retry would decide neither
    item.status, item.resolved_at = ReviewStatus.RESOLVED, clock.now()
    item.attempts += 1
    action = StageAction(item.action) if item.action else StageAction.DRAFT
    db.session.commit()
    request_invoice(item.installation_id, item.deal_id, action, f"{source_kind}:review:{item.id}")
    return True


def resend_deal(item_id: int) -> bool:
    """Finance's edit loses: overwrite Xero's version with the deal (the "re-send the deal"
    choice of a XERO_EDITED item). Only the version shown on the item is overwritten; if
    Xero changed again since, the run opens a new item instead."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.reason != ReviewReason.XERO_EDITED:
        return False
    return retry_review_item(item_id, RESEND)


def keep_xero_version(item_id: int) -> bool:
    """Finance's edit stays (the "keep Xero's" choice): close the item, send nothing."""
    item = db.session.get(ReviewItem, item_id)
    if item is None or item.reason != ReviewReason.XERO_EDITED or item.status != ReviewStatus.OPEN:
        return False
    _close(item, ReviewStatus.RESOLVED, "review_kept_xero")
    return True


def choose_contact_value(item_id: int, side: str) -> bool:
    """The one-click answer to a contact conflict: keep Xero's value ("xero": written to the
    CRM company) or the CRM's ("crm": written to the Xero contact). The choice is kept on the
    link and the installation's contact sync job carries it out (app.contact_sync.reconcile,
    through rules.resolve), so no CRM or Xero call happens in the request; the item is
    resolved once the value is written."""
    from app.contact_sync.crm_to_xero import note_changed_companies

    if side not in ("xero", "crm"):
        return False
    item = db.session.get(ReviewItem, item_id)
    if (item is None or item.reason != ReviewReason.CONTACT_CONFLICT
            or item.status != ReviewStatus.OPEN or item.contact_link_id is None):
        return False
    link = db.session.get(ContactLink, item.contact_link_id)
    fields = {c.get("field") for c in item.candidates or []}
    if link is None or len(fields) != 1:
        return False
    (name,) = fields
    waiting = dict(link.open_conflicts or {})
    if name not in waiting:
        return False  # settled meanwhile (the two sides agree by now)
    waiting[name] = {"item": item.id, "choice": side}
    link.open_conflicts = waiting
    chosen = next((c.get("value") for c in item.candidates if c.get("side") == side), "")
    db.session.add(AuditEvent(installation_id=item.installation_id, action="contact_conflict_chosen",
                              outcome="ok", detail={"review_item": item.id, "field": name,
                                                    link.crm_object_type: link.crm_object_id,
                                                    "side": side, "value": chosen},
                              xero_ids={"contact_id": link.xero_contact_id}))
    db.session.commit()
    note_changed_companies(item.installation_id, [link.crm_object_id], link.crm_object_type)
    return True


def keep_xero_value(item_id: int) -> bool:
    return choose_contact_value(item_id, "xero")


def keep_crm_value(item_id: int) -> bool:
    return choose_contact_value(item_id, "crm")


def _close(item: ReviewItem, status: ReviewStatus, action: str) -> None:
    """Close a review item as a person decided, with its audit event."""
    item.status, item.resolved_at = status, clock.now()
    db.session.add(AuditEvent(installation_id=item.installation_id, deal_id=item.deal_id,
                              action=action, outcome="ok",
                              detail={"review_item": item.id, "reason": item.reason.value}))
    db.session.commit()
