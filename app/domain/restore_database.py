"""The scratch database a restore fills, made like the backup's, and the swap that puts it in the live one's place.

    live ──rename──▶ set-aside        scratch ──rename──▶ live        drop set-aside

Any failure before the swap drops the scratch and leaves the live database as it was. A failure in
the middle of the swap puts the set-aside database back under its own name. The SQL itself is in
app/adapters/database_admin.py; here is what may run, in which order, and what a refusal says.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from app.adapters import database_admin, postgres
from app.adapters.database_admin import Session
from app.adapters.postgres import TargetDatabase
from app.domain.archive import ArchiveContents, DatabaseDefinition, names_database


class RestoreError(Exception):
    """The restore stopped; the message says why and that the live database is unchanged."""


class RestoreRefused(RestoreError):
    """A guard said no before anything was touched."""


def scratch_name(dbname: str, kind: str = "restore") -> str:
    """A name beside the live one, within PostgreSQL's 63-byte limit."""
    return f"{_scratch_prefix(dbname, kind)}{uuid.uuid4().hex[:8]}"


def is_scratch_name(dbname: str, kind: str, name: str) -> bool:
    """Whether `scratch_name(dbname, kind)` could have made `name`."""
    suffix = name.removeprefix(_scratch_prefix(dbname, kind))
    return suffix != name and len(suffix) == 8 and all(c in "0123456789abcdef" for c in suffix)


def _scratch_prefix(dbname: str, kind: str) -> str:
    return f"{dbname[:40]}_pgc_{kind}_"


def create_scratch(target: TargetDatabase, name: str) -> None:
    """An empty database `name`, owned as the live database is."""
    with postgres.admin_connect(target) as conn:
        owner = database_admin.owner_of(conn, target.dbname)
        if owner is None:
            raise RestoreError(f"the live database {target.dbname} does not exist on the server")
        database_admin.create_database(conn, name, owner)


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
            owner = database_admin.owner_of(conn, target.dbname)
            if owner:
                database_admin.set_owner(conn, scratch, owner)
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
    with database_admin.connect_to(target, scratch) as conn:
        available, schemas = database_admin.extension_catalog(conn)
        for extension in (e for e in extensions if isinstance(e, dict)):
            name, version, schema, owner = (str(extension.get(k) or "") for k in ("name", "version", "schema", "owner"))
            if (name, version) not in available:
                notes.append(f"extension {name} {version} is not installed on this server: pg_restore created "
                             "the server's default version")  # fmt: skip
            elif schema not in schemas:
                notes.append(f"extension {name} (schema {schema}) was created by pg_restore at the server's default "
                             f"version, not {version}")  # fmt: skip
            elif not database_admin.create_extension(conn, name, version, schema, owner if with_owners else ""):
                later.append((name, version, schema, owner))
        for name, version, schema, owner in later:  # one that needs another extension first
            if not database_admin.create_extension(conn, name, version, schema, owner if with_owners else ""):
                notes.append(f"extension {name} {version} could not be created first: pg_restore created it")
    return notes


def _apply(conn, statement: str, scratch: str, with_owners: bool, user: str) -> None:
    """One property statement; without owners, none that names a role (owner, grants, role settings)."""
    if not with_owners and (statement.startswith(("ALTER ROLE ", "GRANT ", "REVOKE ")) or " OWNER TO " in statement):
        return
    try:
        _run_database_statement(conn, statement, scratch)
    except postgres.InsufficientPrivilege as exc:
        needed = ("CREATEROLE (ALTER ROLE … CREATEROLE)" if statement.startswith("ALTER ROLE ")
                  else "the right to set it (for a custom setting: GRANT SET ON PARAMETER … TO it)")  # fmt: skip
        raise RestoreRefused(
            f"the console's role {user} may not reproduce the backup's {statement[:160]!r} ({str(exc).strip()}); "
            f"give it {needed}, or restore as a superuser; nothing was changed"
        ) from None


def _run_database_statement(conn, statement: str, scratch: str) -> None:
    """One statement of the archive's database definition, renamed to the scratch database.

    The archive is SQL from the store: run it only as a single statement (a prepared statement cannot
    hold two) of a kind a database definition has, about the scratch database and no other.
    """
    if not names_database(statement, scratch):
        raise RestoreError(f"the backup's database definition holds an unexpected statement "
                           f"({statement[:120]!r}); nothing was changed")  # fmt: skip
    database_admin.execute_one(conn, statement)


