"""What xero-python puts on the wire, corrected to what Xero's OpenAPI document says.

Two SDK habits are fixed here, in a subclass of its ApiClient (site-packages stay as shipped):

- query booleans: the SDK hands Python bools to urllib3, which writes `False`/`True`. Xero's
  spec (tests/specs/xero/xero_accounting.yaml, e.g. `summarizeErrors`, `summaryOnly`,
  `includeArchived`: `schema: {type: boolean}`) means the JSON/URL form `false`/`true`.
  Real Xero accepts either case (tests/specs/README.md); Paydeck sends the documented form.
- response-only fields in request bodies: SDK models default `HasAttachments`, `HasErrors`,
  `HasValidationErrors` to false and serialise them. Paydeck never sends a field the spec
  marks `readOnly: true` in a schema it writes, nor the flags Xero only ever reports.
- money through float: the SDK's serializer turns every `Decimal` into a Python float
  (xero_python/api_client/serializer.py `serialize_float`: `return float(value)`), and its REST
  client writes the body with `json.dumps`. A float is binary: 0.1 + 0.2 is not 0.3, and a
  17-significant-digit amount comes out rounded to what a double holds. Paydeck writes the
  body itself (`body_json`): every Decimal of the model goes out as the exact JSON number it
  is, digit for digit, never through float; the REST client sends those bytes unchanged.
- timeouts: the SDK's REST client honours only an `int` or a `(connect, read)` tuple
  (rest.py: `timeout_classes = (int,)`); a float such as Paydeck's `http_timeout = 10.0` was
  silently dropped, leaving urllib3 to wait forever. Paydeck passes the tuple.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import urllib3
from xero_python.api_client import ApiClient
from xero_python.api_client.serializer import serialize
from xero_python.exceptions import ApiSSLException, HTTPStatusException
from xero_python.models import BaseModel
from xero_python.rest import RESTClientObject, RESTResponse

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


def exact_numbers(model: Any, serialized: Any) -> Any:
    """`serialized` (the SDK's `serialize(model)`) with each Decimal of `model` put back where
    the SDK had written a float. Walks the model by its `attribute_map`, the same map the SDK
    serialises with (serializer.py `serialize_base_model`)."""
    if isinstance(model, Decimal):
        return model
    if isinstance(model, (list, tuple)) and isinstance(serialized, (list, tuple)):
        return [exact_numbers(m, v) for m, v in zip(model, serialized)]
    if isinstance(model, BaseModel) and isinstance(serialized, dict):
        by_key = {key: attr for attr, key in model.attribute_map.items()}
        return {key: exact_numbers(getattr(model, by_key[key]), value) if key in by_key else value
                for key, value in serialized.items()}
    if isinstance(model, dict) and isinstance(serialized, dict):
        return {key: exact_numbers(model.get(key), value) for key, value in serialized.items()}
    return serialized


def json_number(value: Decimal) -> str:
    """A Decimal as a JSON number (RFC 8259 section 6), exactly: plain notation, no exponent."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a number JSON can carry")
    text = format(value, "f")
    return text


def to_json(node: Any) -> str:
    """JSON text as `json.dumps` writes it (same separators, ASCII), with Decimals as exact
    numbers rather than floats."""
    if isinstance(node, Decimal):
        return json_number(node)
    if isinstance(node, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {to_json(v)}" for k, v in node.items()) + "}"
    if isinstance(node, (list, tuple)):
        return "[" + ", ".join(to_json(v) for v in node) + "]"
    if isinstance(node, float):
        raise TypeError(f"a float ({node!r}) in a Xero request body: money must be Decimal")
    return json.dumps(node)


def body_json(body: Any) -> bytes:
    """A request body (an SDK model) as the bytes Paydeck sends: read-only fields dropped,
    Decimals exact."""
    return to_json(writable_body(exact_numbers(body, serialize(body)))).encode("ascii")


def request_timeout(timeout: Any) -> Any:
    """What the SDK's REST client honours: an int or a (connect, read) pair, not a float."""
    if isinstance(timeout, float):
        return (timeout, timeout)
    return timeout


class ExactJsonRESTClient(RESTClientObject):
    """The SDK's REST client, sending a body Paydeck already wrote (`bytes`) as it is: the
    SDK's own path would `json.dumps` it again."""

    def request(self, method: str, url: str, query_params: Any = None, headers: Any = None,
                body: Any = None, post_params: Any = None, _preload_content: bool = True,
                _request_timeout: Any = None) -> Any:
        headers = dict(headers or {})
        content_type = headers.setdefault("Content-Type", "application/json")
        if not isinstance(body, bytes) or "json" not in content_type.lower():
            return super().request(method, url, query_params=query_params, headers=headers,
                                   body=body, post_params=post_params,
                                   _preload_content=_preload_content,
                                   _request_timeout=_request_timeout)
        if query_params:
            url += "?" + urlencode(query_params)
        connect, read = _request_timeout if isinstance(_request_timeout, tuple) else (
            _request_timeout, _request_timeout)
        try:
            response = self.pool_manager.request(
                method, url, body=body, preload_content=_preload_content, headers=headers,
                timeout=urllib3.Timeout(connect=connect, read=read))
        except urllib3.exceptions.SSLError as exc:  # as the SDK's client reports it
            raise ApiSSLException(status=0, reason=f"{type(exc).__name__}\n{exc}") from exc
        if not 200 <= response.status <= 299:
            raise HTTPStatusException(http_resp=RESTResponse(response))
        return RESTResponse(response) if _preload_content else response


class XeroApiClient(ApiClient):
    """xero-python's ApiClient, sending what the spec documents (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rest_client = ExactJsonRESTClient(self.configuration)

    def call_api(self, resource_path: str, method: str, path_params: Any = None,
                 query_params: Any = None, header_params: Any = None, body: Any = None,
                 *args: Any, **kwargs: Any) -> Any:
        if body is not None and not isinstance(body, (str, bytes)):
            body = body_json(body)  # bytes pass the SDK's serializer untouched
        if "_request_timeout" in kwargs:
            kwargs["_request_timeout"] = request_timeout(kwargs["_request_timeout"])
        return super().call_api(resource_path, method, path_params, query_params,
                                header_params, body, *args, **kwargs)

    def parameters_to_tuples(self, params: Any, collection_formats: Any) -> list[tuple[str, Any]]:
        pairs = super().parameters_to_tuples(params, collection_formats)
        return [(key, query_value(value)) for key, value in pairs]

    def request(self, method: str, url: str, query_params: Any = None, headers: Any = None,
                post_params: Any = None, body: Any = None, _preload_content: bool = True,
                _request_timeout: Any = None) -> Any:
        # A body reaches here as bytes from `call_api`; anything else the SDK built itself.
        body = body if isinstance(body, bytes) else writable_body(body)
        return super().request(method, url, query_params=query_params, headers=headers,
                               post_params=post_params, body=body,
                               _preload_content=_preload_content,
                               _request_timeout=_request_timeout)
