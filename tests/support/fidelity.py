"""The yardstick for faithful restores: a database as rich as an application's, and a fingerprint of
everything a restore must bring back, compared aspect by aspect.

    with rich_database(pg_admin, with_event_trigger=True) as rich:
        before = fingerprint(rich.name, roles=rich.roles)
        ...  # back up, restore
        assert differences(before, fingerprint(rich.name, roles=rich.roles)) == []

Everything runs on a real server (PG by default); role and database names come from new_name, so
parallel tests never meet. No test functions here: tests/test_fidelity_harness.py proves the harness.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tests.support.databases import PG, database_names, drop_database, new_name

ICU_LOCALES = ("de-DE", "de", "sv-SE", "und")  # de-DE sorts a,ä,B,ö,Z where C sorts B,Z,a,ä,ö
LIBC_LOCALE = "C.UTF-8"  # the only UTF-8 libc locale on the test machines (`locale -a`)
WORDS = ("Zebra", "apfel", "Äpfel", "Bär", "öl", "Ol", "zoo", "ähnlich", "Ärger", "b")


@dataclass(frozen=True)
class Roles:
    """The application's roles: the owner of everything, a reader, a writer, and one never granted CONNECT."""

    owner: str
    reader: str
    writer: str
    outsider: str

    @classmethod
    def fresh(cls) -> Roles:
        stem = new_name("pgfid")
        return cls(*(f"{stem}_{kind}" for kind in ("owner", "reader", "writer", "outsider")))

    def items(self) -> list[tuple[str, str]]:
        """(kind, role name) pairs: fingerprint keys use the kind, so they do not depend on the random names."""
        return [(kind, getattr(self, kind)) for kind in ("owner", "reader", "writer", "outsider")]


@dataclass(frozen=True)
class RichDatabase:
    name: str
    roles: Roles
    icu_locale: str
    hstore_version: str  # the non-default version installed, or the only one there is


def create_roles(admin_conn: psycopg.Connection, roles: Roles) -> None:
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(roles.owner)))
    for role in (roles.reader, roles.writer, roles.outsider):
        admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


def drop_roles(admin_conn: psycopg.Connection, roles: Roles) -> None:
    for _, role in roles.items():
        admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def rich_database(admin_conn: psycopg.Connection, *, with_event_trigger: bool = False) -> Iterator[RichDatabase]:
    """Roles and a rich database made for one test; afterwards every database named like it (restored copies,
    renamed originals) and the roles are dropped, also when the test failed."""
    roles = Roles.fresh()
    name = roles.owner.removesuffix("_owner")
    try:
        create_roles(admin_conn, roles)
        yield build_rich_database(admin_conn, name, roles, with_event_trigger=with_event_trigger)
    finally:
        for leftover in database_names(admin_conn, f"{name}%"):
            drop_database(admin_conn, leftover)
        drop_roles(admin_conn, roles)


def icu_locale(admin_conn: psycopg.Connection) -> str:
    """de-DE where the server's ICU has it, else the first of ICU_LOCALES it has (all sort unlike C)."""
    # By the collations' names: the locale column is colliculocale up to 16, colllocale from 17.
    rows = admin_conn.execute("SELECT collname FROM pg_collation WHERE collprovider = 'i'")
    known = {r[0].removesuffix("-x-icu") for r in rows}
    return next(locale for locale in ICU_LOCALES if locale in known or locale == "und")


def older_extension_version(conn: psycopg.Connection, extension: str) -> str:
    """The newest version below the default, so that a restore that forgets the version shows it; else the default."""
    row = conn.execute(
        """SELECT coalesce(
                 (SELECT v.version FROM pg_available_extension_versions v
                   WHERE v.name = e.name AND v.version <> e.default_version AND v.version ~ '^[0-9.]+$'
                     AND string_to_array(v.version, '.')::int[] < string_to_array(e.default_version, '.')::int[]
                   ORDER BY string_to_array(v.version, '.')::int[] DESC LIMIT 1),
                 e.default_version)
             FROM pg_available_extensions e WHERE e.name = %s""",
        (extension,),
    ).fetchone()
    return row[0]


