"""An organisation's reference data: what a mapping may name, read from Xero at run time.

Tax codes differ per region (AU OUTPUT = GST 10 %, NZ OUTPUT2 = 15 %), so nothing here is
hard-coded: it is read with GET /Organisation, /Accounts, /TaxRates, /Items, /Currencies.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Account:
    code: str
    name: str
    type: str
    status: str = "ACTIVE"

    @property
    def usable(self) -> bool:
        return self.status == "ACTIVE"


@dataclass(frozen=True)
class TaxRate:
    """One of GET /TaxRates (tests/specs/xero/xero_accounting.yaml, TaxRate). `rate` is
    EffectiveRate ("Effective Tax Rate (decimal to 4dp)"), what Xero charges, and what a CRM's
    percentage is matched against; `display_rate` is DisplayTaxRate, what Xero shows (they can
    differ for compound rates: developer.xero.com/documentation/api/accounting/taxrates).
    CanApplyToRevenue says whether a sales invoice may use it."""

    tax_type: str
    name: str
    rate: Decimal
    can_apply_to_revenue: bool = True
    status: str = "ACTIVE"
    display_rate: Decimal | None = None

    @property
    def usable_on_sales(self) -> bool:
        return self.status == "ACTIVE" and self.can_apply_to_revenue


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    sales_account_code: str | None = None
    sales_tax_type: str | None = None


@dataclass(frozen=True)
class PaymentTerms:
    """Xero's PaymentTermType and day: DAYSAFTERBILLDATE, DAYSAFTERBILLMONTH, OFCURRENTMONTH,
    OFFOLLOWINGMONTH."""

    type: str
    day: int


@dataclass(frozen=True)
class ReferenceData:
    base_currency: str
    currencies: frozenset[str]
    accounts: dict[str, Account] = field(default_factory=dict)
    tax_rates: dict[str, TaxRate] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    sales_terms: PaymentTerms | None = None
    organisation_name: str = ""
    # Organisation.Timezone as Xero names it (Windows-style, "AUSEASTERNSTANDARDTIME");
    # xero.timezones maps it to IANA. Invoice dates are local dates there.
    timezone: str = ""
    # Organisation.CountryCode (ISO 3166, "AU"): the organisation's locale on Paydeck's pages.
    country_code: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["currencies"] = sorted(self.currencies)
        return json.dumps(data, default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ReferenceData:
        data: dict[str, Any] = json.loads(raw)
        terms = data.get("sales_terms")
        return cls(
            base_currency=data["base_currency"],
            currencies=frozenset(data["currencies"]),
            accounts={k: Account(**v) for k, v in data["accounts"].items()},
            tax_rates={k: TaxRate(**{**v, "rate": Decimal(v["rate"]),
                                     "display_rate": None if v.get("display_rate") is None
                                     else Decimal(v["display_rate"])})
                       for k, v in data["tax_rates"].items()},
            items={k: Item(**v) for k, v in data["items"].items()},
            sales_terms=PaymentTerms(**terms) if terms else None,
            organisation_name=data.get("organisation_name", ""),
            timezone=data.get("timezone", ""),
            country_code=data.get("country_code", ""),
        )


@dataclass(frozen=True)
class ContactTerms:
    """What the engine checks on a linked contact just before invoicing it."""

    contact_id: str
    active: bool
    name: str = ""
    sales_terms: PaymentTerms | None = None  # Contact.PaymentTerms.Sales, if it has its own
