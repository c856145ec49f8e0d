"""The company page's Import and suggested matches (issue #6), over real HTTP against the
loopback fakes: HubSpot or Pipedrive for the CRM, Xero for the contacts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from flask import Flask
from sqlalchemy import select

from app.company_import.details import ImportOutcome, plan_import
from app.company_import.search import rank_suggestions, search_term
from app.extensions import db
from app.queueing import QUEUE
from app.models import (
    AuditEvent,
    ConnectionStatus,
    ContactLink,
    Installation,
    InstallationSettings,
    XeroConnection,
    XeroContact,
)
from app.redis_conn import get_redis
from app.settings import PIPEDRIVE_SCOPES
from werkzeug.exceptions import HTTPException

from app.ui_auth import View, issue_action_token, issue_view_token, read_view_token
from app.worker import PaydeckSimpleWorker
from crm_adapters.hubspot import sign_v3
from sandbox.hubspot import FakeHubSpot
from sandbox.kit.faults import Fault
from sandbox.kit.server import LoopbackServer
from sandbox.pipedrive import FakePipedrive
from sandbox.xero import FakeXero
from sandbox.xero.books import TenantBooks
from tests.conftest import fake_settings
from xero.client import ContactDetails, ContactResult

TAX_PROPERTY = "abn"
STREET = {"AddressType": "STREET", "AddressLine1": "Level 3", "AddressLine2": "1 Main St",
          "City": "Sydney", "Region": "NSW", "PostalCode": "2000", "Country": "Australia"}
PHONE = {"PhoneType": "DEFAULT", "PhoneCountryCode": "61", "PhoneAreaCode": "2",
         "PhoneNumber": "5550 1234"}


@dataclass
class Env:
    app: Flask
    url: str
    crm: Any  # FakeHubSpot | FakePipedrive
    xero: FakeXero
    books: TenantBooks

    def installation_id(self) -> int:
        with self.app.app_context():
            return db.session.scalars(select(Installation.id)).one()

    def links(self) -> list[tuple[str, str]]:
        with self.app.app_context():
            links = db.session.scalars(select(ContactLink))
            return [(link.crm_object_id, link.xero_contact_id) for link in links]

    def audit(self, action: str) -> list[AuditEvent]:
        with self.app.app_context():
            return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _work(app: Flask) -> None:
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


def _set_tax_property(app: Flask, name: str) -> None:
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        db.session.get(InstallationSettings, installation.id).tax_number_property = name
        db.session.commit()


@pytest.fixture
def hub(app_factory, fake_hubspot, fake_xero, browser) -> Env:
    """Installed in the fake HubSpot, connected to a fake Xero, tax number in `abn`."""
    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(hubspot_app_id=str(hubspot.app_id),
                                 **fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    assert browser.get(f"{url}/install/hubspot").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    _work(app)
    hubspot.crm.add_property("companies", TAX_PROPERTY, "ABN")
    _set_tax_property(app, TAX_PROPERTY)
    return Env(app, url, hubspot, xero, xero.accounting(tenant))


def company_url(env: Env, company_id: str) -> str:
    """The page URL the signed card fetch hands out (as hubspot.fetch would call it)."""
    hubspot: FakeHubSpot = env.crm
    full = f"{env.url}/hubspot/card?" + urlencode({
        "portalId": hubspot.portal_id, "objectType": "companies", "objectId": company_id,
        # The installing admin: linking and importing are actions, which by default only
        # the company's owner and admins may take (issue #12; tests/test_record_access.py).
        "userEmail": hubspot.user_email})
    ts = str(int(time.time() * 1000))
    card = requests.get(full, timeout=10, headers={
        "X-HubSpot-Signature-v3": sign_v3(hubspot.client_secret, "GET", full, b"", ts),
        "X-HubSpot-Request-Timestamp": ts})
    assert card.status_code == 200
    return card.json()["open_url"]


def token_of(page_url: str) -> str:
    return parse_qs(urlsplit(page_url).query)["t"][0]


def post(env: Env, company_id: str, action: str, token: str | None, contact_id: str,
         **extra: str) -> requests.Response:
    """Post `action` with the form token the company page opened with `token` carries (minted
    as the page mints it, without the page's CRM and Xero reads); a token that opens no page
    (forged, expired, another record's) is posted as it is, to be refused."""
    return requests.post(f"{env.url}/ui/company/{company_id}/{action}",
                         data={"a": _action_token(env, company_id, action, token),
                               "contact_id": contact_id, **extra}, timeout=10)


def _action_token(env: Env, company_id: str, action: str, token: str | None) -> str:
    with env.app.test_request_context():
        try:
            view = read_view_token(token, "company", company_id)
        except HTTPException:
            return token or ""
        return issue_action_token(view, action)


def initech_contact(books: TenantBooks, name: str = "Initech Holdings") -> str:
    contact = books.add_contact(name, EmailAddress="ap@initech.example",
                                TaxNumber="51 824 753 556", Phones=[PHONE], Addresses=[STREET])
    books.set_contact_website(contact.contact_id, "https://initech.example")
    return contact.contact_id


# --- import: HubSpot ----------------------------------------------------------------------------

def test_import_links_and_fills_only_the_empty_company_fields(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd", phone="+61 2 9999 0000",
                                      website="https://rep-typed.example")
    contact_id = initech_contact(hub.books)
    page = company_url(hub, company)
    hub.crm.clear_crm_calls()

    response = post(hub, company, "import", token_of(page), contact_id)

    assert response.status_code == 200  # after the redirect back to the page
    assert "Linked to Initech Holdings" in response.text
    assert ("Copied into HubSpot: street address, city, state/region, postcode, country, "
            "tax number.") in response.text
    assert "Left as they were (HubSpot already had them): phone, website." in response.text
    stored = hub.crm.crm.object_properties("companies", company)
    address = [stored[k] for k in ("address", "city", "state", "zip", "country")]
    assert address == ["Level 3, 1 Main St", "Sydney", "NSW", "2000", "Australia"]
    assert stored[TAX_PROPERTY] == "51 824 753 556"
    assert stored["phone"] == "+61 2 9999 0000"  # what the rep typed stays
    assert stored["website"] == "https://rep-typed.example"
    assert stored["name"] == "Initech Pty Ltd"
    assert hub.crm.count_crm_calls("PATCH", f"/crm/v3/objects/companies/{company}") == 1
    assert hub.links() == [(company, contact_id)]
    (event,) = hub.audit("contact_imported")
    assert event.outcome == "ok" and event.xero_ids == {"contact_id": contact_id}
    assert event.detail["by"] == hub.crm.user_email and event.detail["company"] == company
    assert event.detail["filled"] == ["street", "city", "region", "postal_code", "country",
                                      "tax_number"]
    assert event.detail["kept"] == ["phone", "website"]
    with hub.app.app_context():  # the mirror knows the contact: the page shows its name
        assert db.session.scalar(select(XeroContact.name).where(
            XeroContact.contact_id == contact_id)) == "Initech Holdings"


def test_an_empty_phone_and_website_are_filled_too(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)

    response = post(hub, company, "import", token_of(company_url(hub, company)), contact_id)

    stored = hub.crm.crm.object_properties("companies", company)
    assert (stored["phone"], stored["website"]) == ("61 2 5550 1234", "https://initech.example")
    assert "Left as they were" not in response.text


def test_the_linked_page_shows_the_contact_name_without_calling_xero_or_the_crm(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)
    page = company_url(hub, company)
    post(hub, company, "import", token_of(page), contact_id)
    hub.xero.clear_api_calls()
    hub.crm.clear_crm_calls()

    again = requests.get(page, timeout=10)

    assert again.status_code == 200 and "Linked to Initech Holdings" in again.text
    assert "Suggested Xero contacts" not in again.text
    assert hub.xero.count_calls() == 0 and hub.crm.count_crm_calls() == 0


@pytest.mark.parametrize("token_kind", ["missing", "forged", "expired", "other company", "deal"])
def test_import_refuses_missing_forged_expired_and_foreign_tokens(hub, token_kind):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)
    installation_id = hub.installation_id()
    with hub.app.app_context():
        tokens = {
            "missing": None,
            "forged": jwt.encode({"iss": "paydeck-view", "iat": 1, "exp": 2**31,
                                  "ins": installation_id, "usr": "x", "typ": "company",
                                  "oid": company}, "not-our-secret-but-at-least-32-bytes-long",
                                 algorithm="HS256"),
            "expired": issue_view_token(View(installation_id, "rep", "company", company), ttl=-1),
            "other company": issue_view_token(View(installation_id, "rep", "company", "424242")),
            "deal": issue_view_token(View(installation_id, "rep", "deal", company)),
        }
    hub.crm.clear_crm_calls()
    hub.xero.clear_api_calls()

    response = post(hub, company, "import", tokens[token_kind], contact_id)

    assert response.status_code == 401
    assert hub.links() == [] and hub.audit("contact_imported") == []
    assert hub.crm.count_crm_calls() == 0 and hub.xero.count_calls() == 0
    assert hub.crm.crm.object_properties("companies", company).get("city") is None


@pytest.mark.parametrize(("contact_id", "status", "title"), [
    ("6f2a1c3e-8d4b-4f7a-9c1e-2b3d4e5f6a7b", 404, "No such Xero contact"),  # a GUID Xero lacks
    ("not-a-contact-id", 400, "Choose a Xero contact"),
    ("", 400, "Choose a Xero contact"),
])
def test_an_unknown_contact_is_a_clear_4xx_and_nothing_is_written(hub, contact_id, status, title):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    token = token_of(company_url(hub, company))
    hub.crm.clear_crm_calls()

    for action in ("import", "link"):
        response = post(hub, company, action, token, contact_id)

        assert response.status_code == status, action
        assert title in response.text, action
        assert f"/ui/company/{company}?t=" in response.text  # a way back to the page
        if status == 404:
            assert "Nothing was changed" in response.text
    assert hub.links() == [] and hub.audit("contact_imported") == []
    assert hub.audit("contact_linked") == []
    assert hub.crm.count_crm_calls() == 0


def test_an_archived_contact_is_refused(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)
    hub.books.archive_contact(contact_id)

    response = post(hub, company, "import", token_of(company_url(hub, company)), contact_id)

    assert response.status_code == 409 and "archived in Xero" in response.text
    assert hub.links() == []


def test_xero_failing_on_the_contact_read_changes_nothing_and_says_so(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)
    token = token_of(company_url(hub, company))
    hub.xero.inject("5xx", method="GET", path_prefix="/Contacts/", status=503)

    response = post(hub, company, "import", token, contact_id)

    assert response.status_code == 200
    assert "Could not read the contact from Xero right now" in response.text
    assert "Nothing was changed." in response.text
    assert hub.links() == [] and hub.audit("contact_imported") == []


@pytest.mark.parametrize("failing", ["PATCH", "GET"])
def test_a_crm_failure_keeps_the_link_and_says_what_was_not_copied(hub, failing):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd", phone="+61 2 9999 0000")
    contact_id = initech_contact(hub.books)
    token = token_of(company_url(hub, company))
    hub.crm.inject_crm("5xx", failing, f"/crm/v3/objects/companies/{company}", status=502)

    response = post(hub, company, "import", token, contact_id)

    assert response.status_code == 200
    assert "Linked to Initech Holdings" in response.text
    if failing == "PATCH":
        assert ("Could not copy into HubSpot: street address, city, state/region, postcode, "
                "country, website, tax number") in response.text
    else:
        assert "Could not read the company from HubSpot" in response.text
        assert "nothing was copied" in response.text
    assert "The link is kept" in response.text
    assert hub.links() == [(company, contact_id)]
    assert hub.crm.crm.object_properties("companies", company).get("city") is None
    (event,) = hub.audit("contact_imported")
    assert event.outcome == "partial" and "502" in event.detail["error"]
    assert event.detail["filled"] == []
    assert event.detail["failed"] == ([] if failing == "GET" else [
        "street", "city", "region", "postal_code", "country", "website", "tax_number"])


def test_link_reads_the_contact_once_and_remembers_its_name(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)
    page = company_url(hub, company)
    hub.xero.clear_api_calls()

    linked = post(hub, company, "link", token_of(page), contact_id)

    assert linked.status_code == 200 and "Linked to Initech Holdings" in linked.text
    assert hub.xero.count_calls("GET", "/Contacts/") == 1
    assert hub.crm.crm.object_properties("companies", company).get("city") is None  # link only
    assert [e.detail["by"] for e in hub.audit("contact_linked")] == [hub.crm.user_email]


# --- suggestions ----------------------------------------------------------------------------

def test_an_unlinked_company_gets_suggestions_with_exact_matches_marked(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd", website="https://www.initech.example",
                                      **{TAX_PROPERTY: "51824753556"})
    hub.books.add_contact("Initech Branch", EmailAddress="ap@elsewhere.example")
    exact = hub.books.add_contact("INITECH PTY LTD").contact_id
    by_email = hub.books.add_contact("Initech Holdings",
                                     EmailAddress="AP@initech.example").contact_id
    by_tax = hub.books.add_contact("Initech Services", TaxNumber="51 824 753 556").contact_id
    for n in range(4):
        hub.books.add_contact(f"Initech Other {n}")
    hub.books.add_contact("Globex")
    page = company_url(hub, company)
    hub.xero.clear_api_calls()

    response = requests.get(page, timeout=10)

    assert response.status_code == 200 and "Suggested Xero contacts" in response.text
    section = response.text.split("Suggested Xero contacts")[1].split("</section>")[0]
    items = section.split("<li>")[1:]
    assert len(items) == 5  # at most five
    marks = {contact_id: next(i for i in items if f'value="{contact_id}"' in i)
             for contact_id in (exact, by_email, by_tax)}
    assert "same name<" in marks[exact] and "same email domain<" in marks[by_email]
    assert "same tax number<" in marks[by_tax]
    assert set(items[:3]) == set(marks.values())  # exact matches first
    assert all("same " not in item for item in items[3:])
    assert "Globex" not in section
    assert section.count(">Import</button>") == 5 and section.count(">Link</button>") == 5
    assert hub.xero.count_calls() == 1 and hub.xero.count_calls("GET", "/Contacts") == 1
    (search,) = hub.xero.api_calls
    assert parse_qs(search.query)["searchTerm"] == ["Initech"]


def test_no_lookalike_in_xero_says_so(hub):
    company = hub.crm.crm.add_company(name="Umbrella Corp")
    hub.books.add_contact("Globex")

    response = requests.get(company_url(hub, company), timeout=10)

    assert "No Xero contact looks like this company" in response.text
    assert "Suggested Xero contacts" not in response.text


def test_a_typed_search_replaces_the_suggestions(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    hub.books.add_contact("Globex")
    page = company_url(hub, company)
    hub.crm.clear_crm_calls()

    response = requests.get(page + "&q=globex", timeout=10)

    assert "Suggested Xero contacts" not in response.text and "Globex" in response.text
    assert ">Import</button>" in response.text
    assert hub.crm.count_crm_calls() == 0


@pytest.mark.parametrize("failing", ["crm", "xero", "not connected"])
def test_suggestions_degrade_to_a_notice_when_the_crm_or_xero_fails(hub, failing):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    hub.books.add_contact("Initech Holdings")
    page = company_url(hub, company)
    if failing == "crm":
        hub.crm.inject_crm("5xx", "GET", f"/crm/v3/objects/companies/{company}", status=500)
    elif failing == "xero":
        hub.xero.inject("5xx", method="GET", path_prefix="/Contacts", status=500)
    else:
        with hub.app.app_context():
            connection = db.session.scalars(select(XeroConnection)).one()
            connection.status = ConnectionStatus.RECONNECT_NEEDED
            db.session.commit()

    response = requests.get(page, timeout=10)

    assert response.status_code == 200 and "Not linked to Xero yet" in response.text
    assert "Suggested Xero contacts" not in response.text
    notice = {"crm": "Could not read this company from HubSpot, so there are no suggestions",
              "xero": "Xero is unavailable right now, so there are no suggestions",
              "not connected": "Xero is not connected"}[failing]
    assert notice in response.text


def test_xero_and_crm_text_is_escaped(hub):
    company = hub.crm.crm.add_company(name="<b>Initech</b> Pty Ltd")
    contact_id = hub.books.add_contact("<b>Initech</b> <script>alert(1)</script>",
                                       EmailAddress="x@initech.example").contact_id
    page = company_url(hub, company)

    suggested = requests.get(page, timeout=10)
    imported = post(hub, company, "import", token_of(page), contact_id)

    for response in (suggested, imported):
        assert "<script>alert(1)" not in response.text and "<b>Initech" not in response.text
        assert "&lt;b&gt;Initech&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;" in response.text


# --- import: Pipedrive --------------------------------------------------------------------------

@pytest.fixture
def pd(app_factory, fake_xero, browser) -> Iterator[Env]:
    """Installed in a fake Pipedrive (granting Paydeck's scopes), connected to a fake Xero."""
    pipedrive = FakePipedrive(client_secret="pd-secret-of-at-least-32-bytes-long",
                              scopes=tuple(PIPEDRIVE_SCOPES.split()))
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd")
    with LoopbackServer(pipedrive) as server:
        app, url = app_factory.serve(**fake_settings(pipedrive=(pipedrive, server.url),
                                                     xero=fake_xero))
        assert browser.get(f"{url}/install/pipedrive").status_code == 200
        assert browser.get(f"{url}/connect/xero").status_code == 200
        _work(app)
        yield Env(app, url, pipedrive, xero, xero.accounting(tenant))


def panel_page(env: Env, org_id: int) -> str:
    """The page Pipedrive's organization panel opens (its JWT verified, then our token)."""
    pipedrive: FakePipedrive = env.crm
    token = jwt.encode({"companyId": pipedrive.company_id, "userId": pipedrive.user_id,
                        "exp": int(time.time()) + 300}, pipedrive.client_secret, algorithm="HS256")
    panel = requests.get(f"{env.url}/pipedrive/panel/organization",
                         params={"token": token, "id": str(org_id)}, timeout=10,
                         allow_redirects=False)
    assert panel.status_code == 302
    return panel.headers["Location"]


def test_pipedrive_import_fills_the_organization_address_website_and_tax_field(pd):
    tax_field = pd.crm.api.add_org_field("ABN")
    _set_tax_property(pd.app, tax_field)
    org = pd.crm.api.add_org("Initech Pty Ltd")
    contact_id = initech_contact(pd.books)
    page = panel_page(pd, org)
    assert "pd=1" in page

    response = post(pd, str(org), "import", token_of(page), contact_id, pd="1")

    assert response.status_code == 200 and "Linked to Initech Holdings" in response.text
    assert "Not copied (Pipedrive has no field for them): phone." in response.text
    assert "app-extensions-sdk" in response.text  # still the Pipedrive panel page
    stored = pd.crm.api.org(org)
    assert stored.address == {
        "value": "Level 3, 1 Main St, Sydney, NSW 2000, Australia", "street_number": None,
        "route": "Level 3, 1 Main St", "sublocality": None, "locality": "Sydney",
        "admin_area_level_1": "NSW", "admin_area_level_2": None, "country": "Australia",
        "postal_code": "2000", "formatted_address": None}
    assert stored.website == "https://initech.example"
    assert stored.custom_fields[tax_field] == "51 824 753 556"
    assert stored.name == "Initech Pty Ltd"
    assert pd.crm.api.count_calls("PATCH", f"/api/v2/organizations/{org}") == 1
    assert pd.links() == [(str(org), contact_id)]
    (event,) = pd.audit("contact_imported")
    assert event.detail["by"] == str(pd.crm.user_id) and event.detail["unsupported"] == ["phone"]


def test_pipedrive_never_writes_into_an_address_or_website_a_rep_typed(pd):
    org = pd.crm.api.add_org("Initech Pty Ltd", address="5 Other Rd, Melbourne",
                             website="https://rep-typed.example")
    contact_id = initech_contact(pd.books)

    response = post(pd, str(org), "import", token_of(panel_page(pd, org)), contact_id, pd="1")

    assert ("Left as they were (Pipedrive already had them): street address, city, "
            "state/region, postcode, country, website.") in response.text
    stored = pd.crm.api.org(org)
    assert stored.address["value"] == "5 Other Rd, Melbourne" and stored.address["locality"] is None
    assert stored.website == "https://rep-typed.example"
    assert pd.crm.api.count_calls("PATCH", "/api/v2/organizations") == 0
    assert pd.links() == [(str(org), contact_id)]


def test_pipedrive_write_failure_keeps_the_link(pd):
    org = pd.crm.api.add_org("Initech Pty Ltd")
    contact_id = initech_contact(pd.books)
    token = token_of(panel_page(pd, org))
    pd.crm.api.inject(Fault("5xx", method="PATCH", path_prefix="/api/v2/organizations", status=500))

    response = post(pd, str(org), "import", token, contact_id, pd="1")

    assert response.status_code == 200 and "Could not copy into Pipedrive" in response.text
    assert pd.links() == [(str(org), contact_id)]
    assert pd.crm.api.org(org).address is None


# --- the pure parts -------------------------------------------------------------------------

def test_plan_import_fills_empty_keeps_typed_and_names_what_the_crm_cannot_hold():
    contact = ContactDetails("c1", "Initech", phone="61 2 5550", city="Sydney", country="AU",
                             website="https://initech.example", tax_number="51 824")
    company = {"name": "Initech", "phone": "", "city": "  ", "country": "New Zealand",
               "website": "", "street": ""}  # no tax field in this CRM

    plan = plan_import(contact, company)

    assert plan.fill == {"phone": "61 2 5550", "city": "Sydney",
                         "website": "https://initech.example"}
    assert plan.kept == ("country",) and plan.unsupported == ("tax_number",)


def test_the_import_says_why_a_tax_number_was_not_copied():
    """Issue #14 point 6: the import explains what it really did. A CRM can hold a tax
    number in any custom field: when none is copied, it is because no field is chosen in
    Paydeck's settings, not because the CRM "has no field" for it."""
    said = ImportOutcome("Initech", "HubSpot", copied=("phone",),
                         unsupported=("tax_number", "street")).summary()
    assert "Copied into HubSpot: phone." in said
    assert "Not copied (HubSpot has no field for them): street address." in said
    assert ("Tax number not copied: no company field for tax numbers is chosen in Paydeck's "
            "settings") in said
    assert "has no field for them: tax number" not in said


@pytest.mark.parametrize(("name", "term"), [
    ("Initech Pty Ltd", "Initech"), ("Initech Pty. Ltd.", "Initech"), ("Globex, Inc.", "Globex"),
    ("Ltd", "Ltd"), ("The Limited Company Ltd", "The"), ("  ", ""),
    ("Acme Widgets", "Acme Widgets"),
])
def test_search_term_drops_trailing_legal_forms(name, term):
    assert search_term(name) == term


def test_suggestions_skip_archived_and_rank_by_how_much_matches():
    found = [ContactResult("a", "Other", "", ""),
             ContactResult("b", "Initech", "", "", active=False),
             ContactResult("c", "initech", "x@initech.example", "51824")]
    company = {"name": "Initech", "website": "initech.example", "tax_number": "51 824"}

    ranked = rank_suggestions(company, found)

    assert [(s.contact.contact_id, s.matches) for s in ranked] == [
        ("c", ("name", "email domain", "tax number")), ("a", ())]


def test_the_summary_says_when_there_was_nothing_to_copy():
    assert "has no phone, address, website or tax number" in ImportOutcome("X", "HubSpot").summary()
