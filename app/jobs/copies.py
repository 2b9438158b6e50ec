"""Second copies (3-2-1): the job that copies a backup to one copy store and runs retention there, and the store
a restore reads from when the first one cannot be read.

`copy_job` is enqueued after each backup's manifest is written (`queue.copy_backup_later`), one per copy store,
with plain names only (target, file, store): the store's address and keys are the worker's own settings. It
handles its own failure: the outcome is recorded in the console store (`app.store.copies`, never Redis), a
"copy-failed" alert goes out and the job fails; the backup it copies has already succeeded and stays so.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

from rq import get_current_job

from app import services
from app.adapters.storage import StorageError
from app.domain import backup as backups
from app.domain import cleanup
from app.domain import copies as copying
from app.domain.alerts import Alert, job_link
from app.domain.console import ConsoleBackups
from app.formatting import human_duration, human_size
from app.jobs import runtime
from app.jobs.notify import notify
from app.jobs.runtime import console, console_job
from app.jobs.state import JobRecord
from app.services.listing_cache import listing_changed
from app.store import audit
from app.store import copies as copy_records


class CopyRefused(Exception):
    """The job names a store this target does not copy to (a job written into Redis by hand)."""


@console_job
def copy_job(filename: str, store: str) -> dict:
    """Stream `filename` and its manifest to the copy store `store`, read it back, then retention there."""
    job, settings, ours = get_current_job(), services.settings(), console()
    if store not in {s.name for s in settings.copies}:
        raise CopyRefused(f"{store!r} is not one of this target's copy stores; nothing was copied")
    theirs = replace(ours, storage=services.copy_store_of(runtime.app(), store), cache=None)
    job_id = job.id if job else None
    started = time.monotonic()
    try:
        # Uploads left by killed copy jobs cost money, as a backup's do in the first store (backup_job sweeps those).
        theirs.storage.abort_stale_uploads(older_than=timedelta(seconds=max(6 * 3600, settings.job_max_seconds + 3600)))
        copied = copying.copy_backup(ours.storage, theirs.storage, filename)
    except BaseException as exc:  # a timeout too: whatever stops the copy, it is not verified and people hear
        error = cleanup.describe_error(exc) if isinstance(exc, Exception) else None
        error = error or f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        copy_records.record_failed(settings.target_name, store, filename, error)
        audit.record("copy", "failed", username=None, target=filename, job_id=job_id,
                     detail=f"copy to store {store} ({theirs.storage.description}) failed: {error}")  # fmt: skip
        details = {"file": filename, "store": store, "reason": error,
                   **({"job": job_link(settings.public_url, job_id)} if job_id else {})}  # fmt: skip
        notify(settings, services.redis(), Alert("copy-failed", f"Copy of {filename} to store {store} failed",
                                                 details))  # fmt: skip
        raise
    copy_records.record_verified(settings.target_name, store, filename, copied.sha256, copied.size)
    deleted, failures = _retention(theirs, store, filename, job_id)
    seconds = round(time.monotonic() - started, 3)
    audit.record("copy", "ok", username=None, target=filename, job_id=job_id,
                 detail=f"copied to store {store} ({theirs.storage.description}) and read back: "
                        f"{human_size(copied.size)}, sha256 {copied.sha256}, in {human_duration(seconds)}"
                        + (f"; retention there deleted {len(deleted)} older backup(s)" if deleted else ""))  # fmt: skip
    listing_changed(settings, services.redis())
    return {"filename": filename, "store": store, "size": copied.size, "sha256": copied.sha256, "verified": True,
            "seconds": seconds, "deleted": deleted, "delete_failures": failures}  # fmt: skip


def _retention(theirs: ConsoleBackups, store: str, filename: str, job_id: str | None) -> tuple[list, dict]:
    """The target's retention policy, applied to the copy store on its own listing."""
    settings = services.settings()
    deleted, failures = backups.apply_retention(theirs, theirs.listing(), policy=services.retention_policy(settings),
                                                just_made=filename)  # fmt: skip
    copy_records.forget(settings.target_name, store, deleted)
    trigger = f"retention in store {store} after the copy of {filename}"
    for name in deleted:
        audit.record("retention-delete", "ok", target=name, detail=f"deleted by {trigger}", job_id=job_id)
    for name, error in failures.items():
        audit.record("retention-delete", "failed", target=name, detail=f"{trigger} could not delete it: {error}",
                     job_id=job_id)  # fmt: skip
    return deleted, failures


def readable_console(ours: ConsoleBackups, filename: str, record: JobRecord | None = None) -> ConsoleBackups:
    """`ours`, or, when its store cannot be read or lacks `filename`, the same backups in the first copy store
    (in the target's `copies` order) that has a verified copy of it and answers; the job page says which.

    Verified means the console store recorded a read-back whose sha256 matched (Redis could not say so). The
    restore still checks the download against the sha256 that was confirmed, wherever it reads it from."""
    try:
        if ours.storage.stat(filename) is not None:
            return ours
        why = f"{filename} is missing from it"
    except StorageError as exc:
        why = str(exc)
    settings = services.settings()
    verified = copy_records.verified_stores(settings.target_name, filename)
    for store in (s.name for s in settings.copies if s.name in verified):
        storage = services.copy_store_of(runtime.app(), store)
        try:
            if storage.stat(filename) is None:
                continue
        except StorageError:
            continue
        note = f"{filename} was read from its verified copy in store {store}"
        if record is not None and note not in (record.state.warning or ""):  # the restore asks twice
            record.warn(f"the first store could not be read ({why}); {note}")
        return replace(ours, storage=storage, cache=None)
    return ours  # no copy answers: the first store's own error is what the job reports
