"""Throw-away databases on a PostgreSQL server: made with sample rows, copied, fingerprinted, dropped."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import psycopg
from psycopg import sql

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def new_name(prefix: str = "pgct") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(pg_admin: psycopg.Connection, name: str, rows: int = 2000, server: Mapping = PG) -> None:
    """A database with sample rows, made through `pg_admin` on `server` (connection params like PG)."""
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(**{**server, "dbname": name}, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE,
                                    created_at timestamptz DEFAULT now(), profile jsonb);
            CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                                 total numeric(12,2), note text);
            CREATE INDEX ON orders (customer_id);
            """
        )
        conn.execute(
            """INSERT INTO customers (name, email, profile)
               SELECT 'customer ' || g, 'c' || g || '@example.com', jsonb_build_object('n', g, 'tag', md5(g::text))
               FROM generate_series(1, %(rows)s) g""",
            {"rows": rows},
        )
        conn.execute(
            """INSERT INTO orders (customer_id, total, note)
               SELECT 1 + (g %% %(rows)s), (g * 7 %% 1000) / 3.0, md5(g::text) || md5((g * 3)::text)
               FROM generate_series(1, %(rows)s * 3) g""",
            {"rows": rows},
        )


def copy_database(pg_admin: psycopg.Connection, name: str, template: str = "template0", timeout: float = 120) -> None:
    """CREATE DATABASE name TEMPLATE template, retried while someone else is connected to the template."""
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    deadline = time.monotonic() + timeout
    while True:
        try:
            pg_admin.execute(statement)
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def drop_database(pg_admin: psycopg.Connection, name: str) -> None:
    pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_names(pg_admin: psycopg.Connection, like: str) -> list[str]:
    rows = pg_admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,)).fetchall()
    return sorted(r[0] for r in rows)


def table_fingerprint(dbname: str, server: Mapping = PG) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every user table's rows."""
    with psycopg.connect(**{**server, "dbname": dbname}) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        result = {}
        for table in tables:
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) FROM {} t"
            ).format(sql.SQL(table))
            count, digest = conn.execute(query).fetchone()
            result[table] = (count, digest)
        return result
