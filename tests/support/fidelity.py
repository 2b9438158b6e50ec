"""The yardstick for faithful restores: a database as rich as an application's, and a fingerprint of
everything a restore must bring back, compared aspect by aspect (the database: rich_database.py).

    with rich_database(pg_admin, with_event_trigger=True) as rich:
        before = fingerprint(rich.name, roles=rich.roles)
        ...  # back up, restore
        assert differences(before, fingerprint(rich.name, roles=rich.roles)) == []

Everything runs on a real server (PG by default); role and database names come from new_name, so
parallel tests never meet. No test functions here: tests/adapters/test_fidelity_harness.py proves the harness.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from collections.abc import Mapping

import psycopg
from psycopg import sql

from tests.support.databases import PG
from tests.support.rich_database import Roles

# --------------------------------------------------------------------------- the fingerprint

# pg_database columns that differ between two faithful copies: identity, freeze horizons, and the collation
# library's version (set by the server at CREATE DATABASE, not carried by a backup).
VOLATILE_DATABASE_COLUMNS = frozenset(
    {"oid", "datname", "datfrozenxid", "datminmxid", "datcollversion", "datlastsysoid"}
    | {"datdba", "dattablespace", "datacl"}  # shown by name and sorted instead
)
HEADER = re.compile(r"^-- (?:Data for )?Name: (?P<name>.*); Type: (?P<type>.*?); Schema: (?P<schema>.*?); Owner: ?.*$")
NAMES_THE_DATABASE = re.compile(
    r"^(-- Name: |CREATE DATABASE |ALTER DATABASE |COMMENT ON DATABASE |\\connect |ALTER ROLE .* IN DATABASE "
    r"|(GRANT|REVOKE) .* ON DATABASE )"
)
RANDOM_KEY = re.compile(r"^\\(un)?restrict ")  # pg_dump 15.14+ guards its output with a new random key each run
DUMP_MARKS = ("-- PostgreSQL database dump", "-- PostgreSQL database dump complete")  # would stick to the last object
CATALOG_OPTIONS = "-c search_path=pg_catalog -c TimeZone=UTC -c extra_float_digits=3"  # the same text on both sides


def fingerprint(dbname: str, *, roles: Roles, server: Mapping = PG, pg_dump: str = "pg_dump") -> dict[str, object]:
    """Everything a faithful restore of `dbname` must bring back, as plain, comparable values.

    Keys (aspects) and what each holds:
      "schema": object (e.g. "TABLE orders in shop", "ACL SCHEMA shop") -> its `pg_dump --schema-only --create`
                text, header with owner included; the database's own name is replaced by <dbname>
      "database": pg_database column -> value (owner, encoding, locale provider, collate, ctype, ICU locale,
                  connection limit, allow/template flags, sorted ACL, tablespace, comment)
      "role settings": role name, or "(every role)" for ALTER DATABASE ... SET -> sorted settings
      "tables": schema.table -> [row count, md5 of the rows' text in C order], or "not populated"
      "sequences": schema.sequence -> [last_value, is_called]
      "large objects": oid -> {owner, acl, comment, md5}
      "extensions": name -> {version, schema, owner}
      "as owner" / "as reader" / "as writer" / "as outsider": query label -> rows (as text) or "ERROR: ..."
    """
    fields: dict[str, object] = {"schema": schema_objects(dbname, server, pg_dump)}
    with psycopg.connect(**server, autocommit=True) as admin:
        fields["database"] = database_row(admin, dbname)
        fields["role settings"] = role_settings(admin, dbname)
    with psycopg.connect(**{**server, "dbname": dbname}, options=CATALOG_OPTIONS, autocommit=True) as conn:
        fields["tables"] = table_rows(conn)
        fields["sequences"] = sequence_values(conn)
        fields["large objects"] = large_objects(conn)
        fields["extensions"] = {
            name: {"version": version, "schema": schema, "owner": owner}
            for name, version, schema, owner in conn.execute(
                "SELECT extname, extversion, extnamespace::regnamespace::text, pg_get_userbyid(extowner)"
                " FROM pg_extension"
            )
        }
        oids = [int(oid) for oid in fields["large objects"]]  # type: ignore[union-attr]
    for kind, role in roles.items():
        fields[f"as {kind}"] = as_role({**server, "dbname": dbname, "user": role}, ROLE_QUERIES[kind], oids)
    return fields


def differences(before: Mapping, after: Mapping, path: str = "") -> list[str]:
    """One line per aspect or object that differs, named by its path ("schema › ACL SCHEMA shop"); [] if equal."""
    lines: list[str] = []
    for key in sorted(set(before) | set(after), key=str):
        where = f"{path} › {key}" if path else str(key)
        if key not in after:
            lines.append(f"{where}: missing after (was {_short(before[key])})")
        elif key not in before:
            lines.append(f"{where}: new after ({_short(after[key])})")
        elif isinstance(before[key], Mapping) and isinstance(after[key], Mapping):
            lines += differences(before[key], after[key], where)
        elif before[key] != after[key]:
            lines.append(f"{where}: {_changed(before[key], after[key])}")
    return lines


def _short(value: object, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _changed(before: object, after: object) -> str:
    if isinstance(before, str) and isinstance(after, str) and "\n" in before + after:
        changed = [
            line
            for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        return _short(" | ".join(changed), 400)
    return f"{_short(before)} → {_short(after)}"


def schema_objects(dbname: str, server: Mapping, pg_dump: str = "pg_dump") -> dict[str, str]:
    """`pg_dump --schema-only --create`, one entry per object, keyed by its header's type, name and schema."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # nothing but the arguments decides
    argv = [pg_dump, "--schema-only", "--create", "--host", str(server["host"]), "--port", str(server["port"])]
    dumped = subprocess.run(
        [*argv, "--username", str(server["user"]), "--dbname", dbname],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    name = re.compile(rf'(?<![\w$"]){re.escape(dbname)}(?![\w$])|"{re.escape(dbname)}"')
    objects: dict[str, list[str]] = {"(preamble)": []}
    current = objects["(preamble)"]
    for line in dumped.splitlines():
        if not line.strip() or line == "--" or line in DUMP_MARKS or RANDOM_KEY.match(line):
            continue
        if NAMES_THE_DATABASE.match(line):
            line = name.sub("<dbname>", line)
        header = HEADER.match(line)
        if header:
            schema = header["schema"]
            key = f"{header['type']} {header['name']}" + (f" in {schema}" if schema != "-" else "")
            current = objects[_unique(key, objects)] = []
        current.append(line)
    return {key: "\n".join(lines) for key, lines in objects.items()}


def _unique(key: str, taken: Mapping[str, object]) -> str:
    """Two objects can share a header (default privileges of two roles): number the later ones."""
    n = 1
    while key in taken:
        n += 1
        key = f"{key.split(' #')[0]} #{n}"
    return key


def database_row(admin: psycopg.Connection, dbname: str) -> dict[str, object]:
    row = admin.execute(
        """SELECT to_jsonb(d), pg_get_userbyid(d.datdba), d.datacl::text[], t.spcname,
                  shobj_description(d.oid, 'pg_database')
             FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s""",
        (dbname,),
    ).fetchone()
    if row is None:
        return {"exists": False}
    columns, owner, acl, tablespace, comment = row
    kept = {k: v for k, v in columns.items() if k not in VOLATILE_DATABASE_COLUMNS}
    # An ACL's items are a set: a faithful restore may write them in another order.
    acl = sorted(acl) if acl is not None else None
    return {**kept, "owner": owner, "acl": acl, "tablespace": tablespace, "comment": comment}


def role_settings(admin: psycopg.Connection, dbname: str) -> dict[str, list[str]]:
    rows = admin.execute(
        """SELECT CASE WHEN s.setrole = 0 THEN '(every role)' ELSE pg_get_userbyid(s.setrole) END, s.setconfig
             FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s""",
        (dbname,),
    )
    return {role: sorted(config) for role, config in rows}


def _relations(conn: psycopg.Connection, kinds: str) -> list[tuple[str, bool]]:
    """The user's relations of these relkinds (no system or extension ones), as quoted names."""
    return conn.execute(
        """SELECT format('%%I.%%I', n.nspname, c.relname), c.relispopulated
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = ANY(%s) AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
              AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                                                        AND e.deptype = 'e')
            ORDER BY 1""",
        (list(kinds),),
    ).fetchall()


def table_rows(conn: psycopg.Connection) -> dict[str, object]:
    """Row count and md5 of the rows' text; ordered by that text in "C", so the database's collation cannot matter."""
    result: dict[str, object] = {}
    for table, populated in _relations(conn, "rpm"):
        if not populated:
            result[table] = "not populated"
            continue
        query = sql.SQL(
            """SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C"), ''))
                 FROM {} t"""
        ).format(sql.SQL(table))
        result[table] = list(conn.execute(query).fetchone())
    return result


def sequence_values(conn: psycopg.Connection) -> dict[str, list[object]]:
    return {
        seq: list(conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(seq))).fetchone())
        for seq, _ in _relations(conn, "S")
    }


