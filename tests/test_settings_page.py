"""The admin's settings page, over real HTTP against the loopback fakes: what it lists, what a
save writes (all of it or nothing), who may open it, and the Xero connect/disconnect it offers."""

from __future__ import annotations

import re
import time
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from sqlalchemy import select

from app.engine.rules import action_for_stage
from app.engine.rules import xero_terms as _terms
from app.extensions import db
from app.queueing import QUEUE
from app.models import (
    AuditEvent,
    ConnectionStatus,
    CrmKind,
    Installation,
    InstallationSettings,
    InstallationStatus,
    LineAmountType,
    ProductMapping,
    StageAction,
    StageRule,
    TaxMapping,
    XeroConnection,
)
from app.redis_conn import get_redis
from app.ui_auth import View, issue_view_token
from app.settings_forms.invoices import TERM_KINDS
from app.worker import PaydeckSimpleWorker
from tests.conftest import Browser, fake_settings
from tests.test_cards import card_get
from xero.build import due_date
from xero.reference import PaymentTerms

PD_SECRET = "pd-secret-of-at-least-32-bytes-long"


# --- a browser's view of the form ------------------------------------------------------------------

class Form:
    """The fields a browser submits from the page's form posting to `action`, in document order
    (disabled fields and unchecked boxes left out), to change and post like a person would."""

    def __init__(self, html: str, action: str) -> None:
        parser = _FormParser(action)
        parser.feed(html)
        assert parser.found, f"no form posting to {action}"
        self.fields: list[list[str]] = parser.fields

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    def set(self, name: str, value: str) -> Form:
        (field,) = [f for f in self.fields if f[0] == name]
        field[1] = value
        return self

    def set_all(self, name: str, values: list[str]) -> Form:
        fields = [f for f in self.fields if f[0] == name]
        assert len(fields) == len(values)
        for field, value in zip(fields, values):
            field[1] = value
        return self

    def check(self, name: str, value: str = "1", on: bool = True) -> Form:
        self.fields = [f for f in self.fields if f != [name, value]]
        if on:
            self.fields.append([name, value])
        return self

    def add(self, name: str, value: str) -> Form:
        self.fields.append([name, value])
        return self

    def set_after(self, anchor: tuple[str, str], offset: int, value: str) -> Form:
        """Set the field `offset` places after the field (name, value) == anchor (a table row)."""
        index = self.fields.index(list(anchor))
        self.fields[index + offset][1] = value
        return self

    def rule(self, pipeline_id: str, stage_id: str, action: str) -> Form:
        for i, (name, value) in enumerate(self.fields):
            if (name, value) == ("rule_stage", stage_id) and self.fields[i - 1] == ["rule_pipeline", pipeline_id]:
                assert self.fields[i + 1][0] == "rule_action"
                self.fields[i + 1][1] = action
                return self
        raise AssertionError(f"no rule row for {pipeline_id}/{stage_id}")

    def product(self, product_id: str, item: str = "", account: str = "", tax: str = "") -> Form:
        for offset, value in enumerate((item, account, tax), start=1):
            self.set_after(("product_id", product_id), offset, value)
        return self

    def data(self) -> list[tuple[str, str]]:
        return [(name, value) for name, value in self.fields]


class _FormParser(HTMLParser):
    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside, self.found = action, False, False
        self.fields: list[list[str]] = []
        self._select: list[Any] | None = None  # [field, first option, selected option]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("action") == self.action
            self.found |= self.inside
        elif not self.inside or "disabled" in a:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type") or "text"
            if kind == "checkbox":
                if "checked" in a:
                    self.fields.append([a["name"] or "", a.get("value") or "on"])
            elif kind not in ("submit", "button"):
                self.fields.append([a["name"] or "", a.get("value") or ""])
        elif tag == "select" and a.get("name"):
            field = [a["name"] or "", ""]
            self.fields.append(field)
            self._select = [field, None, None]
        elif tag == "option" and self._select is not None:
            value = a.get("value") or ""
            if self._select[1] is None:
                self._select[1] = value
            if "selected" in a:
                self._select[2] = value

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            field, first, selected = self._select
            field[1] = selected if selected is not None else (first or "")
            self._select = None


# --- fixtures ------------------------------------------------------------------------------------

def work(app):
    with app.app_context():
        PaydeckSimpleWorker([QUEUE], connection=get_redis(), app=app).work(burst=True)


@pytest.fixture
def hubspot_admin(app_factory, fake_hubspot, fake_xero, browser):
    """Installed into the fake HubSpot, connected to a fake Xero organisation, with a second
    pipeline, a product, an extra revenue account and item; the settings page URL for the
    installing admin (from the signed card fetch, as the admin's HubSpot card gets it)."""
    hubspot, _ = fake_hubspot
    xero, _ = fake_xero
    tenant = xero.add_tenant("Acme Pty Ltd")
    xero.accounting(tenant).add_account("270", "Interest Income", "OTHERINCOME")
    app, url = app_factory.serve(hubspot_app_id=str(hubspot.app_id),
                                 **fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    browser.get(f"{url}/install/hubspot")
    browser.get(f"{url}/connect/xero")  # ends on the settings page: Xero's lists are now cached
    work(app)
    renewals = hubspot.crm.add_pipeline("Renewals", [{"id": "renewal-due", "label": "Renewal due"},
                                                     {"id": "renewed", "label": "Renewed"}])
    product = hubspot.crm.add_product(name="Consulting", price="150.00", hs_sku="CONS-1")
    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
    body = card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                 "objectId": "1", "userEmail": hubspot.user_email}).json()
    return {"app": app, "url": url, "hubspot": hubspot, "xero": xero, "tenant": tenant,
            "installation_id": installation.id, "settings_url": body["settings_url"],
            "renewals": renewals, "product": product}


