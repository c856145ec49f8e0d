"""A CRM merge conflict in the review queue (app.contact_sync.crm_merges opens it): the
names of the Xero contacts it offers, read once in a job, and a person's one-click choice of
the contact the surviving company keeps. Nothing here writes to Xero."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from app.connections import xero_client
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    ContactLink,
    Installation,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
)
from app.queueing import enqueue_once
from app.tokens import TokenUnavailable
from xero.errors import RetryLater

CRM_NAMES = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}


def conflict_detail(installation: Installation, company_id: str,
                     candidates: Sequence[dict[str, str]]) -> str:
    crm = CRM_NAMES.get(installation.crm.value, "the CRM")
    names = ", ".join(c["name"] or c["contact_id"] for c in candidates)
    return (f"Companies merged in {crm} into company {company_id} were linked to different "
            f"Xero contacts ({names}). Keep one for the company: nothing syncs or is invoiced "
            "for it until then, and nothing is changed in Xero.")


def name_merge_candidates(item_id: int) -> int:
    """Job: the names of a merge conflict's Xero contacts that Paydeck's mirror did not know
    (one GET /Contacts?IDs= for up to 50), so the queue's buttons say whom they keep. Reads
    only. Returns how many it named."""
    item = db.session.get(ReviewItem, item_id)
    installation = db.session.get(Installation, item.installation_id) if item else None
    connection = installation.xero_connection if installation is not None else None
    if (item is None or installation is None or item.status != ReviewStatus.OPEN
            or connection is None or connection.status != ConnectionStatus.CONNECTED):
        return 0
    missing = [c["contact_id"] for c in item.candidates or [] if not c.get("name")]
    if not missing:
        return 0
    try:
        found = xero_client(connection).contact_records(missing)
    except (RetryLater, TokenUnavailable) as exc:
        enqueue_once(name_merge_candidates, item_id, job_id=f"contact-merge-names-{item_id}",
                     delay=max(getattr(exc, "seconds", 60.0), 1.0), job_timeout=60)
        return 0
    named = [{**c, "name": c.get("name") or (found[c["contact_id"]].name
                                            if c["contact_id"] in found else "")}
             for c in item.candidates]
    link = db.session.get(ContactLink, item.contact_link_id) if item.contact_link_id else None
    item.candidates = named
    if link is not None:
        item.detail = conflict_detail(installation, link.crm_object_id, named)
    db.session.commit()
    return sum(1 for c in named if c["name"] and c["contact_id"] in missing)


def choose_merged_contact(item_id: int, index: int) -> bool:
    """The one-click answer to a merge conflict: the surviving company's link keeps the
    item's `index`-th Xero contact and syncs again. Nothing is written to Xero here; the
    other contacts stay in Xero as they are, their old links kept as history."""
    from app.contact_sync.crm_to_xero import note_changed_companies

    item = db.session.get(ReviewItem, item_id)
    if (item is None or item.reason != ReviewReason.CONTACT_MERGE_CONFLICT
            or item.status != ReviewStatus.OPEN or item.contact_link_id is None
            or not 0 <= index < len(item.candidates or [])):
        return False
    link = db.session.get(ContactLink, item.contact_link_id)
    if link is None:
        return False
    chosen, before = item.candidates[index]["contact_id"], link.xero_contact_id
    if chosen != before:
        link.xero_contact_id = chosen
        # Another contact, another version history (as a Xero-side merge does).
        link.xero_version = link.xero_written_version = None
        link.xero_status = None
    if link.crm_status == "merge_conflict":
        link.crm_status = None
    item.status, item.resolved_at = ReviewStatus.RESOLVED, datetime.now(timezone.utc)
    db.session.add(AuditEvent(installation_id=item.installation_id, action="contact_merge_chosen",
                              outcome="ok", detail={"review_item": item.id,
                                                    "company": link.crm_object_id,
                                                    "before": {"contact_id": before},
                                                    "after": {"contact_id": chosen}},
                              xero_ids={"contact_id": chosen}))
    db.session.commit()
    note_changed_companies(item.installation_id, [link.crm_object_id])
    return True
