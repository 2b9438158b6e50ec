"""Scheduled backups with RQ's own cron scheduler, made safe to run more than once.

RQ's `CronScheduler` has no lock: two schedulers would both enqueue every run. Here each
slot (the cron time a run is for) is claimed in Redis with SET NX before enqueueing, so one
run is enqueued per slot however many schedulers are started. The cron expression is read in
`DISPLAY_TIMEZONE` (so "0 2 * * *" is 2 AM IST by default) and comes from the settings page,
or from `BACKUP_SCHEDULE` when nobody has set one there; schedulers pick up a change within a
minute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from redis import Redis
from rq.cron import CronJob, CronScheduler

from app.domain import alerts
from app.domain.storage import StorageError
from app.extensions import db
from app.models import ConsoleSetting, utcnow
from app.settings import Settings

SCHEDULE_SETTING = "backup_schedule"
HEARTBEAT_SECONDS = 120


def stored_schedule() -> ConsoleSetting | None:
    return db.session.get(ConsoleSetting, SCHEDULE_SETTING)


def effective_schedule(settings: Settings) -> str | None:
    """The page's schedule when an admin set one ("" means switched off), else BACKUP_SCHEDULE."""
    stored = stored_schedule()
    if stored is not None:
        return stored.value or None
    return settings.backup_schedule


def save_schedule(expression: str, by: str) -> None:
    row = stored_schedule() or ConsoleSetting(key=SCHEDULE_SETTING)
    row.value, row.updated_by, row.updated_at = expression, by, utcnow()
    db.session.add(row)
    db.session.commit()


def next_run(expression: str, zone: ZoneInfo, after: datetime | None = None) -> datetime | None:
    """The next time the cron expression fires, read in `zone`, in UTC; None if it never does."""
    base = (after or datetime.now(UTC)).astimezone(zone)
    try:
        return croniter(expression, base).get_next(datetime).astimezone(UTC)
    except Exception:  # noqa: BLE001 - croniter raises several kinds for dates that never come
        return None


def previous_run(expression: str, zone: ZoneInfo, before: datetime) -> datetime | None:
    """The last time the cron expression fired before `before`, read in `zone`, in UTC."""
    try:
        return croniter(expression, before.astimezone(zone)).get_prev(datetime).astimezone(UTC)
    except Exception:  # noqa: BLE001 - as in next_run
        return None


def heartbeat_key(namespace: str) -> str:
    return f"{namespace}:scheduler:heartbeat"


def scheduler_alive(redis: Redis, namespace: str) -> bool:
    return bool(redis.exists(heartbeat_key(namespace)))


def check_stale_backups(settings: Settings, redis: Redis) -> bool:
    """Alert when this environment has no backup newer than BACKUP_MAX_AGE_HOURS.

    Checked by the scheduler every few minutes; alerts at most once per max-age period.
    """
    if not redis.set(f"{settings.redis_namespace}:scheduler:stale-check", "1", nx=True, ex=300):
        return False
    from app.jobs import runtime

    max_age = timedelta(hours=settings.backup_max_age_hours)
    ours = runtime.console()
    try:
        newest = ours.newest()
    except StorageError as exc:
        alert = alerts.Alert("stale-backup", f"cannot list backups to check their age: {exc}", {})
    else:
        alert = alerts.stale_backup_alert(newest, ours.owner, max_age=max_age, now=datetime.now(UTC))
    if alert is None:
        redis.delete(f"{settings.redis_namespace}:alert:stale")
        return False
    if not redis.set(f"{settings.redis_namespace}:alert:stale", "1", nx=True, ex=int(max_age.total_seconds())):
        return False
    alerts.deliver(alert, settings)
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
        return super().enqueue(connection)


class ConsoleScheduler(CronScheduler):
    """RQ's cron scheduler for the backup schedule; re-reads the schedule on every loop."""

    def __init__(self, settings: Settings, connection: Redis, queue_name: str, function, verify_function=None):
        super().__init__(connection, name=f"{settings.redis_namespace}:{datetime.now(UTC):%H%M%S%f}")
        self.settings = settings
        self.queue_name = queue_name
        self.function = function
        self.expression: str | None = None
        self.reload()
        if settings.verify_schedule and verify_function is not None:  # VERIFY_SCHEDULE: restore tests
            self.verify_job = self._slot_job(verify_function, settings.verify_schedule, "scheduled-verify")
        else:
            self.verify_job = None

    def _slot_job(self, function, expression: str, name: str) -> SlotCronJob:
        return SlotCronJob(self.queue_name, func=function, cron=expression, name=name, zone=self.settings.zone,
                           namespace=self.settings.redis_namespace, job_timeout=60)  # fmt: skip

    def get_jobs(self) -> list[CronJob]:
        return [*self._cron_jobs, *([self.verify_job] if self.verify_job else [])]

    def reload(self) -> None:
        db.session.expire_all()
        expression = effective_schedule(self.settings)
        if expression == self.expression:
            return
        self.expression = expression
        self._cron_jobs = []
        if expression:
            self._cron_jobs.append(self._slot_job(self.function, expression, "scheduled-backup"))
            self.log.info("backup schedule: %s (%s)", expression, self.settings.display_timezone)
        else:
            self.log.info("no backup schedule")

    def enqueue_jobs(self):
        self.reload()
        check_stale_backups(self.settings, self.connection)
        enqueued = super().enqueue_jobs()
        if self.verify_job and self.verify_job.should_run():
            self.verify_job.enqueue(self.connection)
            self.verify_job.set_enqueue_time(datetime.now(UTC))
            enqueued.append(self.verify_job)
        return enqueued

    def heartbeat(self) -> None:
        super().heartbeat()
        self.connection.set(heartbeat_key(self.settings.redis_namespace), self.name, ex=HEARTBEAT_SECONDS)

    def calculate_sleep_interval(self) -> float:
        return min(super().calculate_sleep_interval(), 30)  # notice schedule edits quickly
