"""Job records in the console store: what the activity page and the home page's failure banner read.

RQ keeps a job for 7 days at most; a record here outlives it. The jobs layer writes one when a
job is enqueued, when a worker starts it, and when it finishes or fails (`ended`). Each write
commits at once, like the audit log, so it survives whatever fails next. Records hold plain
facts (kind, who asked, file, size, outcome or reason), never a secret.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement

from app.domain.cleanup import plain_reason
from app.domain.cron import previous_run
from app.extensions import db
from app.jobs.state import JOB_KINDS
from app.store.models import JobRun, utcnow

KEEP_NEWEST = 500  # at least this many records are kept, however old ...
KEEP_DAYS = 30  # ... and every record of the last 30 days, however many
MISSED_AFTER = timedelta(minutes=10)  # a scheduled backup this late has not run


def requested(
    job_id: str, *, kind: str, environment: str, database: str, requested_by: str,
    filename: str | None = None, scheduled: bool = False, target: str | None = None,
    archive_sha256: str | None = None, size: int | None = None, options: dict[str, bool] | None = None,
) -> None:  # fmt: skip
    """A job is about to be enqueued: its request, written before the queue can hand it to a worker.

    `archive_sha256` and `size` are those of the file an admin confirmed (restore) or asked to
    verify; the job refuses any other. Also prunes records past both limits.
    """
    db.session.add(JobRun(id=job_id, kind=kind, environment=environment, database=database, filename=filename,
                          requested_by=requested_by, scheduled=scheduled, target=target,
                          archive_sha256=archive_sha256, size=size,
                          options=json.dumps(options, sort_keys=True) if options else None))  # fmt: skip
    db.session.commit()
    prune()


def claim(job_id: str, *, kind: str, target: str | None, filename: str | None) -> JobRun | None:
    """Mark the job's request started, once; None when there is no queued request for exactly this job.

    Anyone who can write to Redis can push a job onto the queue, but not write the console store:
    a job without its request (or run a second time) finds nothing here and must do nothing.
    One UPDATE with the expected state in its WHERE, so two workers cannot both claim it.
    """
    same_file = JobRun.filename.is_(None) if filename is None else JobRun.filename == filename
    same_target = JobRun.target.is_(None) if target is None else JobRun.target == target
    claimed = db.session.execute(
        db.update(JobRun)
        .where(JobRun.id == job_id, JobRun.status == "queued", JobRun.kind == kind, same_file, same_target)
        .values(status="started", started_at=utcnow())
    ).rowcount
    db.session.commit()
    return db.session.get(JobRun, job_id) if claimed == 1 else None


def ended(
    job_id: str, *, ok: bool, outcome: str | None = None, error: str | None = None,
    size: int | None = None, filename: str | None = None, stopped: bool = False,
) -> None:  # fmt: skip
    """The job finished (`ok`), failed, or was `stopped` by someone; `outcome` says what it did (or, stopped,
    by whom and what was left as it was), `error` why it failed."""
    run = db.session.get(JobRun, job_id)
    if run is None:
        return  # enqueued by a release without job records
    run.status = "stopped" if stopped else "finished" if ok else "failed"
    run.ended_at = utcnow()
    run.started_at = run.started_at or run.ended_at
    run.outcome = outcome and outcome[:500]
    run.error = error and error[:4000]
    run.size = size if size is not None else run.size
    run.filename = filename or run.filename
    db.session.commit()


def cancel_queued(job_id: str, outcome: str) -> bool:
    """A job that has not started, stopped before it did: True when it was still queued (one UPDATE, so a
    worker claiming it at the same moment either wins, and the job runs, or finds nothing to claim)."""
    now = utcnow()
    cancelled = db.session.execute(
        db.update(JobRun).where(JobRun.id == job_id, JobRun.status == "queued")
        .values(status="stopped", started_at=None, ended_at=now, outcome=outcome[:500])
    ).rowcount  # fmt: skip
    db.session.commit()
    return cancelled == 1


def stopper(run: JobRun) -> str | None:
    """Who stopped the job `run` records (as its outcome says it: "stopped by <name>; …"), or None."""
    if run.status != "stopped" or not (run.outcome or "").startswith("stopped by "):
        return None
    return run.outcome.removeprefix("stopped by ").split(";")[0].removesuffix(" before it started") or None


def naive_utc(iso: str) -> datetime:
    """An ISO time as the console store keeps times: naive UTC."""
    moment = datetime.fromisoformat(iso)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def prune(now: datetime | None = None) -> int:
    """Delete records older than KEEP_DAYS that are not among the newest KEEP_NEWEST; returns how many."""
    newest = db.select(JobRun.id).order_by(JobRun.enqueued_at.desc()).limit(KEEP_NEWEST)
    cutoff = (now or utcnow()) - timedelta(days=KEEP_DAYS)
    gone = db.session.execute(
        db.delete(JobRun).where(JobRun.enqueued_at < cutoff, JobRun.id.not_in(newest.scalar_subquery()))
    ).rowcount
    db.session.commit()
    return gone or 0


@dataclass(frozen=True)
class Seen:
    """The targets whose jobs a caller may see (per-target role `none` hides a target and its jobs).

    A record without a target was written before records carried one: it is the default target's.
    """

    targets: frozenset[str]
    default: str

    @classmethod
    def of(cls, targets: Collection[str], default: str) -> Seen:
        return cls(frozenset(targets), default)

    def covers(self, target: str | None) -> bool:
        return (target or self.default) in self.targets

    def where(self) -> ColumnElement[bool]:
        """The SQL condition "the record's target is one of these"."""
        condition = JobRun.target.in_(sorted(self.targets))
        return db.or_(condition, JobRun.target.is_(None)) if self.default in self.targets else condition


def find(job_id: str) -> JobRun | None:
    """The record of `job_id`, whoever may see it: the caller decides with `Seen.covers(run.target)`."""
    return db.session.get(JobRun, job_id)


def page_of(
    *, kind: str | None, status: str | None, page: int, seen: Seen, per_page: int = 50
) -> tuple[list[JobRun], bool]:
    """Records of the `seen` targets, newest first, running ones on top, filtered; the page and whether more follow."""
    query = db.select(JobRun).where(seen.where())
    if kind:
        query = query.where(JobRun.kind == kind)
    if status == "running":
        query = query.where(JobRun.status.in_(("queued", "started")))
    elif status:
        query = query.where(JobRun.status == status)
    running_first = db.case((JobRun.status.in_(("queued", "started")), 0), else_=1)
    rows = (
        db.session.execute(
            query.order_by(running_first, JobRun.enqueued_at.desc()).offset((page - 1) * per_page).limit(per_page + 1)
        )
        .scalars()
        .all()
    )
    return list(rows[:per_page]), len(rows) > per_page


def backups_made(filenames: list[str], seen: Seen | None = None) -> dict[str, JobRun]:
    """The backup job that made each of these files, where this console store has its record.

    One query for a page's rows; a file made by another console (or before job records
    existed), or by a job of a target outside `seen`, is simply absent.
    """
    if not filenames:
        return {}
    query = db.select(JobRun).where(JobRun.kind == "backup", JobRun.filename.in_(filenames))
    if seen is not None:  # a shared store lists other targets' files: their jobs stay theirs
        query = query.where(seen.where())
    runs = db.session.execute(query.order_by(JobRun.enqueued_at)).scalars()
    return {run.filename: run for run in runs}  # the newest record wins if a name was ever made twice


def running(environment: str, seen: Seen) -> list[JobRun]:
    """Queued and started jobs of `environment` on the `seen` targets, newest first."""
    return list(db.session.execute(
        db.select(JobRun).where(JobRun.environment == environment, seen.where(),
                                JobRun.status.in_(("queued", "started")))
        .order_by(JobRun.enqueued_at.desc())
    ).scalars())  # fmt: skip


def latest_failures(environment: str, seen: Seen) -> list[JobRun]:
    """For each kind, its latest ended job in `environment` on the `seen` targets, if it failed (newest first)."""
    failures = []
    for kind in JOB_KINDS:
        last = db.session.execute(
            db.select(JobRun).where(JobRun.environment == environment, seen.where(), JobRun.kind == kind,
                                    JobRun.status.in_(("finished", "failed")))
            .order_by(JobRun.ended_at.desc()).limit(1)
        ).scalar_one_or_none()  # fmt: skip
        if last is not None and last.status == "failed":
            failures.append(last)
    return sorted(failures, key=lambda run: run.ended_at or run.enqueued_at, reverse=True)


def missed_scheduled_backup(
    environment: str, seen: Seen, schedule: str, zone: ZoneInfo, schedule_since: datetime | None,
    now: datetime | None = None,
) -> datetime | None:  # fmt: skip
    """The slot (naive UTC) of the last scheduled backup of the `seen` target(s) that never started a job, if missed.

    A slot counts once MISSED_AFTER has passed. It is missed when no scheduled backup of these
    targets was enqueued from a minute before it on (scheduler down, or its request refused):
    two targets may share an environment, and another target's backup is no backup of this one
    (a record without a target is the default target's, as `Seen` reads it). Slots from before
    the schedule was set (`schedule_since`) or before the target's first job are not held against it.
    """
    now = now or utcnow()
    slot = previous_run(schedule, zone, (now - MISSED_AFTER).replace(tzinfo=UTC))
    if slot is None:
        return None
    slot = slot.replace(tzinfo=None)
    if schedule_since is not None and schedule_since > slot:
        return None
    first = db.session.execute(db.select(db.func.min(JobRun.enqueued_at)).where(seen.where())).scalar()
    if first is None or first > slot:
        return None
    ran = db.session.execute(
        db.select(JobRun.id).where(JobRun.environment == environment, seen.where(), JobRun.kind == "backup",
                                   JobRun.scheduled.is_(True), JobRun.enqueued_at >= slot - timedelta(minutes=1))
        .limit(1)
    ).first()  # fmt: skip
    return None if ran else slot


def scheduled_backup_requested(target: str | None, within: timedelta) -> bool:
    """Whether a scheduled backup of `target` was requested in the last `within`."""
    same_target = JobRun.target.is_(None) if target is None else JobRun.target == target
    return db.session.execute(
        db.select(JobRun.id).where(JobRun.kind == "backup", JobRun.scheduled.is_(True), same_target,
                                   JobRun.enqueued_at >= utcnow() - within).limit(1)
    ).first() is not None  # fmt: skip


def reason_of(run: JobRun) -> str:
    """Why `run` failed, in words a person reads (the full error stays in `run.error`)."""
    return plain_reason(run.error or "")
