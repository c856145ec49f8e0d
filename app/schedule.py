"""The periodic jobs: the one place that names them all. `rq cron app.cron_config` registers
them; nothing below this module knows it exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.contact_sync.safety_net import poll_contact_sync
from app.engine.job import sweep_waiting_requests
from app.jobs import keep_xero_connections_alive, prune_history
from app.followup import alert_admins, overdue_sweep
from app.payments import poll_due_connections


@dataclass(frozen=True)
class Periodic:
    """A job the RQ cron scheduler enqueues."""

    func: Callable[..., Any]
    cron: str
    timeout: int
    name: str


PERIODIC: list[Periodic] = [
    Periodic(keep_xero_connections_alive, cron="17 3 * * *", timeout=900, name="xero-keepalive"),
    Periodic(sweep_waiting_requests, cron="* * * * *", timeout=120, name="invoice-sweep"),
    # Starts each connection's poll when XERO_POLL_MINUTES have passed since its last one.
    Periodic(poll_due_connections, cron="* * * * *", timeout=120, name="xero-poll"),
    # Contact sync's safety nets: each side's pass CONTACT_POLL_MINUTES after its last one.
    Periodic(poll_contact_sync, cron="* * * * *", timeout=120, name="contact-net"),
    Periodic(overdue_sweep, cron="7 8 * * *", timeout=1800, name="overdue-sweep"),
    Periodic(alert_admins, cron="*/5 * * * *", timeout=300, name="admin-alerts"),
    Periodic(prune_history, cron="41 4 * * *", timeout=1800, name="prune-history"),
]
