"""Steps resolve_contacts and check_contacts, alone."""

from __future__ import annotations

from app.engine.steps.contacts import check_contacts, resolve_contacts
from app.engine.steps.deals import fetch_deals
from app.extensions import db
from app.models import ContactLink, ReviewItem, ReviewReason, XeroContact
from domain.deals import Deal
from sandbox.memory_crm import deal
from xero.client import ContactResult
from xero.errors import BatchMismatch
from xero.reference import ContactTerms, PaymentTerms


def fetched(batch, *deals: Deal):
    for d in deals:
        batch.crm.add(d)
    ctx = batch.context(*(d.id for d in deals))
    fetch_deals(ctx)
    # The run loads Xero's reference data before contacts (engine/run.py INVOICING): a new
    # contact is created only for a deal whose invoice would build.
    ctx.ref = batch.xero.reference
    return ctx


def test_a_linked_company_uses_its_contact_without_asking_xero(batch):
    db.session.add(ContactLink(installation_id=batch.installation_id, crm_object_type="company",
                               crm_object_id="co-Initech Pty Ltd", xero_contact_id="c-7",
                               linked_by="match"))
    db.session.commit()
    ctx = fetched(batch, deal("1"))

    resolve_contacts(ctx)

    assert ctx.items[0].contact_id == "c-7"
    assert batch.xero.calls == []


def test_a_contact_in_the_mirror_is_matched_and_linked(batch):
    batch.xero.pages = [[ContactResult("c-1", "Initech Pty Ltd", "ap@initech.example", "")]]
    ctx = fetched(batch, deal("1"))

    resolve_contacts(ctx)

    assert ctx.items[0].contact_id == "c-1"
    assert db.session.scalars(db.select(XeroContact.contact_id)).all() == ["c-1"]
    (link,) = db.session.scalars(db.select(ContactLink)).all()
    assert (link.xero_contact_id, link.linked_by) == ("c-1", "match")


def test_two_deals_of_a_new_company_make_one_contact(batch):
    batch.xero.new_contacts = [ContactResult("c-new", "Initech Pty Ltd", "ap@initech.example", "")]
    ctx = fetched(batch, deal("1"), deal("2"))

    resolve_contacts(ctx)

    assert [w.contact_id for w in ctx.items] == ["c-new", "c-new"]
    (sent,) = [args for name, args in batch.xero.calls if name == "create_contacts"]
    assert [c.name for c in sent] == ["Initech Pty Ltd"]
    assert len(db.session.scalars(db.select(ContactLink)).all()) == 1


def test_a_deal_with_nobody_to_invoice_goes_to_review(batch):
    ctx = fetched(batch, deal("1", org=""))
    ctx.items[0].deal = Deal("1", "Nobody's deal")

    resolve_contacts(ctx)

    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.AMBIGUOUS_CONTACT and ctx.items[0].done


def test_a_contact_xero_did_not_answer_for_is_left_for_later(batch):
    batch.xero.new_contacts = [BatchMismatch("Initech Pty Ltd", "no answer carried the name")]
    ctx = fetched(batch, deal("1"))

    resolve_contacts(ctx)

    (w,) = ctx.items
    assert w.done and w.retry_in is not None and ctx.counts["retry"] == 1


def test_an_archived_contact_is_a_review_item_before_any_invoice(batch):
    ctx = fetched(batch, deal("1"), deal("2", org="Hooli"))
    ctx.items[0].contact_id, ctx.items[1].contact_id = "c-archived", "c-own-terms"
    batch.xero.terms = {"c-archived": ContactTerms("c-archived", active=False, name="Initech"),
                        "c-own-terms": ContactTerms("c-own-terms", active=True,
                                                    sales_terms=PaymentTerms("DAYSAFTERBILLDATE", 7))}

    check_contacts(ctx)

    archived, own_terms = ctx.items
    assert archived.done
    assert own_terms.contact_terms == PaymentTerms("DAYSAFTERBILLDATE", 7)
    (item,) = db.session.scalars(db.select(ReviewItem)).all()
    assert item.reason == ReviewReason.CONTACT_ARCHIVED
    assert batch.xero.calls == [("contact_terms", ["c-archived", "c-own-terms"])]
