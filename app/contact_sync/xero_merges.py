"""A linked Xero contact merged into another or archived in Xero (the Xero side's
counterpart of app.contact_sync.crm_merges): the reconcile pass follows a merge to the
contact Xero kept, and flags an archived contact instead of syncing it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.contact_sync import objects
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    Installation,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
)

MERGE_HOPS = 5  # a contact merged into one merged since: followed this many times at most


def follow_merges(installation: Installation, client: Any, links: Sequence[ContactLink],
                  records: dict[str, Any], trigger: str) -> dict[str, Any]:
    """A Xero contact merged into another (MergedToContactID on the merged one, which Xero
    keeps archived): its links move to the surviving contact (audited), whose record is read
    too, so the pass compares the company with the contact Xero kept. Nothing is created."""
    for _ in range(MERGE_HOPS):
        moved = [link for link in links
                 if (r := records.get(link.xero_contact_id)) is not None and r.merged_to]
        if not moved:
            break
        for link in moved:
            _move_link(installation, link, records[link.xero_contact_id], trigger)
        wanted = sorted({link.xero_contact_id for link in moved} - set(records))
        if wanted:
            records = {**records, **client.contact_records(wanted)}
    return records


def _move_link(installation: Installation, link: ContactLink, merged: Any,
               trigger: str) -> None:
    before = link.xero_contact_id
    link.xero_contact_id = merged.merged_to
    # The survivor's record is another version history: no version of it was seen or written
    # yet. The hashes stay (what both sides last agreed on), so what the survivor holds
    # differently counts as a change in Xero, carried out by the mapping's rules.
    link.xero_version = link.xero_written_version = None
    link.xero_status = None
    db.session.add(AuditEvent(
        installation_id=installation.id, action="contact_link_moved", trigger=trigger,
        outcome="ok",
        detail={link.crm_object_type: link.crm_object_id, "why": "merged_in_xero",
                "before": {"contact_id": before, "name": merged.name},
                "after": {"contact_id": merged.merged_to}},
        xero_ids={"contact_id": merged.merged_to}))


def flag_archived(installation: Installation, link: ContactLink, name: str,
                  trigger: str) -> None:
    """The linked contact is archived in Xero: the link is flagged and one open review item
    says so (not one per pass); nothing is written to either side, nothing created."""
    if link.xero_status == "archived":
        return
    link.xero_status = "archived"
    open_item = db.session.query(ReviewItem).filter_by(
        contact_link_id=link.id, reason=ReviewReason.CONTACT_ARCHIVED,
        status=ReviewStatus.OPEN).first()
    if open_item is None:
        noun = objects.NOUN[link.crm_object_type]
        db.session.add(ReviewItem(
            installation_id=installation.id, contact_link_id=link.id,
            reason=ReviewReason.CONTACT_ARCHIVED,
            detail=(f"The Xero contact {name or link.xero_contact_id} linked to {noun} "
                    f"{link.crm_object_id} is archived in Xero, so the two no longer sync. "
                    f"Restore it in Xero, or link the {noun} to another contact.")))
    db.session.add(AuditEvent(
        installation_id=installation.id, action="contact_archived", trigger=trigger,
        outcome="review",
        detail={link.crm_object_type: link.crm_object_id, "before": {"xero_status": None},
                "after": {"xero_status": "archived"}},
        xero_ids={"contact_id": link.xero_contact_id}))
