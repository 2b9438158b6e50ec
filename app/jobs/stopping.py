"""Stopping a job someone asked to stop: a doorbell in Redis that the running job's watch answers.

RQ's own `send_stop_job_command` kills the work horse outright: a killed horse cannot abort its
upload or drop its scratch database. So the web rings a doorbell instead (`StopRequest`, a key of
its own: the job rewrites its whole `meta` as it progresses, and would wipe a flag kept there), and
the job's `ProgressWatch` (app/jobs/watch.py), which already stops a silent job from its alarm, sees
it within a second and raises `Stopped` in the job's main thread. `Stopped` unwinds through every
clean-up the job has for a failure (pg_dump or pg_restore ended, upload aborted, scratch dropped),
then `on_failure` records the job as stopped, not failed.

A job stops only while it may (`may_stop`): a backup until its file is complete, a restore until
its swap begins (after that it cannot be stopped: the live database is being replaced), a verify
until its report is written. The job itself checks this at the moment it would stop, in its main
thread, so a stop that arrives as the swap begins is ignored rather than half-done.

Redis is writable by outsiders in the threat model: a forged doorbell can at most stop a job
(the same as someone with the right role pressing Stop). It never chooses what is restored, kept
or deleted, and the name the job page gives ("Stopped by …") is read from the console store's
audit log, never from Redis.
"""

from __future__ import annotations

from redis import Redis

from app.extensions import db
from app.store.models import AuditEvent

# Phases in which each kind of job may still be stopped (as app/jobs/tasks.py names them).
STOPPABLE = {
    "backup": ("queued", "preparing", "dumping"),
    "restore": ("queued", "checking", "downloading", "verifying", "restoring"),
    "verify": ("queued", "checking", "downloading", "verifying", "restoring", "counting"),
}
SWAP_BEGUN = "the swap has begun; a restore cannot be stopped after that"
UNKNOWN_STOPPER = "someone outside the console"  # a doorbell rung in Redis with no request in the console store


class Stopped(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """Someone asked the job to stop. A BaseException, so that no `except Exception` on the way swallows it."""

    def __init__(self, by: str):
        super().__init__(f"stopped by {by}")
        self.by = by


def may_stop(kind: str, phase: str) -> bool:
    """Whether a job of `kind` in `phase` may still be stopped."""
    return phase in STOPPABLE.get(kind, ())


def why_not_stoppable(kind: str, phase: str) -> str:
    """What a person reads when a running job can no longer be stopped."""
    if kind == "restore":
        return SWAP_BEGUN
    if kind == "backup":
        return "the backup is complete and being recorded; it can no longer be stopped"
    return f"the {kind} is finishing; it can no longer be stopped"


class StopRequest:
    """The doorbell of one job: who asked it to stop, kept in Redis until the job could have ended."""

    def __init__(self, redis: Redis, namespace: str, job_id: str):
        self.redis = redis
        self.key = f"{namespace}:job:{job_id}:stop"

    def ring(self, by: str, ttl_seconds: int) -> None:
        self.redis.set(self.key, by[:64], ex=max(1, int(ttl_seconds)))

    def who(self) -> str | None:
        """The name given with the request (Redis's word: use `stopped_by` for what people read)."""
        value = self.redis.get(self.key)
        return value.decode(errors="replace") if value else None

    def clear(self) -> None:
        self.redis.delete(self.key)


def stopped_by(job_id: str) -> str:
    """Who asked the console to stop `job_id`: the newest stop request in the audit log, not Redis's word."""
    name = db.session.execute(
        db.select(AuditEvent.username)
        .where(AuditEvent.action == "stop", AuditEvent.outcome == "requested", AuditEvent.job_id == job_id)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return name or UNKNOWN_STOPPER
