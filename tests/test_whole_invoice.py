"""Issue #14 section 4: the whole invoice on the deal page and the HubSpot card - lines,
totals and how they add up, payments, credit notes and allocations, what is due or that it
was voided, the PDF, the customer's link, "emailed to ... on ...", the last sync - all from
Paydeck's database (stored when Paydeck creates the invoice and whenever the webhook refresh
or the poll reads it), and the preview's names instead of codes.

Golden figures, by hand from Xero's arithmetic (LineAmountTypes Exclusive: LineAmount =
Quantity x UnitAmount less the discount, to the cent; TaxAmount = LineAmount x rate; Total =
SubTotal + TotalTax, spec Invoice.Total "SubTotal + TotalTax"; AU OUTPUT = GST on Income 10%):
  Consulting  2 x 1,200.00           = 2,400.00   GST 240.00
  Setup       1 x   400.00 less 10%  =   360.00   GST  36.00
  SubTotal 2,760.00 (the deal's amount), TotalTax 276.00, Total 3,036.00.
Then Xero's AmountDue = Total - AmountPaid - AmountCredited (spec: "Amount remaining to be
paid on invoice"): 1,000.00 paid -> 2,036.00; a 36.00 credit note -> 2,000.00; 2,000.00
paid -> 0.00 and PAID.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Installation, InstallationSettings, InvoiceLink, ReviewItem
from app.models import ReviewReason, StageAction, StageRule, XeroConnection
from app.payments import note_changed_invoices, poll_invoices
from app.queueing import QUEUE
from app.redis_conn import get_redis
from app.ui_auth import View, issue_action_token
from app.worker import PaydeckSimpleWorker
from tests.conftest import fake_settings
from tests.helpers import form_fields
from tests.test_cards import INSTALLER, card_get

NB = "\u00a0"  # Babel puts a no-break space between the ISO code and the digits (en)
# Pages and the card format in the viewer's locale, else the organisation's (app/access.py
# page_locale): the fake's AU books give en_AU, whose CLDR medium date is "20 Nov 2026".


def aud(text: str) -> str:
    return f"AUD{NB}{text}"


@pytest.fixture
def deal_env(app_factory, fake_hubspot, fake_xero, browser):
    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(hubspot_app_id=str(hubspot.app_id),
                                 **fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    browser.get(f"{url}/install/hubspot")
    browser.get(f"{url}/connect/xero")
    work(app)
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        # The deals' stage (the fake's default) approves: a push from a stage without a rule
        # would make a draft, which Xero neither takes payments on nor emails.
        db.session.add(StageRule(installation_id=installation.id, pipeline_id="default",
                                 stage_id="appointmentscheduled", action=StageAction.AUTHORISE))
        db.session.commit()
    company = hubspot.crm.add_company(name="Initech Pty Ltd")
    contact = hubspot.crm.add_contact(company_id=company, firstname="Pat", email="ap@initech.example")
    consulting = hubspot.crm.add_product(name="Consulting", price="1200.00")
    setup = hubspot.crm.add_product(name="Setup", price="400.00")

    def new_deal(name: str) -> str:
        return hubspot.crm.add_deal(dealname=name, amount="2760.00", company_id=company,
                                    contact_ids=[contact], line_items=[
                                        {"hs_product_id": consulting, "quantity": "2"},
                                        {"hs_product_id": setup, "quantity": "1",
                                         "hs_discount_percentage": "10"}])

    class Env:
        pass

    env = Env()
    env.app, env.url, env.hubspot, env.books = app, url, hubspot, xero.accounting(tenant)
    env.tenant, env.new_deal, env.fake = tenant, new_deal, xero
    return env


def work(app) -> None:
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def card(env, deal_id: str, user: str = INSTALLER) -> dict:
    response = card_get(env.url, env.hubspot.client_secret, {
        "portalId": env.hubspot.portal_id, "objectType": "deals", "objectId": deal_id,
        "userEmail": user})
    assert response.status_code == 200
    return response.json()


def push(env, deal_id: str) -> InvoiceLink:
    page = requests.get(card(env, deal_id)["open_url"], timeout=10)
    pushed = requests.post(f"{env.url}/ui/deal/{deal_id}/push",
                           data=form_fields(page.text, f"/ui/deal/{deal_id}/push"), timeout=10)
    assert pushed.status_code == 200
    work(env.app)
    return link_of(env, deal_id)


def link_of(env, deal_id: str) -> InvoiceLink:
    with env.app.app_context():
        link = db.session.scalars(select(InvoiceLink).where(InvoiceLink.deal_id == deal_id)).one()
        db.session.expunge(link)
        return link


def refresh(env, invoice_id: str) -> None:
    """Xero's webhook path: the invoice id noted, the refresh job run."""
    with env.app.app_context():
        note_changed_invoices({env.tenant: {invoice_id}})
    work(env.app)


