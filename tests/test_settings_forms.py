"""The settings page's form classes on their own (app/settings_forms/): what each section reads
from a submitted form, what it refuses and keeps, and which errors the page places beside a
field. No HTTP and no database: tests/test_settings_page.py drives the page itself."""

from __future__ import annotations

from decimal import Decimal

from werkzeug.datastructures import MultiDict

from app.access.rules import ADMINS, OWNERS_AND_ADMINS
from app.models import LineAmountType
from app.settings_forms.form import SettingsForm
from app.settings_forms.invoices import InvoiceOptions
from app.settings_forms.matching import ContactMatching
from app.settings_forms.permissions import Permissions
from app.settings_forms.products import ProductChoice, ProductMappings
from app.settings_forms.sources import Sources
from app.settings_forms.stage_rules import StageRules
from app.settings_forms.tax_labels import TaxLabels
from app.settings_forms.xero_defaults import XeroDefaults
from xero.reference import Account, Item, ReferenceData, TaxRate

REF = ReferenceData("AUD", frozenset({"AUD"}),
                    accounts={"200": Account("200", "Sales", "REVENUE"),
                              "400": Account("400", "Advertising", "EXPENSE")},
                    tax_rates={"OUTPUT": TaxRate("OUTPUT", "GST on Income", Decimal("10")),
                               "INPUT": TaxRate("INPUT", "GST on Expenses", Decimal("10"),
                                                can_apply_to_revenue=False)},
                    items={"CONS": Item("CONS", "Consulting")})
PIPELINES = [{"id": "default", "stages": [{"id": "won"}, {"id": "lost"}]}]
PRODUCTS = [{"id": 7, "name": "Consulting"}]
UP = Sources(PIPELINES, PRODUCTS, REF, [])
DOWN = Sources(None, None, None, ["down"])
OPTIONS = [("dedupe", "email"), ("terms_type", "days_after_invoice"), ("terms_days", "30"),
           ("line_amount_type", "Exclusive")]


def blank() -> SettingsForm:
    return SettingsForm(ContactMatching(), InvoiceOptions(), Permissions(), StageRules(), TaxLabels(),
                        XeroDefaults(), ProductMappings())


def saved() -> SettingsForm:
    return SettingsForm(ContactMatching(), InvoiceOptions(), Permissions(),
                        StageRules({("old", "gone"): "authorise", ("default", "won"): "draft"}),
                        TaxLabels([("GST", "OUTPUT")]), XeroDefaults("200", "OUTPUT"),
                        ProductMappings({"7": ProductChoice("CONS"), "9": ProductChoice(tax="OUTPUT")}))


def form(*pairs: tuple[str, str]) -> MultiDict[str, str]:
    return MultiDict([*OPTIONS, *pairs])


def gated(settings: SettingsForm) -> tuple[object, ...]:
    """The sections that need the CRM or Xero to be checked."""
    return settings.rules, settings.taxes, settings.xero, settings.products


def test_sections_the_page_showed_as_saved_are_kept_as_saved():
    wanted, errors = saved().read(form(("default_account_code", "400")), DOWN, "HubSpot")

    assert errors == {}
    assert gated(wanted) == gated(saved())
    assert wanted.matching.dedupe_order == ["email"]  # the options need neither CRM nor Xero


def test_an_editable_section_that_cannot_be_checked_now_is_an_error_beside_it():
    wanted, errors = saved().read(form(("section", "rules"), ("section", "xero"), ("section", "products")),
                                  DOWN, "Pipedrive")

    assert errors == {
        "rules": "Pipedrive's pipelines could not be loaded to check the stage rules.",
        "xero": "Xero could not be reached to check the accounts and tax rates.",
        "products": "Pipedrive's products or Xero's items could not be loaded to check the product mappings.",
    }
    assert gated(wanted) == gated(saved())
    assert set(errors) <= wanted.placed_error_keys(DOWN)


def test_rules_keep_stages_the_crm_no_longer_lists_and_refuse_unknown_ones():
    rows = [("rule_pipeline", "default"), ("rule_stage", "won"), ("rule_action", "authorise"),
            ("rule_pipeline", "default"), ("rule_stage", "nosuch"), ("rule_action", "draft"),
            ("rule_pipeline", "default"), ("rule_stage", "lost"), ("rule_action", "explode")]

    rules = saved().rules.read(MultiDict(rows), UP, errors := {})

    assert rules.by_stage == {("old", "gone"): "authorise", ("default", "won"): "authorise",
                              ("default", "lost"): "explode"}
    assert errors == {"rule:default:nosuch": "Stage nosuch of pipeline default is not one of the CRM's stages.",
                      "rule:default:lost": "Choose one of the listed actions."}
    assert "rule:default:lost" in rules.error_keys(UP) and "rule:default:nosuch" not in rules.error_keys(UP)
    assert rules.labels(UP)["orphan_rules"] == {("old", "gone"): "authorise"}


