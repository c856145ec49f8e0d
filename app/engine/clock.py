"""The engine's clock: every "now" of the engine comes from here (tests freeze it)."""

from __future__ import annotations

from datetime import date, datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)


def today() -> date:
    """Today's date in UTC, as the deal statuses are worked out."""
    return now().date()
