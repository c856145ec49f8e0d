"""The admin's settings page: the Xero connection, stage rules per pipeline, Xero defaults,
product and tax mappings, contact matching and invoice options.

It opens inside the CRMs (a HubSpot modal, Pipedrive's app settings surface), so, like the card
pages, it uses no cookies: a `settings` page token (app.ui_auth) rides in the URL, and each
form (save, disconnect, connect Xero) carries its own single-use action token, which is also
the CSRF protection. Only the installing admin is handed one (the
HubSpot card, `/pipedrive/settings`, and `/setup` after install or Xero connect).

What the page offers comes from the CRM (pipelines, products) and Xero (accounts, tax rates,
items). Whatever could not be read is shown as saved and left untouched on save; everything
else is validated first and written in one transaction, or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict

from app.runtime import get_settings
from app.access import (
    DEFAULT_ACTION_PERMISSION,
    DEFAULT_MONEY_VISIBILITY,
    LEVELS,
    may_administer_pipedrive,
)
from app.company_import import crm_name
from app.connection_state import connection_notices
from app.connections import revoke_grant, xero_client
from app.engine.reference import forget_reference_data, reference_data
from app.extensions import db
from app.models import (
    AuditEvent,
    ConnectionStatus,
    Installation,
    InstallationSettings,
    LineAmountType,
    ProductMapping,
    StageAction,
    StageRule,
    TaxMapping,
)
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.ui_auth import (
    View,
    issue_action_token,
    issue_view_token,
    read_action_token,
    read_view_token,
)
from app.views.common import (
    crm_frame_headers,
    message_page,
    pipedrive_caller,
    pipedrive_id_query,
    view_installation,
)
from app.wiring import adapter_for
from crm_adapters.base import CrmError
from xero.contacts import DEFAULT_ORDER
from xero.errors import XeroFailure
from xero.reference import ReferenceData

log = logging.getLogger(__name__)
bp = Blueprint("settings", __name__)
bp.after_request(crm_frame_headers)

# The settings page's tokens: the page opened from the card (or /pipedrive/settings, /setup)
# and the save form's single-use token. The form is long (stages, products, tax labels), so
# this is more than the pages' VIEW_TTL; nothing the page issues outlives the token it was
# opened with (app.ui_auth), so an admin who needs longer reopens it from the CRM.
FORM_TTL = 1800

ACTION_LABELS = {
    StageAction.NONE: "Nothing",
    StageAction.DRAFT: "Create a draft invoice",
    StageAction.AUTHORISE: "Create and approve the invoice",
    StageAction.AUTHORISE_AND_EMAIL: "Approve and email the invoice",
}
DEDUPE_LABELS = {"email": "Email address", "tax_number": "Tax number (ABN, GST or VAT number)",
                 "name": "Company name"}
LINE_AMOUNT_LABELS = {LineAmountType.EXCLUSIVE: "Tax exclusive", LineAmountType.INCLUSIVE: "Tax inclusive",
                      LineAmountType.NO_TAX: "No tax"}
# Xero's account types of the REVENUE class: what a sales line may be coded to.
REVENUE_TYPES = frozenset({"REVENUE", "SALES", "OTHERINCOME"})
MAX_LABEL = 128  # TaxMapping.crm_tax_label, InstallationSettings.tax_number_property


@dataclass(frozen=True)
class TermKind:
    label: str
    days: tuple[int, int] | None  # the accepted "days" (inclusive); None: no days


# Keys are the settings' names, which app.engine._terms maps to Xero's PaymentTermType.
# Day-of-month kinds take 1-31 (xero.build clamps to the month's last day); the "days after"
# kinds any count up to a year (Net 60 and Net 90 are common).
TERM_KINDS = {
    "org_default": TermKind("The Xero organisation's default", None),
    "days_after_invoice": TermKind("days after the invoice date", (0, 365)),
    "days_after_end_of_month": TermKind("days after the end of the invoice month", (0, 365)),
    "day_of_following_month": TermKind("day of the month after the invoice", (1, 31)),
    "day_of_current_month": TermKind("day of the invoice's month", (1, 31)),
}


# --- what the page offers ------------------------------------------------------------------------

@dataclass
class Sources:
    """What the CRM and Xero offer; None where they could not be read (or Xero is not
    connected): then the saved rows of that kind are shown, and kept as they are on save."""

    pipelines: list[dict[str, Any]] | None
    products: list[dict[str, Any]] | None
    ref: ReferenceData | None
    notices: list[str]

    @property
    def stages(self) -> set[tuple[str, str]]:
        return {(str(p["id"]), str(s["id"])) for p in self.pipelines or [] for s in p["stages"]}

    @property
    def product_ids(self) -> set[str]:
        return {str(p["id"]) for p in self.products or []}

    @property
    def products_editable(self) -> bool:
        return self.products is not None and self.ref is not None

    def account_options(self) -> list[tuple[str, str]]:
        accounts = self.ref.accounts.values() if self.ref else []
        return [(a.code, f"{a.code} · {a.name}") for a in sorted(accounts, key=lambda a: a.code)
                if _sales_account(a.code, self.ref)]

    def tax_options(self) -> list[tuple[str, str]]:
        rates = self.ref.tax_rates.values() if self.ref else []
        return [(r.tax_type, f"{r.name} ({r.rate.normalize():f}%)")
                for r in sorted(rates, key=lambda r: r.name) if r.usable_on_sales]

    def item_options(self) -> list[tuple[str, str]]:
        items = self.ref.items.values() if self.ref else []
        return [(i.code, f"{i.code} · {i.name}") for i in sorted(items, key=lambda i: i.code)]


def _sales_account(code: str, ref: ReferenceData | None) -> bool:
    account = ref.accounts.get(code) if ref else None
    return account is not None and account.usable and account.type in REVENUE_TYPES


def _sales_tax(tax_type: str, ref: ReferenceData | None) -> bool:
    rate = ref.tax_rates.get(tax_type) if ref else None
    return rate is not None and rate.usable_on_sales


def _load_sources(installation: Installation, *, refresh: bool) -> Sources:
    crm = adapter_for(installation.crm.value)
    name = crm_name(installation)
    notices: list[str] = []
    pipelines = _crm_list(lambda: crm.list_pipelines(installation), f"{name}'s pipelines", notices)
    products = _crm_list(lambda: crm.list_products(installation), f"{name}'s products", notices)
    if notices:  # a failed refresh wrote its state in its own session: show it on this render
        db.session.expire(installation, ["status", "token_failures", "token_failing_since",
                                         "token_failure_detail"])
    return Sources(pipelines, products, _xero_reference(installation, refresh, notices), notices)


def _crm_list(read: Callable[[], list[dict[str, Any]]], what: str,
              notices: list[str]) -> list[dict[str, Any]] | None:
    try:
        return read()
    except (CrmError, TokenReconnectNeeded, TokenUnavailable) as exc:
        log.warning("settings page: could not list %s: %s", what, exc)
        notices.append(f"Could not load {what} right now ({exc}). The saved settings for them are "
                       "shown and are kept as they are when you save. Reload to try again.")
        return None


def _xero_reference(installation: Installation, refresh: bool,
                    notices: list[str]) -> ReferenceData | None:
    connection = installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        return None  # the page says: connect Xero first
    if refresh:
        forget_reference_data(installation.id)
    try:
        return reference_data(installation, connection, xero_client(connection))
    except (XeroFailure, TokenReconnectNeeded, TokenUnavailable) as exc:
        log.warning("settings page: installation %s: no Xero reference data: %s", installation.id, exc)
        db.session.expire(connection)  # a failed refresh may have marked it reconnect-needed
        notices.append(f"Could not load accounts, tax rates and items from Xero right now ({exc}). "
                       "The saved Xero settings are kept as they are when you save.")
        return None


# --- the settings as the form shows them ---------------------------------------------------------

@dataclass(frozen=True)
class ProductChoice:
    """A product's Xero item, account and tax type; "" = use the item's or the defaults."""

    item: str = ""
    account: str = ""
    tax: str = ""

    @property
    def blank(self) -> bool:
        return not (self.item or self.account or self.tax)

    def as_dict(self) -> dict[str, str | None]:
        return {"item": self.item or None, "account": self.account or None, "tax": self.tax or None}


@dataclass(frozen=True)
class FormState:
    """Every setting as text, from the database or from a submitted form. Defaults are the
    model's, for an installation that has no settings row yet."""

    rules: dict[tuple[str, str], str] = field(default_factory=dict)  # (pipeline, stage) -> action
    products: dict[str, ProductChoice] = field(default_factory=dict)  # CRM product id -> choice
    taxes: list[tuple[str, str]] = field(default_factory=list)  # (CRM tax label, Xero tax type)
    default_account_code: str = ""
    default_tax_type: str = ""
    dedupe_order: list[str] = field(default_factory=lambda: list(DEFAULT_ORDER))
    draft_first: bool = False
    terms_type: str = "days_after_invoice"
    terms_days: str = "30"
    use_contact_terms: bool = True  # a Xero contact's own PaymentTerms.Sales come first
    line_amount_type: str = LineAmountType.EXCLUSIVE.value
    allow_single_line_from_amount: bool = False
    tax_number_property: str = ""
    amount_tolerance: str = "0.01"  # deal amount vs the sum of its lines, in the deal currency
    money_visibility: str = DEFAULT_MONEY_VISIBILITY  # app.access.LEVELS
    action_permission: str = DEFAULT_ACTION_PERMISSION


