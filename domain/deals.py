"""The CRM-independent deal the invoice engine consumes; CRM adapters produce it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class Address:
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True)
class Organisation:
    """The company / organization the deal is with: the Xero contact to invoice."""

    id: str
    name: str
    email: str = ""
    tax_number: str = ""
    phone: str = ""
    address: Address | None = None


@dataclass(frozen=True)
class Person:
    """The deal's primary contact person."""

    id: str
    name: str
    email: str = ""
    phone: str = ""


@dataclass(frozen=True)
class LineItem:
    name: str
    quantity: Decimal
    unit_price: Decimal
    product_id: str | None = None
    sku: str | None = None
    description: str = ""
    # Percent off the whole line (Xero DiscountRate) ...
    discount_percent: Decimal | None = None
    # ... or an amount off the WHOLE line (Xero DiscountAmount). Adapters convert a CRM's
    # per-unit discount (HubSpot `discount`) to this: never send a per-unit value here.
    discount_amount: Decimal | None = None
    # The CRM's own tax label or rate text, mapped to a Xero TaxType by the admin's tax mapping.
    tax_label: str | None = None
    # The CRM's own tax on the line (Pipedrive `tax`, a percentage, and `tax_method`:
    # "exclusive" | "inclusive" | "none"). None: the CRM does not say (the admin's setting applies).
    tax_percent: Decimal | None = None
    tax_method: str | None = None
    # The CRM's own net line total (HubSpot `amount`): the builder checks Xero's arithmetic
    # gives the same figure. None when the CRM has none we can compare with.
    crm_total: Decimal | None = None
    # Why the adapter could not read this line exactly (e.g. no quantity): a review item.
    problem: str = ""


@dataclass(frozen=True)
class Deal:
    id: str
    name: str
    amount: Decimal | None = None
    currency: str | None = None
    pipeline_id: str = ""
    stage_id: str = ""
    owner_id: str | None = None
    close_date: date | None = None
    # The moment the CRM says the deal was won (HubSpot `closedate` once `hs_is_closed_won`;
    # Pipedrive `won_time`), aware UTC; None while the deal is open. The invoice is dated
    # with it, in the organisation's timezone (app.engine.steps.build.invoice_date).
    closed_at: datetime | None = None
    lines: tuple[LineItem, ...] = field(default_factory=tuple)
    organisation: Organisation | None = None
    person: Person | None = None
    # What `amount` is the sum of: False = the lines' net amounts (HubSpot: the deal amount is
    # the sum of the line items' `amount`, pre-tax); None = unknown whether exclusive tax is
    # in it (Pipedrive: the deal value is the sum of the products' `sum`, and its docs do not
    # say whether `sum` carries exclusive tax), so either figure is accepted.
    amount_includes_tax: bool | None = False
