"""Steps: read the batch's deals from the CRM, and follow each webhook request to the stage
the deal is in now."""

from __future__ import annotations

from app.engine.context import RunContext
from app.engine.rules import stage_actions
from app.models import ReviewReason, StageAction
from app.wiring import NoAdapter, adapter_for


def fetch_deals(ctx: RunContext) -> bool:
    """One batch read of every deal; a deal the CRM no longer has goes to review. False when
    no adapter serves the CRM (then every deal went to review)."""
    try:
        ctx.source = adapter_for(ctx.installation.crm.value)
    except NoAdapter as exc:
        for w in ctx.items:
            ctx.review(w, ReviewReason.SYNC_FAILED, str(exc))
        return False
    deals = ctx.source.fetch_deals(ctx.installation, [w.request.deal_id for w in ctx.items])
    for w in ctx.items:
        w.deal = deals.get(w.request.deal_id)
        if w.deal is None:
            ctx.review(w, ReviewReason.SYNC_FAILED, "the deal no longer exists in the CRM")
        else:
            w.audit["deal_name"] = w.deal.name[:200]  # the activity log names deals
    return True


def follow_current_stage(ctx: RunContext) -> None:
    """A webhook's request acts on the stage the deal is in now (just fetched), not the
    one it passed through: dragged to Closed Won and straight back gets the rule of where
    it is. Manual pushes and retries keep their action; so does a deal whose CRM did not
    say its stage."""
    prefix = f"{ctx.installation.crm.value}:"
    followed = [w for w in ctx.open() if w.deal is not None
                and w.deal.stage_id and w.source.startswith(prefix)]
    if not followed:
        return
    rules = stage_actions(ctx.installation.id)
    for w in followed:
        assert w.deal is not None
        now = rules.get(w.deal.stage_id, StageAction.NONE)
        w.audit["stage_now"] = w.deal.stage_id
        if now == StageAction.NONE:
            ctx.unchanged(w, f"the deal is now in stage {w.deal.stage_id}, "
                             "which has no invoice rule")
        else:
            w.action = now
