"""Issue #14, sections 5 and 6: amounts and times as a finance tool shows them, in the CRM
user's locale and timezone (else the organisation's); exact numbers into CRM fields; the
activity log filtered, paged at 10,000 rows and exported; the company card's link, unlink and
search; the settings page's messages."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from sqlalchemy import insert, select

from app.extensions import db
from app.models import AuditEvent, ContactLink, Installation, InvoiceLink, InvoiceLinkState
from crm_adapters.hubspot import sign_v3
from crm_adapters.pipedrive import exact_json
from domain.crm import InvoiceFields
from tests.helpers import form_fields
from tests.test_cards import INSTALLER, card  # noqa: F401  (fixture)
from tests.test_company_import import hub, initech_contact  # noqa: F401  (fixture)

NBSP = "\u00a0"


def _card(url: str, hubspot, object_type: str, object_id: str, **extra: str) -> dict:
    full = f"{url}/hubspot/card?" + urlencode({
        "portalId": hubspot.portal_id, "objectType": object_type, "objectId": object_id,
        "userEmail": INSTALLER, **extra})
    ts = str(int(time.time() * 1000))
    answer = requests.get(full, timeout=10, headers={
        "X-HubSpot-Signature-v3": sign_v3(hubspot.client_secret, "GET", full, b"", ts),
        "X-HubSpot-Request-Timestamp": ts})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _installation_id(app) -> int:
    with app.app_context():
        return db.session.scalars(select(Installation.id)).one()


def _link(app, deal_id: str, **values) -> None:
    with app.app_context():
        db.session.add(InvoiceLink(
            installation_id=_installation_id(app), deal_id=deal_id, reference=f"deal {deal_id}",
            idempotency_key=f"k{deal_id}", state=InvoiceLinkState.CREATED,
            **{"status": "AUTHORISED", "deal_status": "awaiting_payment",
               "xero_invoice_id": f"inv-{deal_id}", "invoice_number": f"INV-{deal_id}",
               "currency": "AUD", **values}))
        db.session.commit()


# --- 5. money and dates -----------------------------------------------------------------------

def test_the_deal_page_and_card_show_amounts_formatted_in_the_hubspot_user_s_locale(card):
    """Xero keeps 4 decimals (3036.0000); the page showed "3036.0000 AUD". CLDR en_AU: the
    ISO code, a no-break space, a comma per thousand, AUD's 2 decimals; de_DE: "3.036,00 AUD"."""
    app, url, hubspot, deal_id = card
    _link(app, deal_id, total=Decimal("3036.0000"), amount_due=Decimal("1880.0000"),
          amount_paid=Decimal("1156.0000"), due_date=datetime(2026, 12, 21).date())

    english = _card(url, hubspot, "deals", deal_id, locale="en-au", timezone="Australia/Sydney")
    page = requests.get(english["open_url"], timeout=10).text
    german = _card(url, hubspot, "deals", deal_id, locale="de-de", timezone="Europe/Berlin")
    german_page = requests.get(german["open_url"], timeout=10).text

    assert english["total"] == "3036.00"  # the exact decimal stays beside the words
    assert (english["total_text"], english["amount_due_text"]) == (f"AUD{NBSP}3,036.00", f"AUD{NBSP}1,880.00")
    assert english["due_date_text"] == "21 Dec 2026"
    assert f"AUD{NBSP}3,036.00" in page and f"AUD{NBSP}1,156.00" in page and "3036.0000" not in page
    assert german["total_text"] == f"3.036,00{NBSP}AUD"
    assert f"3.036,00{NBSP}AUD" in german_page and "21.12.2026" in german_page


def test_without_the_crm_s_locale_pages_use_the_organisation_s_country(card):
    """The card passes no locale: the Xero organisation's CountryCode (the fake's tenant is in
    AU) decides, from the reference data Paydeck caches."""
    from app.access.viewer import organisation_locale
    from app.engine.reference import reference_data
    from app.connections import xero_client

    app, url, hubspot, deal_id = card
    _link(app, deal_id, total=Decimal("2400.0"), amount_due=Decimal("2400.0"), amount_paid=Decimal(0))
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        connection = installation.xero_connection
        reference_data(installation, connection, xero_client(connection))  # as the engine does
        country, zone = organisation_locale(installation)
    facts = _card(url, hubspot, "deals", deal_id)

    assert country == "AU" and zone.startswith("Australia/")
    assert facts["total_text"] == f"AUD{NBSP}2,400.00"  # not "2400.0"


