"""Which jobs the caller may see: those of the targets they may see (role `none` hides a target, jobs included).

Whose a job is comes from the console store's record (`JobRun.target`); the RQ job's meta is
read for that only when there is no record, because anyone who can write to Redis can write
a job's meta. A job the caller may not see answers exactly as an unknown id does.

What they may do with one they see: read its tool's log (operators and admins), and stop it
(operators backups and verifies, admins restores too; `operations.request_stop` decides again).
"""

from __future__ import annotations

from app import services
from app.config import ROLES
from app.jobs import history
from app.jobs.queue import job_status
from app.jobs.stopping import may_stop
from app.operations import STOP_ROLE
from app.store.models import JobRun
from app.web.access import acting_role, visible_targets

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
    if job is not None and run is not None and run.status == "stopped":  # the record, not Redis, says who
        job = {**job, "status": "stopped", "stopped_by": history.stopper(run), "error": None}
    return job, run


def _has_role_on(target: str | None, role: str) -> bool:
    acting = acting_role(target)
    return acting in ROLES and ROLES.index(acting) >= ROLES.index(role)


def may_read_log(job: dict, run: JobRun | None) -> bool:
    """Operators and admins read the tool's log; viewers do not."""
    return _has_role_on(run.target if run else job.get("target"), "operator")


def may_stop_now(job: dict, run: JobRun | None) -> bool:
    """Whether the page offers Stop: a job with its record, running or queued, in a phase it may stop in,
    to someone with the role its kind needs."""
    if run is None or run.status not in ("queued", "started") or job["status"] not in ("queued", "started"):
        return False
    return may_stop(run.kind, job["progress"]["phase"]) and _has_role_on(run.target, STOP_ROLE.get(run.kind, "admin"))


def shown(job: dict, run: JobRun | None) -> dict:
    """The job's JSON as this caller may see it: without the tool's log for a viewer."""
    return job if may_read_log(job, run) else {**job, "log": []}
