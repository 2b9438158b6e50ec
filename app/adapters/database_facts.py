"""What a backup records about its database beyond the dump: its size, its extensions, and the roles,
owners and grantors a restore of it needs, read from the server's catalog at backup time."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from app.adapters import roles_sql
from app.adapters.postgres import TargetDatabase


@dataclass(frozen=True)
class DatabaseFacts:
    """What a backup records about its database beyond the dump, read in one connection at backup time.

    A restore must know some of it before the archive is downloaded (the restore page's preflight):
    the roles it names, who owns and who granted, what only a superuser can create.
    """

    size: int
    extensions: tuple[dict[str, str], ...]  # name, version, schema, owner: what pg_dump does not keep
    roles: tuple[str, ...] = ()  # every role the database names: owners, grantees, policy roles, settings
    owners: tuple[str, ...] = ()  # roles that own objects, or the database itself
    grantors: tuple[str, ...] = ()  # roles that granted rights on objects they do not own
    event_triggers: tuple[str, ...] = ()
    superuser_extensions: tuple[str, ...] = ()  # installed at a version only a superuser may create
    # Each named role's attributes and memberships among them (app/adapters/roles_sql.py), for a restore that
    # creates the missing ones; a password hash only when BACKUP_ROLE_PASSWORDS asks for it.
    role_definitions: tuple[dict, ...] = ()
    tables: tuple[str, ...] = ()  # "schema.table", as pg_restore --list names them: the restore page offers them

    def restore_needs(self) -> dict[str, list[str]]:
        """The manifest's `restore_needs`: what the restore page checks before the passkey is asked."""
        return {"roles": list(self.roles), "owners": list(self.owners), "grantors": list(self.grantors),
                "event_triggers": list(self.event_triggers),
                "superuser_extensions": list(self.superuser_extensions)}  # fmt: skip


# Roles this database names. pg_shdepend (o: owner, a: ACL grantee or grantor, r: policy role, i: initial
# privileges) omits pinned roles, so the bootstrap superuser is added when it owns an object of ours (oid
# past the system's, not an extension's member: pg_dump dumps those) - a restore must act as it too.
_NAMED_ROLES = """
WITH db AS (SELECT oid, datdba, datacl FROM pg_database WHERE datname = current_database()),
named AS (
    SELECT refobjid AS role, deptype = 'o' AS owns FROM pg_shdepend, db
     WHERE dbid = db.oid AND refclassid = 'pg_authid'::regclass AND deptype IN ('o', 'a', 'r', 'i')
    UNION ALL SELECT datdba, true FROM db
    UNION ALL SELECT a.grantee, false FROM db, aclexplode(db.datacl) a
    UNION ALL SELECT a.grantor, false FROM db, aclexplode(db.datacl) a
    UNION ALL SELECT setrole, false FROM pg_db_role_setting, db WHERE setdatabase = db.oid AND setrole <> 0
    UNION ALL SELECT 10, true WHERE EXISTS (
        SELECT 1 FROM (SELECT oid, 'pg_class'::regclass AS cls FROM pg_class WHERE relowner = 10
                       UNION ALL SELECT oid, 'pg_namespace'::regclass FROM pg_namespace WHERE nspowner = 10
                       UNION ALL SELECT oid, 'pg_proc'::regclass FROM pg_proc WHERE proowner = 10
                       UNION ALL SELECT oid, 'pg_type'::regclass FROM pg_type WHERE typowner = 10) o
         WHERE o.oid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.cls
                                               AND d.objid = o.oid AND d.deptype = 'e'))
)
SELECT r.rolname, bool_or(n.owns) FROM named n JOIN pg_roles r ON r.oid = n.role GROUP BY r.rolname ORDER BY 1
"""

# Roles that granted a right on an object they do not own: pg_dump replays those grants as the grantor.
_GRANTORS = """
WITH acls AS (
    SELECT relowner AS owner, relacl AS acl FROM pg_class WHERE relacl IS NOT NULL
    UNION ALL SELECT c.relowner, a.attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE a.attacl IS NOT NULL
    UNION ALL SELECT nspowner, nspacl FROM pg_namespace WHERE nspacl IS NOT NULL
    UNION ALL SELECT proowner, proacl FROM pg_proc WHERE proacl IS NOT NULL
    UNION ALL SELECT typowner, typacl FROM pg_type WHERE typacl IS NOT NULL
    UNION ALL SELECT lanowner, lanacl FROM pg_language WHERE lanacl IS NOT NULL
    UNION ALL SELECT lomowner, lomacl FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL
    UNION ALL SELECT defaclrole, defaclacl FROM pg_default_acl
    UNION ALL SELECT fdwowner, fdwacl FROM pg_foreign_data_wrapper WHERE fdwacl IS NOT NULL
    UNION ALL SELECT srvowner, srvacl FROM pg_foreign_server WHERE srvacl IS NOT NULL
    UNION ALL SELECT datdba, datacl FROM pg_database WHERE datname = current_database() AND datacl IS NOT NULL
)
SELECT DISTINCT pg_get_userbyid(a.grantor) FROM acls, aclexplode(acls.acl) a WHERE a.grantor <> acls.owner ORDER BY 1
"""

# The tables a dump holds (not the system's, nor an extension's), for a partial restore's choice.
_TABLE_NAMES = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                              AND d.deptype = 'e')
 ORDER BY 1
