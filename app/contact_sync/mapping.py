"""Field mapping as data: for each field Paydeck syncs, the CRM property that holds it, the
direction, and (for `both`) who wins when both sides changed it since the last sync.

Defaults (issue #15): Xero wins for the financial fields (tax number, payment terms,
currency), the CRM for the rest. A field with no CRM property (a CRM with no standard field
for it, or the tax number before the admin chose its field) is inactive until one is chosen.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


class Direction(str, enum.Enum):
    CRM_TO_XERO = "crm_to_xero"
    XERO_TO_CRM = "xero_to_crm"
    BOTH = "both"
    OFF = "off"


class ConflictRule(str, enum.Enum):
    XERO = "xero"  # Xero's value wins
    CRM = "crm"  # the CRM's value wins
    MOST_RECENT = "most_recent"  # the side whose record changed last wins
    ASK = "ask"  # a review item with both values; nothing written until a person picks


# Paydeck's words for the fields, in the order the settings table lists them. What each is in
# Xero (its Contact model; platform-facts "Models"):
XERO_FIELDS = {
    "name": "Name",
    "email": "EmailAddress",
    "phone": "Phones[DEFAULT]",
    "mobile": "Phones[MOBILE]",
    "street_address": "Addresses[STREET]",
    "billing_address": "Addresses[POBOX]",
    "website": "Website",
    "tax_number": "TaxNumber",
    "contact_persons": "ContactPersons",
    "payment_terms": "PaymentTerms.Sales",
    "currency": "DefaultCurrency",
    "account_number": "AccountNumber",
}
FIELDS = tuple(XERO_FIELDS)  # a company's fields
# A person's own name parts (Xero Contact.FirstName / LastName): person links only.
XERO_FIELDS.update({"first_name": "FirstName", "last_name": "LastName"})
FINANCIAL = frozenset({"tax_number", "payment_terms", "currency"})
# Xero's API cannot write these: the Accounting spec's Contact.Website is "Website address
# for contact (read only)", readOnly: true (tests/specs/xero/xero_accounting.yaml; the fake
# keeps it so: sandbox/xero/schema.py). Their direction can only be Xero -> CRM or off.
XERO_READ_ONLY = frozenset({"website"})

# The CRM property per field and CRM. "address" is the CRM's one company address, split into
# parts by app.contact_sync.values (HubSpot: address, address2, city, state, zip, country;
# Pipedrive v2: the organization's `address` object). Neither CRM has a standard company
# email, mobile, billing address, contact-person, payment-terms, currency or account-number
# property: the admin picks one (a HubSpot property name, a Pipedrive custom field key).
TAX_NUMBER = "<tax number property>"  # the installation's InstallationSettings.tax_number_property
CRM_DEFAULTS: dict[str, dict[str, str | None]] = {
    "hubspot": {"name": "name", "phone": "phone", "street_address": "address",
                "website": "website", "tax_number": TAX_NUMBER},
    "pipedrive": {"name": "name", "street_address": "address", "website": "website",
                  "tax_number": TAX_NUMBER},
}


@dataclass(frozen=True)
class FieldRule:
    field: str
    direction: Direction
    conflict: ConflictRule
    crm_property: str | None  # None: no CRM field chosen, so the field does not sync
    # The CRM computes this field and its API cannot write it (a HubSpot contact's whole
    # name; a Pipedrive person's first/last name): it syncs from the CRM to Xero only.
    crm_read_only: bool = False

    @property
    def active(self) -> bool:
        return self.direction != Direction.OFF and bool(self.crm_property)

    @property
    def to_crm(self) -> bool:
        return (self.active and not self.crm_read_only
                and self.direction in (Direction.XERO_TO_CRM, Direction.BOTH))

    @property
    def to_xero(self) -> bool:
        return (self.active and self.field not in XERO_READ_ONLY
                and self.direction in (Direction.CRM_TO_XERO, Direction.BOTH))


def default_rule(crm: str, field: str, tax_number_property: str | None = None) -> FieldRule:
    if field not in XERO_FIELDS:
        raise ValueError(f"unknown contact field {field!r}")
    prop = CRM_DEFAULTS.get(crm, {}).get(field)
    if prop == TAX_NUMBER:
        prop = tax_number_property or None
    direction = Direction.XERO_TO_CRM if field in XERO_READ_ONLY else Direction.BOTH
    conflict = ConflictRule.XERO if field in FINANCIAL else ConflictRule.CRM
    return FieldRule(field, direction, conflict, prop)


class MappingError(ValueError):
    """A stored or submitted override that cannot be a rule (the settings form shows it)."""


def mapping_for(crm: str, overrides: Mapping[str, Any] | None = None,
                tax_number_property: str | None = None) -> dict[str, FieldRule]:
    """Every field's rule: the defaults for this CRM with the admin's overrides
    (ContactSyncSettings.fields: {field: {"direction", "conflict", "crm_property"}}).
    MappingError for an override that names an unknown field or value, or asks Xero to take
    a field its API cannot write."""
    if crm not in CRM_DEFAULTS:
        raise MappingError(f"no contact mapping for CRM {crm!r}")
    rules = {f: default_rule(crm, f, tax_number_property) for f in FIELDS}
    for field, change in (overrides or {}).items():
        if field not in rules:
            raise MappingError(f"unknown contact field {field!r}")
        if not isinstance(change, Mapping):
            raise MappingError(f"the rule for {field} must be an object")
        rule = rules[field]
        try:
            if "direction" in change:
                rule = replace(rule, direction=Direction(change["direction"]))
            if "conflict" in change:
                rule = replace(rule, conflict=ConflictRule(change["conflict"]))
        except ValueError as exc:
            raise MappingError(f"{field}: {exc}") from None
        if "crm_property" in change:
            prop = change["crm_property"]
            if prop is not None and not isinstance(prop, str):
                raise MappingError(f"{field}: the CRM property must be text")
            rule = replace(rule, crm_property=(prop or "").strip() or None)
        if field in XERO_READ_ONLY and rule.direction in (Direction.CRM_TO_XERO, Direction.BOTH):
            raise MappingError(f"Xero's API cannot write {XERO_FIELDS[field]}: sync it from "
                               "Xero to the CRM, or turn it off")
        rules[field] = rule
    return rules


# --- persons (B2C deals with no company: HubSpot contacts, Pipedrive persons) ---------------
#
# A person link uses the company table's direction and conflict rule for every field the two
# share (an admin's "Xero wins for tax numbers" holds for people too); first and last name
# follow the name's row. What differs per object type is the CRM property (the defaults below,
# or ContactSyncSettings.person_fields {field: {"crm_property"}}), and which fields the CRM
# computes itself. HubSpot contact properties: firstname, lastname, email, phone, mobilephone,
# address, city, state, zip, country (tests/specs/hubspot/contacts-v3.json; knowledge.hubspot
# .com "HubSpot's default contact properties"); HubSpot has no whole-name property, so "name"
# is "firstname lastname", read-only. Pipedrive v2 persons: name (writable), first_name and
# last_name (in GET answers, not in the v2 AddPersonRequest/update body: pipedrive/
# client-nodejs src/versions/v2/models/add-person-request.ts, so read-only here), emails and
# phones (arrays with primary flags). A v2 person's `postal_address` is "only included if
# contact sync is enabled for the company" (persons-api.ts getPerson) and is not in the
# update body, so a Pipedrive person's address is not synced. The tax number has no default person property: the admin names one.
OBJECT_TYPES = ("company", "person")
PERSON_FIELDS = ("name", "first_name", "last_name", "email", "phone", "mobile",
                 "street_address", "tax_number")
# The company row a person field takes its direction and conflict rule from.
SHARED_ROW = {"first_name": "name", "last_name": "name"}
PERSON_DEFAULTS: dict[str, dict[str, str | None]] = {
    "hubspot": {"name": "firstname lastname", "first_name": "firstname",
                "last_name": "lastname", "email": "email", "phone": "phone",
                "mobile": "mobilephone", "street_address": "address"},
    "pipedrive": {"name": "name", "first_name": "first_name", "last_name": "last_name",
                  "email": "emails", "phone": "phones", "mobile": "phones"},
}
PERSON_CRM_READ_ONLY = {"hubspot": frozenset({"name"}),
                        "pipedrive": frozenset({"first_name", "last_name"})}


def person_mapping(crm: str, overrides: Mapping[str, Any] | None = None,
                   person_overrides: Mapping[str, Any] | None = None,
                   tax_number_property: str | None = None) -> dict[str, FieldRule]:
    """Every person field's rule: the company table's direction and conflict (the admin's
    `overrides`, as mapping_for takes them) on the person's own CRM properties.
    `person_overrides`: {field: {"crm_property"}} (a person's tax number property, say).
    MappingError as mapping_for's."""
    company = mapping_for(crm, overrides, tax_number_property)
    read_only = PERSON_CRM_READ_ONLY.get(crm, frozenset())
    rules: dict[str, FieldRule] = {}
    for name in PERSON_FIELDS:
        row = company[SHARED_ROW.get(name, name)]
        rules[name] = FieldRule(name, row.direction, row.conflict,
                                PERSON_DEFAULTS[crm].get(name), name in read_only)
    for name, change in (person_overrides or {}).items():
        if name not in rules:
            raise MappingError(f"persons have no contact field {name!r}")
        if not isinstance(change, Mapping) or set(change) - {"crm_property"}:
            raise MappingError(f"a person's {name} takes only a CRM property")
        prop = change.get("crm_property")
        if prop is not None and not isinstance(prop, str):
            raise MappingError(f"{name}: the CRM property must be text")
        rules[name] = replace(rules[name], crm_property=(prop or "").strip() or None)
    return rules


def rules_for(object_type: str, crm: str, settings: Any,
              tax_number_property: str | None) -> dict[str, FieldRule]:
    """The rules a link of this object type syncs by, from a ContactSyncSettings row."""
    if object_type == "person":
        return person_mapping(crm, settings.fields, getattr(settings, "person_fields", None),
                              tax_number_property)
    if object_type != "company":
        raise MappingError(f"no contact mapping for {object_type!r} links")
    return mapping_for(crm, settings.fields, tax_number_property)
