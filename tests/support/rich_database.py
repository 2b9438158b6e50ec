"""A database as rich as an application's, for proving restores faithful: roles, grants, locales, large objects."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tests.support.databases import database_names, drop_database, new_name

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
    """Create `dbname` on admin_conn's server, owned by roles.owner, with every kind of object a restore must keep.

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
