"""Each side's record as the rules' values, and the rules' values as CRM fields. Pure.

Xero: a xero.client.ContactRecord. The CRM: a domain.crm.CompanyRecord in COMPANY_FIELDS
words (the adapters know each CRM's property names), plus the admin's extra properties
(text only) for fields with no standard company property.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.contact_sync.mapping import CRM_DEFAULTS, TAX_NUMBER, FieldRule
from app.contact_sync.rules import Snapshot
from app.contact_sync.scope import ContactScope
from app.contact_sync.values import ADDRESS_PARTS, Value, address, address_parts
from domain.crm import CompanyRecord
from xero.client import ContactRecord

# The fields the adapters read and write by COMPANY_FIELDS words when the admin kept the
# default CRM property: field -> the words.
STANDARD = {"name": ("name",), "phone": ("phone",), "website": ("website",),
            "tax_number": ("tax_number",),
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
    }
    return Snapshot(values, contact.updated_at)


def xero_scope(contact: ContactRecord) -> ContactScope:
    return ContactScope(contact.is_customer, contact.is_supplier, contact.group_ids,
                        contact.active)


def _standard(crm: str, rule: FieldRule, tax_number_property: str | None) -> bool:
    default = CRM_DEFAULTS.get(crm, {}).get(rule.field)
    if default == TAX_NUMBER:
        return rule.crm_property == (tax_number_property or None)
    return default is not None and rule.crm_property == default


def extra_properties(crm: str, rules: Mapping[str, FieldRule],
                     tax_number_property: str | None) -> dict[str, str]:
    """{field: CRM property} for the active text fields the admin mapped to a property of
    their choosing (read and written as text by the adapter)."""
    return {name: rule.crm_property for name, rule in rules.items()
            if rule.active and rule.crm_property and name not in STRUCTURED
            and not _standard(crm, rule, tax_number_property)}


def crm_snapshot(crm: str, company: CompanyRecord, rules: Mapping[str, FieldRule],
                 tax_number_property: str | None) -> Snapshot:
    """The company's values for the active fields it holds (a field it cannot hold is left
    out, so the rules leave it alone)."""
    fields, values = company.fields, {}
    for name, rule in rules.items():
        if not rule.active:
            continue
        if _standard(crm, rule, tax_number_property):
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
