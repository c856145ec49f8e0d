"""The golden table (issue #11, "The amounts"): deals in the fake HubSpot and the fake Pipedrive,
moved to the trigger stage, run through the real engine (webhook -> worker -> adapter -> builder
-> xero-python) into the fake Xero, which computes amounts as Xero does. Each row's expected
figures are worked out BY HAND from the vendors' documented arithmetic, never copied from a run.

Rules used (cited once here, referred to by letter in the rows):
  [X1] Xero LineAmount = Quantity x UnitAmount x ((100 - DiscountRate)/100), or
       (Quantity x UnitAmount) - DiscountAmount (DiscountAmount is for the whole line), to the
       cent: tests/specs/xero/xero_accounting.yaml, LineItem.LineAmount / DiscountAmount.
  [X2] Exclusive: tax = LineAmount x rate; Inclusive: tax = LineAmount x rate/(100 + rate);
       NoTax: none. Totals: SubTotal + TotalTax = Total (Xero Invoices doc, LineAmountTypes;
       developer.xero.com/documentation/api/accounting/invoices). Lines cannot mix types.
  [X3] UnitAmount keeps 4 decimals only with ?unitdp=4 (spec parameter `unitdp`).
  [X4] LineItem Description max 4,000 characters (Invoices doc); Contact Name max 255
       (xero-python Contact model, which raises ValueError before sending).
  [X5] AU organisation: OUTPUT "GST on Income" 10 %; several 0 % sales rates (EXEMPTOUTPUT,
       EXEMPTEXPORT, BASEXCLUDED, INPUTTAXED) - the TaxRates doc's Australia table.
  [H1] HubSpot `discount` = amount off PER UNIT ("Unit discount"); `hs_discount_percentage` =
       percent of quantity x price (knowledge.hubspot.com/properties/hubspots-default-line-item-
       properties; help.hubdo.com "How HubSpot calculates ... net pricing when discounted by
       percentage": 10 x 234.56 at 20 % = 1,876.48); `amount` = the line's net price. HubSpot's
       docs do NOT say which discount wins when both are set: Paydeck follows the one that
       gives HubSpot's own `amount` (the fake HubSpot applies the unit discount).
  [H2] The deal `amount` is the sum of its line items' `amount`s, pre-tax ("the deal amount
       is updated" from line items: knowledge.hubspot.com/deals/edit-products-and-terms-in-the-
       line-items-editor).
  [P1] Pipedrive deal product: `tax` a percentage, `tax_method` inclusive ("the tax percentage
       will already be included in the price") / exclusive ("not included") / none ("no tax
       will be added"); `discount` with `discount_type` percentage | amount (official client,
       pipedrive/client-php docs/versions/v2/Model/BaseDealProduct.md). The client does NOT
       say whether an `amount` discount is per unit or per line, nor whether `sum` includes
       exclusive tax: Paydeck reads the product's own `sum` to tell; the fake Pipedrive takes
       it per line and puts exclusive tax in `sum` (so in the deal value).
  [P2] The deal value is the sum of its products' `sum`s (client docs: enabled products are
       "included in the deal value calculation").

Dates and terms (#11 point 2):
  [D1] The invoice Date is the deal's won moment as a calendar date in the organisation's
       timezone: Xero's Date is a local date there, Organisation.Timezone names the zone
       (platform-facts; spec `TimeZone` enum). The won moment: HubSpot `closedate` of a deal
       that `hs_is_closed_won` (knowledge.hubspot.com "HubSpot's default deal properties",
       Close date: set on entering a closed stage, editable by a user - the rows set it with
       the stage move, as a rep backdating the close); Pipedrive `won_time` ("The optional
       date and time of changing the deal status as won in UTC", pipedrive/client-nodejs
       docs/BasicDeal.md).
  [D2] Windows -> IANA by CLDR windowsZones.xml (territory 001): AUS Eastern Standard Time ->
       Australia/Sydney, New Zealand Standard Time -> Pacific/Auckland, GMT Standard Time ->
       Europe/London. Offsets in July 2026 (IANA tz database, files `australasia`/`europe`):
       Sydney AEST UTC+10 (daylight time runs first Sunday of October - first Sunday of
       April), Auckland NZST UTC+12 (NZDT last Sunday of September - first Sunday of April),
       London BST UTC+1 (last Sunday of March - last Sunday of October).
  [D3] DueDate by Xero's PaymentTermType (spec `PaymentTermType`; developer.xero.com/
       documentation/api/accounting/types#payment-terms: DAYSAFTERBILLDATE "day(s) after bill
       date"): DueDate = Date + Day days. The fake organisation's own PaymentTerms.Sales is
       {Day: 30, Type: DAYSAFTERBILLDATE} (sandbox/xero/render.py, organisation), used when
       the installation says "the organisation's default".
  [D4] A Xero contact's own PaymentTerms.Sales win over the installation's terms unless the
       admin turns `use_contact_terms` off (issue #11 point 2; Contact.PaymentTerms in the
       spec, "Xero > Contact > Financial details > Sales invoices due").

Rows are data: add one by appending to HUBSPOT_ROWS / PIPEDRIVE_ROWS; a row with `date` /
`due_date` in its Booked has them compared too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.queueing import QUEUE
from app.models import (Installation, InstallationSettings, LineAmountType, ReviewItem,
                        StageAction, StageRule)
from app.redis_conn import get_redis
from app.worker import PaydeckSimpleWorker
from tests.conftest import fake_settings

D = Decimal


@dataclass(frozen=True)
class Booked:
    """What the fake Xero must hold for the deal's invoice."""

    line_amounts: tuple[str, ...]
    sub_total: str
    total_tax: str
    total: str
    line_amount_types: str = "Exclusive"
    # #11's dates (organisation timezone [D1], terms [D3]/[D4]): compared when set.
    date: str | None = None
    due_date: str | None = None


