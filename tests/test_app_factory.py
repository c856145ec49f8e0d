"""create_app: no I/O at import, one settings object, secrets handled safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.factory import create_app
from app.crypto import ConfigurationError
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_importing_every_module_opens_no_connection(tmp_path):
    """Import with unreachable services configured: any connection at import would fail."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", REDIS_URL="redis://127.0.0.1:9/0")
    code = ("import app, app.factory, app.models, app.jobs, app.worker, app.cron_config, app.launcher, "
            "app.views.install, app.views.xero_connect, app.views.health, xero.identity, "
            "crm_adapters; import os; assert not os.path.exists('instance'), 'import wrote files'")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                   check=True, timeout=60)


def test_sqlalchemy_listeners_are_registered_by_create_app_once_not_at_import(tmp_path):
    """style.md item 12: importing is inert; the listeners are global to SQLAlchemy's classes,
    so a second create_app must not register them again (each would then run twice)."""
    code = f"""
from sqlalchemy import event
from sqlalchemy.engine import Engine
from app import factory
from app.engine.reference import SETTINGS_LISTENERS
from app.settings import Settings
listeners = ((Engine, "connect", factory._sqlite_pragmas), *SETTINGS_LISTENERS)
assert not any(event.contains(*l) for l in listeners), "a listener was registered at import"
seen = []
real = event.listen
ours = {{id(fn) for _, _, fn in listeners}}
event.listen = lambda *a, **k: (seen.append(a) if id(a[2]) in ours else None, real(*a, **k))
for _ in range(2):
    factory.create_app(Settings(_env_file=None, instance_path={str(tmp_path)!r},
                                database_url="", secret_key="", encryption_keys=""))
assert sorted(map(repr, seen)) == sorted(map(repr, listeners)), seen
assert all(event.contains(*l) for l in listeners)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                   check=True, timeout=60)


def test_settings_come_from_the_environment_and_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PUBLIC_URL=https://paydeck.example.com/\nHTTP_TIMEOUT=7\n")
    monkeypatch.setenv("XERO_CLIENT_ID", "from-env")
    monkeypatch.delenv("DATABASE_URL", raising=False)

    settings = Settings()

    assert settings.public_url == "https://paydeck.example.com"
    assert settings.http_timeout == 7.0
    assert settings.xero_client_id == "from-env"
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'instance' / 'paydeck.db'}"


def test_postgres_urls_use_psycopg3():
    settings = Settings(_env_file=None, database_url="postgres://u@h/db")  # type: ignore[call-arg]
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@h/db"


def test_embedded_defaults_generate_keys_once_with_a_warning(tmp_path, caplog):
    settings = Settings(_env_file=None, instance_path=tmp_path, database_url="", secret_key="",  # type: ignore[call-arg]
                        encryption_keys="")

    first = create_app(settings)
    second = create_app(settings)

    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == stored["secret_key"]
    assert "generated keys" in caplog.text


def test_a_real_database_without_keys_refuses_to_start(tmp_path):
    settings = Settings(_env_file=None, instance_path=tmp_path,  # type: ignore[call-arg]
                        database_url="postgresql://u@h/db", secret_key="", encryption_keys="")

    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS"):
        create_app(settings)


def test_bad_encryption_key_is_a_clear_error(tmp_path):
    settings = Settings(_env_file=None, instance_path=tmp_path, secret_key="s" * 32,  # type: ignore[call-arg]
                        encryption_keys="not-a-fernet-key")

    with pytest.raises(ConfigurationError, match="Fernet"):
        create_app(settings)


def test_tokens_survive_key_rotation(app_factory, app):
    """Encrypted with the old key, readable once a new key is put first."""
    from app.extensions import db
    from app.models import CrmKind, Installation
    from tests.conftest import ENCRYPTION_KEY

    db.session.add(Installation(crm=CrmKind.HUBSPOT, account_id="1", access_token="secret-a"))
    db.session.commit()
    rotated = app_factory.create(encryption_keys=f"{Fernet.generate_key().decode()},{ENCRYPTION_KEY}")

    with rotated.app_context():
        assert db.session.scalars(db.select(Installation)).one().access_token == "secret-a"


def test_embedded_files_are_private(tmp_path):
    """Issue #12: the embedded database, its WAL, the Redis socket and data, and the secrets
    file are the user's alone (0600; directories 0700)."""
    import stat

    import redis as redis_lib
    from sqlalchemy import text

    from app.extensions import db
    from app.redis_conn import EmbeddedRedis

    settings = Settings(_env_file=None, instance_path=tmp_path, database_url="",  # type: ignore[call-arg]
                        secret_key="", encryption_keys="")
    app = create_app(settings)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        files = [tmp_path / "paydeck.db", tmp_path / "paydeck.db-wal", tmp_path / "secrets.json"]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        db.engine.dispose()
    assert modes == {"paydeck.db": 0o600, "paydeck.db-wal": 0o600, "secrets.json": 0o600}

    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        redis_lib.Redis.from_url(url).set("k", "v")
        socket_mode = stat.S_IMODE((tmp_path / "redis" / "redis.sock").stat().st_mode)
        data_modes = {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "redis").rglob("*")
                      if p.is_file()}
    finally:
        server.stop()
    assert socket_mode == 0o600
    assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
    assert data_modes and all(mode & 0o077 == 0 for mode in data_modes)


def test_rotate_keys_re_encrypts_every_secret_so_the_old_key_can_go(app_factory, app, monkeypatch):
    """Issue #12: `paydeck rotate-keys` rewrites every stored secret under the first key."""
    from app.extensions import db
    from app.launcher import main
    from app.models import ConnectionStatus, CrmKind, Installation, XeroConnection
    from tests.conftest import ENCRYPTION_KEY

    installation = Installation(crm=CrmKind.PIPEDRIVE, account_id="1", access_token="tok-a",
                                refresh_token="ref-a", webhook_password="hook-a")
    db.session.add(installation)
    db.session.flush()
    db.session.add(XeroConnection(installation_id=installation.id, tenant_id="t",
                                  status=ConnectionStatus.CONNECTED, access_token="xero-a",
                                  refresh_token="xero-r"))
    db.session.commit()
    new_key = Fernet.generate_key().decode()
    settings = app_factory.settings(encryption_keys=f"{new_key},{ENCRYPTION_KEY}")

    monkeypatch.setattr("app.launcher.Settings", lambda: settings)  # as read from the env

    assert main(["rotate-keys"]) == 0

    only_new = app_factory.create(encryption_keys=new_key)
    with only_new.app_context():
        stored = db.session.scalars(db.select(Installation)).one()
        connection = db.session.scalars(db.select(XeroConnection)).one()
        assert (stored.access_token, stored.refresh_token, stored.webhook_password) \
            == ("tok-a", "ref-a", "hook-a")
        assert (connection.access_token, connection.refresh_token) == ("xero-a", "xero-r")