def _saved_state(installation: Installation) -> FormState:
    rules = {(r.pipeline_id, r.stage_id): r.action.value for r in db.session.scalars(
        select(StageRule).where(StageRule.installation_id == installation.id))}
    products = {p.crm_product_id: ProductChoice(p.xero_item_code or "", p.account_code or "",
                                                p.tax_type or "")
                for p in db.session.scalars(select(ProductMapping).where(
                    ProductMapping.installation_id == installation.id))}
    taxes = [(t.crm_tax_label, t.xero_tax_type) for t in db.session.scalars(
        select(TaxMapping).where(TaxMapping.installation_id == installation.id).order_by(
            TaxMapping.crm_tax_label))]
    s = installation.settings
    if s is None:
        return FormState(rules=rules, products=products, taxes=taxes)
    terms = s.payment_terms or {"type": "org_default"}
    return FormState(
        rules=rules, products=products, taxes=taxes,
        default_account_code=s.default_account_code or "", default_tax_type=s.default_tax_type or "",
        dedupe_order=list(s.dedupe_order or DEFAULT_ORDER), draft_first=bool(s.draft_first),
        terms_type=str(terms.get("type", "org_default")),
        terms_days="" if terms.get("days") is None else str(terms["days"]),
        use_contact_terms=s.use_contact_terms is not False,
        line_amount_type=s.line_amount_type.value if s.line_amount_type else LineAmountType.EXCLUSIVE.value,
        allow_single_line_from_amount=bool(s.allow_single_line_from_amount),
        tax_number_property=s.tax_number_property or "",
        amount_tolerance=_tolerance_text(s.amount_tolerance),
        money_visibility=s.money_visibility or DEFAULT_MONEY_VISIBILITY,
        action_permission=s.action_permission or DEFAULT_ACTION_PERMISSION)


