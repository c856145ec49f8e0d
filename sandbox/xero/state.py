"""One organisation's records, seeded for its region, and the batch mechanics of saving."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sandbox.kit.clock import Clock
from sandbox.xero.records import Contact, EmailRecord, Invoice
from sandbox.xero.regions import Account, Item, RegionSetup, TaxRate, region_setup, zone_of
from sandbox.xero.wire import is_guid

T = TypeVar("T")
Saved = tuple[dict[str, Any], str | None]
"""One saved element: what the answer shows, and the record's id (None: refused)."""


@dataclass
class SaveResult:
    """What a batch save produced: one rendered element per input, in order."""

    elements: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    saved_ids: list[str] = field(default_factory=list)


class Snapshot(Generic[T]):
    """A read-only attribute: a list copy, taken under the lock, of a ledger collection."""

    def __init__(self, collection: str) -> None:
        self.collection = collection

    def __get__(self, ledger: Ledger, owner: type | None = None) -> list[T]:
        with ledger.lock:
            values = getattr(ledger, self.collection)
            return list(values.values() if isinstance(values, dict) else values)


class Ledger:
    """The records of one tenant. Callers hold `lock` (an RLock) around every change.

    `region` ("AU", "NZ", "UK", "US") picks the starting tax rates, accounts, items,
    base currency and timezone (sandbox/xero/regions.py); `timezone` overrides the
    region's Organisation.Timezone (one of Xero's Windows-style names).
    """

    def __init__(
        self,
        tenant_id: str,
        name: str,
        lock: AbstractContextManager[Any],
        clock: Clock,
        *,
        region: str = "AU",
        timezone: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.lock = lock
        self.clock = clock
        self._last_ms = 0
        self.setup: RegionSetup = region_setup(region)
        self.region = self.setup.version
        self.timezone = timezone or self.setup.timezone
        self.zone = zone_of(self.timezone)
        self.base_currency = self.setup.base_currency
        self.created_ms = self.stamp()
        self.organisation_id = str(uuid.uuid4())
        self.organisation_name = name
        self.short_code = "!" + secrets.token_hex(3)[:5]
        self.rate_by_type: dict[str, TaxRate] = {t.tax_type: t for t in self.setup.tax_rates()}
        self.account_by_code: dict[str, Account] = {
            a.code: a for a in self.setup.accounts(self.created_ms)
        }
        self.item_by_code: dict[str, Item] = {i.code: i for i in self.setup.items(self.created_ms)}
        self.currency_codes: list[str] = [self.base_currency]
        self.contact_by_id: dict[str, Contact] = {}
        self.invoice_by_id: dict[str, Invoice] = {}
        self.next_number = 1
        self.emails: list[EmailRecord] = []

    def stamp(self) -> int:
        """Now in ms, strictly increasing per tenant so UpdatedDateUTC orders changes."""
        self._last_ms = max(int(self.clock.now() * 1000), self._last_ms + 1)
        return self._last_ms

    def today(self) -> date:
        """The organisation's local date now. Spec, Invoice.Date: "If the Date element is
        not specified it will default to the current date based on the timezone setting
        of the organisation"; Organisation.Timezone names that zone."""
        with self.lock:
            return datetime.fromtimestamp(self.clock.now(), tz=self.zone).date()

    def find_contact(self, key: str) -> Contact | None:
        """By ContactID (any case) or, as Xero allows, by ContactNumber."""
        if is_guid(key):
            return self.contact_by_id.get(str(uuid.UUID(key)))
        return next((c for c in self.contact_by_id.values() if c.contact_number == key), None)

    def find_invoice(self, key: str) -> Invoice | None:
        """By InvoiceID (any case) or, as Xero allows, by InvoiceNumber."""
        if is_guid(key):
            return self.invoice_by_id.get(str(uuid.UUID(key)))
        return next((i for i in self.invoice_by_id.values() if i.invoice_number == key), None)

    def contact(self, contact_id: str) -> Contact:
        """The contact (KeyError if there is none)."""
        with self.lock:
            return _required(self.find_contact(contact_id), contact_id)

    def invoice(self, invoice_id: str) -> Invoice:
        """The invoice (KeyError if there is none)."""
        with self.lock:
            return _required(self.find_invoice(invoice_id), invoice_id)

    def next_invoice_number(self) -> str:
        """Xero's default numbering: INV-0001, INV-0002, ... skipping numbers in use."""
        number = self.next_number
        while self.number_taken(f"INV-{number:04d}", None):
            number += 1
            self.next_number = number
        return f"INV-{number:04d}"

    def number_taken(self, number: str, invoice_id: str | None) -> bool:
        return any(
            i.invoice_number == number and i.invoice_id != invoice_id and i.status != "DELETED"
            for i in self.invoice_by_id.values()
        )

    def batch(self, elements: Sequence[Any], summarize: bool,
              save: Callable[[Any], Saved]) -> SaveResult:
        """Save each element in order; with `summarize`, any failure undoes the lot
        (timestamps stay monotonic: the clock of `stamp` is not rewound)."""
        with self.lock:
            undo = (dict(self.contact_by_id), dict(self.invoice_by_id), self.next_number)
            result = SaveResult()
            for element in elements:
                rendered, saved_id = save(element)
                result.elements.append(rendered)
                if saved_id is None:
                    result.failed.append(rendered)
                else:
                    result.saved_ids.append(saved_id)
            if summarize and result.failed:
                self.contact_by_id, self.invoice_by_id, self.next_number = undo
                result.saved_ids = []
            return result


def _required(found: T | None, key: str) -> T:
    if found is None:
        raise KeyError(key)
    return found
