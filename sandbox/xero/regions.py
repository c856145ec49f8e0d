"""What a new Xero organisation starts with, per region: tax rates, chart of accounts,
items, and the Organisation record (base currency, country, timezone). A tenant's books are
seeded from one `RegionSetup`: ``FakeXero.add_tenant(name, region="NZ")`` (default "AU").

Sources, cited where each value is set:
- Tax rates and which account classes each may be used with: the "Tax Rate Constraints"
  tables of developer.xero.com/documentation/api/accounting/taxrates ("Below is a list of
  the default rates that Xero organisations start with"), copied row by row, codes and
  names exactly. Rates that the table does not print come from the rate in the name
  ("20% (VAT on Income)"), the doc's own example response (NZ 15%), or help.xero.com's
  default-rate pages; anything else is marked (unverified).
- Timezones: the spec's `TimeZone` enum (tests/specs/xero/xero_accounting.yaml), Windows
  zone ids upper-cased without spaces; mapped to IANA zones with Unicode CLDR
  `windowsZones.xml` (its territory "001" mapping).
- Organisation fields: the spec's `Organisation` schema and its enums. Values the spec
  does not pin per country (SalesTaxBasis, SalesTaxPeriod, financial year end, tax number
  format) are plausible defaults, marked (unverified): Paydeck reads none of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

Region = Literal["AU", "NZ", "UK", "US"]
HUNDRED = Decimal(100)
UNIT_4DP = Decimal("0.0001")
ACCOUNT_CLASSES = ("ASSET", "EQUITY", "EXPENSE", "LIABILITY", "REVENUE")


# ----- Tax rates -----------------------------------------------------------------------


@dataclass(frozen=True)
class TaxComponent:
    """One component of a tax rate (TaxRates doc: Name, Rate up to 4dp, IsCompound)."""

    name: str
    rate: Decimal
    is_compound: bool = False


@dataclass(frozen=True)
class TaxRate:
    """One row of GET /TaxRates.

    `applies_to` is the set of account classes the rate may be coded against - the
    doc's Assets / Equity / Expenses / Liabilities / Revenue columns, which GET /TaxRates
    returns as CanApplyToAssets ... CanApplyToRevenue.
    """

    tax_type: str
    name: str
    components: tuple[TaxComponent, ...]
    report_tax_type: str | None
    applies_to: frozenset[str]
    status: str = "ACTIVE"

    @property
    def display_rate(self) -> Decimal:
        """DisplayTaxRate: the components' rates added up (4 dp, as the spec says)."""
        return sum((c.rate for c in self.components), Decimal(0)).quantize(UNIT_4DP)

    @property
    def rate(self) -> Decimal:
        """EffectiveRate, the rate Xero charges (4 dp).

        A compound component applies to the amount plus the simple components' tax, so
        for compound rates EffectiveRate exceeds DisplayTaxRate (spec: both "decimal to
        4dp"; the compounding formula is our reading of "IsCompound", unverified - no
        seeded rate is compound).
        """
        simple = sum((c.rate for c in self.components if not c.is_compound), Decimal(0))
        total = simple
        for component in self.components:
            if component.is_compound:
                total += component.rate * (HUNDRED + simple) / HUNDRED
        return total.quantize(UNIT_4DP)

    @property
    def can_apply_to_revenue(self) -> bool:
        return "REVENUE" in self.applies_to

    @property
    def can_apply_to_expenses(self) -> bool:
        return "EXPENSE" in self.applies_to

    def can_apply_to(self, account_class: str) -> bool:
        return account_class in self.applies_to


def _applies(columns: str) -> frozenset[str]:
    """The doc table's five booleans, in its column order Assets, Equity, Expenses,
    Liabilities, Revenue, written as T/F (e.g. "TTFTT" for GST on Income)."""
    if len(columns) != 5 or set(columns) - {"T", "F"}:
        raise ValueError(f"five T/F flags expected, not {columns!r}")
    return frozenset(c for c, flag in zip(ACCOUNT_CLASSES, columns, strict=True) if flag == "T")


