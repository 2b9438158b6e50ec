"""Restoring a backup without ever leaving the environment without its database.

The seed dropped the live database first and then restored; a failed restore left nothing.
Here the archive is downloaded and checked, restored into a scratch database, and only a
restore that succeeded is swapped in by two renames:

    live ──rename──▶ set-aside        scratch ──rename──▶ live        drop set-aside

Any failure before the swap drops the scratch and leaves the live database as it was. A
failure in the middle of the swap puts the set-aside database back under its own name.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from app.adapters import encryption, postgres
from app.adapters.postgres import TargetDatabase
from app.adapters.storage import MiB, Storage
from app.domain import preflight as preflight_rules
from app.domain.archive import (
    GRANTOR,
    ArchiveContents,
    ArchiveError,
    DatabaseDefinition,
    names_database,
    read_contents,
)
from app.domain.catalog import Backup, recent_backup
from app.domain.naming import Owner
from app.domain.provenance import Provenance

DOWNLOAD_CHUNK = 5 * MiB  # × DOWNLOAD_THREADS in memory: the worker stays under 150 MB (bench/README.md)
DOWNLOAD_THREADS = 4


class RestoreError(Exception):
    """The restore stopped; the message says why and that the live database is unchanged."""


class RestoreRefused(RestoreError):
    """A guard said no before anything was touched."""


# --------------------------------------------------------------------------- guards (web and job)


def passkey_matches(given: str, passkey: str | None, passkey_sha256: str | None) -> bool:
    """Constant-time check of the restore passkey against the plain setting or its sha256."""
    expected = passkey_sha256 or (hashlib.sha256(passkey.encode()).hexdigest() if passkey else None)
    if not expected:
        return False
    given_digest = hashlib.sha256(given.encode()).hexdigest()
    return hmac.compare_digest(given_digest, expected)


def require_recent_backup(
    backups: list[Backup], *, owner: Owner, minutes: int, trusted: Callable[[Backup], bool], now: datetime | None = None
) -> Backup:
    """The seed's rule: no restore without a trusted backup of this environment from the last N minutes."""
    found = recent_backup(backups, owner, timedelta(minutes=minutes), now or datetime.now(UTC), trusted=trusted)
    if found is None:
        raise RestoreRefused(
            f"no backup of the {owner.environment} environment made by this console (signed) in the last "
            f"{minutes} minute(s); create a safety backup first, then restore"
        )
    return found


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


def scratch_name(dbname: str, kind: str = "restore") -> str:
    """A name beside the live one, within PostgreSQL's 63-byte limit."""
    return f"{_scratch_prefix(dbname, kind)}{uuid.uuid4().hex[:8]}"


def is_scratch_name(dbname: str, kind: str, name: str) -> bool:
    """Whether `scratch_name(dbname, kind)` could have made `name`."""
    suffix = name.removeprefix(_scratch_prefix(dbname, kind))
    return suffix != name and len(suffix) == 8 and all(c in "0123456789abcdef" for c in suffix)


def _scratch_prefix(dbname: str, kind: str) -> str:
    return f"{dbname[:40]}_pgc_{kind}_"


@dataclass(frozen=True)
class Archive:
    """A downloaded backup, ready for pg_restore, and what its checksums proved."""

    path: Path  # the plain pg_dump archive (decrypted while it downloaded, when it was an age file)
    sha256: str  # of the stored object, as the manifest's "sha256"
    checksum_verified: bool  # False when there was no manifest to check against


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
    stored, plain = encryption.Digest(), encryption.Digest()
    with open(path, "wb") as out, contextlib.closing(_ordered_blocks(storage, backup, on_progress)) as blocks:
        if not backup.encrypted:
            for block in blocks:
                stored.update(block)
                out.write(block)
        else:
            _decrypt_into(out, plain, blocks, stored, manifest, identity_file)
    if stored.size != backup.size:
        raise RestoreError(f"downloaded {stored.size} bytes of {backup.size}; the archive is incomplete")
    verified = check_checksum(manifest, stored.hexdigest())
    recorded = (manifest or {}).get("archive_sha256") if backup.encrypted else None
    if recorded and recorded != plain.hexdigest():
        raise RestoreError(
            f"checksum mismatch: the decrypted archive's sha256 is {plain.hexdigest()}, its manifest says "
            f"{recorded}; nothing was changed"
        )
    return Archive(path, stored.hexdigest(), verified)


