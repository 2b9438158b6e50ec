"""Taking a backup: pg_dump → [age encryption →] sha256 → upload, streamed, with nothing left behind on failure."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from app.adapters import encryption, postgres
from app.adapters.database_facts import database_facts, expected_dump_size
from app.adapters.pg_dump import RunningDump, read_output
from app.adapters.postgres import TargetDatabase
from app.adapters.storage import MIN_PART_SIZE, Storage, StorageError, Upload, WontFit
from app.domain.catalog import Backup, read_manifest, sidecar_names, write_manifest
from app.domain.console import ConsoleBackups
from app.domain.naming import both_forms
from app.domain.provenance import sign
from app.domain.retention import RetentionPolicy, expired_backups


class BackupError(Exception):
    """The dump failed; the message carries pg_dump's own last error lines."""


class BackupRefused(BackupError):
    """Refused before pg_dump started (the backup cannot fit the store); nothing was dumped."""


@dataclass(frozen=True)
class BackupPlan:
    filename: str
    dump: postgres.ClientTool
    server_version: str
    compression: list[str]
    expected_bytes: int  # the archive's estimate (`expected_archive_size`), for the progress bar; 0: unknown
    database_bytes: int
    part_size: int = MIN_PART_SIZE  # every part but the last, planned from the estimate and the store's limits
    compression_method: str = ""  # what was used, e.g. "zstd:3", "gzip:1" (recorded in the manifest)
    recipients: tuple[str, ...] = ()  # age recipients the archive is encrypted to; () for a plain `.dump`
    named_at: datetime | None = None  # the moment the name gives; pg_dump's snapshot must not precede it
    extensions: tuple[dict[str, str], ...] = ()  # name, version, schema, owner: what pg_dump does not keep
    # Roles, owners, grantors, event triggers, superuser-only extensions: the restore page checks them
    # against its server before the passkey is asked (app/domain/preflight.py). Empty: not read.
    restore_needs: dict[str, list[str]] = field(default_factory=dict)
    role_definitions: tuple[dict, ...] = ()  # the named roles' attributes and memberships (app/domain/roles.py)
    tables: tuple[str, ...] = ()  # "schema.table": what the restore page offers for a partial restore

    def estimate(self, done: int) -> int:
        """The dump's expected size for the progress bar, `done` bytes in: the estimate, or the database's
        size when there is none or the dump has outgrown it (so the bar does not sit at 99 %)."""
        if self.expected_bytes and done <= self.expected_bytes:
            return self.expected_bytes
        return max(self.database_bytes, done)


@dataclass
class BackupResult:
    filename: str
    size: int  # of the stored object (the age file, when encrypted)
    sha256: str  # of the stored object
    started_at: str
    finished_at: str
    seconds: float
    # Of those, how long the store took to finish the file after its last byte: S3's
    # CompleteMultipartUpload, or the folder's fsync and rename.
    finish_seconds: float = 0.0
    deleted: list[str] = field(default_factory=list)
    delete_failures: dict[str, str] = field(default_factory=dict)
    # The pg_dump archive inside an encrypted backup (None for a plain one: it is the stored object).
    archive_sha256: str | None = None
    archive_size: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DumpTool:
    """The pg_dump that fits the server, and the compression arguments that build supports."""

    dump: postgres.ClientTool
    server_version: str
    compression: postgres.Compression


def choose_dump(target: TargetDatabase, *, compression: str, bin_dirs: tuple[str, ...] = ()) -> DumpTool:
    """Fail early (before anything starts) on a version mismatch or a compression method the
    chosen pg_dump build lacks."""
    server_major, server_full = postgres.server_version(target)
    dump = postgres.pick_client("pg_dump", server_major, bin_dirs)
    return DumpTool(dump, server_full, postgres.compression_for(compression, dump))


