"""The RQ job functions. Each gets plain names, runs domain steps in order, and records its state.

They are enqueued by dotted path (`app.jobs.tasks.backup_job`, see `queue.start_job`), so the
queue never imports this module. Failure handling lives in one place, `on_failure`, which RQ
calls for every failure: an exception, a timeout, or a worker that died (RQ's abandoned-job
cleanup). It records the reason in words, has the domain clean up what the job left (upload,
scratch database, set-aside database), frees the lock and writes the audit record. A job
never marks a failure as done itself.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rq import get_current_job
from rq.job import Job

from app import services
from app.config import TargetDatabase
from app.domain import alerts, catalog, cleanup, partial_restore, preflight, provenance, restore, roles, safety, trends
from app.domain import backup as backups
from app.domain.console import ConsoleBackups
from app.domain.provenance import UNTRUSTED_WARNING
from app.formatting import human_count, human_duration, human_size
from app.jobs import copies, history, kept_databases
from app.jobs.lifecycle import NotRequested, begin, clean_up_failed, finish
from app.jobs.locks import DatabaseLock
from app.jobs.notify import job_alert, notify
from app.jobs.queue import JOB_KINDS, copy_backup_later, drop_previous_database_later, mark_backup
from app.jobs.runtime import console, console_job
from app.jobs.state import JobRecord, JobState
from app.jobs.stopping import stopped_by
from app.services.listing_cache import listing_changed
from app.store import audit
from app.store.models import JobRun


@console_job
def backup_job(requested_by: str) -> dict:
    """Plan → stream → publish → retention."""
    job, settings, ours = get_current_job(), services.settings(), console()
    record, _ = begin(job, "backup")
    result, listed, plan = _dump_into_store(ours, record, requested_by)
    _audit_retention(result, requested_by, job.id if job else None)
    record.phase("done", bytes_total=result.size, bytes_done=result.size)
    mark_backup(settings, services.redis())  # BACKUP_MIN_INTERVAL_SECONDS counts from the finish too
    copy_backup_later(settings, services.redis(), result.filename)  # copies: one job per copy store
    _warn_if_size_dropped([b for b in listed if b.filename not in result.deleted], result.filename, record)
    detail = f"{human_size(result.size)} ({human_count(result.size, 'byte')}), sha256 {result.sha256}"
    if plan.recipients:
        detail += f"; encrypted with age to {len(plan.recipients)} recipient(s)"
    if result.delete_failures:
        detail += f"; retention could not delete {len(result.delete_failures)} file(s)"
    summary = f"saved {result.filename}"
    if result.deleted:
        summary += f"; retention deleted {len(result.deleted)} older backup(s)"
    finish(job, "backup", "ok", requested_by, result.filename, detail, summary=summary, size=result.size)
    return result.to_json()


def _dump_into_store(
    ours: ConsoleBackups, record: JobRecord, requested_by: str, *, source: TargetDatabase | None = None,
    phase: str | None = None,
) -> tuple[backups.BackupResult, list[catalog.Backup], backups.BackupPlan]:
    """Plan → stream → publish → retention: a backup of the target, dumped from `source` (default: the
    target itself; a restore's safety backup dumps the database it set aside). `phase` names every step
    of it as one (a restore shows its safety backup as one step); else each has its own."""
    settings = services.settings()
    dumped = ours if source is None else replace(ours, target=source)
    record.phase(phase or "preparing")
    named_at = datetime.now(UTC)  # the name's time comes before pg_dump's snapshot, as it always did
    tool = backups.choose_dump(dumped.target, compression=settings.backup_compression, bin_dirs=settings.pg_bin_dirs)
    ours.storage.check()
    # Uploads left by killed jobs (here or in another environment's console) cost money: sweep.
    # Older than the longest a job may run (JOB_MAX_SECONDS): never the live upload of a long backup.
    ours.storage.abort_stale_uploads(older_than=timedelta(seconds=max(6 * 3600, settings.job_max_seconds + 3600)))
    # The plan refuses a backup the store cannot take before pg_dump starts (BackupRefused).
    plan = backups.plan_backup(dumped, tool, now=named_at, recipients=settings.encryption_recipients,
                               role_passwords=settings.backup_role_passwords)  # fmt: skip
    record.remember(**({"filename": plan.filename} if source is None else {"upload_filename": plan.filename}))
    record.phase(phase or "dumping", bytes_total=plan.estimate(0) or None)
    result = backups.stream_backup(
        plan,
        dumped.target,
        ours.storage,
        on_upload_started=lambda upload_id: record.remember(upload_id=upload_id),
        on_progress=lambda done: record.advance(done, plan.estimate(done) or None),
        on_log=record.log_line,
    )
    if not phase:
        record.phase("recording")
    manifest = backups.manifest_for(plan, result, console=ours, requested_by=requested_by,
                                    signing_key=settings.signing_key)  # fmt: skip
    backups.publish_manifest(ours.storage, result, manifest)
    listing_changed(settings, services.redis())  # the list shows the new backup at once
    record.remember(upload_id=None, published=True)
    if not phase:
        record.phase("retention")
    # Listed again after publishing (the plan's listing predates this backup and any pin made since),
    # from the store itself: this job's console has no listing cache.
    listed = ours.listing()
    try:
        result.deleted, result.delete_failures = backups.apply_retention(
            ours, listed, policy=services.retention_policy(settings), just_made=result.filename
        )
    finally:
        listing_changed(settings, services.redis())
    return result, listed, plan


def _audit_retention(result: backups.BackupResult, requested_by: str, job_id: str | None) -> None:
    """One audit row per file retention deleted (or failed to delete), naming the backup that triggered it."""
    trigger = f"retention after backup {result.filename}"
    for name in result.deleted:
        audit.record("retention-delete", "ok", username=requested_by, target=name, detail=f"deleted by {trigger}",
                     job_id=job_id)  # fmt: skip
    for name, error in result.delete_failures.items():
        audit.record("retention-delete", "failed", username=requested_by, target=name,
                     detail=f"{trigger} could not delete it: {error}", job_id=job_id)  # fmt: skip


def _warn_if_size_dropped(listed: list[catalog.Backup], filename: str, record: JobRecord) -> None:
    settings = services.settings()
    points = trends.backup_trend(listed, {}, owner=console().owner, drop_percent=settings.size_drop_alert_percent)
    drop = trends.drop_percent_of(points, filename)
    if drop is None:
        return
    message = f"possible data loss: this backup is {drop} % smaller than the backups before it"
    record.warn(message)
    details = {"file": filename, **({"job": alerts.job_link(settings.public_url, record.job.id)} if record.job else {})}
    notify(settings, services.redis(), alerts.Alert("size-drop", f"{filename}: {message}", details))


@console_job
def restore_job(filename: str, requested_by: str, **choices: bool) -> dict:
    """Check → download → [create the missing roles, an admin's choice] → preflight → restore into scratch
    (with the backup's owners, grants and database properties, unless an admin chose `without_owners`) → swap in
    → back up the replaced database (the safety backup) → keep it for RESTORE_KEEP_PREVIOUS, or drop it.

    With `swap_back` (an admin's choice, on a safety backup whose database is still kept), nothing is
    downloaded: that kept database is swapped back in the live one's place (`_swap_back`), then the same.

    The choices (`without_owners`, `create_roles`, `swap_back`) are read from the request in the console
    store; `choices`, the same in the job's arguments, are only there to be ignored (Redis is writable)."""
    job, settings, ours = get_current_job(), services.settings(), console()
    record, confirmed = begin(job, "restore", filename)
    without_owners, create_roles = confirmed.chosen("without_owners"), confirmed.chosen("create_roles")
    swap_back = confirmed.chosen("swap_back")
    started = time.monotonic()
    record.phase("checking")
    backup = copies.readable_console(ours, filename, record).find(filename)  # copies: or a verified copy
    if backup is None:
        raise restore.RestoreRefused(f"{filename} is no longer in the store; nothing was changed")
    if into_database := _chosen_name(confirmed, "into_database"):
        return _restore_into_new_database(job, record, confirmed, backup, into_database,
                                          _chosen_name(confirmed, "into_target"), without_owners=without_owners,
                                          create_roles=create_roles)  # fmt: skip
    if _chosen_tables(confirmed):  # the request refuses it too: see docs/restore.md, "Part of a backup"
        raise restore.RestoreRefused(f"{partial_restore.INTO_LIVE_REFUSED}; nothing was changed")
    set_aside = restore.scratch_name(ours.target.dbname, "previous")
    if swap_back:
        copy, ended = _swap_back(backup, record, confirmed, set_aside)
    else:
        with restore.temp_folder(settings.restore_tmp_dir) as folder:
            copy = _restore_into_scratch(backup, folder, record, confirmed, trusted_only=False,
                                         with_owners=not without_owners, create_roles=create_roles)  # fmt: skip
            record.remember(set_aside_database=set_aside)
            record.phase("swapping")
            ended = restore.swap_in(ours.target, copy.database, set_aside, keep_old=settings.keep_old_database)
            record.remember(scratch_database=None, set_aside_database=None, replaced_database=set_aside)
    swapped = time.monotonic()
    safety_backup, safety_error = _back_up_replaced(ours, record, requested_by, set_aside)
    record.remember(replaced_database=None)
    kept, kept_until = _keep_or_drop(set_aside, safety_backup, job.id if job else None)
    outcome = restore.RestoreOutcome(
        filename=filename,
        database=ours.target.dbname,
        sha256=copy.sha256,
        verified=copy.checksum_verified,
        trusted=copy.trusted,
        tables=copy.tables,
        seconds=round(swapped - started, 3),
        kept_old_database=kept,
    )
    if safety_error:
        record.warn(f"the safety backup of the replaced database failed ({safety_error}); "
                    f"it is kept as {set_aside}, nothing of it was dropped")  # fmt: skip
    record.phase("done", bytes_total=backup.size, bytes_done=backup.size)
    detail = _restore_detail(ours.target.dbname, filename, outcome.seconds, ended, copy, set_aside, safety_backup,
                             safety_error, without_owners=without_owners, kept_until=kept_until,
                             swapped_back=copy.database if swap_back else None)  # fmt: skip
    summary = (f"{ours.target.dbname} is swapped back: it holds the data of {filename} again" if swap_back
               else f"{ours.target.dbname} now holds the data of {filename}")  # fmt: skip
    finish(job, "restore", "ok", requested_by, filename, detail, size=backup.size, summary=summary)
    # Restores are rare and replace live data: the team hears of every one.
    notify(settings, services.redis(), job_alert(
        "restore-finished", settings, action="restore", job_id=job.id if job else None, requested_by=requested_by,
        seconds=outcome.seconds, filename=filename))  # fmt: skip
    # What the job page needs to say what changed and how to undo it.
    return {**outcome.to_json(), "backup_taken_at": backup.created_at.isoformat(),
            "safety_backup": safety_backup, "safety_backup_of_replaced": safety_backup,
            "sessions_ended": ended, "without_owners": without_owners, "notes": list(copy.notes),
            "created_roles": list(copy.created_roles), "streamed": copy.streamed,
            "kept_until": kept_until.isoformat() if kept_until else None,
            "swapped_back": copy.database if swap_back else None}


def _chosen_name(confirmed: JobRun, name: str) -> str | None:
    """A name chosen with the request (the new database's, its target's), from the console store."""
    value = json.loads(confirmed.options or "{}").get(name)
    return value if isinstance(value, str) and value else None


def _chosen_tables(confirmed: JobRun) -> tuple[str, ...]:
    """The tables of a partial restore, as the request stored them (the archive's list decides which exist)."""
    value = json.loads(confirmed.options or "{}").get("tables")
    if value is None:
        return ()
    if problem := partial_restore.selection_problem(value):
        raise restore.RestoreRefused(f"{problem}; nothing was changed")
    return tuple(sorted(set(value)))


def _restore_into_new_database(job: Job | None, record: JobRecord, confirmed: JobRun, backup: catalog.Backup,
                               name: str, into_target: str | None, *, without_owners: bool,
                               create_roles: bool) -> dict:  # fmt: skip
    """Restore into a new database `name` on the server of `into_target` (None: this target's): the same steps
    as a restore into the scratch database, which then takes the new name instead of being swapped in. The
    live database is never touched and nothing is replaced, so there is no safety backup. A name taken by the
    time of the rename is refused, and that database left as it is; on any failure the scratch is dropped."""
    settings, ours = services.settings(), console()
    requested_by, filename = confirmed.requested_by, backup.filename
    record.remember(new_database=name)  # the job page's steps
    tables = _chosen_tables(confirmed)
    destination = settings.for_target(into_target).target if into_target else ours.target
    if problem := restore.new_database_name_problem(name):
        raise restore.RestoreRefused(f"{problem}; nothing was changed")
    if restore.database_exists(destination, name):  # before the download; the rename checks again
        raise restore.RestoreRefused(f"{restore.already_exists(destination, name)}; nothing was changed")
    started = time.monotonic()
    with restore.temp_folder(settings.restore_tmp_dir) as folder:
        try:
            copy = _restore_into_scratch(backup, folder, record, confirmed, trusted_only=False,
                                         with_owners=not without_owners, create_roles=create_roles,
                                         destination=destination, tables=tables)  # fmt: skip
            record.phase("renaming")  # not a phase a job may be stopped in (app/jobs/stopping.py)
            restore.rename_into_new(destination, copy.database, name)
        except BaseException:
            # Dropped here, on the destination's server (the clean-up after a failure knows only this target's).
            if scratch := record.state.scratch_database:
                with contextlib.suppress(Exception):
                    restore.drop_scratch(destination, scratch)
                    record.remember(scratch_database=None)
            raise
        record.remember(scratch_database=None)
    seconds = round(time.monotonic() - started, 3)
    connection = restore.connection_string(destination, name)
    server = f"{destination.host}:{destination.port}" + (f" (target {into_target})" if into_target else "")
    record.phase("done", bytes_total=backup.size, bytes_done=backup.size)
    only = f" (only the tables {', '.join(tables)})" if tables else ""
    detail = (f"restored {filename}{only} into a new database {name} on {server} in {human_duration(seconds)} "
              f"({connection}); the live database was not touched{_copy_notes(copy, without_owners)}")  # fmt: skip
    finish(job, "restore", "ok", requested_by, filename, detail, size=backup.size,
           summary=f"restored into new database {name}")  # fmt: skip
    notify(settings, services.redis(), job_alert(
        "restore-finished", settings, action="restore", job_id=job.id if job else None, requested_by=requested_by,
        seconds=seconds, filename=filename))  # fmt: skip
    return {"filename": filename, "new_database": name, "into_target": into_target, "server": server,
            "connection": connection, "sha256": copy.sha256, "verified": copy.checksum_verified,
            "trusted": copy.trusted, "tables": copy.tables, "seconds": seconds,
            "backup_taken_at": backup.created_at.isoformat(), "without_owners": without_owners,
            "notes": list(copy.notes), "created_roles": list(copy.created_roles),
            "streamed": copy.streamed, "only_tables": list(tables)}  # fmt: skip


def _swap_back(backup: catalog.Backup, record: JobRecord, confirmed: JobRun,
               set_aside: str) -> tuple[restore.ScratchCopy, int]:  # fmt: skip
    """The kept database whose data `backup` (a safety backup) holds goes back in the live one's place; the
    live one is set aside as `set_aside`. Returns it as the copy swapped in, and the sessions ended.

    The kept database is claimed first (the sweep can then no longer drop it); if the swap fails, it is
    closed and kept again, until its own time."""
    settings, ours = services.settings(), console()
    manifest = catalog.read_manifest(ours.storage, backup.filename) if backup.has_manifest else None
    origin = provenance.provenance_of(backup, manifest, settings.signing_key)
    restore.require_confirmed_file(backup, origin, sha256=confirmed.archive_sha256, size=confirmed.size)
    # From the console store, not Redis: which database goes back is not for a Redis writer to say.
    previous = kept_databases.kept_with(settings, backup.filename)
    if previous is None or not kept_databases.claim(previous):
        raise restore.RestoreRefused(kept_databases.no_longer_kept(backup.filename))
    record.remember(set_aside_database=set_aside)
    record.phase("swapping")
    try:
        ended = restore.swap_back(ours.target, previous.database, set_aside, keep_old=settings.keep_old_database)
    except BaseException:
        with contextlib.suppress(Exception):  # the failure itself is what the job reports
            restore.open_set_aside(ours.target, previous.database, False)
        kept_databases.release(previous)
        raise
    kept_databases.forget(settings, previous.database)  # it is the live database now
    record.remember(set_aside_database=None, replaced_database=set_aside)
    # Nothing was downloaded or counted: the data is the kept database's, which its safety backup holds.
    return restore.ScratchCopy(previous.database, origin.sha256 or "", origin.trusted, origin.trusted, origin.reason,
                               None), ended  # type: ignore[arg-type]  # fmt: skip


def _keep_or_drop(set_aside: str, safety_backup: str | None, job_id: str | None) -> tuple[str | None, datetime | None]:
    """What becomes of the database a restore replaced: (kept as, kept until). Without a checked safety backup,
    or with KEEP_OLD_DATABASE, it stays (no time); with RESTORE_KEEP_PREVIOUS it is kept that long, closed,
    for "Swap back"; else a job drops it after "finished"."""
    settings, redis = services.settings(), services.redis()
    if settings.keep_old_database or safety_backup is None:
        return set_aside, None
    if settings.restore_keep_previous_seconds:
        until = datetime.now(UTC) + timedelta(seconds=settings.restore_keep_previous_seconds)
        kept_databases.keep(settings, set_aside, until, safety_backup, job_id)
        return set_aside, until
    kept_databases.to_drop_now(settings, set_aside, safety_backup, job_id)  # what allows the drop job
    drop_previous_database_later(settings, redis, set_aside)
    return None, None


def _restore_detail(database: str, filename: str, seconds: float, ended: int, copy: restore.ScratchCopy,
                    set_aside: str, safety_backup: str | None, safety_error: str | None, *, without_owners: bool,
                    kept_until: datetime | None = None, swapped_back: str | None = None) -> str:  # fmt: skip
    """The audit log's line for a finished restore: what was restored, and everything it had to say."""
    took = human_duration(seconds)
    detail = (f"swapped {database} back to {swapped_back}, the database set aside with {filename}, in {took}; "
              if swapped_back else f"restored {database} from {filename} in {took}; ")  # fmt: skip
    detail += f"{ended} session(s) ended; "
    detail += (f"the replaced database is backed up as {safety_backup}" if safety_backup
               else f"its safety backup failed ({safety_error}), it is kept as {set_aside}")  # fmt: skip
    if kept_until:
        detail += f", and kept as {set_aside} until {kept_until.isoformat(timespec='seconds')} for a swap back"
    return detail + _copy_notes(copy, without_owners)


def _copy_notes(copy: restore.ScratchCopy, without_owners: bool) -> str:
    """What a restore had to say of its copy, each after "; ": the choices made, streaming, what was not carried
    over, provenance."""
    detail = ""
    if without_owners:
        detail += "; without owners and grants (an admin's choice)"
    if copy.streamed:
        detail += "; streamed from the store into pg_restore (no room for a copy on the worker's disk)"
    for note in copy.notes:
        detail += f"; {note}"
    if not copy.checksum_verified:
        detail += "; no manifest, checksum not verified"
    if not copy.trusted:
        detail += f"; untrusted backup ({copy.untrusted_reason})"
    return detail


@console_job
def verify_job(filename: str, requested_by: str, **choices: bool) -> dict:
    """Prove a backup restorable: restore it into a scratch database, count, drop. Live is never touched.

    `trusted_only` (the default; only an admin's request clears it) refuses a backup whose manifest
    is not signed by this team's key before anything is downloaded or created.
    """
    job, settings, ours = get_current_job(), services.settings(), console()
    record, confirmed = begin(job, "verify", filename)
    trusted_only = confirmed.chosen("trusted_only", default=True)  # from the request, not from Redis
    started = time.monotonic()
    record.phase("checking")
    backup = ours.find(filename)
    if backup is None:
        raise restore.RestoreRefused(f"{filename} is no longer in the store")
    with restore.temp_folder(settings.restore_tmp_dir) as folder:
        copy = _restore_into_scratch(backup, folder, record, confirmed, trusted_only)
        record.phase("counting")
        rows = restore.row_counts(ours.target, copy.database)
        record.no_more_stops()  # from here on the report is written: a stop would undo nothing
        restore.drop_scratch(ours.target, copy.database)
        record.remember(scratch_database=None)
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
    # Signed: anyone who can write to the store can plant a report; only ours proves the backup restorable.
    catalog.record_verification(ours.storage, filename, provenance.sign(report, settings.signing_key))
    listing_changed(settings, services.redis())
    record.phase("done", bytes_total=backup.size, bytes_done=backup.size)
    total = sum(rows.values())
    summary = f"{human_count(len(rows), 'table')}, {human_count(total, 'row')}, {human_duration(report['seconds'])}"
    finish(job, "verify", "ok", requested_by, filename, summary, summary=f"restorable: {summary}", size=backup.size)
    return report


def _back_up_replaced(ours: ConsoleBackups, record: JobRecord, requested_by: str,
                      set_aside: str) -> tuple[str | None, str | None]:  # fmt: skip
    """Back up the database a restore replaced, as it was at the swap (every write up to then; nobody
    writes to it since), as a backup of the target: the safety backup "Undo" offers. No connection to
    the live database waits for it. Once published, the file is read back from the store and its size
    and sha256 compared with what was written. Returns (its name, None), or (None, why it failed or
    did not check): then the replaced database is kept, never dropped without a complete, checked backup.
    """
    source = replace(ours.target, dbname=set_aside)
    restore.open_set_aside(ours.target, set_aside, True)
    try:
        result, _, _ = _dump_into_store(ours, record, requested_by, source=source, phase="safety")
    except Exception as exc:  # noqa: BLE001 - the restore stands; what failed is said, the database kept
        return None, cleanup.describe_error(exc) or f"{type(exc).__name__}: {exc}"
    finally:
        restore.open_set_aside(ours.target, set_aside, services.settings().keep_old_database)
    record.remember(upload_filename=None)
    _audit_retention(result, requested_by, record.job.id if record.job else None)
    record.phase("safety", bytes_total=result.size)  # read back whole: progress, or the watch stops the job
    problem = safety.check_stored(ours.storage, result.filename, size=result.size, sha256=result.sha256,
                                  on_progress=record.advance)  # fmt: skip
    if problem:
        return None, f"{result.filename} was written, but reading it back did not prove it whole: {problem}"
    return result.filename, None


def _restore_into_scratch(
    backup: catalog.Backup, folder: Path, record: JobRecord, confirmed: JobRun, trusted_only: bool,
    with_owners: bool = False, create_roles: bool = False, destination: TargetDatabase | None = None,
    tables: tuple[str, ...] = (),
) -> restore.ScratchCopy:
    """Check provenance, download, check the checksum, preflight, restore into a new scratch database.

    Shared by restore and verify (which restores without owners: it proves the data restorable on
    any server). Before anything is downloaded or created, the file must be the one that was
    confirmed (`confirmed`: its request in the console store) and, when `trusted_only`, trusted; the
    download is then checked against the confirmed sha256. The preflight refuses, before the scratch
    database exists, an archive this server or the console's role cannot restore faithfully.

    Without room for a copy in `folder` (RESTORE_TMP_DIR), the archive streams from the store into
    pg_restore: it is read whole first ("downloading", into no file) and its checksum checked before anything
    is touched, then read again, the same version (`Storage.version_of`), for the preflight's head and pg_restore.

    `destination`: the server the scratch is made on (a restore into a new database on another target's);
    default this target's. `tables`: only these (a partial restore), checked against the archive's own list.
    """
    settings, ours = services.settings(), copies.readable_console(console(), backup.filename, record)  # copies
    server = destination or ours.target
    manifest = catalog.read_manifest(ours.storage, backup.filename) if backup.has_manifest else None
    origin = provenance.provenance_of(backup, manifest, settings.signing_key)
    restore.require_confirmed_file(backup, origin, sha256=confirmed.archive_sha256, size=confirmed.size)
    if trusted_only and not origin.trusted:
        raise restore.RestoreRefused(
            f"{backup.filename} is not trusted ({origin.reason}); only an admin may verify it, nothing was changed"
        )
    scratch = restore.scratch_name(ours.target.dbname)
    record.remember(temp_folder=str(folder))
    size, free = restore.plain_size(backup, manifest), shutil.disk_usage(folder).free
    streamed = not restore.has_room(size, free)
    if streamed:
        record.warn(restore.streaming_note(size, free, settings.restore_tmp_dir))
    # Both ways the archive is read whole from the store ("downloading") and its checksum checked before
    # anything is touched; streamed, it is read again into pg_restore, so the job page's steps are the same.
    record.phase("downloading", bytes_total=backup.size)
    if streamed:
        archive = restore.stream_archive(ours.storage, backup, folder, manifest, target=server, free=free,
                                         identity_file=settings.encryption_identity_file,
                                         bin_dirs=settings.pg_bin_dirs, on_progress=record.advance)  # fmt: skip
    else:
        archive = restore.fetch_archive(ours.storage, backup, folder, manifest,
                                        identity_file=settings.encryption_identity_file, on_progress=record.advance)
    record.phase("verifying", bytes_total=backup.size, bytes_done=backup.size)
    if not origin.trusted:
        record.warn(f"this backup is not trusted: {origin.reason}; {UNTRUSTED_WARNING}")
    created = _create_roles(backup, manifest, origin, record, confirmed, server) if create_roles else []
    contents = restore.preflight(server, archive.path, with_owners=with_owners,
                                 extensions=(manifest or {}).get("extensions"), bin_dirs=settings.pg_bin_dirs)
    partial = partial_restore.plan(contents, tables) if tables else None  # refuses a name the archive lacks
    record.remember(scratch_database=scratch)
    restore.create_scratch_like(server, scratch, contents.database)
    notes = restore.apply_database_properties(server, scratch, contents.database, with_owners=with_owners)
    notes += restore.create_extensions_like(server, scratch, (manifest or {}).get("extensions"), contents,
                                            with_owners=with_owners)  # fmt: skip
    # Streamed, the bar follows the bytes (one table may take hours); each entry pg_restore handles is progress too.
    record.phase("restoring", bytes_total=backup.size if streamed else None)
    restored = restore.restore_into(server, archive, scratch, contents, jobs=settings.restore_jobs,
                                    with_owners=with_owners, bin_dirs=settings.pg_bin_dirs,
                                    on_progress=(lambda done, total: record.save()) if streamed else record.items,
                                    on_log=record.log_line,
                                    left_out=partial.left_out if partial else frozenset())  # fmt: skip
    if partial and partial.note:
        notes.append(partial.note)
    restore.apply_database_properties(server, scratch, contents.database, with_owners=with_owners,
                                      connection_limit=True)  # fmt: skip
    if not with_owners:
        notes += restore.close_public_access(server, scratch)
    return restore.ScratchCopy(scratch, archive.sha256, archive.checksum_verified, origin.trusted, origin.reason,
                               restored, tuple(notes), tuple(created), streamed)  # fmt: skip


def _create_roles(backup: catalog.Backup, manifest: dict | None, origin: provenance.Provenance, record: JobRecord,
                  confirmed: JobRun, server: TargetDatabase) -> list[str]:  # fmt: skip
    """The admin's choice "create the missing roles from the backup", after the download was checked and before
    the preflight: only from a signed manifest (a forged one could make any role), audited at once (the roles
    stay if the restore fails later)."""
    definitions = roles.definitions_in(manifest) if origin.trusted else None
    if definitions is None:
        raise restore.RestoreRefused(
            f"{backup.filename} has no role definitions signed by this team ({origin.reason or 'an older backup'}); "
            "create the roles yourself, or restore without owners and grants; nothing was changed")  # fmt: skip
    needs = preflight.needs_in(manifest)
    wanted = set(needs.roles if needs else definitions) - {"pg_database_owner"}
    try:
        created = roles.create_missing(server, definitions, wanted)
    except roles.RolesError as exc:
        raise restore.RestoreRefused(f"{exc}; nothing was changed") from None
    if created:
        audit.record("create-roles", "ok", username=confirmed.requested_by, target=backup.filename,
                     detail=f"created the roles {', '.join(created)} from the backup", job_id=record.job.id
                     if record.job else None)  # fmt: skip
    return created


@console_job
def drop_previous_database(database: str) -> None:
    """After a restore: drop the database it set aside (no record, lock or audit row of its own).

    Only one still closed to connections, as the swap leaves it: a database kept by KEEP_OLD_DATABASE
    is open again. And only one the console store has claimed for its drop (`kept_databases.may_drop`): a job
    pushed onto the queue by hand must not drop one kept for a swap back or whose safety backup failed.
    """
    settings = services.settings()
    if not kept_databases.may_drop(settings, database):
        raise restore.RestoreError(f"{database} is not dropped: the console store has no checked safety backup "
                                   "of it claimed for a drop (it may be kept for a swap back)")
    restore.drop_set_aside(console().target, database)
    kept_databases.forget(settings, database)


@console_job
def on_failure(job: Job, connection, exc_type=None, value=None, traceback=None) -> None:
    state = JobState.from_meta(job.meta)
    if exc_type is not None and issubclass(exc_type, NotRequested):
        # Nothing ran, and the job's meta is whatever was written to Redis: clean nothing up on its word.
        if (run := history.find(job.id)) is not None and run.status == "stopped":
            job.meta["stopped_by"] = stopped_by(job.id)  # stopped while it waited: the page says so, not "refused"
            job.save_meta()
            return
        job.meta["error"] = str(value)
        job.save_meta()
        # Only a lock this very job id holds (a request whose record this worker's console store lacks).
        settings = services.settings()
        DatabaseLock(services.redis(), settings.redis_namespace, settings.lock_name).release(job.id)
        audit.record(state.kind if state.kind in JOB_KINDS else "job", "refused", username=None,
                     target=str(state.filename)[:255] if state.filename else None, detail=str(value), job_id=job.id)
        return
    with services.acting_on(state.target):  # RQ calls this without the job's arguments
        clean_up_failed(job, state, exc_type, value)
