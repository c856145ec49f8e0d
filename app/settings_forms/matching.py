"""The page's "Matching Xero contacts" section: how Paydeck looks for an existing Xero contact
before it creates one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from app.models import InstallationSettings
from app.settings_forms.section import MAX_LABEL, Errors, RowSection
from app.settings_forms.sources import Sources
from xero.contacts import DEFAULT_ORDER

DEDUPE_LABELS = {"email": "Email address", "tax_number": "Tax number (ABN, GST or VAT number)",
                 "name": "Company name"}


@dataclass(frozen=True)
class ContactMatching(RowSection):
    """The ways to match, in order (xero.contacts keys), and the CRM company field holding the
    tax number ("" = none)."""

    dedupe_order: list[str] = field(default_factory=lambda: list(DEFAULT_ORDER))
    tax_number_property: str = ""

    @classmethod
    def of_row(cls, row: InstallationSettings) -> ContactMatching:
        return cls(list(row.dedupe_order or DEFAULT_ORDER), row.tax_number_property or "")

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> ContactMatching:
        dedupe = [key for key in form.getlist("dedupe") if key]
        if not dedupe:
            errors["dedupe_order"] = "Choose at least one way to match contacts."
        elif any(key not in DEFAULT_ORDER for key in dedupe):
            errors["dedupe_order"] = "Choose from the listed ways to match contacts."
        elif len(set(dedupe)) != len(dedupe):
            errors["dedupe_order"] = "Use each way to match contacts at most once."
        tax_property = form.get("tax_number_property", "").strip()
        if len(tax_property) > MAX_LABEL or not tax_property.isprintable():
            errors["tax_number_property"] = f"Use at most {MAX_LABEL} printable characters."
        elif "tax_number" in dedupe and not tax_property and "dedupe_order" not in errors:
            # Without the field, no CRM company has a tax number to match on.
            errors["dedupe_order"] = ("Matching by tax number needs the company field holding the "
                                      "tax number: name it below, or match another way.")
        return ContactMatching(dedupe, tax_property)

    def error_keys(self, sources: Sources) -> set[str]:
        return {"dedupe_order", "tax_number_property"}

    def labels(self, sources: Sources) -> dict[str, Any]:
        return {"dedupe_labels": DEDUPE_LABELS, "max_label": MAX_LABEL}

    def columns(self) -> dict[str, Any]:
        return {"dedupe_order": self.dedupe_order,
                "tax_number_property": self.tax_number_property or None}
