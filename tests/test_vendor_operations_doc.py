"""docs/vendor-operations.md is the list of every vendor operation Paydeck calls: each row
names a test that exists, and every call the fakes log while Paydeck runs its flows is a row
(and every API row is called by those flows, so the table holds no stale operation)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from app.engine.intake import request_invoice
from app.extensions import db
from app.models import InstallationSettings, StageAction, XeroConnection
from app.connections import xero_client
from app.wiring import adapter_for
from tests.test_vendor_paging import hubspot_env, installation, pipedrive_env, work  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "vendor-operations.md"
OPERATION = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
# The API logs each fake keeps, and the paths they cover (OAuth and identity rows are
# checked by their named tests only).
LOGGED = {"Pipedrive": ("/api/v2/", "/api/v1/webhooks"), "HubSpot": ("/crm/",),
          "Xero": ("/api.xro/2.0/",)}


@dataclass(frozen=True)
class Row:
    vendor: str
    method: str
    template: str
    test_file: str
    test_name: str

    def matches(self, vendor: str, method: str, path: str) -> bool:
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(self.template))
        flags = re.IGNORECASE if vendor == "Xero" else 0  # Xero's paths ignore case
        return (vendor == self.vendor and method == self.method
                and re.fullmatch(pattern, path, flags) is not None)

    @property
    def logged(self) -> bool:
        return self.template.startswith(LOGGED.get(self.vendor, ()))


def rows() -> list[Row]:
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not OPERATION.search(cells[1]):
            continue
        (method, template), = OPERATION.findall(cells[1])
        (test_file, test_name), = TEST.findall(cells[6])
        found.append(Row(cells[0], method, template, test_file, test_name))
    return found


def test_the_table_has_a_row_per_operation_and_each_names_a_test_that_exists():
    table = rows()
    assert len(table) >= 40
    assert len({(r.vendor, r.method, r.template) for r in table}) == len(table), "a row twice"
    for row in table:
        source = ROOT / row.test_file
        assert source.is_file(), row
        functions = {n.name for n in ast.parse(source.read_text(encoding="utf-8")).body
                     if isinstance(n, ast.FunctionDef)}
        assert row.test_name in functions, row


def _unlisted(table: list[Row], vendor: str, calls: list[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(m, p) for m, p in calls if not any(r.matches(vendor, m, p) for r in table)}


def _unused(table: list[Row], vendor: str, calls: list[tuple[str, str]]) -> set[str]:
    return {f"{r.method} {r.template}" for r in table if r.vendor == vendor and r.logged
            and not any(r.matches(vendor, m, p) for m, p in calls)}


def test_every_call_of_paydecks_pipedrive_flows_is_in_the_table(pipedrive_env, fake_xero):  # noqa: F811
    app, pipedrive, books = pipedrive_env
    org = pipedrive.api.add_org("Initech Pty Ltd")
    person = pipedrive.api.add_person("Pat Buyer", email="ap@initech.example", org_id=org)
    product = pipedrive.api.add_product("Consulting", code="CONS-1", price=Decimal("150.00"))
    deal_id = pipedrive.api.add_deal("Website", org_id=org, person_id=person, products=[
        {"product_id": product, "quantity": 2, "item_price": Decimal("150.00")}])
    with app.app_context():
        crm, row = adapter_for("pipedrive"), installation()
        crm.list_pipelines(row)
        crm.list_products(row)
        crm.ensure_deal_fields(row)
        crm.register_webhooks(row, "https://paydeck.example/webhooks/pipedrive/x")
        crm.notify_owner(row, str(deal_id), None, "Check", "Body")
        crm.update_company(row, str(org), {"city": "Sydney"})
        crm.fetch_company(row, str(org))
        crm.fetch_persons(row, [str(person)])  # two-way contact sync of persons
        crm.update_persons(row, {str(person): {"email": "pat@initech.example"}})
        since = datetime.now(timezone.utc) - timedelta(days=1)
        list(crm.companies_changed_since(row, since))  # the contact sync safety net
        list(crm.persons_changed_since(row, since))
        crm.company_page(row, None)  # the initial contact match
        crm.create_companies(row, [{"name": "Hooli"}])
        crm.companies_named(row, ["Hooli"])
        request_invoice(row.id, str(deal_id), StageAction.AUTHORISE, "test")
    work(app)  # fetch the deal, make the contact and the invoice, write back

    table = rows()
    crm_calls = [(c.method, c.path) for c in pipedrive.api.calls]
    assert len(books.invoices) == 1
    assert _unlisted(table, "Pipedrive", crm_calls) == set()
    assert _unused(table, "Pipedrive", crm_calls) == set()
    assert _unlisted(table, "Xero", [(c.method, c.path) for c in fake_xero[0].api_calls]) == set()


def test_every_call_of_paydecks_hubspot_flows_is_in_the_table(hubspot_env, fake_xero):  # noqa: F811
    app, hub = hubspot_env
    xero, _ = fake_xero
    company = hub.crm.add_company(name="Initech Pty Ltd")
    contact = hub.crm.add_contact(company_id=company, firstname="Pat", email="ap@initech.example")
    product = hub.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    deal_id = hub.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                               line_items=[{"hs_product_id": product, "quantity": "2"}],
                               deal_currency_code="AUD")
    with app.app_context():
        crm, row = adapter_for("hubspot"), installation()
        settings = db.session.get(InstallationSettings, row.id) or InstallationSettings(
            installation_id=row.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.add(settings)
        db.session.commit()
        crm.ensure_deal_fields(row)
        crm.list_pipelines(row)
        crm.list_products(row)
        crm.notify_owner(row, deal_id, None, "Check", "Body")
        crm.update_company(row, company, {"city": "Sydney"})
        crm.fetch_company(row, company)
        request_invoice(row.id, deal_id, StageAction.DRAFT, "test")
    work(app)  # a draft (PUT /Invoices) ...
    with app.app_context():
        request_invoice(installation().id, deal_id, StageAction.AUTHORISE_AND_EMAIL, "test")
    work(app)  # ... then authorised (POST /Invoices) and emailed
    with app.app_context():
        connection = db.session.scalars(select(XeroConnection)).one()
        (invoice,) = xero.accounting(connection.tenant_id).invoices
        client = xero_client(connection)
        client.online_invoice_url(invoice.invoice_id)
        client.get_contact(invoice.contact_id)
        client.search_contacts("Initech")
        client.invoices_by_reference([invoice.reference])
        client.contact_groups()  # the settings page's group picker
        assert client.contact_group_members("00000000-0000-0000-0000-000000000000") is None
        since = datetime.now(timezone.utc) - timedelta(days=1)
        list(adapter_for("hubspot").companies_changed_since(installation(), since))  # the net
        list(adapter_for("hubspot").persons_changed_since(installation(), since))
        hubspot = adapter_for("hubspot")  # the initial contact match
        hubspot.company_page(installation(), None)
        hubspot.create_companies(installation(), [{"name": "Hooli"}])
        hubspot.companies_named(installation(), ["Hooli"])

    table = rows()
    assert invoice.status == "AUTHORISED" and xero.accounting(connection.tenant_id).emailed
    crm_calls = [(c.method, c.path) for c in hub.crm_calls]
    assert _unlisted(table, "HubSpot", crm_calls) == set()
    assert _unused(table, "HubSpot", crm_calls) == set()
    xero_calls = [(c.method, c.path) for c in xero.api_calls]
    assert _unlisted(table, "Xero", xero_calls) == set()
    assert _unused(table, "Xero", xero_calls) == set()
