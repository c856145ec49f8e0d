"""The activity log's reads: the installation's audit events filtered, paged by key (newest
first) and exported. Database reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select

from app.extensions import db
from app.models import AuditEvent

ACTIVITY_PAGE = 50  # events per page of the log


@dataclass(frozen=True)
class ActivityFilter:
    """Which audit events the log shows: "" = any."""

    deal: str = ""
    action: str = ""
    outcome: str = ""
    since: datetime | None = None  # from this moment on
    until: datetime | None = None  # before this moment


def activity_query(installation_id: int, f: ActivityFilter) -> Select[tuple[AuditEvent]]:
    """The installation's events matching `f`, newest first (by id: events are inserted in
    time order, and the id is a unique, indexed key to page by)."""
    q = select(AuditEvent).where(AuditEvent.installation_id == installation_id)
    if f.deal:
        q = q.where(AuditEvent.deal_id == f.deal)
    if f.action:
        q = q.where(AuditEvent.action == f.action)
    if f.outcome:
        q = q.where(AuditEvent.outcome == f.outcome)
    if f.since is not None:
        q = q.where(AuditEvent.created_at >= f.since)
    if f.until is not None:
        q = q.where(AuditEvent.created_at < f.until)
    return q.order_by(AuditEvent.id.desc())


@dataclass(frozen=True)
class ActivityPage:
    events: list[AuditEvent]
    older: int | None  # `before` for the next (older) page; None on the last page
    total: int  # events matching the filter


def activity_page(installation_id: int, f: ActivityFilter, before: int | None,
                  size: int = ACTIVITY_PAGE) -> ActivityPage:
    """One page of the log: the `size` newest events older than event `before` (keyset
    paging: each page costs one indexed range read, however deep)."""
    q = activity_query(installation_id, f)
    total = db.session.scalar(select(db.func.count()).select_from(
        q.order_by(None).subquery())) or 0
    if before is not None:
        q = q.where(AuditEvent.id < before)
    rows = list(db.session.scalars(q.limit(size + 1)).all())
    older = rows[size - 1].id if len(rows) > size else None
    return ActivityPage(rows[:size], older, total)


def activity_actions(installation_id: int) -> list[str]:
    """The actions the installation's log holds (the filter's choices)."""
    return sorted(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.installation_id == installation_id).distinct()).all())