def _decrypt_into(out, plain: encryption.Digest, blocks: Iterator[bytes], stored: encryption.Digest,
                  manifest: dict | None, identity_file: str | None) -> None:  # fmt: skip
    recipients = ((manifest or {}).get("encryption") or {}).get("recipients") or []
    if not identity_file:
        raise RestoreError(
            f"{encryption.no_matching_key_message(recipients)}: the worker has no identity file "
            "(BACKUP_ENCRYPTION_IDENTITY_FILE is not set); nothing was changed"
        )
    try:
        identities = encryption.load_identities(identity_file)
        encryption.decrypt_stream(blocks, identities, lambda block: (plain.update(block), out.write(block)), stored)
    except encryption.NoMatchingKey:
        raise RestoreError(f"{encryption.no_matching_key_message(recipients)}; nothing was changed") from None
    except encryption.EncryptionError as exc:
        check_checksum(manifest, stored.hexdigest())  # a changed file says so before "cannot decrypt"
        raise RestoreError(f"{exc}; nothing was changed") from None


def _ordered_blocks(storage: Storage, backup: Backup, on_progress: Callable[[int], None]) -> Iterator[memoryview]:
    """The object's bytes in order, fetched by up to DOWNLOAD_THREADS parallel ranged reads.

    Each range is read straight into one of DOWNLOAD_THREADS buffers, which are reused: memory
    stays at DOWNLOAD_THREADS × DOWNLOAD_CHUNK whatever the backup's size. A yielded block is only
    valid until the next one is asked for (every caller hashes and writes it before that).
    """
    free = deque(bytearray(DOWNLOAD_CHUNK) for _ in range(min(DOWNLOAD_THREADS, -(-backup.size // DOWNLOAD_CHUNK))))
    pending: deque[tuple[Future, bytearray]] = deque()
    done = 0

    def fetch(start: int, buffer: bytearray) -> memoryview:
        view = memoryview(buffer)[: min(DOWNLOAD_CHUNK, backup.size - start)]
        got = storage.read_into(backup.filename, start, view)
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


def create_scratch(target: TargetDatabase, name: str) -> None:
    with postgres.admin_connect(target) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (target.dbname,)
        ).fetchone()
        if owner is None:
            raise RestoreError(f"the live database {target.dbname} does not exist on the server")
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner[0])
            )
        )


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
    tool = postgres.pick_client("pg_restore", postgres.server_version(target)[0], bin_dirs)
    try:
        contents = read_contents(tool.path, archive, postgres.child_env(target))
    except ArchiveError as exc:
        raise RestoreError(f"{exc}; nothing was changed") from None
    needs = contents.needs(extensions)
    server = preflight_rules.server_facts(target, needs)
    if server is None:
        raise RestoreError(f"the server of {target.dbname} cannot be asked what it has; nothing was changed")
    refused = preflight_rules.refusing(preflight_rules.problems(needs, server), without_owners=not with_owners)
    if refused:
        raise RestoreRefused(" ".join(p.text for p in refused) + " Nothing was changed.")
    return contents


def create_scratch_like(target: TargetDatabase, scratch: str, database: DatabaseDefinition | None) -> None:
    """Create the scratch database as the backup's was created (encoding, locale provider, collation, ctype);
    an archive without its database's entries gets a bare one, owned as the live database is."""
    if database is None:
        return create_scratch(target, scratch)
    with postgres.admin_connect(target) as conn:
        _run_database_statement(conn, database.renamed(scratch).create, scratch)


def apply_database_properties(target: TargetDatabase, scratch: str, database: DatabaseDefinition | None, *,
                              with_owners: bool, connection_limit: bool = False) -> list[str]:  # fmt: skip
    """The backup's owner, comment, settings and ACL on the new scratch database, or (`connection_limit`)
    only its connection limit, which waits until pg_restore is done (it opens `RESTORE_JOBS` sessions).

    The rest runs before pg_restore, so a property the console's role may not set (a custom setting a
    superuser made) refuses the restore before the long part, not after it; pg_restore sets the
    session settings it relies on itself. Without owners, the owner, grants and role settings are left
    out: the database stays owned as the live one. Returns what could not be carried over, in words.
    """
    if database is None:
        return ["the backup holds no database properties (owner, locale, settings, ACL): defaults were used"]
    with postgres.admin_connect(target) as conn:
        for statement in database.renamed(scratch).properties:
            if (" CONNECTION LIMIT " in statement) == connection_limit:
                _apply(conn, statement, scratch, with_owners, target.user)
        if not with_owners and not connection_limit:  # owned as the live database, as before
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                 (target.dbname,)).fetchone()  # fmt: skip
            if owner:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(scratch),
                                                                             sql.Identifier(owner[0])))  # fmt: skip
    return []


