"""Starting jobs and reading their state: what the web layer and the CLI call.

Whoever can write to Redis can write job hashes and push ids onto the queue, so nothing read
from Redis is trusted to run code: jobs are JSON (`SERIALIZER`, never pickle), and a
`ConsoleJob` can only be one of the console's own functions (`RUNNABLE`), with no callback but
ours and no webhook. A job also finds its request in the console store before it does anything
(`history.claim`): an id pushed onto the queue by hand does nothing.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable

from redis import Redis
from rq import Callback, Queue
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.config import Settings
from app.extensions import db
from app.formatting import human_duration
from app.jobs import history
from app.jobs.locks import LOCK_GRACE_SECONDS, DatabaseLock
from app.jobs.state import JOB_KINDS, JobState
from app.jobs.stopping import StopRequest, may_stop, why_not_stoppable
from app.store.models import JobRun, utcnow

TASKS = "app.jobs.tasks"  # job functions are enqueued by dotted path: this module never imports them
COPY_JOB = "app.jobs.copies.copy_job"
UPLOAD_CHECK_JOB = "app.jobs.uploads.check_upload_job"
SERIALIZER = JSONSerializer  # a pickled job runs code when it is read: Redis holds JSON only
# Every function a worker of this console runs, and the one callback; anything else is refused.
RUNNABLE = frozenset({
    *(f"{TASKS}.{kind}_job" for kind in JOB_KINDS),
    f"{TASKS}.drop_previous_database", "app.scheduler.scheduled_backup", "app.scheduler.scheduled_verify",
    "app.jobs.notify.deliver_job", COPY_JOB, UPLOAD_CHECK_JOB,
})  # fmt: skip
FAILURE_CALLBACK = f"{TASKS}.on_failure"


class ForeignJob(Exception):
    """A job in the queue that names a function this console does not run."""


class ConsoleJob(Job):
    """An RQ job that can only run one of the console's own functions (see the module's docstring)."""

    @property
    def func(self):
        if self.instance is not None or self.func_name not in RUNNABLE:
            raise ForeignJob(f"{str(self.func_name)[:120]!r} is not one of this console's jobs; it was not run")
        return super().func

    @property
    def success_callback(self):
        return None

    @property
    def stopped_callback(self):
        return None

    @property
    def failure_callback(self):
        return super().failure_callback if self._failure_callback_name == FAILURE_CALLBACK else None

    def send_webhooks(self, *args, **kwargs) -> None:
        """The console sets no webhook: one written into Redis is never called."""


def worker_options() -> dict:
    """What every worker of this console is made with, so it reads jobs as the queue writes them."""
    return {"serializer": SERIALIZER, "job_class": ConsoleJob}


class JobRefused(Exception):
    """A job was not started; `status` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 409, *, admin_note: str | None = None):
        super().__init__(message)
        self.status = status
        self.admin_note = admin_note  # the setting behind it, said to admins only (they can change it)


def last_backup_key(prefix: str) -> str:
    return f"{prefix}:backup:last"


def mark_backup(settings: Settings, redis: Redis) -> None:
    """Remember now as the target's last backup request or finish; kept for BACKUP_MIN_INTERVAL_SECONDS."""
    if settings.backup_min_interval_seconds:
        redis.set(last_backup_key(settings.key_prefix), repr(time.time()), ex=settings.backup_min_interval_seconds)


def check_backup_interval(settings: Settings, redis: Redis) -> None:
    """Refuse (429) a manual backup too soon after the last backup request or finish of this target."""
    interval = settings.backup_min_interval_seconds
    last = redis.get(last_backup_key(settings.key_prefix)) if interval else None
    if last is None:
        return
    ago = max(0.0, time.time() - float(last))
    wait = max(1, math.ceil(interval - ago))
    raise JobRefused(
        f"Wait {human_duration(wait)}: backups of {settings.app_env} are at least {human_duration(interval)} apart",
        status=429,
        admin_note=f"BACKUP_MIN_INTERVAL_SECONDS is {interval}",
    )


def queue_for(settings: Settings, redis: Redis) -> Queue:
    return Queue(settings.redis_namespace, connection=redis, **worker_options())


