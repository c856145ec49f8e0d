"""Issue #11 "The amounts": the builder's and the adapters' line arithmetic with plain values.
The end-to-end figures are in tests/test_golden_amounts.py; these pin the rules one by one."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.deals import Deal, LineItem
from crm_adapters.hubspot import _line as hubspot_line
from crm_adapters.pipedrive import _line as pipedrive_line
from xero.build import InvoiceDraft, InvoiceRules, build_invoice, line_amount
from xero.client import NewContact, contact_too_long
from xero.reference import Account, ReferenceData, TaxRate

D = Decimal
REF = ReferenceData(
    base_currency="AUD", currencies=frozenset({"AUD"}),
    accounts={"200": Account("200", "Sales", "REVENUE")},
    tax_rates={"OUTPUT": TaxRate("OUTPUT", "GST on Income", D(10)),
               "EXEMPTOUTPUT": TaxRate("EXEMPTOUTPUT", "GST Free Income", D(0)),
               "EXEMPTEXPORT": TaxRate("EXEMPTEXPORT", "GST Free Exports", D(0)),
               "INPUT": TaxRate("INPUT", "GST on Expenses", D(10), can_apply_to_revenue=False)})
RULES = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT")


def build(*lines: LineItem, amount: Decimal | None = None, rules: InvoiceRules = RULES,
          includes_tax: bool | None = False):
    deal = Deal("d", "x", amount=amount, lines=lines, amount_includes_tax=includes_tax)
    return build_invoice(deal, rules, REF, contact_id="c", status="DRAFT", today=date(2026, 12, 1),
                         reference="r")


def item(quantity: str = "1", price: str = "100.00", **kw) -> LineItem:
    return LineItem(name=kw.pop("name", "Widget"), quantity=D(quantity), unit_price=D(price), **kw)


def reasons(result) -> list[tuple[str, str]]:
    assert isinstance(result, list), result
    return [(p.reason, p.detail) for p in result]


# --- Xero's arithmetic (tests/specs/xero/xero_accounting.yaml LineItem.LineAmount) --------------

@pytest.mark.parametrize("q, u, rate, off, expected", [
    ("3", "100", None, "30", "270.00"),         # 300 - 30
    ("10", "234.56", "20", None, "1876.48"),    # 2,345.60 x 80/100
    ("10000", "0.0125", None, None, "125.00"),
    ("3", "33.335", "10", None, "90.00"),       # 100.005 x 0.9 = 90.0045 -> 90.00
    ("0", "99", None, None, "0.00"),
])
def test_line_amount_is_xeros_formula(q, u, rate, off, expected):
    assert line_amount(D(q), D(u), rate and D(rate), off and D(off)) == D(expected)


# --- HubSpot lines ----------------------------------------------------------------------------

def test_hubspot_discount_is_per_unit_and_goes_to_xero_for_the_whole_line():
    # 3 x 100 with 10 off each: HubSpot 270 (platform-facts; knowledge.hubspot.com line item props)
    parsed = hubspot_line({"quantity": "3", "price": "100", "discount": "10", "amount": "270"})
    assert (parsed.discount_amount, parsed.discount_percent, parsed.problem) == (D(30), None, "")
    draft = build(parsed, amount=D(270))
    assert isinstance(draft, InvoiceDraft) and draft.lines[0].line_amount == D("270.00")


@pytest.mark.parametrize("amount, expected", [
    ("270", (D(30), None)),      # HubSpot applied the unit discount
    ("150", (None, D(50))),      # HubSpot applied the percentage
])
def test_hubspot_both_discounts_follow_the_one_hubspot_applied(amount, expected):
    parsed = hubspot_line({"quantity": "3", "price": "100", "discount": "10",
                           "hs_discount_percentage": "50", "amount": amount})
    assert (parsed.discount_amount, parsed.discount_percent) == expected and not parsed.problem


@pytest.mark.parametrize("amount", [None, "200"])
def test_hubspot_both_discounts_with_no_telling_amount_are_a_review_item(amount):
    parsed = hubspot_line({"quantity": "3", "price": "100", "discount": "10",
                           "hs_discount_percentage": "50", "amount": amount})
    assert "both a unit discount" in parsed.problem
    assert reasons(build(parsed))[0][0] == "line_amounts"


def test_hubspot_quantity_zero_stays_zero_and_missing_quantity_is_a_review_item():
    assert hubspot_line({"quantity": "0", "price": "99"}).quantity == D(0)
    missing = hubspot_line({"price": "99"})
    assert reasons(build(missing)) == [("line_amounts", "a line: HubSpot has no quantity on the line")]


def test_a_line_total_xero_would_book_differently_from_the_crm_is_a_review_item():
    result = build(item("3", "100.00", discount_amount=D(10), crm_total=D(270)))
    assert reasons(result)[0][0] == "amount_mismatch" and "290.00" in reasons(result)[0][1]


def test_a_price_with_more_decimals_than_xero_keeps_is_a_review_item_when_it_matters():
    # 1,000 x 0.12345 = 123.45; Xero keeps 0.1235 (4 dp) -> 123.50: not what the CRM says.
    assert "more decimals" in reasons(build(item("1000", "0.12345")))[0][1]
    # 1 x 0.12345 books 0.12 either way: sent as 0.1235.
    draft = build(item("1", "0.12345"))
    assert isinstance(draft, InvoiceDraft) and draft.lines[0].unit_amount == D("0.1235")


def test_a_quantity_with_more_decimals_than_xero_keeps_is_a_review_item_when_it_matters():
    """Found in review. Xero keeps Quantity to 4 dp (Invoices doc, LineItems). 0.33333 x 300:
    the CRM's 99.999 -> 100.00; Xero keeps 0.3333 -> 0.3333 x 300 = 99.99. Not the same."""
    (problem,) = reasons(build(item("0.33333", "300.00")))
    assert problem[0] == "line_amounts" and "quantity 0.33333" in problem[1] and "99.99" in problem[1]
    # 1.00001 x 10: 10.0001 -> 10.00 either way; sent as 1.0000 (4 dp).
    draft = build(item("1.00001", "10.00"))
    assert isinstance(draft, InvoiceDraft) and draft.lines[0].quantity == D("1.0000")


