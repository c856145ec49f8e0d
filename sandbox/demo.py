"""The sandbox: Paydeck wired to the fake HubSpot, Pipedrive and Xero, installed into them,
seeded with demo deals, and driven from the console (sandbox/console.py).

Nothing is short-circuited. Paydeck is installed through the CRMs' OAuth flows and connected
to Xero through Xero's; moving a deal fires the fake CRM's signed webhooks at Paydeck's
webhook endpoint; the RQ worker builds the invoice and sends it to the fake Xero through
xero-python; a payment recorded in the fake Xero reaches Paydeck as a signed Xero webhook; the
card shows what the jobs wrote. `paydeck run` starts all this when no CRM or Xero credentials
are configured (app/launcher.py).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from app.settings import PIPEDRIVE_SCOPES
from sandbox.xero.groups import add_group
from sandbox.hubspot import FakeHubSpot
from sandbox.pipedrive import FakePipedrive
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero

# Fixed ids, so a demo organisation looks the same on every run.
HUBSPOT_TENANT = "3f6a2c1e-5b0d-4c39-9a57-1f2e3d4c5b6a"
PIPEDRIVE_TENANT = "8d1b7e52-0c4f-4a8e-b6d3-2a9c8e7f6d5b"
ADMIN_EMAIL = "admin@demo-agency.example"
# The demo agency's customers: (name, domain, their contact's first and last name, email), and
# products: (name, SKU, price). Pipedrive's demo uses the first two of each.
CUSTOMERS = (("Initech Pty Ltd", "initech.example", "Pat", "Buyer", "ap@initech.example"),
             ("Globex Corporation", "globex.example", "Gil", "Payable", "accounts@globex.example"),
             ("Hooli Pty Ltd", "hooli.example", "Hal", "Ops", "ops@hooli.example"))
PRODUCTS = (("Website design", "WEB-DESIGN", "2400.00"), ("Hosting (12 months)", "HOST-12", "360.00"),
            ("SEO audit", "SEO-AUDIT", "900.00"))
# Demo deals: (title, customer's index, quantity by SKU or else the deal's amount, what the
# deal shows a newcomer).
HUBSPOT_DEALS = (
    ("Initech website rebuild", 0, {"WEB-DESIGN": 1, "HOST-12": 1},
     "Move it to Contract Sent for a draft invoice, then Closed Won to approve it."),
    ("Globex SEO audit", 1, {"SEO-AUDIT": 2},
     "Globex is already a contact in Xero: the invoice goes to it, no duplicate."),
    ("Hooli emergency call-out", 2, {"amount": "650.00"},
     "No products on the deal: it lands in the review queue. Allow one line from "
     "the deal amount in Settings, then retry it."),
)
PIPEDRIVE_DEALS = (
    ("Initech intranet", 0, {"WEB-DESIGN": 1, "HOST-12": 1},
     "Move it to Proposal Made for a draft invoice, then Won to approve it."),
    ("Globex hosting renewal", 1, {"HOST-12": 2},
     "Move it to Won: an approved invoice for the existing Xero contact."),
)


def vendor_settings(xero: tuple[FakeXero, str] | None = None,
                    hubspot: tuple[FakeHubSpot, str] | None = None,
                    pipedrive: tuple[FakePipedrive, str] | None = None,
                    xero_webhook_key: str = "") -> dict[str, Any]:
    """Paydeck settings that point its configurable vendor URLs at running fakes."""
    values: dict[str, Any] = {}
    if xero:
        fake, url = xero
        values.update(xero_client_id=fake.client_id, xero_client_secret=fake.client_secret,
                      xero_login_base=url, xero_identity_base=url, xero_api_base=url,
                      xero_webhook_key=xero_webhook_key)
    if hubspot:
        fake, url = hubspot
        values.update(hubspot_client_id=fake.client_id, hubspot_client_secret=fake.client_secret,
                      hubspot_authorize_url=f"{url}/oauth/authorize", hubspot_api_base=url)
    if pipedrive:
        fake, url = pipedrive
        values.update(pipedrive_client_id=fake.client_id,
                      pipedrive_client_secret=fake.client_secret, pipedrive_oauth_base=url)
    return values


class SandboxError(RuntimeError):
    """The sandbox could not install or seed itself (the message says which step)."""


@dataclass
class DemoDeal:
    crm: str
    deal_id: str
    title: str
    story: str  # what this deal shows a newcomer


@dataclass
class Sandbox:
    """The three fakes on loopback ports, and the steps that make a working demo of them."""

    paydeck_url: str
    # The console (sandbox/console.py): Xero's web app and its customers' online invoices,
    # mocked there, are what Paydeck's "Open in Xero" and online invoice links lead to.
    console_url: str = ""
    hubspot: FakeHubSpot = field(default_factory=lambda: FakeHubSpot(
        portal_id=24681357, user_email=ADMIN_EMAIL, hub_domain="demo-agency.hubspot.example"))
    pipedrive: FakePipedrive = field(default_factory=lambda: FakePipedrive(
        company_id=13572468, company_name="Demo Agency", company_domain="demo-agency",
        user_name="Dana Admin", user_email=ADMIN_EMAIL, scopes=tuple(PIPEDRIVE_SCOPES.split())))
    xero: FakeXero = field(default_factory=FakeXero)
    xero_webhook_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    deals: list[DemoDeal] = field(default_factory=list)
    companies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _servers: dict[str, LoopbackServer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tenants = {
            "hubspot": self.xero.add_tenant("Demo Agency (HubSpot books)", HUBSPOT_TENANT),
            "pipedrive": self.xero.add_tenant("Demo Agency (Pipedrive books)", PIPEDRIVE_TENANT),
        }
        if self.console_url:
            for tenant in self.tenants.values():
                self.xero.accounting(tenant).online_invoice_base = f"{self.console_url}/xero/online"

    # --- the fakes' servers --------------------------------------------------------------

    def start(self) -> Sandbox:
        for name in ("hubspot", "pipedrive", "xero"):
            self._servers[name] = LoopbackServer(getattr(self, name)).start()
        return self

    def stop(self) -> None:
        self.hubspot.auto_deliver = self.pipedrive.auto_deliver = False
        for server in self._servers.values():
            server.stop()
        self._servers.clear()

    def url(self, name: str) -> str:
        return self._servers[name].url

    def settings(self) -> dict[str, Any]:
        """Paydeck's settings for this sandbox (field names, as `Settings(**...)` takes)."""
        return {
            **vendor_settings(xero=(self.xero, self.url("xero")),
                              hubspot=(self.hubspot, self.url("hubspot")),
                              pipedrive=(self.pipedrive, self.url("pipedrive")),
                              xero_webhook_key=self.xero_webhook_key),
            "hubspot_app_id": str(self.hubspot.app_id),
            "public_url": self.paydeck_url,
            **self.link_settings(),
        }

    def link_settings(self) -> dict[str, str]:
        """Where Paydeck's "Open in Xero" links lead: the console's mock Xero."""
        return {"xero_app_base": f"{self.console_url}/xero"} if self.console_url else {}

    # --- installing Paydeck as an admin would ------------------------------------------------

    def install(self) -> None:
        """Install Paydeck into both CRMs and connect each to its own Xero organisation, through
        the real OAuth redirects (the fakes consent at once)."""
        for crm in ("hubspot", "pipedrive"):
            browser = requests.Session()
            self._visit(browser, f"/install/{crm}", f"install into {crm}")
            # Each demo team's bookkeeper signs in to Xero as themselves and ticks their own
            # organisation: one connection per installation.
            self.xero.user_id = f"demo-{crm}-bookkeeper"
            self.xero.consent_tenants = [self.tenants[crm]]
            response = self._visit(browser, "/connect/xero", f"connect {crm}'s installation to Xero")
            if "/connect/xero/organisation" in response.url:
                raise SandboxError(f"Xero asked {crm}'s admin to choose among several organisations")
        self.xero.consent_tenants = None
        # A HubSpot app's webhook target is part of its configuration (webhooks-hsmeta.json).
        self.hubspot.subscribe(f"{self.paydeck_url}/webhooks/hubspot")
        self.hubspot.auto_deliver = True
        self.pipedrive.auto_deliver = True

    def _visit(self, browser: requests.Session, path: str, step: str) -> requests.Response:
        try:
            response = browser.get(f"{self.paydeck_url}{path}", timeout=30)
        except requests.RequestException as exc:
            raise SandboxError(f"could not {step}: {exc}") from exc
        if response.status_code != 200:
            raise SandboxError(f"could not {step}: HTTP {response.status_code} at {response.url}")
        return response

    def wait_for_webhooks(self, timeout: float = 60.0) -> None:
        """Paydeck's setup job registers its Pipedrive webhooks; stage moves need them."""
        deadline = time.monotonic() + timeout
        while not self.pipedrive.webhooks:
            if time.monotonic() > deadline:
                raise SandboxError("Paydeck's setup job did not register Pipedrive webhooks "
                                   "(is the worker running?)")
            time.sleep(0.2)

    # --- demo data -----------------------------------------------------------------------

    def seed(self) -> None:
        """Companies, people, products and deals a newcomer can push through the loop."""
        self._seed_hubspot()
        self._seed_pipedrive()
        for crm in ("hubspot", "pipedrive"):
            # An existing customer in Xero: the company card finds and links it.
            books = self.xero.accounting(self.tenants[crm])
            globex = books.add_contact("Globex Corporation", EmailAddress="accounts@globex.example",
                                       TaxNumber="51 824 753 556")
            # Contact groups, as a bookkeeper keeps them: Settings > Contacts picks among them.
            add_group(books, "Customers", [globex.contact_id])
            add_group(books, "Suppliers")

    def _seed_hubspot(self) -> None:
        crm = self.hubspot.crm
        products = {sku: crm.add_product(name=name, price=price, hs_sku=sku)
                    for name, sku, price in PRODUCTS}
        companies = [crm.add_company(name=c[0], domain=c[1]) for c in CUSTOMERS]
        self.companies["hubspot"] = [(cid, c[0]) for cid, c in zip(companies, CUSTOMERS)]
        contacts = [crm.add_contact(company_id=cid, firstname=first, lastname=last, email=email)
                    for cid, (_, _, first, last, email) in zip(companies, CUSTOMERS)]
        for title, customer, lines, story in HUBSPOT_DEALS:
            extra = {"amount": lines["amount"]} if "amount" in lines else {"line_items": [
                {"hs_product_id": products[sku], "quantity": str(n)} for sku, n in lines.items()]}
            deal_id = crm.add_deal(dealname=title, company_id=companies[customer],
                                   contact_ids=[contacts[customer]], **extra)
            self.deals.append(DemoDeal("hubspot", deal_id, title, story))

    def _seed_pipedrive(self) -> None:
        api = self.pipedrive.api
        products = {sku: (api.add_product(name, code=sku, price=Decimal(price)), Decimal(price))
                    for name, sku, price in PRODUCTS[:2]}
        orgs = [api.add_org(c[0]) for c in CUSTOMERS[:2]]
        self.companies["pipedrive"] = [(str(oid), c[0]) for oid, c in zip(orgs, CUSTOMERS)]
        people = [api.add_person(f"{first} {last}", email=email, org_id=oid)
                  for oid, (_, _, first, last, email) in zip(orgs, CUSTOMERS)]
        for title, customer, lines, story in PIPEDRIVE_DEALS:
            items = [{"product_id": products[sku][0], "quantity": n, "item_price": products[sku][1]}
                     for sku, n in lines.items()]
            deal_id = api.add_deal(title, org_id=orgs[customer], person_id=people[customer],
                                   products=items)
            self.deals.append(DemoDeal("pipedrive", str(deal_id), title, story))

    def deal(self, crm: str, deal_id: str) -> DemoDeal | None:
        return next((d for d in self.deals if d.crm == crm and d.deal_id == deal_id), None)