def notify_queue(settings: Settings, redis: Redis) -> Queue:
    """Alert deliveries (app/jobs/notify.py): short jobs, kept apart so they never wait behind a backup."""
    return Queue(notify_queue_name(settings.redis_namespace), connection=redis, **worker_options())


def notify_queue_name(namespace: str) -> str:
    return f"{namespace}:notify"


def worker_queues(settings: Settings, redis: Redis) -> list[Queue]:
    """What a worker serves, in order: alerts first, then backups, restores and verifies."""
    return [notify_queue(settings, redis), queue_for(settings, redis)]


def jobs_total_key(namespace: str) -> str:
    return f"{namespace}:metrics:jobs"


def count_job(settings: Settings, redis: Redis, kind: str, outcome: str) -> None:
    """One more finished job of `kind` with `outcome` (ok/failed) of the target, for pgconsole_jobs_total."""
    redis.hincrby(jobs_total_key(settings.key_prefix), f"{kind}:{outcome}", 1)


def job_counts(settings: Settings, redis: Redis) -> dict[tuple[str, str], int]:
    """{(kind, outcome): count} of every job of the target this console's workers finished, since the key was made."""
    counts = redis.hgetall(jobs_total_key(settings.key_prefix))
    return {tuple(k.decode().split(":", 1)): int(v) for k, v in counts.items()}  # type: ignore[misc]


def start_job(
    settings: Settings,
    redis: Redis,
    kind: str,
    requested_by: str,
    *,
    filename: str | None = None,
    scheduled: bool = False,
    archive_sha256: str | None = None,
    size: int | None = None,
    **options: bool,
) -> str:
    """Take the database lock, record the request in the console store, then enqueue; refuse (409)
    while another job holds the lock.

    The job is for the target `settings` are of. It gets plain values only: the target's name,
    who asked, the file, and `options` (e.g. verify's trusted_only); the worker resolves the name.
    The request (`history.requested`) is what the job claims before it acts, with the sha256 and
    size of the file that was confirmed (`archive_sha256`, `size`).

    A manual backup (not `scheduled`) is also refused (429) within BACKUP_MIN_INTERVAL_SECONDS of the
    last backup request or finish, so nobody can make retention delete history by starting a burst.
    """
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    if kind == "backup" and not scheduled:
        check_backup_interval(settings, redis)
    job_id = uuid.uuid4().hex
    lock = DatabaseLock(redis, settings.redis_namespace, settings.lock_name)
    # Held while the job waits in the queue too (behind another target's job, however long that
    # runs); once it runs, the job renews it as it progresses (app/jobs/watch.py ProgressWatch) for
    # JOB_TIMEOUT_SECONDS + grace at a time, so a job whose worker died frees it soon after.
    if not lock.acquire(job_id, settings.job_max_seconds + LOCK_GRACE_SECONDS):
        raise JobRefused(
            f"Another backup or restore of {settings.target.dbname} is running (job {lock.holder()}); "
            "wait for it to finish"
        )
    target = settings.target_name or None
    try:
        if kind == "backup":
            mark_backup(settings, redis)  # under the lock: a second request sees it or gets the 409
        history.requested(job_id, kind=kind, environment=settings.app_env, database=settings.target.dbname,
                          requested_by=requested_by, filename=filename, scheduled=scheduled, target=target,
                          archive_sha256=archive_sha256, size=size, options=options)  # fmt: skip
        state = JobState(kind=kind, requested_by=requested_by, filename=filename, target=target, scheduled=scheduled)
        _enqueue(settings, redis, job_id, state, options)
    except BaseException:
        lock.release(job_id)
        raise
    return job_id


def _enqueue(settings: Settings, redis: Redis, job_id: str, state: JobState, options: dict[str, bool]) -> None:
    """Put the job on the target's queue, by dotted path and with plain values only."""
    target = state.target
    queue_for(settings, redis).enqueue(
        f"{TASKS}.{state.kind}_job",
        kwargs={"requested_by": state.requested_by, **({"filename": state.filename} if state.filename else {}),
                **({"target": target} if target else {}), **options},
        job_id=job_id,
        # RQ's timeout is only the ceiling: the job stops itself after JOB_TIMEOUT_SECONDS of silence.
        job_timeout=settings.job_max_seconds,
        result_ttl=7 * 24 * 3600,
        failure_ttl=7 * 24 * 3600,
        on_failure=Callback(f"{TASKS}.on_failure"),
        meta=state.to_meta(),
        description=f"{state.kind} of {settings.target.dbname}" + (f" ({target})" if target else ""),
    )  # fmt: skip