def create_extensions_like(target: TargetDatabase, scratch: str, extensions: list[dict] | None,
                           contents: ArchiveContents, *, with_owners: bool) -> list[str]:  # fmt: skip
    """The backup's extensions at their versions, each created by its owner, before pg_restore (whose
    `CREATE EXTENSION IF NOT EXISTS` then leaves them be); returns what could not be, in words.

    pg_dump keeps neither version nor owner: `extensions` comes from the manifest (None for a backup
    made before it recorded them). Only extensions in a schema the new database already has (public)
    can go first; the others are left to pg_restore at the server's default version, and said so.
    """
    if not isinstance(extensions, list):  # a manifest is data from the store
        kept = [e for e in contents.entries if e.kind == "EXTENSION"]
        return ["the backup does not record its extensions' versions: pg_restore created the server's"] if kept else []
    notes, later = [], []
    with psycopg.connect(**target.conninfo(scratch), autocommit=True) as conn:
        available = set(conn.execute("SELECT name, version FROM pg_available_extension_versions").fetchall())
        schemas = {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}
        for extension in (e for e in extensions if isinstance(e, dict)):
            name, version, schema, owner = (str(extension.get(k) or "") for k in ("name", "version", "schema", "owner"))
            if (name, version) not in available:
                notes.append(f"extension {name} {version} is not installed on this server: pg_restore created "
                             "the server's default version")  # fmt: skip
            elif schema not in schemas:
                notes.append(f"extension {name} (schema {schema}) was created by pg_restore at the server's default "
                             f"version, not {version}")  # fmt: skip
            elif not _create_extension(conn, name, version, schema, owner if with_owners else ""):
                later.append((name, version, schema, owner))
        for name, version, schema, owner in later:  # one that needs another extension first
            if not _create_extension(conn, name, version, schema, owner if with_owners else ""):
                notes.append(f"extension {name} {version} could not be created first: pg_restore created it")
    return notes


def _create_extension(conn: psycopg.Connection, name: str, version: str, schema: str, owner: str) -> bool:
    """CREATE EXTENSION … VERSION, as `owner` when the console may act as it (else as itself); False if it failed."""
    create = sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} VERSION {}").format(
        sql.Identifier(name), sql.Identifier(schema), sql.Literal(version))
    for role in ([owner] if owner else []) + [""]:
        try:
            with conn.transaction():
                if role:
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                conn.execute(create)
            return True
        except psycopg.Error:
            continue
    return False


def _apply(conn: psycopg.Connection, statement: str, scratch: str, with_owners: bool, user: str) -> None:
    """One property statement; without owners, none that names a role (owner, grants, role settings)."""
    if not with_owners and (statement.startswith(("ALTER ROLE ", "GRANT ", "REVOKE ")) or " OWNER TO " in statement):
        return
    try:
        _run_database_statement(conn, statement, scratch)
    except psycopg.errors.InsufficientPrivilege as exc:
        needed = ("CREATEROLE (ALTER ROLE … CREATEROLE)" if statement.startswith("ALTER ROLE ")
                  else "the right to set it (for a custom setting: GRANT SET ON PARAMETER … TO it)")  # fmt: skip
        raise RestoreRefused(
            f"the console's role {user} may not reproduce the backup's {statement[:160]!r} ({str(exc).strip()}); "
            f"give it {needed}, or restore as a superuser; nothing was changed"
        ) from None


def _run_database_statement(conn: psycopg.Connection, statement: str, scratch: str) -> None:
    """One statement of the archive's database definition, renamed to the scratch database.

    The archive is SQL from the store: run it only as a single statement (a prepared statement cannot
    hold two) of a kind a database definition has, about the scratch database and no other.
    """
    if not names_database(statement, scratch):
        raise RestoreError(f"the backup's database definition holds an unexpected statement "
                           f"({statement[:120]!r}); nothing was changed")  # fmt: skip
    _execute_one(conn, statement)


def _execute_one(conn: psycopg.Connection, statement: str) -> None:
    """Run SQL read from an archive as one statement only: prepared, it cannot carry a second one."""
    conn.execute(statement.rstrip(";").replace("%", "%%"), (), prepare=True)