def tax_rates(table: str, component: str) -> list[TaxRate]:
    """One single-component rate (as every default Xero rate is) per row of a table below."""
    rows = ([cell.strip() for cell in line.split("|")] for line in table.strip().splitlines())
    return [TaxRate(tax_type, name, (TaxComponent(component, Decimal(rate).quantize(UNIT_4DP)),),
                    None if report == "-" else report, _applies(columns))
            for tax_type, name, rate, report, columns in rows]


# Each region's default rates, one TaxComponent named after its tax, a row each: TaxType | Name |
# rate % | ReportTaxType ("-": none) | the doc table's Assets/Equity/Expenses/Liabilities/Revenue
# flags.
DEFAULT_TAX_RATES: dict[str, str] = {
    # AU: the doc's "Australia" table, every row, in its order. GST is 10 % (TaxRates doc
    # example of the AU org; help.xero.com/au default tax rates); the GST-free, excluded,
    # imports and input-taxed rows are 0 %. ReportTaxType values are the AU list the Xero docs
    # give (ReportTaxTypes: BASEXCLUDED, CAPITALEXINPUT, EXEMPTCAPITAL, EXEMPTEXPENSES,
    # EXEMPTEXPORT, EXEMPTOUTPUT, GSTONCAPIMPORTS, GSTONIMPORTS, INPUT, INPUTTAXED, OUTPUT);
    # which row reports to which is by name.
    "AU": """
        BASEXCLUDED     | BAS Excluded           | 0  | BASEXCLUDED     | TTTTT
        EXEMPTCAPITAL   | GST Free Capital       | 0  | EXEMPTCAPITAL   | TTTTF
        EXEMPTEXPENSES  | GST Free Expenses      | 0  | EXEMPTEXPENSES  | TTTTF
        EXEMPTEXPORT    | GST Free Exports       | 0  | EXEMPTEXPORT    | TTFTT
        EXEMPTOUTPUT    | GST Free Income        | 0  | EXEMPTOUTPUT    | TTFTT
        CAPEXINPUT      | GST on Capital         | 10 | CAPITALEXINPUT  | TTTTF
        GSTONCAPIMPORTS | GST on Capital Imports | 0  | GSTONCAPIMPORTS | FFFTF
        INPUT           | GST on Expenses        | 10 | INPUT           | TTTTF
        GSTONIMPORTS    | GST on Imports         | 0  | GSTONIMPORTS    | FFFTF
        OUTPUT          | GST on Income          | 10 | OUTPUT          | TTFTT
        INPUTTAXED      | Input Taxed            | 0  | INPUTTAXED      | TTTTT
    """,
    # NZ: the doc's "New Zealand" table without the retired 12.5 % OUTPUT/INPUT rows
    # (help.xero.com/nz/Tax-SetDefaults lists only these five for a new org). Names: the
    # constraints table prints "GST on Income" for OUTPUT2, but the same page's example GET
    # /TaxRates response and help.xero.com/nz both say "15% GST on Income" / "15% GST on
    # Expenses": we use those. ReportTaxType of ZERORATED (unverified: the NZ report types the
    # docs list are EXEMPTINPUT, EXEMPTOUTPUT, GSTONIMPORTS, INPUT, NONE, OUTPUT; zero-rated
    # supplies are reported with the exempt outputs).
    "NZ": """
        INPUT2       | 15% GST on Expenses | 15 | INPUT        | TTTTF
        OUTPUT2      | 15% GST on Income   | 15 | OUTPUT       | TTFTT
        GSTONIMPORTS | GST on Imports      | 0  | GSTONIMPORTS | TTFTF
        NONE         | No GST              | 0  | NONE         | TTTTT
        ZERORATED    | Zero Rated          | 0  | EXEMPTOUTPUT | FFFTT
    """,
    # UK: the doc's "United Kingdom" table, current rates only. Left out: the pre-2011 15 % /
    # 17.5 % rows and the capital-only CAPEX* rows (assets only: no sales invoice can use
    # them), the EC zero-rated acquisitions row, and the domestic reverse charge DRCHARGE* rows
    # (the table gives no rate for them and what Xero charges on a DRC sales line is
    # unverified). Rates are those in the names. ReportTaxType per row is by name (unverified:
    # the table gives none).
    "UK": """
        INPUT2             | 20% (VAT on Expenses)         | 20 | INPUT            | TTTTF
        OUTPUT2            | 20% (VAT on Income)           | 20 | OUTPUT           | TTFTT
        RRINPUT            | 5% (VAT on Expenses)          | 5  | INPUT            | TTTTF
        RROUTPUT           | 5% (VAT on Income)            | 5  | OUTPUT           | TTFTT
        ECACQUISITIONS     | EC Acquisitions (20%)         | 20 | ECACQUISITIONS   | TTTTF
        EXEMPTINPUT        | Exempt Expenses               | 0  | EXEMPTINPUT      | TTTTF
        EXEMPTOUTPUT       | Exempt Income                 | 0  | EXEMPTOUTPUT     | TTFTT
        NONE               | No VAT                        | 0  | NONE             | TTTTT
        REVERSECHARGES     | Reverse Charge Expenses (20%) | 20 | REVERSECHARGES   | TTTTF
        GSTONIMPORTS       | VAT on Imports                | 0  | GSTONIMPORTS     | FFFTF
        ECZROUTPUT         | Zero Rated EC Goods Income    | 0  | ECOUTPUT         | TTFTT
        ECZROUTPUTSERVICES | Zero Rated EC Services        | 0  | ECOUTPUTSERVICES | TTFTT
        ZERORATEDINPUT     | Zero Rated Expenses           | 0  | ZERORATEDINPUT   | TTTTF
        ZERORATEDOUTPUT    | Zero Rated Income             | 0  | ZERORATEDOUTPUT  | TTFTT
    """,
    # US: the doc's "United States" table, plus `OAKDALE` (below).
    # - AVALARA ("Auto Look Up (DO NOT USE)") is left out: the doc says it "does not work
    #   for transactions imported through the API".
    # - US orgs have no ReportTaxType ("US and Global do not support this element"; the
    #   TaxRates POST doc requires it only for AU, NZ and UK orgs): None, so not rendered.
    # - OUTPUT / INPUT rates: 0 % (unverified: the table prints no rate and US sales tax is
    #   set up by the organisation). Per the table both may be used on revenue AND expenses.
    # - Xero's newer automatic US sales tax (the spec's LineItem Taxability/SalesTaxCodeId,
    #   Invoice InvoiceAddresses) is not modelled.
    "US": """
        GSTONIMPORTS | Sales Tax on Imports | 0 | - | FFFTF
        NONE         | Tax Exempt           | 0 | - | TTTTT
        OUTPUT       | Tax on Sales         | 0 | - | TTTTT
        INPUT        | Tax on Purchases     | 0 | - | TTTTT
    """,
}
# TAX001 "Oakdale Sales Tax" is the TaxRates doc's own create example (State Tax 7.5 + Local
# Sales Tax 0.625 = 8.125 %), standing for the custom rate a US org adds; custom rates get
# TaxType TAX001, TAX002, ... (TaxRates doc). Its account-class flags copy OUTPUT's
# (unverified).
OAKDALE = TaxRate("TAX001", "Oakdale Sales Tax", (TaxComponent("State Tax", Decimal("7.5000")),
                  TaxComponent("Local Sales Tax", Decimal("0.6250"))), None, _applies("TTTTT"))


