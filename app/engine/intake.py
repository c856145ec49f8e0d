"""Asking for invoices: a request per deal is stored (repeats merge, the strongest action
wins, in the database) and the installation's job is woken."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.engine import clock
from app.engine.job import enqueue_sync
from app.extensions import db
from app.models import DealSyncRequest, StageAction

STRENGTH = {StageAction.NONE: 0, StageAction.DRAFT: 1, StageAction.AUTHORISE: 2,
            StageAction.AUTHORISE_AND_EMAIL: 3}
# Request sources that are a person asking now (see stage_requests).
PERSON_SOURCES = ("card", "retry", "resend")


def request_invoice(installation_id: int, deal_id: str, action: StageAction, source: str) -> None:
    """Remember that `deal_id` wants `action` (merging with a waiting request) and wake the
    installation's job."""
    request_invoices(installation_id, [(deal_id, action, source)])


def request_invoices(installation_id: int, wanted: Sequence[tuple[str, StageAction, str]]) -> int:
    """Bulk `request_invoice` for one installation: one statement, one commit, one wake-up.
    Returns how many deals were asked for."""
    count = stage_requests(installation_id, wanted)
    db.session.commit()
    if count:
        enqueue_sync(installation_id)
    return count


def stage_requests(installation_id: int, wanted: Sequence[tuple[str, StageAction, str]]) -> int:
    """Upsert DealSyncRequests in the current transaction (the caller commits, then calls
    enqueue_sync). Repeats merge; the strongest action wins - in the database, so concurrent
    webhooks for one deal cannot race."""
    merged = _strongest(wanted)
    if not merged:
        return 0
    now = clock.now()
    rows = [{"installation_id": installation_id, "deal_id": deal_id, "action": action.value,
             "source": source, "attempts": 0, "requested_at": now, "version": 0}
            for deal_id, (action, source) in merged.items()]
    table = DealSyncRequest.__table__
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table)
    strength = {a.value: n for a, n in STRENGTH.items()}
    stronger = (case(strength, value=statement.excluded.action, else_=0)
                > case(strength, value=table.c.action, else_=0))
    # A person asking (the card's push, a review retry or re-send) means now: a deal backing
    # off is tried at once (Xero's own waits still hold: the shared limiter answers for them).
    by_person = or_(*(statement.excluded.source.like(f"{kind}:%") for kind in PERSON_SOURCES))
    # Every merge bumps the version, even a weaker one: a run already working on the row
    # then leaves it in place (see steps.finish.record), and the next run re-reads the deal.
    statement = statement.on_conflict_do_update(
        index_elements=["installation_id", "deal_id"],
        set_={"action": case((stronger, statement.excluded.action), else_=table.c.action),
              "source": case((stronger, statement.excluded.source), else_=table.c.source),
              "not_before": case((by_person, None), else_=table.c.not_before),
              "version": table.c.version + 1})
    db.session.connection().execute(statement, rows)
    return len(merged)


def _strongest(wanted: Sequence[tuple[str, StageAction, str]]) -> dict[str, tuple[StageAction, str]]:
    """One (action, source) per deal: the strongest asked for; NONE asks for nothing."""
    merged: dict[str, tuple[StageAction, str]] = {}
    for deal_id, action, source in wanted:
        if action != StageAction.NONE and (deal_id not in merged
                                           or STRENGTH[action] > STRENGTH[merged[deal_id][0]]):
            merged[deal_id] = (action, source)
    return merged
