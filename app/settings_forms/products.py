"""The page's "Products" section: the Xero item, account and tax rate of each CRM product."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import ProductMapping
from app.settings_forms.section import Errors, TableSection, rows
from app.settings_forms.sources import Sources, sales_account, sales_tax

_PARTS = ("", ":item", ":account", ":tax")  # a product's error keys: the row, then each field


@dataclass(frozen=True)
class ProductChoice:
    """A product's Xero item, account and tax type; "" = use the item's or the defaults."""

    item: str = ""
    account: str = ""
    tax: str = ""

    @classmethod
    def of(cls, row: ProductMapping | None) -> ProductChoice:
        if row is None:
            return cls()
        return cls(row.xero_item_code or "", row.account_code or "", row.tax_type or "")

    @property
    def blank(self) -> bool:
        return not (self.item or self.account or self.tax)

    def as_dict(self) -> dict[str, str | None]:
        return {"item": self.item or None, "account": self.account or None, "tax": self.tax or None}


@dataclass(frozen=True)
class ProductMappings(TableSection):
    """A choice per CRM product id; a product with none uses the item's, then the defaults."""

    gate = "products"
    choices: dict[str, ProductChoice] = field(default_factory=dict)

    @classmethod
    def saved(cls, installation_id: int) -> ProductMappings:
        return cls({pid: ProductChoice.of(row) for pid, row in _existing(installation_id).items()})

    def unavailable(self, sources: Sources, crm_name: str) -> str | None:
        if not sources.products_editable:
            return (f"{crm_name}'s products or Xero's items could not be loaded to "
                    "check the product mappings.")
        return None

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> ProductMappings:
        """Mappings for the products the CRM listed; saved ones for products it no longer lists stay."""
        listed = sources.product_ids
        products = {pid: choice for pid, choice in self.choices.items() if pid not in listed}
        for pid, item, account, tax in rows(form, ("product_id", "product_item", "product_account",
                                                   "product_tax"), errors):
            choice = ProductChoice(item.strip(), account.strip(), tax.strip())
            if pid not in listed:
                errors[f"product:{pid}"] = f"Product {pid} is not one of the CRM's products."
                continue
            if pid in products:
                errors[f"product:{pid}"] = "This product was sent twice."
            _check(pid, choice, sources, errors)
            products[pid] = choice
        return replace(self, choices=products)

    def error_keys(self, sources: Sources) -> set[str]:
        return {"products"} | {f"product:{pid}{part}" for pid in sources.product_ids for part in _PARTS}

    def labels(self, sources: Sources) -> dict[str, Any]:
        return {"blank_choice": ProductChoice(),
                "product_names": {str(p["id"]): p["name"] for p in sources.products or []}}

    def save(self, installation_id: int) -> dict[str, Any]:
        existing = _existing(installation_id)
        changed = []
        for product_id, choice in self.choices.items():
            row = existing.get(product_id)
            before = ProductChoice.of(row)
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
        return {"product_mappings": changed} if changed else {}


def _check(pid: str, choice: ProductChoice, sources: Sources, errors: Errors) -> None:
    ref = sources.ref
    if choice.item and (ref is None or choice.item not in ref.items):
        errors[f"product:{pid}:item"] = f"Xero has no item {choice.item!r}."
    if choice.account and not sales_account(choice.account, ref):
        errors[f"product:{pid}:account"] = f"{choice.account!r} is not an active revenue account in Xero."
    if choice.tax and not sales_tax(choice.tax, ref):
        errors[f"product:{pid}:tax"] = f"{choice.tax!r} is not an active sales tax rate in Xero."


def _existing(installation_id: int) -> dict[str, ProductMapping]:
    return {p.crm_product_id: p for p in db.session.scalars(
        select(ProductMapping).where(ProductMapping.installation_id == installation_id))}