def page(ctx: dict[str, Any], url: str | None = None) -> requests.Response:
    response = requests.get(url or ctx["settings_url"], timeout=10)
    assert response.status_code == 200, response.text
    return response


def form_of(ctx: dict[str, Any], response: requests.Response) -> Form:
    return Form(response.text, f"/ui/settings/{ctx['installation_id']}")


def post(ctx: dict[str, Any], form: Form, **kwargs: Any) -> requests.Response:
    return requests.post(f"{ctx['url']}/ui/settings/{ctx['installation_id']}", data=form.data(),
                         timeout=10, **kwargs)


def snapshot(app) -> dict[str, Any]:
    """Every settings row of every installation, as plain values."""
    with app.app_context():
        return {
            "settings": [(s.installation_id, s.default_account_code, s.default_tax_type,
                          s.dedupe_order, s.draft_first, s.payment_terms, s.line_amount_type,
                          s.allow_single_line_from_amount, s.tax_number_property,
                          s.money_visibility, s.action_permission)
                         for s in db.session.scalars(select(InstallationSettings))],
            "rules": sorted((r.pipeline_id, r.stage_id, r.action.value)
                            for r in db.session.scalars(select(StageRule))),
            "products": sorted((p.crm_product_id, p.xero_item_code, p.account_code, p.tax_type)
                               for p in db.session.scalars(select(ProductMapping))),
            "taxes": sorted((t.crm_tax_label, t.xero_tax_type) for t in db.session.scalars(select(TaxMapping))),
            "audit": db.session.scalar(select(db.func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "settings_changed")),
        }


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


# --- what the page lists -------------------------------------------------------------------------

def test_the_page_lists_the_crms_pipelines_and_products_and_xeros_accounts_rates_and_items(hubspot_admin):
    ctx = hubspot_admin

    response = page(ctx)

    text = response.text
    assert "Connected to <strong>Acme Pty Ltd</strong>" in text and "Switch organisation" in text
    for label in ("Sales Pipeline", "Closed Won", "Appointment Scheduled", "Renewals", "Renewal due"):
        assert label in text, label
    assert "Consulting" in text and "CONS-1" in text
    form = form_of(ctx, response)
    assert ["rule_pipeline", "default"] in form.fields and ["rule_stage", "closedwon"] in form.fields
    assert ["rule_stage", "renewal-due"] in form.fields
    # Revenue accounts that are active; not the expense or bank accounts.
    assert "200 · Sales" in text and "260 · Other Revenue" in text and "270 · Interest Income" in text
    assert "400 · Advertising" not in text and "090 · Business Bank Account" not in text
    # Tax rates usable on sales; not the purchase ones.
    assert "GST on Income (10%)" in text and "GST Free Income (0%)" in text
    assert "GST on Expenses" not in text
    assert "CONSULT-HR · Consulting (per hour)" in text
    # Framed only by the CRMs; never cached.
    assert "frame-ancestors" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_reload_from_xero_shows_what_was_added_there_since(hubspot_admin):
    ctx = hubspot_admin
    ctx["xero"].accounting(ctx["tenant"]).add_account("275", "Freight Income", "REVENUE")
    assert "275 · Freight Income" not in page(ctx).text  # an hour's cache, as the engine uses

    reloaded = page(ctx, f"{ctx['url']}/ui/settings/{ctx['installation_id']}?t="
                         f"{token_of(ctx['settings_url'])}&refresh=1")

    assert "275 · Freight Income" in reloaded.text


def test_without_xero_the_xero_fields_are_disabled_and_say_connect_first(app_factory, fake_hubspot, fake_xero, browser):
    hubspot, _ = fake_hubspot
    app, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot, xero=fake_xero))

    response = browser.get(f"{url}/install/hubspot")  # the install ends on the settings page

    assert response.url.startswith(f"{url}/ui/settings/")
    assert "Connect Xero first" in response.text and "Connect to Xero" in response.text
    assert '<select name="default_account_code" aria-label="Default sales account" disabled>' in response.text
    form = Form(response.text, urlsplit(response.url).path)
    assert form.values("default_account_code") == [] and "xero" not in form.values("section")


# --- saving ----------------------------------------------------------------------------------------

def test_the_admin_can_turn_off_a_contacts_own_payment_terms(hubspot_admin):
    ctx = hubspot_admin
    form = form_of(ctx, page(ctx))
    assert ["use_contact_terms", "1"] in form.fields  # on unless the admin turns it off

    saved = post(ctx, form.set("default_account_code", "200").check("use_contact_terms", on=False))

    assert "Saved." in saved.text and ["use_contact_terms", "1"] not in form_of(ctx, saved).fields
    with ctx["app"].app_context():
        assert db.session.get(InstallationSettings, ctx["installation_id"]).use_contact_terms is False
        (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "settings_changed")).all()
        assert event.detail["changes"]["use_contact_terms"] == {"from": True, "to": False}


