"""How every job begins and ends: it claims its request in the console store, and at the end frees
the lock, records, counts and audits what happened; after a failure or a stop, what it left is put right."""

from __future__ import annotations

from datetime import UTC, datetime

from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from app import services
from app.domain import cleanup
from app.domain.console import ConsoleBackups
from app.jobs import history
from app.jobs.locks import DatabaseLock
from app.jobs.notify import job_alert, notify
from app.jobs.queue import count_job
from app.jobs.runtime import console
from app.jobs.state import JobRecord, JobState
from app.jobs.stopping import Stopped, StopRequest, stopped_by
from app.services.listing_cache import listing_changed
from app.store import audit
from app.store.models import JobRun


class NotRequested(Exception):
    """A job in the queue without its request in the console store: it was not asked for through the console."""


def begin(job: Job | None, kind: str, filename: str | None = None) -> tuple[JobRecord, JobRun]:
    """The running job's state, and its request in the console store, claimed (marked started) once.

    A job whose request is missing, is for another kind, file or target, or has already been
    claimed does nothing: whoever can write to Redis can enqueue, but only `operations` requests.
    """
    target = services.settings().target_name or None
    confirmed = history.claim(job.id, kind=kind, target=target, filename=filename) if job else None
    if confirmed is None:
        raise NotRequested(f"this {kind} was not requested through the console (or it has already run); "
                           "nothing was done")  # fmt: skip
    return JobRecord(job), confirmed


def finish(
    job: Job | None, action: str, outcome: str, username: str, target: str | None, detail: str,
    *, summary: str | None = None, size: int | None = None,
) -> None:  # fmt: skip
    """Free the lock, end the job's record (`summary` says what it did), count and audit; `detail` is the audit's.
    `outcome`: ok, failed or stopped (someone asked; `summary` then says who and what was left as it was)."""
    settings, redis = services.settings(), services.redis()
    if job is not None:
        DatabaseLock(redis, settings.redis_namespace, settings.lock_name).release(job.id)
        StopRequest(redis, settings.redis_namespace, job.id).clear()
        ok, stopped = outcome == "ok", outcome == "stopped"
        history.ended(job.id, ok=ok, stopped=stopped, outcome=summary if ok or stopped else None,
                      error=None if ok or stopped else detail, size=size, filename=target)  # fmt: skip
    count_job(settings, redis, action, outcome)
    audit.record(action, outcome, username=username, target=target, detail=detail, job_id=job.id if job else None)


def describe_failure(exc_type: type | None, value: BaseException | None, timeout: int) -> str:
    """The reason a person reads on the job page and in the API's `error` (`timeout`: RQ's, the ceiling)."""
    from app.jobs.watch import NoProgressTimeout  # the job's own timeout: JOB_TIMEOUT_SECONDS of silence

    if exc_type is not None and issubclass(exc_type, Stopped):
        return "stopped before it finished; nothing was kept"
    if exc_type is not None and issubclass(exc_type, NoProgressTimeout):
        seconds = value.seconds if isinstance(value, NoProgressTimeout) else timeout
        return f"made no progress for {seconds} s (JOB_TIMEOUT_SECONDS); nothing was kept"
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return f"ran for {timeout} s, the longest a job may (JOB_MAX_SECONDS); nothing was kept"
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return "the worker running this job stopped (killed or lost) before it finished; nothing was kept"
    return cleanup.describe_error(value) or f"{exc_type.__name__ if exc_type else 'error'}: {value}"


def clean_up_failed(job: Job, state: JobState, exc_type: type | None, value: BaseException | None) -> None:
    """Put right what a failed or stopped job left (upload, unpublished file, scratch or set-aside database),
    then end it."""
    if exc_type is not None and issubclass(exc_type, Stopped):
        return _clean_up_stopped(job, state, exc_type, value)
    settings, ours = services.settings(), console()
    error = describe_failure(exc_type, value, job.timeout or settings.job_timeout_seconds)
    try:
        error += _undo(ours, state)
    except Exception as exc:  # noqa: BLE001 - the reason, lock and audit below must still happen
        error += f"; cleaning up failed too ({type(exc).__name__}: {str(exc).strip()[:200]})"
    finally:
        job.meta["error"] = error
        job.save_meta()
        finish(job, state.kind, "failed", state.requested_by, state.filename, error)
        notify(settings, services.redis(), job_alert(
            f"{state.kind}-failed", settings, action=state.kind, job_id=job.id, requested_by=state.requested_by,
            seconds=_seconds_since(job.started_at), filename=state.filename, reason=error))  # fmt: skip
        listing_changed(settings, services.redis())  # clean-up may have removed a file the list showed


def _clean_up_stopped(job: Job, state: JobState, exc_type: type, value: BaseException | None) -> None:
    """A job someone stopped: the same clean-up as a failure's, recorded as "stopped by …" (the name from the
    console store's audit log), with no failure alert."""
    settings, ours = services.settings(), console()
    by = stopped_by(job.id)
    summary = f"stopped by {by}"
    try:
        left = _undo(ours, state).lstrip("; ")
        summary += "; no backup was saved" if state.kind == "backup" else f"; {left or 'nothing was changed'}"
    except Exception as exc:  # noqa: BLE001 - the record, lock and audit below must still happen
        summary += f"; cleaning up failed ({type(exc).__name__}: {str(exc).strip()[:200]})"
    finally:
        job.meta.update(stopped_by=by, error=None)
        job.save_meta()
        finish(job, state.kind, "stopped", by, state.filename, f"{state.kind} of job {job.id} (asked for by "
               f"{state.requested_by}) {summary}", summary=summary)  # fmt: skip
        listing_changed(settings, services.redis())


def _undo(ours: ConsoleBackups, state: JobState) -> str:
    """What a failed or stopped job left, removed (upload, unpublished file, scratch database, temporary folder)
    or put back (a set-aside database); words to add to the reason."""
    uploading = state.upload_filename or (state.filename if state.kind == "backup" else None)
    if state.upload_id and uploading:
        cleanup.abort_upload(ours.storage, uploading, state.upload_id)
    if uploading and not state.published:
        # Ended after the upload completed but before its manifest: not a finished backup.
        cleanup.remove_unfinished_backup(ours.storage, uploading)
    return cleanup.undo_restore(ours.target, scratch=state.scratch_database, set_aside=state.set_aside_database,
                                was_restore=state.kind == "restore", temp_folder=state.temp_folder,
                                replaced=state.replaced_database)  # fmt: skip


def _seconds_since(started: datetime | None) -> float | None:
    """How long a job ran before it failed (RQ keeps its start in UTC, with or without a zone)."""
    if started is None:
        return None
    return (datetime.now(UTC) - (started if started.tzinfo else started.replace(tzinfo=UTC))).total_seconds()