def _tolerance_text(value: Decimal | None) -> str:
    return f"{(Decimal('0.01') if value is None else value).quantize(Decimal('0.01'))}"


# --- reading and validating a submitted form -----------------------------------------------------

def _read_form(form: MultiDict[str, str], saved: FormState, sources: Sources,
               crm_name: str) -> tuple[FormState, dict[str, str]]:
    """The settings the admin asked for, and what is wrong with them (field -> message).

    The form names the sections it showed as editable (`section`); the others stay as saved,
    so a page shown while the CRM or Xero was unavailable cannot blank them. A section that
    was editable but cannot be checked now is an error: nothing is saved rather than a part.
    """
    errors: dict[str, str] = {}
    sections = set(form.getlist("section"))
    wanted = replace(saved, **_read_options(form, errors))
    if "rules" in sections:
        if sources.pipelines is None:
            errors["rules"] = f"{crm_name}'s pipelines could not be loaded to check the stage rules."
        else:
            wanted = replace(wanted, rules=_read_rules(form, saved.rules, sources, errors))
    if "xero" in sections:
        if sources.ref is None:
            errors["xero"] = "Xero could not be reached to check the accounts and tax rates."
        else:
            wanted = replace(wanted, taxes=_read_taxes(form, sources.ref, errors),
                             **_read_defaults(form, sources.ref, errors))
    if "products" in sections:
        if not sources.products_editable:
            errors["products"] = (f"{crm_name}'s products or Xero's items could not be loaded to "
                                  "check the product mappings.")
        else:
            wanted = replace(wanted, products=_read_products(form, saved.products, sources, errors))
    return wanted, errors


