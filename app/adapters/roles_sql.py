"""Roles on the target server: their definitions as the catalog gives them, creating them, and what the
console's role may act as.

The rules (which roles a backup names, which may be created, what a restore would hit) live in
app/domain/roles.py and app/domain/preflight.py; this module only reads and writes the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from app.adapters import postgres
from app.adapters.postgres import TargetDatabase

# Attributes only a superuser may give, so never given by the console (and refused when asked).
SUPERUSER_ATTRIBUTES = ("superuser", "replication", "bypassrls")
FLAGS = ("login", "inherit", "createdb", "createrole", *SUPERUSER_ATTRIBUTES)


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    login: bool = False
    inherit: bool = True
    createdb: bool = False
    createrole: bool = False
    superuser: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    valid_until: str | None = None
    member_of: tuple[tuple[str, bool], ...] = ()  # (role, with admin option), among the roles the database names
    password: str | None = None  # the hash, only with BACKUP_ROLE_PASSWORDS

    def to_manifest(self) -> dict:
        fields = {flag: getattr(self, flag) for flag in FLAGS}
        members = [{"role": role, "admin": admin} for role, admin in self.member_of]
        extra = {"password": self.password} if self.password is not None else {}
        return {"name": self.name, **fields, "connection_limit": self.connection_limit,
                "valid_until": self.valid_until, "member_of": members, **extra}  # fmt: skip

    @property
    def superuser_only(self) -> bool:
        """Whether only a superuser may create the role as defined (the console never does)."""
        return any(getattr(self, attribute) for attribute in SUPERUSER_ATTRIBUTES)


def read_definitions(conn: psycopg.Connection, names: list[str], *, passwords: bool) -> list[RoleDefinition]:
    """The definitions of `names` from the server's catalog (pg_roles, pg_auth_members); with `passwords`, their
    hashes too, which only a superuser may read (pg_authid): otherwise none is recorded."""
    rows = conn.execute(
        "SELECT rolname, rolcanlogin, rolinherit, rolcreatedb, rolcreaterole, rolsuper, rolreplication, rolbypassrls,"
        " rolconnlimit, rolvaliduntil::text FROM pg_roles WHERE rolname = ANY(%s) AND rolname NOT LIKE 'pg\\_%%'"
        " ORDER BY rolname",
        (names,),
    ).fetchall()
    members: dict[str, list[tuple[str, bool]]] = {}
    for member, role, admin in conn.execute(
        "SELECT m.rolname, g.rolname, a.admin_option FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member"
        " JOIN pg_roles g ON g.oid = a.roleid WHERE m.rolname = ANY(%s) AND g.rolname = ANY(%s)"
        " ORDER BY 1, 2",
        (names, names),
    ):
        members.setdefault(member, []).append((role, bool(admin)))
    hashes: dict[str, str] = {}
    if passwords and postgres.is_superuser(conn):
        hashes = dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)"
                                   " AND rolpassword IS NOT NULL", (names,)).fetchall())  # fmt: skip
    return [RoleDefinition(name, login, inherit, createdb, createrole, superuser, replication, bypassrls, limit,
                           until, tuple(members.get(name, ())), hashes.get(name))  # fmt: skip
            for name, login, inherit, createdb, createrole, superuser, replication, bypassrls, limit, until in rows]


def existing_roles(conn: psycopg.Connection, names: list[str]) -> set[str]:
    """Those of `names` that exist on the server."""
    return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))}


def create_statement(role: RoleDefinition) -> sql.Composed:
    """CREATE ROLE as the backup defines it (never the superuser-only attributes)."""
    options = [sql.SQL(flag.upper() if getattr(role, flag) else "NO" + flag.upper())
               for flag in ("login", "inherit", "createdb", "createrole")]  # fmt: skip
    options.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(role.connection_limit)))
    if role.valid_until:
        options.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(role.valid_until)))
    if role.password:
        options.append(sql.SQL("PASSWORD {}").format(sql.Literal(role.password)))  # a hash: kept as it is
    return sql.SQL("CREATE ROLE {} WITH {}").format(sql.Identifier(role.name), sql.SQL(" ").join(options))


def create_roles(conn: psycopg.Connection, roles: list[RoleDefinition], memberships: list[tuple[str, str, bool]],
                 *, join_each: bool) -> None:  # fmt: skip
    """Create `roles` and grant `memberships` (member, role, with admin option) in one transaction: all or none.

    `join_each`: the console's role becomes a member of each new role, so that a restore may act as it.
    Raises postgres.DatabaseError when the server refuses any of it.
    """
    with conn.transaction():
        for role in roles:
            conn.execute(create_statement(role))
        for member, role, admin in memberships:
            conn.execute(sql.SQL("GRANT {} TO {}{}").format(
                sql.Identifier(role), sql.Identifier(member), sql.SQL(" WITH ADMIN OPTION" if admin else "")))
        if join_each:
            for role in roles:
                conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role.name)))


@dataclass(frozen=True)
class ConsoleRoleFacts:
    """The console's role on the server, the roles asked about, and the extension versions asked about."""

    user: str
    superuser: bool
    roles: dict[str, bool]  # of the roles asked about, those that exist → the console's role is a member of it
    extension_versions: tuple[tuple[str, str, bool], ...]  # (name, version, only a superuser may create it)


def console_role_facts(target: TargetDatabase, roles: list[str], extensions: list[str]) -> ConsoleRoleFacts | None:
    """What the console's role is and may act as, and which versions of `extensions` the server has (one
    connection); None when the server cannot be asked."""
    try:
        with postgres.admin_connect(target) as conn:
            user, superuser = conn.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            found = conn.execute("SELECT rolname, pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles "
                                 "WHERE rolname = ANY(%s)", (roles,)).fetchall()  # fmt: skip
            versions = conn.execute(
                "SELECT name, version, superuser AND NOT trusted FROM pg_available_extension_versions "
                "WHERE name = ANY(%s)", (extensions,)).fetchall()  # fmt: skip
    except psycopg.Error:
        return None
    return ConsoleRoleFacts(user, bool(superuser), {name: bool(member) for name, member in found},
                            tuple((name, version, bool(only)) for name, version, only in versions))  # fmt: skip
