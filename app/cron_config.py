"""What `rq cron app.cron_config` schedules: the declared list in app.jobs.PERIODIC."""

from rq import cron

from app.jobs import PERIODIC, QUEUE

for periodic in PERIODIC:
    cron.register(periodic.func, QUEUE, cron=periodic.cron, job_timeout=periodic.timeout,
                  name=periodic.name)
