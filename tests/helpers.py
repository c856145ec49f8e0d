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


def installed(app_factory: Any, browser: Any, crm: str, crm_fake: tuple[Any, str],
              xero_fake: tuple[Any, str], **overrides: Any) -> tuple[Flask, str, str]:
    """Paydeck served, installed into the fake CRM (`crm`: "hubspot" or "pipedrive") and
    connected to a new fake Xero organisation; returns (app, url, the organisation's tenant)."""
    from tests.conftest import fake_settings

    tenant = xero_fake[0].add_tenant("Acme Pty Ltd")
    if crm == "hubspot":
        overrides.setdefault("hubspot_app_id", str(crm_fake[0].app_id))
    app, url = app_factory.serve(**fake_settings(**{crm: crm_fake}, xero=xero_fake), **overrides)
    assert browser.get(f"{url}/install/{crm}").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    return app, url, tenant


def invoice_on_stage(app: Flask, pipeline_id: str, stage_id: str) -> Any:
    """The one installation, with Xero defaults (account 200, OUTPUT) and a rule authorising
    an invoice when a deal enters `stage_id`; returns it (detached)."""
    from app.models import Installation, InstallationSettings, StageAction, StageRule

    with app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        settings = db.session.get(InstallationSettings, installation.id)
        settings.default_account_code, settings.default_tax_type = "200", "OUTPUT"
        db.session.add(StageRule(installation_id=installation.id, pipeline_id=pipeline_id,
                                 stage_id=stage_id, action=StageAction.AUTHORISE))
        db.session.commit()
        db.session.refresh(installation)
        db.session.expunge(installation)
        return installation