def stop_job(settings: Settings, redis: Redis, run: JobRun, by: str, *,
             on_accepted: Callable[[], object] = lambda: None) -> str:  # fmt: skip
    """Ask the job `run` records to stop (who may, the caller has decided): "cancelled" for a job still
    in the queue (it never runs: its record is ended, its lock freed), "stopping" for a running one
    (its watch stops it within a second, app/jobs/stopping.py). JobRefused (409) when it can no longer be
    stopped: it has ended, or has passed the point where stopping would undo its work (a restore's swap).
    `on_accepted` runs once, just before the job is cancelled or asked (the audit row its stopper is read from)."""
    job, was_queued = fetch_job(redis, run.id), run.status == "queued"
    if was_queued:
        on_accepted()
        if history.cancel_queued(run.id, f"stopped by {by} before it started; nothing was done"):
            if job is not None:
                with contextlib.suppress(Exception):  # a worker that took it finds no request to claim: nothing runs
                    job.cancel()
                job.meta["stopped_by"] = by
                job.save_meta()
            DatabaseLock(redis, settings.redis_namespace, settings.lock_name).release(run.id)
            count_job(settings, redis, run.kind, "stopped")
            return "cancelled"
        db.session.refresh(run)  # a worker claimed it meanwhile: it is running, ask it
    state = JobState.from_meta(job.get_meta(refresh=False)) if job is not None else None
    if run.status != "started" or state is None:
        raise JobRefused(f"the {run.kind} has already ended ({run.status}); there is nothing to stop")
    if not may_stop(run.kind, state.progress.phase) or state.set_aside_database or state.replaced_database:
        raise JobRefused(why_not_stoppable(run.kind, state.progress.phase))
    if not was_queued:
        on_accepted()
    StopRequest(redis, settings.redis_namespace, run.id).ring(by, settings.job_max_seconds + LOCK_GRACE_SECONDS)
    return "stopping"


def drop_previous_database_later(settings: Settings, redis: Redis, database: str) -> None:
    """Have a worker drop the database a restore set aside, first in line, once the restore has finished.

    The restore reports finished as soon as the live database holds the backup; the drop (and the
    checkpoint PostgreSQL makes for it) follows in a job of its own. Plain names only, as every job.
    """
    target = settings.target_name or None
    queue_for(settings, redis).enqueue(
        f"{TASKS}.drop_previous_database",
        kwargs={"database": database, **({"target": target} if target else {})},
        # DROP DATABASE reports no progress and takes as long as the database's files do to go:
        # only the ceiling applies. Stopping it early would only keep the set-aside database.
        job_timeout=settings.job_max_seconds,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        at_front=True,
        description=f"drop {database}, set aside by a restore of {settings.target.dbname}",
    )


def copy_backup_later(settings: Settings, redis: Redis, filename: str) -> list[str]:
    """After a backup's manifest is written: one job per copy store of the target (TARGETS_FILE's `copies`)
    copies it there and checks it. Plain names only; the backup has succeeded whatever becomes of them."""
    target = settings.target_name or None
    return [queue_for(settings, redis).enqueue(
        COPY_JOB,
        kwargs={"filename": filename, "store": store.name, **({"target": target} if target else {})},
        job_timeout=settings.job_max_seconds,
        result_ttl=7 * 24 * 3600,
        failure_ttl=7 * 24 * 3600,
        description=f"copy {filename} to store {store.name}",
    ).id for store in settings.copies]  # fmt: skip


def check_upload_later(settings: Settings, redis: Redis, filename: str, uploaded_by: str) -> str:
    """After an upload: a short job reads the archive's table of contents on the worker (never in the web
    process) and records its summary, or refuses and deletes the file. Plain names only."""
    target = settings.target_name or None
    job = queue_for(settings, redis).enqueue(
        UPLOAD_CHECK_JOB,
        kwargs={"filename": filename, "uploaded_by": uploaded_by, **({"target": target} if target else {})},
        job_timeout=settings.job_max_seconds,
        result_ttl=7 * 24 * 3600,
        failure_ttl=7 * 24 * 3600,
        at_front=True,
        description=f"check the uploaded file {filename}",
    )
    return job.id


