"""The Accounting API fake, driven through xero-python exactly as Paydeck drives Xero.

Plain `requests` appears only where the SDK cannot express the case (a raw 404 body,
ISO dates in a body, a dropped connection seen by a `requests` client).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
import urllib3
from xero_python.accounting import AccountingApi
from xero_python.accounting.models import (
    AccountType,
    Contact,
    Contacts,
    CountryCode,
    CurrencyCode,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
    PaymentTermType,
    RequestEmpty,
)
from xero_python.api_client.configuration import Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import (
    AccountingBadRequestException,
    HTTPStatusException,
    NotFoundException,
    RateLimitException,
)

from sandbox import FakeXero, LoopbackServer
from xero.wire import XeroApiClient
from sandbox.xero.books import TenantBooks
from sandbox.xero.where import QueryError, parse_where
from sandbox.xero.wire import ZERO_GUID

from .support import TIMEOUT, run_concurrently

TENANT_NAME = "Paydeck Demo (AU)"
DUE = date(2026, 12, 31)


# ----- harness ---------------------------------------------------------------


def sdk_api(base_url: str, access_token: str, *, urllib3_retries: bool = False) -> AccountingApi:
    """An AccountingApi as Paydeck builds one (xero/client.py), pointed at the fake.

    Like Paydeck it uses xero.wire.XeroApiClient (query booleans as `true`/`false`, no
    read-only fields in bodies: the fake refuses both) and turns off urllib3's own Retry(3), which would otherwise resend
    PUTs after a dropped connection and sleep through 429s inside the call; pass
    `urllib3_retries=True` to see the SDK's defaults. The token dict has no
    refresh_token, so the SDK never tries to refresh against the real identity server.
    """
    token: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 1800,
        "expires_at": time.time() + 1800,
        "scope": ["accounting.invoices", "accounting.contacts", "accounting.settings.read"],
    }
    config = Configuration(oauth2_token=OAuth2Token(client_id="paydeck", client_secret="s"))
    client = XeroApiClient(config, oauth2_token_getter=lambda: token, oauth2_token_saver=token.update)
    if not urllib3_retries:
        client.rest_client.pool_manager.connection_pool_kw["retries"] = False
    return AccountingApi(client, base_url=f"{base_url}/api.xro/2.0")


@dataclass
class Sandbox:
    fake: FakeXero
    url: str
    tenant_id: str
    token: str
    api: AccountingApi

    @property
    def books(self) -> TenantBooks:
        return self.fake.accounting(self.tenant_id)

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A plain HTTP call to the accounting API with this tenant's credentials."""
        headers = {"Authorization": f"Bearer {self.token}", "xero-tenant-id": self.tenant_id}
        headers.update(kwargs.pop("headers", {}))
        return requests.request(
            method, f"{self.url}/api.xro/2.0{path}", headers=headers, timeout=TIMEOUT, **kwargs
        )

    def reconnect(self) -> None:
        """A fresh token (e.g. after moving the clock past the 30-minute access TTL)."""
        self.token = self.fake.issue_token_for_tenant(self.tenant_id)
        self.api = sdk_api(self.url, self.token)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    fake = FakeXero()
    tenant_id = fake.add_tenant(TENANT_NAME)
    with LoopbackServer(fake) as server:
        token = fake.issue_token_for_tenant(tenant_id)
        yield Sandbox(fake, server.url, tenant_id, token, sdk_api(server.url, token))


def line(
    unit: str,
    qty: str = "1",
    *,
    account: str | None = "200",
    tax: str | None = "OUTPUT",
    discount: str | None = None,
    description: str = "Services",
) -> LineItem:
    return LineItem(
        description=description,
        quantity=Decimal(qty),
        unit_amount=Decimal(unit),
        account_code=account,
        tax_type=tax,
        discount_rate=Decimal(discount) if discount else None,
    )


def invoice(contact_id: str, *lines: LineItem, **fields: Any) -> Invoice:
    fields.setdefault("line_amount_types", LineAmountTypes.EXCLUSIVE)
    fields.setdefault("date", date(2026, 11, 20))
    return Invoice(
        type="ACCREC",
        contact=Contact(contact_id=contact_id),
        line_items=list(lines) or [line("100.00")],
        **fields,
    )


def create(sb: Sandbox, *invoices: Invoice, **kwargs: Any) -> list[Invoice]:
    created: list[Invoice] = sb.api.create_invoices(
        sb.tenant_id, Invoices(invoices=list(invoices)), **kwargs
    ).invoices
    return created


@pytest.fixture
def customer(sandbox: Sandbox) -> str:
    return sandbox.books.add_contact("Acme Pty Ltd", EmailAddress="ap@acme.test").contact_id


# ----- reference data --------------------------------------------------------


def test_organisation_is_a_realistic_au_org(sandbox: Sandbox) -> None:
    org = sandbox.api.get_organisations(sandbox.tenant_id).organisations[0]
    assert org.name == TENANT_NAME
    assert (org.base_currency, org.country_code) == (CurrencyCode.AUD, CountryCode.AU)
    assert org.payment_terms.sales.day == 30
    assert org.payment_terms.sales.type == PaymentTermType.DAYSAFTERBILLDATE
    assert org.short_code.startswith("!")
    assert org.created_date_utc.tzinfo is not None


def test_tax_rates_carry_gst_rules(sandbox: Sandbox) -> None:
    rates = {r.tax_type: r for r in sandbox.api.get_tax_rates(sandbox.tenant_id).tax_rates}
    assert {"OUTPUT", "EXEMPTOUTPUT", "BASEXCLUDED", "INPUT"} <= set(rates)
    assert rates["OUTPUT"].name == "GST on Income"
    assert rates["OUTPUT"].effective_rate == Decimal("10")
    assert isinstance(rates["OUTPUT"].effective_rate, Decimal)
    assert rates["EXEMPTOUTPUT"].effective_rate == 0
    assert rates["OUTPUT"].can_apply_to_revenue and not rates["INPUT"].can_apply_to_revenue
    assert {r.status for r in rates.values()} == {"ACTIVE"}
    only = sandbox.api.get_tax_rates(sandbox.tenant_id, where='TaxType=="OUTPUT"').tax_rates
    assert [r.tax_type for r in only] == ["OUTPUT"]


