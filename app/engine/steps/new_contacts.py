"""Creating the Xero contacts no existing one matched: in batches, one per company, Xero's
text limits checked first."""

from __future__ import annotations

from app.engine.context import DealWork, RunContext
from app.engine.steps.build import NOT_YET_CREATED, try_build
from app.engine.steps.mirror import link_contact, mirror
from app.extensions import db
from app.models import ReviewReason
from xero.client import BATCH_SIZE, NewContact, contact_too_long
from xero.errors import BatchMismatch


def create_contacts(ctx: RunContext, to_create: dict[str, list[DealWork]]) -> None:
    """One new contact per group of deals (deals of one customer name share it), only for
    deals whose invoice would build: a deal that goes to review (no lines, an amount that does
    not add up, an unmapped tax label) leaves no new, invoice-less contact behind in Xero."""
    buildable = {key: [w for w in group if try_build(ctx, w, NOT_YET_CREATED) is not None]
                 for key, group in to_create.items()}
    groups = [g for g in buildable.values() if g and _contact_fits(ctx, g)]
    for start in range(0, len(groups), BATCH_SIZE):
        chunk = groups[start:start + BATCH_SIZE]
        results = ctx.xero.create_contacts([new_contact(g[0]) for g in chunk])
        # The client lines Xero's answer up with what was sent: one result per group.
        for group, result in zip(chunk, results, strict=True):
            if isinstance(result, BatchMismatch):
                for w in group:
                    ctx.retry(w, result)
                continue
            if result.errors or not result.contact_id:
                for w in group:
                    ctx.review(w, ReviewReason.AMBIGUOUS_CONTACT,
                               "Xero refused the new contact: " + "; ".join(result.errors))
                continue
            mirror(ctx, result)
            for w in group:
                w.contact_id = result.contact_id
                assert w.customer is not None
                link_contact(ctx, w.customer, result.contact_id, "created")
                w.audit["contact_created"] = result.contact_id
        db.session.commit()


def _contact_fits(ctx: RunContext, group: list[DealWork]) -> bool:
    """Xero's text limits, checked before the SDK would raise ValueError mid-batch (which
    crashed the job, and the oldest deal then blocked every later batch)."""
    too_long = contact_too_long(new_contact(group[0]))
    if not too_long:
        return True
    for w in group:
        ctx.review(w, ReviewReason.TEXT_TOO_LONG, "; ".join(too_long))
    return False


def new_contact(w: DealWork) -> NewContact:
    """The Xero contact a deal's customer becomes."""
    deal, customer = w.deal, w.customer
    assert deal is not None and customer is not None
    person = deal.person
    first, _, last = (person.name.partition(" ") if person else ("", "", ""))
    phone = (deal.organisation.phone if deal.organisation else "") or (person.phone if person else "")
    email = customer.email or (person.email if person else "")
    return NewContact(name=customer.name, email=email, tax_number=customer.tax_number,
                      phone=phone, first_name=first, last_name=last)
