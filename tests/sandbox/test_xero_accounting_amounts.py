"""The fake Xero computes like Xero: line arithmetic, tax rounding, field limits, regions.

Driven through xero-python on loopback like tests/sandbox/test_xero_accounting.py; plain
`requests` only where the SDK refuses to send the case (it copies the spec's maxLength
into its models). Every expected figure is worked by hand in the comment beside it, from
the rule cited in sandbox/xero/lines.py, sandbox/xero/limits.py or sandbox/xero/regions.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from xero_python.accounting.models import (
    Contact,
    Invoice,
    LineAmountTypes,
    LineItem,
)

from sandbox import FakeXero, LoopbackServer
from sandbox.kit.clock import Clock
from sandbox.xero.wire import ZERO_GUID

from .test_xero_accounting import DUE, Sandbox, create, invoice, sdk_api

D = Decimal


def make_sandbox(
    region: str = "AU", *, clock: Clock | None = None, **tenant: Any
) -> Iterator[Sandbox]:
    fake = FakeXero(clock=clock)
    tenant_id = fake.add_tenant(f"Paydeck Demo ({region})", region=region, **tenant)
    with LoopbackServer(fake) as server:
        token = fake.issue_token_for_tenant(tenant_id)
        yield Sandbox(fake, server.url, tenant_id, token, sdk_api(server.url, token))


def _region_fixture(region: str) -> Any:
    """A fixture named after the region (``au``...): a sandbox whose one tenant is there."""

    @pytest.fixture(name=region.lower())
    def fixture() -> Iterator[Sandbox]:
        yield from make_sandbox(region)

    return fixture


au, nz, uk, us = (_region_fixture(region) for region in ("AU", "NZ", "UK", "US"))


def customer(sb: Sandbox) -> str:
    """The tenant's one customer, created on first use."""
    found = [c for c in sb.books.contacts if c.name == "Acme Customer"]
    if found:
        return found[0].contact_id
    return sb.books.add_contact("Acme Customer", EmailAddress="ap@acme.test").contact_id


def li(
    unit: str | None = "100.00",
    qty: str | None = "1",
    *,
    tax: str | None = "OUTPUT",
    account: str | None = "200",
    **extra: Any,
) -> LineItem:
    """A LineItem; Decimal-valued extras (discount_rate="10") are converted."""
    money = {k: D(v) for k, v in extra.items() if k != "description"}
    return LineItem(
        description=extra.get("description", "Services"),
        quantity=D(qty) if qty is not None else None,
        unit_amount=D(unit) if unit is not None else None,
        account_code=account,
        tax_type=tax,
        **money,
    )


def one(sb: Sandbox, *lines: LineItem, **fields: Any) -> Invoice:
    return create(sb, invoice(customer(sb), *lines, **fields))[0]


def errors_of(sb: Sandbox, *lines: LineItem, **fields: Any) -> list[str]:
    """The element's validation messages, with summarizeErrors=false (200, element errors)."""
    before = len(sb.books.invoices)
    element = create(sb, invoice(customer(sb), *lines, **fields), summarize_errors=False)[0]
    assert element.has_errors and element.invoice_id == ZERO_GUID
    assert len(sb.books.invoices) == before  # nothing booked
    return [e.message for e in element.validation_errors]


def totals(inv: Invoice) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return inv.sub_total, inv.total_tax, inv.total, inv.total_discount or D(0)


# ======================================================================================
# Discounts
# ======================================================================================


