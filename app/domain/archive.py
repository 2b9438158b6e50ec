"""What a pg_dump archive says about its database beyond the objects in it, for a faithful restore.

A `pg_dump -Fc` archive carries the database's own entries (since PostgreSQL 11): how it was
created (encoding, locale provider, collation, ctype, ICU locale), its owner, comment, connection
limit, ACL, `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET`. `pg_restore --create`
prints them as SQL naming the original database. The console restores into a scratch database
under another name, so it reads those statements here, renamed to the scratch database, and the
restore runs them itself (app/domain/restore_database.py: the CREATE and the properties before pg_restore,
the connection limit after it). It also lists every role the archive names as an owner or a
grantee, so a restore that would fail on a missing role is refused before anything is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from app.adapters import pg_restore
from app.domain.preflight import BackupNeeds

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_ROLES_AFTER = re.compile(
    rf"\b(?:TO|FROM|FOR ROLE|SESSION AUTHORIZATION|OWNER TO)\s+({_IDENT}(?:\s*,\s*{_IDENT})*)", re.IGNORECASE
)
GRANTOR = re.compile(rf"^SET SESSION AUTHORIZATION ({_IDENT})")
# Lines of `pg_restore --list`: "ID; TABLEOID OID TYPE SCHEMA NAME OWNER" (TYPE and NAME may hold spaces).
_LIST_LINE = re.compile(r"^\d+; \d+ \d+ (?P<rest>.*)$")
_DEPENDS_LINE = re.compile(r"^;\s+depends on:(?P<ids>[\d ]*)$")


@dataclass(frozen=True)
class Entry:
    kind: str  # "TABLE", "ACL", "DATABASE PROPERTIES", ...
    line: str  # the line of `pg_restore --list`, as given
    owner: str  # the role that owns the object ("" for entries without one)
    described: str  # the line after its ids: "COMMENT - DATABASE shop owner", "TABLE public orders owner"
    depends: tuple[int, ...] = ()  # the dump ids of the entries it depends on (`--list --verbose`)

    @property
    def dump_id(self) -> int:
        return int(self.line.split(";", 1)[0])

    @property
    def tag(self) -> str:
        """The name of an entry without a schema ("DATABASE - shop owner" → "shop")."""
        return self.described.split(" - ", 1)[-1].rsplit(" ", 1)[0]

    @property
    def of_the_database(self) -> bool:
        """The database's own entry, its properties, comment or ACL (not an object in it)."""
        return self.kind in ("DATABASE", "DATABASE PROPERTIES") or self.described.startswith(
            ("COMMENT - DATABASE ", "ACL - DATABASE ")
        )


@dataclass(frozen=True)
class DatabaseDefinition:
    """The database as the archive describes it, as SQL for a database named `name`."""

    name: str  # the name it had when it was backed up
    create: str  # CREATE DATABASE … with its encoding and locale
    properties: tuple[str, ...]  # owner, comment, connection limit, settings, ACL

    def renamed(self, new_name: str) -> DatabaseDefinition:
        """The same statements for a database called `new_name` (the scratch database)."""
        statements = (rename_database_in(s, self.name, new_name) for s in self.properties)
        return DatabaseDefinition(new_name, rename_database_in(self.create, self.name, new_name), tuple(statements))


@dataclass(frozen=True)
class ArchiveContents:
    entries: tuple[Entry, ...]
    database: DatabaseDefinition | None  # None: an archive made without the database's entries
    roles: frozenset[str]  # every role named as an owner or grantee (PUBLIC excluded)
    grants: tuple[str, ...] = ()  # the objects' ACL entries as SQL, with pg_dump's SET SESSION AUTHORIZATION

    @property
    def grant_entries(self) -> list[Entry]:
        """The entries `grants` holds (the objects' ACLs and default privileges, not the database's)."""
        return [e for e in self.entries if e.kind in ("ACL", "DEFAULT ACL") and not e.of_the_database]

    @property
    def grantors(self) -> frozenset[str]:
        """Roles that granted something other than its owner did: pg_dump replays those grants as them."""
        found = (GRANTOR.match(s) for s in self.grants)
        return frozenset(_unquote(m.group(1)) for m in found if m)

    @property
    def tables(self) -> int:
        return sum(1 for e in self.entries if e.kind == "TABLE DATA")

    def needs(self, extensions: object = None) -> BackupNeeds:
        """What restoring this archive needs, as the restore page's rules read it from a manifest:
        its roles, the owners and grantors it acts as, its event triggers; `extensions`, the manifest's
        record of their versions (the archive has none)."""
        owners = {e.owner for e in self.entries if e.owner}
        triggers = tuple(e.tag for e in self.entries if e.kind == "EVENT TRIGGER")
        recorded = [e for e in extensions if isinstance(e, dict)] if isinstance(extensions, list) else []
        versions = tuple((str(e.get("name") or ""), str(e.get("version") or "")) for e in recorded)
        return BackupNeeds(roles=self.roles, owners=frozenset(owners), grantors=self.grantors,
                           event_triggers=triggers, superuser_extensions=frozenset(),
                           extensions=tuple(v for v in versions if v[0]))  # fmt: skip


