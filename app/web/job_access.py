"""Which jobs the caller may see: those of the targets they may see (role `none` hides a target, jobs included).

Whose a job is comes from the console store's record (`JobRun.target`); the RQ job's meta is
read for that only when there is no record, because anyone who can write to Redis can write
a job's meta. A job the caller may not see answers exactly as an unknown id does.
"""

from __future__ import annotations

from app import services
from app.jobs import history
from app.jobs.queue import job_status
from app.store.models import JobRun
from app.web.access import visible_targets

LONGEST_ID = 64  # job ids are 32 hex digits; anything much longer is not worth a query


def seen() -> history.Seen:
    """The targets the signed-in caller may see, to filter job records by."""
    return history.Seen.of([t.name for t in visible_targets()], services.console_settings().default_target)


def visible_job(job_id: str) -> tuple[dict | None, JobRun | None]:
    """The job as RQ shows it and its record (either may be None); both None when the caller may not see it."""
    run = history.find(job_id) if len(job_id) <= LONGEST_ID else None
    if run is not None and not seen().covers(run.target):
        return None, None  # decided before Redis is read: the record's target cannot be rewritten there
    job = job_status(services.redis(), job_id)
    if run is None and job is not None and not seen().covers(job["target"]):
        return None, None
    return job, run