@dataclass(frozen=True)
class Review:
    """The deal must not reach Xero: one review item with this reason, saying this."""

    reason: str
    says: str


@dataclass(frozen=True)
class Row:
    id: str
    deal: dict[str, Any]  # the CRM's deal: HubSpot properties + line_items, or Pipedrive products
    expect: Booked | Review
    company: str = "Initech Pty Ltd"
    # The admin's settings for this row, beyond the defaults below (InstallationSettings
    # attribute -> value). Rows with the same settings share one installation.
    settings: tuple[tuple[str, Any], ...] = ()
    # The Xero organisation's region (the fake seeds its default tax rates and currency):
    # the default tax rate is that region's sales rate (AU OUTPUT 10 %, NZ OUTPUT2 15 %).
    region: str = "AU"
    # Organisation.Timezone (a Xero Windows-style name) instead of the region's.
    timezone: str | None = None
    # The moment the CRM records the deal as won (UTC, ISO 8601): HubSpot `closedate` set with
    # the move to the won stage, Pipedrive status won with `won_time` [D1]. None: the CRM's
    # own clock at the move (today).
    won_at: str | None = None
    # An existing Xero contact for the row's customer (Name = company, EmailAddress = the
    # buyer's): its other Xero JSON fields, e.g. {"PaymentTerms": {...}}. None: Paydeck
    # creates the contact.
    xero_contact: dict[str, Any] | None = None


