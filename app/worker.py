"""RQ workers that run every job inside a Paydeck app context.

`rq worker --worker-class app.worker.PaydeckWorker` builds the app once from the environment.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from rq import SimpleWorker, Worker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue

from app.presence import hold, job_name
from app.extensions import db
from app.factory import create_app


class _AppContextMixin:
    app: Flask

    def _init_app(self, app: Flask | None) -> None:
        if app is None:
            app = create_app()
        self.app = app

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        with self.app.app_context():
            if getattr(self, "_is_horse", False):
                # A forked work horse must not share the parent's pooled DB connections.
                for engine in db.engines.values():
                    engine.dispose(close=False)
            # Present while performing it: enqueue_once tells a job whose process was killed
            # from one still running (app.presence), even if only the parent worker died.
            with hold(self.connection, job_name(job.id)):  # type: ignore[attr-defined]
                return super().perform_job(job, queue, execution)  # type: ignore[misc]


class PaydeckWorker(_AppContextMixin, Worker):
    """Forks a work horse per job (RQ's default), each job in an app context."""

    def __init__(self, *args: Any, app: Flask | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_app(app)


class PaydeckSimpleWorker(_AppContextMixin, SimpleWorker):
    """Runs jobs in-process: for tests and benchmarks that drive a worker directly."""

    def __init__(self, *args: Any, app: Flask | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_app(app)
