"""Column types every table uses: money, UTC moments, enums stored as strings."""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import DateTime, Enum, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

MONEY = Numeric(18, 4)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def string_enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native PG enum) so adding a value is a code change only.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)
