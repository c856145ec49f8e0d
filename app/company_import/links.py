"""The company page's link from a CRM company to a Xero contact: which contact it is (with
its name from the local mirror), other companies linked to the same contact, linking and
unlinking (audited). Database only: no vendor call."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, select

from app.engine.steps.mirror import mirror_row
from app.extensions import db
from app.models import AuditEvent, ContactLink, Installation, XeroConnection, XeroContact
from xero.client import ContactDetails


def linked_contact(installation_id: int, company_id: str) -> tuple[str, str] | None:
    """(Xero contact id, its name from the local mirror or "") of the company's link: one
    query, no Xero call."""
    row = db.session.execute(
        select(ContactLink.xero_contact_id, XeroContact.name)
        .outerjoin(XeroConnection, XeroConnection.installation_id == ContactLink.installation_id)
        .outerjoin(XeroContact, and_(XeroContact.xero_connection_id == XeroConnection.id,
                                     XeroContact.contact_id == ContactLink.xero_contact_id))
        .where(ContactLink.installation_id == installation_id,
               ContactLink.crm_object_type == "company", ContactLink.crm_object_id == company_id)
    ).first()
    return None if row is None else (row[0], row[1] or "")


def links_elsewhere(installation_id: int, company_id: str,
                    contact_ids: Sequence[str | None]) -> dict[str, list[str]]:
    """Xero contact id -> the other CRM companies already linked to it (one query)."""
    ids = sorted({c for c in contact_ids if c})
    if not ids:
        return {}
    found: dict[str, list[str]] = {}
    for contact_id, other in db.session.execute(
            select(ContactLink.xero_contact_id, ContactLink.crm_object_id).where(
                ContactLink.installation_id == installation_id,
                ContactLink.crm_object_type == "company", ContactLink.xero_contact_id.in_(ids),
                ContactLink.crm_object_id != company_id).order_by(ContactLink.crm_object_id)):
        found.setdefault(contact_id, []).append(other)
    return found


def unlink_company(installation: Installation, company_id: str, user: str) -> str | None:
    """Remove the company's link (new invoices match or create a contact again); audited. The
    Xero contact id it was linked to, None if it had no link. Committed."""
    existing = db.session.scalar(select(ContactLink).where(
        ContactLink.installation_id == installation.id, ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id))
    if existing is None:
        return None
    contact_id = existing.xero_contact_id
    db.session.delete(existing)
    db.session.add(AuditEvent(installation_id=installation.id, action="contact_unlinked",
                              outcome="ok", detail={"company": company_id, "by": user},
                              xero_ids={"contact_id": contact_id}))
    db.session.commit()
    return contact_id


def link_company(installation: Installation, company_id: str, contact: ContactDetails,
                 user: str, action: str = "contact_linked") -> None:
    """Link the company to the contact a person chose (replacing any earlier link), remember
    the contact in the mirror (so the page shows its name), and audit it; committed."""
    existing = db.session.scalar(select(ContactLink).where(
        ContactLink.installation_id == installation.id, ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id))
    if existing is None:
        db.session.add(ContactLink(installation_id=installation.id, crm_object_type="company",
                                   crm_object_id=company_id, xero_contact_id=contact.contact_id,
                                   linked_by="user"))
    else:
        existing.xero_contact_id, existing.linked_by = contact.contact_id, "user"
    if installation.xero_connection is not None:
        # The engine's matching reads the same mirror row; its If-Modified-Since sync
        # overwrites it with the same values.
        mirror_row(installation.xero_connection.id, contact)
    if action:
        db.session.add(AuditEvent(installation_id=installation.id, action=action, outcome="ok",
                                  detail={"company": company_id, "by": user},
                                  xero_ids={"contact_id": contact.contact_id}))
    db.session.commit()
