"""Saving one contact element the way Xero validates it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import sandbox.xero.render as render
from sandbox.xero.limits import (ADDRESS_LIMITS, CONTACT_LIMITS, PHONE_LIMITS, length_problems,
                                 nested_length_problems)
from sandbox.xero.records import CONTACT_TEXT_FIELDS, EMAIL, Contact
from sandbox.xero.state import Ledger, Saved


def rendered(ledger: Ledger, contact: Contact, *, summary: bool = False) -> dict[str, Any]:
    """The contact as Xero shows it; IsCustomer: it has an invoice that is not deleted."""
    is_customer = any(i.contact_id == contact.contact_id and i.status != "DELETED"
                      for i in ledger.invoice_by_id.values())
    return render.contact(contact, is_customer=is_customer, summary=summary)


def save_element(ledger: Ledger, raw: Any) -> Saved:
    """Create (no ContactID) or update (ContactID) one contact element."""
    if not isinstance(raw, dict):
        return render.failed_contact({}, None, ["A contact must be a JSON object"]), None
    existing, errors = None, []
    contact_id = raw.get("ContactID")
    if contact_id:
        existing = ledger.find_contact(str(contact_id))
        if existing is None:
            errors.append(f"Contact with ContactID '{contact_id}' could not be found")
    contact = _merge(ledger, raw, existing, errors)
    if contact is not None:
        errors.extend(_problems(ledger, contact))
    if errors or contact is None:
        return render.failed_contact(raw, existing, errors), None
    ledger.contact_by_id[contact.contact_id] = contact
    return rendered(ledger, contact), contact.contact_id


def _merge(
    ledger: Ledger, raw: Mapping[str, Any], existing: Contact | None, errors: list[str]
) -> Contact | None:
    """`existing` with the fields `raw` carries, or a new contact; None if unreadable."""
    changes: dict[str, Any] = {}
    for key, attr in CONTACT_TEXT_FIELDS.items():
        if key not in raw:
            continue
        value = raw[key]
        if value is not None and not isinstance(value, str):
            errors.append(f"{key} must be a string")
            continue
        changes[attr] = value.strip() if isinstance(value, str) else None
        if attr == "name" and changes[attr] is None:
            changes[attr] = ""
    for key, attr in (("Phones", "phones"), ("Addresses", "addresses")):
        if isinstance(raw.get(key), list):
            changes[attr] = tuple(p for p in raw[key] if isinstance(p, dict))
    if isinstance(raw.get("PaymentTerms"), dict):
        changes["payment_terms"] = raw["PaymentTerms"]
    if errors:
        return None
    base = existing or Contact(str(uuid.uuid4()), name="")
    return replace(base, **changes, updated_ms=ledger.stamp())


def _problems(ledger: Ledger, contact: Contact) -> list[str]:
    problems: list[str] = []
    if not contact.name:
        problems.append("The contact name must be specified.")
    problems.extend(length_problems(render.fields(contact, CONTACT_TEXT_FIELDS), CONTACT_LIMITS))
    problems.extend(nested_length_problems(contact.phones, PHONE_LIMITS, "Phone "))
    problems.extend(nested_length_problems(contact.addresses, ADDRESS_LIMITS, "Address "))
    if contact.email_address and not EMAIL.match(contact.email_address):
        problems.append("Email address must be valid.")
    if contact.contact_status not in ("ACTIVE", "ARCHIVED"):
        problems.append(f"ContactStatus '{contact.contact_status}' cannot be set through the API.")
    if contact.default_currency and contact.default_currency not in ledger.currency_codes:
        problems.append(f"Organisation is not subscribed to currency {contact.default_currency}")
    if contact.name and contact.contact_status == "ACTIVE" and _name_taken(ledger, contact):
        problems.append(
            f"The contact name {contact.name} is already assigned to another contact. "
            "The contact name must be unique across all active contacts."
        )  # platform-facts: Name unique among active contacts
    return problems


def _name_taken(ledger: Ledger, contact: Contact) -> bool:
    wanted = contact.name.casefold()
    return any(
        other.contact_id != contact.contact_id
        and other.contact_status == "ACTIVE"
        and other.name.casefold() == wanted
        for other in ledger.contact_by_id.values()
    )
