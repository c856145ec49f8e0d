"""HubSpot's error documents (the specs' `Error` and `StandardError`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn

from werkzeug.wrappers import Response

from sandbox.kit.errors import ErrorShape
from sandbox.kit.jsonio import Invalid, json_response


def _error_body(status: int, category: str, message: str, **extra: Any) -> dict[str, Any]:
    """`Error`: status, message, correlationId, category (oauth-v1.json, the CRM specs)."""
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category}
    return {**body, **extra}


HUBSPOT_ERROR = ErrorShape(_error_body)


def hubspot_error(status: int, category: str, message: str, **extra: Any) -> Response:
    return HUBSPOT_ERROR.response(status, category=category, message=message, **extra)


def fail(status: int, category: str, message: str, **extra: Any) -> NoReturn:
    HUBSPOT_ERROR.fail(status, category=category, message=message, **extra)


def standard_error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """One entry of a 207 response's `errors` (spec `StandardError`)."""
    body = {"status": "error", "category": category, "message": message, "context": {},
            "errors": [], "links": {}}
    return {**body, **extra}


# How HubSpot words input the kit's readers refuse (sandbox.kit.jsonio.Invalid).
INVALID_INPUT = {
    "json": "Invalid input JSON: {error}",
    "object": "Invalid input JSON: expected an object",
    "bool": "Unable to parse query parameter {name}={value!r}: expected true or false",
    "int": "{name} must be an integer",
    "range": "{name} must be between {minimum} and {maximum}",
}


def invalid_input(err: Invalid) -> Response:
    extra = {"context": {err.name: [err.value]}} if err.problem == "bool" else {}
    return hubspot_error(400, "VALIDATION_ERROR", err.message(INVALID_INPUT), **extra)


def rate_limited(policy_name: str) -> Response:
    """HubSpot's 429 (platform-facts: errorType RATE_LIMIT)."""
    which = "secondly" if policy_name == "SECONDLY" else policy_name.lower()
    return json_response({"status": "error", "message": f"You have reached your {which} limit.",
                          "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                          "policyName": policy_name}, status=429)


def missing_scopes(required: Sequence[str]) -> Response:
    return hubspot_error(
        403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this "
        "call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        errors=[{"message": "One or more of the following scopes are required.",
                 "context": {"requiredGranularScopes": list(required)}}],
        links={"scopes": "https://developers.hubspot.com/scopes"})


class PropertyProblem(ValueError):
    """A property value HubSpot would refuse: `code` is HubSpot's error name."""

    def __init__(self, name: str, code: str, message: str) -> None:
        super().__init__(message)
        self.name, self.code = name, code


class ValidationFailed(ValueError):
    """Property values HubSpot would refuse, all of them."""

    def __init__(self, problems: Sequence[PropertyProblem]) -> None:
        super().__init__("; ".join(f"{p.name}: {p}" for p in problems))
        self.problems = list(problems)


def invalid_properties(problems: Sequence[PropertyProblem], portal_id: int) -> Response:
    """HubSpot's 400 for bad property values: the details are JSON inside `message`."""
    details = [{"isValid": False, "message": str(p), "error": p.code, "name": p.name,
                "localizedErrorMessage": str(p), "portalId": portal_id} for p in problems]
    return hubspot_error(400, "VALIDATION_ERROR",
                         f"Property values were not valid: {json.dumps(details)}")
