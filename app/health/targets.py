"""How each target is doing: the one read behind the overview page, `targets list`, /api/targets and /healthz.

A target's status is its newest backup of its own and that backup's age (stale by the same rule
as the stale-backup alert), the outcome of its last backup, restore or verify (from the audit
log, which records each job's target), its newest backup proven restorable, and its next
scheduled run. Nothing here is a secret: no password, passkey or URL with credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app import operations, services
from app.adapters.storage import StorageError
from app.config import Settings
from app.domain.alerts import is_stale
from app.domain.catalog import Backup
from app.domain.cron import next_run
from app.extensions import db
from app.store.models import AuditEvent
from app.store.schedule import effective_schedule

JOB_ACTIONS = ("backup", "restore", "verify")


@dataclass(frozen=True)
class LastJob:
    action: str
    outcome: str  # "ok" or "failed"
    at: datetime  # naive UTC, as the console store keeps it
    job_id: str | None


@dataclass(frozen=True)
class NewestBackup:
    """A target's newest backup of its own, its age, and whether it is stale (the stale-backup alert's rule)."""

    backup: Backup | None
    age_seconds: int | None
    stale: bool

    def to_json(self) -> dict:
        filename = self.backup.filename if self.backup else None
        return {"filename": filename, "age_seconds": self.age_seconds, "stale": self.stale}


def judge_newest(newest: Backup | None, settings: Settings, now: datetime) -> NewestBackup:
    """`newest`'s age at `now` and whether it is older than BACKUP_MAX_AGE_HOURS (or missing)."""
    age = int((now - newest.created_at).total_seconds()) if newest else None
    return NewestBackup(newest, age, is_stale(newest, timedelta(hours=settings.backup_max_age_hours), now))


def newest_backup(settings: Settings) -> NewestBackup | None:
    """`settings`' target's newest backup, from the cached listing; None when its store cannot be listed.

    Reported, never a reason for /healthz to answer 503: the stale-backup alert covers it.
    """
    try:
        with services.acting_on(settings.target_name or None):
            newest = operations.collaborators().backups.newest()
    except Exception:  # noqa: BLE001 - storage being down is reported by its own check
        return None
    return judge_newest(newest, settings, datetime.now(UTC))


@dataclass(frozen=True)
class TargetStatus:
    name: str
    environment: str
    database: str
    host: str
    storage: str  # the store's description (bucket/prefix or folder), never a credential
    newest: Backup | None
    age_seconds: int | None
    stale: bool
    last_job: LastJob | None
    proven: Backup | None
    schedule: str | None
    next_run: datetime | None
    storage_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.storage_error is not None or (self.last_job is not None and self.last_job.outcome == "failed")

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "environment": self.environment,
            "database": self.database,
            "host": self.host,
            "storage": self.storage,
            "newest_backup": self.newest.filename if self.newest else None,
            "newest_backup_age_seconds": self.age_seconds,
            "stale": self.stale,
            "last_job": {"action": self.last_job.action, "outcome": self.last_job.outcome,
                         "at": self.last_job.at.replace(tzinfo=UTC).isoformat(), "job_id": self.last_job.job_id}
            if self.last_job else None,
            "proven_restorable": self.proven.filename if self.proven else None,
            "proven_at": self.proven.verified_at.isoformat() if self.proven and self.proven.verified_at else None,
            "schedule": self.schedule,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "failed": self.failed,
            "storage_error": self.storage_error,
        }  # fmt: skip


def last_job(target: str) -> LastJob | None:
    """The last finished backup, restore or verify of `target`, from the audit log."""
    event = db.session.execute(
        db.select(AuditEvent)
        .where(AuditEvent.target_name == target, AuditEvent.action.in_(JOB_ACTIONS),
               AuditEvent.outcome.in_(("ok", "failed")))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()  # fmt: skip
    return LastJob(event.action, event.outcome, event.at, event.job_id) if event else None


def status_of(name: str, now: datetime | None = None) -> TargetStatus:
    """`name`'s status (needs an app context); a store that cannot be listed is reported, not raised."""
    now = now or datetime.now(UTC)
    settings = services.console_settings().for_target(name)
    ours = services.console_backups(settings, services.storage(name))
    newest = proven = None
    error = None
    try:
        listed = ours.listing()
        newest, proven = ours.newest(listed, now), ours.newest_proven(listed)
    except StorageError as exc:
        error = str(exc)
    schedule = effective_schedule(settings)
    judged = judge_newest(newest, settings, now)
    return TargetStatus(
        name=name, environment=settings.app_env, database=settings.target.dbname, host=settings.target.host,
        storage=ours.storage.description, newest=newest, age_seconds=judged.age_seconds, stale=judged.stale,
        last_job=last_job(name), proven=proven, schedule=schedule,
        next_run=next_run(schedule, settings.zone) if schedule else None, storage_error=error,
    )  # fmt: skip
