"""Pipedrive's answers: the success envelopes and the error shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Response

from sandbox.kit.errors import ErrorShape, VendorError
from sandbox.kit.jsonio import dumps, exact_json_response

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
# What the kit's JSON readers refuse, in this fake's words.
INVALID = {"json": "Request body is not valid JSON: {error}",
           "object": "Request body must be a JSON object"}


def _error_body(status: int, *, message: str, code: str, **extra: Any) -> dict[str, Any]:
    """Unverified: the `code` strings. The shape (`success: false`, `error`, `error_info`)
    follows the v1/v2 errors we have seen; `extra` adds fields, e.g. the `errors` object
    of the webhooks endpoints' 400 (pipedrive/client-nodejs
    src/versions/v1/models/webhooks-bad-request-response.ts)."""
    return {"success": False, "error": message, "code": code, "errorCode": status,
            "error_info": ERROR_INFO, "data": None, "additional_data": None, **extra}


SHAPE = ErrorShape(_error_body, encode=dumps)


def ok(data: Any, additional: dict[str, Any] | None = None, status: int = 200) -> Response:
    """The v2 envelope ``{"success", "data", "additional_data"}`` (v1: no additional_data)."""
    extra = {} if additional is None else {"additional_data": additional}
    return exact_json_response({"success": True, "data": data, **extra}, status)


def webhook_ok(data: Any, status: int = 200) -> Response:
    """The v1 webhooks endpoints' envelope, which adds ``"status": "ok"``."""
    return exact_json_response({"status": "ok", "success": True, "data": data}, status)


def bad_request(message: str, **extra: Any) -> VendorError:
    return SHAPE.error(400, message=message, code="ERR_SCHEMA_VALIDATION_FAILED", **extra)


def not_found(what: str) -> VendorError:
    return SHAPE.error(404, message=f"{what} not found", code="ERR_NOT_FOUND")


def too_many_requests(daily: bool, headers: Mapping[str, str], retry: int) -> Response:
    """The 429 of the burst limit or of the daily token budget, with Retry-After."""
    what = "Daily token budget exhausted" if daily else "Request over limit"
    response = SHAPE.response(429, headers=headers, message=what, code="ERR_RATE_LIMIT_EXCEEDED")
    response.headers["Retry-After"] = str(retry)
    return response
