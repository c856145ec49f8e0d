"""The "Contacts" section (issue #15): two-way contact sync on or off (and for persons, the
contacts of B2C deals with no company: on or off and their tax number property; they follow
the company table's directions and conflict rules, app.contact_sync.mapping.person_mapping),
the mapping table (per field: the CRM property, the direction, who wins a conflict), which
Xero contacts sync (roles by IsCustomer/IsSupplier; contact groups). Saved to
ContactSyncSettings, keeping only what differs from the defaults (app.contact_sync.mapping),
so a better default later reaches everyone who kept it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from werkzeug.datastructures import MultiDict

from app.contact_sync.mapping import (
    FIELDS,
    ConflictRule,
    Direction,
    FieldRule,
    XERO_FIELDS,
    XERO_READ_ONLY,
    MappingError,
    default_rule,
    mapping_for,
)
from app.contact_sync.scope import DEFAULT_ROLES, ROLES
from app.extensions import db
from app.models import ContactSyncSettings, Installation, InstallationSettings
from app.settings_forms.section import MAX_LABEL, Errors, TableSection, rows
from app.settings_forms.sources import Sources

DIRECTION_LABELS = {Direction.BOTH: "Both ways", Direction.CRM_TO_XERO: "CRM to Xero",
                    Direction.XERO_TO_CRM: "Xero to CRM", Direction.OFF: "Off"}
CONFLICT_LABELS = {ConflictRule.XERO: "Xero wins", ConflictRule.CRM: "The CRM wins",
                   ConflictRule.MOST_RECENT: "The most recent change wins",
                   ConflictRule.ASK: "Ask me"}
ROLE_LABELS = {"customer": "Customers", "supplier": "Suppliers",
               "unassigned": "Contacts with no invoices or bills yet"}
MAX_GROUPS = 50
_CRM_LABEL = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}
FIELD_LABELS = {"name": "Name", "email": "Email", "phone": "Phone", "mobile": "Mobile",
                "street_address": "Street address", "billing_address": "Billing (postal) address",
                "website": "Website", "tax_number": "Tax number", "contact_persons": "Contact persons",
                "payment_terms": "Payment terms", "currency": "Currency",
                "account_number": "Account number"}


@dataclass(frozen=True)
class ContactsSection(TableSection):
    gate = "contacts"
    crm: str = "hubspot"
    tax_number_property: str | None = None
    enabled: bool = False
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: list[str] = field(default_factory=lambda: list(DEFAULT_ROLES))
    groups: list[str] = field(default_factory=list)
    persons: bool = False
    person_fields: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def saved(cls, installation_id: int) -> ContactsSection:
        installation = db.session.get(Installation, installation_id)
        crm = installation.crm.value if installation is not None else "hubspot"
        settings = db.session.get(InstallationSettings, installation_id)
        tax = settings.tax_number_property if settings is not None else None
        row = db.session.get(ContactSyncSettings, installation_id)
        if row is None:
            return cls(crm, tax)
        return cls(crm, tax, row.enabled, dict(row.fields or {}), list(row.xero_roles or []),
                   list(row.contact_groups or []), bool(row.persons),
                   dict(row.person_fields or {}))

    @property
    def person_tax_property(self) -> str:
        return str((self.person_fields.get("tax_number") or {}).get("crm_property") or "")

    @property
    def rules(self) -> dict[str, FieldRule]:
        return mapping_for(self.crm, self.overrides, self.tax_number_property)

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> ContactsSection:
        overrides: dict[str, dict[str, Any]] = {}
        seen: set[str] = set()
        for name, direction, conflict, prop in rows(
                form, ("contact_field", "contact_direction", "contact_conflict",
                       "contact_property"), errors):
            key = f"contact:{name}"
            if name not in FIELDS:
                errors["contacts"] = "The form named a field Paydeck does not sync."
                continue
            if name in seen:
                errors[key] = "This field was sent twice."
                continue
            seen.add(name)
            prop = prop.strip()
            if len(prop) > MAX_LABEL:
                errors[key] = f"A CRM field name is at most {MAX_LABEL} characters."
                continue
            chosen = {"direction": direction, "conflict": conflict, "crm_property": prop or None}
            if name == "tax_number":
                chosen.pop("crm_property")  # chosen under "Matching Xero contacts"
            try:
                mapping_for(self.crm, {name: chosen}, self.tax_number_property)
            except MappingError as exc:
                errors[key] = _sentence(str(exc))
                continue
            default = default_rule(self.crm, name, self.tax_number_property)
            differs = {k: v for k, v in chosen.items()
                       if v != _value(getattr(default, k))}
            if differs:
                overrides[name] = differs
        roles = [r for r in form.getlist("contact_roles") if r]
        if not roles:
            errors["contact_roles"] = "Choose at least one kind of Xero contact to sync."
        elif any(r not in ROLES for r in roles) or len(set(roles)) != len(roles):
            errors["contact_roles"] = "Choose from the listed kinds of contact, each once."
        groups = [g.strip() for g in form.getlist("contact_groups") if g.strip()]
        if sources.contact_groups is None:
            groups = list(self.groups)  # Xero's groups could not be read: the saved choice stays
        elif len(groups) > MAX_GROUPS or len(set(groups)) != len(groups):
            errors["contact_groups"] = f"Choose up to {MAX_GROUPS} contact groups, each once."
        elif set(groups) - {g.group_id for g in sources.contact_groups} - set(self.groups):
            # A saved group deleted in Xero may stay ticked; anything else must be listed.
            errors["contact_groups"] = "Choose from the contact groups Xero lists."
        person_tax = (form.get("contact_person_tax_property") or "").strip()
        if len(person_tax) > MAX_LABEL:
            errors["contact_person_tax_property"] = (
                f"A CRM field name is at most {MAX_LABEL} characters.")
            person_tax = ""
        person_fields = {"tax_number": {"crm_property": person_tax}} if person_tax else {}
        persons = form.get("contact_persons") == "on"
        if persons and not self.persons and sources.missing_person_scope:
            errors["contact_persons"] = (
                f"Paydeck may not update {_CRM_LABEL[self.crm]} contacts yet: this installation was "
                f"granted before person sync needed the {sources.missing_person_scope} "
                f"permission. Install Paydeck again from {_CRM_LABEL[self.crm]} to grant it, then "
                "turn this on.")
            persons = False
        return replace(self, enabled=form.get("contact_sync") == "on", overrides=overrides,
                       roles=roles, groups=groups, persons=persons,
                       person_fields=person_fields)

    def error_keys(self, sources: Sources) -> set[str]:
        return {"contacts", "contact_roles", "contact_groups", "contact_person_tax_property",
                "contact_persons"} | {
            f"contact:{f}" for f in FIELDS}

    def labels(self, sources: Sources) -> dict[str, Any]:
        try:
            rules = self.rules
        except MappingError:  # a stored override no longer valid: shown as the defaults
            rules = mapping_for(self.crm, None, self.tax_number_property)
        return {"contact_directions": DIRECTION_LABELS, "contact_conflicts": CONFLICT_LABELS,
                "contact_role_labels": ROLE_LABELS, "contact_rules": rules,
                "contact_field_labels": FIELD_LABELS, "contact_xero_fields": XERO_FIELDS,
                "contact_read_only": XERO_READ_ONLY, "contact_max_groups": MAX_GROUPS,
                "contact_group_options": group_options(sources, self.groups)}

    def save(self, installation_id: int) -> dict[str, Any]:
        row = db.session.get(ContactSyncSettings, installation_id)
        if row is None:
            row = ContactSyncSettings(installation_id=installation_id, enabled=False, fields={},
                                      xero_roles=list(DEFAULT_ROLES), contact_groups=[])
            db.session.add(row)
        before = {"enabled": row.enabled, "fields": dict(row.fields or {}),
                  "roles": list(row.xero_roles or []), "groups": list(row.contact_groups or []),
                  "persons": bool(row.persons), "person_fields": dict(row.person_fields or {})}
        after = {"enabled": self.enabled, "fields": self.overrides, "roles": self.roles,
                 "groups": self.groups, "persons": self.persons,
                 "person_fields": self.person_fields}
        row.persons, row.person_fields = self.persons, dict(self.person_fields)
        row.enabled, row.fields = self.enabled, dict(self.overrides)
        row.xero_roles, row.contact_groups = list(self.roles), list(self.groups)
        changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
        return {"contacts": changed} if changed else {}


@dataclass(frozen=True)
class GroupOption:
    group_id: str
    name: str
    chosen: bool
    deleted: bool = False  # chosen once, but Xero no longer has it


def group_options(sources: Sources, chosen: list[str]) -> list[GroupOption] | None:
    """The picker's checkboxes: Xero's groups by name, then any chosen group Xero no longer
    lists (deleted in Xero). None when Xero's groups could not be read."""
    if sources.contact_groups is None:
        return None
    listed = {g.group_id for g in sources.contact_groups}
    options = [GroupOption(g.group_id, g.name, g.group_id in chosen)
               for g in sources.contact_groups]
    return options + [GroupOption(g, "", True, deleted=True) for g in chosen if g not in listed]


def _value(v: Any) -> Any:
    return v.value if isinstance(v, (Direction, ConflictRule)) else v


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:] if text else text
    return text if text.endswith(".") else text + "."