def test_pipedrive_number_fields_get_exact_json_numbers_never_a_float():
    """0.1 + 0.2 through a float is 0.30000000000000004; a large sum loses cents. The body
    carries the Decimal's own digits as a JSON number."""
    body = exact_json({"custom_fields": {"a": Decimal("0.30"), "b": Decimal("12345678901234567.89"),
                                         "c": "text \"quoted\""}})

    assert body == b'{"custom_fields": {"a": 0.30, "b": 12345678901234567.89, "c": "text \\"quoted\\""}}'
    assert json.loads(body, parse_float=Decimal)["custom_fields"]["b"] == Decimal("12345678901234567.89")
    with pytest.raises(TypeError):
        exact_json({"a": 0.1})


def test_pipedrive_writeback_sends_the_amount_as_a_json_number(monkeypatch):
    from crm_adapters.pipedrive import PipedriveCrm, PipedriveConfig

    sent = {}

    class Installation_:
        api_domain = "https://x.pipedrive.com"
        crm_fields = {"amount_due": "hashdue", "invoice_number": "hashnum"}

    crm = PipedriveCrm(lambda i: "tok", lambda i: type("L", (), {"take": lambda self: None})(),
                       lambda: PipedriveConfig("https://oauth.pipedrive.com", 5.0))
    monkeypatch.setattr(crm, "_send", lambda inst, method, path, cost=1, **kw: sent.update(kw) or {})
    crm.write_invoice_fields(Installation_(), [InvoiceFields(deal_id="7", invoice_number="INV-1",
                                                             amount_due="3036.00")])

    assert sent["data"] == b'{"custom_fields": {"hashnum": "INV-1", "hashdue": 3036.00}}'
    assert sent["headers"]["Content-Type"] == "application/json" and "json" not in sent


# --- 5d and 6. the activity log -----------------------------------------------------------------

def _seed_events(app, deal_id: str, count: int) -> int:
    """`count` audit events, one a minute going back from now, then one naming the deal; the
    installation's events in all (install and connect wrote a few)."""
    installation_id = _installation_id(app)
    now = datetime.now(timezone.utc)
    rows = [{"installation_id": installation_id, "deal_id": str(1000 + i % 7), "action": "invoice_sync",
             "trigger": "hubspot:stage", "outcome": "ok" if i % 3 else "retry", "detail": {},
             "xero_ids": {}, "created_at": now - timedelta(minutes=count - i)} for i in range(count)]
    with app.app_context():
        db.session.execute(insert(AuditEvent), rows)
        db.session.add(AuditEvent(installation_id=installation_id, deal_id=deal_id, action="invoice_sync",
                                  outcome="ok", detail={"deal_name": "Website <redesign>"},
                                  xero_ids={"invoice_id": f"inv-{deal_id}"},
                                  created_at=datetime(2026, 12, 2, 14, 5, tzinfo=timezone.utc)))
        db.session.commit()
        return db.session.scalar(select(db.func.count()).select_from(AuditEvent))


def test_the_activity_log_pages_through_10000_events_and_names_deals_and_invoices(card):
    app, url, hubspot, deal_id = card
    _link(app, deal_id, total=Decimal("330"), amount_due=Decimal("330"), amount_paid=Decimal(0))
    total = _seed_events(app, deal_id, 10_000)
    facts = _card(url, hubspot, "deals", deal_id, locale="en-au", timezone="Australia/Sydney")
    review_url = facts["review_url"]

    first = requests.get(review_url, timeout=10)
    # 14:05 UTC on 2 Dec 2026 is 1:05 am on 3 Dec in Sydney (AEDT, UTC+11).
    assert "Website &lt;redesign&gt;" in first.text and f"INV-{deal_id}" in first.text
    assert "3 Dec 2026, 1:05\u202fam AEDT" in first.text
    assert "inv-" not in re.sub(r'href="[^"]*"', "", first.text)  # no raw Xero ids shown

    seen: set[str] = set()
    page_url: str | None = review_url
    pages = 0
    while page_url:
        response = requests.get(page_url, timeout=10)
        assert response.status_code == 200
        pages += 1
        rows = re.findall(r"<tr><td>([^<]*)</td><td>(?:Deal )?\d*", response.text)
        seen.update(f"{pages}:{i}" for i, _ in enumerate(rows))
        older = re.search(r'<a href="([^"]*before=\d+[^"]*)#activity">Older events', response.text)
        page_url = (url + older.group(1).replace("&amp;", "&")) if older else None
        assert pages <= 202
    assert 10_001 < total < 10_050
    assert pages == 201  # 10,001 events and install's few, at 50 a page
    assert f"{total} events" in first.text

    only_retries = requests.get(review_url, params={"outcome": "retry", "deal": "1000"}, timeout=10)
    # deals cycle 1000..1006 (i % 7 == 0), retries where i % 3 == 0: i % 21 == 0 -> 477 events
    assert "477 events match the filter" in only_retries.text