def poll(env) -> None:
    with env.app.app_context():
        connection_id = db.session.scalars(select(XeroConnection.id)).one()
        poll_invoices(connection_id)


def page_of(env, deal_id: str, user: str = INSTALLER) -> str:
    response = requests.get(card(env, deal_id, user)["open_url"], timeout=10)
    assert response.status_code == 200
    return response.text


def test_the_lines_totals_and_how_2760_became_3036_are_stored_at_creation_and_shown(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    link = push(env, deal_id)

    # Stored from Xero's PUT answer, before any other read.
    assert link.detail is not None and link.synced_at is not None
    assert (link.detail["sub_total"], link.detail["total_tax"]) == ("2760.00", "276.00")
    assert [(l["description"], l["line_amount"], l["tax_amount"]) for l in link.detail["lines"]] == [
        ("Consulting", "2400.00", "240.00"), ("Setup", "360.00", "36.00")]
    assert link.total == Decimal("3036.00")

    page = page_of(env, deal_id)
    assert "Consulting" in page and "Setup" in page
    assert aud("1,200.00") in page and aud("400.00") in page and ">10%<" in page
    assert "GST on Income (10%)" in page and "200 \u00b7 Sales" in page
    assert aud("2,400.00") in page and aud("360.00") in page
    assert aud("2,760.00") in page and aud("276.00") in page and aud("3,036.00") in page
    # The discount: 1 x 400.00 x 10% = 40.00 (Xero's TotalDiscount).
    assert (f"Xero added {aud('276.00')} of tax to the {aud('2,760.00')} subtotal (after "
            f"{aud('40.00')} of discounts), so the invoice total is {aud('3,036.00')}") in page
    assert "Last synced with Xero: \u2014" not in page and "Last synced with Xero:" in page

    invoice = card(env, deal_id)["invoice"]
    assert (invoice["subtotal"], invoice["subtotal_text"]) == ("2760.00", aud("2,760.00"))
    assert (invoice["total_tax"], invoice["total"], invoice["total_text"]) == (
        "276.00", "3036.00", aud("3,036.00"))
    first, second = invoice["lines"]
    assert (first["quantity"], first["quantity_text"], first["unit_amount_text"]) == (
        "2.0000", "2", aud("1,200.00"))
    assert Decimal(first["unit_amount"]) == Decimal("1200")
    assert (second["discount_text"], second["line_amount"], second["tax"]) == (
        "10%", "360.00", "GST on Income (10%)")
    assert invoice["due_text"] == f"Due {aud('3,036.00')}" and invoice["ended"] is None
    assert "2,760.00" in invoice["explanation"] and invoice["synced_at"]


def test_payments_credit_notes_and_the_paid_date_come_from_the_refresh_and_the_poll(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    invoice_id = push(env, deal_id).xero_invoice_id
    synced_before = link_of(env, deal_id).synced_at

    env.books.pay(invoice_id, Decimal("1000.00"), paid_on=date(2026, 11, 20), reference="EFT 4471")
    poll(env)  # the safety net's paged read carries Payments
    link = link_of(env, deal_id)
    assert link.amount_due == Decimal("2036.00") and link.synced_at > synced_before
    assert link.detail["payments"][0]["reference"] == "EFT 4471"

    env.books.credit(invoice_id, Decimal("36.00"))
    refresh(env, invoice_id)  # the webhook's GET /Invoices?IDs= carries CreditNotes
    page = page_of(env, deal_id)
    assert "20 Nov 2026" in page and aud("1,000.00") in page and "EFT 4471" in page
    assert "Credit note" in page and aud("36.00") in page
    assert f"<dt>Due</dt><dd>{aud('2,000.00')}" in page

    env.books.pay(invoice_id, Decimal("2000.00"), paid_on=date(2026, 11, 25), reference="EFT 4502")
    refresh(env, invoice_id)
    body = card(env, deal_id)["invoice"]
    assert [(p["date"], p["amount"], p["reference"]) for p in body["payments"]] == [
        ("2026-11-20", "1000.00", "EFT 4471"), ("2026-11-25", "2000.00", "EFT 4502")]
    assert [(a["kind"], a["amount"], a["amount_text"]) for a in body["allocations"]] == [
        ("credit_note", "36.00", aud("36.00"))]
    assert (body["amount_due"], body["paid_on"], body["paid_on_text"]) == (
        "0.00", "2026-11-25", "25 Nov 2026")
    assert "paid in full on 25 Nov 2026" in page_of(env, deal_id)


def test_prepayments_and_overpayments_are_listed_as_allocations(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    invoice_id = push(env, deal_id).xero_invoice_id
    env.books.allocate_prepayment(invoice_id, Decimal("500.00"))
    env.books.allocate_overpayment(invoice_id, Decimal("36.00"))

    refresh(env, invoice_id)

    body = card(env, deal_id)["invoice"]
    assert [(a["label"], a["amount"]) for a in body["allocations"]] == [
        ("Prepayment", "500.00"), ("Overpayment", "36.00")]
    assert body["amount_due"] == "2500.00"  # 3,036.00 - 500.00 - 36.00


def test_a_voided_invoice_says_voided_not_what_was_due(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    invoice_id = push(env, deal_id).xero_invoice_id
    env.books.void(invoice_id)

    refresh(env, invoice_id)

    page = page_of(env, deal_id)
    assert "Voided" in page and "<dt>Due</dt>" not in page
    body = card(env, deal_id)
    assert body["invoice"]["due_text"] == "Voided" and body["invoice"]["ended"] == "Voided"
    assert "Due" not in body["invoice"]["due_text"]


def test_the_card_and_page_read_only_the_database_never_xero(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    push(env, deal_id)
    before = len(env.fake.api_calls)

    page = page_of(env, deal_id)
    body = card(env, deal_id)

    assert aud("3,036.00") in page and body["invoice"]["total"] == "3036.00"
    assert len(env.fake.api_calls) == before


def test_the_pdf_is_xeros_streamed_through_an_authorised_route(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    link = push(env, deal_id)
    body = card(env, deal_id)

    pdf = requests.get(body["pdf_url"], timeout=10)

    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-1.4") and pdf.content.rstrip().endswith(b"%%EOF")
    assert f"Tax invoice {link.invoice_number}".encode() in pdf.content  # Xero's (the fake's)
    assert f'filename="{link.invoice_number}.pdf"' in pdf.headers["Content-Disposition"]
    page = page_of(env, deal_id)
    assert f"/ui/deal/{deal_id}/invoice.pdf?t=" in page

    other = env.new_deal("Other")
    other_token = card(env, other)["open_url"].split("t=")[1]
    for token in (None, "forged-token-of-22-chars", other_token):
        refused = requests.get(f"{env.url}/ui/deal/{deal_id}/invoice.pdf",
                               params={"t": token} if token else {}, timeout=10)
        assert refused.status_code == 401 and b"%PDF" not in refused.content


def test_the_pdf_is_refused_to_a_viewer_who_may_not_see_the_money(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    push(env, deal_id)
    with env.app.app_context():
        settings = db.session.scalars(select(InstallationSettings)).one()
        settings.money_visibility = "admins"
        db.session.commit()
    rep = card(env, deal_id, "rep@example.com")
    assert "pdf_url" not in rep and "invoice" not in rep
    token = rep["open_url"].split("t=")[1]

    refused = requests.get(f"{env.url}/ui/deal/{deal_id}/invoice.pdf", params={"t": token}, timeout=10)

    assert refused.status_code == 403 and b"%PDF" not in refused.content
    assert "invoice.pdf" not in requests.get(rep["open_url"], timeout=10).text


def test_email_and_resend_from_the_deal_page_and_the_customer_link(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    invoice_id = push(env, deal_id).xero_invoice_id
    refresh(env, invoice_id)  # the refresh fetches the customer's online invoice link

    page = page_of(env, deal_id)
    assert "Customer's online invoice" in page and "https://in.xero.com/" in page
    assert "Emailed" not in page and "Email the invoice" in page
    fields = form_fields(page, f"/ui/deal/{deal_id}/email")
    sent = requests.post(f"{env.url}/ui/deal/{deal_id}/email", data=fields, timeout=10)
    assert sent.status_code == 200 and "Xero is emailing invoice" in sent.text
    work(env.app)

    assert [e.to for e in env.books.emails] == ["ap@initech.example"]
    link = link_of(env, deal_id)
    assert link.emailed_to == "ap@initech.example" and link.emailed_at is not None
    page = page_of(env, deal_id)
    assert "Emailed to ap@initech.example on " in page and "Resend the invoice" in page
    assert card(env, deal_id)["invoice"]["emailed"].startswith("Emailed to ap@initech.example on ")

    replay = requests.post(f"{env.url}/ui/deal/{deal_id}/email", data=fields, timeout=10)
    assert replay.status_code == 401  # single use
    again = requests.post(f"{env.url}/ui/deal/{deal_id}/email",
                          data=form_fields(page, f"/ui/deal/{deal_id}/email"), timeout=10)
    work(env.app)
    assert again.status_code == 200 and len(env.books.emails) == 2
    with env.app.app_context():
        assert len(db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "invoice_emailed", AuditEvent.outcome == "ok")).all()) == 2


def test_a_refused_email_is_a_review_item_and_a_rep_may_not_send(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    link = push(env, deal_id)
    contact = env.books.contact_by_id[link.xero_contact_id]
    env.books.contact_by_id[contact.contact_id] = replace(contact, email_address=None)
    page = page_of(env, deal_id)

    sent = requests.post(f"{env.url}/ui/deal/{deal_id}/email",
                         data=form_fields(page, f"/ui/deal/{deal_id}/email"), timeout=10)
    work(env.app)

    assert sent.status_code == 200 and env.books.emails == []
    with env.app.app_context():
        item = db.session.scalars(select(ReviewItem)).one()
    assert item.reason == ReviewReason.EMAIL_FAILED and "valid email address" in item.detail
    assert link_of(env, deal_id).emailed_at is None

    rep_page = page_of(env, deal_id, "rep@example.com")  # not the deal's owner, not an admin
    assert "Email the invoice" not in rep_page and "Resend the invoice" not in rep_page


def test_the_email_route_refuses_forged_and_other_actions_tokens(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    push(env, deal_id)
    with env.app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        push_token = issue_action_token(View(installation_id, INSTALLER, "deal", deal_id), "push")
        other_deal = issue_action_token(View(installation_id, INSTALLER, "deal", "424242"), "email")
    page_token = card(env, deal_id)["open_url"].split("t=")[1]

    for token in ("", "forged", push_token, page_token, other_deal):
        refused = requests.post(f"{env.url}/ui/deal/{deal_id}/email", data={"a": token}, timeout=10)
        assert refused.status_code == 401, token
    work(env.app)
    assert env.books.emails == []


def test_a_rep_without_the_action_setting_is_refused_the_email_action(deal_env):
    env = deal_env
    deal_id = env.new_deal("Website")
    push(env, deal_id)
    with env.app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
        token = issue_action_token(View(installation_id, "rep@example.com", "deal", deal_id), "email")

    refused = requests.post(f"{env.url}/ui/deal/{deal_id}/email", data={"a": token}, timeout=10)
    work(env.app)

    assert refused.status_code == 403 and env.books.emails == []
    with env.app.app_context():
        assert db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "access_refused")).all()


# --- what Xero's documents say about which read carries what ------------------------------------

SPEC = Path(__file__).parent / "specs" / "xero" / "xero_accounting.yaml"


@pytest.fixture(scope="module")
def spec():
    return yaml.safe_load(SPEC.read_text(encoding="utf-8"))


def test_the_spec_says_which_reads_carry_lines_payments_and_allocations(spec):
    """What xero/detail.py relies on, from the vendored OpenAPI file. What it leaves unclear
    (and Paydeck therefore does not rely on): which fields `summaryOnly` drops ("excluding
    computation-heavy fields", unnamed - Paydeck treats an answer without LineItems as having
    no detail); whether an unpaged list read carries Payments; the date an invoice was sent
    (SentToContact is a bare boolean, so the date shown is Paydeck's own email's); whether the
    CreditNotes inside an invoice carry AppliedAmount (the CreditNote model has it)."""
    invoices = spec["paths"]["/Invoices"]["get"]
    page = next(p for p in invoices["parameters"] if p.get("name") == "page")
    assert "line items shown for each invoice" in page["description"]
    listed = invoices["responses"]["200"]["content"]["application/json"]["example"]["Invoices"][0]
    assert {"Payments", "CreditNotes", "Prepayments", "Overpayments"} <= set(listed)
    one = spec["paths"]["/Invoices/{InvoiceID}"]["get"]["responses"]["200"]["content"]
    payment = one["application/json"]["example"]["Invoices"][0]["Payments"][0]
    assert {"Date", "Amount", "Reference"} <= set(payment)
    pdf = spec["paths"]["/Invoices/{InvoiceID}/pdf"]["get"]
    assert pdf["x-path"] == "/Invoices/{InvoiceID}" and "application/pdf" in pdf["responses"]["200"]["content"]
    model = spec["components"]["schemas"]["Invoice"]["properties"]
    for name in ("Payments", "CreditNotes", "Prepayments", "Overpayments", "SubTotal", "TotalTax"):
        assert model[name]["readOnly"] is True, name
    assert model["SentToContact"]["type"] == "boolean"  # no date: see the docstring
    for kind in ("CreditNote", "Prepayment", "Overpayment"):
        assert "AppliedAmount" in spec["components"]["schemas"][kind]["properties"], kind


def test_a_read_without_lines_keeps_what_a_full_read_stored(deal_env):
    """A summaryOnly answer (no LineItems) must not blank the stored lines and payments."""
    from app.invoice_results import apply_invoice_result
    from xero.client import InvoiceResult

    env = deal_env
    deal_id = env.new_deal("Website")
    push(env, deal_id)
    with env.app.app_context():
        link = db.session.scalars(select(InvoiceLink)).one()
        stored = link.detail
        apply_invoice_result(link, InvoiceResult(
            reference=link.reference, invoice_id=link.xero_invoice_id,
            invoice_number=link.invoice_number, status="AUTHORISED", currency="AUD",
            total=Decimal("3036.00"), amount_due=Decimal("3036.00"), amount_paid=Decimal("0"),
            due_date=link.due_date, updated_at=None))
        assert link.detail == stored and len(link.detail["lines"]) == 2