def test_accounts_items_and_currencies(sandbox: Sandbox) -> None:
    tenant = sandbox.tenant_id
    accounts = {a.code: a for a in sandbox.api.get_accounts(tenant).accounts}
    assert accounts["090"].type == AccountType.BANK and accounts["090"].bank_account_number
    assert accounts["400"].type == AccountType.EXPENSE
    revenue = sandbox.api.get_accounts(tenant, where='Type=="REVENUE" AND Status=="ACTIVE"')
    assert sorted(a.code for a in revenue.accounts) == ["200", "260"]
    sandbox.books.set_account_status("260", "ARCHIVED")
    assert sandbox.api.get_accounts(tenant, where='Code=="260"').accounts[0].status == "ARCHIVED"

    items = sandbox.api.get_items(tenant).items
    assert items and all(isinstance(i.sales_details.unit_price, Decimal) for i in items)
    assert {i.sales_details.account_code for i in items} == {"200"}

    def codes() -> list[CurrencyCode]:
        return [c.code for c in sandbox.api.get_currencies(tenant).currencies]

    assert codes() == [CurrencyCode.AUD]
    sandbox.fake.enable_currency(tenant, "USD")
    assert codes() == [CurrencyCode.AUD, CurrencyCode.USD]
    with pytest.raises(ValueError):
        sandbox.fake.enable_currency(tenant, "XXX")


# ----- contacts ----------------------------------------------------------------


def test_contact_create_round_trips(sandbox: Sandbox) -> None:
    before = sandbox.fake.now()
    created = sandbox.api.create_contacts(
        sandbox.tenant_id,
        Contacts(
            contacts=[
                Contact(
                    name="Globex",
                    email_address="ar@globex.test",
                    tax_number="53 004 085 616",
                    contact_number="HS-42",
                )
            ]
        ),
    ).contacts[0]
    assert created.contact_status == "ACTIVE" and not created.has_validation_errors
    assert (created.email_address, created.contact_number) == ("ar@globex.test", "HS-42")
    assert abs(created.updated_date_utc.timestamp() - before) < 5
    assert [a.address_type for a in created.addresses] == ["STREET", "POBOX"]  # Xero's blanks
    fetched = sandbox.api.get_contact(sandbox.tenant_id, created.contact_id).contacts[0]
    assert fetched.name == "Globex"
    by_number = sandbox.api.get_contact(sandbox.tenant_id, "HS-42").contacts[0]  # Xero allows it
    assert by_number.contact_id == created.contact_id


def test_duplicate_name_fails_the_batch_by_default(sandbox: Sandbox, customer: str) -> None:
    with pytest.raises(AccountingBadRequestException) as caught:
        sandbox.api.create_contacts(
            sandbox.tenant_id,
            Contacts(contacts=[Contact(name="New Co"), Contact(name="ACME PTY LTD")]),
        )
    error = caught.value.error_data
    assert caught.value.status == 400
    assert (error["ErrorNumber"], error["Type"]) == (10, "ValidationException")
    assert error["Message"] == "A validation exception occurred"
    message = error["Elements"][0]["ValidationErrors"][0]["Message"]
    assert "already assigned to another contact" in message
    assert caught.value.reason == message  # the SDK surfaces the first message
    assert [c.name for c in sandbox.books.contacts] == ["Acme Pty Ltd"]  # nothing created


def test_duplicate_name_with_summarize_errors_false(sandbox: Sandbox, customer: str) -> None:
    result = sandbox.api.create_contacts(
        sandbox.tenant_id,
        Contacts(contacts=[Contact(name="New Co"), Contact(name="acme pty ltd"), Contact(name="")]),
        summarize_errors=False,
    ).contacts
    assert [c.has_validation_errors for c in result] == [False, True, True]
    assert result[1].contact_id == ZERO_GUID
    assert "must be unique across all active contacts" in result[1].validation_errors[0].message
    assert result[2].validation_errors[0].message == "The contact name must be specified."
    assert sorted(c.name for c in sandbox.books.contacts) == ["Acme Pty Ltd", "New Co"]
    # xero.wire.XeroApiClient sends the spec's lowercase boolean (xero-python alone: "False").
    assert sandbox.fake.api_calls[-1].query == "summarizeErrors=false"


def test_batch_of_50_with_a_few_bad_elements(sandbox: Sandbox, customer: str) -> None:
    names = [f"Customer {i:02d}" for i in range(50)]
    names[7] = names[23] = "Acme Pty Ltd"  # taken by an existing contact
    names[30] = names[29]  # duplicate inside the batch: the later one fails
    names[41] = "   "  # blank after trimming
    batch = Contacts(
        contacts=[Contact(name=n, email_address=f"c{i}@x.test") for i, n in enumerate(names)]
    )

    with pytest.raises(AccountingBadRequestException) as caught:
        sandbox.api.create_contacts(sandbox.tenant_id, batch)
    assert len(caught.value.error_data["Elements"]) == 4
    assert len(sandbox.books.contacts) == 1  # all or nothing

    result = sandbox.api.create_contacts(sandbox.tenant_id, batch, summarize_errors=False).contacts
    failed = [i for i, c in enumerate(result) if c.has_validation_errors]
    assert failed == [7, 23, 30, 41]
    assert [c.email_address for c in result][:3] == ["c0@x.test", "c1@x.test", "c2@x.test"]
    assert len(sandbox.books.contacts) == 1 + 46


def test_archived_contacts_free_their_name_and_leave_lists(sandbox: Sandbox, customer: str) -> None:
    tenant = sandbox.tenant_id
    sandbox.api.update_or_create_contacts(
        tenant, Contacts(contacts=[Contact(contact_id=customer, contact_status="ARCHIVED")])
    )
    assert sandbox.api.get_contacts(tenant).contacts == []
    assert len(sandbox.api.get_contacts(tenant, include_archived=True).contacts) == 1
    again = sandbox.api.create_contacts(tenant, Contacts(contacts=[Contact(name="Acme Pty Ltd")]))
    assert again.contacts[0].contact_id != customer


def test_contact_updates_by_id(sandbox: Sandbox, customer: str) -> None:
    tenant = sandbox.tenant_id
    before = sandbox.books.contact(customer).updated_ms
    sandbox.fake.advance(5)
    updated = sandbox.api.update_or_create_contacts(
        tenant, Contacts(contacts=[Contact(contact_id=customer, email_address="new@acme.test")])
    ).contacts[0]
    assert (updated.name, updated.email_address) == ("Acme Pty Ltd", "new@acme.test")
    assert sandbox.books.contact(customer).updated_ms >= before + 5000
    other = sandbox.books.add_contact("Initech").contact_id
    with pytest.raises(AccountingBadRequestException) as caught:
        sandbox.api.update_contact(tenant, other, Contacts(contacts=[Contact(name="acme pty ltd")]))
    assert "already assigned" in caught.value.reason
    renamed = sandbox.api.update_contact(
        tenant, other, Contacts(contacts=[Contact(name="Initrode")])
    )
    assert renamed.contacts[0].name == "Initrode"


