"""Steps: a Xero contact for each deal's customer (linked already, matched in the mirror in
the admin's dedupe order, or created), then a check of each linked contact just before
invoicing (still active? its own sales terms?)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import select

from app.engine.context import DealWork, RunContext
from app.engine.steps.mirror import link_contact, sync_contact_mirror
from app.engine.steps.new_contacts import create_contacts
from app.extensions import db
from app.models import ContactLink, ReviewReason, XeroContact
from domain.deals import Deal
from xero.contacts import Candidate, Customer, match_contact, name_key
from xero.reference import ContactTerms


def customer_of(deal: Deal) -> Customer | None:
    """Who the deal's invoice is for: its company, else its contact person."""
    if deal.organisation is not None and deal.organisation.name:
        org = deal.organisation
        # Companies often have no email of their own: the deal's contact is who gets billed.
        email = org.email or (deal.person.email if deal.person else "")
        return Customer("company", org.id, org.name, email, org.tax_number)
    if deal.person is not None and deal.person.name:
        return Customer("person", deal.person.id, deal.person.name, deal.person.email)
    return None


def resolve_contacts(ctx: RunContext) -> None:
    """New invoices need a contact (an update keeps its draft's; an owed email needs none)."""
    needing = [w for w in ctx.open() if w.update_of is None and not w.email_only]
    for w in needing:
        w.customer = customer_of(w.deal)  # type: ignore[arg-type]
        if w.customer is None:
            ctx.review(w, ReviewReason.AMBIGUOUS_CONTACT,
                       "the deal has no company or contact to invoice")
    needing = [w for w in needing if not w.done]
    if not needing:
        return
    _link_known(ctx, needing)
    unlinked = [w for w in needing if w.contact_id is None and not w.done]
    if not unlinked:
        return
    sync_contact_mirror(ctx)
    to_create: dict[str, list[DealWork]] = {}
    for w in unlinked:
        assert w.customer is not None
        match = match_contact(w.customer, ctx.settings.dedupe_order, partial(_lookup, ctx))
        if match.outcome == "matched":
            w.contact_id = match.contact_id
            link_contact(ctx, w.customer, match.contact_id, "match")  # type: ignore[arg-type]
        elif match.outcome == "ambiguous":
            ctx.review(w, ReviewReason.AMBIGUOUS_CONTACT, match.detail,
                       [vars(c) for c in match.candidates])
        else:
            to_create.setdefault(name_key(w.customer.name), []).append(w)
    create_contacts(ctx, to_create)


def _link_known(ctx: RunContext, needing: list[DealWork]) -> None:
    keys = {(w.customer.crm_type, w.customer.crm_id) for w in needing if w.customer}
    links = db.session.scalars(select(ContactLink).where(
        ContactLink.installation_id == ctx.installation.id,
        ContactLink.crm_object_id.in_([k[1] for k in keys])))
    known = {(l.crm_object_type, l.crm_object_id): l for l in links}
    for w in needing:
        assert w.customer is not None
        link = known.get((w.customer.crm_type, w.customer.crm_id))
        if link is not None and link.crm_status == "merge_conflict":
            # Companies merged in the CRM brought different Xero contacts: never a guess
            # (app.contact_sync.crm_merges); the deal waits for the person's choice.
            ctx.review(w, ReviewReason.CONTACT_MERGE_CONFLICT,
                       "the deal's company was merged in the CRM from companies linked to "
                       "different Xero contacts: keep one in the review queue, then retry")
            continue
        w.contact_id = link.xero_contact_id if link is not None else None


def _lookup(ctx: RunContext, field_name: str, key: str) -> list[Candidate]:
    column = {"email": XeroContact.email_key, "tax_number": XeroContact.tax_number_key,
              "name": XeroContact.name_key}[field_name]
    rows = db.session.scalars(select(XeroContact).where(
        XeroContact.xero_connection_id == ctx.connection.id, XeroContact.active.is_(True),
        column == key))
    return [Candidate(r.contact_id, r.name, r.email_key, r.tax_number_key) for r in rows]


def check_contacts(ctx: RunContext) -> None:
    """Just before invoicing: is each contact still active in Xero, and has it its own
    sales terms? One GET /Contacts?IDs= call per 50 contacts."""
    building = [w for w in ctx.open() if not w.email_only]
    # A contact created in this run is active and has no terms of its own: not asked.
    contact_of = {id(w): None if w.audit.get("contact_created")
                  else w.contact_id or (w.link.xero_contact_id if w.link else None)
                  for w in building}
    ids = sorted({c for c in contact_of.values() if c})
    if not ids:
        return
    found = ctx.xero.contact_terms(ids)
    for w in building:
        contact_id = contact_of[id(w)]
        if contact_id is None:
            continue
        terms = found.get(contact_id)
        if terms is None or not terms.active:
            _review_archived(ctx, w, contact_id, terms)
        elif ctx.settings.use_contact_terms is not False:
            w.contact_terms = terms.sales_terms


def _review_archived(ctx: RunContext, w: DealWork, contact_id: str,
                     terms: ContactTerms | None) -> None:
    """Xero refuses invoices to an archived contact; a person picks: relink (the company
    page) or unarchive (in Xero), then the one-click retry."""
    name = terms.name if terms else contact_id
    customer = w.customer
    who = customer.name if customer else "the deal's company"
    state = "archived in Xero" if terms else "archived or no longer in Xero"
    ctx.review(w, ReviewReason.CONTACT_ARCHIVED,
               f"The Xero contact {name!r} linked to {who} is {state}. Relink the "
               f"{customer.crm_type if customer else 'company'} to another Xero contact, "
               "or unarchive the contact in Xero, then retry.",
               [{"contact_id": contact_id, "name": name,
                 "crm_object_type": customer.crm_type if customer else None,
                 "crm_object_id": customer.crm_id if customer else None}])