def test_saving_writes_every_setting_exactly_and_audits_who_changed_what(hubspot_admin):
    ctx = hubspot_admin
    app, installation_id, product = ctx["app"], ctx["installation_id"], ctx["product"]
    form = (form_of(ctx, page(ctx))
            .rule("default", "closedwon", "authorise")
            .rule(ctx["renewals"], "renewed", "draft")
            .set("default_account_code", "200").set("default_tax_type", "OUTPUT")
            .product(product, item="CONSULT-HR", account="260", tax="EXEMPTOUTPUT")
            .set_all("tax_label", ["VAT 20%"]).set_all("tax_type", ["EXEMPTOUTPUT"])
            .set_all("dedupe", ["tax_number", "email", ""])
            .check("draft_first")
            .set("terms_type", "day_of_following_month").set("terms_days", "20")
            .set("line_amount_type", "Inclusive")
            .check("allow_single_line_from_amount")
            .set("tax_number_property", "abn")
            .set("amount_tolerance", "5.50")
            .set("money_visibility", "admins").set("action_permission", "everyone"))

    saved = post(ctx, form)

    assert saved.status_code == 200 and "Saved." in saved.text
    assert saved.url.startswith(f"{ctx['url']}/ui/settings/{installation_id}?t=")
    with app.app_context():
        rules = {(r.pipeline_id, r.stage_id): r.action for r in db.session.scalars(select(StageRule))}
        assert rules == {("default", "closedwon"): StageAction.AUTHORISE,
                         (ctx["renewals"], "renewed"): StageAction.DRAFT}
        s = db.session.get(InstallationSettings, installation_id)
        assert (s.default_account_code, s.default_tax_type) == ("200", "OUTPUT")
        assert s.dedupe_order == ["tax_number", "email"]
        assert s.draft_first is True and s.allow_single_line_from_amount is True
        assert s.payment_terms == {"type": "day_of_following_month", "days": 20}
        assert s.line_amount_type == LineAmountType.INCLUSIVE
        assert s.tax_number_property == "abn"
        assert s.amount_tolerance == Decimal("5.50")
        assert (s.money_visibility, s.action_permission) == ("admins", "everyone")
        (mapping,) = db.session.scalars(select(ProductMapping)).all()
        assert (mapping.crm_product_id, mapping.xero_item_code, mapping.account_code, mapping.tax_type) == (
            product, "CONSULT-HR", "260", "EXEMPTOUTPUT")
        assert [(t.crm_tax_label, t.xero_tax_type) for t in db.session.scalars(select(TaxMapping))] == [
            ("VAT 20%", "EXEMPTOUTPUT")]
        (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "settings_changed")).all()
        assert event.outcome == "ok" and event.detail["by"] == ctx["hubspot"].user_email
        changes = event.detail["changes"]
        assert changes["default_account_code"] == {"from": None, "to": "200"}
        assert changes["line_amount_type"] == {"from": "Exclusive", "to": "Inclusive"}
        assert changes["amount_tolerance"] == {"from": "0.01", "to": "5.50"}
        assert {"pipeline": "default", "stage": "closedwon", "from": "none", "to": "authorise"} in changes["stage_rules"]
        assert changes["product_mappings"] == [{"product": product, "from": None, "to": {
            "item": "CONSULT-HR", "account": "260", "tax": "EXEMPTOUTPUT"}}]
        assert changes["tax_mappings"] == [{"label": "VAT 20%", "from": None, "to": "EXEMPTOUTPUT"}]
    # The page shows what was saved, and saving it unchanged changes (and audits) nothing.
    again = form_of(ctx, saved)
    assert ["tax_label", "VAT 20%"] in again.fields and again.values("dedupe") == ["tax_number", "email", ""]
    before = snapshot(app)
    unchanged = post(ctx, again)
    assert "Nothing had changed" in unchanged.text and snapshot(app) == before


def test_clearing_a_rule_a_product_and_a_tax_label_deletes_them(hubspot_admin):
    ctx = hubspot_admin
    app, installation_id, product = ctx["app"], ctx["installation_id"], ctx["product"]
    with app.app_context():
        db.session.add_all([
            StageRule(installation_id=installation_id, pipeline_id="default", stage_id="closedwon",
                      action=StageAction.AUTHORISE),
            ProductMapping(installation_id=installation_id, crm_product_id=product, account_code="260"),
            TaxMapping(installation_id=installation_id, crm_tax_label="GST", xero_tax_type="OUTPUT"),
            TaxMapping(installation_id=installation_id, crm_tax_label="gst free", xero_tax_type="EXEMPTOUTPUT")])
        db.session.commit()
    form = form_of(ctx, page(ctx))
    assert form.values("tax_label") == ["GST", "gst free", ""]

    done = post(ctx, form.rule("default", "closedwon", "none").product(product)
                .set_all("tax_label", ["GST", "GST Free", ""]).check("tax_remove", "0"))

    assert "Saved." in done.text
    after = snapshot(app)
    assert after["rules"] == [] and after["products"] == []
    assert after["taxes"] == [("GST Free", "EXEMPTOUTPUT")]  # renamed in place (same label, ignoring case)


