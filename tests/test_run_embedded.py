"""Smoke: `paydeck run` (what `make run` calls) on a machine with no services configured.

Starts the real thing - embedded redis-server, migrations on a SQLite file, gunicorn, an RQ
worker and the RQ cron scheduler under honcho - and waits until /healthz sees all of it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.smoke


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_starts_web_worker_and_cron_on_embedded_defaults(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENCRYPTION_KEYS")}
    env["INSTANCE_PATH"] = str(tmp_path / "instance")
    paydeck = Path(sys.executable).parent / "paydeck"
    log = (tmp_path / "run.log").open("wb")
    # --no-sandbox: with nothing configured `paydeck run` would start the sandbox (tests/browser).
    proc = subprocess.Popen([str(paydeck), "run", "--no-sandbox", "--port", str(port)],
                            cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    health: dict = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            except requests.RequestException:
                health = {}
            if health.get("status") == "ok":
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)  # as a supervisor would: to `paydeck run` alone
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

    output = (tmp_path / "run.log").read_text(errors="replace")
    assert health.get("status") == "ok", f"healthz: {health}\n--- paydeck run output ---\n{output[-4000:]}"
    assert health["database"] == "ok" and health["redis"] == "ok"
    assert health["workers"]["alive"] >= 1 and health["cron"]["alive"] >= 1
    assert (tmp_path / "instance" / "paydeck.db").exists()
    assert (tmp_path / "instance" / "secrets.json").exists()
    # Stopping `paydeck run` stops everything it started, the embedded Redis last.
    assert not (tmp_path / "instance" / "redis" / "redis.sock").exists()
    assert _processes_mentioning(str(tmp_path)) == []  # worker, cron, redis-server
    with pytest.raises(requests.ConnectionError):  # and the web server
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if text in args:
            found.append(args)
    return found