def _rows(form: MultiDict[str, str], names: Iterable[str], errors: dict[str, str]) -> list[list[str]]:
    """Parallel lists of inputs (one per table row) as rows; a form whose lists disagree in
    length was not sent by this page."""
    columns = [form.getlist(name) for name in names]
    if len({len(c) for c in columns}) > 1:
        errors["form"] = "The form arrived incomplete. Reload the page and try again."
        return []
    return [list(row) for row in zip(*columns)]


def _read_rules(form: MultiDict[str, str], saved: dict[tuple[str, str], str], sources: Sources,
                errors: dict[str, str]) -> dict[tuple[str, str], str]:
    """Rules for the stages the CRM listed; saved rules for stages it no longer lists stay."""
    listed = sources.stages
    rules = {key: action for key, action in saved.items() if key not in listed}
    actions = {a.value for a in StageAction}
    for pipeline_id, stage_id, action in _rows(form, ("rule_pipeline", "rule_stage", "rule_action"), errors):
        key, error = (pipeline_id, stage_id), f"rule:{pipeline_id}:{stage_id}"
        if key not in listed:
            errors[error] = f"Stage {stage_id} of pipeline {pipeline_id} is not one of the CRM's stages."
            continue
        if key in rules:
            errors[error] = "This stage was sent twice."
        elif action not in actions:
            errors[error] = "Choose one of the listed actions."
        rules[key] = action
    return rules


def _read_products(form: MultiDict[str, str], saved: dict[str, ProductChoice], sources: Sources,
                   errors: dict[str, str]) -> dict[str, ProductChoice]:
    """Mappings for the products the CRM listed; saved ones for products it no longer lists stay."""
    listed, ref = sources.product_ids, sources.ref
    products = {pid: choice for pid, choice in saved.items() if pid not in listed}
    for pid, item, account, tax in _rows(form, ("product_id", "product_item", "product_account",
                                                "product_tax"), errors):
        choice = ProductChoice(item.strip(), account.strip(), tax.strip())
        if pid not in listed:
            errors[f"product:{pid}"] = f"Product {pid} is not one of the CRM's products."
            continue
        if pid in products:
            errors[f"product:{pid}"] = "This product was sent twice."
        if choice.item and (ref is None or choice.item not in ref.items):
            errors[f"product:{pid}:item"] = f"Xero has no item {choice.item!r}."
        if choice.account and not _sales_account(choice.account, ref):
            errors[f"product:{pid}:account"] = f"{choice.account!r} is not an active revenue account in Xero."
        if choice.tax and not _sales_tax(choice.tax, ref):
            errors[f"product:{pid}:tax"] = f"{choice.tax!r} is not an active sales tax rate in Xero."
        products[pid] = choice
    return products


