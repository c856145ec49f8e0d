"""The page's "Tax labels" section: the Xero tax rate for a CRM line item's tax label."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import TaxMapping
from app.settings_forms.section import MAX_LABEL, Errors, TableSection, rows
from app.settings_forms.sources import Sources, sales_tax

XERO_UNAVAILABLE = "Xero could not be reached to check the accounts and tax rates."


@dataclass(frozen=True)
class TaxLabels(TableSection):
    """(CRM tax label, Xero tax type) rows, in label order; labels match ignoring case."""

    gate = "xero"
    mappings: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def saved(cls, installation_id: int) -> TaxLabels:
        return cls([(t.crm_tax_label, t.xero_tax_type) for t in db.session.scalars(
            select(TaxMapping).where(TaxMapping.installation_id == installation_id).order_by(
                TaxMapping.crm_tax_label))])

    def unavailable(self, sources: Sources, crm_name: str) -> str | None:
        return XERO_UNAVAILABLE if sources.ref is None else None

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> TaxLabels:
        """The whole tax mapping table: kept rows, edited rows and the new row, minus removed ones."""
        removed = set(form.getlist("tax_remove"))
        taxes: list[tuple[str, str]] = []
        seen: set[str] = set()
        for index, (label, tax_type) in enumerate(rows(form, ("tax_label", "tax_type"), errors)):
            label, tax_type = label.strip(), tax_type.strip()
            if str(index) in removed or not (label or tax_type):
                continue
            problem = _problem(label, tax_type, seen, sources)
            if problem:
                errors[f"tax:{len(taxes)}"] = problem
            seen.add(label.casefold())
            taxes.append((label, tax_type))
        return replace(self, mappings=taxes)

    def error_keys(self, sources: Sources) -> set[str]:
        return {"xero"} | {f"tax:{index}" for index in range(len(self.mappings))}

    def labels(self, sources: Sources) -> dict[str, Any]:
        return {"max_label": MAX_LABEL}

    def save(self, installation_id: int) -> dict[str, Any]:
        """Rows are matched by label ignoring case (as the engine looks them up), so a label that
        changes only its case is updated in place rather than deleted and inserted."""
        existing = {t.crm_tax_label.casefold(): t for t in db.session.scalars(
            select(TaxMapping).where(TaxMapping.installation_id == installation_id))}
        wanted = {label.casefold(): (label, tax_type) for label, tax_type in self.mappings}
        changed: list[dict[str, Any]] = []
        for key, row in existing.items():
            if key not in wanted:
                changed.append({"label": row.crm_tax_label, "from": row.xero_tax_type, "to": None})
                db.session.delete(row)
        db.session.flush()  # deletes first: a re-added label must not meet its old row
        for key, (label, tax_type) in wanted.items():
            row = existing.get(key)
            if row is None:
                db.session.add(TaxMapping(installation_id=installation_id, crm_tax_label=label,
                                          xero_tax_type=tax_type))
                changed.append({"label": label, "from": None, "to": tax_type})
            elif (row.crm_tax_label, row.xero_tax_type) != (label, tax_type):
                changed.append({"label": label, "from": row.xero_tax_type, "to": tax_type})
                row.crm_tax_label, row.xero_tax_type = label, tax_type
        return {"tax_mappings": changed} if changed else {}


def _problem(label: str, tax_type: str, seen: set[str], sources: Sources) -> str | None:
    if not label:
        return "Name the CRM tax label this rate is for."
    if len(label) > MAX_LABEL:
        return f"Use at most {MAX_LABEL} characters."
    if label.casefold() in seen:
        return f"{label!r} is mapped twice (labels are matched ignoring case)."
    if not sales_tax(tax_type, sources.ref):
        return ("Choose a Xero tax rate." if not tax_type else
                f"{tax_type!r} is not an active sales tax rate in Xero.")
    return None
