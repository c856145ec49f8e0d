"""An in-memory CRM (deals written directly) for invoice-engine tests and benchmarks, until
the fake HubSpot and Pipedrive serve deals over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.deals import Deal, LineItem, Organisation, Person
from domain.crm import InvoiceFields


@dataclass
class MemoryCrm:
    """A CRM whose deals the test writes directly (this issue's tests build deals directly)."""

    deals: dict[str, Deal] = field(default_factory=dict)
    written: list[InvoiceFields] = field(default_factory=list)
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, deal: Deal) -> Deal:
        self.deals[deal.id] = deal
        return deal

    def fetch_deals(self, installation: Any, deal_ids: Sequence[str]) -> dict[str, Deal | None]:
        with self.lock:
            self.fetches += 1
        return {i: self.deals.get(i) for i in deal_ids}

    def write_invoice_fields(self, installation: Any, updates: Sequence[InvoiceFields]) -> None:
        with self.lock:
            self.written.extend(updates)

    def ensure_deal_fields(self, installation: Any) -> dict[str, str]:
        """Nothing to create: every InvoiceFields attribute is a field here."""
        return {}

    def last_written(self, deal_id: str) -> InvoiceFields:
        return [w for w in self.written if w.deal_id == deal_id][-1]


def deal(deal_id: str = "101", *, org: str = "Initech Pty Ltd", email: str = "ap@initech.example",
         tax: str = "", lines: int = 1, **kw: Any) -> Deal:
    items = tuple(LineItem(name=f"Service {n}", quantity=Decimal("2"), unit_price=Decimal("150.00"),
                           product_id=f"p{n}") for n in range(1, lines + 1))
    # The amount is the lines' sum, as a CRM computes it (the builder checks it against them).
    return Deal(id=deal_id, name=f"Deal {deal_id}", amount=Decimal("300.00") * lines, lines=items,
                organisation=Organisation(id=f"co-{org}", name=org, email=email, tax_number=tax),
                person=Person(id=f"pe-{deal_id}", name="Pat Buyer", email=email), **kw)