def plan_backup(
    console: ConsoleBackups,
    tool: DumpTool,
    *,
    now: datetime | None = None,
    recipients: tuple[str, ...] = (),
    role_passwords: bool = False,
) -> BackupPlan:
    """Pick the name, the size estimate and the part size. With recipients, the backup is `.dump.age`;
    `role_passwords` (BACKUP_ROLE_PASSWORDS): the roles' password hashes go into the manifest too.

    BackupRefused when the store cannot take a file of the estimated size: before pg_dump starts,
    not after the whole dump was sent."""
    encrypted = bool(recipients)
    now = now or datetime.now(UTC)
    filename = console.owner.filename_at(now, console.zone, encrypted=encrypted)
    # One listing serves the name check and the previous size. The lock allows one backup of this
    # target at a time, so a name free in this listing stays free until this backup takes it.
    listed = console.listing()
    taken = {b.filename for b in listed}
    # Two backups within one second (plain or encrypted, one series): never overwrite, never share a
    # time. Names count seconds, so wait for the next one.
    while taken.intersection(both_forms(filename)):
        time.sleep(1.0 - time.time() % 1.0)
        now = datetime.now(UTC)
        filename = console.owner.filename_at(now, console.zone, encrypted=encrypted)
    facts = database_facts(console.target, role_passwords=role_passwords)
    previous = console.newest(listed)  # trusted only: a planted file must not steer the plan
    previous_manifest = read_manifest(console.storage, previous.filename) if previous else None
    expected = expected_archive_size(
        previous_size=previous.size if previous else 0,
        previous_database_size=int((previous_manifest or {}).get("database_size") or 0),
        database_bytes=facts.size,
        sampled=(lambda: expected_dump_size(console.target, compressed=tool.compression.method != "none")),
    )
    try:
        # Room for the estimate to double, and for the database's own size (read from the server, not the store).
        part_size = console.storage.plan_upload(expected, room_for=facts.size)
    except WontFit as exc:
        raise BackupRefused(str(exc)) from None
    return BackupPlan(
        filename=filename,
        named_at=now,
        dump=tool.dump,
        server_version=tool.server_version,
        compression=tool.compression.args,
        compression_method=tool.compression.method,
        expected_bytes=expected,
        database_bytes=facts.size,
        part_size=part_size,
        recipients=recipients,
        extensions=facts.extensions,
        restore_needs=facts.restore_needs(),
        role_definitions=facts.role_definitions,
        tables=facts.tables,
    )


def expected_archive_size(*, previous_size: int, previous_database_size: int, database_bytes: int,
                          sampled: Callable[[], int | None]) -> int:  # fmt: skip
    """About how large this backup's archive will be: the previous backup's size scaled by the database's
    growth since (when its manifest recorded the database's size then), else the previous size; for a
    first backup, `sampled()` (a compression probe on the database's largest tables); 0 when unknown."""
    if previous_size and previous_database_size:
        return round(previous_size * database_bytes / previous_database_size)
    if previous_size:
        return previous_size
    return sampled() or 0


def stream_backup(
    plan: BackupPlan,
    target: TargetDatabase,
    storage: Storage,
    *,
    running: RunningDump | None = None,
    on_upload_started: Callable[[str], None] = lambda upload_id: None,
    on_progress: Callable[[int], None] = lambda done: None,
    on_log: Callable[[str], None] | None = None,
) -> BackupResult:
    """Run pg_dump (or take over `running`, started from this plan's tool) into the store; `on_log` gets each
    line of pg_dump's log (of one started here).

    On any failure (a timeout or a stop included) pg_dump is stopped and the upload is aborted."""
    if running is not None and plan.named_at is not None and running.started < plan.named_at:
        running.stop()  # the name waited for a free second: no snapshot may precede the name's time
        running = None
    # pg_dump first: it reads the catalog while the store creates the upload.
    running = running or RunningDump(plan.dump, plan.compression, target, on_line=on_log)
    stored = encryption.Digest()
    upload: Upload | None = None

    def store(block: bytes | memoryview) -> None:
        stored.update(block)
        upload.write(block)  # type: ignore[union-attr] - begun before the first block is read
        on_progress(stored.size)

    try:
        upload = storage.begin_upload(plan.filename, plan.part_size)
        on_upload_started(getattr(upload, "upload_id", ""))
        plain = _pass_on(running, plan.recipients, store, stored)
        _check_finished(running, plain)
        finishing = time.monotonic()
        upload.complete()
        finish_seconds = time.monotonic() - finishing
    except BaseException:
        running.stop()
        # The first error is the one to report; an abort S3 refuses now is swept by a later backup.
        if upload is not None:
            with contextlib.suppress(StorageError):
                upload.abort()
        raise
    running.stop()  # closes its output
    return BackupResult(
        filename=plan.filename,
        size=stored.size,
        sha256=stored.hexdigest(),
        started_at=running.started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        seconds=round(time.monotonic() - running.clock, 3),
        finish_seconds=round(finish_seconds, 3),
        archive_sha256=plain.hexdigest() if plan.recipients else None,
        archive_size=plain.size if plan.recipients else None,
    )