def test_discount_amount_is_taken_off_the_line(au: Sandbox) -> None:
    # SPEC: LineAmount = (Quantity x UnitAmount) - DiscountAmount.
    # 3 x 33.33 = 99.99; less 10.00 = 89.99. GST 10 %: 8.999 -> 9.00.
    # Total 89.99 + 9.00 = 98.99; TotalDiscount 99.99 - 89.99 = 10.00.
    inv = one(au, li("33.33", "3", discount_amount="10.00"))
    line = inv.line_items[0]
    assert (line.line_amount, line.tax_amount) == (D("89.99"), D("9.00"))
    assert line.discount_amount == D("10.00") and line.discount_rate is None
    assert totals(inv) == (D("89.99"), D("9.00"), D("98.99"), D("10.00"))
    assert inv.is_discounted
    assert au.books.invoice(inv.invoice_id).total == D("98.99")


def test_discount_rate_wins_over_discount_amount(au: Sandbox) -> None:
    # Docs silent; observed: "DiscountRate will take precedence" (xeroizer#483).
    # 2 x 50.00 = 100.00 at 10 % off = 90.00 (the 30.00 amount would have made 70.00).
    # Read back: DiscountRate 10.00 and the derived DiscountAmount 100.00 - 90.00 = 10.00.
    inv = one(au, li("50.00", "2", discount_rate="10", discount_amount="30.00"))
    line = inv.line_items[0]
    assert line.line_amount == D("90.00")
    assert (line.discount_rate, line.discount_amount) == (D("10.00"), D("10.00"))
    assert totals(inv) == (D("90.00"), D("9.00"), D("99.00"), D("10.00"))


def test_discount_amount_may_not_exceed_the_line(au: Sandbox) -> None:
    # 1 x 20.00 = 20.00: a 20.01 discount is refused (XeroAPI/Xero-OpenAPI#429 wording).
    assert errors_of(au, li("20.00", discount_amount="20.01")) == [
        "The discount rate '20.01' is invalid. Discount must not be greater than the line total."
    ]
    # Exactly the line: LineAmount 0.00, no tax, TotalDiscount 20.00.
    inv = one(au, li("20.00", discount_amount="20.00"), li("5.00"))
    assert [x.line_amount for x in inv.line_items] == [D("0.00"), D("5.00")]
    assert totals(inv) == (D("5.00"), D("0.50"), D("5.50"), D("20.00"))


def test_zero_discount_amount_on_a_negative_line_is_refused(au: Sandbox) -> None:
    # XeroAPI/Xero-OpenAPI#429: DiscountAmount 0 with a negative UnitAmount is refused
    # (0 > -5.00), while DiscountRate 0 is fine.
    assert errors_of(au, li("100.00"), li("-5.00", discount_amount="0")) == [
        "The discount rate '0.00' is invalid. Discount must not be greater than the line total."
    ]
    inv = one(au, li("100.00"), li("-5.00", discount_rate="0"))
    # 100.00 - 5.00 = 95.00; GST 10.00 + (-0.50) = 9.50.
    assert totals(inv) == (D("95.00"), D("9.50"), D("104.50"), D("0.00"))


# ======================================================================================
# LineAmount, UnitAmount and unitdp
# ======================================================================================


def test_a_line_amount_that_disagrees_is_refused(au: Sandbox) -> None:
    # 3 x 33.33 = 99.99, so a LineAmount of 100.00 is wrong (XeroAPI/Xero-NetStandard#74).
    assert errors_of(au, li("33.33", "3", line_amount="100.00")) == [
        "The line total 100.00 does not match the expected line total 99.99"
    ]
    # 10 % off: 99.99 x 0.9 = 89.991 -> 89.99; 89.99 sent agrees and is booked.
    inv = one(au, li("33.33", "3", discount_rate="10", line_amount="89.99"))
    assert inv.line_items[0].line_amount == D("89.99")