def _read_taxes(form: MultiDict[str, str], ref: ReferenceData,
                errors: dict[str, str]) -> list[tuple[str, str]]:
    """The whole tax mapping table: kept rows, edited rows and the new row, minus removed ones."""
    removed = set(form.getlist("tax_remove"))
    taxes: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, (label, tax_type) in enumerate(_rows(form, ("tax_label", "tax_type"), errors)):
        label, tax_type = label.strip(), tax_type.strip()
        if str(index) in removed or not (label or tax_type):
            continue
        key = f"tax:{len(taxes)}"
        if not label:
            errors[key] = "Name the CRM tax label this rate is for."
        elif len(label) > MAX_LABEL:
            errors[key] = f"Use at most {MAX_LABEL} characters."
        elif label.casefold() in seen:
            errors[key] = f"{label!r} is mapped twice (labels are matched ignoring case)."
        elif not _sales_tax(tax_type, ref):
            errors[key] = ("Choose a Xero tax rate." if not tax_type else
                           f"{tax_type!r} is not an active sales tax rate in Xero.")
        seen.add(label.casefold())
        taxes.append((label, tax_type))
    return taxes


def _read_defaults(form: MultiDict[str, str], ref: ReferenceData, errors: dict[str, str]) -> dict[str, Any]:
    account = form.get("default_account_code", "").strip()
    tax_type = form.get("default_tax_type", "").strip()
    if account and not _sales_account(account, ref):
        errors["default_account_code"] = f"{account!r} is not an active revenue account in Xero."
    if tax_type and not _sales_tax(tax_type, ref):
        errors["default_tax_type"] = f"{tax_type!r} is not an active sales tax rate in Xero."
    return {"default_account_code": account, "default_tax_type": tax_type}


