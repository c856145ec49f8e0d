"""One batch of deals, as the steps of a sync run over one work list. Each step is
`step(ctx)`; an item a step finished (invoiced, unchanged, sent to review, left for later)
is skipped by the steps after it."""

from __future__ import annotations

from collections.abc import Callable

from app.engine.context import RunContext
from app.engine.steps.build import build
from app.engine.steps.contacts import check_contacts, resolve_contacts
from app.engine.steps.deals import fetch_deals, follow_current_stage
from app.engine.steps.email import send_emails
from app.engine.steps.finish import collect_fields, record, write_back_fields
from app.engine.steps.links import load_links, recover_uncertain
from app.engine.steps.plan import load_reference_data, plan_updates
from app.engine.steps.send import send

Step = Callable[[RunContext], None]

# After the deals are read: what Paydeck knows of each (links; PENDING ones recovered).
LOOKUP: tuple[Step, ...] = (follow_current_stage, load_links, recover_uncertain)
# Only while some deal still waits for its invoice: the steps that ask Xero.
INVOICING: tuple[Step, ...] = (load_reference_data, plan_updates, resolve_contacts,
                               check_contacts, build, send, send_emails)


def execute(ctx: RunContext) -> dict[str, int]:
    """Run the batch: fetch the deals, look up their links, invoice, record, write back."""
    if fetch_deals(ctx):  # False: no adapter for the CRM, and every deal went to review
        for step in LOOKUP:
            step(ctx)
        if ctx.open():
            for step in INVOICING:
                step(ctx)
        collect_fields(ctx)
    record(ctx)
    write_back_fields(ctx)
    return ctx.counts
