"""Issue #12: tokens in URLs never reach the access log (55 did in one sandbox run)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.glogging import Logger

ROOT = Path(__file__).resolve().parents[1]
SECRET_QUERY = "token=eyJhbGciOiJIUzI1NiJ9.secret-view-token&code=oauth-code-123"


def _access_line(tmp_path: Path) -> str:
    """The line gunicorn's own logger writes for a request, with Paydeck's config file."""
    cfg = Config()
    namespace: dict[str, object] = {}
    exec((ROOT / "app" / "gunicorn_conf.py").read_text(), namespace)
    for name in ("accesslog", "access_log_format"):
        cfg.set(name, namespace[name])
    cfg.set("accesslog", str(tmp_path / "access.log"))
    logger = Logger(cfg)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/ui/deal/7?{SECRET_QUERY}",
               "PATH_INFO": "/ui/deal/7", "QUERY_STRING": SECRET_QUERY,
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_REFERER": f"https://app.hubspot.com/x?{SECRET_QUERY}",
               "HTTP_USER_AGENT": "test"}
    response = SimpleNamespace(status="200 OK", response_length=10, sent=10, headers=[])
    request = SimpleNamespace(headers=[], method="GET", path="/ui/deal/7",
                              query=SECRET_QUERY, uri=f"/ui/deal/7?{SECRET_QUERY}",
                              version=(1, 1))
    logger.access(response, request, environ, timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    return (tmp_path / "access.log").read_text()


def test_the_access_log_has_the_path_but_no_query_or_referer(tmp_path: Path) -> None:
    line = _access_line(tmp_path)

    assert '"GET /ui/deal/7 HTTP/1.1" 200' in line
    assert "secret-view-token" not in line and "oauth-code-123" not in line
    assert "hubspot.com" not in line


def test_the_procfile_uses_that_config() -> None:
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines()
               if line.startswith("web:"))
    assert "-c python:app.gunicorn_conf" in web and "--access-logformat" not in web
