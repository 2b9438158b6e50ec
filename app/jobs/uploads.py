"""The short job after an upload: pg_restore reads the uploaded archive's table of contents on the worker.

Enqueued by `queue.check_upload_later` with plain names only. A file pg_restore can read gets its summary
(tables, schemas) in its signed manifest and becomes restorable; one it cannot read is refused and deleted,
and the audit log says why.
"""

from __future__ import annotations

from rq import get_current_job

from app import services
from app.adapters import postgres
from app.adapters.pg_restore import ArchiveError
from app.adapters.storage import StorageError
from app.domain import upload
from app.jobs.runtime import console, console_job
from app.services.listing_cache import listing_changed
from app.store import audit


@console_job
def check_upload_job(filename: str, uploaded_by: str) -> dict:
    """Record the archive's summary, or refuse the upload and delete it when pg_restore cannot read it."""
    job, settings, ours = get_current_job(), services.settings(), console()
    job_id = job.id if job else None
    tools = postgres.installed_clients("pg_restore", settings.pg_bin_dirs)
    if not tools:
        raise postgres.PgToolError("no pg_restore is installed on the worker; the upload stays unchecked")
    try:
        # The newest pg_restore reads archives of every older pg_dump.
        env = postgres.child_env(ours.target)
        checked = upload.check_upload(ours.storage, filename, pg_restore_path=tools[-1].path, env=env,
                                      signing_key=settings.signing_key)  # fmt: skip
    except ArchiveError as exc:
        reason = str(exc)[:800]
        try:
            upload.discard(ours.storage, filename)
            gone = "it was deleted"
        except StorageError as failed:
            gone = f"deleting it failed: {failed}"
        audit.record("upload", "refused", username=uploaded_by, target=filename, job_id=job_id,
                     detail=f"pg_restore cannot read the uploaded file ({reason}); {gone}")  # fmt: skip
        listing_changed(settings, services.redis())
        return {"filename": filename, "refused": True, "reason": reason}
    audit.record("upload", "ok", username=uploaded_by, target=filename, job_id=job_id,
                 detail=f"checked: {checked.tables} tables in {checked.schemas} schemas")  # fmt: skip
    listing_changed(settings, services.redis())
    return {"filename": filename, "refused": False, "tables": checked.tables, "schemas": checked.schemas}
