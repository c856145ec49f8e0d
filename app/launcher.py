"""`paydeck run`: web app, RQ worker and RQ cron scheduler together (what `make run` calls).

With no REDIS_URL it starts an embedded redis-server under instance/ first; with no
DATABASE_URL the app uses a SQLite file there. Migrations run before anything starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import flask_migrate

from app import create_app
from app.redis_conn import EmbeddedRedis
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("paydeck")


def upgrade_database(settings: Settings) -> None:
    app = create_app(settings)
    with app.app_context():
        flask_migrate.upgrade()


def run(settings: Settings, port: int) -> int:
    env = dict(os.environ)
    env["INSTANCE_PATH"] = str(settings.instance_path.resolve())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PORT"] = str(port)
    embedded: EmbeddedRedis | None = None
    if settings.uses_embedded_redis:
        embedded = EmbeddedRedis(settings.instance_path / "redis")
        env["REDIS_URL"] = embedded.start()
        log.warning("REDIS_URL not set: embedded Redis at %s", env["REDIS_URL"])
        settings = settings.model_copy(update={"redis_url": env["REDIS_URL"]})
    if settings.uses_embedded_database:
        log.warning("DATABASE_URL not set: SQLite at %s", settings.sqlalchemy_url)
    try:
        upgrade_database(settings)
        return _supervise_honcho(port, env)
    finally:
        if embedded is not None:
            embedded.stop()


def _supervise_honcho(port: int, env: dict[str, str]) -> int:
    """Run honcho; on Ctrl-C or SIGTERM stop it (and so every process) before returning."""
    honcho = Path(sys.executable).parent / "honcho"
    # honcho numbers ports from -p per process type: web gets `port`.
    proc = subprocess.Popen([str(honcho), "start", "-f", str(ROOT / "Procfile"),
                             "-d", str(ROOT), "-p", str(port)], env=env)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # honcho stops its processes on SIGINT
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="paydeck")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="web + worker + cron on this machine")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    sub.add_parser("migrate", help="upgrade the database to the newest migration")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate":
        upgrade_database(settings)
        return 0
    return run(settings, args.port)


if __name__ == "__main__":
    sys.exit(main())