def test_line_amount_fills_in_a_missing_unit_amount_or_quantity(au: Sandbox) -> None:
    # SPEC: omit Quantity or UnitAmount and "Xero will calculate the missing amount".
    # Quantity 4, LineAmount 100.00 -> UnitAmount 100.00 / 4 = 25.00.
    # UnitAmount 12.50, LineAmount 50.00 -> Quantity 50.00 / 12.50 = 4.0000.
    inv = one(au, li(None, "4", line_amount="100.00"), li("12.50", None, line_amount="50.00"))
    first, second = inv.line_items
    assert (first.quantity, first.unit_amount, first.line_amount) == (D(4), D("25"), D("100"))
    assert (second.quantity, second.unit_amount, second.line_amount) == (D(4), D("12.5"), D("50"))
    assert totals(inv) == (D("150.00"), D("15.00"), D("165.00"), D("0.00"))


def test_quantity_zero_books_a_zero_line(au: Sandbox) -> None:
    # 0 x 150.00 = 0.00, no tax; the other line 2 x 10.00 = 20.00, GST 2.00.
    inv = one(au, li("150.00", "0"), li("10.00", "2"))
    assert [(x.quantity, x.line_amount, x.tax_amount) for x in inv.line_items] == [
        (D(0), D("0.00"), D("0.00")),
        (D(2), D("20.00"), D("2.00")),
    ]
    assert totals(inv) == (D("20.00"), D("2.00"), D("22.00"), D("0.00"))
    # Quantity 0 cannot make a LineAmount of 100.00, whatever UnitAmount is derived.
    assert errors_of(au, li(None, "0", line_amount="100.00")) == [
        "The line total 100.00 does not match the expected line total 0.00"
    ]


def test_unit_amount_keeps_two_decimals_unless_unitdp_4(au: Sandbox) -> None:
    # "Rounding in Xero": UnitAmount 2 dp by default, 4 with unitdp=4; totals stay 2 dp.
    # Default: 12.34565 -> 12.35; 3 x 12.35 = 37.05; GST 3.705 -> 3.71 (half a cent, up).
    plain = one(au, li("12.34565", "3"))
    assert plain.line_items[0].unit_amount == D("12.35")
    assert totals(plain) == (D("37.05"), D("3.71"), D("40.76"), D("0.00"))
    # unitdp=4: 12.34565 -> 12.3457; 3 x 12.3457 = 37.0371 -> 37.04; GST 3.704 -> 3.70.
    fine = create(au, invoice(customer(au), li("12.34565", "3")), unitdp=4)[0]
    assert fine.line_items[0].unit_amount == D("12.3457")
    assert totals(fine) == (D("37.04"), D("3.70"), D("40.74"), D("0.00"))
    # Reads show 4 dp only when asked; the booked LineAmount never changes.
    read4 = au.api.get_invoice(au.tenant_id, fine.invoice_id, unitdp=4).invoices[0]
    read2 = au.api.get_invoice(au.tenant_id, fine.invoice_id).invoices[0]
    assert (read4.line_items[0].unit_amount, read2.line_items[0].unit_amount) == (
        D("12.3457"),
        D("12.35"),
    )
    assert read2.line_items[0].line_amount == D("37.04")


def test_a_half_cent_line_amount_rounds_half_up(au: Sandbox) -> None:
    # The fake's choice where the docs are silent (sandbox/xero/lines.py, LINE_ROUNDING):
    # 1 x 0.01 at 50 % = 0.005 -> 0.01. Real Xero may book 0.00 here (Xero-NetStandard#147).
    inv = one(au, li("0.01", discount_rate="50"), li("10.00"))
    assert inv.line_items[0].line_amount == D("0.01")
    assert inv.line_items[0].tax_amount == D("0.00")  # 0.01 x 10 % = 0.001 -> 0.00


# ======================================================================================
# Tax per line
# ======================================================================================