# ----- Chart of accounts and items -----------------------------------------------------


@dataclass(frozen=True)
class Account:
    account_id: str
    code: str
    name: str
    type: str
    account_class: str
    tax_type: str | None = None
    status: str = "ACTIVE"
    bank_account_number: str | None = None
    system_account: str | None = None
    updated_ms: int = 0


@dataclass(frozen=True)
class Item:
    item_id: str
    code: str
    name: str
    unit_price: Decimal
    account_code: str
    tax_type: str
    description: str | None = None
    updated_ms: int = 0


# Xero's account Types -> Class (developer.xero.com/documentation/api/accounting/types,
# "Account Class Types" / "Account Types").
ACCOUNT_CLASS_OF_TYPE: dict[str, str] = {
    account_type: account_class
    for account_class, types in (
        ("ASSET", "BANK CURRENT FIXED INVENTORY NONCURRENT PREPAYMENT"),
        ("EQUITY", "EQUITY"),
        ("EXPENSE", "DEPRECIATN DIRECTCOSTS EXPENSE OVERHEADS"),
        ("LIABILITY", "CURRLIAB LIABILITY TERMLIAB"),
        ("REVENUE", "OTHERINCOME REVENUE SALES"),
    )
    for account_type in types.split()
}


# ----- The organisation record and its timezone ----------------------------------------

