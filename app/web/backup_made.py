"""Who made each listed backup, manually, on schedule or as a restore's safety backup, and how long it
took: the list's row facts, and the backup page's.

From this console store's job records (one query for the rows a page shows). A backup made
elsewhere (another environment's console, or before job records existed) falls back to its
manifest, but only one this process has already read: a page view never sends one S3
request per row (tests/web/test_pages_cost.py). What neither knows stays unknown.

A store two targets share lists both targets' backups on each one's page: who made a backup of a
target the caller may not see (role `none`) is theirs, so neither its job record nor its
manifest is used for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from app import services
from app.domain.catalog import Backup
from app.domain.trends import manifest_seconds
from app.domain.upload import UPLOADED_ENVIRONMENT
from app.extensions import db
from app.jobs import history
from app.operations import Actor, owning_target
from app.store.models import AuditEvent, JobRun
from app.web.job_access import seen

SCHEDULER = Actor.scheduler().username
KINDS = ("manual", "scheduled", "safety", "uploaded")
# A finished restore's audit row names the safety backup it made of the database it replaced
# (app/jobs/tasks.py `_restore_detail`): its manifest reads like any other backup's.
SAFETY_NAMED = re.compile(r"backed up as (\S+?\.dump(?:\.age)?)(?=[,;]|$)")
RESTORES_READ = 1000  # restores are rare: the newest thousand name every safety backup still kept


@dataclass(frozen=True)
class Made:
    by: str | None  # a username, or "scheduler"; None when only the kind is known
    scheduled: bool
    seconds: float | None
    safety: bool = False  # made by a restore, of the database it replaced, before the swap
    job_id: str | None = None  # the job that made it: a backup's, or a safety backup's restore
    uploaded: bool = False  # not made by the console: a dump made elsewhere, uploaded by `by` (app/domain/upload.py)

    @property
    def kind(self) -> str:
        return "uploaded" if self.uploaded else "safety" if self.safety else "scheduled" if self.scheduled else "manual"


def safety_backups() -> dict[str, str | None]:
    """Filename → the restore job that made it, for every safety backup a finished restore names."""
    rows = db.session.execute(
        db.select(AuditEvent.detail, AuditEvent.job_id)
        .where(AuditEvent.action == "restore", AuditEvent.outcome == "ok", AuditEvent.detail.contains("backed up as "))
        .order_by(AuditEvent.id.desc()).limit(RESTORES_READ)
    ).all()  # fmt: skip
    found: dict[str, str | None] = {}
    for detail, job_id in rows:
        if match := SAFETY_NAMED.search(detail or ""):
            found.setdefault(match[1], job_id)
    return found


def made_of(
    backups: list[Backup], manifest_of: Callable[[Backup], dict | None], safety: dict[str, str | None] | None = None
) -> dict[str, Made]:
    """Filename → Made, for the backups whose maker the caller may know; `manifest_of` must not read the store.

    `safety`: the safety backups (`safety_backups()`), read once by the caller; None reads them here.
    """
    visible = seen()
    safety = safety_backups() if safety is None else safety
    runs = history.backups_made([b.filename for b in backups], visible)
    settings = services.console_settings()
    made = {}
    for backup in backups:
        name = backup.filename
        if (run := runs.get(name)) is not None:
            made[name] = Made(run.requested_by, run.scheduled or run.requested_by == SCHEDULER, run.seconds,
                              job_id=run.id)  # fmt: skip
        elif (owner := owning_target(settings, backup)) is not None and not visible.covers(owner):
            continue  # a hidden target's backup: its manifest names its maker too
        elif (manifest := manifest_of(backup)) and (by := manifest.get("requested_by")) and isinstance(by, str):
            made[name] = Made(by[:64], by == SCHEDULER, manifest_seconds(manifest))
        if backup.environment == UPLOADED_ENVIRONMENT:  # its name says so; who uploaded it, the manifest
            made[name] = Made(made[name].by if name in made else None, False, None, uploaded=True)
            continue
        if name in safety:
            known = made.get(name, Made(None, False, None))
            made[name] = Made(known.by, False, known.seconds, safety=True, job_id=safety[name])
    return made


def makers() -> list[str]:
    """Everyone whose backups this console store recorded, on the targets the caller may see: the list's filter."""
    query = db.select(JobRun.requested_by).where(JobRun.kind == "backup", seen().where()).distinct()
    return sorted(db.session.execute(query).scalars())


def jobs_on(filename: str) -> list[JobRun]:
    """The restores and restore tests of `filename` this console store recorded, newest first (visible ones)."""
    query = db.select(JobRun).where(JobRun.filename == filename, JobRun.kind.in_(("restore", "verify")), seen().where())
    return list(db.session.execute(query.order_by(JobRun.enqueued_at.desc()).limit(50)).scalars())
