"""Roles travel with the backup (issue 30 item 3): their definitions in the manifest, and creating the
missing ones before a restore, when an admin chooses it.

The manifest keeps, for each role the database names, its attributes and its memberships among those
roles (what `pg_dumpall --roles-only` would say of them), never a password hash unless
BACKUP_ROLE_PASSWORDS is on: a viewer can download manifests. A restore may create the ones this
server lacks, all in one transaction, only from a manifest signed by this team (a forged one could
otherwise make any role, a password included), and never a superuser: that is a DBA's decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from app.adapters import postgres
from app.adapters.postgres import TargetDatabase

# Attributes only a superuser may give, so never given by the console (and refused when asked).
_SUPERUSER_ATTRIBUTES = ("superuser", "replication", "bypassrls")
_FLAGS = ("login", "inherit", "createdb", "createrole", *_SUPERUSER_ATTRIBUTES)


class RolesError(Exception):
    """The roles cannot be created as the backup defines them; nothing was created."""


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
        fields = {flag: getattr(self, flag) for flag in _FLAGS}
        members = [{"role": role, "admin": admin} for role, admin in self.member_of]
        extra = {"password": self.password} if self.password is not None else {}
        return {"name": self.name, **fields, "connection_limit": self.connection_limit,
                "valid_until": self.valid_until, "member_of": members, **extra}  # fmt: skip


def definitions_in(manifest: dict | None) -> dict[str, RoleDefinition] | None:
    """Name → definition, as the manifest records them; None when it records none or not in the expected
    shape (a manifest is data from the store: every field is checked for its type)."""
    recorded = manifest.get("role_definitions") if isinstance(manifest, dict) else None
    if not isinstance(recorded, list):
        return None
    found = {}
    for item in recorded:
        definition = _definition(item)
        if definition is None:
            return None
        found[definition.name] = definition
    return found


def _definition(item: object) -> RoleDefinition | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        return None
    if not all(isinstance(item.get(flag, False), bool) for flag in _FLAGS):
        return None
    limit, until, password = item.get("connection_limit", -1), item.get("valid_until"), item.get("password")
    members = item.get("member_of", [])
    if type(limit) is not int or not (until is None or isinstance(until, str)):
        return None
    if not (password is None or isinstance(password, str)) or not isinstance(members, list):
        return None
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("admin", False), bool)
               for m in members):  # fmt: skip
        return None
    return RoleDefinition(
        name=item["name"], **{flag: item.get(flag, flag == "inherit") for flag in _FLAGS},
        connection_limit=limit, valid_until=until, password=password,
        member_of=tuple((m["role"], m.get("admin", False)) for m in members),
    )  # fmt: skip


def creatable(definitions: dict[str, RoleDefinition] | None) -> frozenset[str]:
    """The roles the console would create from these definitions: not the superuser-only ones."""
    return frozenset(name for name, d in (definitions or {}).items()
                     if not any(getattr(d, a) for a in _SUPERUSER_ATTRIBUTES))  # fmt: skip


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
    if passwords and conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
        hashes = dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)"
                                   " AND rolpassword IS NOT NULL", (names,)).fetchall())  # fmt: skip
    return [RoleDefinition(name, login, inherit, createdb, createrole, superuser, replication, bypassrls, limit,
                           until, tuple(members.get(name, ())), hashes.get(name))  # fmt: skip
            for name, login, inherit, createdb, createrole, superuser, replication, bypassrls, limit, until in rows]


def create_statement(role: RoleDefinition) -> sql.Composed:
    """CREATE ROLE as the backup defines it (not the superuser-only attributes: see create_missing)."""
    options = [sql.SQL(flag.upper() if getattr(role, flag) else "NO" + flag.upper())
               for flag in ("login", "inherit", "createdb", "createrole")]  # fmt: skip
    options.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(role.connection_limit)))
    if role.valid_until:
        options.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(role.valid_until)))
    if role.password:
        options.append(sql.SQL("PASSWORD {}").format(sql.Literal(role.password)))  # a hash: kept as it is
    return sql.SQL("CREATE ROLE {} WITH {}").format(sql.Identifier(role.name), sql.SQL(" ").join(options))


def create_missing(target: TargetDatabase, definitions: dict[str, RoleDefinition], wanted: set[str]) -> list[str]:
    """Create the roles of `wanted` this server lacks, from their definitions, with their memberships among
    the roles the backup names; a console that is not a superuser is made a member of each (so that the
    restore may act as them, as the README asks of it). One transaction: all of them, or none.

    Returns the names created. Refuses (RolesError, nothing created) a role the backup does not define or
    that only a superuser may create.
    """
    with postgres.admin_connect(target) as conn:
        present = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                              (sorted(wanted),))}  # fmt: skip
        missing = sorted(wanted - present)
        if not missing:
            return []
        undefined = [name for name in missing if name not in definitions]
        if undefined:
            raise RolesError(f"the backup does not define the roles {', '.join(undefined)}; create them yourself")
        special = [n for n in missing if any(getattr(definitions[n], a) for a in _SUPERUSER_ATTRIBUTES)]
        if special:
            raise RolesError(f"the roles {', '.join(special)} are superusers (or REPLICATION or BYPASSRLS) in the "
                             "backup; the console does not create those: a superuser must")  # fmt: skip
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        try:
            with conn.transaction():
                for name in missing:
                    conn.execute(create_statement(definitions[name]))
                for member, role, admin in _memberships(definitions, set(missing), present):
                    conn.execute(sql.SQL("GRANT {} TO {}{}").format(
                        sql.Identifier(role), sql.Identifier(member), sql.SQL(" WITH ADMIN OPTION" if admin else "")))
                if not superuser:
                    for name in missing:
                        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise RolesError(f"the roles {', '.join(missing)} could not be created ({str(exc).strip()}); "
                             "none was") from None  # fmt: skip
    return missing


def _memberships(definitions: dict[str, RoleDefinition], created: set[str], present: set[str]
                 ) -> list[tuple[str, str, bool]]:  # fmt: skip
    """(member, role, admin) for the backup's memberships that touch a role created now (memberships among
    roles that both exist already are this server's business) and whose other side exists here."""
    here = created | present
    return [(d.name, role, admin) for d in definitions.values() for role, admin in d.member_of
            if (d.name in created or role in created) and d.name in here and role in here]  # fmt: skip
