"""The page's "Who sees money, who acts" section (issue #12): each one of app.access.rules.LEVELS."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from werkzeug.datastructures import MultiDict

from app.access.rules import DEFAULT_ACTION_PERMISSION, DEFAULT_MONEY_VISIBILITY, LEVELS
from app.models import InstallationSettings
from app.settings_forms.section import Errors, RowSection
from app.settings_forms.sources import Sources

_FIELDS = ("money_visibility", "action_permission")


@dataclass(frozen=True)
class Permissions(RowSection):
    money_visibility: str = DEFAULT_MONEY_VISIBILITY
    action_permission: str = DEFAULT_ACTION_PERMISSION

    @classmethod
    def of_row(cls, row: InstallationSettings) -> Permissions:
        return cls(row.money_visibility or DEFAULT_MONEY_VISIBILITY,
                   row.action_permission or DEFAULT_ACTION_PERMISSION)

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> Permissions:
        """A form without a field keeps it as saved (as amount_tolerance); one with any other
        value is an error."""
        chosen: dict[str, str] = {}
        for name in _FIELDS:
            value = form.get(name)
            if value is None:
                continue
            if value not in LEVELS:
                errors[name] = "Choose one of the listed options."
            chosen[name] = value
        return replace(self, **chosen)

    def error_keys(self, sources: Sources) -> set[str]:
        return set(_FIELDS)

    def labels(self, sources: Sources) -> dict[str, Any]:
        return {"access_levels": LEVELS}

    def columns(self) -> dict[str, Any]:
        return {"money_visibility": self.money_visibility, "action_permission": self.action_permission}
