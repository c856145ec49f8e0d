"""The sandbox console over HTTP (issue #14 section 7): a playground where a newcomer creates
and edits deals, line items, products and companies in the fake CRMs, the mock Xero takes
"1,000.00" and overpayments, Paydeck's "Open in Xero" link lands on the mock Xero, refusals
are the console's own pages and the host page can sign Pipedrive tokens.

The console runs with the fakes in memory (no servers) and Paydeck unreachable: what these
tests check is the console and the fakes, not Paydeck (the browser tests drive all three)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from markupsafe import escape

from sandbox.console import Console, create_console
from sandbox.console_records import Problem, parse_number
from sandbox.demo import Sandbox

# Nothing listens on the discard port: a card fetch or a webhook to Paydeck fails at once.
NOWHERE = "http://127.0.0.1:9"
CONSOLE = "http://console.test"
NAMES = '<b>Café "Ünïcode" & Co</b> 東京'


@pytest.fixture
def sandbox() -> Sandbox:
    demo = Sandbox(NOWHERE, console_url=CONSOLE)
    demo.seed()
    return demo


@pytest.fixture
def client(sandbox: Sandbox) -> FlaskClient:
    return create_console(Console(sandbox, ready=True)).test_client()


def authorised_invoice(sandbox: Sandbox, crm: str = "hubspot", total: str = "3036.00") -> Any:
    """An approved invoice for Globex in the `crm`'s books: one NoTax line of `total`."""
    books = sandbox.xero.accounting(sandbox.tenants[crm])
    contact = next(c for c in books.contacts if c.name == "Globex Corporation")
    return books.add_invoice({
        "Type": "ACCREC", "Contact": {"ContactID": contact.contact_id}, "Status": "AUTHORISED",
        "LineAmountTypes": "NoTax", "DueDate": "2026-12-31",
        "LineItems": [{"Description": "Website", "Quantity": "1", "UnitAmount": total,
                       "AccountCode": "200"}]})


# --- amounts as a bookkeeper types them ---------------------------------------------------------

@pytest.mark.parametrize("typed, value", [("1,000.00", "1000.00"), ("1000", "1000"),
                                          (" 12,345,678.5 ", "12345678.5"), ("0.01", "0.01")])
def test_amounts_take_thousands_separators(typed: str, value: str) -> None:
    assert parse_number(typed, "amount") == Decimal(value)


@pytest.mark.parametrize("typed", ["1.000,00", "1,00", "10,0000", "-5", "1e3", "abc", "1.005",
                                   "NaN", ""])
def test_amounts_that_are_not_amounts_are_refused(typed: str) -> None:
    with pytest.raises(Problem):
        parse_number(typed, "amount")


def test_a_part_payment_of_1_000_00_is_recorded(client: FlaskClient, sandbox: Sandbox) -> None:
    invoice = authorised_invoice(sandbox)
    tenant = sandbox.tenants["hubspot"]
    answer = client.post(f"/xero/{tenant}/invoices/{invoice.invoice_id}/pay",
                         data={"amount": "1,000.00"})
    assert answer.status_code == 302
    paid = sandbox.xero.accounting(tenant).invoice(invoice.invoice_id)
    # 3036.00 - 1000.00 = 2036.00 still due; still AUTHORISED (part-paid).
    assert (paid.amount_paid, paid.amount_due, paid.status) == (
        Decimal("1000.00"), Decimal("2036.00"), "AUTHORISED")
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"Payment recorded on {invoice.invoice_number}" in page
    assert "webhook to Paydeck: not delivered" in page  # Paydeck is down here: said, no 500


def test_a_mistyped_amount_is_said_and_nothing_is_recorded(client, sandbox) -> None:
    invoice = authorised_invoice(sandbox)
    tenant = sandbox.tenants["hubspot"]
    answer = client.post(f"/xero/{tenant}/invoices/{invoice.invoice_id}/pay",
                         data={"amount": "1.000,00"}, follow_redirects=True)
    assert answer.status_code == 200
    assert "must be a number like 1,000.00" in answer.get_data(as_text=True)
    assert sandbox.xero.accounting(tenant).invoice(invoice.invoice_id).payments == ()