def test_rounding_in_xero_guide_example(nz: Sandbox) -> None:
    # The guide's own NZ example at 15 %: 25.06 -> 3.759 -> 3.76; 25.61 -> 3.8415 -> 3.84;
    # 25.63 -> 3.8445 -> 3.84. "Xero totals: Subtotal: $76.30, Tax: $11.44", total 87.74.
    lines = [li(u, tax="OUTPUT2") for u in ("25.06", "25.61", "25.63")]
    inv = one(nz, *lines)
    assert [x.tax_amount for x in inv.line_items] == [D("3.76"), D("3.84"), D("3.84")]
    assert totals(inv) == (D("76.30"), D("11.44"), D("87.74"), D("0.00"))
    # The same 76.30 on one line: 11.445 -> 11.45, the guide's "another system" figure.
    single = one(nz, li("76.30", tax="OUTPUT2"))
    assert totals(single) == (D("76.30"), D("11.45"), D("87.75"), D("0.00"))


def test_half_cent_tax_rounds_up_per_line(au: Sandbox) -> None:
    # kb.clouddepot.com example: 1141.39 x 10 % = 114.139 -> 114.14 and
    # 34.25 x 10 % = 3.425 -> 3.43; "Xero calculates the GST @ 10% to be $117.57".
    inv = one(au, li("1141.39"), li("34.25"))
    assert [x.tax_amount for x in inv.line_items] == [D("114.14"), D("3.43")]
    assert totals(inv) == (D("1175.64"), D("117.57"), D("1293.21"), D("0.00"))


def test_inclusive_tax_is_inside_each_line(nz: Sandbox) -> None:
    # Inclusive: tax = LineAmount x 15 / 115 per line. 10.00 -> 1.3043 -> 1.30, twice:
    # TotalTax 2.60 (on the 20.00 total it would be 2.6087 -> 2.61). Total 20.00,
    # SubTotal 20.00 - 2.60 = 17.40.
    inclusive = LineAmountTypes.INCLUSIVE
    ten = li("10.00", tax="OUTPUT2")
    inv = one(nz, ten, ten, line_amount_types=inclusive)
    assert [x.tax_amount for x in inv.line_items] == [D("1.30"), D("1.30")]
    assert totals(inv) == (D("17.40"), D("2.60"), D("20.00"), D("0.00"))


def test_a_sent_tax_amount_overrides_the_calculated_one(au: Sandbox) -> None:
    # SPEC LineItem.TaxAmount: "can be overriden if the calculated <TaxAmount> is not
    # correct". 100.00 at 10 % would be 10.00; 9.99 sent is booked: total 109.99.
    inv = one(au, li("100.00", tax_amount="9.99"))
    assert totals(inv) == (D("100.00"), D("9.99"), D("109.99"), D("0.00"))


# ======================================================================================
# Field limits
# ======================================================================================


def test_line_description_and_reference_limits(au: Sandbox) -> None:
    long_line = li(description="d" * 4001)
    assert errors_of(au, long_line) == [
        "Description is too long. Maximum of 4000 characters allowed"
    ]
    assert errors_of(au, li(), reference="r" * 256) == [
        "Reference is too long. Maximum of 255 characters allowed"
    ]
    ok = one(au, li(description="d" * 4000), reference="r" * 255)
    assert len(ok.line_items[0].description) == 4000 and len(ok.reference) == 255


def test_the_sdk_refuses_spec_limited_fields_itself() -> None:
    # Why contact limits are tested over plain HTTP: xero-python copies the spec's
    # maxLength into its setters (XeroAPI/xero-python#70).
    with pytest.raises(ValueError, match="255"):
        Contact(name="n" * 256)