def test_contact_reads_filter_search_page_and_order(sandbox: Sandbox) -> None:
    tenant, books = sandbox.tenant_id, sandbox.books
    ids = {}
    for name, extra in [
        ("Zeta Ltd", {"ContactNumber": "HS-1"}),
        ("Alpha Co", {"EmailAddress": "billing@alpha.test"}),
        ("Mid Corp", {"FirstName": "Ada", "LastName": "Lovelace"}),
        ("Beta Inc", {"TaxNumber": "11 222 333 444"}),
    ]:
        ids[name] = books.add_contact(name, **extra).contact_id

    def names(**params: Any) -> list[str]:
        return [c.name for c in sandbox.api.get_contacts(tenant, **params).contacts]

    assert names(i_ds=[ids["Zeta Ltd"], ids["Beta Inc"]], order="Name ASC") == [
        "Beta Inc",
        "Zeta Ltd",
    ]
    assert names(where='EmailAddress=="billing@alpha.test"') == ["Alpha Co"]
    assert names(where='EmailAddress=="BILLING@alpha.test"') == []  # exact, as Xero
    assert names(where=f'ContactID==guid("{ids["Mid Corp"].upper()}")') == ["Mid Corp"]
    assert names(where='Name=="Zeta Ltd" OR TaxNumber=="11 222 333 444"', order="Name") == [
        "Beta Inc",
        "Zeta Ltd",
    ]
    assert names(search_term="LOVELACE") == ["Mid Corp"]
    assert names(search_term="hs-1") == ["Zeta Ltd"]
    assert names(search_term="alpha.test") == ["Alpha Co"]

    page = sandbox.api.get_contacts(tenant, order="Name DESC", page=2, page_size=3)
    assert [c.name for c in page.contacts] == ["Alpha Co"]
    assert (page.pagination.page, page.pagination.page_size) == (2, 3)
    assert (page.pagination.page_count, page.pagination.item_count) == (2, 4)

    summary = sandbox.api.get_contacts(tenant, summary_only=True).contacts
    assert all(c.addresses is None and c.phones is None for c in summary)

    since = datetime.fromtimestamp(sandbox.fake.now(), tz=UTC)
    sandbox.fake.advance(1)
    books.archive_contact(ids["Beta Inc"])
    books.add_contact("Gamma Pty")
    assert names(if_modified_since=since) == ["Gamma Pty"]
    assert names(if_modified_since=since, include_archived=True, order="Name") == [
        "Beta Inc",
        "Gamma Pty",
    ]


# ----- invoices: creation and arithmetic ------------------------------------------


def test_invoices_are_numbered_per_tenant(sandbox: Sandbox, customer: str) -> None:
    first, second = create(sandbox, invoice(customer), invoice(customer, reference="deal-77"))
    assert (first.invoice_number, second.invoice_number) == ("INV-0001", "INV-0002")
    assert second.reference == "deal-77"
    manual = create(sandbox, invoice(customer, invoice_number="INV-0004"))[0]
    assert manual.invoice_number == "INV-0004"
    following = [i.invoice_number for i in create(sandbox, invoice(customer), invoice(customer))]
    assert following == ["INV-0003", "INV-0005"]  # skips the number taken by hand
    with pytest.raises(AccountingBadRequestException) as caught:
        create(sandbox, invoice(customer, invoice_number="INV-0001"))
    assert caught.value.reason == "Invoice # must be unique."
    other = sandbox.fake.add_tenant("Second Org")
    contact = sandbox.fake.accounting(other).add_contact("Acme Pty Ltd").contact_id
    assert (
        sandbox.fake.accounting(other)
        .add_invoice({"Type": "ACCREC", "Contact": {"ContactID": contact}})
        .invoice_number
        == "INV-0001"
    )


TOTALS_CASES = {
    "exclusive": (
        LineAmountTypes.EXCLUSIVE,
        [line("33.33", "3", discount="10"), line("100.00", tax="EXEMPTOUTPUT"), line("0.55", "2")],
        ["89.99", "100.00", "1.10"],
        ["9.00", "0.00", "0.11"],
        ("191.09", "9.11", "200.20", "10.00"),
    ),
    "inclusive": (
        LineAmountTypes.INCLUSIVE,
        [line("110.00"), line("10.01", "3", discount="15"), line("50.00", tax="EXEMPTOUTPUT")],
        ["110.00", "25.53", "50.00"],
        ["10.00", "2.32", "0.00"],
        ("173.21", "12.32", "185.53", "4.50"),
    ),
    "notax": (
        LineAmountTypes.NOTAX,
        [line("45.50", "2", discount="12.5"), line("20.00", tax=None)],
        ["79.63", "20.00"],
        ["0.00", "0.00"],
        ("99.63", "0.00", "99.63", "11.37"),
    ),
}


@pytest.mark.parametrize("case", list(TOTALS_CASES))
def test_invoice_totals_are_exact_decimals(sandbox: Sandbox, customer: str, case: str) -> None:
    amount_types, lines, line_amounts, line_taxes, totals = TOTALS_CASES[case]
    created = create(sandbox, invoice(customer, *lines, line_amount_types=amount_types))[0]
    assert [li.line_amount for li in created.line_items] == [Decimal(a) for a in line_amounts]
    assert [li.tax_amount for li in created.line_items] == [Decimal(t) for t in line_taxes]
    got = (
        created.sub_total,
        created.total_tax,
        created.total,
        created.total_discount or Decimal(0),
    )
    assert got == tuple(Decimal(t) for t in totals)
    assert all(isinstance(v, Decimal) for v in got)
    assert (created.amount_due, created.amount_paid) == (created.total, Decimal("0"))
    stored = sandbox.books.invoice(created.invoice_id)
    assert (stored.sub_total, stored.total_tax, stored.total) == got[:3]


def test_tax_is_rounded_per_line_not_per_invoice(sandbox: Sandbox, customer: str) -> None:
    """"Rounding in Xero" guide: tax per line, rounded to 2 dp, then summed.

    Each line: 0.05 x 10 % = 0.005 -> 0.01 (half away from zero), so TotalTax is
    3 x 0.01 = 0.03. Worked on the total it would be 0.15 x 10 % = 0.015 -> 0.02, which
    is what this fake used to book (it rounded per tax rate).
    """
    lines = [line("0.05") for _ in range(3)]
    created = create(sandbox, invoice(customer, *lines))[0]
    assert [li.tax_amount for li in created.line_items] == [Decimal("0.01")] * 3
    assert created.total_tax == Decimal("0.03")
    assert created.total == Decimal("0.18")  # 0.15 + 0.03


