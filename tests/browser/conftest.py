"""Browser tests: Playwright (Python) driving Debian's chromium through the sandbox that a
newcomer's `make run` starts (`paydeck run` with no credentials configured).

Chromium comes from Debian (`make test` installs it; Playwright's own browser download cannot
work here). Screenshots land in test-artifacts/browser/, one or more per test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it "
                    "(apt-get install chromium), or set CHROMIUM to a Chromium binary")
    return path


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (Paydeck and its sandbox console)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two adjacent free ports")


@dataclass
class RunningSandbox:
    paydeck: str
    console: str
    log: Path


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """`paydeck run` exactly as `make run` calls it on a machine with nothing configured."""
    with run_sandbox(tmp_path_factory.mktemp("sandbox-run")) as running:
        yield running


@contextmanager
def run_sandbox(workdir: Path, extra_env: dict[str, str] | None = None
                ) -> Iterator[RunningSandbox]:
    """`paydeck run` in `workdir` with nothing configured but `extra_env` (settings)."""
    port = _free_port_pair()
    env = {k: v for k, v in os.environ.items()
           if not re.match(r"(DATABASE_URL|REDIS_URL|SECRET_KEY|ENCRYPTION_KEYS|"
                           r"(HUBSPOT|PIPEDRIVE|XERO)_.*)$", k)}
    env["INSTANCE_PATH"] = str(workdir / "instance")
    env.update(extra_env or {})
    log = workdir / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "paydeck"), "run", "--port",
                                 str(port)], cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningSandbox(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}", log)
    try:
        _wait_ready(running, proc)
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_ready(running: RunningSandbox, proc: subprocess.Popen[bytes]) -> None:
    deadline, state = time.monotonic() + 150, {}
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = requests.get(f"{running.console}/ready", timeout=2).json()
        except (requests.RequestException, ValueError):
            state = {}
        if state.get("ready") or state.get("error"):
            break
        time.sleep(0.5)
    if not state.get("ready"):
        output = running.log.read_text(errors="replace")[-6000:]
        pytest.fail(f"the sandbox did not become ready: {state}\n--- paydeck run ---\n{output}")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True,
                                             args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    context.close()


def shot(page: Page, name: str) -> Path:
    """Keep a screenshot of this moment as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
