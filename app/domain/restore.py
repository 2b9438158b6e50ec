"""Restoring a backup without ever leaving the environment without its database.

The archive is downloaded and checked, restored into a scratch database, and only a restore that
succeeded is swapped in (app/domain/restore_database.py): a failure before the swap leaves the live
database as it was. The guards here refuse a restore before anything is touched.

A worker whose restore folder has no room for a copy of the archive streams it from the store into
pg_restore instead (`has_room`, `stream_archive`): one job, entries in the archive's order. It reads the
archive twice, both times pinned to the version it found first (`Storage.version_of`): once to compare its
checksums with the manifest before anything is touched, then into pg_restore (checked again at the end).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.adapters import database_admin, encryption, pg_restore, postgres
from app.adapters.postgres import TargetDatabase
from app.adapters.storage import MiB, ObjectChanged, Storage
from app.domain import preflight as preflight_rules
from app.domain.archive import GRANTOR, ArchiveContents, grants_of, read_contents
from app.domain.catalog import Backup
from app.domain.provenance import Provenance

# The scratch database's steps, named here too: to its callers a restore is this one module.
from app.domain.restore_database import (  # noqa: F401
    RestoreError,
    RestoreRefused,
    already_exists,
    apply_database_properties,
    connected_sessions,
    connection_string,
    create_extensions_like,
    create_scratch,
    create_scratch_like,
    database_exists,
    drop_scratch,
    drop_set_aside,
    is_scratch_name,
    new_database_name_problem,
    open_set_aside,
    put_back,
    rename_into_new,
    row_counts,
    scratch_name,
    swap_back,
    swap_in,
)
from app.formatting import human_size

DOWNLOAD_CHUNK = 5 * MiB  # × DOWNLOAD_THREADS in memory: the worker stays under 150 MB (bench/README.md)
DOWNLOAD_THREADS = 4
ROOM_MARGIN = 64 * MiB  # left free beside a downloaded copy (with 5 % of its size): the disk is never filled
FIRST_HEAD = MiB  # the first read of a streamed archive's head; its table of contents is at the start


# --------------------------------------------------------------------------- guards (web and job)


def passkey_matches(given: str, passkey: str | None, passkey_sha256: str | None) -> bool:
    """Constant-time check of the restore passkey against the plain setting or its sha256."""
    expected = passkey_sha256 or (hashlib.sha256(passkey.encode()).hexdigest() if passkey else None)
    if not expected:
        return False
    given_digest = hashlib.sha256(given.encode()).hexdigest()
    return hmac.compare_digest(given_digest, expected)


def require_confirmed_file(backup: Backup, origin: Provenance, *, sha256: str | None, size: int | None) -> None:
    """Refuse `backup` unless it is the file that was confirmed: the `size` it had then and, when it was
    trusted then, a signed manifest still giving that `sha256` (the download is checked against it).

    Whoever can write to the store can swap a file between the admin's confirmation and the job.
    """
    replaced = f"{backup.filename} is not the file that was confirmed"
    if size is not None and backup.size != size:
        raise RestoreRefused(f"{replaced}: it was {size} bytes and is now {backup.size}; nothing was changed")
    if sha256 is not None and not origin.trusted:
        raise RestoreRefused(f"{replaced}: it was signed then, and now {origin.reason}; nothing was changed")
    if sha256 is not None and origin.sha256 != sha256:
        raise RestoreRefused(f"{replaced}: its signed manifest now gives another sha256; nothing was changed")


# --------------------------------------------------------------------------- the steps


@dataclass
class RestoreOutcome:
    filename: str
    database: str
    sha256: str
    verified: bool  # False when the backup has no manifest (e.g. made by the old system)
    trusted: bool  # its manifest is signed by this team's key (see provenance)
    tables: int
    seconds: float
    kept_old_database: str | None

    def to_json(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class ScratchCopy:
    """A backup restored into a scratch database, and what is known of where it came from."""

    database: str
    sha256: str
    checksum_verified: bool
    trusted: bool
    untrusted_reason: str
    tables: int
    notes: tuple[str, ...] = ()  # what of the backup's database could not be carried over, in words
    created_roles: tuple[str, ...] = ()  # made from the backup's definitions first, by an admin's choice
    streamed: bool = False  # streamed from the store into pg_restore: no room for a copy on the worker's disk


@dataclass(frozen=True)
class Archive:
    """A downloaded backup, ready for pg_restore, and what its checksums proved."""

    path: Path  # the plain pg_dump archive (decrypted while it downloaded, when it was an age file)
    sha256: str  # of the stored object, as the manifest's "sha256"
    checksum_verified: bool  # False when there was no manifest to check against


# --------------------------------------------------------------------------- room on the worker's disk


def plain_size(backup: Backup, manifest: dict | None) -> int:
    """The size of the archive pg_restore reads: the stored size, or an age file's plain size from its manifest.

    age only adds to a file (16 bytes per 64 KiB and a header), so the stored size is never too small; a
    manifest's figure is used only where age's overhead can explain it (a manifest is not proof).
    """
    recorded = (manifest or {}).get("archive_size") if backup.encrypted else None
    overhead = (backup.size // (64 * 1024) + 1) * 16 + 64 * 1024
    if isinstance(recorded, int) and backup.size - overhead <= recorded <= backup.size:
        return recorded
    return backup.size


def room_needed(archive_size: int) -> int:
    """Free bytes a downloaded copy of the archive needs: its size, 5 % more and ROOM_MARGIN left free."""
    return archive_size + archive_size // 20 + ROOM_MARGIN


def has_room(archive_size: int, free: int) -> bool:
    """Whether a copy of an archive of `archive_size` bytes fits in `free` bytes (else it is streamed)."""
    return free >= room_needed(archive_size)


def streaming_note(archive_size: int, free: int, folder: str) -> str:
    """What the job page says of a restore that streams, with the numbers."""
    return (f"There is not room for a copy of the {human_size(archive_size)} archive in {folder} "
            f"({human_size(free)} free): it is streamed from the store into pg_restore, one table at a time. "
            "It is read twice, the same version both times: first to check its checksum before anything is "
            "touched, then into pg_restore")  # fmt: skip


def fetch_archive(
    storage: Storage,
    backup: Backup,
    folder: Path,
    manifest: dict | None,
    *,
    identity_file: str | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> Archive:
    """Download the backup into `folder`, decrypting an age file in the stream (one copy on disk, the plain one).

    The stored object's sha256 is checked against the manifest, and for an encrypted backup
    the plain archive's too, before this returns: nothing is touched before both match.
    """
    path = folder / "archive.dump"
    with _room_in(folder), open(path, "wb") as out:
        sha256, verified = _read_checked(storage, backup, manifest, identity_file, out.write, on_progress)
    return Archive(path, sha256, verified)


@contextlib.contextmanager
def _room_in(folder: Path) -> Iterator[None]:
    """A disk that fills while the archive (or its head) is written into `folder`, said with the setting
    that moves it: the job only knows the folder's free space when it starts, and others write there too."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise RestoreError(f"the worker's disk is full: {folder.parent} (RESTORE_TMP_DIR) has no room left for the "
                           "archive; free space there or set RESTORE_TMP_DIR to a folder with more room, then try "
                           "again; nothing was changed") from None  # fmt: skip