def test_lists_of_different_lengths_are_a_form_error():
    StageRules().read(MultiDict([("rule_pipeline", "default")]), UP, errors := {})

    assert errors == {"form": "The form arrived incomplete. Reload the page and try again."}


def test_products_are_checked_against_xero_and_unlisted_ones_kept():
    rows = [("product_id", "7"), ("product_item", "NOPE"), ("product_account", "400"),
            ("product_tax", "INPUT")]

    products = saved().products.read(MultiDict(rows), UP, errors := {})

    assert products.choices == {"9": ProductChoice(tax="OUTPUT"), "7": ProductChoice("NOPE", "400", "INPUT")}
    assert errors == {"product:7:item": "Xero has no item 'NOPE'.",
                      "product:7:account": "'400' is not an active revenue account in Xero.",
                      "product:7:tax": "'INPUT' is not an active sales tax rate in Xero."}


def test_tax_labels_drop_removed_and_empty_rows_and_match_labels_ignoring_case():
    rows = [("tax_label", "GST"), ("tax_type", "OUTPUT"), ("tax_label", "Old"), ("tax_type", "OUTPUT"),
            ("tax_label", "gst"), ("tax_type", "OUTPUT"), ("tax_label", ""), ("tax_type", ""),
            ("tax_label", "VAT"), ("tax_type", "INPUT"), ("tax_remove", "1")]

    taxes = TaxLabels().read(MultiDict(rows), UP, errors := {})

    assert taxes.mappings == [("GST", "OUTPUT"), ("gst", "OUTPUT"), ("VAT", "INPUT")]
    assert errors == {"tax:1": "'gst' is mapped twice (labels are matched ignoring case).",
                      "tax:2": "'INPUT' is not an active sales tax rate in Xero."}
    assert {"tax:0", "tax:1", "tax:2"} <= taxes.error_keys(UP)


def test_invoice_options_check_days_per_kind_and_keep_a_tolerance_the_form_left_out():
    options = InvoiceOptions(amount_tolerance="5.00")
    ok = options.read(MultiDict([("terms_type", "org_default"), ("terms_days", "12"),
                                 ("line_amount_type", "Inclusive")]), UP, errors := {})
    assert errors == {} and (ok.terms_days, ok.amount_tolerance) == ("", "5.00")
    assert ok.columns()["payment_terms"] == {"type": "org_default"}
    assert ok.columns()["line_amount_type"] == LineAmountType.INCLUSIVE

    options.read(MultiDict([("terms_type", "day_of_following_month"), ("terms_days", "²"),
                            ("line_amount_type", "Exclusive"), ("amount_tolerance", "0.001")]), UP, errors := {})
    assert errors == {"payment_terms": "Enter a whole number of days from 1 to 31.",
                      "amount_tolerance": "Enter an amount from 0 to 1,000,000 with at most 2 decimals."}


def test_matching_and_permissions_refuse_what_the_page_does_not_list():
    ContactMatching().read(MultiDict([("dedupe", "email"), ("dedupe", "email"),
                                      ("tax_number_property", "vat\n")]), UP, errors := {})
    assert errors == {"dedupe_order": "Use each way to match contacts at most once."}

    kept = Permissions(ADMINS, OWNERS_AND_ADMINS).read(MultiDict([("action_permission", "anyone")]), UP,
                                                       errors := {})
    assert (kept.money_visibility, errors) == (ADMINS, {"action_permission": "Choose one of the listed options."})


def test_xero_defaults_must_be_an_active_revenue_account_and_a_sales_tax_rate():
    defaults = XeroDefaults().read(MultiDict([("default_account_code", " 400 "),
                                              ("default_tax_type", "OUTPUT")]), UP, errors := {})

    assert defaults == XeroDefaults("400", "OUTPUT")
    assert errors == {"default_account_code": "'400' is not an active revenue account in Xero."}
    assert XeroDefaults().columns() == {"default_account_code": None, "default_tax_type": None}


def test_a_settings_row_section_without_a_row_has_the_models_defaults():
    assert InvoiceOptions.saved(None) == InvoiceOptions()
    assert blank().matching.columns() == {"dedupe_order": ["email", "tax_number", "name"],
                                          "tax_number_property": None}