def test_an_overpayment_pays_the_invoice_and_keeps_the_excess_as_credit(client, sandbox) -> None:
    """Xero's way (help.xero.com/au/BankAccounts_Overpayment_Rec): the invoice is paid in
    full by a payment of what was due; the excess is an Overpayment on the contact."""
    invoice = authorised_invoice(sandbox, total="1500.00")
    tenant = sandbox.tenants["hubspot"]
    client.post(f"/xero/{tenant}/invoices/{invoice.invoice_id}/pay", data={"amount": "500"})
    answer = client.post(f"/xero/{tenant}/invoices/{invoice.invoice_id}/pay",
                         data={"amount": "1,200.00"}, follow_redirects=True)
    books = sandbox.xero.accounting(tenant)
    paid = books.invoice(invoice.invoice_id)
    # Due after the first 500: 1000.00; of the 1200.00 received, 1000.00 pays it, 200.00 is over.
    assert paid.status == "PAID" and paid.amount_due == 0
    assert [p.amount for p in paid.payments] == [Decimal("500.00"), Decimal("1000.00")]
    [over] = books.overpayments
    assert (over.total, over.remaining_credit, over.contact_id, over.status) == (
        Decimal("200.00"), Decimal("200.00"), paid.contact_id, "AUTHORISED")
    assert "200.00 kept as an overpayment" in answer.get_data(as_text=True)

    # The credit is the contact's: allocated to its next invoice, not to another contact's.
    later = authorised_invoice(sandbox, total="150.00")
    books.apply_overpayment(over.overpayment_id, later.invoice_id, "150")
    assert books.invoice(later.invoice_id).status == "PAID"
    assert books.overpayments[0].remaining_credit == Decimal("50.00")
    with pytest.raises(ValueError):
        books.apply_overpayment(over.overpayment_id, later.invoice_id, "60")


def test_void_from_the_console(client, sandbox) -> None:
    invoice = authorised_invoice(sandbox)
    tenant = sandbox.tenants["hubspot"]
    client.post(f"/xero/{tenant}/invoices/{invoice.invoice_id}/void")
    assert sandbox.xero.accounting(tenant).invoice(invoice.invoice_id).status == "VOIDED"


# --- where Paydeck's links lead ----------------------------------------------------------------