def test_items_fill_in_line_defaults(sandbox: Sandbox, customer: str) -> None:
    sandbox.books.add_item("WEB-BUILD", "Website build", "2500.00")
    item_line = LineItem(item_code="WEB-BUILD", quantity=Decimal("2"))
    created = create(sandbox, invoice(customer, item_line))[0]
    li = created.line_items[0]
    assert (li.unit_amount, li.account_code, li.tax_type) == (Decimal("2500.00"), "200", "OUTPUT")
    assert (li.description, created.total) == ("Website build", Decimal("5500.00"))


BadInvoice = tuple[Callable[[str], Invoice], str]

BAD_INVOICES: dict[str, BadInvoice] = {
    "unknown account": (
        lambda c: invoice(c, line("10.00", account="999")),
        "Account code '999' is not a valid code for this document.",
    ),
    "bank account": (
        lambda c: invoice(c, line("10.00", account="090")),
        "Account code '090' is not a valid code for this document.",
    ),
    # TaxRates doc, "Tax Rate Constraints": INPUT may not be used on a REVENUE account.
    "expense-only tax": (
        lambda c: invoice(c, line("10.00", tax="INPUT")),
        "The TaxType code 'INPUT' cannot be used with account code '200'.",
    ),
    # Observed wording (XeroAPI/xero-mcp-server#210).
    "unknown tax": (
        lambda c: invoice(c, line("10.00", tax="GST15")),
        "The TaxType code 'GST15' is not valid",
    ),
    "currency not enabled": (
        lambda c: invoice(c, currency_code=CurrencyCode.USD),
        "Organisation is not subscribed to currency USD",
    ),
    "unknown contact": (lambda c: invoice(str(uuid.uuid4())), "could not be found"),
    "authorised without due date": (
        lambda c: invoice(c, status="AUTHORISED"),
        "Due Date is required",
    ),
    "authorised without account": (
        lambda c: invoice(c, line("1.00", account=None), status="AUTHORISED", due_date=DUE),
        "Account code must be specified",
    ),
}


def test_bad_invoices_get_validation_errors(sandbox: Sandbox, customer: str) -> None:
    sandbox.books.set_account_status("260", "ARCHIVED")
    cases: dict[str, BadInvoice] = {
        **BAD_INVOICES,
        "archived account": (
            lambda c: invoice(c, line("1.00", account="260")),
            "Account code '260' is not a valid",
        ),
    }
    good = invoice(customer, reference="the good one")
    batch = [build(customer) for build, _ in cases.values()] + [good]
    result = create(sandbox, *batch, summarize_errors=False)
    for (name, (_, message)), element in zip(cases.items(), result, strict=False):
        assert element.has_errors, name
        assert element.invoice_id == ZERO_GUID, name
        assert message in element.validation_errors[0].message, name
    assert not result[-1].has_errors and result[-1].invoice_number == "INV-0001"
    assert [i.reference for i in sandbox.books.invoices] == ["the good one"]


@pytest.mark.parametrize("case", list(BAD_INVOICES))
def test_a_bad_invoice_fails_a_summarized_batch(sandbox: Sandbox, customer: str, case: str) -> None:
    build, message = BAD_INVOICES[case]
    with pytest.raises(AccountingBadRequestException) as caught:
        create(sandbox, invoice(customer), build(customer))
    assert message in caught.value.reason
    assert sandbox.books.invoices == []


def test_foreign_currency_once_enabled(sandbox: Sandbox, customer: str) -> None:
    sandbox.fake.enable_currency(sandbox.tenant_id, "USD")
    created = create(sandbox, invoice(customer, currency_code=CurrencyCode.USD))[0]
    assert created.currency_code == CurrencyCode.USD


def test_dates_round_trip_as_dates(sandbox: Sandbox, customer: str) -> None:
    created = create(sandbox, invoice(customer, date=date(2026, 1, 31), due_date=date(2026, 3, 2)))[
        0
    ]
    assert (created.date, created.due_date) == (date(2026, 1, 31), date(2026, 3, 2))
    assert created.updated_date_utc.tzinfo is not None
    body = sandbox.raw("GET", f"/Invoices/{created.invoice_id}").json()["Invoices"][0]
    assert body["Date"] == "/Date(1769817600000+0000)/"
    assert body["DateString"] == "2026-01-31T00:00:00"
    assert body["UpdatedDateUTC"].startswith("/Date(") and body["UpdatedDateUTC"].endswith(
        "+0000)/"
    )
    # Hand-written clients send ISO dates; Xero (and the fake) accept those too.
    iso = sandbox.raw(
        "PUT",
        "/Invoices",
        json={
            "Invoices": [
                {
                    "Type": "ACCREC",
                    "Contact": {"ContactID": customer},
                    "Date": "2026-02-01",
                    "DueDate": "2026-02-28T00:00:00",
                    "LineItems": [{"Description": "x", "UnitAmount": 5, "AccountCode": "200"}],
                }
            ]
        },
    )
    assert iso.status_code == 200, iso.text
    assert iso.json()["Invoices"][0]["DueDateString"] == "2026-02-28T00:00:00"


# ----- invoices: updates, status, payments -----------------------------------------


def test_draft_becomes_authorised_through_post(sandbox: Sandbox, customer: str) -> None:
    tenant = sandbox.tenant_id
    draft = create(sandbox, invoice(customer, line("50.00", account=None)))[0]
    assert draft.status == "DRAFT"  # drafts may lack account codes and a due date
    with pytest.raises(AccountingBadRequestException) as caught:
        sandbox.api.get_online_invoice(tenant, draft.invoice_id)
    assert "not available" in caught.value.reason

    approved = sandbox.api.update_invoice(
        tenant,
        draft.invoice_id,
        Invoices(invoices=[Invoice(status="AUTHORISED", due_date=DUE, line_items=[line("50.00")])]),
    ).invoices[0]
    assert (approved.status, approved.invoice_number) == ("AUTHORISED", draft.invoice_number)
    assert approved.total == Decimal("55.00")
    assert approved.updated_date_utc > draft.updated_date_utc
    url = sandbox.api.get_online_invoice(tenant, draft.invoice_id).online_invoices[0]
    assert url.online_invoice_url.startswith("https://in.xero.com/")

    submitted = create(sandbox, invoice(customer, status="SUBMITTED"))[0]
    batch = Invoices(
        invoices=[Invoice(invoice_id=submitted.invoice_id, status="AUTHORISED", due_date=DUE)]
    )
    result = sandbox.api.update_or_create_invoices(tenant, batch, summarize_errors=False)
    assert result.invoices[0].status == "AUTHORISED"