def test_the_activity_csv_is_authorised_like_the_page_and_holds_every_matching_row(card):
    app, url, hubspot, deal_id = card
    _link(app, deal_id, total=Decimal("330"), amount_due=Decimal("330"), amount_paid=Decimal(0))
    total = _seed_events(app, deal_id, 10_000)
    facts = _card(url, hubspot, "deals", deal_id, locale="en-au", timezone="Australia/Sydney")
    token = parse_qs(urlsplit(facts["review_url"]).query)["t"][0]
    installation_id = _installation_id(app)
    csv_url = f"{url}/ui/review/{installation_id}/activity.csv"

    everything = requests.get(csv_url, params={"t": token}, timeout=30)
    retries = requests.get(csv_url, params={"t": token, "outcome": "retry"}, timeout=30)
    forged = requests.get(csv_url, params={"t": "forged"}, timeout=10)
    missing = requests.get(csv_url, timeout=10)
    deal_token = parse_qs(urlsplit(facts["open_url"]).query)["t"][0]
    other_kind = requests.get(csv_url, params={"t": deal_token}, timeout=10)

    rows = list(csv.reader(io.StringIO(everything.text)))
    assert everything.headers["Content-Type"].startswith("text/csv")
    assert rows[0][:5] == ["time_utc", "time (Australia/Sydney)", "deal_id", "deal", "invoice"]
    assert len(rows) == 1 + total  # the seeded 10,001 and install's own
    named = [r for r in rows if r[2] == deal_id]
    assert named[0][3:5] == ["Website <redesign>", f"INV-{deal_id}"]
    assert named[0][1] == "3 Dec 2026, 1:05\u202fam AEDT"
    assert len(list(csv.reader(io.StringIO(retries.text)))) == 1 + 3334  # i % 3 == 0, i < 10,000
    assert (forged.status_code, missing.status_code, other_kind.status_code) == (401, 401, 401)


def test_a_csv_cell_cannot_be_a_spreadsheet_formula(card):
    app, url, hubspot, deal_id = card
    with app.app_context():
        db.session.add(AuditEvent(installation_id=_installation_id(app), deal_id=deal_id,
                                  action="invoice_sync", outcome="ok", trigger="=HYPERLINK(\"x\")"))
        db.session.commit()
    token = parse_qs(urlsplit(_card(url, hubspot, "deals", deal_id)["review_url"]).query)["t"][0]
    text = requests.get(f"{url}/ui/review/{_installation_id(app)}/activity.csv", params={"t": token},
                        timeout=10).text
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_the_activity_log_refuses_bad_filters_with_400(card):
    app, url, hubspot, deal_id = card
    review_url = _card(url, hubspot, "deals", deal_id)["review_url"]
    for bad in ({"before": "x"}, {"outcome": "bogus"}, {"until": "tomorrow"}, {"before": "9" * 40}):
        assert requests.get(review_url, params=bad, timeout=10).status_code == 400, bad


# --- 6. the company card ----------------------------------------------------------------------------

def _company_page(env, company_id: str) -> str:
    return _card(env.url, env.crm, "companies", company_id)["open_url"]


