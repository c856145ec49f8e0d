"""The admin's rules as the engine reads them: the action of each stage, and the invoice
rules (mappings, defaults, terms) handed to xero.build."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.models import InstallationSettings, ProductMapping, StageAction, StageRule, TaxMapping
from xero.build import InvoiceRules, ProductRule


def stage_actions(installation_id: int) -> dict[str, StageAction]:
    """The admin's rules by stage id. Stage ids are unique across pipelines in both HubSpot
    and Pipedrive, so the stage alone decides; the pipeline is kept for the settings page."""
    return {r.stage_id: r.action for r in db.session.scalars(select(StageRule).where(
        StageRule.installation_id == installation_id)) if r.action != StageAction.NONE}


def action_for_stage(installation_id: int, stage_id: str) -> StageAction:
    """The admin's rule for a deal entering this stage (none when there is no rule)."""
    return stage_actions(installation_id).get(stage_id, StageAction.NONE)


def xero_status(settings: InstallationSettings, action: StageAction) -> str:
    """The status a new invoice gets: DRAFT under draft-first or a draft rule."""
    if settings.draft_first or action == StageAction.DRAFT:
        return "DRAFT"
    return "AUTHORISED"


def invoice_rules(installation_id: int, s: InstallationSettings) -> InvoiceRules:
    products = {p.crm_product_id: ProductRule(p.xero_item_code, p.account_code, p.tax_type)
                for p in db.session.scalars(select(ProductMapping).where(
                    ProductMapping.installation_id == installation_id))}
    taxes = {t.crm_tax_label.casefold(): t.xero_tax_type for t in db.session.scalars(
        select(TaxMapping).where(TaxMapping.installation_id == installation_id))}
    terms = s.payment_terms or {"type": "org_default"}
    return InvoiceRules(default_account_code=s.default_account_code,
                        default_tax_type=s.default_tax_type,
                        line_amount_type=(s.line_amount_type.value if s.line_amount_type else "Exclusive"),
                        allow_single_line_from_amount=bool(s.allow_single_line_from_amount),
                        payment_terms=xero_terms(terms), products=products, taxes=taxes,
                        amount_tolerance=(Decimal("0.01") if s.amount_tolerance is None
                                          else Decimal(s.amount_tolerance)))


def xero_terms(terms: dict[str, object]) -> dict[str, object]:
    # Settings speak of "days_after_invoice"; Xero calls it DAYSAFTERBILLDATE.
    aliases = {"days_after_invoice": "DAYSAFTERBILLDATE", "day_of_following_month": "OFFOLLOWINGMONTH",
               "days_after_end_of_month": "DAYSAFTERBILLMONTH", "day_of_current_month": "OFCURRENTMONTH"}
    kind = str(terms.get("type", "org_default"))
    return {**terms, "type": aliases.get(kind, kind)}