def _pass_on(running: RunningDump, recipients: tuple[str, ...], store: Callable[[bytes | memoryview], None],
             stored: encryption.Digest) -> encryption.Digest:  # fmt: skip
    """pg_dump's output into `store`, encrypted to `recipients` when there are any; the plain archive's digest
    (`stored` itself when it is not encrypted)."""
    assert running.proc.stdout is not None
    dumped = read_output(running.proc.stdout.fileno())
    if not recipients:
        for block in dumped:
            store(block)
        return stored
    plain = encryption.Digest()
    encryption.encrypt_stream(dumped, recipients, store, plain)
    return plain


def _check_finished(running: RunningDump, plain: encryption.Digest) -> None:
    """A dump that failed or wrote nothing is no backup: raise BackupError with pg_dump's own words."""
    code = running.proc.wait()
    running.errors.join(timeout=5)
    if code != 0:
        raise BackupError(f"pg_dump failed (exit {code}): {' '.join(running.errors.lines) or 'no message'}")
    if plain.size == 0:
        raise BackupError("pg_dump wrote nothing")


def manifest_for(
    plan: BackupPlan,
    result: BackupResult,
    *,
    console: ConsoleBackups,
    requested_by: str,
    signing_key: bytes,
) -> dict:
    """The manifest, signed: only a console holding the team's signing key can make a trusted one.

    `sha256` and `size` are always the stored object's; an encrypted backup also records its
    recipients (public keys) and the plain archive's sha256 and size.
    """
    encrypted = {
        "encryption": {"format": encryption.FORMAT, "recipients": list(plan.recipients)},
        "archive_sha256": result.archive_sha256,
        "archive_size": result.archive_size,
    } if plan.recipients else {}  # fmt: skip
    return sign({
        "format": 1,
        "filename": result.filename,
        "sha256": result.sha256,
        "size": result.size,
        "app_name": console.owner.app_name,
        "environment": console.owner.environment,
        "database": console.target.dbname,
        "database_size": plan.database_bytes,  # the next backup scales its estimate by the growth since
        "server_version": plan.server_version,
        "pg_dump_version": plan.dump.version,
        "pg_dump_major": plan.dump.major,
        "compression": " ".join(plan.compression),
        "compression_method": plan.compression_method,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "requested_by": requested_by,
        "extensions": list(plan.extensions),
        **({"restore_needs": plan.restore_needs} if plan.restore_needs else {}),
        **({"role_definitions": list(plan.role_definitions)} if plan.restore_needs else {}),
        **({"tables": list(plan.tables)} if plan.restore_needs else {}),  # read with the rest, at backup time
        **encrypted,
    }, signing_key)  # fmt: skip


def publish_manifest(storage: Storage, result: BackupResult, manifest: dict) -> None:
    """Write the manifest; if that fails the dump goes too, so no half-recorded backup remains."""
    try:
        write_manifest(storage, result.filename, manifest)
    except BaseException:
        with contextlib.suppress(StorageError):
            storage.delete(result.filename)
        raise


def apply_retention(
    console: ConsoleBackups, listed: list[Backup], *, policy: RetentionPolicy, just_made: str
) -> tuple[list[str], dict[str, str]]:
    """Delete our expired backups (with their sidecars); one failed delete does not stop the rest.

    `listed` must be read after the new backup was published, so that it and any pin made
    meanwhile are seen.
    """
    deleted, failures = [], {}
    for backup in expired_backups(listed, console.owner, policy, just_made, console.zone, trusted=console.is_trusted):
        try:
            console.storage.delete(backup.filename)
            for sidecar in sidecar_names(backup.filename):
                console.storage.delete(sidecar)
            deleted.append(backup.filename)
        except StorageError as exc:
            failures[backup.filename] = str(exc)
    return deleted, failures