def test_status_rules(sandbox: Sandbox, customer: str) -> None:
    tenant = sandbox.tenant_id
    inv = create(sandbox, invoice(customer, status="AUTHORISED", due_date=DUE))[0]

    def update(**fields: Any) -> Invoice:
        body = Invoices(invoices=[Invoice(**fields)])
        updated: Invoice = sandbox.api.update_invoice(tenant, inv.invoice_id, body).invoices[0]
        return updated

    with pytest.raises(AccountingBadRequestException, match="not of valid status"):
        update(status="DRAFT")
    sandbox.books.pay(inv.invoice_id, "40.00", date(2026, 11, 21))
    with pytest.raises(AccountingBadRequestException, match="has a payment"):
        update(line_items=[line("10.00")])
    assert update(reference="PO-9").reference == "PO-9"  # header edits are fine
    with pytest.raises(AccountingBadRequestException, match="Payments must be removed"):
        update(status="VOIDED")

    other = create(sandbox, invoice(customer, status="AUTHORISED", due_date=DUE))[0]
    voided = sandbox.api.update_invoice(
        tenant, other.invoice_id, Invoices(invoices=[Invoice(status="VOIDED")])
    ).invoices[0]
    assert voided.status == "VOIDED"
    with pytest.raises(AccountingBadRequestException, match="not of valid status"):
        sandbox.api.update_invoice(
            tenant, other.invoice_id, Invoices(invoices=[Invoice(reference="late edit")])
        )
    with pytest.raises(AccountingBadRequestException, match="cannot be created"):
        create(sandbox, invoice(customer, status="PAID"))


def test_payments_move_amounts_and_status(sandbox: Sandbox, customer: str) -> None:
    tenant, books = sandbox.tenant_id, sandbox.books
    inv = create(sandbox, invoice(customer, line("100.00"), status="AUTHORISED", due_date=DUE))[0]
    since = inv.updated_date_utc
    sandbox.fake.advance(2)
    books.pay(inv.invoice_id, Decimal("60.00"), date(2026, 11, 22), reference="EFT 1")
    part = sandbox.api.get_invoice(tenant, inv.invoice_id).invoices[0]
    assert (part.status, part.amount_paid, part.amount_due) == (
        "AUTHORISED",
        Decimal("60.00"),
        Decimal("50.00"),
    )
    assert part.payments[0].amount == Decimal("60.00") and part.payments[0].date == date(
        2026, 11, 22
    )
    assert part.updated_date_utc > since
    changed = sandbox.api.get_invoices(tenant, if_modified_since=since).invoices
    assert [i.invoice_id for i in changed] == [inv.invoice_id]

    with pytest.raises(ValueError):
        books.pay(inv.invoice_id, "50.01")  # more than is due
    with pytest.raises(TypeError):
        books.pay(inv.invoice_id, 50.0)  # type: ignore[arg-type]  # floats are refused
    books.pay(inv.invoice_id, "50.00", date(2026, 11, 23))
    paid = sandbox.api.get_invoice(tenant, inv.invoice_id).invoices[0]
    assert (paid.status, paid.amount_due, paid.fully_paid_on_date) == (
        "PAID",
        Decimal("0.00"),
        date(2026, 11, 23),
    )
    with pytest.raises(ValueError):
        books.void(inv.invoice_id)
    with pytest.raises(AccountingBadRequestException, match="not of valid status"):
        sandbox.api.update_invoice(
            tenant, inv.invoice_id, Invoices(invoices=[Invoice(reference="x")])
        )


def test_helper_void_and_seeded_ui_invoices(sandbox: Sandbox, customer: str) -> None:
    books = sandbox.books
    ui = books.add_invoice(
        {
            "Type": "ACCREC",
            "Contact": {"ContactID": customer},
            "Status": "AUTHORISED",
            "DueDate": "2026-12-01",
            "LineItems": [{"UnitAmount": "20", "AccountCode": "200"}],
        }
    )
    assert books.void(ui.invoice_id).status == "VOIDED"
    assert not ui.created_by_app
    with pytest.raises(ValueError, match="not a valid code"):
        books.add_invoice(
            {
                "Type": "ACCREC",
                "Contact": {"ContactID": customer},
                "LineItems": [{"UnitAmount": "1", "AccountCode": "999"}],
            }
        )


# ----- invoices: reads -------------------------------------------------------------


@pytest.fixture
def ledger(sandbox: Sandbox, customer: str) -> dict[str, Invoice]:
    """Five invoices for two customers, created one fake second apart."""
    other = sandbox.books.add_contact("Globex").contact_id
    plan = [
        ("deal-1", customer, "DRAFT"),
        ("deal-2", other, "AUTHORISED"),
        ("deal-3", customer, "AUTHORISED"),
        ("deal-4", other, "SUBMITTED"),
        ("deal-5", customer, "DRAFT"),
    ]
    made = {}
    for ref, contact, status in plan:
        made[ref] = create(sandbox, invoice(contact, reference=ref, status=status, due_date=DUE))[0]
        sandbox.fake.advance(1)
    return made


def refs(invoices: list[Invoice]) -> list[str]:
    return [i.reference for i in invoices]


def test_invoice_filters(sandbox: Sandbox, ledger: dict[str, Invoice]) -> None:
    tenant, api = sandbox.tenant_id, sandbox.api
    globex = ledger["deal-2"].contact.contact_id
    assert refs(
        api.get_invoices(
            tenant, i_ds=[ledger["deal-4"].invoice_id, ledger["deal-1"].invoice_id]
        ).invoices
    ) == ["deal-1", "deal-4"]
    assert refs(api.get_invoices(tenant, invoice_numbers=["INV-0003"]).invoices) == ["deal-3"]
    assert refs(api.get_invoices(tenant, contact_i_ds=[globex]).invoices) == ["deal-2", "deal-4"]
    assert refs(api.get_invoices(tenant, statuses=["DRAFT", "SUBMITTED"]).invoices) == [
        "deal-1",
        "deal-4",
        "deal-5",
    ]
    assert refs(api.get_invoices(tenant, where='Reference=="deal-3"').invoices) == ["deal-3"]
    where = f'Contact.ContactID==guid("{globex}") AND Status!="SUBMITTED"'
    assert refs(api.get_invoices(tenant, where=where).invoices) == ["deal-2"]
    assert refs(api.get_invoices(tenant, where=f'ContactID==guid("{globex}")').invoices) == [
        "deal-2",
        "deal-4",
    ]
    assert refs(api.get_invoices(tenant, search_term="DEAL-5").invoices) == ["deal-5"]
    assert refs(api.get_invoices(tenant, search_term="inv-0002").invoices) == ["deal-2"]
    assert refs(api.get_invoices(tenant, order="Reference DESC", statuses=["DRAFT"]).invoices) == [
        "deal-5",
        "deal-1",
    ]