def test_a_rule_saved_on_the_page_makes_a_stage_change_create_the_invoice(hubspot_admin):
    ctx = hubspot_admin
    app, hubspot, xero = ctx["app"], ctx["hubspot"], ctx["xero"]
    form = (form_of(ctx, page(ctx)).rule("default", "closedwon", "authorise")
            .set("default_account_code", "200").set("default_tax_type", "OUTPUT"))
    assert "Saved." in post(ctx, form).text
    with app.app_context():
        assert action_for_stage(ctx["installation_id"], "closedwon") == StageAction.AUTHORISE
        assert action_for_stage(ctx["installation_id"], "contractsent") == StageAction.NONE
    hubspot.subscribe(f"{ctx['url']}/webhooks/hubspot", hubspot.client_secret)
    company = hubspot.crm.add_company(name="Initech Pty Ltd")
    contact = hubspot.crm.add_contact(company_id=company, firstname="Pat", email="ap@initech.example")
    deal_id = hubspot.crm.add_deal(dealname="Website", company_id=company, contact_ids=[contact],
                                   line_items=[{"hs_product_id": ctx["product"], "quantity": "2"}])
    hubspot.deliver()

    hubspot.crm.set_deal_properties(deal_id, dealstage="closedwon")
    assert [d.status for d in hubspot.deliver()] == [200]
    work(app)

    (invoice,) = xero.accounting(ctx["tenant"]).invoices
    assert re.fullmatch(rf"HubSpot \S+ deal {deal_id}", invoice.reference) and invoice.status == "AUTHORISED"


# --- validation: all or nothing ----------------------------------------------------------------------

