"""Shared fixtures.

Backends: with DATABASE_URL (PostgreSQL) and REDIS_URL set, the suite uses those servers -
in a throwaway database it creates and drops, and Redis logical db TEST_REDIS_DB (default 15),
which it flushes. With neither set it runs on the embedded defaults: a SQLite file and an
embedded redis-server, exactly as `make run` does on a fresh laptop.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import flask_migrate
import psycopg
import pytest
import redis as redis_lib
import requests
from cryptography.fernet import Fernet
from flask import Flask

from app.factory import create_app
from app.extensions import db
from app.redis_conn import EmbeddedRedis
from app.settings import PIPEDRIVE_SCOPES, Settings, normalise_database_url
from sandbox.demo import vendor_settings
from sandbox.hubspot import FakeHubSpot
from sandbox.pipedrive import FakePipedrive
from sandbox.kit.server import LoopbackServer
from sandbox.xero import FakeXero

ENCRYPTION_KEY = Fernet.generate_key().decode()
XERO_WEBHOOK_KEY = "xero-webhook-key-for-tests"


# --- backends -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL", "")
    if not configured:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'paydeck-test.db'}"
        return
    url = normalise_database_url(configured)
    if not url.startswith("postgresql"):
        pytest.exit(f"tests support PostgreSQL or the SQLite default, not {url.split(':')[0]}")
    name = f"paydeck_test_{uuid.uuid4().hex[:10]}"
    admin = _libpq_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL", "")
    if configured:
        parts = urlsplit(configured)
        yield urlunsplit(parts._replace(path=f"/{os.environ.get('TEST_REDIS_DB', '15')}"))
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def migrated_database(database_url: str, redis_url: str,
                      tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database, upgraded from empty by the real migrations (once per session)."""
    settings = make_settings(tmp_path_factory.mktemp("instance"), database_url, redis_url)
    app = create_app(settings)
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    return database_url


def make_settings(instance: Path, database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "instance_path": instance,
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": "test-secret-key-of-at-least-32-bytes-long",
        "encryption_keys": ENCRYPTION_KEY,
        "public_url": "http://paydeck.invalid",
        "http_timeout": 5.0,
        "hubspot_client_id": "", "hubspot_client_secret": "",
        "pipedrive_client_id": "", "pipedrive_client_secret": "",
        "xero_client_id": "", "xero_client_secret": "",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --- fakes ----------------------------------------------------------------------------------

@pytest.fixture
def fake_xero() -> Iterator[tuple[FakeXero, str]]:
    fake = FakeXero()
    with LoopbackServer(fake) as server:
        yield fake, server.url


@pytest.fixture
def fake_hubspot() -> Iterator[tuple[FakeHubSpot, str]]:
    fake = FakeHubSpot()
    with LoopbackServer(fake) as server:
        yield fake, server.url


@pytest.fixture
def fake_pipedrive() -> Iterator[tuple[FakePipedrive, str]]:
    # Pipedrive grants the scopes set in the app's Developer Hub page: Paydeck's.
    fake = FakePipedrive(scopes=tuple(PIPEDRIVE_SCOPES.split()))
    with LoopbackServer(fake) as server:
        yield fake, server.url


def fake_settings(xero: tuple[FakeXero, str] | None = None,
                  hubspot: tuple[FakeHubSpot, str] | None = None,
                  pipedrive: tuple[FakePipedrive, str] | None = None) -> dict[str, Any]:
    """Settings that point Paydeck's configurable base URLs at the fakes."""
    return vendor_settings(xero=xero, hubspot=hubspot, pipedrive=pipedrive,
                           xero_webhook_key=XERO_WEBHOOK_KEY)


# --- the app --------------------------------------------------------------------------------

class AppFactory:
    """Builds the app under test; `serve()` also runs it on loopback (a real HTTP server)."""

    def __init__(self, tmp_path: Path, database_url: str, redis_url: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.redis_url = redis_url
        self.servers: list[LoopbackServer] = []
        self.apps: list[Flask] = []

    def settings(self, **overrides: Any) -> Settings:
        values = {"database_url": self.database_url, "redis_url": self.redis_url, **overrides}
        return make_settings(self.tmp_path / "instance", **values)

    def create(self, **overrides: Any) -> Flask:
        app = create_app(self.settings(**overrides))
        self.apps.append(app)
        return app

    def serve(self, **overrides: Any) -> tuple[Flask, str]:
        """Start Paydeck on a loopback port; its public_url is that port."""
        holder: dict[str, Flask] = {}

        def late_bound(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            return holder["app"](environ, start_response)

        server = LoopbackServer(late_bound).start()
        self.servers.append(server)
        holder["app"] = self.create(public_url=server.url, **overrides)
        return holder["app"], server.url

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        # Each app has its own engine and pool: closed here, not whenever the garbage
        # collector gets to it (on PostgreSQL, leaked pools run into max_connections).
        for app in self.apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def app_factory(tmp_path: Path, migrated_database: str, redis_url: str) -> Iterator[AppFactory]:
    factory = AppFactory(tmp_path, migrated_database, redis_url)
    yield factory
    factory.close()
    _reset_state(factory)


def _reset_state(factory: AppFactory) -> None:
    """Empty every table and the test Redis db, so each test starts from nothing."""
    app = factory.create()
    with app.app_context():
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        db.engine.dispose()
    redis_lib.Redis.from_url(factory.redis_url).flushdb()


@pytest.fixture
def app(app_factory: AppFactory) -> Iterator[Flask]:
    flask_app = app_factory.create()
    with flask_app.app_context():
        yield flask_app
        db.session.remove()
        db.engine.dispose()


class Browser(requests.Session):
    """A person's browser: keeps cookies, follows redirects, never waits forever."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", 10)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser() as session:
        yield session


@pytest.fixture
def xero_connected(app_factory: AppFactory, fake_hubspot: tuple[FakeHubSpot, str],
                   fake_xero: tuple[FakeXero, str], browser: Browser) -> tuple[Flask, str, int]:
    """Installed into the fake HubSpot and connected to one fake Xero organisation."""
    fake_xero[0].add_tenant("Acme Pty Ltd")
    app, url = app_factory.serve(**fake_settings(hubspot=fake_hubspot, xero=fake_xero))
    assert browser.get(f"{url}/install/hubspot").status_code == 200
    assert browser.get(f"{url}/connect/xero").status_code == 200
    from app.models import XeroConnection

    with app.app_context():
        connection_id = db.session.scalars(db.select(XeroConnection.id)).one()
    return app, url, connection_id
