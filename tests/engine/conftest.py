"""One step of a sync run at a time: a RunContext over real rows (the test database) with a
stub Xero client whose answers the test sets and whose calls it reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from app import wiring
from app.engine.context import DealWork, RunContext
from app.extensions import db
from app.models import (ConnectionStatus, CrmKind, DealSyncRequest, Installation,
                        InstallationSettings, InvoiceLink, InvoiceLinkState, StageAction,
                        XeroConnection)
from sandbox.memory_crm import MemoryCrm
from xero.client import ContactResult, InvoiceResult
from xero.errors import BatchMismatch, FixData
from xero.reference import Account, ContactTerms, ReferenceData, TaxRate

WRITTEN = datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc)
REF = ReferenceData(base_currency="AUD", currencies=frozenset({"AUD"}),
                    accounts={"200": Account("200", "Sales", "REVENUE")},
                    tax_rates={"OUTPUT": TaxRate("OUTPUT", "GST on Income", Decimal("10"))},
                    organisation_name="Acme Pty Ltd", timezone="AUSEASTERNSTANDARDTIME")


@dataclass
class StubXero:
    """Xero as the steps call it (xero.client.XeroClient's methods), answering as set."""

    by_reference: dict[str, list[InvoiceResult]] = field(default_factory=dict)
    invoices: dict[str, InvoiceResult] = field(default_factory=dict)
    terms: dict[str, ContactTerms] = field(default_factory=dict)
    pages: list[list[ContactResult]] = field(default_factory=list)
    new_contacts: list[ContactResult | BatchMismatch] = field(default_factory=list)
    answers: list[InvoiceResult | BatchMismatch] = field(default_factory=list)
    email_refusal: FixData | None = None
    reference: ReferenceData = REF
    calls: list[tuple[str, object]] = field(default_factory=list)
    on_create: Callable[[], None] = lambda: None

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def invoices_by_reference(self, references: Sequence[str]) -> dict[str, list[InvoiceResult]]:
        self.calls.append(("invoices_by_reference", list(references)))
        return {r: self.by_reference[r] for r in references if r in self.by_reference}

    def invoices_by_ids(self, invoice_ids: Sequence[str]) -> list[InvoiceResult]:
        self.calls.append(("invoices_by_ids", list(invoice_ids)))
        return [self.invoices[i] for i in invoice_ids if i in self.invoices]

    def contact_pages(self, since: datetime | None, first_page: int = 1,
                      ) -> Iterator[tuple[int, list[ContactResult]]]:
        self.calls.append(("contact_pages", (since, first_page)))
        yield from enumerate(self.pages[first_page - 1:], start=first_page)

    def create_contacts(self, contacts: Sequence[object]) -> list[ContactResult | BatchMismatch]:
        self.calls.append(("create_contacts", list(contacts)))
        return self.new_contacts[:len(contacts)]

    def contact_terms(self, contact_ids: Sequence[str]) -> dict[str, ContactTerms]:
        self.calls.append(("contact_terms", list(contact_ids)))
        return {c: self.terms[c] for c in contact_ids if c in self.terms}

    def create_invoices(self, drafts: Sequence[object], key: str) -> list[InvoiceResult | BatchMismatch]:
        self.calls.append(("create_invoices", (list(drafts), key)))
        self.on_create()
        return self.answers[:len(drafts)]

    def update_invoices(self, updates: Sequence[object], key: str) -> list[InvoiceResult | BatchMismatch]:
        self.calls.append(("update_invoices", (list(updates), key)))
        return self.answers[:len(updates)]

    def email_invoice(self, invoice_id: str, attempt: str = "") -> None:
        self.calls.append(("email_invoice", invoice_id))
        if self.email_refusal is not None:
            raise self.email_refusal

    def reference_data(self) -> ReferenceData:
        self.calls.append(("reference_data", None))
        return self.reference


def invoice(reference: str, invoice_id: str = "inv-1", status: str = "AUTHORISED", *,
            updated_at: datetime = WRITTEN, **kw: object) -> InvoiceResult:
    """An invoice as Xero answers for it."""
    return InvoiceResult(reference, invoice_id, f"INV-{invoice_id}", status, "AUD",
                         Decimal("330.00"), Decimal("330.00"), Decimal("0.00"), None,
                         updated_at, **kw)  # type: ignore[arg-type]


@dataclass
class Batch:
    """Builds the RunContext of a batch for the installation the fixture made."""

    installation_id: int
    connection_id: int
    xero: StubXero
    crm: MemoryCrm

    @property
    def installation(self) -> Installation:
        return db.session.get(Installation, self.installation_id)

    def link(self, deal_id: str, state: InvoiceLinkState = InvoiceLinkState.CREATED,
             **kw: object) -> InvoiceLink:
        link = InvoiceLink(installation_id=self.installation_id, deal_id=deal_id, trigger="deal",
                           reference=f"HubSpot 4711 deal {deal_id}",
                           idempotency_key=f"paydeck-invoice-{deal_id}", state=state, **kw)
        db.session.add(link)
        db.session.commit()
        return link

    def context(self, *deal_ids: str, action: StageAction = StageAction.AUTHORISE,
                source: str = "test:step") -> RunContext:
        """A context over a request per deal (committed rows, as the job reads them)."""
        requests = [DealSyncRequest(installation_id=self.installation_id, deal_id=d,
                                    action=action, source=source) for d in deal_ids]
        db.session.add_all(requests)
        db.session.commit()
        installation = self.installation
        return RunContext(installation, db.session.get(XeroConnection, self.connection_id),
                          self.xero, [DealWork.of(r) for r in requests],  # type: ignore[arg-type]
                          installation.settings)  # type: ignore[arg-type]


@pytest.fixture
def batch(app, monkeypatch) -> Batch:
    """An active HubSpot installation (account 4711) connected to Xero, with defaults."""
    installation = Installation(crm=CrmKind.HUBSPOT, account_id="4711")
    db.session.add(installation)
    db.session.flush()
    db.session.add(InstallationSettings(installation_id=installation.id,
                                        default_account_code="200", default_tax_type="OUTPUT"))
    connection = XeroConnection(installation_id=installation.id, tenant_id="tenant-1",
                                status=ConnectionStatus.CONNECTED)
    db.session.add(connection)
    db.session.commit()
    crm = MemoryCrm()
    monkeypatch.setitem(wiring.ADAPTERS, "hubspot", crm)
    return Batch(installation.id, connection.id, StubXero(), crm)