BAD_INPUT = {
    "expense account as default": (lambda f, c: f.set("default_account_code", "400"), "not an active revenue account"),
    "unknown account": (lambda f, c: f.set("default_account_code", "999"), "not an active revenue account"),
    "purchase tax rate": (lambda f, c: f.set("default_tax_type", "INPUT"), "not an active sales tax rate"),
    "unknown item": (lambda f, c: f.product(c["product"], item="NO-SUCH-ITEM"), "Xero has no item"),
    "unknown product account": (lambda f, c: f.product(c["product"], account="400"), "not an active revenue account"),
    "unknown product": (lambda f, c: f.add("product_id", "999999").add("product_item", "").add(
        "product_account", "200").add("product_tax", ""), "not one of the CRM&#39;s products"),
    "unknown stage": (lambda f, c: f.add("rule_pipeline", "default").add("rule_stage", "nosuchstage").add(
        "rule_action", "authorise"), "not one of the CRM&#39;s stages"),
    "stage of another pipeline": (lambda f, c: f.add("rule_pipeline", "default").add(
        "rule_stage", "renewed").add("rule_action", "draft"), "not one of the CRM&#39;s stages"),
    "unknown action": (lambda f, c: f.rule("default", "closedlost", "explode"), "Choose one of the listed actions"),
    "tax label mapped to a purchase rate": (lambda f, c: f.set_all("tax_label", ["VAT"]).set_all(
        "tax_type", ["INPUT"]), "not an active sales tax rate"),
    "tax label without a rate": (lambda f, c: f.set_all("tax_label", ["VAT"]), "Choose a Xero tax rate"),
    "dedupe key twice": (lambda f, c: f.set_all("dedupe", ["email", "email", ""]), "at most once"),
    "no dedupe key": (lambda f, c: f.set_all("dedupe", ["", "", ""]), "at least one"),
    "day of month 32": (lambda f, c: f.set("terms_type", "day_of_following_month").set("terms_days", "32"),
                        "from 1 to 31"),
    "days missing": (lambda f, c: f.set("terms_type", "days_after_invoice").set("terms_days", ""), "from 0 to 365"),
    # Issue #12: '²'.isdigit() is True but int('²') raises: it was a 500.
    "superscript digit": (lambda f, c: f.set("terms_type", "days_after_invoice").set("terms_days", "²"),
                          "from 0 to 365"),
    "unknown terms": (lambda f, c: f.set("terms_type", "whenever"), "listed payment terms"),
    "unknown line amount type": (lambda f, c: f.set("line_amount_type", "Gross"), "listed amount types"),
    "tolerance not a number": (lambda f, c: f.set("amount_tolerance", "a bit"), "at most 2 decimals"),
    "tolerance below zero": (lambda f, c: f.set("amount_tolerance", "-1"), "at most 2 decimals"),
    "tolerance of a tenth of a cent": (lambda f, c: f.set("amount_tolerance", "0.001"), "at most 2 decimals"),
    "mismatched rows": (lambda f, c: f.add("rule_pipeline", "default"), "arrived incomplete"),
    # Issue #12: who sees money and who acts take only the listed levels.
    "unknown money visibility": (lambda f, c: f.set("money_visibility", "nobody"), "Choose one of the listed options"),
    "money visibility in capitals": (lambda f, c: f.set("money_visibility", "ADMINS"), "Choose one of the listed options"),
    "unknown action permission": (lambda f, c: f.set("action_permission", "owners"), "Choose one of the listed options"),
    "empty action permission": (lambda f, c: f.set("action_permission", ""), "Choose one of the listed options"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_with_400_and_changes_nothing(hubspot_admin, case):
    ctx = hubspot_admin
    tamper, message = BAD_INPUT[case]
    # Valid changes around the bad one: none of them may be saved either.
    form = (form_of(ctx, page(ctx)).rule("default", "closedwon", "authorise").check("draft_first")
            .set("tax_number_property", "abn"))
    tamper(form, ctx)
    before = snapshot(ctx["app"])

    response = post(ctx, form)

    assert response.status_code == 400
    assert message in response.text and "nothing was saved" in response.text
    assert "no longer lists" not in response.text  # a forged id is not shown as a saved rule
    assert snapshot(ctx["app"]) == before
    assert "Cache-Control" in response.headers and "frame-ancestors" in response.headers["Content-Security-Policy"]


def test_a_re_rendered_form_keeps_what_the_admin_typed(hubspot_admin):
    ctx = hubspot_admin
    form = form_of(ctx, page(ctx)).set("tax_number_property", "vat_number").set("default_account_code", "999")

    response = post(ctx, form)

    assert response.status_code == 400
    assert 'value="vat_number"' in response.text
    assert "999 (not available in Xero)" in response.text  # shown, marked, not silently dropped


def test_an_account_archived_in_xero_after_the_page_loaded_is_refused(hubspot_admin):
    ctx = hubspot_admin
    form = form_of(ctx, page(ctx)).set("default_account_code", "260")  # the page was loaded, cached
    ctx["xero"].accounting(ctx["tenant"]).set_account_status("260", "ARCHIVED")
    before = snapshot(ctx["app"])

    response = post(ctx, form)

    assert response.status_code == 400 and snapshot(ctx["app"]) == before


# --- when the CRM or Xero is unavailable ------------------------------------------------------------

def test_crm_pipelines_unavailable_the_page_shows_saved_rules_and_a_save_keeps_them(hubspot_admin):
    ctx = hubspot_admin
    app, hubspot = ctx["app"], ctx["hubspot"]
    with app.app_context():
        db.session.add(StageRule(installation_id=ctx["installation_id"], pipeline_id="default",
                                 stage_id="closedwon", action=StageAction.AUTHORISE))
        db.session.commit()
    rendered_while_up = form_of(ctx, page(ctx)).rule("default", "closedwon", "draft")
    hubspot.inject_crm("5xx", path_prefix="/crm/v3/pipelines", times=None)

    response = page(ctx)

    assert "Could not load HubSpot&#39;s pipelines right now" in response.text
    assert "closedwon" in response.text and "Create and approve the invoice" in response.text
    form = form_of(ctx, response)
    assert form.values("rule_action") == [] and "rules" not in form.values("section")
    saved = post(ctx, form.check("draft_first"))
    assert "Saved." in saved.text
    # A form that showed the rules cannot be checked now: nothing of it is saved.
    refused = post(ctx, rendered_while_up)
    assert refused.status_code == 400 and "could not be loaded to check the stage rules" in refused.text
    with app.app_context():
        (rule,) = db.session.scalars(select(StageRule)).all()
        assert (rule.stage_id, rule.action) == ("closedwon", StageAction.AUTHORISE)
        assert db.session.get(InstallationSettings, ctx["installation_id"]).draft_first is True


def test_a_page_shown_without_xero_cannot_blank_the_xero_settings_when_xero_is_back(hubspot_admin):
    ctx = hubspot_admin
    app, xero = ctx["app"], ctx["xero"]
    with app.app_context():
        settings = db.session.get(InstallationSettings, ctx["installation_id"])
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.add(TaxMapping(installation_id=ctx["installation_id"], crm_tax_label="GST",
                                  xero_tax_type="OUTPUT"))
        db.session.commit()
    xero.inject("5xx", path_prefix="/Accounts", times=None)

    response = page(ctx)

    assert "Could not load accounts, tax rates and items from Xero right now" in response.text
    form = form_of(ctx, response)
    assert form.values("default_account_code") == [] and form.values("tax_label") == []
    xero.clear_faults()
    assert "Saved." in post(ctx, form.check("draft_first")).text
    after = snapshot(app)
    assert after["settings"][0][1:3] == ("200", "OUTPUT") and after["taxes"] == [("GST", "OUTPUT")]


# --- who may open it ---------------------------------------------------------------------------------

def test_missing_forged_expired_foreign_and_other_kinds_of_tokens_are_refused(hubspot_admin):
    ctx = hubspot_admin
    app, url, installation_id = ctx["app"], ctx["url"], ctx["installation_id"]
    with app.app_context():
        other = Installation(crm=CrmKind.HUBSPOT, account_id="424242", installed_by="eve@example.com")
        db.session.add(other)
        db.session.commit()
        expired = issue_view_token(View(installation_id, "admin", "settings", str(installation_id)), ttl=-1)
        foreign = issue_view_token(View(other.id, "eve@example.com", "settings", str(other.id)))
        deal = issue_view_token(View(installation_id, "admin", "deal", str(installation_id)))
        review = issue_view_token(View(installation_id, "admin", "review", str(installation_id)))
    forged = jwt.encode({"iss": "paydeck-view", "iat": 1, "exp": 2**31, "ins": installation_id, "usr": "x",
                         "typ": "settings", "oid": str(installation_id)},
                        "not-our-secret-but-at-least-32-bytes-long", algorithm="HS256")
    form = form_of(ctx, page(ctx)).rule("default", "closedwon", "authorise")
    before = snapshot(app)

    for token in (None, "", forged, expired, foreign, deal, review):
        data = [(k, v) for k, v in form.data() if k != "a"] + ([("a", token)] if token else [])
        got = requests.get(f"{url}/ui/settings/{installation_id}", params={"t": token} if token else {}, timeout=10)
        saved = requests.post(f"{url}/ui/settings/{installation_id}", data=data, timeout=10)
        disconnect = requests.post(f"{url}/ui/settings/{installation_id}/disconnect",
                                   data={"a": token or ""}, timeout=10)
        assert (got.status_code, saved.status_code, disconnect.status_code) == (401, 401, 401), token
    assert snapshot(app) == before
    with app.app_context():
        assert db.session.scalars(select(XeroConnection)).one().status == ConnectionStatus.CONNECTED


def test_an_uninstalled_installations_token_is_refused(hubspot_admin):
    ctx = hubspot_admin
    with ctx["app"].app_context():
        db.session.get(Installation, ctx["installation_id"]).status = InstallationStatus.UNINSTALLED
        db.session.commit()

    assert requests.get(ctx["settings_url"], timeout=10).status_code == 401


def test_only_the_installing_admins_card_gets_a_settings_url(hubspot_admin):
    ctx = hubspot_admin
    hubspot, url = ctx["hubspot"], ctx["url"]

    def card(**extra: str) -> dict[str, Any]:
        return card_get(url, hubspot.client_secret, {"portalId": hubspot.portal_id, "objectType": "deals",
                                                     "objectId": "1", **extra}).json()

    admin = card(userEmail=hubspot.user_email.upper())  # e-mail addresses compare ignoring case
    assert admin["settings_url"].startswith(f"{url}/ui/settings/{ctx['installation_id']}?t=")
    assert requests.get(admin["settings_url"], timeout=10).status_code == 200
    assert "settings_url" not in card(userEmail="rep@example.com")
    assert "settings_url" not in card()
    assert "open_url" in card(userEmail="rep@example.com")


# --- Xero connect and disconnect from the page --------------------------------------------------------

def test_connect_xero_from_the_settings_page_confirms_the_account_then_goes_to_xero(
        app_factory, fake_hubspot, fake_xero, browser):
    hubspot, _ = fake_hubspot
    xero, xero_url = fake_xero
    xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    settings_page = browser.get(f"{url}/install/hubspot")
    form = Form(settings_page.text, "/connect/xero")
    assert 'target="_blank"' in settings_page.text  # Xero's sign-in refuses to be framed
    assert "/connect/xero?t=" not in settings_page.text  # a POST, never a link with a token

    with Browser() as top_level_window:  # a new window: no session cookie of ours yet
        confirmation = top_level_window.post(f"{url}/connect/xero", data=form.data(),
                                             allow_redirects=False)
        assert confirmation.status_code == 200
        assert "HubSpot account" in confirmation.text and str(hubspot.portal_id) in confirmation.text
        assert "installation_id" not in _session_of(app, top_level_window)  # not signed in
        go = Form(confirmation.text, "/connect/xero/confirm")
        to_xero = top_level_window.post(f"{url}/connect/xero/confirm", data=go.data(),
                                        allow_redirects=False)
        assert to_xero.status_code == 302 and to_xero.headers["Location"].startswith(xero_url)
        done = top_level_window.get(to_xero.headers["Location"])
        assert "installation_id" not in _session_of(app, top_level_window)

    assert "Connected to Xero" in done.text and "Acme Pty Ltd" in done.text
    with app.app_context():
        assert db.session.scalars(select(XeroConnection)).one().status == ConnectionStatus.CONNECTED


def _session_of(app, browser) -> dict[str, Any]:
    """What our Flask session cookie in `browser` holds (decoded with the app's key)."""
    cookie = browser.cookies.get("session")
    if not cookie:
        return {}
    serializer = app.session_interface.get_signing_serializer(app)
    return dict(serializer.loads(cookie))


def test_login_csrf_an_attackers_connect_link_neither_signs_in_nor_reaches_xero(
        app_factory, fake_hubspot, fake_xero, browser):
    """Issue #12 (high): a GET of /connect/xero?t=<attacker's token> signed the victim's browser
    in as the attacker's installation; approving at Xero then stored the victim's Xero grant
    on the attacker's installation."""
    hubspot, _ = fake_hubspot
    xero, xero_url = fake_xero
    xero.add_tenant("Victim Books Ltd")
    app, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    with Browser() as attacker:  # the attacker installs Paydeck in their own portal
        attackers_page = attacker.get(f"{url}/install/hubspot")
    attackers_token = Form(attackers_page.text, "/connect/xero").values("a")[0]

    # The victim opens the attacker's link (GET) or a page that auto-posts the form (POST).
    via_link = browser.get(f"{url}/connect/xero", params={"a": attackers_token}, allow_redirects=False)
    via_post = browser.post(f"{url}/connect/xero", data={"a": attackers_token}, allow_redirects=False)
    # ... and a forged confirm without this browser's CSRF token.
    forged_confirm = browser.post(f"{url}/connect/xero/confirm", data={"a": attackers_token},
                                  allow_redirects=False)

    # A token in a link is never read (tokens stay out of URLs): the unsigned-in browser is
    # told to open Paydeck from its CRM.
    assert via_link.status_code == 401 and xero_url not in via_link.headers.get("Location", "")
    for shown in (via_post,):
        assert shown.status_code == 200  # a confirmation page that names the attacker's account
        assert str(hubspot.portal_id) in shown.text and "not your HubSpot account" in shown.text
        assert xero_url not in shown.headers.get("Location", "")
    assert forged_confirm.status_code == 400
    assert "installation_id" not in _session_of(app, browser)
    assert xero.grants == []  # Xero was never asked for consent
    with app.app_context():
        assert db.session.scalars(select(XeroConnection)).all() == []


def test_connect_xero_refuses_forged_and_other_kinds_of_tokens(hubspot_admin):
    ctx = hubspot_admin
    with ctx["app"].app_context():
        deal = issue_view_token(View(ctx["installation_id"], "rep", "deal", "1"))
    forged = jwt.encode({"iss": "paydeck-view", "iat": 1, "exp": 2**31, "ins": ctx["installation_id"],
                         "usr": "x", "typ": "settings", "oid": str(ctx["installation_id"])},
                        "not-our-secret-but-at-least-32-bytes-long", algorithm="HS256")

    for token in (forged, deal, "garbage"):
        response = requests.post(f"{ctx['url']}/connect/xero", data={"a": token}, timeout=10,
                                 allow_redirects=False)
        assert response.status_code == 401, token


def test_disconnect_on_the_settings_page_revokes_the_grant(hubspot_admin):
    ctx = hubspot_admin
    app, xero = ctx["app"], ctx["xero"]
    with app.app_context():
        refresh_token = db.session.scalars(select(XeroConnection)).one().refresh_token
    token = Form(page(ctx).text, f"/ui/settings/{ctx['installation_id']}/disconnect").values("a")[0]

    done = requests.post(f"{ctx['url']}/ui/settings/{ctx['installation_id']}/disconnect",
                         data={"a": token}, timeout=10)

    assert done.status_code == 200 and "Disconnected from Xero." in done.text
    assert "Connect to Xero" in done.text and "Connect Xero first" in done.text
    assert xero.store.grant_of_refresh_token(refresh_token).revoked
    with app.app_context():
        connection = db.session.scalars(select(XeroConnection)).one()
        assert connection.status == ConnectionStatus.DISCONNECTED
        assert connection.access_token is None and connection.refresh_token is None
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "xero_disconnected")).one()
        assert event.detail == {"by": ctx["hubspot"].user_email}


