"""What every section of the settings page is: its fields as saved or as submitted (one frozen
instance), read and checked from a submitted form, and written. app.settings_forms.form puts
the sections together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Self

from werkzeug.datastructures import MultiDict

from app.models import InstallationSettings
from app.settings_forms.sources import Sources

Errors = dict[str, str]  # field key -> message, shown beside the field or listed at the top
MAX_LABEL = 128  # TaxMapping.crm_tax_label, InstallationSettings.tax_number_property


class Section(ABC):
    """One section of the page. `gate` is the form's `section` value that says the page showed
    it editable (None: always read); a section the page showed as saved is kept as saved."""

    gate: ClassVar[str | None] = None

    def unavailable(self, sources: Sources, crm_name: str) -> str | None:
        """Why a gated section cannot be checked now (what it needs could not be loaded)."""
        return None

    @abstractmethod
    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> Self:
        """The section as the form asks for it (self is the saved one); problems go to `errors`."""

    @abstractmethod
    def error_keys(self, sources: Sources) -> set[str]:
        """The error keys the page shows beside this section's fields."""

    def labels(self, sources: Sources) -> dict[str, Any]:
        """What the template needs besides the values: option labels, limits."""
        return {}


class RowSection(Section):
    """A section whose fields are columns of the installation's settings row."""

    @classmethod
    def saved(cls, row: InstallationSettings | None) -> Self:
        """The section as saved; the model's defaults for an installation with no row yet."""
        return cls() if row is None else cls.of_row(row)

    @classmethod
    @abstractmethod
    def of_row(cls, row: InstallationSettings) -> Self:
        """The section as the settings row holds it."""

    @abstractmethod
    def columns(self) -> dict[str, Any]:
        """The settings row's column values this section asks for."""


class TableSection(Section):
    """A section with rows in a table of its own."""

    @classmethod
    @abstractmethod
    def saved(cls, installation_id: int) -> Self:
        """The section as saved."""

    @abstractmethod
    def save(self, installation_id: int) -> dict[str, Any]:
        """Write what differs (the caller commits); what changed, for the audit ({} if nothing)."""


def rows(form: MultiDict[str, str], names: Iterable[str], errors: Errors) -> list[list[str]]:
    """Parallel lists of inputs (one per table row) as rows; a form whose lists disagree in
    length was not sent by this page."""
    columns = [form.getlist(name) for name in names]
    if len({len(c) for c in columns}) > 1:
        errors["form"] = "The form arrived incomplete. Reload the page and try again."
        return []
    return [list(row) for row in zip(*columns)]
