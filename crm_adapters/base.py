"""What every CRM adapter shares: CRM error typing, webhook JSON and list paging.

The CRM types the engine and views also use (deal writeback fields, webhooks, the adapter
protocol) live in `domain.crm` and `domain.ports`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from domain.crm import WebhookRejected
from domain.errors import VendorError


class CrmError(VendorError):
    """The CRM refused or failed a call."""


class CrmRetryLater(CrmError):
    """Rate limited or the CRM is down: try again after `seconds`."""

    def __init__(self, message: str, seconds: float, status: int | None = None):
        super().__init__(message, status)
        self.seconds = seconds


class CrmReconnectNeeded(CrmError):
    """The CRM refused our token: the installation must be reinstalled."""


def classify_status(crm: str, status: int, retry_after: str | None, what: str) -> CrmError:
    """One place that decides what a failed CRM call means."""
    if status == 429:
        seconds = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else 10.0
        return CrmRetryLater(f"{crm} rate limit on {what}", seconds, status)
    if status >= 500 or status == 408:
        return CrmRetryLater(f"{crm} answered {status} to {what}", 30.0, status)
    if status in (401, 403):
        return CrmReconnectNeeded(f"{crm} refused the token ({status}) on {what}", status)
    return CrmError(f"{crm} answered {status} to {what}", status)


def tax_number_field(installation: Any) -> str | None:
    """The CRM field that holds a company's tax number: an installation setting, or None."""
    settings = getattr(installation, "settings", None)
    return getattr(settings, "tax_number_property", None) or None


# Deeper than any CRM's payload (HubSpot events and Pipedrive's v2 body are 3-4 levels).
MAX_JSON_DEPTH = 32


def load_json(body: bytes) -> Any:
    """A webhook body as JSON, or WebhookRejected(400): not JSON, or nested absurdly deep
    (which would otherwise exhaust the parser's recursion and answer 500)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected(400, "body is not JSON") from exc
    if _depth(payload) > MAX_JSON_DEPTH:
        raise WebhookRejected(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels")
    return payload


def _depth(value: Any) -> int:
    """Nesting depth, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


class PagingLoop(CrmError):
    """A CRM answered a page with a page token it had already given: following it would loop
    forever (meltano/sdk's paginators refuse a repeated token the same way)."""


Page = tuple[list[Any], str | None]  # one page's records and the next page's token (None: last)


def follow_pages(fetch: Callable[[str | None], Page], what: str) -> list[Any]:
    """Every record of a paged list: `fetch(token)` answers one page and the next token.

    Refuses a token seen before (PagingLoop), so a CRM that repeats itself fails loudly
    instead of looping or silently returning a short list.
    """
    records: list[Any] = []
    seen: set[str] = set()
    token: str | None = None
    while True:
        page, token = fetch(token)
        records += page
        if token is None or token == "":
            return records
        if token in seen:
            raise PagingLoop(f"{what}: the CRM repeated page token {token!r}")
        seen.add(token)
