"""Every list Paydeck reads is followed to its last page, against fakes that page exactly as
the vendors document: a deal is never invoiced with lines missing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

import crm_adapters.pipedrive as pipedrive_adapter
from app.engine.intake import request_invoice
from app.extensions import db
from app.queueing import QUEUE
from app.models import Installation, InstallationSettings, StageAction
from app.redis_conn import get_redis
from app.worker import PaydeckSimpleWorker
from app.wiring import adapter_for
from crm_adapters.base import PagingLoop, follow_pages
from tests.conftest import fake_settings


def work(app) -> None:
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def installation() -> Installation:
    return db.session.scalars(select(Installation)).one()


@pytest.fixture
def pipedrive_env(app_factory, fake_pipedrive, fake_xero, browser):
    """Installed into the fake Pipedrive (deal fields made), connected to a fake Xero."""
    pipedrive, _ = fake_pipedrive
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive, xero=fake_xero))
    assert browser.get(f"{url}/install/pipedrive").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    work(app)  # the install's setup job
    with app.app_context():
        settings = db.session.get(InstallationSettings, installation().id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.commit()
    return app, pipedrive, xero.accounting(tenant)


# ----- the paginator ------------------------------------------------------------------------

def test_follow_pages_reads_to_the_last_page():
    pages = {None: ([1, 2], "a"), "a": ([3], "b"), "b": ([4], None)}

    assert follow_pages(lambda token: pages[token], "things") == [1, 2, 3, 4]


def test_follow_pages_refuses_a_repeated_token_instead_of_looping():
    pages = {None: ([1], "a"), "a": ([2], "b"), "b": ([3], "a")}

    with pytest.raises(PagingLoop, match="repeated page token 'a'"):
        follow_pages(lambda token: pages[token], "things")


# ----- Pipedrive: cursor pages of at most 500 -------------------------------------------------

@pytest.mark.parametrize("lines", [501, 1001])
def test_a_pipedrive_deal_with_more_than_500_products_is_invoiced_with_every_line(
        pipedrive_env, lines):
    app, pipedrive, books = pipedrive_env
    org = pipedrive.api.add_org("Initech Pty Ltd")
    person = pipedrive.api.add_person("Pat Buyer", email="ap@initech.example", org_id=org)
    product = pipedrive.api.add_product("Hours", code="HRS", price=Decimal("1.00"))
    # Line n costs n dollars, quantity 1, so each line is told apart by its amount.
    deal_id = pipedrive.api.add_deal("Big job", org_id=org, person_id=person, products=[
        {"product_id": product, "quantity": 1, "item_price": Decimal(n)}
        for n in range(1, lines + 1)])
    pipedrive.api.clear_calls()

    with app.app_context():
        request_invoice(installation().id, str(deal_id), StageAction.AUTHORISE, "test")
    work(app)

    (invoice,) = books.invoices
    assert sorted(l.unit_amount for l in invoice.line_items) == [Decimal(n) for n in range(1, lines + 1)]
    # Worked by hand: 1 + 2 + ... + N = N(N+1)/2 (501 -> 125,751.00; 1001 -> 501,501.00).
    assert invoice.sub_total == Decimal(lines * (lines + 1) // 2)
    product_pages = [c for c in pipedrive.api.calls if c.path == "/api/v2/deals/products"]
    assert len(product_pages) == -(-lines // 500)  # ceil(N / 500): 2 pages, then 3
    assert all("limit=500" in c.query for c in product_pages)
    assert all("cursor=" in c.query for c in product_pages[1:])


def test_pipedrive_stages_past_the_first_page_are_listed(pipedrive_env, monkeypatch):
    app, pipedrive, _ = pipedrive_env
    for n in range(120):  # more than the v2 default page of 100
        pipedrive.api.add_stage(f"Step {n}")
    monkeypatch.setattr(pipedrive_adapter, "PAGE_LIMIT", 50)  # page cheaply: the fake pages by limit
    pipedrive.api.clear_calls()

    with app.app_context():
        (pipeline,) = adapter_for("pipedrive").list_pipelines(installation())

    assert len(pipeline["stages"]) == 5 + 120  # the default pipeline's five, then ours
    assert pipeline["stages"][-1]["label"] == "Step 119"
    assert len([c for c in pipedrive.api.calls if c.path == "/api/v2/stages"]) == 3


def test_pipedrive_deal_fields_on_a_later_page_are_found_not_made_twice(pipedrive_env):
    app, pipedrive, _ = pipedrive_env
    with app.app_context():
        codes = dict(installation().crm_fields)
    for n in range(501):
        pipedrive.api.add_deal_field(f"Other field {n}")
    fields = pipedrive.api.company().deal_fields
    for code in codes.values():  # Paydeck's own fields now come after the first 500
        fields[code] = fields.pop(code)
    before = len(fields)

    with app.app_context():
        again = adapter_for("pipedrive").ensure_deal_fields(installation())

    assert again == codes and len(pipedrive.api.company().deal_fields) == before


# ----- HubSpot: paging.next.after -------------------------------------------------------------

@pytest.fixture
def hubspot_env(xero_connected, fake_hubspot):
    app, _, _ = xero_connected
    return app, fake_hubspot[0]


def test_hubspot_association_pages_are_followed_per_deal(hubspot_env):
    app, hub = hubspot_env
    product = hub.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    company = hub.crm.add_company(name="Initech Pty Ltd")
    big = hub.crm.add_deal(dealname="Big", company_id=company, line_items=[
        {"hs_product_id": product, "price": str(n)} for n in range(1, 8)])
    small = hub.crm.add_deal(dealname="Small", company_id=company, line_items=[
        {"hs_product_id": product, "price": "9"}])
    hub.crm_api.association_page_size = 3  # the fake pages each input by this many
    hub.clear_crm_calls()

    with app.app_context():
        deals = adapter_for("hubspot").fetch_deals(installation(), [big, small])

    assert sorted(l.unit_price for l in deals[big].lines) == [Decimal(n) for n in range(1, 8)]
    assert [l.unit_price for l in deals[small].lines] == [Decimal(9)]
    line_reads = [c for c in hub.crm_calls if c.path.endswith("/deals/line_items/batch/read")]
    # 7 lines at 3 a page: the big deal is asked three times, with its `after` the last two.
    assert [len(c.json()["inputs"]) for c in line_reads] == [2, 1, 1]
    assert [i.get("after") for i in line_reads[2].json()["inputs"]] == ["6"]


def test_a_hubspot_association_page_token_repeated_is_refused(hubspot_env, monkeypatch):
    app, hub = hubspot_env
    deal = hub.crm.add_deal(dealname="Loop", line_items=[{"name": "A", "price": "1"},
                                                          {"name": "B", "price": "2"}])
    hub.crm_api.association_page_size = 1
    original = hub.crm_api._association_page

    def stuck(from_id, targets, item):  # a broken server: always the same next token
        page = original(from_id, targets, {**item, "after": None})
        return {**page, "paging": {"next": {"after": "1"}}}

    monkeypatch.setattr(hub.crm_api, "_association_page", stuck)

    with app.app_context(), pytest.raises(PagingLoop, match="repeated page token '1'"):
        adapter_for("hubspot").fetch_deals(installation(), [deal])


def test_hubspot_products_past_the_first_page_of_100_are_listed(hubspot_env):
    app, hub = hubspot_env
    for n in range(101):
        hub.crm.add_product(name=f"Product {n:03d}", hs_sku=f"SKU-{n}")
    hub.clear_crm_calls()

    with app.app_context():
        products = adapter_for("hubspot").list_products(installation())

    assert sorted(p["name"] for p in products) == [f"Product {n:03d}" for n in range(101)]
    pages = [c for c in hub.crm_calls if c.path == "/crm/v3/objects/products"]
    assert len(pages) == 2 and all("archived=false" in c.query for c in pages)


def test_a_pipedrive_line_served_on_two_pages_is_invoiced_once(pipedrive_env, monkeypatch):
    """A server whose next page starts one line early (an offset shifted under us) must not
    make Paydeck invoice that line twice: lines are keyed by their own id."""
    import sandbox.pipedrive.parse as fake_api

    app, pipedrive, books = pipedrive_env
    served = fake_api.page

    def overlapping(request, items):
        chunk, extra = served(request, items)
        if request.args.get("cursor"):  # every later page repeats the line before it
            start = fake_api.decode_cursor(request.args["cursor"])
            chunk = [items[start - 1], *chunk]
        return chunk, extra

    monkeypatch.setattr(fake_api, "page", overlapping)
    org = pipedrive.api.add_org("Initech Pty Ltd")
    product = pipedrive.api.add_product("Hours", code="HRS", price=Decimal("1.00"))
    deal_id = pipedrive.api.add_deal("Big job", org_id=org, products=[
        {"product_id": product, "quantity": 1, "item_price": Decimal(n)} for n in range(1, 502)])

    with app.app_context():
        deal = adapter_for("pipedrive").fetch_deals(installation(), [str(deal_id)])[str(deal_id)]

    assert sorted(l.unit_price for l in deal.lines) == [Decimal(n) for n in range(1, 502)]
