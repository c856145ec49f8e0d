"""Paydeck: CRM deals to Xero invoices. `create_app` builds everything; importing does nothing."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.crypto import EXTENSION_KEY as CIPHER_KEY
from app.crypto import ConfigurationError, build_cipher, generate_key
from app.extensions import db, migrate
from app.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SETTINGS_KEY = "paydeck.settings"


def create_app(config: Settings | None = None) -> Flask:
    """Build the Flask app from `config`, or from the environment when none is given."""
    settings = config if config is not None else Settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    secrets = _resolve_secrets(settings)

    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
    app.config.update(
        SECRET_KEY=secrets["secret_key"],
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        SESSION_COOKIE_HTTPONLY=True,
    )
    app.extensions[SETTINGS_KEY] = settings
    app.extensions[CIPHER_KEY] = build_cipher(secrets["encryption_keys"])

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))

    from app.views import cards, health, install, settings as settings_page, webhooks, xero_connect

    app.register_blueprint(cards.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(install.bp)
    app.register_blueprint(xero_connect.bp)
    app.register_blueprint(settings_page.bp)
    return app


def get_settings() -> Settings:
    from flask import current_app

    return current_app.extensions[SETTINGS_KEY]


def _engine_options(settings: Settings) -> dict[str, Any]:
    if settings.sqlalchemy_url.startswith("sqlite"):
        # Several processes (web, worker, cron) share the file: wait on locks, don't fail.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "pool_recycle": 1800}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL lets readers run beside the one writer; SQLite checks foreign keys only if asked."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _resolve_secrets(settings: Settings) -> dict[str, Any]:
    """Session and encryption keys from the environment; generated only on embedded defaults."""
    keys = settings.encryption_key_list()
    if settings.secret_key and keys:
        return {"secret_key": settings.secret_key, "encryption_keys": keys}
    if not settings.uses_embedded_database:
        raise ConfigurationError(
            "SECRET_KEY and ENCRYPTION_KEYS must be set when DATABASE_URL is: "
            "tokens would otherwise be encrypted with a key that lives on one machine"
        )
    generated = _load_or_create_generated_secrets(settings.instance_path / "secrets.json")
    return {
        "secret_key": settings.secret_key or generated["secret_key"],
        "encryption_keys": keys or [generated["encryption_key"]],
    }


def _load_or_create_generated_secrets(path: Path) -> dict[str, str]:
    """Create the file atomically (link of a complete temp file), so racing processes agree."""
    if path.exists():
        return json.loads(path.read_text())
    secrets = {"secret_key": generate_key(), "encryption_key": generate_key()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(secrets, handle)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return json.loads(path.read_text())
    finally:
        tmp.unlink()
    log.warning(
        "SECRET_KEY/ENCRYPTION_KEYS not set: generated keys into %s. Fine for a laptop; "
        "in production set both in the environment and keep them safe.", path
    )
    return secrets
