"""Each side's record as the rules' values, and the rules' values as CRM fields. Pure.

Xero: a xero.client.ContactRecord. The CRM: a domain.crm.CompanyRecord in COMPANY_FIELDS
words (the adapters know each CRM's property names), plus the admin's extra properties
(text only) for fields with no standard company property.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.contact_sync.mapping import CRM_DEFAULTS, PERSON_DEFAULTS, TAX_NUMBER, FieldRule
from app.contact_sync.rules import Snapshot
from app.contact_sync.scope import ContactScope
from app.contact_sync.values import ADDRESS_PARTS, Value, address, address_parts
from domain.crm import CompanyRecord
from xero.client import ContactPatch, ContactRecord

# The fields the adapters read and write by COMPANY_FIELDS words when the admin kept the
# default CRM property: field -> the words.
STANDARD = {"name": ("name",), "phone": ("phone",), "website": ("website",),
            "tax_number": ("tax_number",), "email": ("email",), "mobile": ("mobile",),
            "first_name": ("first_name",), "last_name": ("last_name",),
            "street_address": ("street", "city", "region", "postal_code", "country")}
# Fields whose value is structured: a custom CRM property (text) cannot hold them yet.
STRUCTURED = frozenset({"street_address", "billing_address", "payment_terms", "contact_persons"})
_ADDRESS_WORDS = dict(zip(ADDRESS_PARTS, STANDARD["street_address"], strict=True))


def xero_snapshot(contact: ContactRecord) -> Snapshot:
    street, billing = contact.addresses.get("STREET", {}), contact.addresses.get("POBOX", {})
    terms: Value = tuple(sorted(contact.sales_terms.items())) if contact.sales_terms else ""
    persons: Value = tuple(tuple(sorted(p.items())) for p in contact.persons) or ""
    values: dict[str, Value] = {
        "name": contact.name, "email": contact.email,
        "phone": contact.phones.get("DEFAULT", ""), "mobile": contact.phones.get("MOBILE", ""),
        "street_address": address(**street), "billing_address": address(**billing),
        "website": contact.website, "tax_number": contact.tax_number,
        "contact_persons": persons, "payment_terms": terms, "currency": contact.currency,
        "account_number": contact.account_number,
        "first_name": contact.first_name, "last_name": contact.last_name,
    }
    return Snapshot(values, contact.updated_at)


def xero_scope(contact: ContactRecord) -> ContactScope:
    return ContactScope(contact.is_customer, contact.is_supplier, contact.group_ids,
                        contact.active)


def _standard(crm: str, rule: FieldRule, tax_number_property: str | None,
              object_type: str = "company") -> bool:
    defaults = PERSON_DEFAULTS if object_type == "person" else CRM_DEFAULTS
    default = defaults.get(crm, {}).get(rule.field)
    if default == TAX_NUMBER:
        return rule.crm_property == (tax_number_property or None)
    return default is not None and rule.crm_property == default


def extra_properties(crm: str, rules: Mapping[str, FieldRule],
                     tax_number_property: str | None,
                     object_type: str = "company") -> dict[str, str]:
    """{field: CRM property} for the active text fields the admin mapped to a property of
    their choosing (read and written as text by the adapter)."""
    return {name: rule.crm_property for name, rule in rules.items()
            if rule.active and rule.crm_property and name not in STRUCTURED
            and not _standard(crm, rule, tax_number_property, object_type)}


def crm_snapshot(crm: str, company: CompanyRecord, rules: Mapping[str, FieldRule],
                 tax_number_property: str | None, object_type: str = "company") -> Snapshot:
    """The company's values for the active fields it holds (a field it cannot hold is left
    out, so the rules leave it alone)."""
    fields, values = company.fields, {}
    for name, rule in rules.items():
        if not rule.active:
            continue
        if _standard(crm, rule, tax_number_property, object_type):
            words = STANDARD.get(name, ())
            if not words or not all(w in fields for w in words):
                continue
            values[name] = (address(**{p: fields[w] for p, w in _ADDRESS_WORDS.items()})
                            if name == "street_address" else fields[words[0]])
        elif name not in STRUCTURED and name in fields:
            values[name] = fields[name]
    return Snapshot(values, company.updated_at)


def crm_fields(values: Mapping[str, Value]) -> dict[str, str]:
    """The rules' values to write as the adapter's fields (COMPANY_FIELDS words, or the extra
    keys, which are the field names)."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if name == "street_address":
            parts = address_parts(value)
            out.update({w: parts[p] for p, w in _ADDRESS_WORDS.items()})
        elif name in STRUCTURED:
            raise ValueError(f"{name} cannot be written to a CRM text field")
        else:
            out[name] = str(value)
    return out


def shown(value: Value | None) -> Any:
    """A value as the audit trail and review items store it (JSON)."""
    if isinstance(value, tuple):
        if all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
            return {k: shown(v) for k, v in value}
        return [shown(v) for v in value]
    return value if value is not None else ""


# Xero's field per rules' field, for the text fields a POST /Contacts can carry.
_XERO_TEXT = {"name": "name", "email": "email", "tax_number": "tax_number",
              "account_number": "account_number", "currency": "currency",
              "first_name": "first_name", "last_name": "last_name"}
_PHONE_TYPES = {"phone": "DEFAULT", "mobile": "MOBILE"}
_ADDRESS_TYPES = {"street_address": "STREET", "billing_address": "POBOX"}
_XERO_ADDRESS = {"lines": "address_line1", "city": "city", "region": "region",
                 "postal_code": "postal_code", "country": "country"}


def xero_patch(contact: ContactRecord, values: Mapping[str, Value]) -> ContactPatch:
    """The rules' values to write as a POST /Contacts element for this contact. A phone or
    address is sent with the contact's other slots exactly as they are (the whole list goes),
    so only the changed slot changes. ValueError for a field Xero's API cannot write."""
    text: dict[str, str] = {}
    phones = {p.get("phone_type", ""): dict(p) for p in contact.raw_phones}
    addresses = {a.get("address_type", ""): dict(a) for a in contact.raw_addresses}
    touched_phones = touched_addresses = False
    for name, value in values.items():
        if name in _XERO_TEXT:
            text[_XERO_TEXT[name]] = str(value)
        elif name in _PHONE_TYPES:
            kind = _PHONE_TYPES[name]
            phones[kind] = {"phone_type": kind, "phone_number": str(value),
                            "phone_area_code": "", "phone_country_code": ""}
            touched_phones = True
        elif name in _ADDRESS_TYPES:
            kind, parts = _ADDRESS_TYPES[name], address_parts(value)
            addresses[kind] = {"address_type": kind,
                               **{sdk: parts[p] for p, sdk in _XERO_ADDRESS.items()}}
            touched_addresses = True
        else:
            raise ValueError(f"{name} cannot be written to Xero by Paydeck")
    return ContactPatch(
        contact.contact_id, **text,
        phones=tuple(phones.values()) if touched_phones else None,
        addresses=tuple(addresses.values()) if touched_addresses else None)