def test_contact_limits_per_element(au: Sandbox) -> None:
    body = {
        "Contacts": [
            {"Name": "n" * 256},
            {"Name": "Phone Co", "Phones": [{"PhoneType": "MOBILE", "PhoneNumber": "1" * 51}]},
            {"Name": "Address Co", "Addresses": [{"AddressType": "POBOX", "PostalCode": "9" * 51}]},
            {"Name": "Fine Co", "TaxNumber": "5" * 50},
        ]
    }
    answer = au.raw("PUT", "/Contacts", params={"summarizeErrors": "false"}, json=body)
    assert answer.status_code == 200
    elements = answer.json()["Contacts"]
    assert [[e["Message"] for e in c.get("ValidationErrors", [])] for c in elements] == [
        ["Name is too long. Maximum of 255 characters allowed"],
        ["Phone PhoneNumber is too long. Maximum of 50 characters allowed"],
        ["Address PostalCode is too long. Maximum of 50 characters allowed"],
        [],
    ]
    assert [c.name for c in au.books.contacts] == ["Fine Co"]
    # Summarized (the default): Xero's 400 ValidationException naming the element.
    too_long_email = {"Name": "e", "EmailAddress": "a" * 250 + "@x.test"}  # 257 characters
    failed = au.raw("PUT", "/Contacts", json={"Contacts": [too_long_email]})
    assert failed.status_code == 400
    error = failed.json()
    assert (error["ErrorNumber"], error["Type"]) == (10, "ValidationException")
    assert error["Elements"][0]["ValidationErrors"] == [
        {"Message": "EmailAddress is too long. Maximum of 255 characters allowed"}
    ]


def test_invoice_number_limit_over_plain_http(au: Sandbox) -> None:
    contact = customer(au)
    element = {
        "Type": "ACCREC",
        "Contact": {"ContactID": contact},
        "InvoiceNumber": "N" * 256,
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "200"}],
    }
    answer = au.raw(
        "PUT", "/Invoices", params={"summarizeErrors": "false"}, json={"Invoices": [element]}
    )
    messages = [e["Message"] for e in answer.json()["Invoices"][0]["ValidationErrors"]]
    assert messages == ["InvoiceNumber is too long. Maximum of 255 characters allowed"]


# ======================================================================================
# Regions: organisation, tax rates, what a line may use
# ======================================================================================

ORGANISATIONS = {
    # region: (Version, CountryCode, BaseCurrency, Timezone)
    "AU": ("AU", "AU", "AUD", "AUSEASTERNSTANDARDTIME"),
    "NZ": ("NZ", "NZ", "NZD", "NEWZEALANDSTANDARDTIME"),
    "UK": ("UK", "GB", "GBP", "GMTSTANDARDTIME"),
    "US": ("US", "US", "USD", "EASTERNSTANDARDTIME"),
}

TAX_TYPES = {
    # The TaxRates doc's constraint tables (left-outs explained in sandbox/xero/regions.py).
    "AU": {
        "BASEXCLUDED", "EXEMPTCAPITAL", "EXEMPTEXPENSES", "EXEMPTEXPORT", "EXEMPTOUTPUT",
        "CAPEXINPUT", "GSTONCAPIMPORTS", "INPUT", "GSTONIMPORTS", "OUTPUT", "INPUTTAXED",
    },
    "NZ": {"INPUT2", "OUTPUT2", "GSTONIMPORTS", "NONE", "ZERORATED"},
    "UK": {
        "INPUT2", "OUTPUT2", "RRINPUT", "RROUTPUT", "ECACQUISITIONS", "EXEMPTINPUT",
        "EXEMPTOUTPUT", "NONE", "REVERSECHARGES", "GSTONIMPORTS", "ECZROUTPUT",
        "ECZROUTPUTSERVICES", "ZERORATEDINPUT", "ZERORATEDOUTPUT",
    },
    "US": {"GSTONIMPORTS", "NONE", "OUTPUT", "INPUT", "TAX001"},
}


def value(enum_or_text: Any) -> str:
    return str(getattr(enum_or_text, "value", enum_or_text))


@pytest.mark.parametrize("region", list(ORGANISATIONS))
def test_each_region_is_its_own_organisation(region: str) -> None:
    for sb in make_sandbox(region):
        org = sb.api.get_organisations(sb.tenant_id).organisations[0]
        got = tuple(
            value(x) for x in (org.version, org.country_code, org.base_currency, org.timezone)
        )
        assert got == ORGANISATIONS[region]
        rates = sb.api.get_tax_rates(sb.tenant_id).tax_rates
        assert {r.tax_type for r in rates} == TAX_TYPES[region]
        currencies = [value(c.code) for c in sb.api.get_currencies(sb.tenant_id).currencies]
        assert currencies == [ORGANISATIONS[region][2]]