# --- Pipedrive lines ---------------------------------------------------------------------------

def pd(**kw) -> dict:
    return {"quantity": 3, "item_price": 100, "discount": 0, "discount_type": "percentage",
            "tax": 10, "tax_method": "exclusive", **kw}


@pytest.mark.parametrize("line_sum, expected", [
    (297, D(30)),        # (300 - 30) x 1.1: the 30 is for the line
    (270, D(30)),        # the same without the tax in `sum`
    (231, D(90)),        # (300 - 3 x 30) x 1.1: the 30 is per unit
])
def test_pipedrive_amount_discount_is_read_the_way_its_sum_shows(line_sum, expected):
    parsed = pipedrive_line(pd(discount=30, discount_type="amount", sum=line_sum), {})
    assert (parsed.discount_amount, parsed.problem) == (expected, "")


def test_pipedrive_amount_discount_whose_sum_fits_no_reading_is_a_review_item():
    parsed = pipedrive_line(pd(discount=30, discount_type="amount", sum=123), {})
    assert parsed.discount_amount is None and "fits neither" in parsed.problem


def test_pipedrive_tax_percentage_maps_to_the_one_rate_with_it():
    draft = build(pipedrive_line(pd(), {}))
    assert isinstance(draft, InvoiceDraft)
    assert (draft.line_amount_type, draft.lines[0].tax_type) == ("Exclusive", "OUTPUT")


def test_pipedrive_zero_rate_among_several_is_resolved_by_the_admins_mapping():
    lines = (pipedrive_line(pd(), {}), pipedrive_line(pd(tax=0, tax_method="none"), {}))
    assert "several Xero tax rates (EXEMPTEXPORT, EXEMPTOUTPUT)" in reasons(build(*lines))[0][1]
    mapped = build(*lines, rules=InvoiceRules(default_account_code="200",
                                              taxes={"0%": "EXEMPTOUTPUT"}))
    assert isinstance(mapped, InvoiceDraft)
    assert [l.tax_type for l in mapped.lines] == ["OUTPUT", "EXEMPTOUTPUT"]


def test_a_mapping_to_a_rate_of_another_percentage_is_a_review_item():
    rules = InvoiceRules(default_account_code="200", taxes={"10%": "EXEMPTOUTPUT"})
    detail = reasons(build(pipedrive_line(pd(), {}), rules=rules))[0][1]
    assert "charges 10%" in detail and "EXEMPTOUTPUT" in detail


def test_pipedrive_tax_methods_set_the_invoice_amount_type():
    def kind(*methods: str) -> str:
        result = build(*(pipedrive_line(pd(tax_method=m), {}) for m in methods),
                       rules=InvoiceRules(default_account_code="200",
                                          taxes={"0%": "EXEMPTOUTPUT"}))
        return result.line_amount_type if isinstance(result, InvoiceDraft) else reasons(result)[0][0]
    assert kind("inclusive") == "Inclusive" and kind("none", "none") == "NoTax"
    assert kind("exclusive", "none") == "Exclusive" and kind("inclusive", "none") == "Inclusive"
    assert kind("inclusive", "exclusive") == "mixed_tax_methods"


# --- deal amount against the lines ------------------------------------------------------------

def test_deal_amount_against_the_lines_uses_the_admins_tolerance():
    lines = (item("1", "10000.00"),)
    assert reasons(build(*lines, amount=D(9000)))[0][0] == "amount_mismatch"
    loose = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT",
                         amount_tolerance=D(1000))
    assert isinstance(build(*lines, amount=D(9000), rules=loose), InvoiceDraft)
    assert isinstance(build(*lines, amount=None), InvoiceDraft)  # no amount: nothing to compare


def test_a_deal_amount_that_may_include_exclusive_tax_accepts_either_figure():
    lines = (item("1", "100.00"),)
    for amount in (D(100), D(110)):
        assert isinstance(build(*lines, amount=amount, includes_tax=None), InvoiceDraft)
    assert reasons(build(*lines, amount=D(110)))[0][0] == "amount_mismatch"  # HubSpot: net only


# --- Xero's text limits -------------------------------------------------------------------------

def test_text_limits_name_the_field():
    assert reasons(build(item(description="d" * 4001)))[0][0] == "text_too_long"
    assert isinstance(build(item(description="d" * 4000)), InvoiceDraft)
    assert contact_too_long(NewContact(name="n" * 255, tax_number="1" * 50, phone="2" * 50)) == []
    assert contact_too_long(NewContact(name="n" * 256, tax_number="1" * 51, phone="2" * 51)) == [
        "the contact's Name is 256 characters; Xero allows 255",
        "the contact's TaxNumber is 51 characters; Xero allows 50",
        "the contact's PhoneNumber is 51 characters; Xero allows 50"]


def test_reference_data_keeps_the_display_rate_through_the_cache():
    ref = ReferenceData("AUD", frozenset({"AUD"}), tax_rates={
        "CMP": TaxRate("CMP", "Compound", D("14.975"), display_rate=D("9.975"))})
    assert ReferenceData.from_json(ref.to_json()).tax_rates["CMP"] == ref.tax_rates["CMP"]