def build_rich_database(
    admin_conn: psycopg.Connection, dbname: str, roles: Roles, *, with_event_trigger: bool = False
) -> RichDatabase:
    """Create `dbname` on admin_conn's server, owned by roles.owner, with everything issue 30 lists.

    The roles must exist (create_roles). The event trigger is made only when asked: it needs a superuser,
    so a database with one cannot be restored by a non-superuser console.
    """
    locale = icu_locale(admin_conn)
    db, owner, reader, writer = (sql.Identifier(n) for n in (dbname, roles.owner, roles.reader, roles.writer))
    for statement in (
        sql.SQL(
            "CREATE DATABASE {db} OWNER {owner} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu"
            " ICU_LOCALE {icu} LOCALE {libc} CONNECTION LIMIT 50"
        ),
        sql.SQL("COMMENT ON DATABASE {db} IS 'pgconsole fidelity: the application''s database'"),
        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC"),
        sql.SQL("GRANT CONNECT ON DATABASE {db} TO {reader}, {writer}"),
        sql.SQL("GRANT TEMPORARY ON DATABASE {db} TO {writer}"),
        sql.SQL("ALTER DATABASE {db} SET search_path = shop, public"),
        sql.SQL("ALTER DATABASE {db} SET statement_timeout = '45s'"),
        sql.SQL("ALTER DATABASE {db} SET work_mem = '12MB'"),
        sql.SQL("ALTER DATABASE {db} SET app.tenant = 'acme'"),
        sql.SQL("ALTER ROLE {reader} IN DATABASE {db} SET search_path = shop, audit, public"),
    ):
        admin_conn.execute(
            statement.format(
                db=db, owner=owner, reader=reader, writer=writer, icu=sql.Literal(locale), libc=sql.Literal(LIBC_LOCALE)
            )
        )
    params = {**admin_conn.info.get_parameters(), "dbname": dbname}
    with psycopg.connect(**params, autocommit=True) as conn:
        hstore = older_extension_version(conn, "hstore")
        names = {"owner": owner, "reader": reader, "writer": writer, "hstore": sql.Literal(hstore)}
        for script in (_AS_SUPERUSER, _AS_OWNER, _AS_WRITER, _ROWS):
            conn.execute(sql.SQL(script).format(**names))
        conn.execute("INSERT INTO shop.words SELECT unnest(%s::text[])", (list(WORDS),))
        _large_objects(conn, roles)
        if with_event_trigger:
            conn.execute(sql.SQL(_EVENT_TRIGGER).format(**names))
    return RichDatabase(dbname, roles, locale, hstore)


def _large_objects(conn: psycopg.Connection, roles: Roles) -> None:
    """Three large objects of the owner's: one the reader may read, one the writer may change, one private."""
    every_byte = bytes(range(256))
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(roles.owner)))
        made = [
            conn.execute("SELECT lo_from_bytea(0, %s)", (content,)).fetchone()[0]
            for content in (b"large object for the reader", every_byte * 40, b"private")
        ]
        grants = (
            "GRANT SELECT ON LARGE OBJECT {} TO {}",
            "GRANT SELECT, UPDATE ON LARGE OBJECT {} TO {}",
            "COMMENT ON LARGE OBJECT {} IS 'only the owner reads this'",
        )
        for oid, grantee, grant in zip(made, (roles.reader, roles.writer, None), grants, strict=True):
            conn.execute(sql.SQL(grant).format(sql.Literal(oid), *([sql.Identifier(grantee)] if grantee else [])))


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


# What only the database's superuser may do; everything else is done as the owner, as an application's migrations do.
_AS_SUPERUSER = """
REVOKE USAGE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {writer};
"""

