"""Putting things right after a job failed, and saying why it failed, in words a person reads.

The jobs layer calls these from its one failure callback with the facts the job recorded
(upload id, scratch and set-aside database names); nothing here knows about RQ.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil

from app.adapters import encryption, postgres
from app.adapters.postgres import PgToolError, TargetDatabase
from app.adapters.storage import Storage, StorageError
from app.domain import restore
from app.domain.backup import BackupError
from app.domain.catalog import sidecar_names
from app.domain.naming import manifest_name


def abort_upload(storage: Storage, filename: str, upload_id: str) -> None:
    """Abort an unfinished multipart upload; if that fails, the next backup's stale-upload sweep removes it."""
    with contextlib.suppress(StorageError):
        storage.abort_upload(filename, upload_id)


def remove_unfinished_backup(storage: Storage, filename: str) -> None:
    """A dump whose manifest was never written is not a finished backup: remove it and any sidecar.

    One with a manifest stays: the job stopped after finishing it (and the name comes from the job's
    state in Redis, which must not be able to delete a finished backup).
    """
    if storage.stat(manifest_name(filename)) is not None:
        return
    for name in (filename, *sidecar_names(filename)):
        storage.delete(name)


def undo_restore(
    target: TargetDatabase, *, scratch: str | None, set_aside: str | None, was_restore: bool, temp_folder: str | None,
    replaced: str | None = None,
) -> str:
    """Whatever a failed restore or verify left on the server, put right; returns words to add to the reason.

    `replaced`: the swap had finished and the safety backup of the previous database had not; that
    database is kept (never dropped without a complete backup).
    """
    note = ""
    if replaced:
        note = (f"; the restore itself had finished ({target.dbname} holds the backup), but the backup of the "
                f"database it replaced had not: that database is kept as {replaced}")  # fmt: skip
    elif set_aside and restore.put_back(target, set_aside):
        note = f"; the live database {target.dbname} was put back as it was"
    elif set_aside:
        with postgres.admin_connect(target) as conn:
            if postgres.database_exists(conn, set_aside):
                note = f"; the swap had finished, the previous database is kept as {set_aside}"
    elif scratch or was_restore:
        note = f"; the live database {target.dbname} was not touched"
    if scratch:
        restore.drop_scratch(target, scratch)
    if temp_folder:
        shutil.rmtree(temp_folder, ignore_errors=True)
    return note


def describe_error(value: BaseException | None) -> str | None:
    """The reason for an error the domain knows; None for anything else (the caller names it)."""
    if isinstance(value, StorageError | PgToolError | BackupError | restore.RestoreError | encryption.EncryptionError):
        return str(value)
    if isinstance(value, OSError) and value.errno == errno.ENOSPC:
        # A restore's copy of the archive says so itself (RestoreError, naming RESTORE_TMP_DIR): what is left
        # writing to the worker's disk is a backup into a folder store.
        return (f"the worker's disk is full ({value.filename or 'the backup folder'}); free space there, or point "
                "BACKUP_STORAGE_URL at a folder on a disk with more room")  # fmt: skip
    if isinstance(value, postgres.DatabaseError):
        first_line = str(value).strip().splitlines()[0] if str(value).strip() else type(value).__name__
        return f"database error: {first_line}"
    return None


# A failure's reason in plain words, for the activity page, the banner and the job page's
# heading; the full message (often a tool's own words) is shown folded beside it. The first rule
# that matches wins, so the narrower causes come first: a missing database's message also says the
# connection failed, and must not send people to check firewalls. No setting names: viewers read these.
_PLAIN_REASONS = tuple((re.compile(pattern, re.IGNORECASE), words) for pattern, words in (
    ("made no progress for", "it made no progress for too long and was stopped"),
    ("the longest a job may", "it ran longer than a job may run and was stopped"),
    ("worker running this job stopped", "the worker running it stopped before it finished"),
    ("queue no longer knows it", "the job was lost when Redis was restarted or emptied"),
    ("does not exist on the server", "the live database does not exist on the server"),
    (r'database "[^"]*" does not exist', "the database does not exist on the server: check its name"),
    (r'role "[^"]*" does not exist', "the database server has no user by the console's user name"),
    ("password authentication failed|no password supplied|password is required",
     "the database server refused the console's password"),
    (r"timeout expired|timed out|statement timeout|lock timeout",
     "the database server did not answer in time"),
    ("could not extend file", "the database server's disk is full"),
    ("no space left on device|disk is full", "the worker's disk is full"),
    ("permission denied (for|to)|must be owner|must be (a )?superuser|insufficient privilege",
     "the console's database user lacks a permission it needs"),
    ("permission denied", "the worker may not read or write a file it needs"),
    ("could not translate host name|name or service not known|nodename nor servname",
     "the database server's host name is unknown"),
    ("connection refused|could not connect|connection failed", "the database refused connections"),
    ("the s3 endpoint cannot be reached", "the backup store could not be reached"),
    ("s3 refused the credentials", "the backup store refused the console's keys"),
    ("accessdenied", "the backup store refused access"),
    ("checksum", "the downloaded file does not match its checksum: the backup is damaged"),
    ("archive cannot be read", "the backup file is not a readable pg_dump archive"),
    ("archive is incomplete", "the backup file could not be downloaded completely"),
    ("pg_restore failed", "pg_restore could not load the backup"),
    ("pg_dump failed", "pg_dump could not dump the database"),
    ("no longer in the store", "the backup is no longer in the store"),
    ("not the file that was confirmed", "the backup was replaced in the store after it was confirmed"),
    ("changed in the store while", "the backup was replaced in the store while it was being restored"),
    ("not requested through the console", "nobody asked for this job through the console"),
    ("is not trusted", "the backup is not signed by this team's key"),
    ("more than this store takes", "the backup is larger than the store takes in one file"),
    ("outgrew its plan", "the backup grew past the parts planned for it"),
    ("stages up to", "the worker's temp folder has no room for the upload's parts"),
))  # fmt: skip


def plain_reason(error: str) -> str:
    """Why a job failed, in a few plain words; the error's first clause when no rule matches."""
    for pattern, words in _PLAIN_REASONS:
        if pattern.search(error):
            return words
    first = error.split("; ")[0].strip()
    return first[:200] or "the job failed without saying why"
