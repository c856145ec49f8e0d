"""Dates and moments as the vendors write them."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any


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


def utc_now() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored moment as aware UTC; a naive one is UTC (how Paydeck stores, and how SQLite
    gives it back), so stored and fetched moments compare alike on every database."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def to_date(value: Any) -> date | None:
    """A CRM's date or timestamp text as a date."""
    return date.fromisoformat(str(value)[:10]) if value else None