# --- escaping ---------------------------------------------------------------------------------------

def test_crm_and_xero_text_is_escaped(hubspot_admin):
    ctx = hubspot_admin
    hubspot, books = ctx["hubspot"], ctx["xero"].accounting(ctx["tenant"])
    hubspot.crm.add_pipeline("<script>alert('pipe')</script>", [{"id": "s1", "label": "<b>Stage</b>"}])
    hubspot.crm.add_product(name="<img src=x onerror=alert(1)>", price="1.00")
    books.add_account("280", "<svg onload=alert(2)>")
    books.add_item("WIDGET", "<i>Widget</i>", "5.00")

    text = page(ctx, f"{ctx['settings_url']}&refresh=1").text  # Xero's lists, not the cached ones

    for raw, escaped in (("<script>alert('pipe')</script>", "&lt;script&gt;alert(&#39;pipe&#39;)&lt;/script&gt;"),
                         ("<b>Stage</b>", "&lt;b&gt;Stage&lt;/b&gt;"),
                         ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
                         ("<svg onload=alert(2)>", "&lt;svg onload=alert(2)&gt;"),
                         ("<i>Widget</i>", "&lt;i&gt;Widget&lt;/i&gt;")):
        assert raw not in text and escaped in text, raw


# --- Pipedrive ------------------------------------------------------------------------------------------

