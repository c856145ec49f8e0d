"""The review's rows as the database holds them, and the admin's answers to them.

Choices per kind: proposed -> link | skip; ambiguous -> pick:<candidate> | create_xero |
skip; crm_only -> create_xero | skip; xero_only -> create_crm | skip; linked -> nothing.
Approving queues rows for the apply job; a test batch queues only N of them (the rows the
admin chose first, then proposed links), so the rest stay untouched until approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select

from app.contact_sync.initial.match import KINDS
from app.extensions import db
from app.models import ContactMatchRow, ContactMatchRun

PAGE_SIZE = 50
MAX_TEST_BATCH = 200
CHOICES = {"proposed": ("link", "skip"), "ambiguous": ("pick", "create_xero", "skip"),
           "crm_only": ("create_xero", "skip"), "xero_only": ("create_crm", "skip"),
           "linked": ()}
STATES = ("open", "queued", "sending", "done", "failed", "skipped")


class ChoiceError(ValueError):
    """A choice the row cannot take (the page answers 400 and names the row)."""


@dataclass(frozen=True)
class Progress:
    queued: int
    sending: int
    done: int
    failed: int

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.done + self.failed

    @property
    def finished(self) -> int:
        return self.done + self.failed


def latest_run(installation_id: int) -> ContactMatchRun | None:
    return db.session.scalars(select(ContactMatchRun).where(
        ContactMatchRun.installation_id == installation_id)
        .order_by(ContactMatchRun.id.desc()).limit(1)).first()


def ever_approved(installation_id: int) -> bool:
    return db.session.scalar(select(ContactMatchRun.id).where(
        ContactMatchRun.installation_id == installation_id,
        ContactMatchRun.approved_at.is_not(None)).limit(1)) is not None


def progress(run: ContactMatchRun) -> Progress:
    """The rows approved so far (every batch), by state."""
    counts = dict(db.session.execute(
        select(ContactMatchRow.state, func.count()).where(
            ContactMatchRow.run_id == run.id, ContactMatchRow.batch.is_not(None),
            ContactMatchRow.state.in_(("queued", "sending", "done", "failed")))
        .group_by(ContactMatchRow.state)).all())
    return Progress(*(int(counts.get(s, 0)) for s in ("queued", "sending", "done", "failed")))


def page_of(run: ContactMatchRun, kind: str | None, page: int) -> tuple[list[ContactMatchRow], bool]:
    """One page of rows (of one kind, or all), by id; and whether another page follows."""
    query = select(ContactMatchRow).where(ContactMatchRow.run_id == run.id)
    if kind:
        query = query.where(ContactMatchRow.kind == kind)
    rows = list(db.session.scalars(query.order_by(ContactMatchRow.id)
                                   .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def batch_rows(run: ContactMatchRun, batch: int) -> list[ContactMatchRow]:
    return list(db.session.scalars(select(ContactMatchRow).where(
        ContactMatchRow.run_id == run.id, ContactMatchRow.batch == batch)
        .order_by(ContactMatchRow.id)))


def save_choices(run: ContactMatchRun, choices: Mapping[int, str]) -> list[ContactMatchRow]:
    """Record the admin's choices (row id -> choice, "" for none) on open rows; a skip is
    final at once (nothing to write). ChoiceError names the first bad one; nothing is saved
    then. Returns the rows given a choice other than skip, in row order."""
    if not choices:
        return []
    rows = {r.id: r for r in db.session.scalars(select(ContactMatchRow).where(
        ContactMatchRow.run_id == run.id, ContactMatchRow.id.in_(list(choices))))}
    chosen: list[ContactMatchRow] = []
    picks: dict[str, int] = {}
    for row_id in sorted(choices):
        choice = choices[row_id]
        row = rows.get(row_id)
        if row is None:
            raise ChoiceError(f"row {row_id} is not in this match")
        if not choice:
            continue
        if row.state != "open":
            raise ChoiceError(f"row {row_id} ({row.crm_name or row.xero_name}) is {row.state} "
                              "already")
        verb, _, contact_id = choice.partition(":")
        if verb not in CHOICES.get(row.kind, ()):
            raise ChoiceError(f"row {row_id}: {choice!r} is not a choice for a {row.kind} row")
        if verb == "pick":
            if contact_id not in {c["contact_id"] for c in row.candidates or []}:
                raise ChoiceError(f"row {row_id}: pick one of the listed Xero contacts")
            if contact_id in picks or _contact_taken(run, contact_id, row.id):
                raise ChoiceError(f"row {row_id}: that Xero contact is chosen for another "
                                  "company already (a contact links to one company)")
            picks[contact_id] = row.id
        elif verb != "skip" and contact_id:
            raise ChoiceError(f"row {row_id}: {verb} takes no contact")
    for row_id in sorted(choices):
        choice, row = choices[row_id], rows[row_id]
        if not choice:
            continue
        verb, _, contact_id = choice.partition(":")
        if verb == "pick":
            row.choice, row.xero_id = "link", contact_id
            row.xero_name = next(c["name"] for c in row.candidates if c["contact_id"] == contact_id)
        else:
            row.choice = verb
        if verb == "skip":
            row.state = "skipped"
        else:
            chosen.append(row)
    return chosen


def _contact_taken(run: ContactMatchRun, contact_id: str, row_id: int) -> bool:
    return db.session.scalar(select(ContactMatchRow.id).where(
        ContactMatchRow.run_id == run.id, ContactMatchRow.id != row_id,
        ContactMatchRow.xero_id == contact_id, ContactMatchRow.choice == "link",
        ContactMatchRow.state.in_(("open", "queued", "sending", "done")))) is not None


def approve(run: ContactMatchRun, user: str, chosen: list[ContactMatchRow], *,
            proposed: bool, limit: int | None = None) -> int:
    """Queue the chosen rows (and, with `proposed`, every open proposed link without another
    choice), at most `limit` of them: one batch, its number returned (0: nothing to queue).
    The caller commits and wakes the apply job."""
    wanted = [r for r in chosen if r.state == "open"]
    if proposed or limit:
        taken = {r.id for r in wanted}
        query = select(ContactMatchRow).where(
            ContactMatchRow.run_id == run.id, ContactMatchRow.kind == "proposed",
            ContactMatchRow.state == "open", ContactMatchRow.choice.is_(None))
        if limit:
            query = query.limit(limit)
        wanted += [r for r in db.session.scalars(query.order_by(ContactMatchRow.id))
                   if r.id not in taken]
    if limit:
        wanted = wanted[:limit]
    if not wanted:
        return 0
    run.batches += 1
    for row in wanted:
        row.choice = row.choice or "link"
        row.state, row.batch, row.result = "queued", run.batches, {"by": user}
    run.status = "applying"
    if run.approved_at is None:
        run.approved_at = datetime.now(timezone.utc)
    return run.batches


def kind_counts(run: ContactMatchRun) -> dict[str, int]:
    counts = dict(db.session.execute(select(ContactMatchRow.kind, func.count()).where(
        ContactMatchRow.run_id == run.id).group_by(ContactMatchRow.kind)).all())
    return {kind: int(counts.get(kind, 0)) for kind in KINDS}
