"""CRM-side merges and deletes (issue #15 section 3, "Merges"): a company merged or deleted in
the CRM updates its link and never creates a record, in Xero or in the CRM.

Database only (the webhook handler calls it: no vendor call happens here), idempotent (the
CRMs retry and repeat events) and order-safe (an event older than the link's last CRM status
change is ignored, so a late deletion cannot undo a later restore):

- deleted (HubSpot company.deletion, Pipedrive delete without merged_to_id): the link is
  marked `crm_status="deleted"`, contact sync leaves it alone, one COMPANY_DELETED review item
  says so. The Xero contact is never deleted or archived: Xero is the books.
- restored (HubSpot company.restore): the mark goes, the item is resolved, the link syncs again.
- merged (HubSpot company.merge, Pipedrive delete with merged_to_id): each merged company id
  is remembered (`CompanyMerge`: the card of an old id says where it went). If the surviving
  company has no link, the first merged company's link moves to it. Every other merged link is
  kept as history (`crm_status="merged"`). Merged links that name a Xero contact other than
  the survivor's make a CONTACT_MERGE_CONFLICT review item listing each contact, and the
  survivor's link waits (`merge_conflict`: no sync, no invoice to a guessed contact) until a
  person keeps one (app.contact_sync.merge_review). Nothing is written to Xero.

Where else company ids live: invoice links name the Xero contact and the deal, never the
company; review items name the link (its row moves with it); audit events are history and
keep the id as it was then. A deal read from the CRM after a merge names the survivor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from sqlalchemy import select

from app.extensions import db
from app.models import (
    AuditEvent,
    CompanyMerge,
    ContactLink,
    Installation,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
    XeroContact,
)
from app.contact_sync.merge_review import CRM_NAMES, conflict_detail, name_merge_candidates
from app.queueing import enqueue_once
from domain.crm import CompanyEvent
from domain.dates import as_utc, utc_now

LIFECYCLE = ("deleted", "restored", "merged")


def apply_company_events(installation: Installation, events: Sequence[CompanyEvent]) -> list[str]:
    """Carry out the deletions, restores and merges among `events` (others are left alone), in
    the order they happened; commits. The company ids whose links contact sync should read
    again (a survivor that received a link, a restored company)."""
    crm = installation.crm.value
    wake: list[str] = []
    to_name: list[int] = []
    ordered = sorted((e for e in events if e.kind in LIFECYCLE),
                     key=lambda e: as_utc(e.occurred_at) or datetime.min.replace(tzinfo=timezone.utc))
    for event in ordered:
        trigger = f"{crm}:company.{event.kind}"
        if event.kind == "deleted":
            _deleted(installation, event, trigger)
        elif event.kind == "restored":
            wake += _restored(installation, event, trigger)
        else:
            wake += _merged(installation, event, trigger, to_name)
        db.session.flush()
    db.session.commit()
    for item_id in dict.fromkeys(to_name):  # once committed: the job reads the item
        enqueue_once(name_merge_candidates, item_id, job_id=f"contact-merge-names-{item_id}",
                     job_timeout=60)
    return list(dict.fromkeys(wake))


def _link(installation_id: int, company_id: str) -> ContactLink | None:
    return db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation_id, ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id)).first()


def _older(link: ContactLink, event: CompanyEvent) -> bool:
    seen, at = as_utc(link.crm_status_at), as_utc(event.occurred_at)
    return seen is not None and at is not None and at < seen


def _audit(installation: Installation, action: str, trigger: str, link: ContactLink,
           outcome: str, **detail: object) -> None:
    db.session.add(AuditEvent(installation_id=installation.id, action=action, trigger=trigger,
                              outcome=outcome, detail=detail,
                              xero_ids={"contact_id": link.xero_contact_id}))


def _open_items(link: ContactLink, reason: ReviewReason) -> list[ReviewItem]:
    return list(db.session.scalars(select(ReviewItem).where(
        ReviewItem.contact_link_id == link.id, ReviewItem.reason == reason,
        ReviewItem.status == ReviewStatus.OPEN)))


def _resolve(link: ContactLink, reason: ReviewReason) -> None:
    for item in _open_items(link, reason):
        item.status, item.resolved_at = ReviewStatus.RESOLVED, utc_now()


def contact_name(installation: Installation, contact_id: str) -> str:
    """The Xero contact's name from Paydeck's mirror (no Xero call), or ""."""
    connection = installation.xero_connection
    if connection is None:
        return ""
    return db.session.scalar(select(XeroContact.name).where(
        XeroContact.xero_connection_id == connection.id,
        XeroContact.contact_id == contact_id)) or ""


def _deleted(installation: Installation, event: CompanyEvent, trigger: str) -> None:
    link = _link(installation.id, event.company_id)
    if link is None or link.crm_status in ("deleted", "merged") or _older(link, event):
        return  # not linked; a repeat; history; or older than what the link knows
    before = link.crm_status
    link.crm_status, link.crm_status_at = "deleted", event.occurred_at or utc_now()
    crm = CRM_NAMES.get(installation.crm.value, "the CRM")
    name = contact_name(installation, link.xero_contact_id) or link.xero_contact_id
    if not _open_items(link, ReviewReason.COMPANY_DELETED):
        db.session.add(ReviewItem(
            installation_id=installation.id, contact_link_id=link.id,
            reason=ReviewReason.COMPANY_DELETED,
            detail=(f"Company {link.crm_object_id} was deleted in {crm}. Its Xero contact "
                    f"{name} is kept as it is (Paydeck never deletes or archives a Xero "
                    f"contact) and the two no longer sync. Restore the company in {crm} to "
                    "sync again, or dismiss this.")))
    _audit(installation, "company_deleted", trigger, link, "review",
           company=link.crm_object_id, before={"crm_status": before},
           after={"crm_status": "deleted"})


def _restored(installation: Installation, event: CompanyEvent, trigger: str) -> list[str]:
    link = _link(installation.id, event.company_id)
    if link is None or link.crm_status != "deleted" or _older(link, event):
        return []
    _restore(installation, link, event, trigger)
    return [link.crm_object_id]


def revive_changed(installation: Installation, events: Sequence[CompanyEvent]) -> None:
    """A company marked deleted that the CRM announces as created or changed after its
    deletion exists again: its link is restored as by a restore event (commits if so).
    Pipedrive documents no restore webhook (list-of-webhooks-v2: create, change, delete);
    Unverified: that an organization restored in the web app announces itself with a change.
    An event without a time, or older than the deletion, revives nothing."""
    changes = {e.company_id: e for e in events if e.kind == "change" and e.occurred_at}
    if not changes:
        return
    deleted = list(db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == installation.id, ContactLink.crm_object_type == "company",
        ContactLink.crm_status == "deleted", ContactLink.crm_object_id.in_(changes))))
    revived = [link for link in deleted if not _older(link, changes[link.crm_object_id])
               and as_utc(changes[link.crm_object_id].occurred_at) != as_utc(link.crm_status_at)]
    for link in revived:
        _restore(installation, link, changes[link.crm_object_id],
                 f"{installation.crm.value}:company.change")
    if revived:
        db.session.commit()


def _restore(installation: Installation, link: ContactLink, event: CompanyEvent,
             trigger: str) -> None:
    link.crm_status, link.crm_status_at = None, event.occurred_at or utc_now()
    _resolve(link, ReviewReason.COMPANY_DELETED)
    _audit(installation, "company_restored", trigger, link, "ok", company=link.crm_object_id,
           before={"crm_status": "deleted"}, after={"crm_status": None})


def _remember(installation: Installation, old_ids: Iterable[str], survivor: str,
              at: datetime | None) -> None:
    for old in old_ids:
        row = db.session.scalars(select(CompanyMerge).where(
            CompanyMerge.installation_id == installation.id,
            CompanyMerge.company_id == old)).first()
        if row is None:
            db.session.add(CompanyMerge(installation_id=installation.id, company_id=old,
                                        merged_into=survivor, occurred_at=at))


def merged_into(installation_id: int, company_id: str) -> str | None:
    """The company a merged company lives on as (followed through later merges), or None."""
    seen = {company_id}
    current = company_id
    while True:
        target = db.session.scalar(select(CompanyMerge.merged_into).where(
            CompanyMerge.installation_id == installation_id,
            CompanyMerge.company_id == current))
        if target is None or target in seen:
            return None if current == company_id else current
        seen.add(target)
        current = target


def _merged(installation: Installation, event: CompanyEvent, trigger: str,
            to_name: list[int]) -> list[str]:
    survivor_id, at = event.company_id, event.occurred_at or utc_now()
    _remember(installation, event.merged_ids, survivor_id, event.occurred_at)
    olds = [link for company in event.merged_ids
            if (link := _link(installation.id, company)) is not None
            and link.crm_status != "merged"]
    if not olds:
        return []  # a repeat, or none of the merged companies was linked
    survivor = _link(installation.id, survivor_id)
    if survivor is None:
        survivor = olds.pop(0)
        before = survivor.crm_object_id
        survivor.crm_object_id = survivor_id
        # The survivor is another record with its own version history: nothing of it seen or
        # written yet. The hashes stay (what both sides last agreed on).
        survivor.crm_version = survivor.crm_written_version = None
        if survivor.crm_status == "deleted":  # its deletion was this merge
            survivor.crm_status = None
            _resolve(survivor, ReviewReason.COMPANY_DELETED)
        survivor.crm_status_at = at
        _audit(installation, "contact_link_moved", trigger, survivor, "ok",
               company=survivor_id, why="merged_in_crm",
               before={"company": before}, after={"company": survivor_id})
    conflicting = []
    for link in olds:
        _resolve(link, ReviewReason.COMPANY_DELETED)
        link.crm_status, link.crm_status_at = "merged", at
        _audit(installation, "contact_link_merged", trigger, link, "ok",
               company=link.crm_object_id, merged_into=survivor_id,
               same_contact=link.xero_contact_id == survivor.xero_contact_id)
        if link.xero_contact_id != survivor.xero_contact_id:
            conflicting.append(link)
    if conflicting:
        item_id = _conflict(installation, survivor, conflicting, trigger, at)
        if any(not c["name"] for c in db.session.get(ReviewItem, item_id).candidates):
            to_name.append(item_id)
        return []
    return [survivor_id] if survivor.crm_status is None else []


def _conflict(installation: Installation, survivor: ContactLink,
              conflicting: Sequence[ContactLink], trigger: str, at: datetime) -> int:
    """One open item per surviving link lists every Xero contact it could keep (a later merge
    adds to it); the link waits for a person. The item's id."""
    survivor.crm_status, survivor.crm_status_at = "merge_conflict", at
    (item, *_) = _open_items(survivor, ReviewReason.CONTACT_MERGE_CONFLICT) or [None]
    candidates = list(item.candidates) if item is not None else [
        {"contact_id": survivor.xero_contact_id,
         "name": contact_name(installation, survivor.xero_contact_id),
         "company": survivor.crm_object_id}]
    for link in conflicting:
        if all(c["contact_id"] != link.xero_contact_id for c in candidates):
            candidates.append({"contact_id": link.xero_contact_id,
                               "name": contact_name(installation, link.xero_contact_id),
                               "company": link.crm_object_id})
    detail = conflict_detail(installation, survivor.crm_object_id, candidates)
    if item is None:
        item = ReviewItem(installation_id=installation.id, contact_link_id=survivor.id,
                          reason=ReviewReason.CONTACT_MERGE_CONFLICT, detail=detail,
                          candidates=candidates)
        db.session.add(item)
    else:
        item.candidates, item.detail = candidates, detail
    _audit(installation, "contact_merge_conflict", trigger, survivor, "review",
           company=survivor.crm_object_id,
           contacts=[c["contact_id"] for c in candidates])
    db.session.flush()
    return item.id