def rates_of(sb: Sandbox) -> dict[str, Any]:
    return {r.tax_type: r for r in sb.api.get_tax_rates(sb.tenant_id).tax_rates}


def test_au_gst_free_and_export_rates(au: Sandbox) -> None:
    rates = rates_of(au)
    export, free = rates["EXEMPTEXPORT"], rates["EXEMPTOUTPUT"]
    assert (export.name, export.effective_rate) == ("GST Free Exports", D(0))
    assert export.can_apply_to_revenue
    assert (free.name, free.effective_rate) == ("GST Free Income", D(0))
    assert not export.can_apply_to_expenses  # doc table: Expenses false
    # 500.00 exported GST-free plus 100.00 at 10 %: TotalTax 10.00, Total 610.00.
    inv = one(au, li("500.00", tax="EXEMPTEXPORT"), li("100.00"))
    assert totals(inv) == (D("600.00"), D("10.00"), D("610.00"), D("0.00"))


def test_nz_gst_is_15_percent_on_output2(nz: Sandbox) -> None:
    rates = rates_of(nz)
    output2 = rates["OUTPUT2"]
    assert (output2.name, output2.display_tax_rate) == ("15% GST on Income", D(15))
    # Seeded item CONSULT-HR (180.00) defaults to the region's sales rate OUTPUT2:
    # 2 x 180.00 = 360.00; GST 15 % = 54.00; Total 414.00.
    inv = one(nz, LineItem(item_code="CONSULT-HR", quantity=D(2)))
    assert inv.line_items[0].tax_type == "OUTPUT2"
    assert totals(inv) == (D("360.00"), D("54.00"), D("414.00"), D("0.00"))
    # A zero-rated export: 250.00 at 0 %.
    assert one(nz, li("250.00", tax="ZERORATED")).total_tax == D("0.00")


def test_uk_vat_rates(uk: Sandbox) -> None:
    rates = rates_of(uk)
    wanted = ("OUTPUT2", "RROUTPUT", "ZERORATEDOUTPUT")
    assert [(rates[t].name, rates[t].effective_rate) for t in wanted] == [
        ("20% (VAT on Income)", D(20)),
        ("5% (VAT on Income)", D(5)),
        ("Zero Rated Income", D(0)),
    ]
    # 100.00 at 20 % = 20.00; 45.50 at 5 % = 2.275 -> 2.28; 200.00 zero-rated export.
    # SubTotal 345.50, TotalTax 22.28, Total 367.78.
    inv = one(
        uk,
        li("100.00", tax="OUTPUT2"),
        li("45.50", tax="RROUTPUT"),
        li("200.00", tax="ZERORATEDOUTPUT"),
    )
    assert [x.tax_amount for x in inv.line_items] == [D("20.00"), D("2.28"), D("0.00")]
    assert totals(inv) == (D("345.50"), D("22.28"), D("367.78"), D("0.00"))


def test_us_custom_sales_tax_with_components(us: Sandbox) -> None:
    rate = rates_of(us)["TAX001"]
    # TaxRates doc example: State Tax 7.5 + Local Sales Tax 0.625 = 8.125 %.
    assert [(c.name, c.rate) for c in rate.tax_components] == [
        ("State Tax", D("7.5")),
        ("Local Sales Tax", D("0.625")),
    ]
    assert (rate.effective_rate, rate.display_tax_rate) == (D("8.125"), D("8.125"))
    assert rate.report_tax_type is None  # US orgs have no ReportTaxType
    # 100.00 x 8.125 % = 8.125 -> 8.13. The US table lets INPUT on revenue (0 % here).
    inv = one(us, li("100.00", tax="TAX001"), li("10.00", tax="INPUT"))
    assert totals(inv) == (D("110.00"), D("8.13"), D("118.13"), D("0.00"))


