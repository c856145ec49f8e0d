"""Functions run in separate processes by tests (importable by multiprocessing's spawn)."""

from __future__ import annotations

from typing import Any


def fetch_xero_token(settings: dict[str, Any], connection_id: int, barrier: Any, results: Any) -> None:
    """One 'worker process': build the app, wait for the others, then ask for a token."""
    from app.factory import create_app
    from app.models import XeroConnection
    from app.settings import Settings
    from app.tokens import access_token

    app = create_app(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    with app.app_context():
        barrier.wait(timeout=30)
        try:
            results.put(("ok", access_token(XeroConnection, connection_id)))
        except Exception as exc:  # reported to the test, which fails on anything but "ok"
            results.put(("error", f"{exc.__class__.__name__}: {exc}"))