def large_objects(conn: psycopg.Connection) -> dict[str, dict[str, object]]:
    """Keyed by oid: pg_restore keeps large objects' oids, so a faithful restore has the same ones."""
    rows = conn.execute(
        """SELECT m.oid, pg_get_userbyid(m.lomowner), m.lomacl::text[], obj_description(m.oid, 'pg_largeobject'),
                  md5(lo_get(m.oid))
             FROM pg_largeobject_metadata m ORDER BY m.oid"""
    )
    return {
        str(oid): {"owner": owner, "acl": sorted(acl) if acl is not None else None, "comment": comment, "md5": md5}
        for oid, owner, acl, comment, md5 in rows
    }


# What each application role sees, connected as itself (so its database and role-in-database settings apply).
# Every query is rolled back and none touches a sequence, so fingerprinting changes nothing it fingerprints.
SETTINGS_SEEN = """SELECT current_setting('search_path'), current_setting('statement_timeout'),
                          current_setting('work_mem'), current_setting('app.tenant', true)"""
ROLE_QUERIES: dict[str, dict[str, str]] = {
    "owner": {
        "settings": SETTINGS_SEEN,
        "own table": "SELECT count(*), sum(total) FROM shop.orders",
        "own unpopulated materialized view": "SELECT count(*) FROM audit.event_summary",
        "rows past row-level security": "SELECT string_agg(body, ',' ORDER BY id) FROM shop.tenant_notes",
        "default privileges on a new table and function": """
            CREATE TABLE shop.fidelity_probe (x int);
            CREATE FUNCTION shop.fidelity_probe_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
            SELECT (SELECT relacl::text FROM pg_class WHERE oid = 'shop.fidelity_probe'::regclass),
                   (SELECT proacl::text FROM pg_proc WHERE oid = 'shop.fidelity_probe_fn'::regproc)""",
    },
    "reader": {
        "settings": SETTINGS_SEEN,
        "orders through its search_path": """SELECT id, customer_id, status, total, quantity, amount, ratio, note
                                               FROM orders WHERE id <= 3 OR id > 1000 ORDER BY id""",
        "words in the database's collation": "SELECT string_agg(word, ',' ORDER BY word) FROM words",
        "upper() in the database's ctype": "SELECT string_agg(upper(word), ',' ORDER BY word COLLATE \"C\") FROM words",
        "security definer function": "SELECT shop.customer_digest(100)",
        "view and aggregate": "SELECT shop.csv_agg(name ORDER BY total DESC, name)"
        " FROM (SELECT * FROM shop.order_totals ORDER BY total DESC, name LIMIT 5) top",
        "revoked table": "SELECT count(*) FROM shop.blobs",
        "rows past row-level security": "SELECT string_agg(body, ',' ORDER BY id) FROM shop.tenant_notes",
        "granted by the writer": "SELECT count(*) FROM audit.events",
        "never granted": "SELECT count(*) FROM audit.scratch",
        "schema public": "SELECT public.hstore('a', 'b')",
        "temporary table": "CREATE TEMP TABLE fidelity_temp (x int)",
    },
    "writer": {
        "settings": SETTINGS_SEEN,
        "column grant update": "UPDATE shop.customers SET name = name WHERE id = 100 RETURNING id, name",
        "table without a column grant": "SELECT count(*) FROM shop.customers",
        "security definer refused": "SELECT shop.customer_digest(100)",
        "procedure": "CALL shop.mark_paid(-1)",  # no such order: the audit trigger stays quiet
        "sequence": "SELECT last_value, is_called FROM shop.invoice_no",
        "schema public": "SELECT public.hstore('a', 'b')",
        "temporary table": "CREATE TEMP TABLE fidelity_temp (x int)",
    },
    "outsider": {"settings": SETTINGS_SEEN},
}


