"""The fidelity harness itself (tests/support/fidelity.py): it sees every change, a faithful restore made by hand with
pg_dump and pg_restore has zero differences on this server, and the console's old way of restoring
(`--no-owner --no-privileges` into a bare database) is told apart, aspect by aspect."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support.databases import PG
from tests.support.fidelity import differences, fingerprint
from tests.support.rich_database import RichDatabase, rich_database

DATABASE_ENTRY = re.compile(r"^\d+; \d+ \d+ (DATABASE|DATABASE PROPERTIES|COMMENT - DATABASE|ACL - DATABASE) ")


def run_pg_tool(tool: str, *args: str) -> None:
    argv = [tool, "--host", str(PG["host"]), "--port", str(PG["port"]), "--username", str(PG["user"]), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{tool} failed: {done.stderr}"


def dump_and_set_aside(pg_admin: psycopg.Connection, rich: RichDatabase, folder: Path) -> Path:
    """A `pg_dump -Fc` archive, then the original renamed away (still named like it, so the fixture drops it)."""
    archive = folder / f"{rich.name}.dump"
    run_pg_tool("pg_dump", "--format=custom", "--file", str(archive), "--dbname", rich.name)
    pg_admin.execute(
        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(rich.name), sql.Identifier(f"{rich.name}_orig"))
    )
    return archive


def faithful_restore(archive: Path, dbname: str, extensions: Mapping[str, Mapping[str, str]]) -> None:
    """A faithful restore, by hand. `pg_restore --create` alone is not one: pg_dump writes
    `CREATE EXTENSION IF NOT EXISTS` without version or owner, so extensions come back at the default version,
    owned by whoever restores. So: the database and its properties first (--create, only those entries), then
    the extensions at their recorded versions as their recorded owners, then everything else into it."""
    listing = subprocess.run(
        ["pg_restore", "--create", "--list", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    database_entries = [line for line in listing.splitlines() if DATABASE_ENTRY.match(line)]
    assert database_entries, listing
    entries = archive.with_suffix(".database.list")
    entries.write_text("\n".join(database_entries) + "\n")
    run_pg_tool(
        "pg_restore", "--create", "--exit-on-error", "--use-list", str(entries), "--dbname", "postgres", str(archive)
    )
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        for name, extension in extensions.items():
            if name == "plpgsql":  # every database has it already
                continue
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(extension["owner"])))
            conn.execute(
                sql.SQL("CREATE EXTENSION {} VERSION {} SCHEMA {}").format(
                    sql.Identifier(name), sql.Literal(extension["version"]), sql.Identifier(extension["schema"])
                )
            )
            conn.execute("RESET ROLE")
    run_pg_tool("pg_restore", "--exit-on-error", "--dbname", dbname, str(archive))


def execute_in(dbname: str, statement: str) -> None:
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute(statement)


def naming(lines: list[str], start: str) -> list[str]:
    return [line for line in lines if line.startswith(start)]


def test_the_rich_database_has_what_a_faithful_restore_must_carry(pg_admin) -> None:
    with rich_database(pg_admin, with_event_trigger=True) as rich:
        seen = fingerprint(rich.name, roles=rich.roles)
    schema = seen["schema"]
    for key in (
        "EVENT TRIGGER audit_ddl",
        "POLICY tenant_notes same_tenant in shop",
        "ROW SECURITY tenant_notes in shop",
        "TRIGGER orders orders_audit in shop",
        "AGGREGATE csv_agg(text) in shop",
        "PROCEDURE mark_paid(bigint) in shop",
        "FUNCTION order_total(integer) in shop",
        "FUNCTION log_change() in audit",
        "VIEW order_totals in shop",
        "MATERIALIZED VIEW order_counts in shop",
        "MATERIALIZED VIEW event_summary in audit",
        "TYPE order_status in shop",
        "TYPE address in shop",
        "TYPE price_range in shop",
        "DOMAIN money_amount in shop",
        "TABLE ATTACH events_2024 in audit",
        "TABLE ATTACH events_2025 in audit",
        "CONSTRAINT customers customers_email_key in shop",
        "FK CONSTRAINT orders orders_customer_id_fkey in shop",
        "ACL COLUMN customers.name in shop",
        "ACL SEQUENCE invoice_no in shop",
        "ACL TYPE order_status in shop",
        "ACL PROCEDURE mark_paid(IN p_order bigint) in shop",
        "COMMENT TABLE orders in shop",
        "COMMENT COLUMN orders.total in shop",
        "COMMENT DATABASE <dbname>",
        "ACL DATABASE <dbname>",
        "DATABASE PROPERTIES <dbname>",
    ):
        assert key in schema, sorted(schema)
    assert "GENERATED ALWAYS AS (upper(name)) STORED" in schema["TABLE customers in shop"]
    assert "ADD GENERATED ALWAYS AS IDENTITY" in schema["SEQUENCE customers_id_seq in shop"]
    assert "CHECK ((quantity > 0))" in schema["TABLE orders in shop"]
    assert len([key for key in schema if key.startswith("DEFAULT ACL")]) == 3
    assert "EXCLUDE USING gist" in schema["CONSTRAINT bookings bookings_room_during_excl in shop"]
    assert "CREATE UNLOGGED TABLE audit.scratch" in schema["TABLE scratch in audit"]
    assert "PARTITION BY RANGE" in schema["TABLE events in audit"]
    assert "SECURITY DEFINER" in schema["FUNCTION customer_digest(integer) in shop"]
    assert "REVOKE USAGE ON SCHEMA public FROM PUBLIC;" in schema["ACL SCHEMA public"]
    assert "WITH GRANT OPTION" in schema["ACL TABLE events in audit"]
    assert "ICU_LOCALE = 'de-DE'" in schema["DATABASE <dbname>"]
    database = seen["database"]
    assert (database["datlocprovider"], database["daticulocale"], database["datconnlimit"]) == ("i", "de-DE", 50)
    assert database["owner"] == rich.roles.owner and database["comment"]
    assert seen["role settings"][rich.roles.reader] == ["search_path=shop, audit, public"]
    assert seen["extensions"]["hstore"]["version"] == rich.hstore_version != "1.8"
    assert seen["tables"]["audit.event_summary"] == "not populated"
    assert seen["sequences"]["audit.batch_no"] == [42, False]
    assert len(seen["large objects"]) == 3
    reader = seen["as reader"]
    assert reader["words in the database's collation"] == [["ähnlich,apfel,Äpfel,Ärger,b,Bär,Ol,öl,Zebra,zoo"]]
    assert ["1001", "100", "new", "0.00", "1", "NaN", "nan", "not a number"] in reader["orders through its search_path"]
    assert reader["revoked table"] == "ERROR: permission denied for table blobs"
    assert seen["as outsider"]["connect"].startswith('ERROR: permission denied for database "<dbname>"')


def test_the_fingerprint_equals_itself_and_names_each_change(pg_admin) -> None:
    with rich_database(pg_admin) as rich:
        before = fingerprint(rich.name, roles=rich.roles)
        assert differences(before, fingerprint(rich.name, roles=rich.roles)) == []  # fingerprinting changes nothing

        db, reader = rich.name, rich.roles.reader
        oid = min(before["large objects"])
        changes = [
            ("UPDATE shop.words SET word = 'Zebras' WHERE word = 'Zebra'", "tables › shop.words"),
            (f"REVOKE SELECT ON shop.words FROM {reader}", "schema › ACL TABLE words in shop"),
            (f"REVOKE SELECT ON shop.orders FROM {reader}", "as reader › orders through its search_path"),
            (f"ALTER DATABASE {db} SET work_mem = '4MB'", "role settings › (every role)"),
            (f"ALTER ROLE {reader} IN DATABASE {db} RESET search_path", f"role settings › {reader}"),
            (f"ALTER DATABASE {db} CONNECTION LIMIT 10", "database › datconnlimit"),
            (f"COMMENT ON DATABASE {db} IS 'another'", "database › comment"),
            ("SELECT setval('shop.invoice_no', 5000)", "sequences › shop.invoice_no"),
            (f"SELECT lo_put({oid}, 0, '\\x00')", f"large objects › {oid} › md5"),
            ("ALTER EXTENSION hstore UPDATE", "extensions › hstore › version"),
            ("REFRESH MATERIALIZED VIEW audit.event_summary", "tables › audit.event_summary"),
            ("ALTER TABLE shop.prices OWNER TO postgres", "schema › TABLE prices in shop"),
        ]
        for statement, named in changes:
            execute_in(db, statement)
            after = fingerprint(db, roles=rich.roles)
            found = differences(before, after)
            assert naming(found, named), f"{statement!r} should show under {named!r}, found {found}"
            before = after


def test_a_faithful_restore_by_hand_has_zero_differences(pg_admin, tmp_path) -> None:
    """pg_dump -Fc, the original renamed away, pg_restore --create under the same name (extensions first, see
    faithful_restore): what a faithful restore asks of the console, done with the plain tools. Zero differences is
    reachable on this server, event trigger included."""
    with rich_database(pg_admin, with_event_trigger=True) as rich:
        before = fingerprint(rich.name, roles=rich.roles)
        archive = dump_and_set_aside(pg_admin, rich, tmp_path)
        faithful_restore(archive, rich.name, before["extensions"])
        after = fingerprint(rich.name, roles=rich.roles)
        assert differences(before, after) == []
        # The original is still there under its other name: the comparison really was with a new database.
        assert fingerprint(f"{rich.name}_orig", roles=rich.roles)["database"] == after["database"]


def test_pg_restore_create_alone_loses_extension_versions_and_owners(pg_admin, tmp_path) -> None:
    """Why faithful_restore takes a detour: a plain `pg_restore --create` as postgres differs in exactly these."""
    with rich_database(pg_admin) as rich:
        before = fingerprint(rich.name, roles=rich.roles)
        archive = dump_and_set_aside(pg_admin, rich, tmp_path)
        run_pg_tool("pg_restore", "--create", "--exit-on-error", "--dbname", "postgres", str(archive))
        found = differences(before, fingerprint(rich.name, roles=rich.roles))
    default = pg_admin.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'hstore'").fetchone()
    owner = rich.roles.owner
    assert sorted(found) == [
        f"extensions › btree_gist › owner: {owner} → postgres",
        f"extensions › citext › owner: {owner} → postgres",
        f"extensions › hstore › owner: {owner} → postgres",
        f"extensions › hstore › version: {rich.hstore_version} → {default[0]}",
        f"extensions › pgcrypto › owner: {owner} → postgres",
    ]


def test_a_restore_without_owners_and_grants_is_told_apart(pg_admin, tmp_path) -> None:
    """A restore that is not faithful: `--no-owner --no-privileges` into a bare database from template0."""
    with rich_database(pg_admin) as rich:
        before = fingerprint(rich.name, roles=rich.roles)
        archive = dump_and_set_aside(pg_admin, rich, tmp_path)
        pg_admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(rich.name)))
        run_pg_tool(
            "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", rich.name, str(archive)
        )
        found = differences(before, fingerprint(rich.name, roles=rich.roles))

    owner, reader = rich.roles.owner, rich.roles.reader
    expected = [
        "schema › TABLE orders in shop: ",  # owners: postgres instead of the owner role
        "schema › ACL TABLE orders in shop: missing after",  # grants
        "schema › ACL SCHEMA public: missing after",  # REVOKE USAGE ON SCHEMA public FROM PUBLIC
        "schema › DEFAULT ACL DEFAULT PRIVILEGES FOR TABLES in shop: missing after",
        f"database › owner: {owner} → postgres",
        "database › datlocprovider: i → c",  # locale
        "database › daticulocale: de-DE → None",
        "database › datconnlimit: 50 → -1",
        "database › comment: ",
        "database › acl: ",
        "role settings › (every role): missing after",  # ALTER DATABASE ... SET
        f"role settings › {reader}: missing after",  # ALTER ROLE ... IN DATABASE ... SET
        "large objects › ",
        "as reader › orders through its search_path: ",
        "as outsider › connect: ",  # CONNECT is no longer revoked from PUBLIC
    ]
    for start in expected:
        assert naming(found, start), f"no difference named {start!r} in {found}"
    assert "OWNER TO postgres" in " ".join(naming(found, "schema › TABLE orders in shop: "))
    assert naming(found, "tables") == [] and naming(found, "sequences") == []  # the rows themselves come back
