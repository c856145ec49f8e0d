"""Small helpers the tests share."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select, text

from app.extensions import db


def count(app: Flask, model: Any, *where: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def one(app: Flask, model: Any, *where: Any) -> Any:
    """Load one row, detached with its attributes loaded, for assertions outside the context."""
    with app.app_context():
        row = db.session.scalars(select(model).where(*where)).one()
        db.session.expunge(row)
        return row


def raw_rows(app: Flask, table: str) -> list[dict[str, Any]]:
    """Rows exactly as stored, bypassing the ORM's decryption."""
    with app.app_context():
        result = db.session.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - test helper
        return [dict(r._mapping) for r in result]
