"""Databases on the target server as a restore handles them: created, given properties and extensions,
swapped by renaming, counted and dropped; and the client sessions on them.

The order of the steps and what each may touch are decided in app/domain/restore_database.py; these
functions only speak SQL, mostly on an admin connection (`postgres.admin_connect`) the caller holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from app.adapters.postgres import TargetDatabase, rename_database


def owner_of(conn: psycopg.Connection, dbname: str) -> str | None:
    """The role that owns `dbname`; None when there is no such database."""
    found = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return found[0] if found else None


def create_database(conn: psycopg.Connection, name: str, owner: str) -> None:
    """An empty database `name` (from template0), owned by `owner`."""
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 OWNER {}").format(
        sql.Identifier(name), sql.Identifier(owner)))  # fmt: skip


def set_owner(conn: psycopg.Connection, dbname: str, owner: str) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(owner)))


def execute_one(conn: psycopg.Connection, statement: str) -> None:
    """Run SQL read from an archive as one statement only: prepared, it cannot carry a second one."""
    conn.execute(statement.rstrip(";").replace("%", "%%"), (), prepare=True)


def run_statements(target: TargetDatabase, dbname: str, statements: list[str]) -> None:
    """Run archive SQL in `dbname`, one statement at a time (each with `execute_one`), in autocommit."""
    with connect_to(target, dbname) as conn:
        for statement in statements:
            execute_one(conn, statement)


# SECURITY DEFINER routines of the database's own (an extension's are its package's business).
_SECURITY_DEFINERS = """
SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.deptype = 'e')
ORDER BY 1
"""


def close_security_definers(target: TargetDatabase, dbname: str) -> list[str]:
    """REVOKE EXECUTE … FROM PUBLIC on every SECURITY DEFINER routine of `dbname`; their signatures."""
    with connect_to(target, dbname) as conn:
        routines = [row[0] for row in conn.execute(_SECURITY_DEFINERS)]
        for routine in routines:  # schema-qualified and quoted by format(%I) on the server
            conn.execute(sql.SQL("REVOKE EXECUTE ON ROUTINE {} FROM PUBLIC").format(sql.SQL(routine)))
    return routines


def has_icu(target: TargetDatabase) -> bool:
    """Whether the target's server was built with ICU. From 16 on it says so (a build without ICU still lists
    the predefined `unicode` collation); before, a build with ICU is the one with ICU collations."""
    with connect_to(target, target.dbname) as conn:
        if conn.info.server_version >= 160000:
            return conn.execute("SELECT icu_unicode_version() IS NOT NULL").fetchone()[0]
        return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collprovider = 'i')").fetchone()[0]


def connect_to(target: TargetDatabase, dbname: str) -> psycopg.Connection:
    """An autocommit connection to `dbname` on the target's server."""
    return psycopg.connect(**target.conninfo(dbname), autocommit=True)


def extension_catalog(conn: psycopg.Connection) -> tuple[set[tuple[str, str]], set[str]]:
    """The (name, version) pairs the server can create, and the schemas the connection's database has."""
    available = set(conn.execute("SELECT name, version FROM pg_available_extension_versions").fetchall())
    schemas = {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}
    return available, schemas


def create_extension(conn: psycopg.Connection, name: str, version: str, schema: str, owner: str) -> bool:
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


def rename_when_idle(conn: psycopg.Connection, name: str, new_name: str, attempts: int = 10) -> None:
    """Terminate the sessions on `name` and rename it; retry while a straggler is still closing."""
    for attempt in range(attempts):
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            rename_database(conn, name, new_name)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


def rename_unless_taken(conn: psycopg.Connection, name: str, new_name: str) -> bool:
    """Rename `name` to `new_name` (ending its sessions); False, with nothing renamed, when `new_name` exists."""
    try:
        rename_when_idle(conn, name, new_name)
    except psycopg.errors.DuplicateDatabase:
        return False
    return True


def accepts_connections(conn: psycopg.Connection, dbname: str) -> bool:
    """Whether `dbname` exists and is open to connections (ALLOW_CONNECTIONS)."""
    found = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return bool(found and found[0])


def row_counts(target: TargetDatabase, dbname: str) -> dict[str, int]:
    """Exact rows per user table of `dbname`."""
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