def test_invoice_paging_and_incremental_reads(sandbox: Sandbox, ledger: dict[str, Invoice]) -> None:
    tenant, api = sandbox.tenant_id, sandbox.api
    sandbox.fake.advance(1)
    sandbox.books.pay(ledger["deal-2"].invoice_id, "1.00")  # deal-2 is now the newest change
    pages = [
        api.get_invoices(tenant, order="UpdatedDateUTC ASC", page=p, page_size=2)
        for p in (1, 2, 3, 4)
    ]
    assert [refs(p.invoices) for p in pages] == [
        ["deal-1", "deal-3"],
        ["deal-4", "deal-5"],
        ["deal-2"],
        [],
    ]
    assert (pages[0].pagination.page_count, pages[0].pagination.item_count) == (3, 5)
    assert all(i.line_items for i in pages[0].invoices)  # paging returns line items...
    unpaged = api.get_invoices(tenant).invoices
    assert len(unpaged) == 5 and all(
        i.line_items is None for i in unpaged
    )  # ...a full list doesn't
    summary = api.get_invoices(tenant, page=1, summary_only=True).invoices
    assert all(i.line_items is None for i in summary)

    since = ledger["deal-4"].updated_date_utc
    changed = api.get_invoices(tenant, if_modified_since=since, order="UpdatedDateUTC ASC")
    assert refs(changed.invoices) == ["deal-5", "deal-2"]  # strictly after the timestamp
    rfc7231 = sandbox.raw(
        "GET", "/Invoices", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    )
    assert rfc7231.json()["Invoices"] == []


def test_created_by_my_app(sandbox: Sandbox, ledger: dict[str, Invoice], customer: str) -> None:
    sandbox.books.add_invoice(
        {"Type": "ACCREC", "Contact": {"ContactID": customer}, "Reference": "typed in Xero"}
    )
    everything = sandbox.api.get_invoices(sandbox.tenant_id).invoices
    mine = sandbox.api.get_invoices(sandbox.tenant_id, created_by_my_app=True).invoices
    assert len(everything) == 6 and "typed in Xero" not in refs(mine) and len(mine) == 5


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ('Colour=="red"', "No property or field 'Colour' exists in type 'Invoice'"),
        ('Reference.Contains("deal")', "No property or field 'Reference.Contains'"),
        ('Contact.ContactID=="abc"', "incompatible with operand types 'Guid' and 'String'"),
        ('(Status=="DRAFT"', "')' expected"),
        ('Status=="DRAFT" AND', "Field name expected"),
        ('Status>"A"', "Syntax error"),
        ("Status==DRAFT", "Literal expected"),
    ],
)
def test_unsupported_where_is_a_query_parse_error(
    sandbox: Sandbox, where: str, problem: str
) -> None:
    with pytest.raises(AccountingBadRequestException) as caught:
        sandbox.api.get_invoices(sandbox.tenant_id, where=where)
    assert caught.value.error_data["Type"] == "QueryParseException"
    assert caught.value.error_data["ErrorNumber"] == 16
    assert problem in caught.value.error_data["Message"]


def test_where_grammar() -> None:
    fields = {"a": "string", "b": "string", "c": "string", "id": "guid"}
    record = {"a": "1", "b": "x", "c": "3", "id": "7b3f0c5e-7d43-4a53-9d6b-6a1f0e0d2c11"}

    def holds(expression: str) -> bool:
        return parse_where(expression, fields, "Thing")(record)  # type: ignore[arg-type]

    assert holds('A=="1" OR B=="2" AND C=="no"')  # AND binds tighter
    assert not holds('(A=="1" OR B=="2") AND C=="no"')
    assert holds('a=="1" and b!="y" || c=="0"')  # keywords and field names ignore case
    assert not holds('B=="X"')  # values do not
    assert holds('ID==guid("7B3F0C5E-7D43-4A53-9D6B-6A1F0E0D2C11") && A!=null')
    assert holds('C=="3" AND (B=="x" OR (A=="2"))')
    assert holds('A=="say \\"hi\\"" OR A=="1"')
    with pytest.raises(QueryError):
        parse_where('A=="1" B=="2"', fields, "Thing")  # type: ignore[arg-type]


# ----- online invoice, email, 404 ------------------------------------------------------


def test_email_and_online_invoice(sandbox: Sandbox, customer: str) -> None:
    tenant, books = sandbox.tenant_id, sandbox.books
    draft = create(sandbox, invoice(customer))[0]
    with pytest.raises(AccountingBadRequestException, match="DRAFT cannot be emailed"):
        sandbox.api.email_invoice(tenant, draft.invoice_id, RequestEmpty())
    sent = create(sandbox, invoice(customer, status="AUTHORISED", due_date=DUE))[0]
    assert sandbox.api.email_invoice(tenant, sent.invoice_id, RequestEmpty()) is None  # 204
    assert [(e.invoice_number, e.to) for e in books.emailed] == [("INV-0002", "ap@acme.test")]
    assert sandbox.api.get_invoice(tenant, sent.invoice_id).invoices[0].sent_to_contact

    no_email = books.add_contact("No Email Ltd").contact_id
    silent = create(sandbox, invoice(no_email, status="AUTHORISED", due_date=DUE))[0]
    with pytest.raises(AccountingBadRequestException, match="valid email address"):
        sandbox.api.email_invoice(tenant, silent.invoice_id, RequestEmpty())


def test_unknown_ids_are_plain_text_404s(sandbox: Sandbox) -> None:
    missing = str(uuid.uuid4())
    calls: list[Callable[[], object]] = [
        lambda: sandbox.api.get_invoice(sandbox.tenant_id, missing),
        lambda: sandbox.api.get_contact(sandbox.tenant_id, missing),
        lambda: sandbox.api.get_online_invoice(sandbox.tenant_id, missing),
        lambda: sandbox.api.email_invoice(sandbox.tenant_id, missing, RequestEmpty()),
        lambda: sandbox.api.update_invoice(
            sandbox.tenant_id, missing, Invoices(invoices=[Invoice()])
        ),
    ]
    for call in calls:
        with pytest.raises(NotFoundException):
            call()
    raw = sandbox.raw("GET", f"/Invoices/{missing}")
    assert (raw.status_code, raw.text) == (404, "The resource you're looking for cannot be found")