def restore_into(
    target: TargetDatabase,
    archive: Path,
    scratch: str,
    contents: ArchiveContents,
    *,
    jobs: int,
    with_owners: bool = True,
    bin_dirs: tuple[str, ...] = (),
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """pg_restore into the scratch database; returns the number of tables restored.

    With owners (`preflight` has checked that every role exists and that the console may act as each
    owner and grantor), objects keep their owners and grants; without (an admin's choice for a backup
    whose roles this server lacks: `--no-owner --no-privileges`), they are owned by the console's role.
    pg_restore replays a grant made by someone else than the object's owner as that role with SET
    SESSION AUTHORIZATION, which only a superuser may: a console that is not one restores every
    other entry with pg_restore, then the grants itself with SET ROLE (`apply_grants`).
    """
    restore = postgres.pick_client("pg_restore", postgres.server_version(target)[0], bin_dirs)
    keep = [] if with_owners else ["--no-owner", "--no-privileges"]
    by_hand = with_owners and bool(contents.grant_entries) and not _is_superuser(target)
    entries = [e for e in contents.entries if not e.of_the_database]
    with tempfile.NamedTemporaryFile("w", suffix=".list", dir=archive.parent) as chosen:
        if by_hand:
            skipped = {e.line for e in contents.grant_entries}
            chosen.write("".join((";" if e.line in skipped else "") + e.line + "\n" for e in entries))
            chosen.flush()
            keep.append(f"--use-list={chosen.name}")
        argv = [restore.path, "--exit-on-error", *keep, "--verbose", f"--jobs={jobs}", "--dbname", scratch,
                str(archive)]  # fmt: skip
        code, errors = _run_pg_restore(target, argv, scratch, len(entries), on_progress)
    if code != 0:
        raise RestoreError(f"pg_restore failed (exit {code}): {' '.join(errors) or 'no message'}")
    if by_hand:
        apply_grants(target, scratch, contents.grants)
    on_progress(len(entries), len(entries))
    return contents.tables


def _is_superuser(target: TargetDatabase) -> bool:
    with postgres.admin_connect(target) as conn:
        return bool(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0])


def apply_grants(target: TargetDatabase, scratch: str, grants: tuple[str, ...]) -> None:
    """The archive's grants in the scratch database, each as its grantor (SET ROLE, which a member may, for
    pg_dump's SET SESSION AUTHORIZATION, which only a superuser may); one statement at a time."""
    with psycopg.connect(**target.conninfo(scratch), autocommit=True) as conn:
        for statement in grants:
            grantor = GRANTOR.match(statement)
            if grantor:
                statement = f"SET ROLE {grantor.group(1)}"
            elif statement.startswith("RESET SESSION AUTHORIZATION"):
                statement = "RESET ROLE"
            _execute_one(conn, statement)


def _run_pg_restore(target: TargetDatabase, argv: list[str], scratch: str, total: int,
                    on_progress: Callable[[int, int], None]) -> tuple[int, list[str]]:  # fmt: skip
    """Run pg_restore, counting the entries it reports for the progress bar; its exit code and last errors."""
    done = 0

    def count(line: str) -> None:
        nonlocal done
        if line.startswith(("pg_restore: creating", "pg_restore: processing", "pg_restore: finished item")):
            done += 1
            if total:
                on_progress(min(done, total), total)

    session = f"pgconsole-restore-{uuid.uuid4().hex[:12]}"
    env = postgres.child_env(target, dbname=scratch, application_name=session)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    errors = postgres.StderrTail(proc.stderr, on_line=count)
    try:
        code = proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(Exception):
            postgres.terminate_sessions(target, session)
        raise
    errors.join(timeout=5)
    return code, errors.lines


@dataclass(frozen=True)
class Session:
    pid: int
    user: str
    application: str
    endable: bool  # the console's role may end it (superuser, member of its role, or pg_signal_backend)

    def __str__(self) -> str:
        return f"pid {self.pid} (user {self.user or '?'}, application {self.application or '?'})"


def sessions_on(conn: psycopg.Connection, dbname: str) -> list[Session]:
    """The client sessions connected to `dbname` (not this one), and whether the console may end each."""
    rows = conn.execute(
        "SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), coalesce("
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        " OR pg_has_role(current_user, a.usesysid, 'MEMBER')"
        " OR (pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AND NOT r.rolsuper), false) "
        "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid "
        "WHERE a.datname = %s AND a.pid <> pg_backend_pid() AND a.usesysid IS NOT NULL"
        # Another role's backend_type is hidden from a console that is not a superuser: a role means a client.
        " AND coalesce(a.backend_type, 'client backend') = 'client backend' ORDER BY a.pid",
        (dbname,),
    ).fetchall()
    return [Session(*row) for row in rows]


