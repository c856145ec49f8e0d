"""The page's "Defaults from Xero" section: the sales account and tax rate for lines that
have no other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from app.models import InstallationSettings
from app.settings_forms.section import Errors, RowSection
from app.settings_forms.sources import Sources, sales_account, sales_tax
from app.settings_forms.tax_labels import XERO_UNAVAILABLE


@dataclass(frozen=True)
class XeroDefaults(RowSection):
    """Xero codes; "" = none."""

    gate = "xero"
    default_account_code: str = ""
    default_tax_type: str = ""

    @classmethod
    def of_row(cls, row: InstallationSettings) -> XeroDefaults:
        return cls(row.default_account_code or "", row.default_tax_type or "")

    def unavailable(self, sources: Sources, crm_name: str) -> str | None:
        return XERO_UNAVAILABLE if sources.ref is None else None

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> XeroDefaults:
        account = form.get("default_account_code", "").strip()
        tax_type = form.get("default_tax_type", "").strip()
        if account and not sales_account(account, sources.ref):
            errors["default_account_code"] = f"{account!r} is not an active revenue account in Xero."
        if tax_type and not sales_tax(tax_type, sources.ref):
            errors["default_tax_type"] = f"{tax_type!r} is not an active sales tax rate in Xero."
        return XeroDefaults(account, tax_type)

    def error_keys(self, sources: Sources) -> set[str]:
        return {"xero", "default_account_code", "default_tax_type"}

    def columns(self) -> dict[str, Any]:
        return {"default_account_code": self.default_account_code or None,
                "default_tax_type": self.default_tax_type or None}