def test_calls_need_token_and_connected_tenant(sandbox: Sandbox) -> None:
    no_token = requests.get(
        f"{sandbox.url}/api.xro/2.0/Invoices",
        headers={"xero-tenant-id": sandbox.tenant_id},
        timeout=TIMEOUT,
    )
    assert no_token.status_code == 401
    stranger = sandbox.fake.add_tenant("Not connected")
    assert sandbox.raw("GET", "/Invoices", headers={"xero-tenant-id": stranger}).status_code == 403
    assert [(c.status, c.tenant_id) for c in sandbox.fake.api_calls] == [(401, None), (403, None)]


# ----- idempotency ---------------------------------------------------------------------


def test_idempotency_key_replays_within_the_ttl(sandbox: Sandbox, customer: str) -> None:
    first = create(sandbox, invoice(customer), idempotency_key="deal-9-v1")[0]
    again = create(sandbox, invoice(customer), idempotency_key="deal-9-v1")[0]
    assert again.invoice_id == first.invoice_id and len(sandbox.books.invoices) == 1
    assert sandbox.fake.api_calls[-1].replayed
    assert sandbox.fake.api_calls[-1].idempotency_key == "deal-9-v1"

    contact = sandbox.api.create_contacts(
        sandbox.tenant_id, Contacts(contacts=[Contact(name="Keyed")]), idempotency_key="deal-9-v1"
    )
    assert contact.contacts[0].name == "Keyed"  # keys are scoped to tenant + path

    create(sandbox, invoice(customer), idempotency_key="deal-9-v2")
    assert len(sandbox.books.invoices) == 2
    sandbox.fake.advance(sandbox.fake.idempotency_ttl)
    expired = create(sandbox, invoice(customer), idempotency_key="deal-9-v1")[0]
    assert expired.invoice_id != first.invoice_id and len(sandbox.books.invoices) == 3


def test_idempotency_replays_a_failure_unchanged(sandbox: Sandbox, customer: str) -> None:
    bad = invoice(customer, line("1.00", account="999"))
    for _ in range(2):
        with pytest.raises(AccountingBadRequestException, match="999"):
            create(sandbox, bad, idempotency_key="k-bad")
    sandbox.books.add_account("999", "Consulting")
    with pytest.raises(AccountingBadRequestException):
        create(sandbox, bad, idempotency_key="k-bad")  # still the stored answer
    assert create(sandbox, bad, idempotency_key="k-bad-2")[0].line_items[0].account_code == "999"


# ----- rate limits ---------------------------------------------------------------------


def currencies_headers(sb: Sandbox) -> dict[str, str]:
    _, status, headers = sb.api.get_currencies(sb.tenant_id, _return_http_data_only=False)
    assert status == 200
    return dict(headers)


def test_minute_limit(sandbox: Sandbox) -> None:
    remaining = [currencies_headers(sandbox)["X-MinLimit-Remaining"] for _ in range(60)]
    assert remaining == [str(n) for n in range(59, -1, -1)]
    sandbox.fake.advance(20)
    with pytest.raises(RateLimitException) as caught:
        sandbox.api.get_currencies(sandbox.tenant_id)
    headers = caught.value.headers
    assert caught.value.rate_limit == "minute"
    assert 39 <= int(headers["Retry-After"]) <= 41
    assert (headers["X-MinLimit-Remaining"], headers["X-DayLimit-Remaining"]) == ("0", "4940")
    assert headers["X-AppMinLimit-Remaining"] == "9940"
    sandbox.fake.advance(int(headers["Retry-After"]))
    assert currencies_headers(sandbox)["X-MinLimit-Remaining"] == "59"
    assert sandbox.fake.count_calls(status=429) == 1


def test_day_limit(sandbox: Sandbox) -> None:
    sandbox.fake.rate_limits.per_day = 3
    assert [currencies_headers(sandbox)["X-DayLimit-Remaining"] for _ in range(3)] == [
        "2",
        "1",
        "0",
    ]
    sandbox.fake.advance(1200)  # the minute window has long reset; the day window has not
    with pytest.raises(RateLimitException) as caught:
        sandbox.api.get_currencies(sandbox.tenant_id)
    assert caught.value.rate_limit == "day"
    assert 85_190 <= int(caught.value.headers["Retry-After"]) <= 85_201
    sandbox.fake.advance(int(caught.value.headers["Retry-After"]))
    sandbox.reconnect()  # a day later the 30-minute access token is long gone
    assert currencies_headers(sandbox)["X-DayLimit-Remaining"] == "2"


def test_concurrent_limit(sandbox: Sandbox) -> None:
    sandbox.fake.inject("slow", delay=0.6, times=None, path_prefix="/Currencies")

    def call(_: int) -> str:
        try:
            sandbox.api.get_currencies(sandbox.tenant_id)
        except RateLimitException as exc:
            assert "Retry-After" not in exc.headers
            return f"429 {exc.rate_limit}"
        return "200"

    outcomes = run_concurrently(6, call)
    assert sorted(outcomes) == ["200"] * 5 + ["429 concurrent"]
    sandbox.fake.clear_faults()
    currencies_headers(sandbox)  # slots were released


def test_app_minute_limit_spans_tenants(sandbox: Sandbox) -> None:
    sandbox.fake.rate_limits.app_per_minute = 3
    other = sandbox.fake.add_tenant("Other Org")
    other_api = sdk_api(sandbox.url, sandbox.fake.issue_token_for_tenant(other))
    currencies_headers(sandbox)
    currencies_headers(sandbox)
    _, _, headers = other_api.get_currencies(other, _return_http_data_only=False)
    assert (headers["X-AppMinLimit-Remaining"], headers["X-MinLimit-Remaining"]) == ("0", "59")
    with pytest.raises(RateLimitException) as caught:
        other_api.get_currencies(other)
    assert caught.value.rate_limit == "appminute" and int(caught.value.headers["Retry-After"]) > 0


# ----- faults --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_fault_does_nothing(sandbox: Sandbox, customer: str, status: int) -> None:
    sandbox.fake.inject("5xx", status=status, method="PUT", path_prefix="/Invoices")
    with pytest.raises(HTTPStatusException) as caught:
        create(sandbox, invoice(customer))
    assert caught.value.status == status
    assert sandbox.books.invoices == []
    assert create(sandbox, invoice(customer))[0].invoice_number == "INV-0001"  # times=1
    assert [c.fault for c in sandbox.fake.api_calls] == ["5xx", None]