def configure_rules(sandbox: Sandbox) -> None:
    """The admin's choices for the demo: what a first-time admin would pick in Settings.

    Runs in an app context of the Paydeck the sandbox installed into."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import CrmKind, Installation, InstallationSettings, StageAction, StageRule

    stage_id = sandbox.pipedrive.api.stage_id
    rules = {
        CrmKind.HUBSPOT: ("default", {"contractsent": StageAction.DRAFT,
                                      "closedwon": StageAction.AUTHORISE}),
        CrmKind.PIPEDRIVE: ("1", {str(stage_id("Proposal Made")): StageAction.DRAFT,
                                  str(stage_id("Won")): StageAction.AUTHORISE}),
    }
    for crm, (pipeline, stages) in rules.items():
        installation = db.session.scalar(select(Installation).where(Installation.crm == crm))
        if installation is None:
            raise SandboxError(f"Paydeck is not installed into the {crm.value} fake")
        row = installation.settings or InstallationSettings(installation_id=installation.id)
        row.default_account_code, row.default_tax_type = "200", "OUTPUT"
        row.payment_terms = {"type": "days_after_invoice", "days": 14}
        db.session.add(row)
        for stage_id, action in stages.items():
            db.session.add(StageRule(installation_id=installation.id, pipeline_id=pipeline,
                                     stage_id=stage_id, action=action))
    db.session.commit()
