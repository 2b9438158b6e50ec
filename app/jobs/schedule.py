"""Scheduled backups with RQ's own cron scheduler, made safe to run more than once.

RQ's `CronScheduler` has no lock: two schedulers would both enqueue every run. Here each
slot (the cron time a run is for) is claimed in Redis with SET NX before enqueueing, so one
run is enqueued per slot however many schedulers are started. The cron expression is read in
`DISPLAY_TIMEZONE` (so "0 2 * * *" is 2 AM IST by default) and comes from the settings page,
or from `BACKUP_SCHEDULE` when nobody has set one there; schedulers pick up a change within a
minute.

Each target has its own schedule and verify schedule; one scheduler serves them all, firing
each target's job with the target's name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from redis import Redis
from rq import Queue
from rq.cron import CronJob, CronScheduler

from app import services
from app.adapters.storage import StorageError
from app.config import Settings
from app.domain import alerts
from app.domain.cron import next_run, previous_run  # noqa: F401 - callers import them from here
from app.extensions import db
from app.jobs.notify import notify
from app.jobs.queue import worker_options
from app.store.models import ConsoleSetting, utcnow

SCHEDULE_SETTING = "backup_schedule"
HEARTBEAT_SECONDS = 120


def schedule_setting(settings: Settings) -> str:
    """The console setting holding a target's schedule: the default target keeps the name it had alone."""
    if settings.target_name == settings.default_target:
        return SCHEDULE_SETTING
    return f"{SCHEDULE_SETTING}:{settings.target_name}"


def stored_schedule(settings: Settings | None = None) -> ConsoleSetting | None:
    return db.session.get(ConsoleSetting, schedule_setting(settings or services.settings()))


def effective_schedule(settings: Settings) -> str | None:
    """The page's schedule when an admin set one ("" means switched off), else the target's BACKUP_SCHEDULE."""
    stored = stored_schedule(settings)
    if stored is not None:
        return stored.value or None
    return settings.backup_schedule


def save_schedule(expression: str, by: str, settings: Settings | None = None) -> None:
    """Save the schedule of `settings`' target (default: the one this request acts on)."""
    settings = settings or services.settings()
    row = stored_schedule(settings) or ConsoleSetting(key=schedule_setting(settings))
    row.value, row.updated_by, row.updated_at = expression, by, utcnow()
    db.session.add(row)
    db.session.commit()


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
    from app.jobs import runtime

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
        self.function = function
        self.expressions: dict[str, str | None] = {}
        self.backup_jobs: dict[str, SlotCronJob] = {}
        self.reload()
        # VERIFY_SCHEDULE (or a target's verify_schedule): restore tests
        self.verify_jobs = [
            self._slot_job(verify_function, target, target.verify_schedule, "scheduled-verify")
            for target in self.targets() if target.verify_schedule and verify_function is not None
        ]  # fmt: skip

    @property
    def verify_job(self) -> SlotCronJob | None:
        return self.verify_jobs[0] if self.verify_jobs else None

    def targets(self) -> list[Settings]:
        """Each target's settings (settings made by hand, without targets, are their own one target)."""
        return [self.settings.for_target(t.name) for t in self.settings.targets] or [self.settings]

    def _slot_job(self, function, target: Settings, expression: str, name: str) -> SlotCronJob:
        if target.several_targets:
            name = f"{name}:{target.target_name}"
        kwargs = {"target": target.target_name} if target.target_name else {}
        return SlotCronJob(self.queue_name, func=function, kwargs=kwargs, cron=expression, name=name,
                           zone=self.settings.zone, namespace=target.key_prefix, job_timeout=60)  # fmt: skip

    def get_jobs(self) -> list[CronJob]:
        return [*self._cron_jobs, *self.verify_jobs]

    def reload(self) -> None:
        db.session.expire_all()
        for target in self.targets():
            expression = effective_schedule(target)
            if self.expressions.get(target.target_name, "unset") == expression:
                continue
            self.expressions[target.target_name] = expression
            self.backup_jobs.pop(target.target_name, None)
            if expression:
                self.backup_jobs[target.target_name] = self._slot_job(self.function, target, expression,
                                                                      "scheduled-backup")  # fmt: skip
                self.log.info("backup schedule of %s: %s (%s)", target.target_name, expression,
                              self.settings.display_timezone)  # fmt: skip
            else:
                self.log.info("no backup schedule for %s", target.target_name)
        self._cron_jobs = list(self.backup_jobs.values())  # what RQ's own sleep and registry read

    def enqueue_jobs(self):
        self.reload()
        for target in self.targets():
            check_stale_backups(target, self.connection)
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