def connected_sessions(target: TargetDatabase) -> list[Session] | None:
    """The sessions on the live database now, for the confirmation page (the swap ends them); None when
    the server cannot be asked (the page still shows; the job finds out)."""
    try:
        with postgres.admin_connect(target) as conn:
            return database_admin.sessions_on(conn, target.dbname)
    except postgres.DatabaseError:
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
        sessions = database_admin.sessions_on(conn, live)
        stuck = [s for s in sessions if not s.endable]
        if stuck:
            postgres.allow_connections(conn, live, True)
            raise RestoreRefused(
                f"the console's role {target.user} cannot end {len(stuck)} session(s) on {live}: "
                f"{'; '.join(map(str, stuck[:5]))}; no session was ended and nothing was changed: "
                "close them, or restore with a role that may end them"
            )
        try:
            database_admin.rename_when_idle(conn, live, set_aside)
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


def swap_back(target: TargetDatabase, previous: str, set_aside: str, *, keep_old: bool) -> int:
    """Put back `previous`, the database an earlier restore set aside: the swap of `swap_in`, with it in the
    scratch database's place; the live one stays as `set_aside`. Returns how many sessions were ended.

    `previous` stays closed to connections until the live database is aside (nobody can write to it
    before it is the live one), and opens just before it takes the live name.
    """
    if not is_scratch_name(target.dbname, "previous", previous):
        raise RestoreRefused(f"{previous!r} is not a database a restore of {target.dbname} set aside; "
                             "nothing was changed")  # fmt: skip
    with postgres.admin_connect(target) as conn:
        if not postgres.database_exists(conn, previous):
            raise RestoreRefused(f"{previous} is no longer on the server; nothing was changed")
    return swap_in(target, previous, set_aside, keep_old=keep_old,
                   before_rename=lambda: open_set_aside(target, previous, True))  # fmt: skip


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
        if database_admin.accepts_connections(conn, name):
            raise RestoreError(f"{name} accepts connections (kept by KEEP_OLD_DATABASE): it is not dropped")
        postgres.drop_database(conn, name)


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
    return database_admin.row_counts(target, dbname)


def drop_scratch(target: TargetDatabase, name: str) -> None:
    with postgres.admin_connect(target) as conn:
        postgres.drop_database(conn, name)


# --------------------------------------------------------------------------- restore into a new database

NEW_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_MAX_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: a longer name would be cut, not refused


def new_database_name_problem(name: str) -> str | None:
    """Why `name` cannot name a new database, in words for the field; None when it can.

    Only letters, digits and underscores, not starting with a digit: the name then reads the same in psql
    unquoted (in lower case) and in a connection string, and never needs escaping."""
    if not name:
        return "Enter a name for the new database"
    if len(name.encode()) > NAME_MAX_BYTES:
        return f"A database name has at most {NAME_MAX_BYTES} characters; this one has {len(name.encode())}"
    if not NEW_DATABASE_NAME.fullmatch(name):
        return "Use only letters, digits and underscores, starting with a letter or an underscore"
    return None


def database_exists(target: TargetDatabase, name: str) -> bool:
    """Whether `target`'s server has a database `name`."""
    with postgres.admin_connect(target) as conn:
        return postgres.database_exists(conn, name)


def already_exists(target: TargetDatabase, name: str) -> str:
    return f"A database named {name} already exists on {target.host}:{target.port}; choose another name"


def rename_into_new(target: TargetDatabase, scratch: str, name: str) -> None:
    """The restored scratch takes the new database's name. Refused, the scratch left for the caller to drop,
    when a database of that name appeared meanwhile: the rename fails rather than touch it."""
    with postgres.admin_connect(target) as conn:
        if not database_admin.rename_unless_taken(conn, scratch, name):
            raise RestoreRefused(f"{already_exists(target, name)}; it was left as it is")


def connection_string(target: TargetDatabase, name: str) -> str:
    """How to reach the new database, without the password."""
    return f"postgresql://{target.user}@{target.host}:{target.port}/{name}"
