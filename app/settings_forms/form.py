"""The settings page's whole form: every section, read from a submitted form and checked as
one (all of it is saved or none), and written in one go (the caller commits)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any

from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import Installation, InstallationSettings, LineAmountType
from app.settings_forms.contacts import ContactsSection
from app.settings_forms.invoices import InvoiceOptions
from app.settings_forms.matching import ContactMatching
from app.settings_forms.permissions import Permissions
from app.settings_forms.products import ProductMappings
from app.settings_forms.section import Errors, RowSection, Section, TableSection
from app.settings_forms.sources import Sources
from app.settings_forms.stage_rules import StageRules
from app.settings_forms.tax_labels import TaxLabels
from app.settings_forms.xero_defaults import XeroDefaults


@dataclass(frozen=True)
class SettingsForm:
    """Every section, as saved or as submitted, in the order a form is read (the errors listed
    at the top of the page keep that order)."""

    matching: ContactMatching
    invoices: InvoiceOptions
    permissions: Permissions
    rules: StageRules
    taxes: TaxLabels
    xero: XeroDefaults
    products: ProductMappings
    contacts: ContactsSection = field(default_factory=ContactsSection)

    @classmethod
    def saved(cls, installation: Installation) -> SettingsForm:
        row = installation.settings
        return cls(ContactMatching.saved(row), InvoiceOptions.saved(row), Permissions.saved(row),
                   StageRules.saved(installation.id), TaxLabels.saved(installation.id),
                   XeroDefaults.saved(row), ProductMappings.saved(installation.id),
                   ContactsSection.saved(installation.id))

    def sections(self) -> list[Section]:
        return [getattr(self, f.name) for f in fields(self)]

    def read(self, form: MultiDict[str, str], sources: Sources,
             crm_name: str) -> tuple[SettingsForm, Errors]:
        """The settings the admin asked for, and what is wrong with them (field -> message).

        The form names the sections it showed as editable (`section`); the others stay as saved,
        so a page shown while the CRM or Xero was unavailable cannot blank them. A section that
        was editable but cannot be checked now is an error: nothing is saved rather than a part.
        """
        errors: Errors = {}
        editable = set(form.getlist("section"))
        wanted: dict[str, Section] = {}
        for f in fields(self):
            section: Section = getattr(self, f.name)
            if section.gate is None:
                wanted[f.name] = section.read(form, sources, errors)
            elif section.gate in editable:  # else shown as saved: kept as saved
                problem = section.unavailable(sources, crm_name)
                if problem is None:
                    wanted[f.name] = section.read(form, sources, errors)
                else:
                    errors[section.gate] = problem
        return replace(self, **wanted), errors

    def save(self, installation: Installation) -> dict[str, Any]:
        """Write what differs (the caller commits): the settings row first, then each table;
        what changed, for the audit."""
        values: dict[str, Any] = {}
        for section in self.sections():
            if isinstance(section, RowSection):
                values.update(section.columns())
        changes = _save_row(installation, values)
        for section in self.sections():
            if isinstance(section, TableSection):
                changes.update(section.save(installation.id))
        return changes

    def placed_error_keys(self, sources: Sources) -> set[str]:
        """The error keys the page shows beside a field; the others (a stage or product it does
        not list, a malformed form) are listed at the top."""
        return set().union(*(section.error_keys(sources) for section in self.sections()))

    def labels(self, sources: Sources) -> dict[str, Any]:
        """What the template needs besides the values: Xero's options, each section's labels."""
        labels: dict[str, Any] = {"accounts": sources.account_options(),
                                  "tax_rates": sources.tax_options(), "items": sources.item_options()}
        for section in self.sections():
            labels.update(section.labels(sources))
        return labels


def _save_row(installation: Installation, values: dict[str, Any]) -> dict[str, Any]:
    row = installation.settings
    if row is None:  # a new row's attributes read None: every value below is set on it
        row = InstallationSettings(installation_id=installation.id)
        db.session.add(row)
        installation.settings = row
    changes: dict[str, Any] = {}
    for name, value in values.items():
        before = getattr(row, name)
        if before != value:
            setattr(row, name, value)
            changes[name] = {"from": _plain(before), "to": _plain(value)}
    return changes


def _plain(value: Any) -> Any:
    """A settings value as JSON for the audit trail."""
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.01'))}"
    return value.value if isinstance(value, LineAmountType) else value