@dataclass
class StreamedArchive:
    """A backup that pg_restore reads as it streams from the store (no room for a copy on the worker's disk).

    Its checksums matched the manifest (`sha256`, `checksum_verified`) on a first read of the `version`
    that every later read is pinned to. `path` holds only the head of the plain archive, where pg_dump
    writes the table of contents: what the preflight reads. `feed` streams the whole archive again
    (decrypting an age file) and checks its checksums once more when the last byte has passed.
    """

    storage: Storage
    backup: Backup
    manifest: dict | None
    path: Path
    identity_file: str | None = None
    on_progress: Callable[[int], None] = lambda done: None  # bytes of the stored object read so far
    sha256: str = ""
    checksum_verified: bool = False
    version: str | None = None  # the stored object's, from `Storage.version_of`: what every read gets

    def feed(self, write: Callable[[bytes], None]) -> None:
        """The archive's plain bytes into `write`, in order; raises (RestoreError) unless its checksums match."""
        self.sha256, self.checksum_verified = _read_checked(self.storage, self.backup, self.manifest,
                                                            self.identity_file, write, self.on_progress,
                                                            self.version)  # fmt: skip


def stream_archive(storage: Storage, backup: Backup, folder: Path, manifest: dict | None, *, target: TargetDatabase,
                   free: int, identity_file: str | None = None, bin_dirs: tuple[str, ...] = (),
                   on_progress: Callable[[int], None] = lambda done: None) -> StreamedArchive:  # fmt: skip
    """The backup, checked, to stream into pg_restore, with the head of its plain archive in `folder` for the
    preflight.

    Whoever can write to the store could swap the file for one of the same size, whose SQL would run in the
    scratch database before a checksum computed on the way into pg_restore could fail. So the whole stored
    object is read first (`on_progress` follows it) and its checksums compared with the manifest's, before
    anything is touched; every read, this one and the later ones, is pinned to the version found first.

    The head is the first MiB, then 4, 16 … until pg_restore reads the table of contents from it, using at
    most half the `free` bytes of `folder`: a table of contents larger than that is refused with the numbers.
    """
    version = storage.version_of(backup.filename)
    sha256, verified = _read_checked(storage, backup, manifest, identity_file, lambda block: None, on_progress,
                                     version)  # fmt: skip
    head, limit = folder / "archive-head.dump", free // 2
    tool = _pg_restore_tool(target, bin_dirs)
    wanted = min(FIRST_HEAD, limit)
    while True:
        got = _write_head(storage, backup, head, wanted, manifest, identity_file, version)
        if got < wanted or (got > 0 and _head_is_enough(tool.path, head, target)):  # (got < wanted: all of it)
            return StreamedArchive(storage, backup, manifest, head, identity_file, on_progress, sha256, verified,
                                   version)  # fmt: skip
        if wanted >= limit:
            raise RestoreRefused(
                f"pg_restore cannot read the table of contents of {backup.filename} from its first "
                f"{human_size(limit)}, half the free space in {folder.parent} ({human_size(free)} free), and the "
                "archive cannot be copied there either: set RESTORE_TMP_DIR to a folder with more free space; "
                "nothing was changed"
            )
        wanted = min(wanted * 4, limit)