def fetch_job(redis: Redis, job_id: str) -> ConsoleJob | None:
    """The job with this id, read as JSON; None for an unknown id or a hash this console did not write."""
    try:
        return ConsoleJob.fetch(job_id, connection=redis, serializer=SERIALIZER)
    except (NoSuchJobError, DeserializationError, ValueError, TypeError, UnicodeDecodeError):
        return None


def job_status(redis: Redis, job_id: str) -> dict | None:
    """The job as the API and the job page show it; None for an unknown id."""
    job = fetch_job(redis, job_id)
    if job is None:
        return None
    status = job.get_status(refresh=False)  # Job.fetch has just read the whole job: one round trip, not three
    state_name = {
        JobStatus.QUEUED: "queued",
        JobStatus.DEFERRED: "queued",
        JobStatus.SCHEDULED: "queued",
        JobStatus.STARTED: "started",
        JobStatus.FINISHED: "finished",
    }.get(status, "failed")
    state = JobState.from_meta(job.get_meta(refresh=False))
    if state.stopped_by and status in (JobStatus.FAILED, JobStatus.CANCELED):
        state_name = "stopped"  # someone asked; the record in the console store says who (`stopped_by`)
    finished = state_name == "finished"
    return {
        "id": job.id,
        "kind": state.kind,
        "status": state_name,
        "progress": state.progress.to_json(finished),
        "result": job.return_value() if finished else None,
        "error": (state.error or f"the job ended as {status}") if state_name == "failed" else None,
        "requested_by": state.requested_by,
        "target": state.target,
        "filename": state.filename,
        "new_database": state.new_database,
        "warning": state.warning,
        "stopped_by": state.stopped_by if state_name == "stopped" else None,
        "log": state.log,  # the tool's last lines: the web shows them to operators and admins only
        "enqueued_at": job.enqueued_at.isoformat() if job.enqueued_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "ended_at": job.ended_at.isoformat() if job.ended_at else None,
    }


def purge_namespace(redis: Redis, namespace: str) -> None:
    """Delete a console's queue, its jobs and every key of its namespace.

    For throw-away namespaces (the tests, the benchmarks); never needed in normal running.
    """
    job_ids = set()
    for queue in (Queue(namespace, connection=redis), Queue(notify_queue_name(namespace), connection=redis)):
        job_ids.update(queue.get_job_ids())
        for registry in (
            queue.started_job_registry,
            queue.finished_job_registry,
            queue.failed_job_registry,
            queue.deferred_job_registry,
            queue.scheduled_job_registry,
            queue.canceled_job_registry,
        ):
            job_ids.update(registry.get_job_ids())
    keys = set()
    for job_id in job_ids:
        keys.update(redis.scan_iter(match=f"rq:*{job_id}*"))
    for pattern in (f"{namespace}:*", f"rq:*:{namespace}", f"rq:*:{namespace}:*"):
        keys.update(redis.scan_iter(match=pattern))
    if keys:
        redis.delete(*keys)


LOST = "the job was lost: the queue no longer knows it (Redis was restarted or emptied); it did not finish"


def settle_history(redis: Redis) -> None:
    """Bring records still marked running up to date with RQ, which may know better.

    The job's own callbacks normally end its record; this covers a job RQ no longer knows (Redis
    lost it) or one that ended while the console store could not be written, so no row shows
    "running" for ever.
    """
    runs = db.session.execute(db.select(JobRun).where(JobRun.status.in_(("queued", "started")))).scalars().all()
    for run in runs:
        job = job_status(redis, run.id)
        if job is not None and job["status"] in ("queued", "started"):
            continue
        run.status = job["status"] if job else "failed"
        run.error = (job["error"] if job else LOST) if run.status == "failed" else None
        run.ended_at = history.naive_utc(job["ended_at"]) if job and job["ended_at"] else utcnow()
    if runs:
        db.session.commit()