def read_contents(tool: str, archive: Path, env: dict[str, str]) -> ArchiveContents:
    """The archive's entries, its database's definition and the roles it names (three quick reads of its TOC
    by the pg_restore at `tool`; pg_restore.ArchiveError when it cannot read them)."""
    entries = _entries(pg_restore.table_of_contents(tool, archive, env))
    database_sql = pg_restore.sql_of(tool, archive, env, [e.line for e in entries if e.of_the_database])
    statements = _statements(database_sql)
    database = None
    created = [s for s in statements if s.upper().startswith("CREATE DATABASE ")]
    name = next((e.tag for e in entries if e.kind == "DATABASE"), None)
    if created and name is not None:
        database = DatabaseDefinition(name, created[0], tuple(s for s in statements if s is not created[0]))
    roles = {e.owner for e in entries if e.owner}
    grants = grants_of(tool, archive, env, ArchiveContents(entries, None, frozenset()).grant_entries)
    for statement in (*grants, *(database.properties if database else ())):
        for match in _ROLES_AFTER.finditer(statement):
            roles.update(_unquote(r.strip()) for r in match.group(1).split(","))
    roles.discard("PUBLIC")
    roles.discard("public")
    return ArchiveContents(entries, database, frozenset(roles), grants)


def grants_of(tool: str, archive: Path, env: dict[str, str], grant_entries: list[Entry]) -> tuple[str, ...]:
    """The SQL of these ACL entries, with pg_dump's SET SESSION AUTHORIZATION (who granted)."""
    acl_sql = pg_restore.sql_of(tool, archive, env, [e.line for e in grant_entries], create=False)
    return tuple(_statements(acl_sql, keep_session_authorization=True))


def _entries(listing: str) -> tuple[Entry, ...]:
    """The entries of a `--list --verbose`, each with the dump ids of the comment line after it."""
    entries: list[Entry] = []
    for line in listing.splitlines():
        if (entry := _entry(line)) is not None:
            entries.append(entry)
        elif entries and (found := _DEPENDS_LINE.match(line)):
            entries[-1] = replace(entries[-1], depends=tuple(int(i) for i in found["ids"].split()))
    return tuple(entries)


def rename_database_in(statement: str, old: str, new: str) -> str:
    """`statement` with the database named `old` renamed `new` where pg_dump names it (`… DATABASE name`)."""
    pattern = re.compile(rf"(\bDATABASE\s+){re.escape(quote_ident(old))}(?=[\s;]|$)")
    return pattern.sub(lambda m: m.group(1) + quote_ident(new), statement, count=1)


DEFINITION_STATEMENTS = ("CREATE DATABASE ", "ALTER DATABASE ", "COMMENT ON DATABASE ", "GRANT ", "REVOKE ",
                         "ALTER ROLE ")  # fmt: skip


def names_database(statement: str, name: str) -> bool:
    """Whether `statement` is of a kind a database definition holds, and about the database `name`."""
    found = re.search(rf"\bDATABASE\s+({_IDENT})", statement)
    return statement.startswith(DEFINITION_STATEMENTS) and found is not None and found.group(1) == quote_ident(name)


_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_ident(name: str) -> str:
    """An identifier as pg_dump writes it: bare when it may be, else double-quoted.

    (pg_dump also quotes reserved words; a database named like one is quoted both ways in practice,
    and rename_database_in then leaves the statement alone, which fails safe: the CREATE names the
    old database and is refused by the server, nothing is touched.)
    """
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def _entry(line: str) -> Entry | None:
    found = _LIST_LINE.match(line)
    if not found:
        return None
    rest = found.group("rest")
    kind = next((k for k in _KINDS if rest.startswith(k + " ")), rest.split(" ", 1)[0])
    owner = rest.rsplit(" ", 1)[-1]
    return Entry(kind, line, "" if owner == "-" or " " not in rest else owner, rest)


# Types whose names hold a space (longest first where one begins another).
_KINDS = ("TABLE DATA", "TABLE ATTACH", "SEQUENCE SET", "SEQUENCE OWNED BY", "MATERIALIZED VIEW DATA",
          "MATERIALIZED VIEW", "DEFAULT ACL", "DATABASE PROPERTIES", "EVENT TRIGGER", "FK CONSTRAINT", "LARGE OBJECT",
          "BLOB", "BLOBS", "ROW SECURITY", "PROCEDURAL LANGUAGE", "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY",
          "FOREIGN TABLE", "FOREIGN DATA WRAPPER", "SERVER", "USER MAPPING", "PUBLICATION TABLE",
          "PUBLICATION", "SUBSCRIPTION", "ACL", "COMMENT", "SECURITY LABEL", "DATABASE")  # fmt: skip


def _statements(script: str, keep_session_authorization: bool = False) -> list[str]:
    """The SQL statements of a pg_restore script: no comments, psql meta-commands or session SETs (but
    `SET SESSION AUTHORIZATION`, which says who granted, when asked for)."""
    kept = [line for line in script.splitlines()
            if line and not line.startswith(("--", "\\", "SELECT pg_catalog.set_config("))
            and not (line.startswith("SET ") and not (keep_session_authorization and GRANTOR.match(line)))
            and not (line.startswith("RESET SESSION AUTHORIZATION") and not keep_session_authorization)]  # fmt: skip
    return [s.strip().rstrip(";") + ";" for s in "\n".join(kept).split(";\n") if s.strip().rstrip(";")]


def _unquote(identifier: str) -> str:
    if identifier.startswith('"') and identifier.endswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()