def test_the_pipedrive_settings_entry_verifies_its_jwt(app_factory):
    app, url = app_factory.serve(pipedrive_client_secret=PD_SECRET)
    with app.app_context():
        installation = Installation(crm=CrmKind.PIPEDRIVE, account_id="7788990")
        db.session.add(installation)
        db.session.commit()
        installation_id = installation.id

    def load(secret: str, **claims: Any) -> requests.Response:
        token = jwt.encode({"companyId": 7788990, "userId": 5, "exp": int(time.time()) + 300, **claims},
                           secret, algorithm="HS256")
        return requests.get(f"{url}/pipedrive/settings", params={"token": token}, timeout=10,
                            allow_redirects=False)

    with app.app_context():  # Pipedrive said user 5 is an admin a moment ago (cached answer)
        get_redis().set(f"paydeck:crm-admin:{installation_id}:5", b"1", ex=60)
    ok = load(PD_SECRET)
    assert ok.status_code == 302
    assert ok.headers["Location"].startswith(f"{url}/ui/settings/{installation_id}?t=")
    assert "pd=1" in ok.headers["Location"]
    assert load("forged-secret-of-at-least-32-bytes-long").status_code == 401
    assert load(PD_SECRET, exp=int(time.time()) - 10).status_code == 401
    assert load(PD_SECRET, companyId=1).status_code == 404
    assert requests.get(f"{url}/pipedrive/settings", timeout=10).status_code == 401


