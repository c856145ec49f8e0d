"""Migrations: one head, upgrade from empty to the models' schema, and back down."""

from __future__ import annotations

import os
import uuid

import flask_migrate
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from app.factory import MIGRATIONS_DIR, create_app
from app.extensions import db
from app.settings import normalise_database_url
from tests.conftest import make_settings


def test_there_is_one_head():
    assert len(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()) == 1


def _postgres_url():
    url = normalise_database_url(os.environ.get("DATABASE_URL", ""))
    return url if url.startswith("postgresql") else None


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    base = _postgres_url()
    if base is None:
        pytest.skip("DATABASE_URL does not name a PostgreSQL server (CI sets it)")
    name = f"paydeck_mig_{uuid.uuid4().hex[:8]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_from_empty_matches_the_models_and_downgrades(empty_database, redis_url, tmp_path):
    app = create_app(make_settings(tmp_path, empty_database, redis_url))
    with app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert {"installation", "xero_connection", "invoice_link", "review_item",
                "audit_event", "webhook_receipt", "sync_cursor"} <= set(inspect(db.engine).get_table_names())

        flask_migrate.downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_running_migrations_leaves_paydecks_loggers_working(app_factory):
    """migrations/env.py's fileConfig() used to disable every logger that already existed,
    so `paydeck run` never printed "Sandbox ready: open ..." after migrating."""
    import logging

    import flask_migrate

    paydeck, app_logger = logging.getLogger("paydeck"), logging.getLogger("app")
    with app_factory.create().app_context():
        flask_migrate.upgrade()
    assert not paydeck.disabled and not app_logger.disabled
