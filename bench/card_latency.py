"""Benchmark: server time of the card endpoints with 10,000 invoices in the database.

    .venv/bin/python -m bench.card_latency [--invoices 10000] [--requests 500]

Times the signed HubSpot card JSON (`/hubspot/card`), the deal page of an invoiced deal
(`/ui/deal/<id>`) and the company page of a linked company (`/ui/company/<id>`: the
database-only path, no CRM or Xero call) in-process (Flask test client: server time, no
network), over random deals and companies. Runs on a temporary SQLite file and an embedded
Redis.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import flask_migrate
from cryptography.fernet import Fernet

from app.factory import create_app
from app.extensions import db
from app.models import (
    ConnectionStatus,
    ContactLink,
    CrmKind,
    Installation,
    InvoiceLink,
    InvoiceLinkState,
    ReviewItem,
    ReviewReason,
    XeroConnection,
    XeroContact,
)
from app.redis_conn import EmbeddedRedis, get_redis
from app.settings import Settings
from app.ui_auth import View, issue_view_token
from crm_adapters.hubspot import sign_v3
from xero.detail import Allocation, InvoiceDetail, Line, Payment
from xero.reference import Account, ReferenceData, TaxRate

SECRET = "bench-hubspot-secret-of-at-least-32-bytes"
PORTAL = "4455667"
COMPANIES = 3000  # each linked to one Xero contact, which the invoices are spread over


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="paydeck-cards-"))
    redis_server = EmbeddedRedis(tmp / "redis", persist=False)
    try:
        app = create_app(Settings(  # type: ignore[call-arg]
            _env_file=None, instance_path=tmp, database_url=f"sqlite:///{tmp / 'cards.db'}",
            redis_url=redis_server.start(), secret_key=Fernet.generate_key().decode(),
            encryption_keys=Fernet.generate_key().decode(), hubspot_client_secret=SECRET,
            public_url="https://paydeck.example.com"))
        with app.app_context():
            flask_migrate.upgrade()
            installation_id = _seed(args.invoices)
            client = app.test_client()
            card = _time(args.requests, lambda d: _card(client, d), args.invoices)
            page = _time(args.requests, lambda d: _page(client, installation_id, d), args.invoices)
            company = _time(args.requests, lambda c: _company(client, installation_id, c),
                            COMPANIES)
        for name, figures in (("card JSON /hubspot/card", card), ("deal page /ui/deal/<id>", page),
                              ("company page /ui/company", company)):
            print(f"{name:26} p50 {figures[0]:.1f} ms, p95 {figures[1]:.1f} ms, max {figures[2]:.1f} ms "
                  f"({args.requests} requests, {args.invoices:,} invoices; target p95 < 50 ms)")
    finally:
        redis_server.stop()


def _seed(count: int) -> int:
    installation = Installation(crm=CrmKind.HUBSPOT, account_id=PORTAL)
    db.session.add(installation)
    db.session.flush()
    today = date.today()
    db.session.execute(InvoiceLink.__table__.insert(), [
        {"installation_id": installation.id, "deal_id": str(n), "trigger": "deal",
         "state": InvoiceLinkState.CREATED.value, "reference": f"HubSpot deal {n}",
         "idempotency_key": f"k{n}", "xero_invoice_id": f"00000000-0000-0000-0000-{n:012d}",
         "invoice_number": f"INV-{n:05d}", "status": "AUTHORISED", "deal_status": "awaiting_payment",
         "currency": "AUD", "total": Decimal("330.00"), "amount_due": Decimal("330.00"),
         "amount_paid": Decimal("0"), "due_date": today + timedelta(days=n % 60),
         "online_url": "https://go.xero.com/x", "xero_contact_id": f"c{n % COMPANIES}",
         "customer_url": "https://in.xero.com/x", "synced_at": datetime.now(timezone.utc),
         "emailed_at": datetime.now(timezone.utc), "emailed_to": "ap@example.com",
         "detail": _DETAIL}
        for n in range(1, count + 1)])
    connection = XeroConnection(installation_id=installation.id, tenant_id="bench-tenant",
                                tenant_name="Bench Pty Ltd", status=ConnectionStatus.CONNECTED)
    db.session.add(connection)
    db.session.flush()
    db.session.execute(XeroContact.__table__.insert(), [
        {"xero_connection_id": connection.id, "contact_id": f"c{n}", "name": f"Customer {n}",
         "name_key": f"customer {n}", "email_key": "", "tax_number_key": "", "active": True}
        for n in range(COMPANIES)])
    db.session.execute(ContactLink.__table__.insert(), [
        {"installation_id": installation.id, "crm_object_type": "company",
         "crm_object_id": str(n), "xero_contact_id": f"c{n - 1}", "linked_by": "user"}
        for n in range(1, COMPANIES + 1)])
    db.session.add_all([ReviewItem(installation_id=installation.id, deal_id=str(n),
                                   reason=ReviewReason.UNKNOWN_TAX, detail="x")
                        for n in range(1, count + 1, 10)])
    db.session.commit()
    # The organisation's names, cached as the engine caches them (the card reads only this).
    get_redis().hset(f"paydeck:xero-ref:{installation.id}",
                     mapping={"tenant": "bench-tenant", "data": _REFERENCE.to_json()})
    return installation.id


# The whole invoice every seeded deal shows (issue #14): three lines, two payments and a
# credit note - as xero.detail.InvoiceDetail stores what Xero returned.
_DETAIL = InvoiceDetail(
    line_amount_types="Exclusive", invoice_date=date(2026, 11, 1), sub_total=Decimal("300.00"),
    total_tax=Decimal("30.00"), total_discount=Decimal("10.00"),
    lines=tuple(Line(f"Line {k}", Decimal("2"), Decimal("50.0000"), Decimal("10") if k == 1 else None,
                     None, "200", "OUTPUT", Decimal("10.00"), Decimal("100.00")) for k in range(3)),
    payments=(Payment("p1", date(2026, 11, 10), Decimal("100.00"), "EFT 1"),
              Payment("p2", date(2026, 11, 20), Decimal("50.00"), "EFT 2")),
    allocations=(Allocation("credit_note", "cn1", "CN-0001", date(2026, 11, 21), Decimal("10.00")),),
    contact_email="ap@example.com", sent_to_contact=True).to_json()
_REFERENCE = ReferenceData(
    base_currency="AUD", currencies=frozenset({"AUD"}),
    accounts={f"{code}": Account(f"{code}", f"Account {code}", "REVENUE") for code in range(200, 300)},
    tax_rates={"OUTPUT": TaxRate("OUTPUT", "GST on Income", Decimal("10"), display_rate=Decimal("10"))},
    timezone="AUSEASTERNSTANDARDTIME")


def _card(client, deal_id: int) -> int:  # type: ignore[no-untyped-def]
    url = f"https://paydeck.example.com/hubspot/card?{urlencode({'portalId': PORTAL, 'objectType': 'deals', 'objectId': deal_id})}"
    ts = str(int(time.time() * 1000))
    response = client.get(url.removeprefix("https://paydeck.example.com"), headers={
        "X-HubSpot-Signature-v3": sign_v3(SECRET, "GET", url, b"", ts),
        "X-HubSpot-Request-Timestamp": ts})
    if deal_id == 1 and len(response.get_json()["invoice"]["lines"]) != 3:  # the richer card
        raise RuntimeError("the card JSON carries no lines")
    return response.status_code


def _page(client, installation_id: int, deal_id: int) -> int:  # type: ignore[no-untyped-def]
    token = issue_view_token(View(installation_id, "rep", "deal", str(deal_id)))
    response = client.get(f"/ui/deal/{deal_id}?t={token}")
    if deal_id == 1 and b"EFT 2" not in response.data:  # the whole invoice, payments included
        raise RuntimeError("the deal page shows no payments")
    return response.status_code


def _company(client, installation_id: int, company_id: int) -> int:  # type: ignore[no-untyped-def]
    token = issue_view_token(View(installation_id, "rep", "company", str(company_id)))
    return client.get(f"/ui/company/{company_id}?t={token}").status_code


def _time(requests: int, call, invoices: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    for n in range(20):  # warm-up: compiled statements, templates
        call(n + 1)
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        status = call(random.randint(1, invoices))
        took.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"status {status}")
    ordered = sorted(took)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))], ordered[-1]


if __name__ == "__main__":
    main()