def as_role(params: Mapping, queries: Mapping[str, str], large_object_oids: list[int]) -> dict[str, object]:
    """Each query's rows as text, or its error; large objects read one by one. A refused connection is the answer."""
    dbname = str(params["dbname"])
    try:
        conn = psycopg.connect(**params, connect_timeout=10)
    except psycopg.OperationalError as exc:
        return {"connect": _error_text(exc, dbname)}
    queries = {**queries, **{f"read large object {oid}": f"SELECT md5(lo_get({oid}))" for oid in large_object_oids}}
    seen: dict[str, object] = {}
    with conn:
        for label, query in queries.items():
            try:
                with conn.cursor() as cur:
                    cur.execute(query)
                    while cur.nextset():  # a script: its last statement's rows are the answer
                        pass
                    rows = cur.fetchall() if cur.description else []
                seen[label] = [[None if v is None else str(v) for v in row] for row in rows]
            except psycopg.Error as exc:
                seen[label] = _error_text(exc, dbname)
            finally:
                conn.rollback()
    return seen


def _error_text(exc: psycopg.Error, dbname: str) -> str:
    message = exc.diag.message_primary or str(exc).rsplit("FATAL:", 1)[-1].strip()
    return "ERROR: " + message.replace(dbname, "<dbname>")


