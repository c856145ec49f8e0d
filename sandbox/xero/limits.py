"""Xero's field length limits on the elements Paydeck writes, and how Xero reports them.

Limits come from the vendored spec's ``maxLength`` (tests/specs/xero/xero_accounting.yaml)
wherever it has one; the others are cited one by one. Note xero-python copies the spec's
limits into its model setters (ValueError before anything is sent), so the fake is the
only check for fields the spec leaves unbounded (line Description, invoice Reference) and
for raw HTTP callers.

Known disagreement: Xero staff confirmed real Xero does not enforce the 255 limit on
Contact Name (XeroAPI/xero-python#70, 2022: "it seems Xero is not restricting the
character length for contact name"), yet the SDK refuses such a name both ways - even
reading one back. The fake enforces the spec: data Paydeck writes must fit the SDK.

Message wording: Xero's observed form for an over-long field is "Account Code is too
long. Maximum of 10 characters allowed" (XeroAPI/Xero-Net#285); the same form is used
for every field (unverified for fields other than Account Code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SPEC = "spec maxLength"

INVOICE_LIMITS: dict[str, tuple[int, str]] = {
    "InvoiceNumber": (255, SPEC),  # Invoice.InvoiceNumber "(max length = 255)"
    # No maxLength in the spec or on Xero's invoices page; "(max length = 255)" per
    # suchimitha.github.io/Xero-API InvoiceOperations and the issue brief (unverified).
    "Reference": (255, "third-party doc (unverified)"),
}
LINE_LIMITS: dict[str, tuple[int, str]] = {
    # The spec puts no maxLength on LineItem.Description; 4,000 is Item.Description's
    # (spec maxLength 4000, and an item's description fills the line's) and the limit
    # shared/notes/platform-facts.md records for descriptions.
    "Description": (4000, "spec Item.Description maxLength; platform-facts"),
}
TRACKING_LIMITS: dict[str, tuple[int, str]] = {
    "Name": (100, SPEC),  # LineItemTracking.Name
    "Option": (100, "spec TrackingOption.Name maxLength"),
}
CONTACT_LIMITS: dict[str, tuple[int, str]] = {
    "Name": (255, SPEC),
    "FirstName": (255, SPEC),
    "LastName": (255, SPEC),
    "EmailAddress": (255, SPEC),
    "ContactNumber": (50, SPEC),
    "AccountNumber": (50, SPEC),
    "CompanyNumber": (50, SPEC),
    "TaxNumber": (50, SPEC),
}
PHONE_LIMITS: dict[str, tuple[int, str]] = {
    "PhoneNumber": (50, SPEC),
    "PhoneAreaCode": (10, SPEC),
    "PhoneCountryCode": (20, SPEC),
}
ADDRESS_LIMITS: dict[str, tuple[int, str]] = {
    "AddressLine1": (500, SPEC),
    "AddressLine2": (500, SPEC),
    "AddressLine3": (500, SPEC),
    "AddressLine4": (500, SPEC),
    "City": (255, SPEC),
    "Region": (255, SPEC),
    "PostalCode": (50, SPEC),
    "Country": (50, SPEC),
    "AttentionTo": (255, SPEC),
}


def too_long(label: str, limit: int) -> str:
    """Xero's message for an over-long field (XeroAPI/Xero-Net#285 wording)."""
    return f"{label} is too long. Maximum of {limit} characters allowed"


def length_problems(
    element: Mapping[str, Any], limits: Mapping[str, tuple[int, str]], prefix: str = ""
) -> list[str]:
    """One message per string field of `element` longer than its limit."""
    problems: list[str] = []
    for key, (limit, _source) in limits.items():
        value = element.get(key)
        if isinstance(value, str) and len(value) > limit:
            problems.append(too_long(f"{prefix}{key}", limit))
    return problems


def nested_length_problems(
    entries: Iterable[Any], limits: Mapping[str, tuple[int, str]], prefix: str
) -> list[str]:
    """`length_problems` over a list of sub-elements (Phones, Addresses, Tracking)."""
    problems: list[str] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            problems.extend(length_problems(entry, limits, prefix))
    return problems


__all__ = [
    "ADDRESS_LIMITS",
    "CONTACT_LIMITS",
    "INVOICE_LIMITS",
    "LINE_LIMITS",
    "PHONE_LIMITS",
    "TRACKING_LIMITS",
    "length_problems",
    "nested_length_problems",
    "too_long",
]
