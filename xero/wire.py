"""What xero-python puts on the wire, corrected to what Xero's OpenAPI document says.

Two SDK habits are fixed here, in a subclass of its ApiClient (site-packages stay as shipped):

- query booleans: the SDK hands Python bools to urllib3, which writes `False`/`True`. Xero's
  spec (tests/specs/xero/xero_accounting.yaml, e.g. `summarizeErrors`, `summaryOnly`,
  `includeArchived`: `schema: {type: boolean}`) means the JSON/URL form `false`/`true`.
  Real Xero accepts either case (tests/specs/README.md); Paydeck sends the documented form.
- response-only fields in request bodies: SDK models default `HasAttachments`, `HasErrors`,
  `HasValidationErrors` to false and serialise them. Paydeck never sends a field the spec
  marks `readOnly: true` in a schema it writes, nor the flags Xero only ever reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xero_python.api_client import ApiClient

# The spec's `readOnly: true` properties of each schema Paydeck sends (Invoice, Contact and
# what they nest), plus response-only flags the spec leaves unmarked ("A boolean to indicate
# if a invoice has an validation errors", ValidationErrors: "Displays array of validation
# error messages from the API", StatusAttributeString). tests/test_xero_wire.py derives the
# readOnly set from the spec file itself and fails if this table misses one.
_REPORTED_ONLY = frozenset({"HasErrors", "HasValidationErrors", "ValidationErrors", "Warnings",
                            "StatusAttributeString"})
READ_ONLY: Mapping[str, frozenset[str]] = {
    "Invoice": frozenset({
        "CISDeduction", "CISRate", "SubTotal", "TotalTax", "Total", "TotalDiscount",
        "HasAttachments", "IsDiscounted", "Payments", "Prepayments", "Overpayments", "AmountDue",
        "AmountPaid", "FullyPaidOnDate", "AmountCredited", "UpdatedDateUTC",
        "UpdatedDateUTCString", "CreditNotes"}) | _REPORTED_ONLY,
    # Contact.HasAttachments is not marked readOnly (Invoice.HasAttachments is); it is what
    # Xero reports about attachments all the same, never something a client sets.
    "Contact": frozenset({"UpdatedDateUTC", "Website", "Discount", "HasAttachments"})
    | _REPORTED_ONLY,
    "LineItem": frozenset(),
    "Phone": frozenset(),
    "Address": frozenset(),
    "ContactPerson": frozenset(),
}
# Where each schema nests another (the spec's `$ref`s), for walking a body.
NESTED: Mapping[str, Mapping[str, str]] = {
    "Invoice": {"Contact": "Contact", "LineItems": "LineItem"},
    "Contact": {"Phones": "Phone", "Addresses": "Address", "ContactPersons": "ContactPerson"},
}
# A batch body's key -> the schema of its elements (`Invoices: {Invoices: [Invoice]}`).
ROOTS: Mapping[str, str] = {"Invoices": "Invoice", "Contacts": "Contact"}


def query_value(value: Any) -> Any:
    """A query or header value as it should appear on the wire."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def writable(node: Any, schema: str) -> Any:
    """`node` (a serialised `schema` object, or a list of them) without read-only fields."""
    if isinstance(node, list):
        return [writable(item, schema) for item in node]
    if not isinstance(node, dict):
        return node
    drop, nested = READ_ONLY.get(schema, frozenset()), NESTED.get(schema, {})
    return {key: writable(value, nested[key]) if key in nested else value
            for key, value in node.items() if key not in drop}


def writable_body(body: Any) -> Any:
    """A request body with every read-only field of its batch elements removed."""
    if not isinstance(body, dict):
        return body
    return {key: writable(value, ROOTS[key]) if key in ROOTS else value
            for key, value in body.items()}


class XeroApiClient(ApiClient):
    """xero-python's ApiClient, sending what the spec documents (see the module docstring)."""

    def parameters_to_tuples(self, params: Any, collection_formats: Any) -> list[tuple[str, Any]]:
        pairs = super().parameters_to_tuples(params, collection_formats)
        return [(key, query_value(value)) for key, value in pairs]

    def request(self, method: str, url: str, query_params: Any = None, headers: Any = None,
                post_params: Any = None, body: Any = None, _preload_content: bool = True,
                _request_timeout: Any = None) -> Any:
        return super().request(method, url, query_params=query_params, headers=headers,
                               post_params=post_params, body=writable_body(body),
                               _preload_content=_preload_content,
                               _request_timeout=_request_timeout)
