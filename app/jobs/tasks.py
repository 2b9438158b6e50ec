"""The RQ job functions. Each gets plain names, runs domain steps, and reports progress.

Failure handling lives in one place, `on_failure`, which RQ calls for every failure: an
exception, a timeout, or a worker that died (RQ's abandoned-job cleanup). It records the
reason in words, cleans up what the job left (upload, scratch database), frees the lock and
writes the audit record. The job itself never marks a failure as done.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from app import audit
from app.domain import alerts, catalog, pgtools, provenance, restore, trends
from app.domain import backup as backups
from app.domain.pgtools import PgToolError
from app.domain.provenance import UNTRUSTED_WARNING
from app.domain.retention import RetentionPolicy
from app.domain.storage import StorageError
from app.jobs import runtime
from app.jobs.locks import DatabaseLock
from app.jobs.progress import Progress
from app.jobs.queue import mark_backup


def backup_job(requested_by: str) -> dict:
    job = get_current_job()
    settings = runtime.settings()
    storage = runtime.storage()
    progress = Progress(job)
    progress.phase("preparing")
    storage.check()
    # Uploads left by killed jobs (here or in another environment's console) cost money: sweep.
    storage.abort_stale_uploads(older_than=timedelta(seconds=max(6 * 3600, 2 * settings.job_timeout_seconds)))
    plan = backups.plan_backup(
        settings.target,
        storage,
        app_name=settings.app_name,
        environment=settings.app_env,
        zone=settings.zone,
        compression=settings.backup_compression,
        bin_dirs=settings.pg_bin_dirs,
    )
    progress.remember(filename=plan.filename)
    progress.phase("dumping", bytes_total=plan.expected_bytes or None)
    result = backups.stream_backup(
        plan,
        settings.target,
        storage,
        on_upload_started=lambda upload_id: progress.remember(upload_id=upload_id),
        on_progress=progress.advance,
    )
    progress.phase("recording")
    manifest = backups.manifest_for(
        plan,
        result,
        target=settings.target,
        environment=settings.app_env,
        app_name=settings.app_name,
        requested_by=requested_by,
        signing_key=settings.signing_key,
    )
    backups.publish_manifest(storage, result, manifest)
    progress.remember(upload_id=None, published=True)
    progress.phase("retention")
    result.deleted, result.delete_failures = backups.apply_retention(
        storage,
        settings.zone,
        app_name=settings.app_name,
        environment=settings.app_env,
        policy=RetentionPolicy.from_settings(settings),
        just_made=result.filename,
    )
    _audit_retention(result, requested_by, job.id if job else None)
    progress.phase("done", bytes_total=result.size, bytes_done=result.size)
    mark_backup(settings, runtime.redis())  # BACKUP_MIN_INTERVAL_SECONDS counts from the finish too
    _warn_if_size_dropped(storage, settings, result.filename, progress)
    detail = f"{result.size} bytes, sha256 {result.sha256}"
    if result.delete_failures:
        detail += f"; retention could not delete {len(result.delete_failures)} file(s)"
    _finish(job, "backup", "ok", requested_by, result.filename, detail)
    return result.to_json()


def _audit_retention(result: backups.BackupResult, requested_by: str, job_id: str | None) -> None:
    """One audit row per file retention deleted (or failed to delete), naming the backup that triggered it."""
    trigger = f"retention after backup {result.filename}"
    for name in result.deleted:
        audit.record("retention-delete", "ok", username=requested_by, target=name, detail=f"deleted by {trigger}",
                     job_id=job_id)  # fmt: skip
    for name, error in result.delete_failures.items():
        audit.record("retention-delete", "failed", username=requested_by, target=name,
                     detail=f"{trigger} could not delete it: {error}", job_id=job_id)  # fmt: skip


def _warn_if_size_dropped(storage, settings, filename: str, progress: Progress) -> None:
    points = trends.backup_trend(
        catalog.list_backups(storage, settings.zone), {}, app_name=settings.app_name,
        environment=settings.app_env, drop_percent=settings.size_drop_alert_percent,
    )  # fmt: skip
    drop = trends.drop_percent_of(points, filename)
    if drop is None:
        return
    message = f"possible data loss: this backup is {drop} % smaller than the backups before it"
    progress.remember(warning=message)
    alerts.deliver(alerts.Alert("size-drop", f"{filename}: {message}", {"file": filename}), settings)


def restore_job(filename: str, requested_by: str) -> dict:
    job = get_current_job()
    settings = runtime.settings()
    target = settings.target
    progress = Progress(job)
    started = time.monotonic()

    progress.phase("checking")
    backup, listed = restore.find_listed(runtime.storage(), settings.zone, filename)
    if backup is None:
        raise restore.RestoreRefused(f"{filename} is no longer in the store; nothing was changed")
    restore.require_recent_backup(
        listed, app_name=settings.app_name, environment=settings.app_env, minutes=settings.recent_check_minutes
    )
    with restore.temp_folder(str(Path(settings.instance_path, "tmp"))) as folder:
        copy = _restore_into_scratch(backup, folder, progress, trusted_only=False)
        set_aside = restore.scratch_name(target.dbname, "previous")
        progress.remember(set_aside_database=set_aside)
        progress.phase("swapping")
        kept = restore.swap_in(target, copy.database, set_aside, keep_old=settings.keep_old_database)
        progress.remember(scratch_database=None, set_aside_database=None)
    outcome = restore.RestoreOutcome(
        filename=filename,
        database=target.dbname,
        sha256=copy.sha256,
        verified=copy.checksum_verified,
        trusted=copy.trusted,
        tables=copy.tables,
        seconds=round(time.monotonic() - started, 3),
        kept_old_database=kept,
    )
    progress.phase("done", bytes_total=backup.size, bytes_done=backup.size)
    detail = f"restored {target.dbname} from {filename} in {outcome.seconds} s"
    if not copy.checksum_verified:
        detail += "; no manifest, checksum not verified"
    if not copy.trusted:
        detail += f"; untrusted backup ({copy.untrusted_reason})"
    _finish(job, "restore", "ok", requested_by, filename, detail)
    return outcome.to_json()


def verify_job(filename: str, requested_by: str, trusted_only: bool = True) -> dict:
    """Prove a backup restorable: restore it into a scratch database, count, drop. Live is never touched.

    `trusted_only` (the default; only an admin's request clears it) refuses a backup whose manifest
    is not signed by this team's key before anything is downloaded or created.
    """
    job = get_current_job()
    settings = runtime.settings()
    storage = runtime.storage()
    progress = Progress(job)
    started = time.monotonic()
    progress.phase("checking")
    backup, _ = restore.find_listed(storage, settings.zone, filename)
    if backup is None:
        raise restore.RestoreRefused(f"{filename} is no longer in the store")
    with restore.temp_folder(str(Path(settings.instance_path, "tmp"))) as folder:
        copy = _restore_into_scratch(backup, folder, progress, trusted_only)
        progress.phase("counting")
        rows = restore.row_counts(settings.target, copy.database)
        restore.drop_scratch(settings.target, copy.database)
        progress.remember(scratch_database=None)
    report = {
        "filename": filename,
        "verified_at": datetime.now(UTC).isoformat(),
        "sha256": copy.sha256,
        "checksum_verified": copy.checksum_verified,
        "trusted": copy.trusted,
        "tables": copy.tables,
        "rows": rows,
        "seconds": round(time.monotonic() - started, 3),
        "requested_by": requested_by,
    }
    catalog.record_verification(storage, filename, report)
    progress.phase("done", bytes_total=backup.size, bytes_done=backup.size)
    total = sum(rows.values())
    _finish(job, "verify", "ok", requested_by, filename, f"{len(rows)} tables, {total} rows, {report['seconds']} s")
    return report


def _restore_into_scratch(backup, folder: Path, progress: Progress, trusted_only: bool) -> restore.ScratchCopy:
    """Check provenance, download, check the checksum, restore into a new scratch database.

    Shared by restore and verify. An untrusted backup is refused here when `trusted_only`, before
    anything is downloaded or created.
    """
    settings = runtime.settings()
    storage = runtime.storage()
    manifest = catalog.read_manifest(storage, backup.filename) if backup.has_manifest else None
    origin = provenance.provenance_of(backup, manifest, settings.signing_key)
    if trusted_only and not origin.trusted:
        raise restore.RestoreRefused(
            f"{backup.filename} is not trusted ({origin.reason}); only an admin may verify it, nothing was changed"
        )
    progress.remember(temp_folder=str(folder))
    progress.phase("downloading", bytes_total=backup.size)
    archive, sha256 = restore.download(storage, backup, folder, on_progress=progress.advance)
    progress.phase("verifying", bytes_total=backup.size, bytes_done=backup.size)
    checksum_verified = restore.check_checksum(manifest, sha256)
    if not origin.trusted:
        progress.remember(warning=f"this backup is not trusted: {origin.reason}; {UNTRUSTED_WARNING}")
    scratch = restore.scratch_name(settings.target.dbname)
    progress.remember(scratch_database=scratch)
    restore.create_scratch(settings.target, scratch)
    progress.phase("restoring")
    tables = restore.restore_into(settings.target, archive, scratch, jobs=settings.restore_jobs,
                                  bin_dirs=settings.pg_bin_dirs, on_progress=progress.items)  # fmt: skip
    return restore.ScratchCopy(scratch, sha256, checksum_verified, origin.trusted, origin.reason, tables)


def scheduled_backup() -> str | None:
    """Fired by the scheduler: start the same backup job a person would, audited as "scheduler"."""
    from app.jobs.queue import JobRefused, start_job

    settings = runtime.settings()
    try:
        job_id = start_job(settings, runtime.redis(), "backup", "scheduler", scheduled=True)
    except JobRefused as exc:
        audit.record("backup", "refused", username="scheduler", detail=str(exc))
        return None
    audit.record("backup", "requested", username="scheduler", job_id=job_id, detail="scheduled")
    return job_id


def scheduled_verify() -> str | None:
    """Fired by the scheduler: prove the newest *trusted* backup of this environment restorable.

    Newest by the signed manifest's `finished_at`: a name is chosen by whoever wrote the file.
    """
    from app.jobs.queue import JobRefused, start_job

    settings = runtime.settings()
    storage = runtime.storage()
    ours = [b for b in catalog.list_backups(storage, settings.zone)
            if b.environment == settings.app_env and b.app_name == settings.app_name]  # fmt: skip
    newest = provenance.newest_trusted(
        ours, lambda b: catalog.read_manifest(storage, b.filename), settings.signing_key, datetime.now(UTC)
    )
    if newest is None:
        return None
    try:
        job_id = start_job(settings, runtime.redis(), "verify", "scheduler", filename=newest.filename)
    except JobRefused as exc:
        audit.record("verify", "refused", username="scheduler", target=newest.filename, detail=str(exc))
        return None
    audit.record("verify", "requested", username="scheduler", target=newest.filename, job_id=job_id)
    return job_id


def _finish(job: Job | None, action: str, outcome: str, username: str, target: str | None, detail: str) -> None:
    settings = runtime.settings()
    if job is not None:
        DatabaseLock(runtime.redis(), settings.redis_namespace, settings.target.dbname).release(job.id)
    audit.record(action, outcome, username=username, target=target, detail=detail, job_id=job.id if job else None)


def describe_failure(exc_type: type | None, value: BaseException | None, timeout: int) -> str:
    """The reason a person reads on the job page and in the API's `error`."""
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return f"timed out after {timeout} s (JOB_TIMEOUT_SECONDS); nothing was kept"
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return "the worker running this job stopped (killed or lost) before it finished; nothing was kept"
    if isinstance(value, StorageError | PgToolError | backups.BackupError | restore.RestoreError):
        return str(value)
    if isinstance(value, OSError) and value.errno == errno.ENOSPC:
        return f"the worker's disk is full ({value.filename or 'temp folder'}); free space or move INSTANCE_PATH"
    if value is not None and type(value).__module__.startswith("psycopg"):
        return f"database error: {str(value).strip().splitlines()[0] if str(value).strip() else type(value).__name__}"
    return f"{exc_type.__name__ if exc_type else 'error'}: {value}"


def on_failure(job: Job, connection, exc_type=None, value=None, traceback=None) -> None:
    settings = runtime.settings()
    meta = job.meta
    kind, who, filename = meta.get("kind", "job"), meta.get("requested_by", "?"), meta.get("filename")
    error = describe_failure(exc_type, value, job.timeout or settings.job_timeout_seconds)
    try:
        if meta.get("upload_id") and filename:
            with contextlib.suppress(StorageError):  # else the next backup's stale-upload sweep removes it
                runtime.storage().abort_upload(filename, meta["upload_id"])
        if kind == "backup" and filename and not meta.get("published"):
            # Killed after the upload completed but before its manifest: not a finished backup.
            for name in (filename, *catalog.sidecar_names(filename)):
                runtime.storage().delete(name)
        error += _undo_restore(settings, meta)
    except Exception as exc:  # noqa: BLE001 - the reason, lock and audit below must still happen
        error += f"; cleaning up failed too ({type(exc).__name__}: {str(exc).strip()[:200]})"
    finally:
        meta["error"] = error
        job.save_meta()
        _finish(job, kind, "failed", who, filename, error)
        alerts.deliver(
            alerts.Alert(f"{kind}-failed", f"{kind} of {settings.target.dbname} failed: {error}",
                         {"job": job.id, "file": filename or "", "requested_by": who}),
            settings,
        )  # fmt: skip


def _undo_restore(settings, meta: dict) -> str:
    """Whatever a failed restore left on the server, put right; returns words to add to the reason."""
    target = settings.target
    note = ""
    set_aside, scratch = meta.get("set_aside_database"), meta.get("scratch_database")
    if set_aside and restore.put_back(target, set_aside):
        note = f"; the live database {target.dbname} was put back as it was"
    elif set_aside:
        with pgtools.admin_connect(target) as conn:
            if pgtools.database_exists(conn, set_aside):
                note = f"; the swap had finished, the previous database is kept as {set_aside}"
    elif scratch or meta.get("kind") == "restore":
        note = f"; the live database {target.dbname} was not touched"
    if scratch:
        restore.drop_scratch(target, scratch)
    folder = meta.get("temp_folder")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    return note