# Windows zone ids as Xero spells them (spec `TimeZone` enum) -> IANA, from Unicode CLDR
# windowsZones.xml (territory 001). Only zones a test is likely to want; add as needed.
WINDOWS_TO_IANA: dict[str, str] = dict(pair.split("=") for pair in """
    AUSEASTERNSTANDARDTIME=Australia/Sydney EAUSTRALIASTANDARDTIME=Australia/Brisbane
    CENAUSTRALIASTANDARDTIME=Australia/Adelaide AUSCENTRALSTANDARDTIME=Australia/Darwin
    WAUSTRALIASTANDARDTIME=Australia/Perth TASMANIASTANDARDTIME=Australia/Hobart
    NEWZEALANDSTANDARDTIME=Pacific/Auckland CHATHAMISLANDSSTANDARDTIME=Pacific/Chatham
    GMTSTANDARDTIME=Europe/London GREENWICHSTANDARDTIME=Atlantic/Reykjavik UTC=Etc/UTC
    EASTERNSTANDARDTIME=America/New_York USEASTERNSTANDARDTIME=America/Indianapolis
    CENTRALSTANDARDTIME=America/Chicago MOUNTAINSTANDARDTIME=America/Denver
    USMOUNTAINSTANDARDTIME=America/Phoenix PACIFICSTANDARDTIME=America/Los_Angeles
    ALASKANSTANDARDTIME=America/Anchorage HAWAIIANSTANDARDTIME=Pacific/Honolulu
""".split())


def zone_of(windows_name: str) -> ZoneInfo:
    """The IANA zone for one of Xero's Timezone values; ValueError if we do not map it."""
    try:
        return ZoneInfo(WINDOWS_TO_IANA[windows_name])
    except KeyError:
        known = sorted(WINDOWS_TO_IANA)
        raise ValueError(f"unmapped Xero Timezone {windows_name!r}; known: {known}") from None


