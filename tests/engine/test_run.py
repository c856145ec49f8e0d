"""execute(): the steps in order over one work list; what one step finished, the next skip."""

from __future__ import annotations

from app.engine import run
from app.engine.run import INVOICING, LOOKUP, execute
from app.extensions import db
from app.models import ContactLink, DealSyncRequest, InvoiceLinkState
from sandbox.memory_crm import deal
from tests.engine.conftest import invoice
from xero.reference import ContactTerms


def test_the_steps_run_in_the_documented_order():
    assert [s.__name__ for s in LOOKUP + INVOICING] == [
        "follow_current_stage", "load_links", "recover_uncertain", "load_reference_data",
        "plan_updates", "resolve_contacts", "check_contacts", "build", "send", "send_emails"]


def test_xero_is_not_asked_anything_when_no_deal_is_left_to_invoice(batch):
    ctx = batch.context("gone")  # the CRM has no such deal: reviewed by fetch_deals

    counts = execute(ctx)

    assert counts["review"] == 1 and batch.xero.calls == []
    assert db.session.scalars(db.select(DealSyncRequest)).all() == []


def test_a_deal_one_step_finished_is_skipped_by_every_later_step(batch, monkeypatch):
    batch.crm.add(deal("1"))
    batch.crm.add(deal("2"))
    db.session.add(ContactLink(installation_id=batch.installation_id, crm_object_type="company",
                               crm_object_id="co-Initech Pty Ltd", xero_contact_id="c-1",
                               linked_by="match"))
    db.session.commit()
    batch.xero.terms["c-1"] = ContactTerms("c-1", active=True)
    reached = []

    def skip_first(ctx):
        ctx.unchanged(ctx.items[0], "decided by a step")

    def spy(step):
        def wrapped(ctx):
            reached.append((step.__name__, [w.request.deal_id for w in ctx.open()]))
            step(ctx)
        wrapped.__name__ = step.__name__
        return wrapped

    monkeypatch.setattr(run, "LOOKUP", (*LOOKUP, skip_first))
    monkeypatch.setattr(run, "INVOICING", tuple(spy(s) for s in INVOICING))
    batch.xero.answers = [invoice("HubSpot 4711 deal 2", "inv-2")]
    ctx = batch.context("1", "2")

    counts = execute(ctx)

    assert reached == [(s.__name__, ["2"]) for s in INVOICING[:-1]] + [("send_emails", [])]
    (created,) = [a for name, a in batch.xero.calls if name == "create_invoices"]
    assert [d.reference for d in created[0]] == ["HubSpot 4711 deal 2"]
    assert counts["created"] == 1 and counts["unchanged"] == 1
    assert ctx.items[1].link.state == InvoiceLinkState.CREATED
    assert [f.deal_id for f in batch.crm.written] == ["2"]
