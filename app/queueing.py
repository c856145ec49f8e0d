"""The RQ queue and `enqueue_once`: deterministic job ids, no duplicates, abandoned jobs
replaced at once. A leaf: it knows no job (the engine, payments and the upkeep jobs import it).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from collections.abc import Iterable, Sequence
from typing import Any, Callable

from rq import Queue
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from app.presence import job_name, present, worker_alive
from app.redis_conn import get_redis

log = logging.getLogger(__name__)

QUEUE = "default"


def queue() -> Queue:
    """Paydeck's one RQ queue, on the app's Redis."""
    return Queue(QUEUE, connection=get_redis())


def enqueue_once(func: Callable[..., Any], *args: Any, job_id: str, delay: float | None = None,
                 follow_up: bool = False, **options: Any) -> Job | None:
    """Enqueue unless a job with this id is already waiting.

    Finished jobs are not kept (result_ttl=0); a failed or stopped one with the id is replaced,
    and so is one a killed worker left behind (see `_abandoned`): at once, not after RQ's own
    cleanup (an abandoned job's heartbeat lapses after 90 s and the registries are cleaned
    every 10 minutes: rq/defaults.py, rq/worker/base.py `get_heartbeat_ttl`). A waiting
    scheduled job is brought forward if this call wants it sooner. If the job is running and
    `follow_up`, one follow-up job (id + "-next") is queued, so work that arrived while it
    ran is not left behind.
    """
    q = queue()
    for _attempt in range(3):
        try:
            if delay:
                return q.enqueue_in(timedelta(seconds=delay), func, *args, job_id=job_id,
                                    unique=True, result_ttl=0, **options)
            return q.enqueue(func, *args, job_id=job_id, unique=True, result_ttl=0, **options)
        except DuplicateJobError:
            state = _existing_job(q, job_id, delay)
        if state == "running" and follow_up:
            return enqueue_once(func, *args, job_id=f"{job_id}-next", delay=delay, **options)
        if state in ("waiting", "running"):
            return None
    return None


def noted_ids(key: str) -> list[str]:
    """The ids noted in the Redis set `key`, as text."""
    return [i.decode() if isinstance(i, bytes) else i for i in get_redis().smembers(key)]


def note_and_wake(key: str, ids: Iterable[str], targets: Sequence[int],
                  wake: Callable[[int], None]) -> int:
    """Remember changed ids in the Redis set `key` (the job reads it, and removes what it has
    handled) and wake the job of each target; returns the jobs woken. With no target, or no
    id, nothing is noted."""
    members = list(ids)
    if not targets or not members:
        return 0
    get_redis().sadd(key, *members)
    for target in targets:
        wake(target)
    return len(targets)


def _existing_job(q: Queue, job_id: str, delay: float | None) -> str:
    """What holds `job_id` now: "waiting", "running", or "gone" (deleted or replaced here:
    enqueue again)."""
    try:
        job = Job.fetch(job_id, connection=q.connection)
        status = job.get_status()
    except (NoSuchJobError, InvalidJobOperation):
        return "gone"  # it finished (and, with result_ttl=0, vanished) between our calls
    if status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        job.delete()
        return "gone"
    if _abandoned(q, job, status):
        return "gone" if _replace(q, job) else "waiting"
    if status == JobStatus.SCHEDULED:
        # Bring it forward, never back (ZADD XX LT: only if still scheduled, only if sooner).
        when = int(time.time() + (delay or 0))
        q.connection.zadd(q.scheduled_job_registry.key, {job_id: when}, xx=True, lt=True)
    return "running" if status == JobStatus.STARTED else "waiting"


def _abandoned(q: Queue, job: Job, status: JobStatus) -> bool:
    """True if no process will ever run or finish this job: it is in no queue or registry, or
    the worker that took it is gone. Being wrong costs little: the run itself takes the
    installation's lock, so a replaced job that was in fact alive cannot run twice at once."""
    redis = q.connection
    if status == JobStatus.QUEUED:
        if redis.lpos(q.key, job.id) is not None:
            return False
        if redis.lpos(q.intermediate_queue_key, job.id) is None:
            # In no queue: nothing will ever dequeue it - unless a worker took it and started
            # it while we looked (RQ sets STARTED and leaves the intermediate list atomically).
            return _still(job, status)
        return not _being_run(redis, job, unknown=True)  # dequeued by a worker: is it alive?
    if status == JobStatus.SCHEDULED:
        return redis.zscore(q.scheduled_job_registry.key, job.id) is None and _still(job, status)
    if status == JobStatus.STARTED:
        return not _being_run(redis, job, unknown=False)
    return False


def _still(job: Job, status: JobStatus) -> bool:
    try:
        return job.get_status(refresh=True) == status
    except (NoSuchJobError, InvalidJobOperation):
        return True  # finished and gone meanwhile: deleting it again is harmless, enqueue anew


def _being_run(redis: Any, job: Job, *, unknown: bool) -> bool:
    """Is a live process performing (or about to perform) `job`? `unknown` answers when no
    worker has put its name on the job yet (between RQ's dequeue and its execution record)."""
    if present(redis, job_name(job.id)):
        return True  # a Paydeck work horse holds it (even one whose parent worker died)
    workers = {job.worker_name or ""} | {e.worker_name for e in job.get_executions()}
    workers.discard("")
    if not workers:
        return unknown
    return any(worker_alive(redis, name) for name in workers)


def _replace(q: Queue, job: Job) -> bool:
    """Delete an abandoned job so its id can be enqueued again; False if another process is
    replacing it right now (its new job will do)."""
    guard = f"paydeck:job-replace:{job.id}"
    if not q.connection.set(guard, "1", nx=True, ex=10):
        return False
    try:
        log.warning("job %s was abandoned (status %s, worker %s): replacing it", job.id,
                    job.get_status(refresh=False), job.worker_name or "none")
        job.delete()
        # RQ's intermediate-queue cleanup would otherwise fail the new job of the same id.
        q.connection.lrem(q.intermediate_queue_key, 0, job.id)
    finally:
        q.connection.delete(guard)
    return True