def test_a_pipedrive_installations_settings_page_lists_its_pipelines_and_saves_a_rule(
        app_factory, fake_pipedrive, fake_xero, browser):
    pipedrive, _ = fake_pipedrive
    xero, _ = fake_xero
    xero.add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive, xero=fake_xero))
    browser.get(f"{url}/install/pipedrive")
    browser.get(f"{url}/connect/xero")
    renewals = pipedrive.api.add_pipeline("Renewals", ["Renewal due", "Renewed"])
    pipedrive.api.add_product("Support plan", code="SUP-1", price="99.00")
    won = str(pipedrive.api.stage_id("Won"))

    response = requests.get(pipedrive.panel_url(f"{url}/pipedrive/settings", "settings", pipedrive.company_id),
                            timeout=10)

    assert response.status_code == 200 and "pd=1" in response.url
    assert "app-extensions-sdk" in response.text  # Pipedrive hides a surface that does not initialise
    for label in ("Pipedrive account", "Pipeline", "Won", "Renewals", "Renewal due", "Support plan", "SUP-1"):
        assert label in response.text, label
    with app.app_context():
        installation_id = db.session.scalars(select(Installation.id)).one()
    form = Form(response.text, f"/ui/settings/{installation_id}").rule("1", won, "authorise")
    assert ["pd", "1"] in form.fields

    saved = requests.post(f"{url}/ui/settings/{installation_id}", data=form.data(), timeout=10)

    assert "Saved." in saved.text and "pd=1" in saved.url
    with app.app_context():
        rules = [(r.pipeline_id, r.stage_id, r.action) for r in db.session.scalars(select(StageRule))]
        assert rules == [("1", won, StageAction.AUTHORISE)]
        assert action_for_stage(installation_id, won) == StageAction.AUTHORISE
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "settings_changed")).one()
        assert event.detail["by"] == str(pipedrive.user_id)
    assert str(renewals) in response.text


# --- the terms the page offers are ones the invoice builder understands --------------------------------

@pytest.mark.parametrize("kind", [k for k, term in TERM_KINDS.items() if term.days is not None])
def test_every_payment_term_kind_is_one_the_builder_understands(kind):
    low, high = TERM_KINDS[kind].days  # type: ignore[misc]
    xero_type = str(_terms({"type": kind, "days": high})["type"])

    for days in (low, high):
        assert due_date(date(2026, 2, 27), PaymentTerms(xero_type, days)) >= date(2026, 2, 27)


def test_pipedrive_settings_are_for_the_installer_and_admins_only(app_factory, fake_pipedrive, fake_xero,
                                                                  browser):
    """Issue #12 (high): any Pipedrive user with a valid panel JWT was treated as the admin."""
    pipedrive, _ = fake_pipedrive
    fake_xero[0].add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive, xero=fake_xero))
    browser.get(f"{url}/install/pipedrive")
    rep = pipedrive.api.add_user("Sam Rep", "sam@acme.example", is_admin=False)
    admin = pipedrive.api.add_user("Alex Admin", "alex@acme.example", is_admin=True)

    def open_as(user_id: int) -> requests.Response:
        return requests.get(pipedrive.panel_url(f"{url}/pipedrive/settings", "settings",
                                                pipedrive.company_id, user_id=user_id), timeout=10)

    refused = open_as(rep)
    calls = pipedrive.count_api_calls(path_prefix="/api/v1/users/")
    again = open_as(rep)

    assert refused.status_code == again.status_code == 403
    assert "installing user and Pipedrive admins" in refused.text and "<form" not in refused.text
    assert pipedrive.count_api_calls(path_prefix="/api/v1/users/") == calls  # answer cached
    assert open_as(admin).status_code == 200
    assert open_as(pipedrive.user_id).status_code == 200  # the installer
    with app.app_context():
        audits = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "settings_refused")).all()
        assert [a.detail["user_id"] for a in audits] == [str(rep), str(rep)]


def test_pipedrive_settings_fail_closed_when_pipedrive_cannot_say(app_factory, fake_pipedrive, fake_xero,
                                                                  browser):
    pipedrive, _ = fake_pipedrive
    app, url = app_factory.serve(**fake_settings(pipedrive=fake_pipedrive, xero=fake_xero))
    browser.get(f"{url}/install/pipedrive")
    other = pipedrive.api.add_user("Alex Admin", "alex@acme.example", is_admin=True)
    pipedrive.inject_api("5xx", path_prefix="/api/v1/users/", status=503)

    response = requests.get(pipedrive.panel_url(f"{url}/pipedrive/settings", "settings",
                                                pipedrive.company_id, user_id=other), timeout=10)

    assert response.status_code == 403 and "could not confirm" in response.text


def test_the_access_section_shows_the_defaults(hubspot_admin):
    """Issue #12: everyone who can see a deal sees its amounts; owners and admins act."""
    form = form_of(hubspot_admin, page(hubspot_admin))

    assert form.values("money_visibility") == ["everyone"]
    assert form.values("action_permission") == ["owners_and_admins"]


def test_a_tolerance_error_is_shown_beside_its_field_and_linked_from_the_summary(hubspot_admin):
    """Issue #14: one error summary at the top that links to each field's error (the text
    beside the field, once), not a second unlinked copy."""
    ctx = hubspot_admin
    form = form_of(ctx, page(ctx)).set("amount_tolerance", "a bit")

    response = post(ctx, form)

    assert response.status_code == 400
    assert response.text.count('id="error-summary"') == 1
    assert re.search(r'<a href="#error-amount_tolerance">[^<]*at most 2 decimals', response.text)
    assert re.search(r'id="error-amount_tolerance"[^>]*>[^<]*at most 2 decimals', response.text)
    assert response.text.count("at most 2 decimals") == 2  # the summary's link, the field's text