@dataclass(frozen=True)
class RegionSetup:
    """Everything region-specific about a new organisation."""

    version: Region  # Organisation.Version (spec enum AU, NZ, GLOBAL, UK, US, ...)
    country_code: str  # ISO 3166 (spec CountryCode: the UK is GB)
    base_currency: str
    timezone: str  # default Organisation.Timezone, a spec `TimeZone` value
    legal_suffix: str
    tax_number: str  # (unverified format) Organisation.TaxNumber: ABN / GST / VAT / EIN
    financial_year_end: tuple[int, int]  # (day, month), (unverified)
    sales_tax_basis: str  # spec SalesTaxBasis enum value (unverified per country)
    sales_tax_period: str  # spec SalesTaxPeriod enum value (unverified per country)
    sales_tax_type: str  # the revenue accounts' default TaxType
    purchases_tax_type: str
    no_tax_type: str  # what system accounts carry
    export_tax_type: str  # the zero rate for exports (for tests and notes)
    tax_account_name: str
    tax_component: str  # the name default rates give their one TaxComponent
    bank_account: str
    extra_rates: tuple[TaxRate, ...] = ()

    def tax_rates(self) -> list[TaxRate]:
        return tax_rates(DEFAULT_TAX_RATES[self.version], self.tax_component) + [*self.extra_rates]

    def accounts(self, updated_ms: int) -> list[Account]:
        """The part of the default chart Paydeck touches; codes as in Xero's demo charts."""

        def acct(code: str, name: str, type_: str, **extra: str | None) -> Account:
            cls = ACCOUNT_CLASS_OF_TYPE[type_]
            return Account(str(uuid.uuid4()), code, name, type_, cls, updated_ms=updated_ms,
                           **extra)

        return [
            acct("090", "Business Bank Account", "BANK", bank_account_number=self.bank_account),
            acct("200", "Sales", "REVENUE", tax_type=self.sales_tax_type),
            acct("260", "Other Revenue", "REVENUE", tax_type=self.sales_tax_type),
            acct("400", "Advertising", "EXPENSE", tax_type=self.purchases_tax_type),
            acct("610", "Accounts Receivable", "CURRENT", tax_type=self.no_tax_type,
                 system_account="DEBTORS"),
            # Types doc: "GST / VAT" system account is GST everywhere
            acct("820", self.tax_account_name, "CURRLIAB", tax_type=self.no_tax_type,
                 system_account="GST"),
        ]

    def items(self, updated_ms: int) -> list[Item]:
        return [
            Item(str(uuid.uuid4()), code, name, Decimal(price), "200", self.sales_tax_type, name,
                 updated_ms)
            for code, name, price in (("CONSULT-HR", "Consulting (per hour)", "180.00"),
                                      ("SUPPORT-MO", "Support plan (monthly)", "99.00"))
        ]


# Rows in `RegionSetup`'s field order; values the spec does not pin are marked there.
REGION_SETUPS: dict[str, RegionSetup] = {setup.version: setup for setup in (
    RegionSetup("AU", "AU", "AUD", "AUSEASTERNSTANDARDTIME", "Pty Ltd", "53004085616", (30, 6),
                "ACCRUALS", "QUARTERLY1", "OUTPUT", "INPUT", "BASEXCLUDED", "EXEMPTEXPORT",
                "GST", "GST", "062-000 12345678"),
    RegionSetup("NZ", "NZ", "NZD", "NEWZEALANDSTANDARDTIME", "Limited", "123-456-789", (31, 3),
                "INVOICE", "TWOMONTHS", "OUTPUT2", "INPUT2", "NONE", "ZERORATED",
                "GST", "GST", "12-3456-7890123-00"),
    RegionSetup("UK", "GB", "GBP", "GMTSTANDARDTIME", "Ltd", "GB123456789", (31, 3),
                "ACCRUAL", "QUARTERLY1", "OUTPUT2", "INPUT2", "NONE", "ZERORATEDOUTPUT",
                "VAT", "VAT", "20-00-00 12345678"),
    RegionSetup("US", "US", "USD", "EASTERNSTANDARDTIME", "Inc.", "12-3456789", (31, 12),
                "ACCRUAL", "MONTHLY", "OUTPUT", "INPUT", "NONE", "NONE",
                "Sales Tax", "Sales Tax", "121000248 123456789", (OAKDALE,)),
)}


def region_setup(region: str) -> RegionSetup:
    """The setup for `region`; ValueError naming the choices for anything else."""
    if region not in REGION_SETUPS:
        raise ValueError(f"unknown Xero region {region!r}; choose one of {list(REGION_SETUPS)}")
    return REGION_SETUPS[region]
