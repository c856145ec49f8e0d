"""What every CRM adapter shares: CRM error typing, value parsing and list paging.

The CRM types the engine and views also use (deal writeback fields, webhooks, the adapter
protocol) live in `domain.crm` and `domain.ports`."""

from __future__ import annotations

from collections.abc import Callable
import json
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.crm import WebhookRejected


class CrmError(Exception):
    """The CRM refused or failed a call."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


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


def to_decimal(value: Any) -> Decimal | None:
    """A CRM's number (string or JSON number) as Decimal; None when empty or not a number."""
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def to_moment(value: Any) -> datetime | None:
    """A CRM timestamp as an aware UTC datetime: ISO 8601 ("2026-06-30T14:30:00.000Z"), or
    Pipedrive's "YYYY-MM-DD HH:MM:SS" (UTC, no zone), or epoch milliseconds; None if it is
    only a date or unreadable (a date has no moment to place in the organisation's zone)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, timezone.utc)
    if len(text) <= 10:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def to_date(value: Any) -> date | None:
    """A CRM's date or timestamp text as a date."""
    return date.fromisoformat(str(value)[:10]) if value else None


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