def test_429_fault_looks_like_a_real_one(sandbox: Sandbox) -> None:
    sandbox.fake.inject("429", problem="day", retry_after=1234)
    with pytest.raises(RateLimitException) as caught:
        sandbox.api.get_organisations(sandbox.tenant_id)
    assert caught.value.rate_limit == "day"
    assert caught.value.headers["Retry-After"] == "1234"
    assert caught.value.headers["X-DayLimit-Remaining"] == "4999"


def test_slow_fault_and_client_timeouts(sandbox: Sandbox) -> None:
    sandbox.fake.inject("slow", delay=0.3)
    started = time.monotonic()
    sandbox.api.get_currencies(sandbox.tenant_id)
    assert time.monotonic() - started >= 0.3

    sandbox.fake.inject("slow", delay=0.3, path_prefix="/Accounts")
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        sandbox.api.get_accounts(sandbox.tenant_id, _request_timeout=(1, 0.1))

    # With the SDK's default urllib3 Retry(3) a timed-out GET is silently sent 4 times.
    defaults = sdk_api(sandbox.url, sandbox.token, urllib3_retries=True)
    sandbox.fake.inject("slow", delay=0.3, times=4, path_prefix="/Items")
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        defaults.get_items(sandbox.tenant_id, _request_timeout=(1, 0.1))
    deadline = time.monotonic() + 2
    while sandbox.fake.count_calls(path_prefix="/Items") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.fake.count_calls(path_prefix="/Items") == 4


def test_lost_response_seen_by_requests(sandbox: Sandbox, customer: str) -> None:
    sandbox.fake.inject("lost_response", method="PUT")
    with pytest.raises(requests.ConnectionError):
        sandbox.raw(
            "PUT",
            "/Invoices",
            json={
                "Invoices": [
                    {"Type": "ACCREC", "Contact": {"ContactID": customer}, "LineItems": [],
                     "Reference": "lost"}
                ]
            },
        )
    assert [i.reference for i in sandbox.books.invoices] == ["lost"]  # the work was done
    call = sandbox.fake.api_calls[-1]
    assert (call.fault, call.status) == ("lost_response", 200)


def test_lost_response_on_sdk_post_then_safe_retry(sandbox: Sandbox, customer: str) -> None:
    sandbox.fake.inject("lost_response", method="POST", path_prefix="/Invoices")
    batch = Invoices(invoices=[invoice(customer, reference="deal-12")])
    with pytest.raises(urllib3.exceptions.ProtocolError):  # not an ApiException
        sandbox.api.update_or_create_invoices(sandbox.tenant_id, batch, idempotency_key="deal-12")
    retried = sandbox.api.update_or_create_invoices(
        sandbox.tenant_id, batch, idempotency_key="deal-12"
    )
    assert [i.invoice_id for i in sandbox.books.invoices] == [retried.invoices[0].invoice_id]
    assert sandbox.fake.api_calls[-1].replayed


def test_urllib3_resends_a_lost_put_by_itself(sandbox: Sandbox, customer: str) -> None:
    """A dropped PUT is retried inside urllib3 (PUT counts as idempotent): without an
    Idempotency-Key the SDK call "succeeds" and Xero holds two invoices."""
    sandbox.api = sdk_api(sandbox.url, sandbox.token, urllib3_retries=True)
    sandbox.fake.inject("lost_response", method="PUT", path_prefix="/Invoices")
    create(sandbox, invoice(customer, reference="dup"))
    assert [i.reference for i in sandbox.books.invoices] == ["dup", "dup"]

    sandbox.fake.inject("lost_response", method="PUT", path_prefix="/Invoices")
    create(sandbox, invoice(customer, reference="once"), idempotency_key="once")
    assert [i.reference for i in sandbox.books.invoices].count("once") == 1


def test_urllib3_sleeps_through_a_429_by_itself(sandbox: Sandbox) -> None:
    """With the SDK's defaults a GET that gets 429 + Retry-After blocks for Retry-After
    real seconds and is re-sent: the caller never sees the 429 (a day-limit 429 would
    block for hours). Paydeck turns these retries off."""
    defaults = sdk_api(sandbox.url, sandbox.token, urllib3_retries=True)
    sandbox.fake.inject("429", problem="minute", retry_after=1)
    started = time.monotonic()
    defaults.get_currencies(sandbox.tenant_id)
    assert time.monotonic() - started >= 1
    assert [c.status for c in sandbox.fake.api_calls] == [429, 200]


def test_fault_filters_and_counts(sandbox: Sandbox) -> None:
    fake, tenant = sandbox.fake, sandbox.tenant_id
    other = fake.add_tenant("Other Org")
    fake.inject("5xx", method="GET", path_prefix="/api.xro/2.0/items", times=2, tenant_id=other)
    sandbox.api.get_items(tenant)  # other tenant: untouched
    sandbox.api.get_contacts(tenant)
    other_api = sdk_api(sandbox.url, fake.issue_token_for_tenant(other))
    for _ in range(2):
        with pytest.raises(HTTPStatusException):
            other_api.get_items(other)
    other_api.get_items(other)
    fake.inject("5xx", times=None)
    with pytest.raises(HTTPStatusException):
        sandbox.api.get_contacts(tenant)
    fake.clear_faults()
    sandbox.api.get_contacts(tenant)
    assert fake.count_calls(path_prefix="/Items") == 4
    assert fake.count_calls(path_prefix="/Items", status=500) == 2
    assert fake.count_calls(method="GET", tenant_id=tenant) == 4
    assert fake.count_calls(status=200) == 4
    with pytest.raises(ValueError):
        fake.inject("slow")  # needs delay=
    with pytest.raises(ValueError):
        fake.inject("teapot")  # type: ignore[arg-type]


# ----- concurrency of state ------------------------------------------------------------


def test_parallel_creates_keep_contact_names_unique(sandbox: Sandbox) -> None:
    def attempt(i: int) -> str:
        try:
            sandbox.api.create_contacts(
                sandbox.tenant_id, Contacts(contacts=[Contact(name="Race Co")])
            )
        except AccountingBadRequestException:
            return "rejected"
        return "created"

    assert sorted(run_concurrently(5, attempt)) == ["created"] + ["rejected"] * 4
    assert [c.name for c in sandbox.books.contacts] == ["Race Co"]


def test_clock_drives_updated_dates(sandbox: Sandbox, customer: str) -> None:
    sandbox.fake.advance(timedelta(days=3).total_seconds())
    sandbox.reconnect()
    created = create(sandbox, invoice(customer))[0]
    assert abs(created.updated_date_utc.timestamp() - sandbox.fake.now()) < 5