def test_link_asks_first_and_warns_when_the_contact_belongs_to_another_company(hub):
    first = hub.crm.crm.add_company(name="Initech Pty Ltd")
    second = hub.crm.crm.add_company(name="Initech Holdings")
    contact_id = initech_contact(hub.books)
    with hub.app.app_context():
        db.session.add(ContactLink(installation_id=_installation_id(hub.app), crm_object_type="company",
                                   crm_object_id=first, xero_contact_id=contact_id, linked_by="user"))
        db.session.commit()

    page = requests.get(_company_page(hub, second) + "&q=initech", timeout=10).text

    confirm = re.search(r'action="[^"]*/link"\s+data-confirm="([^"]*)"', page)
    assert confirm and "Link this company to the Xero contact Initech Holdings?" in confirm.group(1)
    assert f"already linked to HubSpot company {first}" in confirm.group(1)
    assert f"Already linked to HubSpot company {first}" in page


def test_unlink_removes_the_link_and_is_refused_without_its_token(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    contact_id = initech_contact(hub.books)
    with hub.app.app_context():
        db.session.add(ContactLink(installation_id=_installation_id(hub.app), crm_object_type="company",
                                   crm_object_id=company, xero_contact_id=contact_id, linked_by="user"))
        db.session.commit()
    page = requests.get(_company_page(hub, company), timeout=10).text
    assert 'data-confirm="Unlink this company' in page

    forged = requests.post(f"{hub.url}/ui/company/{company}/unlink", data={"a": "forged"}, timeout=10)
    fields = form_fields(page, "/unlink")
    link_token = form_fields(page, "/import")["a"]
    wrong_kind = requests.post(f"{hub.url}/ui/company/{company}/unlink", data={"a": link_token}, timeout=10)
    assert forged.status_code == 401 and wrong_kind.status_code == 401 and hub.links()
    done = requests.post(f"{hub.url}/ui/company/{company}/unlink", data=fields, timeout=10)
    again = requests.post(f"{hub.url}/ui/company/{company}/unlink", data=fields, timeout=10)

    assert done.status_code == 200 and "Unlinked" in done.text and hub.links() == []
    assert again.status_code == 401  # single use
    assert [e.xero_ids["contact_id"] for e in hub.audit("contact_unlinked")] == [contact_id]


def test_search_finds_a_contact_by_its_tax_number(hub):
    """Xero's searchTerm covers Name, FirstName, LastName, ContactNumber and EmailAddress only
    (tests/specs/xero/xero_accounting.yaml, GET /Contacts searchTerm): the label's "tax
    number" needs the TaxNumber where filter."""
    from app.engine.steps.mirror import mirror_row as remember_contact
    from app.connections import xero_client

    company = hub.crm.crm.add_company(name="Unrelated Name")
    contact_id = initech_contact(hub.books)  # TaxNumber "51 824 753 556"
    page = _company_page(hub, company)

    spaced = requests.get(page + "&q=51 824 753 556", timeout=10).text  # Xero's where, exact
    plain_before = requests.get(page + "&q=51824753556", timeout=10).text
    with hub.app.app_context():  # the engine's mirror sync has seen the contact
        connection = db.session.scalars(select(Installation)).one().xero_connection
        remember_contact(connection.id, xero_client(connection).get_contact(contact_id))
        db.session.commit()
    plain = requests.get(page + "&q=51824753556", timeout=10).text  # the mirror's key

    assert "Initech Holdings" in spaced and "Initech Holdings" in plain
    assert "Initech Holdings" not in plain_before  # not a name/email match: the tax number did it
    assert "tax number" in spaced  # the label says what it searches


def test_a_whitespace_only_search_says_so_and_long_input_is_cut(hub):
    company = hub.crm.crm.add_company(name="Initech Pty Ltd")
    page = _company_page(hub, company)

    blank = requests.get(page + "&q=%20%20%20", timeout=10)
    long = requests.get(page + "&q=" + "a" * 5000, timeout=10)

    assert blank.status_code == 200 and "Type a name, email address, contact number or tax number" in blank.text
    assert long.status_code == 200 and "first 100 characters" in long.text
    assert 'value="' + "a" * 100 + '"' in long.text and "a" * 101 not in long.text


# --- 6. settings ----------------------------------------------------------------------------------

from tests.test_connect_xero import installed  # noqa: E402,F401  (fixture)
from tests.test_settings_page import form_of, hubspot_admin, page, post  # noqa: E402,F401  (fixture)


def test_settings_say_saved_in_a_toast_show_status_in_words_and_flash_js_strips_the_message(hubspot_admin):
    ctx = hubspot_admin
    before = page(ctx)
    saved = post(ctx, form_of(ctx, before).set("tax_number_property", "abn"))

    assert re.search(r'<p role="status" class="toast" data-flash>Saved\.', saved.text)
    assert "?" in saved.url and "m=Saved" in saved.url  # post/redirect/get: the message rides once
    assert "js/flash.js" in saved.text  # ... and flash.js takes it out of the address
    flash = requests.get(f"{ctx['url']}/static/js/flash.js", timeout=10).text
    assert 'searchParams.delete("m")' in flash and "history.replaceState" in flash
    assert '<span class="status status-connected">Connected</span>' in before.text


def test_tax_number_matching_is_off_until_a_tax_number_field_is_chosen(hubspot_admin):
    ctx = hubspot_admin
    before = page(ctx)  # no tax-number field yet: the default order's "tax number" is not offered
    assert form_of(ctx, before).values("dedupe") == ["email", "name", ""]
    assert re.search(r'value="tax_number"\s+disabled', before.text)

    data = form_of(ctx, before).data()
    first = next(i for i, (k, _) in enumerate(data) if k == "dedupe")
    data[first] = ("dedupe", "tax_number")  # what a tampered form (or an old page) sends
    forged = requests.post(f"{ctx['url']}/ui/settings/{ctx['installation_id']}", data=data, timeout=10)
    assert forged.status_code == 400 and "needs the company field holding the tax number" in forged.text
    assert 'href="#error-dedupe_order"' in forged.text

    chosen = post(ctx, form_of(ctx, page(ctx)).set("tax_number_property", "abn"))
    after = page(ctx, chosen.url)
    assert chosen.status_code == 200 and not re.search(r'value="tax_number"\s+disabled', after.text)


def test_the_organisation_chooser_preselects_nothing(installed, fake_xero, browser):
    fake, _ = fake_xero
    fake.add_tenant("Acme Pty Ltd")
    fake.add_tenant("Acme NZ Ltd")
    app, url = installed

    chooser = browser.get(f"{url}/connect/xero")

    assert chooser.url == f"{url}/connect/xero/organisation"
    assert chooser.text.count('name="tenant_id"') == 2 and "checked" not in chooser.text


# --- 5a. Pipedrive: the user's own locale and timezone (GET /v1/users/{id}) ---------------------

from tests.test_pipedrive_sdk import pd  # noqa: E402,F401  (fixture)


def test_pipedrive_pages_format_in_the_user_s_locale_and_timezone(pd, monkeypatch):
    """Pipedrive's GetUser carries `locale` ("de_DE") and `timezone_name` (IANA); Paydeck
    asks once per user and caches it with the admin flag (app/access.py). The fake's
    GET /users/{id} does not send them yet, so the adapter's answer is stood in for here."""
    from crm_adapters.pipedrive import PipedriveCrm, UserProfile

    app, url, pipedrive = pd
    asked: list[str] = []

    def profile(self, installation, user_id):
        asked.append(user_id)
        return UserProfile(True, "", "de_DE", "Europe/Berlin")

    monkeypatch.setattr(PipedriveCrm, "user_profile", profile)
    deal_id = str(pipedrive.api.add_deal("Website"))
    _link(app, deal_id, total=Decimal("3036.0000"), amount_due=Decimal("3036.0000"),
          amount_paid=Decimal(0), due_date=datetime(2026, 12, 21).date())
    with app.app_context():
        db.session.add(AuditEvent(installation_id=_installation_id(app), deal_id=deal_id,
                                  action="invoice_sync", outcome="ok",
                                  created_at=datetime(2026, 12, 2, 14, 5, tzinfo=timezone.utc)))
        db.session.commit()

    panel = requests.get(pipedrive.panel_url(f"{url}/pipedrive/panel/deal", "deal", deal_id), timeout=10)
    queue = re.search(r'href="([^"]*/ui/review/[^"]*)"', panel.text).group(1).replace("&amp;", "&")
    log = requests.get(queue if queue.startswith("http") else url + queue, timeout=10)

    assert panel.status_code == 200 and f"3.036,00{NBSP}AUD" in panel.text and "21.12.2026" in panel.text
    # 14:05 UTC is 15:05 in Berlin (CET, UTC+1) on 2 Dec 2026.
    assert "02.12.2026, 15:05 MEZ" in log.text and "Europe/Berlin" in log.text
    assert len(set(asked)) == 1 and len(asked) == 1  # cached: one GetUser for panel and queue
