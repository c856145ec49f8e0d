"""Every mapping rule of the invoice builder, with plain values (no I/O)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.deals import Deal, LineItem
from xero.build import InvoiceDraft, InvoiceRules, ProductRule, build_invoice, due_date
from xero.reference import Account, Item, PaymentTerms, ReferenceData, TaxRate

REF = ReferenceData(
    base_currency="AUD",
    currencies=frozenset({"AUD", "USD"}),
    accounts={"200": Account("200", "Sales", "REVENUE"), "260": Account("260", "Other", "REVENUE"),
              "299": Account("299", "Old", "REVENUE", status="ARCHIVED")},
    tax_rates={"OUTPUT": TaxRate("OUTPUT", "GST on Income", Decimal("10")),
               "EXEMPTOUTPUT": TaxRate("EXEMPTOUTPUT", "GST Free Income", Decimal("0")),
               "INPUT": TaxRate("INPUT", "GST on Expenses", Decimal("10"), can_apply_to_revenue=False)},
    items={"CONSULT": Item("CONSULT", "Consulting", sales_account_code="260", sales_tax_type="EXEMPTOUTPUT")},
    sales_terms=PaymentTerms("DAYSAFTERBILLDATE", 14),
    organisation_name="Acme Pty Ltd",
)
RULES = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT")
TODAY = date(2026, 11, 21)


def line(**kw) -> LineItem:
    return LineItem(**{"name": "Widget", "quantity": Decimal("2"), "unit_price": Decimal("50.00"), **kw})


def build(deal: Deal, rules: InvoiceRules = RULES, status: str = "AUTHORISED"):
    return build_invoice(deal, rules, REF, contact_id="c-1", status=status, today=TODAY,
                         reference=f"HubSpot deal {deal.id}")


def test_lines_carry_quantity_price_discount_and_defaults():
    result = build(Deal("d1", "Website", lines=(line(discount_percent=Decimal("10"), description="Blue"),)))

    assert isinstance(result, InvoiceDraft)
    (only,) = result.lines
    assert (only.description, only.quantity, only.unit_amount) == ("Blue", Decimal("2"), Decimal("50.00"))
    assert only.discount_rate == Decimal("10")
    assert (only.account_code, only.tax_type) == ("200", "OUTPUT")
    assert result.currency == "AUD" and result.status == "AUTHORISED"
    assert result.reference == "HubSpot deal d1" and result.contact_id == "c-1"
    assert result.due_date == date(2026, 12, 5)  # the organisation's 14 days


def test_product_mapping_wins_over_defaults():
    rules = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT",
                         products={"p1": ProductRule(account_code="260", tax_type="EXEMPTOUTPUT")})
    result = build(Deal("d1", "x", lines=(line(product_id="p1"),)), rules)

    assert (result.lines[0].account_code, result.lines[0].tax_type) == ("260", "EXEMPTOUTPUT")


def test_mapped_xero_item_brings_its_code_account_and_tax():
    rules = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT",
                         products={"p1": ProductRule(xero_item_code="CONSULT")})
    result = build(Deal("d1", "x", lines=(line(product_id="p1"),)), rules)

    assert result.lines[0].item_code == "CONSULT"
    assert (result.lines[0].account_code, result.lines[0].tax_type) == ("260", "EXEMPTOUTPUT")


def test_crm_tax_label_goes_through_the_tax_mapping():
    rules = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT",
                         taxes={"gst free": "EXEMPTOUTPUT"})
    result = build(Deal("d1", "x", lines=(line(tax_label="GST Free"),)), rules)

    assert result.lines[0].tax_type == "EXEMPTOUTPUT"


@pytest.mark.parametrize(("deal", "rules", "reason", "fragment"), [
    (Deal("d", "x", lines=(line(tax_label="VAT 20%"),)), RULES, "unknown_tax", "VAT 20%"),
    (Deal("d", "x", lines=(line(),)), InvoiceRules(default_account_code="200"), "unknown_tax", "no tax rate"),
    (Deal("d", "x", lines=(line(),)), InvoiceRules(default_account_code="200", default_tax_type="INPUT"),
     "unknown_tax", "INPUT"),
    (Deal("d", "x", lines=(line(),)), InvoiceRules(default_tax_type="OUTPUT"), "unmapped_product", "no account code"),
    (Deal("d", "x", lines=(line(),)), InvoiceRules(default_account_code="299", default_tax_type="OUTPUT"),
     "unmapped_product", "299"),
    (Deal("d", "x", lines=(line(product_id="p9"),)),
     InvoiceRules(default_account_code="200", default_tax_type="OUTPUT",
                  products={"p9": ProductRule(xero_item_code="NOPE")}), "unmapped_product", "NOPE"),
    (Deal("d", "x", currency="NZD", lines=(line(),)), RULES, "currency_not_enabled", "NZD"),
    (Deal("d", "x", amount=Decimal("100")), RULES, "no_line_items", "turned off"),
])
def test_what_cannot_be_mapped_is_a_problem_with_a_reason(deal, rules, reason, fragment):
    result = build(deal, rules)

    assert isinstance(result, list)
    assert [p.reason for p in result] == [reason]
    assert fragment in result[0].detail


def test_every_problem_is_reported_at_once():
    deal = Deal("d", "x", currency="NZD", lines=(line(tax_label="VAT"), line(product_id="p", name="Gadget")))
    result = build(deal, InvoiceRules(default_tax_type="OUTPUT"))

    assert sorted(p.reason for p in result) == [
        "currency_not_enabled", "unknown_tax", "unmapped_product", "unmapped_product"]


def test_single_line_from_the_deal_amount_only_when_allowed():
    rules = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT",
                         allow_single_line_from_amount=True)
    result = build(Deal("d1", "Retainer", amount=Decimal("1500.00")), rules)

    assert [(l.description, l.quantity, l.unit_amount) for l in result.lines] == [
        ("Retainer", Decimal(1), Decimal("1500.00"))]
    assert isinstance(build(Deal("d1", "Retainer", amount=Decimal("0")), rules), list)


def test_no_tax_invoices_carry_no_tax_type():
    rules = InvoiceRules(default_account_code="200", line_amount_type="NoTax")
    result = build(Deal("d1", "x", lines=(line(),)), rules)

    assert result.line_amount_type == "NoTax" and result.lines[0].tax_type is None


def test_inclusive_line_amounts_pass_through():
    rules = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT", line_amount_type="Inclusive")
    assert build(Deal("d1", "x", lines=(line(),)), rules).line_amount_type == "Inclusive"


def test_foreign_currency_when_enabled():
    assert build(Deal("d1", "x", currency="usd", lines=(line(),))).currency == "USD"


@pytest.mark.parametrize(("invoice_date", "terms", "expected"), [
    (date(2026, 11, 21), PaymentTerms("DAYSAFTERBILLDATE", 30), date(2026, 12, 21)),
    (date(2026, 11, 21), PaymentTerms("DAYSAFTERBILLMONTH", 7), date(2026, 12, 7)),
    (date(2026, 11, 21), PaymentTerms("OFFOLLOWINGMONTH", 20), date(2026, 12, 20)),
    (date(2026, 12, 5), PaymentTerms("OFFOLLOWINGMONTH", 31), date(2027, 1, 31)),
    (date(2027, 1, 5), PaymentTerms("OFFOLLOWINGMONTH", 31), date(2027, 2, 28)),
    (date(2026, 11, 5), PaymentTerms("OFCURRENTMONTH", 20), date(2026, 11, 20)),
    (date(2026, 11, 25), PaymentTerms("OFCURRENTMONTH", 20), date(2026, 11, 25)),
])
def test_due_dates_follow_xero_payment_term_types(invoice_date, terms, expected):
    assert due_date(invoice_date, terms) == expected


def test_admin_payment_terms_override_the_organisation():
    rules = InvoiceRules(default_account_code="200", default_tax_type="OUTPUT",
                         payment_terms={"type": "OFFOLLOWINGMONTH", "days": 15})
    assert build(Deal("d1", "x", lines=(line(),)), rules).due_date == date(2026, 12, 15)


def test_reference_data_round_trips_through_json():
    assert ReferenceData.from_json(REF.to_json()) == REF
