"""The review items the reconcile pass opens and closes: a field changed on both sides that
the mapping says to ask about, a CRM rename Xero refuses (contact names are unique), and a
person's choice carried out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.contact_sync import objects
from app.contact_sync.rules import Action, Decision, SyncPlan
from app.contact_sync.sides import shown
from app.extensions import db
from app.models import AuditEvent, ContactLink, Installation, ReviewItem, ReviewReason
from xero.client import ContactSaved

LABELS = {"name": "name", "email": "email", "phone": "phone", "mobile": "mobile",
          "street_address": "street address", "billing_address": "billing address",
          "website": "website", "tax_number": "tax number", "contact_persons": "contact persons",
          "payment_terms": "payment terms", "currency": "currency",
          "account_number": "account number"}

# Xero's answer to a save whose Name another active contact has (platform-facts: Name unique
# among active contacts): "The contact name X is already assigned to another contact. The
# contact name must be unique across all active contacts."
NAME_TAKEN = "already assigned to another contact"


def name_taken(saved: Any) -> bool:
    return isinstance(saved, ContactSaved) and any(NAME_TAKEN in e for e in saved.errors)


def name_collision(installation: Installation, link: ContactLink, d: Decision, saved: Any,
                   trigger: str) -> int:
    """A review item for a CRM rename Xero refused because another active contact has that
    name; its id (kept on the link, so the name waits for a person)."""
    item = ReviewItem(
        installation_id=installation.id, contact_link_id=link.id,
        reason=ReviewReason.CONTACT_CONFLICT,
        detail=(f"The {objects.NOUN[link.crm_object_type]} was renamed to {shown(d.crm_value)} "
                "in the CRM, but another Xero contact already has that name (Xero's contact "
                "names are unique): keep Xero's name, or rename the other contact in Xero and keep the CRM's."),
        candidates=[{"field": "name", "side": "xero", "value": shown(d.xero_value)},
                    {"field": "name", "side": "crm", "value": shown(d.crm_value)}])
    db.session.add(item)
    db.session.flush()
    db.session.add(AuditEvent(installation_id=installation.id, action="contact_conflict",
                              trigger=trigger, outcome="review",
                              detail={link.crm_object_type: link.crm_object_id, "field": "name",
                                      "xero": shown(d.xero_value), "crm": shown(d.crm_value),
                                      "why": "name_taken_in_xero",
                                      "error": "; ".join(saved.errors)},
                              xero_ids={"contact_id": link.xero_contact_id}))
    return item.id


def close_resolved(link: ContactLink, plan: SyncPlan, written: Mapping[str, Any]) -> None:
    """A chosen conflict carried out: its review item is resolved."""
    from app.engine import clock
    from app.models import ReviewStatus

    for d in plan.decisions:
        target = "crm" if d.action == Action.WRITE_CRM else "xero"
        if d.reason != "resolved_by_person" or target not in written:
            continue
        for item in db.session.query(ReviewItem).filter_by(
                contact_link_id=link.id, reason=ReviewReason.CONTACT_CONFLICT,
                status=ReviewStatus.OPEN):
            if any(c.get("field") == d.field for c in item.candidates or []):
                item.status, item.resolved_at = ReviewStatus.RESOLVED, clock.now()


def open_conflict(installation: Installation, link: ContactLink, d: Decision,
                  trigger: str) -> int:
    """A review item with both values (a person picks one); its id."""
    label = LABELS.get(d.field, d.field)
    item = ReviewItem(
        installation_id=installation.id, contact_link_id=link.id,
        reason=ReviewReason.CONTACT_CONFLICT,
        detail=(f"The {label} changed in both Xero and the CRM since they were last in sync, "
                "and the mapping says to ask: choose which value to keep."),
        candidates=[{"field": d.field, "side": "xero", "value": shown(d.xero_value)},
                    {"field": d.field, "side": "crm", "value": shown(d.crm_value)}])
    db.session.add(item)
    db.session.flush()
    db.session.add(AuditEvent(installation_id=installation.id, action="contact_conflict",
                              trigger=trigger, outcome="review",
                              detail={link.crm_object_type: link.crm_object_id, "field": d.field,
                                      "xero": shown(d.xero_value), "crm": shown(d.crm_value),
                                      "why": d.reason},
                              xero_ids={"contact_id": link.xero_contact_id}))
    return item.id
