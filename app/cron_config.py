"""What `rq cron app.cron_config` loads: registers each job of app.schedule.PERIODIC (rq cron
reads its registrations from the import of this module)."""

from rq import cron

from app.queueing import QUEUE
from app.schedule import PERIODIC

for periodic in PERIODIC:
    cron.register(periodic.func, QUEUE, cron=periodic.cron, job_timeout=periodic.timeout,
                  name=periodic.name)