class _HeadFull(Exception):
    """The head holds the bytes it was asked for."""


def _write_head(storage: Storage, backup: Backup, path: Path, size: int, manifest: dict | None,
                identity_file: str | None, version: str) -> int:  # fmt: skip
    """The first `size` bytes of the plain archive into `path` (all of it when shorter); how many there are."""
    written = 0

    def write(block: bytes) -> None:
        nonlocal written
        piece = block[: size - written]
        out.write(piece)
        written += len(piece)
        if written >= size:
            raise _HeadFull

    blocks = _ordered_blocks(storage, backup, lambda done: None, version)
    with _room_in(path.parent), open(path, "wb") as out, contextlib.closing(blocks), contextlib.suppress(_HeadFull):
        _plain_bytes(backup, blocks, write, manifest, identity_file)
    return written


def _head_is_enough(tool: str, head: Path, target: TargetDatabase) -> bool:
    """Whether pg_restore lists the table of contents from `head`; a file that is no pg_dump archive at all
    is enough too (the preflight says what it is)."""
    with open(head, "rb") as start:
        if start.read(5) != b"PGDMP":  # the custom format's magic
            return True
    try:
        pg_restore.table_of_contents(tool, head, postgres.child_env(target))
    except pg_restore.ArchiveError:  # cut short in its table of contents
        return False
    return True


def _read_checked(storage: Storage, backup: Backup, manifest: dict | None, identity_file: str | None,
                  write: Callable[[bytes], object], on_progress: Callable[[int], None],
                  version: str | None = None) -> tuple[str, bool]:  # fmt: skip
    """Read the whole object (only `version` of it, when given), passing its plain bytes to `write`; raise
    unless every byte arrived and its checksums match the manifest's. (The stored object's sha256, and
    whether a manifest checked it.)"""
    with contextlib.closing(_ordered_blocks(storage, backup, on_progress, version)) as blocks:
        stored, plain = _plain_bytes(backup, blocks, write, manifest, identity_file)
    return stored.hexdigest(), _check_digests(backup, manifest, stored, plain)


