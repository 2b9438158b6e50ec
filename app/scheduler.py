"""Time slots into operations: scheduled backups and restore tests with RQ's own cron scheduler,
made safe to run more than once, the alert for a target whose newest backup is too old, and the drop of
each database a restore kept for RESTORE_KEEP_PREVIOUS once its time is up (app/jobs/kept_databases.py).

RQ's `CronScheduler` has no lock: two schedulers would both enqueue every run. Here each
slot (the cron time a run is for) is claimed in Redis with SET NX before enqueueing, so one
run is enqueued per slot however many schedulers are started. The cron expression is read in
`DISPLAY_TIMEZONE` (so "0 2 * * *" is 2 AM IST by default) and comes from `BACKUP_SCHEDULE` (or
`VERIFY_SCHEDULE`) when the server sets it, else from the settings page; schedulers pick up a change
of either schedule within a minute.

Each target has its own schedule and verify schedule; one scheduler serves them all, firing
each target's job with the target's name. The job a slot enqueues (`scheduled_backup`,
`scheduled_verify`) asks `app.operations`, as a person would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from redis import Redis
from rq import Queue
from rq.cron import CronJob, CronScheduler

from app import operations, services
from app.adapters.storage import StorageError
from app.config import Settings
from app.domain import alerts
from app.domain.cron import next_run
from app.extensions import db
from app.jobs import history, kept_databases, runtime
from app.jobs.notify import notify
from app.jobs.queue import worker_options
from app.jobs.runtime import console_job
from app.store import audit, console_settings

HEARTBEAT_SECONDS = 120


@console_job
def scheduled_backup() -> str | None:
    """Fired by the scheduler: the same backup request a person makes, as "scheduler", once per slot.

    Anyone who can write to Redis can enqueue this job, and scheduled backups skip the manual
    interval: so a second one in the same minute of the schedule requests nothing, or thirty forced
    runs would let retention push out every older backup.
    """
    settings = services.settings()
    if history.scheduled_backup_requested(settings.target_name or None, within=timedelta(seconds=60)):
        audit.record("backup", "refused", username="scheduler",
                     detail="a scheduled backup of this target was already requested in the last minute")  # fmt: skip
        return None
    try:
        return operations.request_backup(operations.Actor.scheduler(), operations.collaborators(), scheduled=True)
    except operations.Refused:
        return None  # audited by the request


@console_job
def scheduled_verify() -> str | None:
    """Fired by the scheduler: prove the newest *trusted* backup of this environment restorable."""
    try:
        return operations.request_scheduled_verify(operations.collaborators())
    except operations.Refused:
        return None  # audited by the request


def heartbeat_key(namespace: str) -> str:
    return f"{namespace}:scheduler:heartbeat"


def scheduler_alive(redis: Redis, namespace: str) -> bool:
    return bool(redis.exists(heartbeat_key(namespace)))


def check_stale_backups(settings: Settings, redis: Redis) -> bool:
    """Alert when `settings`' target has no backup of its own newer than its BACKUP_MAX_AGE_HOURS.

    Checked by the scheduler every few minutes; alerts at most once per max-age period.
    """
    if not redis.set(f"{settings.key_prefix}:scheduler:stale-check", "1", nx=True, ex=300):
        return False
    max_age = timedelta(hours=settings.backup_max_age_hours)
    ours = runtime.console(settings.target_name or None)
    try:
        newest = ours.newest()
    except StorageError as exc:
        alert = alerts.Alert("stale-backup", f"cannot list backups to check their age: {exc}", {})
    else:
        alert = alerts.stale_backup_alert(newest, ours.owner, max_age=max_age, now=datetime.now(UTC))
    if alert is None:
        redis.delete(f"{settings.key_prefix}:alert:stale")
        return False
    if not redis.set(f"{settings.key_prefix}:alert:stale", "1", nx=True, ex=int(max_age.total_seconds())):
        return False
    notify(settings, redis, alert)
    return True


class SlotCronJob(CronJob):
    """A cron job whose runs are claimed per slot, and whose cron is read in the display zone."""

    def __init__(self, *args, zone: ZoneInfo, namespace: str, **kwargs):
        self.zone = zone
        self.namespace = namespace
        super().__init__(*args, **kwargs)

    def get_next_enqueue_time(self) -> datetime:
        return next_run(self.cron, self.zone, self.latest_enqueue_time or datetime.now(UTC))

    def enqueue(self, connection: Redis):
        slot = (self.next_enqueue_time or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M")
        claim = f"{self.namespace}:scheduler:slot:{self.name}:{slot}"
        if not connection.set(claim, "1", nx=True, ex=int(timedelta(days=2).total_seconds())):
            return None  # another scheduler already enqueued this slot
        # Not RQ's own enqueue: it writes a pickled job, which a JSON worker refuses (jobs/queue.py).
        queue = Queue(self.queue_name, connection=connection, **worker_options())
        return queue.enqueue(self.func, args=self.args, kwargs=self.kwargs, **self.job_options)


class ConsoleScheduler(CronScheduler):
    """RQ's cron scheduler for every target's backup and verify schedules; re-reads the schedules on every loop."""

    def __init__(self, settings: Settings, connection: Redis, queue_name: str, function, verify_function=None):
        super().__init__(connection, name=f"{settings.redis_namespace}:{datetime.now(UTC):%H%M%S%f}")
        self.settings = settings
        self.queue_name = queue_name
        # What each kind of slot runs: backups, and restore tests (VERIFY_SCHEDULE or the page's).
        self.functions = {"scheduled-backup": function, "scheduled-verify": verify_function}
        self.expressions: dict[tuple[str, str], str | None] = {}
        self.jobs: dict[tuple[str, str], SlotCronJob] = {}
        self.reload()

    @property
    def verify_jobs(self) -> list[SlotCronJob]:
        return [job for (kind, _), job in self.jobs.items() if kind == "scheduled-verify"]

    @property
    def verify_job(self) -> SlotCronJob | None:
        return self.verify_jobs[0] if self.verify_jobs else None

    def targets(self) -> list[Settings]:
        """Each target's settings, the settings page's values applied (settings made by hand, without targets,
        are their own one target)."""
        current = console_settings.effective(self.settings)
        return [current.for_target(t.name) for t in current.targets] or [current]

    def _slot_job(self, function, target: Settings, expression: str, name: str) -> SlotCronJob:
        if target.several_targets:
            name = f"{name}:{target.target_name}"
        kwargs = {"target": target.target_name} if target.target_name else {}
        return SlotCronJob(self.queue_name, func=function, kwargs=kwargs, cron=expression, name=name,
                           zone=self.settings.zone, namespace=target.key_prefix, job_timeout=60)  # fmt: skip

    def get_jobs(self) -> list[CronJob]:
        return list(self._cron_jobs)

    def reload(self) -> None:
        """Each target's backup and verify schedules as they are now; a job whose schedule is unchanged is kept."""
        db.session.expire_all()
        console_settings.forget_cached()  # every loop reads the store itself
        for target in self.targets():
            for kind, expression in (("scheduled-backup", target.backup_schedule),
                                     ("scheduled-verify", target.verify_schedule)):  # fmt: skip
                if self.functions[kind] is None:
                    continue
                slot = (kind, target.target_name)
                if self.expressions.get(slot, "unset") == expression:
                    continue
                self.expressions[slot] = expression
                self.jobs.pop(slot, None)
                if expression:
                    self.jobs[slot] = self._slot_job(self.functions[kind], target, expression, kind)
                self.log.info("%s of %s: %s (%s)", kind, target.target_name, expression or "none",
                              self.settings.display_timezone)  # fmt: skip
        self._cron_jobs = list(self.jobs.values())  # what RQ's own sleep and registry read

    def enqueue_jobs(self):
        self.reload()
        for target in self.targets():
            check_stale_backups(target, self.connection)
            kept_databases.drop_when_due(target, self.connection)  # claimed in the console store: once per database
        enqueued = []
        for job in self.get_jobs():
            if job.should_run():
                job.enqueue(self.connection)
                job.set_enqueue_time(datetime.now(UTC))
                enqueued.append(job)
        return enqueued

    def heartbeat(self) -> None:
        super().heartbeat()
        self.connection.set(heartbeat_key(self.settings.redis_namespace), self.name, ex=HEARTBEAT_SECONDS)

    def calculate_sleep_interval(self) -> float:
        return min(super().calculate_sleep_interval(), 30)  # notice schedule edits quickly