@pytest.mark.parametrize(
    ("region", "tax_type"),
    [("NZ", "OUTPUT"), ("AU", "OUTPUT2"), ("UK", "OUTPUT"), ("US", "OUTPUT2")],
)
def test_another_regions_tax_type_is_refused(region: str, tax_type: str) -> None:
    for sb in make_sandbox(region):
        assert errors_of(sb, li(tax=tax_type)) == [f"The TaxType code '{tax_type}' is not valid"]


def test_a_rate_not_allowed_on_the_account_is_refused(nz: Sandbox) -> None:
    # NZ table: ZERORATED is false for Expenses; account 400 (Advertising) is an EXPENSE.
    assert errors_of(nz, li(tax="ZERORATED", account="400")) == [
        "The TaxType code 'ZERORATED' cannot be used with account code '400'."
    ]


def test_archived_and_custom_rates(au: Sandbox) -> None:
    au.books.set_tax_rate_status("EXEMPTEXPORT", "ARCHIVED")
    assert errors_of(au, li(tax="EXEMPTEXPORT")) == ["The TaxType code 'EXEMPTEXPORT' is not valid"]
    levy = au.books.add_tax_rate("Export Levy", "2.5")
    assert levy.tax_type == "TAX001"
    # 80.00 x 2.5 % = 2.00.
    assert one(au, li("80.00", tax="TAX001")).total_tax == D("2.00")


def test_unknown_region_or_timezone_fails_fast() -> None:
    fake = FakeXero()
    with pytest.raises(ValueError, match="region"):
        fake.add_tenant("Nowhere", region="CA")
    with pytest.raises(ValueError, match="Timezone"):
        fake.add_tenant("Nowhere", timezone="MARSSTANDARDTIME")


# ======================================================================================
# Timezones: a missing Date is today where the organisation is
# ======================================================================================

# 2026-11-30 14:00 UTC: Sydney (AEDT, +11) and Auckland (NZDT, +13) are already on
# 1 December; London (GMT) is at 14:00 and New York (EST, -5) at 09:00 on 30 November;
# Perth (AWST, +8) at 22:00 on 30 November.
MOMENT = datetime(2026, 11, 30, 14, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("region", "timezone", "local"),
    [
        ("AU", None, date(2026, 12, 1)),
        ("NZ", None, date(2026, 12, 1)),
        ("UK", None, date(2026, 11, 30)),
        ("US", None, date(2026, 11, 30)),
        ("AU", "WAUSTRALIASTANDARDTIME", date(2026, 11, 30)),
    ],
)
def test_invoice_date_defaults_to_the_organisations_today(
    region: str, timezone: str | None, local: date
) -> None:
    clock = Clock(lambda: MOMENT)
    for sb in make_sandbox(region, clock=clock, timezone=timezone):
        org = sb.api.get_organisations(sb.tenant_id).organisations[0]
        assert value(org.timezone) == (timezone or ORGANISATIONS[region][3])
        # No TaxType: account 200's default, the region's sales rate.
        inv = create(sb, invoice(customer(sb), li(tax=None), date=None))[0]
        assert inv.date == local
        assert sb.books.today() == local


def test_payment_date_defaults_to_the_organisations_today() -> None:
    clock = Clock(lambda: MOMENT)
    for sb in make_sandbox("AU", clock=clock):
        inv = create(sb, invoice(customer(sb), li(), status="AUTHORISED", due_date=DUE))[0]
        payment = sb.books.pay(inv.invoice_id, "110.00")
        assert payment.date == date(2026, 12, 1)  # Sydney's date at 14:00 UTC
        assert sb.books.invoice(inv.invoice_id).fully_paid_on == date(2026, 12, 1)