def _plain_bytes(backup: Backup, blocks: Iterator[bytes], write: Callable[[bytes], object], manifest: dict | None,
                 identity_file: str | None) -> tuple[encryption.Digest, encryption.Digest]:  # fmt: skip
    """Pass the archive's plain bytes to `write`, decrypting an age file; returns the digests of the stored
    bytes and (for an age file) of the plain ones. An exception of `write` stops it, as itself."""
    stored, plain = encryption.Digest(), encryption.Digest()
    if not backup.encrypted:
        for block in blocks:
            stored.update(block)
            write(block)
    else:
        _decrypt_into(write, plain, blocks, stored, manifest, identity_file)
    return stored, plain


def _check_digests(backup: Backup, manifest: dict | None, stored: encryption.Digest, plain: encryption.Digest) -> bool:
    """Raise unless every byte arrived and the checksums match the manifest's; False when it has none."""
    if stored.size != backup.size:
        raise RestoreError(f"downloaded {stored.size} bytes of {backup.size}; the archive is incomplete")
    verified = check_checksum(manifest, stored.hexdigest())
    recorded = (manifest or {}).get("archive_sha256") if backup.encrypted else None
    if recorded and recorded != plain.hexdigest():
        raise RestoreError(
            f"checksum mismatch: the decrypted archive's sha256 is {plain.hexdigest()}, its manifest says "
            f"{recorded}; nothing was changed"
        )
    return verified


def _decrypt_into(write: Callable[[bytes], object], plain: encryption.Digest, blocks: Iterator[bytes],
                  stored: encryption.Digest, manifest: dict | None, identity_file: str | None) -> None:  # fmt: skip
    recipients = ((manifest or {}).get("encryption") or {}).get("recipients") or []
    if not identity_file:
        raise RestoreError(
            f"{encryption.no_matching_key_message(recipients)}: the worker has no identity file "
            "(BACKUP_ENCRYPTION_IDENTITY_FILE is not set); nothing was changed"
        )
    try:
        identities = encryption.load_identities(identity_file)
        encryption.decrypt_stream(blocks, identities, lambda block: (plain.update(block), write(block)), stored)
    except encryption.NoMatchingKey:
        raise RestoreError(f"{encryption.no_matching_key_message(recipients)}; nothing was changed") from None
    except encryption.EncryptionError as exc:
        check_checksum(manifest, stored.hexdigest())  # a changed file says so before "cannot decrypt"
        raise RestoreError(f"{exc}; nothing was changed") from None