# Terms used by the date rows: an installation default of 21 days after the invoice date
# (Paydeck's settings name for DAYSAFTERBILLDATE), distinct from the organisation's 30 [D3],
# and a contact's own 14 days [D4].
TERMS_21 = ("payment_terms", {"type": "days_after_invoice", "days": 21})
CONTACT_14 = {"PaymentTerms": {"Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}}}
NO_CONTACT_TERMS = ("use_contact_terms", False)
SYDNEY, AUCKLAND, LONDON = "AUSEASTERNSTANDARDTIME", "NEWZEALANDSTANDARDTIME", "GMTSTANDARDTIME"


# --- HubSpot (admin settings: account 200, default tax OUTPUT 10 %, Exclusive) -----------------

def hs_line(quantity: str, price: str, **more: str) -> dict[str, str]:
    return {"name": more.pop("name", "Service"), "quantity": quantity, "price": price, **more}


HUBSPOT_ROWS = [
    # 3 x 100.00 = 300.00; discount 10.00 per unit [H1] -> 30.00 off -> 270.00 (HubSpot amount);
    # Xero: DiscountAmount 30.00 -> LineAmount 270.00 [X1]; GST 10 % of 270.00 = 27.00 [X2];
    # total 297.00. (Before #11 Paydeck sent DiscountAmount 10 and booked 290.00.)
    Row("hs-unit-discount", {"line_items": [hs_line("3", "100.00", discount="10")]},
        Booked(("270.00",), "270.00", "27.00", "297.00")),
    # 10 x 234.56 = 2,345.60; 20 % [H1] = 469.12 off -> 1,876.48; Xero DiscountRate 20:
    # 2,345.60 x 80/100 = 1,876.48 [X1]; GST 187.648 -> 187.65 [X2]; total 2,064.13.
    Row("hs-percent-discount", {"line_items": [hs_line("10", "234.56", hs_discount_percentage="20")]},
        Booked(("1876.48",), "1876.48", "187.65", "2064.13")),
    # Both set on 3 x 100.00: unit discount 10.00 and 50 %. The fake HubSpot's amount is 270.00
    # (3 x 100 - 3 x 10), so that is the discount HubSpot applied [H1]: DiscountAmount 30.00
    # -> 270.00; GST 27.00; total 297.00 (50 % would have been 150.00).
    Row("hs-both-discounts", {"line_items": [hs_line("3", "100.00", discount="10",
                                                     hs_discount_percentage="50")]},
        Booked(("270.00",), "270.00", "27.00", "297.00")),
    # 10,000 x 0.0125 = 125.00; with unitdp=4 Xero keeps 0.0125 [X3] -> 125.00 (without it,
    # 0.01 x 10,000 = 100.00); GST 12.50; total 137.50.
    Row("hs-four-decimal-price", {"line_items": [hs_line("10000", "0.0125")]},
        Booked(("125.00",), "125.00", "12.50", "137.50")),
    # 2 x 150.00 = 300.00 and 0 x 99.00 = 0.00 (quantity 0 stays 0, never 1); sub 300.00;
    # GST 30.00; total 330.00 (before #11: 0 became 1 and 99.00 more was invoiced).
    Row("hs-quantity-zero", {"line_items": [hs_line("2", "150.00"),
                                            hs_line("0", "99.00", name="Spare")]},
        Booked(("300.00", "0.00"), "300.00", "30.00", "330.00")),
    # Deal amount 9,000.00; lines 1 x 10,000.00 = 10,000.00 [H2]: 1,000.00 apart > 0.01.
    Row("hs-amount-vs-lines", {"amount": "9000", "line_items": [hs_line("1", "10000.00")]},
        Review("amount_mismatch", "the deal amount 9,000.00 differs from the sum of its lines "
               "10,000.00")),
    # Within the tolerance: amount 100.00 vs lines 3 x 33.33 = 99.99, 0.01 apart (default
    # tolerance 0.01): invoiced; GST 9.999 -> 10.00; total 109.99.
    Row("hs-amount-within-tolerance", {"amount": "100.00", "line_items": [hs_line("3", "33.33")]},
        Booked(("99.99",), "99.99", "10.00", "109.99")),
    # A 4,001-character description [X4].
    Row("hs-long-description", {"line_items": [hs_line("1", "10.00", description="x" * 4001)]},
        Review("text_too_long", "description is 4,001 characters; Xero allows 4,000")),
    # A 256-character company name: the new Xero contact's Name [X4].
    Row("hs-long-company-name", {"line_items": [hs_line("1", "10.00")]},
        Review("text_too_long", "Name is 256 characters; Xero allows 255"), company="N" * 256),
    # Admin setting "amounts are tax inclusive": 1 x 110.00 -> LineAmount 110.00; GST inside =
    # 110 x 10/110 = 10.00 [X2]; subtotal 100.00; total 110.00.
    Row("hs-inclusive-setting", {"line_items": [hs_line("1", "110.00")]},
        Booked(("110.00",), "100.00", "10.00", "110.00", "Inclusive"),
        settings=(("line_amount_type", LineAmountType.INCLUSIVE),)),
    # Admin tolerance 5.00: amount 104.00 vs lines 3 x 33.33 = 99.99 (4.01 apart) is invoiced
    # for the lines: 99.99 + GST 10.00 (9.999) = 109.99.
    Row("hs-admin-tolerance", {"amount": "104.00", "line_items": [hs_line("3", "33.33")]},
        Booked(("99.99",), "99.99", "10.00", "109.99"),
        settings=(("amount_tolerance", D("5.00")),)),
    # ... and 5.01 apart is not: amount 105.00 vs 99.99.
    # NZ organisation: default sales rate OUTPUT2 "15% GST on Income" (TaxRates doc, New
    # Zealand table). 2 x 100.00 NZD = 200.00; GST 15 % = 30.00; total 230.00.
    Row("hs-nz-organisation", {"deal_currency_code": "NZD", "line_items": [hs_line("2", "100.00")]},
        Booked(("200.00",), "200.00", "30.00", "230.00"), region="NZ"),
    Row("hs-over-admin-tolerance", {"amount": "105.00", "line_items": [hs_line("3", "33.33")]},
        Review("amount_mismatch", "differs from the sum of its lines 99.99 by more than 5.00"),
        settings=(("amount_tolerance", D("5.00")),)),
    # -- dates and terms (#11 point 2). Amounts: 1 x 100.00 + the region's sales rate.
    # Sydney [D2] AEST UTC+10: 2026-06-30T14:30Z + 10 h = 2026-07-01 00:30 local -> Date
    # 2026-07-01 [D1] (the UTC date would be 30 June). Organisation terms 30 days after [D3]:
    # 1 July + 30 = 31 July. GST 10 % of 100.00 = 10.00.
    Row("hs-sydney-half-past-midnight", {"line_items": [hs_line("1", "100.00")]},
        Booked(("100.00",), "100.00", "10.00", "110.00", date="2026-07-01",
               due_date="2026-07-31"),
        timezone=SYDNEY, won_at="2026-06-30T14:30:00Z"),
    # Auckland [D2] NZST UTC+12: 11:59Z + 12 h = 23:59 on 30 June -> 2026-06-30; + 30 days
    # [D3] = 30 July (June has 30 days: 30 June + 30 = 30 July). NZD, GST 15 % = 15.00.
    Row("hs-auckland-one-minute-to-midnight",
        {"deal_currency_code": "NZD", "line_items": [hs_line("1", "100.00")]},
        Booked(("100.00",), "100.00", "15.00", "115.00", date="2026-06-30",
               due_date="2026-07-30"),
        region="NZ", timezone=AUCKLAND, won_at="2026-06-30T11:59:00Z"),
    # ... one minute later: 12:00Z + 12 h = 00:00 on 1 July -> 2026-07-01; due 31 July.
    Row("hs-auckland-midnight",
        {"deal_currency_code": "NZD", "line_items": [hs_line("1", "100.00")]},
        Booked(("100.00",), "100.00", "15.00", "115.00", date="2026-07-01",
               due_date="2026-07-31"),
        region="NZ", timezone=AUCKLAND, won_at="2026-06-30T12:00:00Z"),
    # London [D2] BST UTC+1: 2026-06-30T23:30Z + 1 h = 00:30 on 1 July -> 2026-07-01 (not GMT's
    # 30 June); due 31 July [D3]. GBP, UK OUTPUT2 VAT 20 % = 20.00 (TaxRates doc, UK table).
    Row("hs-london-summer-time",
        {"deal_currency_code": "GBP", "line_items": [hs_line("1", "100.00")]},
        Booked(("100.00",), "100.00", "20.00", "120.00", date="2026-07-01",
               due_date="2026-07-31"),
        region="UK", timezone=LONDON, won_at="2026-06-30T23:30:00Z"),
    # Installation terms 21 days. An existing Xero contact with its own Sales terms 14 days
    # after the bill date [D4]: Date 2026-07-01 (Sydney, as above) + 14 = 2026-07-15 [D3].
    Row("hs-contact-terms-win", {"line_items": [hs_line("1", "100.00")]},
        Booked(("100.00",), "100.00", "10.00", "110.00", date="2026-07-01",
               due_date="2026-07-15"),
        company="Globex Pty Ltd", settings=(TERMS_21,), timezone=SYDNEY,
        won_at="2026-06-30T14:30:00Z", xero_contact=CONTACT_14),
    # An existing contact without terms of its own: the installation's 21 days, 1 July + 21 =
    # 22 July (not the organisation's 30, 31 July).
    Row("hs-contact-without-terms", {"line_items": [hs_line("1", "100.00")]},
        Booked(("100.00",), "100.00", "10.00", "110.00", date="2026-07-01",
               due_date="2026-07-22"),
        company="Hooli Pty Ltd", settings=(TERMS_21,), timezone=SYDNEY,
        won_at="2026-06-30T14:30:00Z", xero_contact={}),
    # use_contact_terms off: the contact's 14 days are ignored, the installation's 21 apply:
    # 1 July + 21 = 22 July [D4].
    Row("hs-contact-terms-off", {"line_items": [hs_line("1", "100.00")]},
        Booked(("100.00",), "100.00", "10.00", "110.00", date="2026-07-01",
               due_date="2026-07-22"),
        company="Globex Pty Ltd", settings=(TERMS_21, NO_CONTACT_TERMS), timezone=SYDNEY,
        won_at="2026-06-30T14:30:00Z", xero_contact=CONTACT_14),
]


# --- Pipedrive (same admin settings; Pipedrive's tax_method decides the amount type) ----------

def pd_line(quantity: str, price: str, **more: Any) -> dict[str, Any]:
    return {"quantity": D(quantity), "item_price": D(price), **more}


TEN_EXCL = {"tax": D(10), "tax_method": "exclusive"}
TEN_INCL = {"tax": D(10), "tax_method": "inclusive"}
NONE = {"tax": D(0), "tax_method": "none"}

PIPEDRIVE_ROWS = [
    # 2 x 150.00 = 300.00, 10 % exclusive [P1] -> the one 10 % sales rate, OUTPUT [X5];
    # GST 30.00; total 330.00 (the deal value 330.00 includes the tax [P2]: accepted).
    Row("pd-exclusive-10", {"products": [pd_line("2", "150.00", **TEN_EXCL)]},
        Booked(("300.00",), "300.00", "30.00", "330.00")),
    # 1 x 110.00, 10 % inclusive [P1]: Xero Inclusive, LineAmount 110.00; tax 110 x 10/110 =
    # 10.00 [X2]; subtotal 100.00; total 110.00 (no tax on top).
    Row("pd-inclusive-10", {"products": [pd_line("1", "110.00", **TEN_INCL)]},
        Booked(("110.00",), "100.00", "10.00", "110.00", "Inclusive")),
    # 2 x 150.00, tax_method none [P1]: NoTax, not the default GST: 300.00, tax 0, total 300.00.
    Row("pd-no-tax", {"products": [pd_line("2", "150.00", **NONE)]},
        Booked(("300.00",), "300.00", "0.00", "300.00", "NoTax")),
    # An inclusive and an exclusive line: one invoice cannot mix LineAmountTypes [X2].
    Row("pd-mixed-methods", {"products": [pd_line("1", "110.00", **TEN_INCL),
                                          pd_line("1", "100.00", **TEN_EXCL)]},
        Review("mixed_tax_methods", "mixes tax-inclusive and tax-exclusive lines")),
    # 15 % exclusive: the AU organisation has no 15 % sales rate [X5].
    Row("pd-no-such-rate", {"products": [pd_line("1", "100.00", tax=D(15), tax_method="exclusive")]},
        Review("unknown_tax", "no active sales tax rate in Xero has the CRM's 15%")),
    # A none line beside a 10 % exclusive one needs a 0 % rate: AU has several [X5], none mapped.
    Row("pd-zero-rate-ambiguous", {"products": [pd_line("1", "100.00", **TEN_EXCL),
                                                pd_line("1", "50.00", **NONE)]},
        Review("unknown_tax", "several Xero tax rates")),
    # 4 x 50.00 = 200.00, 25 % off [P1] -> DiscountRate 25: 200 x 75/100 = 150.00 [X1];
    # GST 15.00; total 165.00.
    Row("pd-percent-discount", {"products": [pd_line("4", "50.00", discount=D(25),
                                                     discount_type="percentage", **TEN_EXCL)]},
        Booked(("150.00",), "150.00", "15.00", "165.00")),
    # 3 x 100.00 = 300.00, discount 30 "amount": the product's sum 297.00 = (300 - 30) x 1.10,
    # so the 30 is for the line [P1]: DiscountAmount 30.00 -> 270.00 [X1]; GST 27.00; 297.00.
    Row("pd-amount-discount", {"products": [pd_line("3", "100.00", discount=D(30),
                                                    discount_type="amount", **TEN_EXCL)]},
        Booked(("270.00",), "270.00", "27.00", "297.00")),
    # 10,000 x 0.0125 = 125.00 with unitdp=4 [X3]; no tax.
    Row("pd-four-decimal-price", {"products": [pd_line("10000", "0.0125", **NONE)]},
        Booked(("125.00",), "125.00", "0.00", "125.00", "NoTax")),
    # 0 x 100.00 = 0.00 and 1 x 50.00 = 50.00 (quantity 0 stays 0); no tax; total 50.00.
    Row("pd-quantity-zero", {"products": [pd_line("0", "100.00", **NONE),
                                          pd_line("1", "50.00", **NONE)]},
        Booked(("0.00", "50.00"), "50.00", "0.00", "50.00", "NoTax")),
    # NZ organisation: Pipedrive's 15 % exclusive matches the one NZ sales rate of 15 %,
    # OUTPUT2 (the AU row above found none). 2 x 100.00 = 200.00; GST 30.00; total 230.00.
    Row("pd-nz-15-percent", {"currency": "NZD",
                             "products": [pd_line("2", "100.00", tax=D(15), tax_method="exclusive")]},
        Booked(("200.00",), "200.00", "30.00", "230.00"), region="NZ"),
    # Deal value 9,000.00 typed over products worth 10,000.00 (no tax) [P2].
    Row("pd-value-vs-lines", {"value": D(9000), "products": [pd_line("1", "10000.00", **NONE)]},
        Review("amount_mismatch", "the deal amount 9,000.00 differs from the sum of its lines "
               "10,000.00")),
    # -- dates and terms (#11 point 2): the same moments as the HubSpot rows, from won_time.
    # Amounts: 1 x 100.00, tax_method none [P1] -> NoTax 100.00 in every region.
    # Sydney AEST UTC+10 [D2]: 14:30Z -> 00:30 on 1 July -> 2026-07-01; + 30 [D3] = 31 July.
    Row("pd-sydney-half-past-midnight", {"products": [pd_line("1", "100.00", **NONE)]},
        Booked(("100.00",), "100.00", "0.00", "100.00", "NoTax", date="2026-07-01",
               due_date="2026-07-31"),
        timezone=SYDNEY, won_at="2026-06-30T14:30:00Z"),
    # Auckland NZST UTC+12 [D2]: 11:59Z -> 23:59 on 30 June -> 2026-06-30; + 30 = 30 July.
    Row("pd-auckland-one-minute-to-midnight",
        {"currency": "NZD", "products": [pd_line("1", "100.00", **NONE)]},
        Booked(("100.00",), "100.00", "0.00", "100.00", "NoTax", date="2026-06-30",
               due_date="2026-07-30"),
        region="NZ", timezone=AUCKLAND, won_at="2026-06-30T11:59:00Z"),
    # ... 12:00Z -> 00:00 on 1 July -> 2026-07-01; + 30 = 31 July.
    Row("pd-auckland-midnight", {"currency": "NZD", "products": [pd_line("1", "100.00", **NONE)]},
        Booked(("100.00",), "100.00", "0.00", "100.00", "NoTax", date="2026-07-01",
               due_date="2026-07-31"),
        region="NZ", timezone=AUCKLAND, won_at="2026-06-30T12:00:00Z"),
    # London BST UTC+1 [D2]: 23:30Z -> 00:30 on 1 July -> 2026-07-01; + 30 = 31 July.
    Row("pd-london-summer-time", {"currency": "GBP", "products": [pd_line("1", "100.00", **NONE)]},
        Booked(("100.00",), "100.00", "0.00", "100.00", "NoTax", date="2026-07-01",
               due_date="2026-07-31"),
        region="UK", timezone=LONDON, won_at="2026-06-30T23:30:00Z"),
    # Installation 21 days; the contact's own 14 win [D4]: 1 July + 14 = 15 July [D3].
    Row("pd-contact-terms-win", {"products": [pd_line("1", "100.00", **NONE)]},
        Booked(("100.00",), "100.00", "0.00", "100.00", "NoTax", date="2026-07-01",
               due_date="2026-07-15"),
        company="Globex Pty Ltd", settings=(TERMS_21,), timezone=SYDNEY,
        won_at="2026-06-30T14:30:00Z", xero_contact=CONTACT_14),
    # A contact without its own terms: the installation's 21: 1 July + 21 = 22 July.
    Row("pd-contact-without-terms", {"products": [pd_line("1", "100.00", **NONE)]},
        Booked(("100.00",), "100.00", "0.00", "100.00", "NoTax", date="2026-07-01",
               due_date="2026-07-22"),
        company="Hooli Pty Ltd", settings=(TERMS_21,), timezone=SYDNEY,
        won_at="2026-06-30T14:30:00Z", xero_contact={}),
    # use_contact_terms off: the installation's 21 days, 22 July [D4].
    Row("pd-contact-terms-off", {"products": [pd_line("1", "100.00", **NONE)]},
        Booked(("100.00",), "100.00", "0.00", "100.00", "NoTax", date="2026-07-01",
               due_date="2026-07-22"),
        company="Globex Pty Ltd", settings=(TERMS_21, NO_CONTACT_TERMS), timezone=SYDNEY,
        won_at="2026-06-30T14:30:00Z", xero_contact=CONTACT_14),
]


# --- running the table ---------------------------------------------------------------------------

def work(app):
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def groups(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows by the admin settings they need: one installation (one test) per group."""
    found: dict[str, list[Row]] = {}
    for row in rows:
        name = ",".join([f"{k}={_shown(v)}" for k, v in row.settings]
                        + ([f"region={row.region}"] if row.region != "AU" else [])
                        + ([f"tz={row.timezone}"] if row.timezone else [])) or "defaults"
        found.setdefault(name, []).append(row)
    return found


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "-".join(f"{v}" for v in value.values())
    return str(getattr(value, "value", value))


def _seed_xero_contact(xero, tenant: str, row: Row, email: str) -> None:
    """The customer already in Xero (found by Paydeck's contact match), if the row says so."""
    if row.xero_contact is not None:
        xero.accounting(tenant).add_contact(row.company, EmailAddress=email, **row.xero_contact)


def _configure(app, pipeline_id: str, stage_id: str, rows: list[Row], sales_tax: str) -> None:
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", sales_tax
        for name, value in rows[0].settings:
            setattr(settings, name, value)
        db.session.add(StageRule(installation_id=installation.id, pipeline_id=pipeline_id,
                                 stage_id=stage_id, action=StageAction.AUTHORISE))
        db.session.commit()


def _installed(app_factory, browser, fake_xero, crm: str, fake_crm, rows: list[Row],
               rule: tuple[str, str], **settings: Any) -> tuple[Any, str, str]:
    """Paydeck (with these settings) installed into the CRM's fake and connected to a new
    tenant of the fake Xero in the rows' region and timezone, its setup job done, configured
    with the rows' admin settings and an authorising rule on `rule` (pipeline, stage):
    (app, url, tenant id)."""
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd", region=rows[0].region, timezone=rows[0].timezone)
    app, url = app_factory.serve(**settings, **fake_settings(xero=fake_xero, **{crm: fake_crm}))
    assert browser.get(f"{url}/install/{crm}").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    work(app)
    _configure(app, *rule, rows, xero.accounting(tenant).setup.sales_tax_type)
    return app, url, tenant


def _check(app, xero, tenant: str, rows: list[Row], deal_ids: dict[str, str],
           reference: Callable[[str], str]) -> None:
    """Every row against what the fake Xero booked (or the review queue); all rows reported."""
    invoices = {i.reference: i for i in xero.accounting(tenant).invoices}
    with app.app_context():
        reviews = {r.deal_id: r for r in db.session.scalars(select(ReviewItem))}
    wrong = []
    for row in rows:
        deal_id = deal_ids[row.id]
        invoice, review = invoices.get(reference(deal_id)), reviews.get(deal_id)
        if isinstance(row.expect, Review):
            got = (None if review is None else (review.reason.value, review.detail), invoice)
            if invoice is not None or review is None or review.reason.value != row.expect.reason \
                    or row.expect.says not in review.detail:
                wrong.append(f"{row.id}: expected {row.expect}, got review/invoice {got}")
            continue
        if invoice is None:
            wrong.append(f"{row.id}: no invoice; review {review and (review.reason, review.detail)}")
            continue
        booked = Booked(tuple(f"{line.line_amount:.2f}" for line in invoice.line_items),
                        f"{invoice.sub_total:.2f}", f"{invoice.total_tax:.2f}",
                        f"{invoice.total:.2f}", invoice.line_amount_types)
        booked = replace(booked, date=row.expect.date and invoice.date.isoformat(),
                         due_date=row.expect.due_date and invoice.due_date.isoformat())
        if booked != row.expect:
            wrong.append(f"{row.id}: expected {row.expect}, Xero booked {booked}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("rows", list(groups(HUBSPOT_ROWS).values()), ids=list(groups(HUBSPOT_ROWS)))
def test_golden_hubspot_deals_book_in_xero_as_worked_out_by_hand(
        app_factory, fake_hubspot, fake_xero, browser, rows):
    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    app, url, tenant = _installed(app_factory, browser, fake_xero, "hubspot", fake_hubspot, rows,
                                  ("default", "closedwon"), hubspot_app_id=str(hubspot.app_id))
    hubspot.subscribe(f"{url}/webhooks/hubspot", hubspot.client_secret)
    deal_ids = {}
    for n, row in enumerate(rows):
        company = hubspot.crm.add_company(name=row.company, domain=f"c{n}.example")
        contact = hubspot.crm.add_contact(company_id=company, firstname="Pat", lastname="Buyer",
                                          email=f"ap@c{n}.example")
        _seed_xero_contact(xero, tenant, row, f"ap@c{n}.example")
        props = {k: v for k, v in row.deal.items() if k != "line_items"}
        deal_ids[row.id] = hubspot.crm.add_deal(dealname=row.id, company_id=company,
                                                contact_ids=[contact],
                                                line_items=row.deal["line_items"], **props)
    hubspot.deliver()
    for row in rows:  # a won moment of the row's own goes with the move [D1]
        won = {"closedate": row.won_at} if row.won_at else {}
        hubspot.crm.set_deal_properties(deal_ids[row.id], dealstage="closedwon", **won)
    hubspot.deliver()
    work(app)

    _check(app, xero, tenant, rows, deal_ids, lambda d: f"HubSpot {hubspot.portal_id} deal {d}")


@pytest.mark.parametrize("rows", list(groups(PIPEDRIVE_ROWS).values()), ids=list(groups(PIPEDRIVE_ROWS)))
def test_golden_pipedrive_deals_book_in_xero_as_worked_out_by_hand(
        app_factory, fake_pipedrive, fake_xero, browser, rows):
    pipedrive, _ = fake_pipedrive
    xero, _ = fake_xero
    won = pipedrive.api.stage_id("Won")
    app, _, tenant = _installed(app_factory, browser, fake_xero, "pipedrive", fake_pipedrive, rows,
                                ("1", str(won)))
    product = pipedrive.api.add_product("Consulting", code="CONS-1", price=D("1.00"))
    deal_ids = {}
    for n, row in enumerate(rows):
        org = pipedrive.api.add_org(f"{row.company} {n}")
        person = pipedrive.api.add_person("Pat Buyer", email=f"ap@c{n}.example", org_id=org)
        _seed_xero_contact(xero, tenant, row, f"ap@c{n}.example")
        lines = [{"product_id": product, **line} for line in row.deal["products"]]
        extra = {k: row.deal[k] for k in ("value", "currency") if k in row.deal}
        deal_ids[row.id] = str(pipedrive.api.add_deal(row.id, org_id=org, person_id=person,
                                                      products=lines, **extra))
    pipedrive.deliver()
    for row in rows:  # won with the row's won_time [D1], or just moved to the Won stage
        if row.won_at:
            pipedrive.api.update_deal(int(deal_ids[row.id]), stage_id=won, status="won",
                                      won_time=_pipedrive_time(row.won_at))
        else:
            pipedrive.api.move_deal(int(deal_ids[row.id]), won)
    pipedrive.deliver()
    work(app)

    _check(app, xero, tenant, rows, deal_ids, lambda d: f"Pipedrive {pipedrive.company_id} deal {d}")


def _pipedrive_time(moment: str) -> str:
    """ISO "2026-06-30T14:30:00Z" as Pipedrive writes won_time: "YYYY-MM-DD HH:MM:SS", UTC."""
    return moment.removesuffix("Z").replace("T", " ")
