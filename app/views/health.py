"""/healthz: database, Redis, and whether workers and the cron scheduler are alive."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response, jsonify, redirect, url_for
from redis.exceptions import RedisError
from rq import Worker
from rq.cron import CronScheduler
from rq.defaults import DEFAULT_CRON_SCHEDULER_TTL, DEFAULT_WORKER_TTL
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.redis_conn import get_redis

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

# An idle RQ worker beats once per blocking dequeue (worker_ttl - 15 s); the cron scheduler
# refreshes its registration within its 120 s TTL. Older than these, the process is gone.
WORKER_FRESH = timedelta(seconds=DEFAULT_WORKER_TTL + 30)
CRON_FRESH = timedelta(seconds=DEFAULT_CRON_SCHEDULER_TTL + 30)


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico on their own (the pages link favicon.svg): no 404s."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    checks: dict[str, object] = {"database": _database(), "redis": _redis()}
    if checks["redis"] == "ok":
        checks["workers"] = _workers()
        checks["cron"] = _cron()
    healthy = checks["database"] == "ok" and checks["redis"] == "ok"
    degraded = healthy and (checks["workers"]["alive"] == 0 or checks["cron"]["alive"] == 0)  # type: ignore[index]
    checks["status"] = "degraded" if degraded else "ok" if healthy else "down"
    return jsonify(checks), 200 if healthy else 503


def _database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as exc:
        log.error("healthz: database: %s", exc)
        db.session.rollback()
        return f"error: {exc.__class__.__name__}"


def _redis() -> str:
    try:
        get_redis().ping()
        return "ok"
    except RedisError as exc:
        log.error("healthz: redis: %s", exc)
        return f"error: {exc.__class__.__name__}"


def _fresh(beat: datetime | None, window: timedelta) -> bool:
    if beat is None:
        return False
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - beat < window


def _workers() -> dict[str, object]:
    workers = Worker.all(connection=get_redis())
    beats = [w.last_heartbeat for w in workers]
    alive = [b for b in beats if _fresh(b, WORKER_FRESH)]
    return {"alive": len(alive), "registered": len(workers),
            "last_heartbeat": max(alive).isoformat() if alive else None}


def _cron() -> dict[str, object]:
    schedulers = CronScheduler.all(connection=get_redis())
    alive = [s for s in schedulers if _fresh(s.last_heartbeat, CRON_FRESH)]
    return {"alive": len(alive), "registered": len(schedulers)}