_AS_OWNER = """
SET ROLE {owner};
CREATE EXTENSION hstore VERSION {hstore} SCHEMA public;
CREATE EXTENSION pgcrypto SCHEMA public;
CREATE EXTENSION citext SCHEMA public;
CREATE EXTENSION btree_gist SCHEMA public;

CREATE SCHEMA shop;
CREATE SCHEMA audit;
COMMENT ON SCHEMA shop IS 'orders and customers';

CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN shop.money_amount AS numeric(12,2) CHECK (VALUE >= 0);
CREATE TYPE shop.address AS (street text, city text, zip text);
CREATE TYPE shop.price_range AS RANGE (subtype = numeric);
COMMENT ON TYPE shop.order_status IS 'where an order is';

CREATE TABLE shop.customers (
    id integer GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 3) PRIMARY KEY,
    name text NOT NULL,
    email public.citext UNIQUE,
    address shop.address,
    attrs public.hstore,
    tenant text NOT NULL DEFAULT current_setting('app.tenant'),
    name_key text GENERATED ALWAYS AS (upper(name)) STORED
);
CREATE TABLE shop.orders (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES shop.customers (id) ON DELETE CASCADE,
    status shop.order_status NOT NULL DEFAULT 'new',
    total shop.money_amount NOT NULL,
    quantity integer CHECK (quantity > 0),
    amount numeric,
    ratio double precision,
    note text,
    UNIQUE (customer_id, id)
);
COMMENT ON TABLE shop.orders IS 'one row per order';
COMMENT ON COLUMN shop.orders.total IS 'in euro';
CREATE INDEX orders_status ON shop.orders (status) WHERE status <> 'cancelled';
CREATE TABLE shop.bookings (
    id serial PRIMARY KEY,
    room integer NOT NULL,
    during tsrange NOT NULL,
    EXCLUDE USING gist (room WITH =, during WITH &&)
);
CREATE TABLE shop.prices (id integer PRIMARY KEY, product text NOT NULL, valid shop.price_range);
CREATE TABLE shop.blobs (id integer PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE shop.words (word text PRIMARY KEY);
CREATE TABLE shop.tenant_notes (
    id integer PRIMARY KEY,
    tenant text NOT NULL DEFAULT current_setting('app.tenant'),
    body text
);
ALTER TABLE shop.tenant_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY same_tenant ON shop.tenant_notes USING (tenant = current_setting('app.tenant', true));

CREATE TABLE audit.events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    at timestamptz NOT NULL,
    tenant text,
    action text,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE audit.events_2024 PARTITION OF audit.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE audit.events_2025 PARTITION OF audit.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE UNLOGGED TABLE audit.scratch (k text PRIMARY KEY, v jsonb);

CREATE SEQUENCE shop.invoice_no START 1000 INCREMENT 7;
CREATE SEQUENCE audit.batch_no;

CREATE VIEW shop.order_totals AS
    SELECT c.name, sum(o.total) AS total
      FROM shop.customers c JOIN shop.orders o ON o.customer_id = c.id GROUP BY c.name;
CREATE MATERIALIZED VIEW shop.order_counts AS SELECT status, count(*) AS orders FROM shop.orders GROUP BY status;
CREATE MATERIALIZED VIEW audit.event_summary AS SELECT tenant, count(*) AS events FROM audit.events GROUP BY tenant
    WITH NO DATA;

CREATE FUNCTION shop.order_total(p_customer integer) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(total), 0) FROM shop.orders WHERE customer_id = p_customer $$;
CREATE FUNCTION audit.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.events (at, tenant, action)
    VALUES ('2025-06-01 12:00+00', current_setting('app.tenant', true), TG_OP || ' ' || TG_TABLE_NAME);
    RETURN NEW;
END $$;
CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION audit.log_change();
CREATE FUNCTION shop.customer_digest(p_id integer) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = shop, public, pg_temp
    AS $$ SELECT encode(digest(name, 'sha256'), 'hex') FROM customers WHERE id = p_id $$;
COMMENT ON FUNCTION shop.customer_digest(integer) IS 'runs as the owner: only granted roles may call it';
CREATE PROCEDURE shop.mark_paid(p_order bigint) LANGUAGE plpgsql
    AS $$ BEGIN UPDATE shop.orders SET status = 'paid' WHERE id = p_order; END $$;
CREATE FUNCTION shop.csv_step(text, text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN $1 = '' THEN $2 ELSE $1 || ',' || $2 END $$;
CREATE AGGREGATE shop.csv_agg(text) (SFUNC = shop.csv_step, STYPE = text, INITCOND = '');

GRANT USAGE ON SCHEMA shop TO {reader}, {writer};
GRANT USAGE ON SCHEMA audit TO {reader}, {writer};
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {reader};
REVOKE SELECT ON shop.blobs FROM {reader};
GRANT SELECT, INSERT, UPDATE ON shop.orders TO {writer};
GRANT SELECT, INSERT ON audit.events TO {writer} WITH GRANT OPTION;
GRANT SELECT (id, name, email), UPDATE (name, email) ON shop.customers TO {writer};
GRANT USAGE, SELECT ON SEQUENCE shop.invoice_no TO {writer};
REVOKE ALL ON FUNCTION shop.customer_digest(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shop.customer_digest(integer) TO {reader};
REVOKE ALL ON PROCEDURE shop.mark_paid(bigint) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE shop.mark_paid(bigint) TO {writer};
REVOKE USAGE ON TYPE shop.order_status FROM PUBLIC;
GRANT USAGE ON TYPE shop.order_status TO {reader}, {writer};
ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO {reader};
ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT USAGE, SELECT ON SEQUENCES TO {writer};
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
RESET ROLE;
"""