def _ordered_blocks(storage: Storage, backup: Backup, on_progress: Callable[[int], None],
                    version: str | None = None) -> Iterator[memoryview]:  # fmt: skip
    """The object's bytes in order, fetched by up to DOWNLOAD_THREADS parallel ranged reads (each of
    `version` only, when given).

    Each range is read straight into one of DOWNLOAD_THREADS buffers, which are reused: memory
    stays at DOWNLOAD_THREADS × DOWNLOAD_CHUNK whatever the backup's size. A yielded block is only
    valid until the next one is asked for (every caller hashes and writes it before that).
    """
    free = deque(bytearray(DOWNLOAD_CHUNK) for _ in range(min(DOWNLOAD_THREADS, -(-backup.size // DOWNLOAD_CHUNK))))
    pending: deque[tuple[Future, bytearray]] = deque()
    done = 0

    def fetch(start: int, buffer: bytearray) -> memoryview:
        view = memoryview(buffer)[: min(DOWNLOAD_CHUNK, backup.size - start)]
        try:
            got = storage.read_into(backup.filename, start, view, version=version)
        except ObjectChanged:
            raise RestoreError(f"{backup.filename} changed in the store while it was being restored (replaced or "
                               "rewritten since its first byte was read); none of the new file was restored, "
                               "nothing was changed") from None  # fmt: skip
        if got != len(view):
            raise RestoreError(f"downloaded {start + got} bytes of {backup.size}; the archive is incomplete "
                               "(did the file change in the store?), nothing was changed")  # fmt: skip
        return view

    def hand_on() -> Iterator[memoryview]:
        """The oldest range, once downloaded; its buffer is free again when the caller asks for more."""
        nonlocal done
        future, buffer = pending.popleft()
        block = future.result()
        done += len(block)
        on_progress(done)
        yield block
        free.append(buffer)

    with ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="download") as pool:
        try:
            for start in range(0, backup.size, DOWNLOAD_CHUNK):
                if not free:  # every buffer is downloading or downloaded: hand the oldest on first
                    yield from hand_on()
                buffer = free.popleft()
                pending.append((pool.submit(fetch, start, buffer), buffer))
            while pending:
                yield from hand_on()
        finally:
            for future, _ in pending:
                future.cancel()


def check_checksum(manifest: dict | None, sha256: str) -> bool:
    """True when the manifest's checksum matches; False when there is no manifest to check."""
    if manifest is None or not manifest.get("sha256"):
        return False
    if manifest.get("sha256") != sha256:
        raise RestoreError(
            f"checksum mismatch: the downloaded archive's sha256 is {sha256}, its manifest says "
            f"{manifest.get('sha256')}; the file is damaged, nothing was changed"
        )
    return True


def preflight(target: TargetDatabase, archive: Path, *, with_owners: bool, extensions: object = None,
              bin_dirs: tuple[str, ...] = ()) -> ArchiveContents:  # fmt: skip
    """What the archive holds, if this server and the console's role can restore it faithfully; else refused
    before anything is touched, naming what is missing and what to do.

    The archive's table of contents is the authority here (the restore page judges from the manifest,
    which may be stale or, for an untrusted file, anything): the same rules (`preflight.problems`) run
    on what it names. `with_owners`: every role it names must exist, and a console role that is not a
    superuser must be able to act as each owner and grantor. Without it (an admin's explicit choice),
    objects end up owned by the console's role and no grant is restored. `extensions`: the manifest's.
    """
    tool = _pg_restore_tool(target, bin_dirs)
    try:
        contents = read_contents(tool.path, archive, postgres.child_env(target))
    except pg_restore.ArchiveError as exc:
        raise RestoreError(f"{exc}; nothing was changed") from None
    needs = contents.needs(extensions)
    server = preflight_rules.server_facts(target, needs)
    if server is None:
        raise RestoreError(f"the server of {target.dbname} cannot be asked what it has; nothing was changed")
    refused = preflight_rules.refusing(preflight_rules.problems(needs, server), without_owners=not with_owners)
    if refused:
        raise RestoreRefused(" ".join(p.text for p in refused) + " Nothing was changed.")
    if contents.database and _ICU.search(contents.database.create) and not database_admin.has_icu(target):
        raise RestoreRefused(
            f"The backup's database sorts with ICU (LOCALE_PROVIDER = icu), and the server of {target.dbname} was "
            "built without ICU: its scratch database could not be created. Restore it on a server with ICU, or "
            "with pg_restore by hand into a database of another locale. Nothing was changed.")  # fmt: skip
    return contents


_ICU = re.compile(r"\bLOCALE_PROVIDER\s*=\s*'?icu\b", re.IGNORECASE)


def close_public_access(target: TargetDatabase, scratch: str) -> list[str]:
    """After a restore without owners and grants, which leaves PUBLIC PostgreSQL's default rights (the backup's
    revokes are grants too): no SECURITY DEFINER routine stays executable by everyone, since each now runs
    as the console's role. The notes for the job page, in words."""
    routines = database_admin.close_security_definers(target, scratch)
    notes = ["without grants, PUBLIC has PostgreSQL's default rights on the restored database (it may connect "
             "and run functions): set the grants you need"]  # fmt: skip
    if routines:
        notes.append(f"{len(routines)} SECURITY DEFINER function(s) now run as the console's role, so PUBLIC may no "
                     f"longer execute them: {', '.join(routines[:10])}{' …' if len(routines) > 10 else ''}")
    return notes


def restore_into(
    target: TargetDatabase,
    archive: Archive | StreamedArchive,
    scratch: str,
    contents: ArchiveContents,
    *,
    jobs: int,
    with_owners: bool = True,
    bin_dirs: tuple[str, ...] = (),
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    on_log: Callable[[str], None] = lambda line: None,
    left_out: frozenset[str] = frozenset(),
) -> int:
    """pg_restore into the scratch database; returns the number of tables restored. `on_log` gets each line of
    pg_restore's log; `left_out`, lines of the list not to restore (a partial restore: app/domain/partial_restore.py).

    With owners (`preflight` has checked that every role exists and that the console may act as each
    owner and grantor), objects keep their owners and grants; without (an admin's choice for a backup
    whose roles this server lacks: `--no-owner --no-privileges`), they are owned by the console's role.
    pg_restore replays a grant made by someone else than the object's owner as that role with SET
    SESSION AUTHORIZATION, which only a superuser may: a console that is not one restores every
    other entry with pg_restore, then the grants itself with SET ROLE (`apply_grants`).

    A streamed archive restores with one job, in the archive's order (the list only comments entries
    out, never reorders them), and its checksums are checked before the grants and before this returns.
    """
    tool = _pg_restore_tool(target, bin_dirs)
    by_hand = with_owners and bool(contents.grant_entries) and not _console_is_superuser(target)
    entries = [e for e in contents.entries if not e.of_the_database]
    skipped = ({e.line for e in contents.grant_entries} if by_hand else set()) | left_out
    chosen = [(";" if e.line in skipped else "") + e.line for e in entries] if skipped else None

    def counted(done: int) -> None:
        if entries:
            on_progress(min(done, len(entries)), len(entries))

    streamed = isinstance(archive, StreamedArchive)
    with _room_in(archive.path.parent):  # the list of entries is written there
        code, errors = pg_restore.restore_archive(
            target, tool.path, archive.feed if streamed else archive.path, scratch, folder=archive.path.parent,
            options=[] if with_owners else ["--no-owner", "--no-privileges"], jobs=1 if streamed else jobs,
            use_list=chosen, on_entry=counted, on_line=on_log)  # fmt: skip
    if code != 0:
        raise RestoreError(f"pg_restore failed (exit {code}): {' '.join(errors) or 'no message'}")
    if by_hand:
        grants = contents.grants
        if left_out:  # only the grants of what was restored
            kept = [e for e in contents.grant_entries if e.line not in left_out]
            grants = grants_of(tool.path, archive.path, postgres.child_env(target), kept) if kept else ()
        apply_grants(target, scratch, grants)
    on_progress(len(entries), len(entries))
    return sum(1 for e in entries if e.kind == "TABLE DATA" and e.line not in left_out)


def _pg_restore_tool(target: TargetDatabase, bin_dirs: tuple[str, ...]) -> postgres.ClientTool:
    return postgres.pick_client("pg_restore", postgres.server_version(target)[0], bin_dirs)


def _console_is_superuser(target: TargetDatabase) -> bool:
    with postgres.admin_connect(target) as conn:
        return postgres.is_superuser(conn)


def apply_grants(target: TargetDatabase, scratch: str, grants: tuple[str, ...]) -> None:
    """The archive's grants in the scratch database, each as its grantor (SET ROLE, which a member may, for
    pg_dump's SET SESSION AUTHORIZATION, which only a superuser may); one statement at a time."""
    statements = []
    for statement in grants:
        grantor = GRANTOR.match(statement)
        if grantor:
            statement = f"SET ROLE {grantor.group(1)}"
        elif statement.startswith("RESET SESSION AUTHORIZATION"):
            statement = "RESET ROLE"
        statements.append(statement)
    database_admin.run_statements(target, scratch, statements)


@contextlib.contextmanager
def temp_folder(parent: str):
    """A private folder for the downloaded archive, removed whatever happens."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="restore-", dir=parent))
    os.chmod(folder, 0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
