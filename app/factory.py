"""`create_app`: the Flask app, its extensions, blueprints and SQLAlchemy listeners, built
from one settings object. Importing this module does nothing; calling create_app binds it all."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.crypto import EXTENSION_KEY as CIPHER_KEY
from app.crypto import ConfigurationError, build_cipher, generate_key
from app.engine.job import enqueue_sync
from app.engine.reference import SETTINGS_LISTENERS
from app.extensions import db, migrate
from app.heap import settle_for_serving
from app.page_format import register as register_filters
from app.runtime import SETTINGS_KEY, get_settings
from app.settings import Settings
from app.tokens import ON_GRANT_RECOVERED
from app.views import cards, company, health, install, invoice, review, webhooks, xero_connect
from app.views import contact_match
from app.views import settings as settings_page
from app.views.common import security_headers

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: Settings | None = None) -> Flask:
    """Build the Flask app from `config`, or from the environment when none is given: then it
    is a server's app (gunicorn's `app.factory:create_app()`, the rq worker), and the process's
    start-up heap is settled before its first request (app/heap.py)."""
    settings = config if config is not None else Settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    if settings.uses_embedded_database:
        _private_database_file(settings)
    secrets = _resolve_secrets(settings)

    # Named "app" (the package): templates, static files and the logger as before the move.
    app = Flask("app", instance_path=str(settings.instance_path.resolve()))
    app.config.update(_flask_config(settings, secrets))
    app.extensions[SETTINGS_KEY] = settings
    app.extensions[CIPHER_KEY] = build_cipher(secrets["encryption_keys"])
    # A grant that works again wakes its installation's waiting deals (app/tokens.py).
    app.extensions[ON_GRANT_RECOVERED] = enqueue_sync

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    _register_listeners()
    _register_blueprints(app)
    register_filters(app)
    if config is None:  # a server process building its own app (gunicorn, rq): app/heap.py
        settle_for_serving()
    return app


def _flask_config(settings: Settings, secrets: dict[str, Any]) -> dict[str, Any]:
    return dict(
        SECRET_KEY=secrets["secret_key"],
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        SESSION_COOKIE_HTTPONLY=True,
        # Flask checks every session cookie's age against this, permanent or not.
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_lifetime_minutes),
        # Bodies above the limit get 413 before they are read (Content-Length) or as soon as
        # they pass it (chunked); webhooks get their own, larger limit (`_body_limits`).
        MAX_CONTENT_LENGTH=settings.max_form_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_form_bytes,
    )


def _register_blueprints(app: Flask) -> None:
    for blueprint in (cards.bp, invoice.bp, company.bp, review.bp, health.bp, webhooks.bp, install.bp, xero_connect.bp,
                      settings_page.bp, contact_match.bp):
        app.register_blueprint(blueprint)
    app.before_request(_body_limits)
    app.after_request(_transport_security)
    app.after_request(security_headers)  # CSP on every response
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _error_page)


def _register_listeners() -> None:
    """SQLAlchemy's listeners are global to its classes: each is registered once per process,
    by the first create_app (never at import)."""
    listeners = ((Engine, "connect", _sqlite_pragmas), *SETTINGS_LISTENERS)
    for target, identifier, listener in listeners:
        if not event.contains(target, identifier, listener):
            event.listen(target, identifier, listener)


WEBHOOK_ENDPOINTS = frozenset({"webhooks.hubspot_webhook", "webhooks.pipedrive_webhook",
                               "webhooks.xero_webhook"})


def _body_limits() -> None:
    """Webhooks may carry up to MAX_WEBHOOK_BYTES; everything else MAX_FORM_BYTES. A declared
    length over the limit is refused here, before authentication reads anything."""
    settings = get_settings()
    limit = (settings.max_webhook_bytes if request.endpoint in WEBHOOK_ENDPOINTS
             else settings.max_form_bytes)
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def _too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
    limit = request.max_content_length
    log.warning("refused a %s-byte body on %s (limit %s)", request.content_length or "chunked",
                request.path, limit)
    body = jsonify({"error": f"request body too large (limit {limit} bytes)"})
    body.headers["Connection"] = "close"  # the unread body is not drained
    return body, 413


# Machine callers (the CRMs' and Xero's webhooks, HubSpot's card fetch, health checks) keep
# Werkzeug's plain answers (and the webhooks' empty 401s); people get a page.
MACHINE_BLUEPRINTS = frozenset({"webhooks", "health"})
MACHINE_ENDPOINTS = frozenset({"cards.hubspot_card"})
_ERROR_TITLES = {400: "That request could not be used", 401: "This view has expired",
                 403: "Not allowed", 404: "Not found", 405: "Not available this way",
                 409: "Not possible right now", 429: "Too many requests"}


def _error_page(exc: HTTPException) -> Response | HTTPException:
    """An error a person meets (a page, a form) as a styled page that says what went wrong
    and keeps the status and headers (Allow, Retry-After); never Werkzeug's bare page."""
    if exc.code is None or request.blueprint in MACHINE_BLUEPRINTS \
            or request.endpoint in MACHINE_ENDPOINTS:
        return exc
    code = exc.code
    message = (exc.description or "").rstrip(".")
    message = f"{message[:1].upper()}{message[1:]}." if message else ""
    if code == 401:  # an expired, used or foreign page token; nothing to do but reopen
        message += (" Paydeck's pages open from your CRM and stay open for a limited time: "
                    "reopen the card in HubSpot or Pipedrive to continue.")
    response = exc.get_response()
    page = Response(render_template("message.html", title=_ERROR_TITLES.get(code, exc.name),
                                    message=message, back_url=None), code)
    for name, value in response.headers.items():
        if name.lower() not in {"content-type", "content-length"}:
            page.headers[name] = value
    return page


def _transport_security(response: Response) -> Response:
    """HSTS when Paydeck is served over https (PUBLIC_URL says so): browsers then never
    try plain http for a year, subdomains included."""
    if get_settings().public_url.startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security",
                                    "max-age=31536000; includeSubDomains")
    return response


def _engine_options(settings: Settings) -> dict[str, Any]:
    if settings.sqlalchemy_url.startswith("sqlite"):
        # Several processes (web, worker, cron) share the file: wait on locks, don't fail.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "pool_recycle": 1800}


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL lets readers run beside the one writer; SQLite checks foreign keys only if asked."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _private_database_file(settings: Settings) -> None:
    """The embedded SQLite file holds encrypted tokens and every customer's invoices: mode
    0600, created so before SQLite opens it (SQLite gives its -wal and -shm files the
    database file's permissions)."""
    path = settings.instance_path / "paydeck.db"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)


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