def connected_sessions(target: TargetDatabase) -> list[Session] | None:
    """The sessions on the live database now, for the confirmation page (the swap ends them); None when
    the server cannot be asked (the page still shows; the job finds out)."""
    try:
        with postgres.admin_connect(target) as conn:
            return sessions_on(conn, target.dbname)
    except psycopg.Error:
        return None


def swap_in(target: TargetDatabase, scratch: str, set_aside: str, *, keep_old: bool,
            before_rename: Callable[[], None] = lambda: None) -> int:  # fmt: skip
    """Put the scratch database in the live one's place; the previous one stays as `set_aside`. Returns how
    many sessions were ended.

    New connections are refused first; then, if any session left cannot be ended by the console's role
    (a superuser's, when the console is not one), the swap is refused naming it, and no session is ended.
    With `keep_old` the set-aside database opens to connections again (KEEP_OLD_DATABASE); otherwise
    it stays closed for `drop_set_aside`, which the job runs after it reports finished: DROP DATABASE
    waits for a checkpoint, which writes out the whole restored database first.
    """
    live = target.dbname
    with postgres.admin_connect(target) as conn:
        postgres.allow_connections(conn, live, False)
        sessions = sessions_on(conn, live)
        stuck = [s for s in sessions if not s.endable]
        if stuck:
            postgres.allow_connections(conn, live, True)
            raise RestoreRefused(
                f"the console's role {target.user} cannot end {len(stuck)} session(s) on {live}: "
                f"{'; '.join(map(str, stuck[:5]))}; no session was ended and nothing was changed: "
                "close them, or restore with a role that may end them"
            )
        try:
            _rename_when_idle(conn, live, set_aside)
        except BaseException:
            postgres.allow_connections(conn, live, True)
            raise
        try:
            before_rename()
            postgres.rename_database(conn, scratch, live)
        except BaseException:
            put_back(target, set_aside)
            raise
        if keep_old:
            postgres.allow_connections(conn, set_aside, True)
    return len(sessions)


def open_set_aside(target: TargetDatabase, name: str, allowed: bool) -> None:
    """Let the console dump the database a swap set aside (`allowed`), or close it again for `drop_set_aside`."""
    if not is_scratch_name(target.dbname, "previous", name):
        raise RestoreError(f"{name!r} is not a database a restore of {target.dbname} set aside")
    with postgres.admin_connect(target) as conn:
        postgres.allow_connections(conn, name, allowed)


def drop_set_aside(target: TargetDatabase, name: str) -> None:
    """Drop the previous database a swap left as `name`; refuses any name a swap of this target cannot have made."""
    if not is_scratch_name(target.dbname, "previous", name):
        raise RestoreError(f"{name!r} is not a database a restore of {target.dbname} set aside; nothing was dropped")
    with postgres.admin_connect(target) as conn:
        opened = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if opened and opened[0]:
            raise RestoreError(f"{name} accepts connections (kept by KEEP_OLD_DATABASE): it is not dropped")
        postgres.drop_database(conn, name)


def _rename_when_idle(conn: psycopg.Connection, name: str, new_name: str, attempts: int = 10) -> None:
    """Terminate the sessions on `name` and rename it; retry while a straggler is still closing."""
    for attempt in range(attempts):
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            postgres.rename_database(conn, name, new_name)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


def put_back(target: TargetDatabase, set_aside: str) -> bool:
    """Undo a half-done swap: the set-aside database returns under the live name, open again."""
    with postgres.admin_connect(target) as conn:
        if postgres.database_exists(conn, target.dbname) or not postgres.database_exists(conn, set_aside):
            return False
        postgres.rename_database(conn, set_aside, target.dbname)
        postgres.allow_connections(conn, target.dbname, True)
    return True


def row_counts(target: TargetDatabase, dbname: str) -> dict[str, int]:
    """Exact rows per user table, as proof of what a restored copy holds."""
    with psycopg.connect(**target.conninfo(dbname)) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{table}": conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchone()[0]
            for schema, table in tables
        }


def drop_scratch(target: TargetDatabase, name: str) -> None:
    with postgres.admin_connect(target) as conn:
        postgres.drop_database(conn, name)


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