def test_open_in_xero_and_the_online_invoice_lead_to_the_mock_xero(client, sandbox) -> None:
    assert sandbox.link_settings()["xero_app_base"] == f"{CONSOLE}/xero"
    invoice = authorised_invoice(sandbox)
    # What Paydeck links (app/invoice_results.py with xero_app_base = the console's /xero):
    page = client.get(f"/xero/AccountsReceivable/View.aspx?InvoiceID={invoice.invoice_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"Invoice {invoice.invoice_number}" in text and "Record payment" in text
    assert 'id="amount-due">3036.00<' in text

    books = sandbox.xero.accounting(sandbox.tenants["hubspot"])
    assert books.online_invoice_base == f"{CONSOLE}/xero/online"
    online = client.get(f"/xero/online/{invoice.online_token}")
    assert online.status_code == 200 and "Globex Corporation" in online.get_data(as_text=True)

    missing = client.get("/xero/AccountsReceivable/View.aspx?InvoiceID=" + "0" * 36)
    assert missing.status_code == 404 and "Paydeck sandbox" in missing.get_data(as_text=True)


# --- refusals are pages of the console -----------------------------------------------------------

def test_refusals_are_the_consoles_own_pages_not_werkzeugs(client, sandbox) -> None:
    deal = next(d.deal_id for d in sandbox.deals if d.crm == "hubspot")
    for answer, code in ((client.post(f"/hubspot/deals/{deal}/stage", data={"stage": "nope"}), 400),
                         (client.post("/pipedrive/deals/1/stage", data={"stage": "x"}), 400),
                         (client.get("/xero/AccountsReceivable/View.aspx"), 400),
                         (client.get("/no/such/page"), 404),
                         (client.get("/hubspot/deals/999999"), 404),
                         (client.post("/pipedrive/signed-token", data="x"), 415)):
        text = answer.get_data(as_text=True)
        assert answer.status_code == code
        assert "<strong>Paydeck sandbox</strong>" in text  # the console's header and styles
        assert "The browser (or proxy) sent a request" not in text
        assert "Back to the start page" in text


def test_the_favicon_is_served_and_linked(client) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data().startswith(b"<svg")
    assert client.get("/favicon.svg").status_code == 200
    assert 'rel="icon" href="/favicon.svg"' in client.get("/").get_data(as_text=True)


# --- the Pipedrive host page's GET_SIGNED_TOKEN -----------------------------------------------

def test_the_host_signs_a_fresh_pipedrive_token_with_the_client_secret(client, sandbox) -> None:
    fake = sandbox.pipedrive
    answer = client.post("/pipedrive/signed-token", json={})
    claims = jwt.decode(answer.get_json()["token"], fake.client_secret, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 300  # platform-facts: a fresh 5-minute JWT
    assert (claims["userId"], claims["companyId"]) == (fake.user_id, fake.company_id)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(answer.get_json()["token"], "another secret, long enough for HS256 keys", algorithms=["HS256"])


# --- a playground: creating and editing records in the fake CRMs -----------------------------

def test_a_hubspot_deal_with_html_and_non_ascii_names_is_created_and_edited(client, sandbox) -> None:
    crm = sandbox.hubspot.crm
    seo = next(p["hs_object_id"] for p in crm.objects("products") if p["hs_sku"] == "SEO-AUDIT")
    company = client.post("/hubspot/companies", data={"name": NAMES, "domain": "cafe.example"})
    company_id = company.headers["Location"].split("/companies/")[1].split("?")[0]
    assert crm.object_properties("companies", company_id)["name"] == NAMES

    answer = client.post("/hubspot/deals", data={
        "dealname": NAMES, "company_id": company_id, "product_id": seo, "quantity": "2",
        "discount": "10"})
    deal_id = answer.headers["Location"].split("/deals/")[1].split("?")[0]
    deal = crm.deal(deal_id)
    # SEO audit 900.00 x 2 = 1800.00, less 10% = 1620.00: the deal's amount follows its lines.
    assert deal["dealname"] == NAMES and Decimal(deal["amount"] or "") == Decimal("1620")
    assert crm.associated_ids("deals", deal_id, "companies") == [company_id]
    # Made as a user in HubSpot's UI (so the fake's webhooks say CRM_UI, as HubSpot's do).
    assert crm.history("deals", deal_id, "dealname")[0].source_type == "CRM_UI"

    page = client.get(f"/hubspot/deals/{deal_id}").get_data(as_text=True)
    assert escape(NAMES) in page and NAMES not in page

    [line] = crm.associated_ids("deals", deal_id, "line_items")
    client.post(f"/hubspot/deals/{deal_id}/line-items/{line}", data={"quantity": "3", "discount": ""})
    # 900.00 x 3, no discount: 2700.00.
    assert Decimal(crm.deal(deal_id)["amount"] or "") == Decimal("2700")
    web = next(p["hs_object_id"] for p in crm.objects("products") if p["hs_sku"] == "WEB-DESIGN")
    client.post(f"/hubspot/deals/{deal_id}/line-items", data={"product_id": web, "quantity": "1",
                                                              "discount": "12.5"})
    # + 2400.00 less 12.5% = 2100.00: 4800.00.
    assert Decimal(crm.deal(deal_id)["amount"] or "") == Decimal("4800")
    client.post(f"/hubspot/deals/{deal_id}/edit", data={"dealname": "Ærø retainer"})
    assert crm.deal(deal_id)["dealname"] == "Ærø retainer"
    client.post(f"/hubspot/companies/{company_id}/edit", data={"name": "Zürich <AG>"})
    assert crm.object_properties("companies", company_id)["name"] == "Zürich <AG>"


def test_bad_hubspot_input_is_said_and_changes_nothing(client, sandbox) -> None:
    crm = sandbox.hubspot.crm
    deal_id = next(d.deal_id for d in sandbox.deals if d.crm == "hubspot")
    [line, *_] = crm.associated_ids("deals", deal_id, "line_items")
    before = crm.deal(deal_id)["amount"]
    for data in ({"quantity": "two"}, {"quantity": "0"}, {"quantity": "1", "discount": "150"}):
        answer = client.post(f"/hubspot/deals/{deal_id}/line-items/{line}", data=data,
                             follow_redirects=True)
        assert answer.status_code == 200 and 'role="alert"' in answer.get_data(as_text=True)
    assert crm.deal(deal_id)["amount"] == before
    answer = client.post("/hubspot/deals", data={"dealname": "  "}, follow_redirects=True)
    assert "Enter a deal name." in answer.get_data(as_text=True)
    answer = client.post("/hubspot/products", data={"name": "Thing", "price": "12,34"},
                         follow_redirects=True)
    assert "must be a number like 1,000.00" in answer.get_data(as_text=True)


def test_a_pipedrive_deal_organization_and_product_are_created_and_edited(client, sandbox) -> None:
    api = sandbox.pipedrive.api
    product = client.post("/pipedrive/products", data={"name": "Ünïcode <support>",
                                                       "sku": "SUP-1", "price": "1,250.00"})
    assert product.status_code == 302
    [made] = [p for p in api.company().products.values() if p.code == "SUP-1"]
    assert made.name == "Ünïcode <support>" and made.prices[0].price == Decimal("1250.00")

    org = client.post("/pipedrive/organizations", data={"name": NAMES})
    org_id = int(org.headers["Location"].split("/organizations/")[1].split("?")[0])
    assert api.org(org_id).name == NAMES
    answer = client.post("/pipedrive/deals", data={
        "title": NAMES, "org_id": str(org_id), "product_id": str(made.id), "quantity": "2",
        "discount": "20"})
    deal_id = int(answer.headers["Location"].split("/deals/")[1].split("?")[0])
    # 1250.00 x 2 = 2500.00, less 20% = 2000.00.
    assert api.deal(deal_id).value == Decimal("2000.00")
    [line] = api.deal(deal_id).products
    client.post(f"/pipedrive/deals/{deal_id}/products/{line.id}", data={"quantity": "1",
                                                                         "discount": "0"})
    assert api.deal(deal_id).value == Decimal("1250.00")
    client.post(f"/pipedrive/deals/{deal_id}/products", data={"product_id": str(made.id),
                                                              "quantity": "0.5"})
    assert api.deal(deal_id).value == Decimal("1875.00")  # + 1250.00 x 0.5 = 625.00
    page = client.get(f"/pipedrive/deals/{deal_id}").get_data(as_text=True)
    assert escape(NAMES) in page and NAMES not in page
    client.post(f"/pipedrive/organizations/{org_id}/edit", data={"name": "Ørsted & Søn"})
    assert api.org(org_id).name == "Ørsted & Søn"
    client.post(f"/pipedrive/deals/{deal_id}/edit", data={"title": "Ørsted retainer"})
    assert api.deal(deal_id).title == "Ørsted retainer"


def test_pipedrive_product_changes_fire_a_change_deal_webhook(client, sandbox) -> None:
    """Pipedrive's deal value follows its products; the change is announced like any edit in
    the UI (change_source "app"), so Paydeck hears of it."""
    fake = sandbox.pipedrive
    hook = fake.api.webhooks.subscribe(fake.company_id, fake.user_id, fake.client_id,
                                       {"subscription_url": "http://127.0.0.1:9/hook",
                                        "event_action": "change", "event_object": "deal",
                                        "version": "2.0"})
    deal_id = int(next(d.deal_id for d in sandbox.deals if d.crm == "pipedrive"))
    [line, *_] = fake.api.deal(deal_id).products
    client.post(f"/pipedrive/deals/{deal_id}/products/{line.id}", data={"quantity": "3"})
    [(hook_id, _, _)] = fake.api.webhooks.pending
    assert hook_id == hook.id