"""

_EXTENSIONS = """
SELECT e.extname, e.extversion, n.nspname, pg_get_userbyid(e.extowner),
       coalesce(v.superuser AND NOT v.trusted, false)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
LEFT JOIN pg_available_extension_versions v ON v.name = e.extname AND v.version = e.extversion
WHERE e.extname <> 'plpgsql' ORDER BY e.extname
"""


def database_facts(target: TargetDatabase, *, role_passwords: bool = False) -> DatabaseFacts:
    """The database's size, its extensions (name, version, schema, owner) and what a restore needs (one connection).

    pg_dump writes `CREATE EXTENSION IF NOT EXISTS name` with neither version nor owner, so a restore
    would get the server's default version, owned by whoever restores: the manifest keeps both.
    """
    with psycopg.connect(**target.conninfo()) as conn:
        size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        extensions = conn.execute(_EXTENSIONS).fetchall()
        named = conn.execute(_NAMED_ROLES).fetchall()
        grantors = [r[0] for r in conn.execute(_GRANTORS)]
        triggers = [r[0] for r in conn.execute("SELECT evtname FROM pg_event_trigger ORDER BY 1")]
        tables = [r[0] for r in conn.execute(_TABLE_NAMES)]
        definitions = roles_sql.read_definitions(conn, [name for name, _ in named], passwords=role_passwords)
    return DatabaseFacts(
        size=size,
        extensions=tuple({"name": n, "version": v, "schema": s, "owner": o} for n, v, s, o, _ in extensions),
        roles=tuple(name for name, _ in named),
        owners=tuple(name for name, owns in named if owns),
        grantors=tuple(grantors),
        event_triggers=tuple(triggers),
        superuser_extensions=tuple(n for n, _, _, _, superuser in extensions if superuser),
        role_definitions=tuple(d.to_manifest() for d in definitions),
        tables=tuple(tables),
    )


# The tables pg_dump writes the data of (indexes are only their definition in a dump), largest first.
_TABLES = """
SELECT n.nspname, c.relname, pg_table_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 3 DESC
"""
SAMPLE_BYTES = 4 * 1024 * 1024  # of table pages read from each of the largest tables
SAMPLED_TABLES = 3


def expected_dump_size(target: TargetDatabase, *, compressed: bool) -> int | None:
    """About how large pg_dump's archive of this database will be: its tables' size (heap and TOAST, not
    indexes) times the ratio measured on a sample of the largest ones (`TABLESAMPLE SYSTEM`, up to 4 MiB
    of pages each, as COPY text, deflated at level 1 when `compressed`). An estimate for the first
    backup's progress bar and part size; None when the database has no table data.

    zstd and lz4 compress somewhat differently from deflate; the plan leaves room for the estimate to
    double.
    """
    try:
        # A table locked by someone else or a role that may not read one: no estimate, never a wait or a failure.
        with psycopg.connect(**target.conninfo(), options="-c lock_timeout=1000 -c statement_timeout=10000") as conn:
            return _sampled_size(conn, compressed)
    except psycopg.Error:
        return None


def _sampled_size(conn: psycopg.Connection, compressed: bool) -> int | None:
    tables = [(schema, name, size) for schema, name, size in conn.execute(_TABLES).fetchall() if size]
    sampled = written = 0
    for schema, name, size in tables[:SAMPLED_TABLES]:
        percent = min(100.0, 100.0 * SAMPLE_BYTES / size)
        query = sql.SQL("COPY (SELECT * FROM {} TABLESAMPLE SYSTEM ({})) TO STDOUT").format(
            sql.Identifier(schema, name), sql.Literal(percent))
        deflate = zlib.compressobj(1) if compressed else None
        with conn.cursor().copy(query) as copy:
            for block in copy:
                written += len(deflate.compress(block)) if deflate else len(block)
        written += len(deflate.flush()) if deflate else 0
        sampled += size * percent / 100
    return round(sum(size for _, _, size in tables) * written / sampled) if sampled else None
