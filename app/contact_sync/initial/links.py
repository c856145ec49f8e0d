"""What applying a row shares: the run's context, making a ContactLink (with its sync state
when the two records as read already agree) and the audit trail of links and creates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from app.contact_sync.mapping import FieldRule
from app.contact_sync.rules import Snapshot, decide, settle
from app.contact_sync.sides import crm_snapshot
from app.contact_sync.state import SyncState, store
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactMatchRecord,
    ContactMatchRow,
    ContactMatchRun,
    ContactSyncSettings,
    Installation,
    XeroConnection,
)
from domain.crm import CompanyRecord
from domain.dates import to_moment


@dataclass
class Context:
    run: ContactMatchRun
    installation: Installation
    connection: XeroConnection
    settings: ContactSyncSettings | None
    crm: str
    tax_property: str | None
    rules: Mapping[str, FieldRule]
    extra: Mapping[str, str]

    @property
    def trigger(self) -> str:
        return f"contact-match:{self.run.id}"

    def record(self, side: str, record_id: str | None) -> ContactMatchRecord | None:
        if not record_id:
            return None
        return db.session.scalars(select(ContactMatchRecord).where(
            ContactMatchRecord.run_id == self.run.id, ContactMatchRecord.side == side,
            ContactMatchRecord.record_id == record_id)).first()


def as_value(value: Any) -> Any:
    """A value back from JSON: lists were the rules' tuples."""
    if isinstance(value, list):
        return tuple(as_value(v) for v in value)
    return value


def xero_read(record: ContactMatchRecord) -> Snapshot:
    data = record.fields or {}
    return Snapshot({k: as_value(v) for k, v in (data.get("values") or {}).items()},
                    to_moment(data.get("version")))


def crm_read(ctx: Context, record: ContactMatchRecord) -> Snapshot:
    data = record.fields or {}
    company = CompanyRecord(record.record_id, dict(data.get("values") or {}),
                            to_moment(data.get("version")))
    return crm_snapshot(ctx.crm, company, ctx.rules, ctx.tax_property)


def fail(ctx: Context, row: ContactMatchRow, why: str, action: str = "contact_match_linked",
         ) -> None:
    row.state, row.error = "failed", why
    audit(ctx, row, action, "failed", before={}, after={}, error=why)


def make_link(ctx: Context, row: ContactMatchRow, company_id: str, contact_id: str,
              how: str, made: tuple[Snapshot, Snapshot, dict[str, Any]] | None = None,
              ) -> ContactLink | None:
    """The company linked to the contact (or the link already there, if it is this one);
    the row done. A company or contact linked elsewhere since the match read them fails the
    row with the reason. A matched pair whose mapped fields already agree gets its sync state
    now ("in sync", no call); any other link is synced once by the apply job."""
    existing = db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == ctx.installation.id,
        ContactLink.crm_object_type == "company",
        ContactLink.crm_object_id == company_id)).first()
    if existing is not None and existing.xero_contact_id != contact_id:
        fail(ctx, row, f"company {company_id} was linked to another Xero contact since the "
                       "match ran")
        return None
    other = db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == ctx.installation.id,
        ContactLink.xero_contact_id == contact_id,
        ContactLink.crm_object_id != company_id)).first()
    if other is not None:
        fail(ctx, row, f"the Xero contact was linked to company {other.crm_object_id} since "
                       "the match ran")
        return None
    link = existing or ContactLink(installation_id=ctx.installation.id,
                                   crm_object_type="company", crm_object_id=company_id,
                                   xero_contact_id=contact_id, linked_by=how)
    if existing is None:
        db.session.add(link)
        db.session.flush()
    if made is not None:  # created by this run: both sides as written
        in_sync = _settle(ctx.rules, link, *made)
    else:
        in_sync = how == "match" and _settle_from_read(ctx, link, company_id, contact_id)
    row.state, row.error = "done", None
    row.crm_id, row.xero_id = company_id, contact_id
    row.result = {**(row.result or {}), "link_id": link.id, "synced": in_sync}
    if how == "match":
        audit(ctx, row, "contact_match_linked", "ok", before={"contact_id": None},
              after={"contact_id": contact_id, "name": row.xero_name})
    return link


def _settle_from_read(ctx: Context, link: ContactLink, company_id: str,
                      contact_id: str) -> bool:
    """Store the link's sync state from the records as the run read them, if the mapping
    would write nothing (every synced field agrees, or only one side holds it and the
    mapping does not copy it): versions and hashes as read, so any change made since shows
    as a change. False: the first sync pass has work to do."""
    crm_record, xero_record = ctx.record("crm", company_id), ctx.record("xero", contact_id)
    if crm_record is None or xero_record is None or ctx.settings is None:
        return False
    return _settle(ctx.rules, link, xero_read(xero_record), crm_read(ctx, crm_record), {})


def _settle(rules: Mapping[str, FieldRule], link: ContactLink, xero: Snapshot, crm: Snapshot,
            written: dict[str, Any]) -> bool:
    """The link's state from the two snapshots if the rules would write nothing; `written`:
    the side Paydeck just created, with the version the create produced (so the record at
    that version is Paydeck's own, whatever the vendor reformatted)."""
    plan = decide(rules, SyncState(), xero, crm)
    if plan.to_crm or plan.to_xero or plan.conflicts:
        return False
    store(link, settle(SyncState(), plan, xero, crm, written=written),
          datetime.now(timezone.utc))
    return True


def audit(ctx: Context, row: ContactMatchRow, action: str, outcome: str, *,
          before: Mapping[str, Any], after: Mapping[str, Any], error: str | None = None,
          side: str | None = None) -> None:
    detail: dict[str, Any] = {"company": row.crm_id, "row": row.id, "kind": row.kind,
                              "choice": row.choice, "by": (row.result or {}).get("by", ""),
                              "before": dict(before), "after": dict(after)}
    if side:
        detail["created_in"] = side
    if error is not None:
        detail["error"] = error
    db.session.add(AuditEvent(installation_id=ctx.installation.id, action=action,
                              trigger=ctx.trigger, outcome=outcome, detail=detail,
                              xero_ids={"contact_id": row.xero_id} if row.xero_id else {}))