# A grant made by the writer with the grant option it was given: its grantor must survive a restore too.
_AS_WRITER = """
SET ROLE {writer};
GRANT SELECT ON audit.events TO {reader};
RESET ROLE;
"""

_ROWS = """
SET ROLE {owner};
INSERT INTO shop.customers (name, email, address, attrs)
SELECT 'customer ' || g, 'C' || g || '@Example.com',
       ROW(g || ' Main St', 'Köln'::text, lpad(g::text, 5, '0'))::shop.address,
       public.hstore(ARRAY['tier', 'n'], ARRAY[CASE WHEN g % 3 = 0 THEN 'gold' ELSE 'basic' END, g::text])
FROM generate_series(1, 200) g;
INSERT INTO shop.orders (customer_id, status, total, quantity, amount, ratio, note)
SELECT 100 + 3 * (g % 200), (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + g % 4]::shop.order_status,
       (g * 7 % 1000) / 3.0, 1 + g % 5, g / 7.0, g / 3.0, md5(g::text)
FROM generate_series(1, 1000) g;
INSERT INTO shop.orders (customer_id, total, quantity, amount, ratio, note) VALUES
    (100, 0, 1, 'NaN', 'NaN', 'not a number'),
    (100, 0, 1, 'Infinity', 'Infinity', 'infinite'),
    (100, 0, 1, '-Infinity', '-Infinity', 'minus infinite'),
    (100, 0, 1, -0.0, '-0', E'tab\\tnewline\\nquote'' backslash\\\\ and ünïcödé');
INSERT INTO shop.bookings (room, during) VALUES
    (1, '[2025-01-01 10:00, 2025-01-01 11:00)'), (1, '[2025-01-01 11:00, 2025-01-01 12:00)'),
    (2, '[2025-01-01 10:00, 2025-01-01 12:00)');
INSERT INTO shop.prices VALUES (1, 'tea', '[1.5, 3.25)'), (2, 'coffee', '(2,)'), (3, 'water', 'empty');
INSERT INTO shop.blobs VALUES
    (1, (SELECT string_agg(set_byte('\\x00'::bytea, 0, g), ''::bytea ORDER BY g) FROM generate_series(0, 255) g)),
    (2, ''::bytea);
INSERT INTO shop.tenant_notes (id, tenant, body) VALUES (1, 'acme', 'for acme'), (2, 'other', 'not for acme'),
    (3, DEFAULT, 'default tenant');
INSERT INTO audit.events (at, tenant, action) VALUES ('2024-03-01 08:00+00', 'acme', 'signup');
INSERT INTO audit.scratch VALUES ('cache', '{{"hits": 3}}');
SELECT setval('shop.invoice_no', 1234, true);
SELECT setval('audit.batch_no', 42, false);
SELECT nextval('shop.bookings_id_seq');
REFRESH MATERIALIZED VIEW shop.order_counts;
RESET ROLE;
"""

_EVENT_TRIGGER = """
SET ROLE {owner};
CREATE FUNCTION audit.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'ddl %', tg_tag; END $$;
RESET ROLE;
CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION audit.on_ddl();
COMMENT ON EVENT TRIGGER audit_ddl IS 'made by a superuser: a non-superuser cannot restore it';
"""
