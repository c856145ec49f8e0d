"""Small helpers the tests share."""

from __future__ import annotations

import html
from html.parser import HTMLParser
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


class _Forms(HTMLParser):
    """Each <form>'s action and its hidden inputs, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((html.unescape(a.get("action", "")), {}))
        elif tag == "input" and a.get("type") == "hidden" and self.forms:
            self.forms[-1][1][a.get("name", "")] = a.get("value", "")


def form_fields(page: str, action_path: str, index: int = 0) -> dict[str, str]:
    """The hidden fields (tokens) of the `index`th form on `page` posting to a URL ending in
    `action_path`: what a browser submits with that button."""
    parser = _Forms()
    parser.feed(page)
    found = [fields for action, fields in parser.forms if action.split("?")[0].endswith(action_path)]
    assert len(found) > index, f"no form #{index} to {action_path} on the page"
    return dict(found[index])
