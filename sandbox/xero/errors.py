"""Xero's error responses, in the shapes the real API answers with."""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Response

from sandbox.kit.jsonio import Invalid, json_response
from sandbox.xero.wire import json_body

_INVALID = {
    "bool": "'{value}' is not a valid value for {name}: the API documents true or false",
    "int": "'{value}' is not a valid value for {name}",
    "json": "The request body is not valid JSON: {error}",
}


def _exception(number: int, kind: str, message: str, **extra: Any) -> Response:
    """Xero's 400 ``{"ErrorNumber", "Type", "Message", ...}`` document."""
    return json_body({"ErrorNumber": number, "Type": kind, "Message": message, **extra}, 400)


def validation_exception(elements: list[dict[str, Any]], message: str | None = None) -> Response:
    """Xero's 400 for a batch with a bad element (platform-facts: Batches)."""
    message = message or "A validation exception occurred"
    return _exception(10, "ValidationException", message, Elements=elements)


def refused_invoice(invoice_id: str, message: str) -> Response:
    """A ValidationException naming one invoice (online link, email)."""
    element = {"InvoiceID": invoice_id, "ValidationErrors": [{"Message": message}]}
    return validation_exception([element], message)


def query_parse_exception(message: str) -> Response:
    """Xero answers an unparsable ``where``/``order`` with ErrorNumber 16."""
    return _exception(16, "QueryParseException", message)


def post_data_invalid(message: str) -> Response:
    """Xero's 400 for a body it cannot read (ErrorNumber 14)."""
    return _exception(14, "PostDataInvalidException", message)


def invalid(err: Invalid) -> Response:
    """A query parameter or body the kit's readers refused."""
    return post_data_invalid(err.message(_INVALID))


def not_found() -> Response:
    """Xero's 404 is plain text, not JSON (XeroAPI/Xero-OpenAPI#163, "wontfix")."""
    return Response(
        "The resource you're looking for cannot be found",
        status=404,
        content_type="text/plain; charset=utf-8",
    )


def problem(status: int, title: str, detail: str) -> Response:
    """An Accounting API problem document (5xx, 429)."""
    return json_body({"Type": None, "Title": title, "Status": status, "Detail": detail}, status)


def identity_problem(status: int, title: str, detail: str,
                     headers: dict[str, str] | None = None) -> Response:
    """Xero's identity and auth errors are RFC 7807-style problem documents."""
    body = {"Type": None, "Title": title, "Status": status, "Detail": detail,
            "Instance": str(uuid.uuid4()), "Extensions": {}}
    return json_response(body, status, headers)


def too_many_requests(kind: str, retry_after: int | None, remaining: dict[str, str]) -> Response:
    """Xero's 429 (platform-facts: Limits): the problem header, Retry-After for windows."""
    response = problem(429, "Too Many Requests", f"Rate limit exceeded: {kind}")
    response.headers.update(remaining)
    response.headers["X-Rate-Limit-Problem"] = kind
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
