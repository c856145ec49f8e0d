"""Pipedrive's JSON bodies: exact-Decimal JSON, the success envelope and the error shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Response

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def dumps(value: Any) -> str:
    """JSON with `Decimal` written as an exact number, never via float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("the Pipedrive fake never writes floats")
    return json.dumps(value)


def json_body(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        dumps(body), status=status, headers=dict(headers or {}), content_type="application/json"
    )


def ok(data: Any, additional: dict[str, Any] | None = None, status: int = 200) -> Response:
    """The v2 envelope ``{"success", "data", "additional_data"}`` (v1: no additional_data)."""
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return json_body(body, status)


def webhook_ok(data: Any, status: int = 200) -> Response:
    """The v1 webhooks endpoints' envelope, which adds ``"status": "ok"``."""
    return json_body({"status": "ok", "success": True, "data": data}, status)


class ApiError(Exception):
    """An API answer other than success; `response()` renders Pipedrive's error body.

    Unverified: the `code` strings. The shape (`success: false`, `error`,
    `error_info`) follows the v1/v2 errors we have seen. `extra` adds fields, e.g. the
    `errors` object of the webhooks endpoints' 400 (pipedrive/client-nodejs
    src/versions/v1/models/webhooks-bad-request-response.ts).
    """

    def __init__(self, status: int, message: str, code: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        body = {
            "success": False,
            "error": self.message,
            "code": self.code,
            "errorCode": self.status,
            "error_info": ERROR_INFO,
            "data": None,
            "additional_data": None,
        }
        return json_body(body | self.extra, self.status, headers)


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, message, "ERR_SCHEMA_VALIDATION_FAILED", **extra)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found", "ERR_NOT_FOUND")


def scope_mismatch() -> ApiError:
    return ApiError(403, "Scope and URL mismatch", "ERR_SCOPE_MISMATCH")


def too_many_requests(daily: bool, headers: Mapping[str, str], retry: int) -> Response:
    """The 429 of the burst limit or of the daily token budget, with Retry-After."""
    what = "Daily token budget exhausted" if daily else "Request over limit"
    response = ApiError(429, what, "ERR_RATE_LIMIT_EXCEEDED").response(headers)
    response.headers["Retry-After"] = str(retry)
    return response
