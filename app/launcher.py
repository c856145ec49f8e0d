"""`paydeck run`: web app, RQ worker and RQ cron scheduler together (what `make run` calls).

With no REDIS_URL it starts an embedded redis-server under instance/ first; with no
DATABASE_URL the app uses a SQLite file there. Migrations run before anything starts.

With no CRM or Xero credentials configured it runs the sandbox instead: the fake HubSpot,
Pipedrive and Xero (sandbox/), Paydeck installed into them with demo deals, and the console
on the next port (sandbox/console.py). The sandbox keeps its state in instance/sandbox/,
which starts empty on every run (the fakes forget everything when they stop).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import requests

import flask_migrate

from app.factory import create_app
from app.redis_conn import EmbeddedRedis
from app.settings import Settings

if TYPE_CHECKING:
    from sandbox.console import Console
    from sandbox.demo import Sandbox

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("paydeck")


def upgrade_database(settings: Settings) -> None:
    app = create_app(settings)
    with app.app_context():
        flask_migrate.upgrade()


def has_credentials(settings: Settings) -> bool:
    return bool(settings.hubspot_client_id or settings.pipedrive_client_id or settings.xero_client_id)


def run(settings: Settings, port: int, sandbox: bool | None = None,
        console_port: int | None = None) -> int:
    """Run Paydeck; the sandbox when asked, or by default when no credentials are set."""
    if sandbox is None:
        sandbox = not has_credentials(settings)
    if sandbox:
        return run_sandbox(settings, port, console_port or port + 1)
    return _run(settings, port, {})


def _run(settings: Settings, port: int, extra_env: dict[str, str],
         on_ready: Callable[[Settings], None] | None = None) -> int:
    env = dict(os.environ)
    env.update(extra_env)
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
        if on_ready is not None:
            threading.Thread(target=on_ready, args=(settings,), name="sandbox-setup",
                             daemon=True).start()
        return _supervise_honcho(port, env)
    finally:
        if embedded is not None:
            embedded.stop()


def run_sandbox(settings: Settings, port: int, console_port: int) -> int:
    """The fakes, Paydeck configured for them, and the console that drives them."""
    from werkzeug.serving import make_server

    from sandbox.console import Console, create_console
    from sandbox.demo import Sandbox

    instance = settings.instance_path.resolve() / "sandbox"
    shutil.rmtree(instance, ignore_errors=True)
    instance.mkdir(parents=True)
    paydeck_url = f"http://127.0.0.1:{port}"
    console_url = f"http://127.0.0.1:{console_port}"
    demo = Sandbox(paydeck_url, console_url=console_url).start()
    console = Console(demo)
    server = make_server("127.0.0.1", console_port, create_console(console), threaded=True)
    threading.Thread(target=server.serve_forever, name="sandbox-console", daemon=True).start()
    overrides: dict[str, object] = {
        **demo.settings(), "database_url": "", "redis_url": "", "sandbox_url": console_url,
        # The console's mock CRM pages frame Paydeck's pages, as HubSpot and Pipedrive do.
        "frame_ancestors": f"{console_url} http://localhost:{console_port}",
    }
    env = {name.upper(): str(value) for name, value in overrides.items()}
    log.warning("No CRM or Xero credentials set: running the sandbox. Open %s", console_url)
    if settings.database_url or settings.redis_url:
        log.warning("The sandbox leaves DATABASE_URL and REDIS_URL alone: its state lives in %s",
                    instance)
    try:
        return _run(settings.model_copy(update={**overrides, "instance_path": instance}), port,
                    env, on_ready=lambda s: _set_up_sandbox(demo, console, s, console_url))
    finally:
        server.shutdown()
        demo.stop()


def _set_up_sandbox(demo: Sandbox, console: Console, settings: Settings, console_url: str) -> None:
    """Once Paydeck answers: install it into the fakes, choose the demo rules, seed deals."""
    from sandbox.demo import configure_rules

    try:
        _wait_healthy(demo.paydeck_url, timeout=120)
        demo.install()
        demo.wait_for_webhooks()
        with create_app(settings).app_context():
            configure_rules(demo)
        demo.seed()
    except Exception as exc:  # shown on the console's start page and logged; nothing retries
        log.exception("the sandbox could not set itself up")
        console.error = f"{exc.__class__.__name__}: {exc}"
        return
    console.ready = True
    log.warning("Sandbox ready: open %s", console_url)


def _wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Paydeck at {url} was not healthy after {timeout:.0f} s")
        time.sleep(0.5)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).json().get("status") == "ok"
    except (requests.RequestException, ValueError):
        return False  # not listening yet


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


def rotate_keys(settings: Settings) -> int:
    """`paydeck rotate-keys`: every stored secret re-encrypted under the first key."""
    from app.crypto import EXTENSION_KEY, rotate_stored_secrets
    from app.extensions import db

    app = create_app(settings)
    with app.app_context():
        count = rotate_stored_secrets(db.engine, db.metadata, app.extensions[EXTENSION_KEY])
    log.warning("re-encrypted %d stored secrets under the first key of ENCRYPTION_KEYS; "
                "the other keys can now be removed", count)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="paydeck")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="web + worker + cron on this machine")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    run_parser.add_argument("--sandbox", action=argparse.BooleanOptionalAction, default=None,
                            help="fake HubSpot, Pipedrive and Xero with demo data (default: "
                                 "when no CRM or Xero credentials are set)")
    run_parser.add_argument("--console-port", type=int, default=None,
                            help="the sandbox console's port (default: --port + 1)")
    sub.add_parser("migrate", help="upgrade the database to the newest migration")
    sub.add_parser("rotate-keys", help="re-encrypt every stored secret under the first key of "
                                       "ENCRYPTION_KEYS (then the old keys can be removed)")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "migrate":
        upgrade_database(settings)
        return 0
    if args.command == "rotate-keys":
        return rotate_keys(settings)
    return run(settings, args.port, args.sandbox, args.console_port)


if __name__ == "__main__":
    sys.exit(main())