def _read_options(form: MultiDict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    """The settings that need neither the CRM nor Xero."""
    dedupe = [key for key in form.getlist("dedupe") if key]
    if not dedupe:
        errors["dedupe_order"] = "Choose at least one way to match contacts."
    elif any(key not in DEFAULT_ORDER for key in dedupe):
        errors["dedupe_order"] = "Choose from the listed ways to match contacts."
    elif len(set(dedupe)) != len(dedupe):
        errors["dedupe_order"] = "Use each way to match contacts at most once."
    terms_type, terms_days = form.get("terms_type", ""), form.get("terms_days", "").strip()
    kind = TERM_KINDS.get(terms_type)
    if kind is None:
        errors["payment_terms"] = "Choose one of the listed payment terms."
    elif kind.days is not None:
        low, high = kind.days
        # isdigit() alone admits '²' and other digits int() refuses: ASCII digits only.
        if not (terms_days.isascii() and terms_days.isdigit() and low <= int(terms_days) <= high):
            errors["payment_terms"] = f"Enter a whole number of days from {low} to {high}."
    line_amount_type = form.get("line_amount_type", "")
    if line_amount_type not in {t.value for t in LineAmountType}:
        errors["line_amount_type"] = "Choose one of the listed amount types."
    tax_property = form.get("tax_number_property", "").strip()
    if len(tax_property) > MAX_LABEL or not tax_property.isprintable():
        errors["tax_number_property"] = f"Use at most {MAX_LABEL} printable characters."
    tolerance = form.get("amount_tolerance")  # None: a form without the field keeps it as saved
    if tolerance is not None and _tolerance(tolerance.strip()) is None:
        errors["amount_tolerance"] = "Enter an amount from 0 to 1,000,000 with at most 2 decimals."
    access = _read_access(form, errors)
    return {"dedupe_order": dedupe, "draft_first": form.get("draft_first") == "1",
            "terms_type": terms_type,
            "terms_days": "" if kind is not None and kind.days is None else terms_days,
            "use_contact_terms": form.get("use_contact_terms") == "1",
            "line_amount_type": line_amount_type,
            "allow_single_line_from_amount": form.get("allow_single_line_from_amount") == "1",
            "tax_number_property": tax_property,
            **({} if tolerance is None else {"amount_tolerance": tolerance.strip()}), **access}


def _read_access(form: MultiDict[str, str], errors: dict[str, str]) -> dict[str, str]:
    """Who sees money and who acts (issue #12): each one of app.access.LEVELS. A form without
    the field keeps it as saved (as amount_tolerance); one with any other value is an error."""
    chosen: dict[str, str] = {}
    for name in ("money_visibility", "action_permission"):
        value = form.get(name)
        if value is None:
            continue
        if value not in LEVELS:
            errors[name] = "Choose one of the listed options."
        chosen[name] = value
    return chosen


def _tolerance(text: str) -> Decimal | None:
    """The admin's tolerance as money, or None if it is not 0..1,000,000 with 2 decimals."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or not 0 <= value <= 1_000_000 or value != value.quantize(Decimal("0.01")):
        return None
    return value


# --- writing ---------------------------------------------------------------------------------------

def _apply(installation: Installation, wanted: FormState) -> dict[str, Any]:
    """Write what differs from `wanted` (the caller commits); what changed, for the audit."""
    changes = _apply_settings(installation, wanted)
    if (rules := _apply_rules(installation.id, wanted.rules)):
        changes["stage_rules"] = rules
    if (products := _apply_products(installation.id, wanted.products)):
        changes["product_mappings"] = products
    if (taxes := _apply_taxes(installation.id, wanted.taxes)):
        changes["tax_mappings"] = taxes
    return changes


def _apply_settings(installation: Installation, wanted: FormState) -> dict[str, Any]:
    row = installation.settings
    if row is None:  # a new row's attributes read None: every value below is set on it
        row = InstallationSettings(installation_id=installation.id)
        db.session.add(row)
        installation.settings = row
    terms: dict[str, Any] = {"type": wanted.terms_type}
    if wanted.terms_days:
        terms["days"] = int(wanted.terms_days)
    values: dict[str, Any] = {
        "default_account_code": wanted.default_account_code or None,
        "default_tax_type": wanted.default_tax_type or None,
        "dedupe_order": wanted.dedupe_order,
        "draft_first": wanted.draft_first,
        "payment_terms": terms,
        "use_contact_terms": wanted.use_contact_terms,
        "line_amount_type": LineAmountType(wanted.line_amount_type),
        "allow_single_line_from_amount": wanted.allow_single_line_from_amount,
        "tax_number_property": wanted.tax_number_property or None,
        "amount_tolerance": _tolerance(wanted.amount_tolerance) or Decimal(0),
        "money_visibility": wanted.money_visibility,
        "action_permission": wanted.action_permission,
    }
    changes: dict[str, Any] = {}
    for name, value in values.items():
        before = getattr(row, name)
        if before != value:
            setattr(row, name, value)
            changes[name] = {"from": _plain(before), "to": _plain(value)}
    return changes


def _apply_rules(installation_id: int, wanted: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    existing = {(r.pipeline_id, r.stage_id): r for r in db.session.scalars(
        select(StageRule).where(StageRule.installation_id == installation_id))}
    changed = []
    for (pipeline_id, stage_id), value in wanted.items():
        action, row = StageAction(value), existing.get((pipeline_id, stage_id))
        before = row.action if row is not None else StageAction.NONE
        if action == StageAction.NONE:
            if row is not None:
                db.session.delete(row)
        elif row is None:
            db.session.add(StageRule(installation_id=installation_id, pipeline_id=pipeline_id,
                                     stage_id=stage_id, action=action))
        else:
            row.action = action
        if before != action:
            changed.append({"pipeline": pipeline_id, "stage": stage_id, "from": before.value,
                            "to": action.value})
    return changed


def _apply_products(installation_id: int, wanted: dict[str, ProductChoice]) -> list[dict[str, Any]]:
    existing = {p.crm_product_id: p for p in db.session.scalars(
        select(ProductMapping).where(ProductMapping.installation_id == installation_id))}
    changed = []
    for product_id, choice in wanted.items():
        row = existing.get(product_id)
        before = (ProductChoice(row.xero_item_code or "", row.account_code or "", row.tax_type or "")
                  if row is not None else ProductChoice())
        if choice == before:
            continue
        if choice.blank:
            assert row is not None  # else `before` would equal the blank choice
            db.session.delete(row)
        else:
            if row is None:
                row = ProductMapping(installation_id=installation_id, crm_product_id=product_id)
                db.session.add(row)
            row.xero_item_code, row.account_code, row.tax_type = (
                choice.item or None, choice.account or None, choice.tax or None)
        changed.append({"product": product_id, "from": None if before.blank else before.as_dict(),
                        "to": None if choice.blank else choice.as_dict()})
    return changed


def _apply_taxes(installation_id: int, wanted: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Rows are matched by label ignoring case (as the engine looks them up), so a label that
    changes only its case is updated in place rather than deleted and inserted."""
    existing = {t.crm_tax_label.casefold(): t for t in db.session.scalars(
        select(TaxMapping).where(TaxMapping.installation_id == installation_id))}
    wanted_by_key = {label.casefold(): (label, tax_type) for label, tax_type in wanted}
    changed: list[dict[str, Any]] = []
    for key, row in existing.items():
        if key not in wanted_by_key:
            changed.append({"label": row.crm_tax_label, "from": row.xero_tax_type, "to": None})
            db.session.delete(row)
    db.session.flush()  # deletes first: a re-added label must not meet its old row
    for key, (label, tax_type) in wanted_by_key.items():
        row = existing.get(key)
        if row is None:
            db.session.add(TaxMapping(installation_id=installation_id, crm_tax_label=label,
                                      xero_tax_type=tax_type))
            changed.append({"label": label, "from": None, "to": tax_type})
        elif (row.crm_tax_label, row.xero_tax_type) != (label, tax_type):
            changed.append({"label": label, "from": row.xero_tax_type, "to": tax_type})
            row.crm_tax_label, row.xero_tax_type = label, tax_type
    return changed


def _plain(value: Any) -> Any:
    """A settings value as JSON for the audit trail."""
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.01'))}"
    return value.value if isinstance(value, LineAmountType) else value


# --- the pages -------------------------------------------------------------------------------------

@bp.get("/ui/settings/<int:installation_id>")
def settings_page(installation_id: int) -> Response:
    view = read_view_token(request.args.get("t"), "settings", str(installation_id))
    installation = _installation(view, installation_id)
    sources = _load_sources(installation, refresh=request.args.get("refresh") == "1")
    return _render(view, installation, sources, _saved_state(installation), {},
                   pipedrive=request.args.get("pd") == "1", message=request.args.get("m", ""))


@bp.post("/ui/settings/<int:installation_id>")
def save_settings(installation_id: int) -> Response:
    view = read_action_token(request.form.get("a"), "save", "settings", str(installation_id))
    installation = _installation(view, installation_id)
    pipedrive = request.form.get("pd") == "1"
    # Checked against Xero as it is now, not an hour-old copy: an account archived since the
    # page loaded must not be saved as a default.
    sources = _load_sources(installation, refresh=True)
    saved = _saved_state(installation)
    wanted, errors = _read_form(request.form, saved, sources, crm_name(installation))
    if errors:
        return _render(view, installation, sources, wanted, errors, pipedrive=pipedrive,
                       message="Nothing was saved: fix the fields marked below.", status=400)
    try:
        changes = _apply(installation, wanted)
        if changes:
            db.session.add(AuditEvent(installation_id=installation.id, action="settings_changed",
                                      outcome="ok", detail={"changes": changes, "by": view.user}))
        db.session.commit()
    except IntegrityError:  # a concurrent save of the same rows won the race
        db.session.rollback()
        return message_page("Saved elsewhere at the same time", "Someone saved these settings "
                            "while you were. Nothing of yours was saved: reload and try again.", 409)
    message = "Saved." if changes else "Saved. Nothing had changed."
    return redirect(_page_path(view, pipedrive, m=message))


@bp.post("/ui/settings/<int:installation_id>/disconnect")
def disconnect_xero(installation_id: int) -> Response:
    """Revoke the grant at Xero and forget the tokens (forgotten even if Xero does not confirm:
    the admin asked)."""
    view = read_action_token(request.form.get("a"), "disconnect", "settings", str(installation_id))
    installation = _installation(view, installation_id)
    pipedrive = request.form.get("pd") == "1"
    connection = installation.xero_connection
    if connection is None or connection.status == ConnectionStatus.DISCONNECTED:
        return redirect(_page_path(view, pipedrive, m="Xero was not connected."))
    revoked = revoke_grant(connection, forget_on_failure=True, by=view.user)
    db.session.commit()
    message = ("Disconnected from Xero." if revoked else "Disconnected, with a warning: Paydeck "
               "forgot its Xero tokens, but Xero did not confirm the revocation. Remove Paydeck "
               "under Connected apps in Xero's settings to be sure.")
    return redirect(_page_path(view, pipedrive, m=message))


@bp.get("/pipedrive/settings")
def pipedrive_settings() -> Response:
    """Pipedrive's app settings surface (an iframe with `?token=<JWT>`, verified on every load)."""
    installation, user_id = pipedrive_caller()
    allowed, why = may_administer_pipedrive(installation, user_id)
    if not allowed:
        return message_page("Only admins change Paydeck's settings", why, 403)
    return redirect(settings_url(installation, user_id, pipedrive=True) + pipedrive_id_query())


def settings_url(installation: Installation, user: str, *, pipedrive: bool = False) -> str:
    """The settings page for `user`, with a fresh view token (for redirects into the page)."""
    view = View(installation.id, user, "settings", str(installation.id))
    return f"{get_settings().public_url}{_page_path(view, pipedrive)}"


def _page_path(view: View, pipedrive: bool, ttl: int = FORM_TTL, **args: str) -> str:
    return url_for("settings.settings_page", installation_id=view.installation_id,
                   t=issue_view_token(view, ttl=ttl), **({"pd": "1"} if pipedrive else {}), **args)


def _installation(view: View, installation_id: int) -> Installation:
    if view.installation_id != installation_id:
        abort(401, "view token is for another installation")
    return view_installation(view)


def _render(view: View, installation: Installation, sources: Sources, state: FormState,
            errors: dict[str, str], *, pipedrive: bool, message: str, status: int = 200) -> Response:
    placed = _placed_error_keys(sources, state)
    token = issue_view_token(view, ttl=FORM_TTL)
    # Saved rules for stages the CRM no longer lists: kept, shown, never fired.
    orphans = ({} if sources.pipelines is None else
               {key: action for key, action in state.rules.items() if key not in sources.stages})
    body = render_template(
        "settings.html", installation=installation, crm_name=crm_name(installation),
        connection=installation.xero_connection, token=token,
        save_token=issue_action_token(view, "save", ttl=FORM_TTL),
        disconnect_token=issue_action_token(view, "disconnect"),
        # Not single use on the way: /connect/xero shows a confirmation carrying it, and
        # /connect/xero/confirm spends it (app/views/xero_connect.py).
        connect_token=issue_action_token(view, "connect"),
        connection_notices=connection_notices(installation), pipedrive=pipedrive, message=message, notices=sources.notices, errors=errors,
        unplaced_errors=[text for key, text in errors.items() if key not in placed],
        state=state, sources=sources, orphan_rules=orphans,
        accounts=sources.account_options(), tax_rates=sources.tax_options(),
        items=sources.item_options(), blank_choice=ProductChoice(),
        product_names={str(p["id"]): p["name"] for p in sources.products or []},
        actions=ACTION_LABELS, dedupe_labels=DEDUPE_LABELS,
        term_kinds=TERM_KINDS, line_amount_labels=LINE_AMOUNT_LABELS, max_label=MAX_LABEL,
        access_levels=LEVELS,
        connect_url=url_for("xero_connect.start"))
    return make_response(body, status)


def _placed_error_keys(sources: Sources, state: FormState) -> set[str]:
    """The error keys the page shows beside a field; the others (a stage or product it does not
    list, a malformed form) are listed at the top."""
    keys = {"rules", "xero", "products", "default_account_code", "default_tax_type",
            "dedupe_order", "payment_terms", "line_amount_type", "tax_number_property",
            "money_visibility", "action_permission", "amount_tolerance"}
    keys |= {f"rule:{pipeline_id}:{stage_id}" for pipeline_id, stage_id in sources.stages}
    keys |= {f"product:{pid}{part}" for pid in sources.product_ids
             for part in ("", ":item", ":account", ":tax")}
    keys |= {f"tax:{index}" for index in range(len(state.taxes))}
    return keys
