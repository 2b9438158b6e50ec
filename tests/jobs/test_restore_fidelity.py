"""A restore brings back the database that was backed up — owners, grants, database
properties and locale — and ends no session it cannot end.

Each test makes its own roles and an application database owned by a non-superuser role, points a
console at it (as that owner role, the README's recommended setup, or as `postgres`), backs up and
restores through the console's API, and compares what the application sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.helpers import audit_rows, backup_run_in_process, job_of, restore_through_api, run_jobs_for, signed_in
from tests.support.databases import PG, create_database, database_names, drop_database, new_name, table_fingerprint
from tests.support.fidelity import differences, fingerprint
from tests.support.rich_database import RichDatabase, rich_database

DATABASE_FACTS = """
SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datlocprovider, d.datcollate, d.datctype,
       d.daticulocale, d.datconnlimit, d.datacl::text, shobj_description(d.oid, 'pg_database'),
       (SELECT array_agg(coalesce(r.rolname, '*') || ':' || array_to_string(s.setconfig, ',') ORDER BY r.rolname)
          FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = d.oid)
FROM pg_database d WHERE d.datname = %s
"""


def database_facts(pg_admin, dbname: str) -> tuple:
    """What `CREATE DATABASE`, `ALTER DATABASE` and `ALTER ROLE … IN DATABASE` set, as the server keeps it."""
    return pg_admin.execute(DATABASE_FACTS, (dbname,)).fetchone()


def object_facts(dbname: str) -> dict[str, object]:
    """Owners and grants of the application's objects, and what the reader role may see and in what order."""
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        owners = conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner), c.relacl::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'shop') ORDER BY 1"
        ).fetchall()
        schemas = conn.execute(
            "SELECT nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace "
            "WHERE nspname IN ('public', 'shop') ORDER BY 1"
        ).fetchall()
    return {"relations": owners, "schemas": schemas}


def as_reader(dbname: str, reader: str) -> list:
    """What the application's read-only role gets: its search_path from `ALTER ROLE … IN DATABASE`, the
    database's ICU collation for ORDER BY."""
    with psycopg.connect(**{**PG, "user": reader, "dbname": dbname}) as conn:
        return conn.execute("SELECT name FROM labels ORDER BY name").fetchall()


@pytest.fixture
def application(pg_admin) -> Iterator[dict[str, str]]:
    """An application database owned by a non-superuser role, with a reader role, grants, an ICU locale,
    a connection limit, a comment, CONNECT revoked from PUBLIC and database and role settings."""
    owner, reader, dbname = new_name("pgct_owner"), new_name("pgct_reader"), new_name()
    # What the README asks of the console's role when it connects as the owner: CREATEDB, and CREATEROLE
    # for the backup's `ALTER ROLE … IN DATABASE … SET`.
    pg_admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE").format(sql.Identifier(owner)))
    pg_admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(reader)))
    pg_admin.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' "
                             "LOCALE 'C.UTF-8' CONNECTION LIMIT 50").format(sql.Identifier(dbname),
                                                                             sql.Identifier(owner)))  # fmt: skip
    statements = [
        "COMMENT ON DATABASE {db} IS 'the shop''s data'",
        "REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC",
        "GRANT CONNECT ON DATABASE {db} TO {owner}, {reader}",
        "ALTER DATABASE {db} SET work_mem TO '8MB'",
        "ALTER DATABASE {db} SET app.tenant TO 'acme'",
        "ALTER ROLE {reader} IN DATABASE {db} SET search_path TO shop, public",
        # A custom setting needs a superuser or this grant (PostgreSQL 15); the README asks for it.
        "GRANT SET ON PARAMETER app.tenant TO {owner}",
    ]
    names = {"db": sql.Identifier(dbname), "owner": sql.Identifier(owner), "reader": sql.Identifier(reader)}
    for statement in statements:
        pg_admin.execute(sql.SQL(statement).format(**names))
    with psycopg.connect(**{**PG, "user": owner, "dbname": dbname}, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA shop")
        conn.execute("CREATE TABLE shop.labels (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO shop.labels VALUES (1, 'Z'), (2, 'a'), (3, 'B'), (4, 'ä'), (5, 'ö')")
        conn.execute("CREATE TABLE shop.secrets (id int, note text)")
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA shop TO {}").format(sql.Identifier(reader)))
        conn.execute(sql.SQL("GRANT SELECT ON shop.labels TO {} WITH GRANT OPTION").format(sql.Identifier(reader)))
        conn.execute("REVOKE USAGE ON SCHEMA public FROM PUBLIC")
    yield {"dbname": dbname, "owner": owner, "reader": reader}
    drop_database(pg_admin, dbname)
    for leftover in database_names(pg_admin, f"{dbname}%"):
        drop_database(pg_admin, leftover)
    for role in (reader, owner):
        pg_admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        pg_admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def console_for(make_app, make_user, token_for, application, as_owner: bool):
    user = application["owner"] if as_owner else "postgres"
    app = make_app(DATABASE_URL=f"postgresql://{user}@127.0.0.1:5432/{application['dbname']}")
    make_user("ada", "admin")
    return app, token_for("ada")


@pytest.mark.parametrize("as_owner", [True, False], ids=["as the owner role", "as postgres"])
def test_a_restore_brings_back_owners_grants_and_the_databases_own_properties(
    make_app, make_user, token_for, pg_admin, application, as_owner
):
    app, admin = console_for(make_app, make_user, token_for, application, as_owner)
    dbname, reader = application["dbname"], application["reader"]
    before = (database_facts(pg_admin, dbname), object_facts(dbname), as_reader(dbname, reader))
    assert before[2] == [("a",), ("ä",), ("B",), ("ö",), ("Z",)]  # ICU de-DE, through the reader's search_path
    filename = backup_run_in_process(app)["result"]["filename"]
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute("DELETE FROM shop.labels WHERE id > 2")

    status = restore_through_api(app, app.test_client(), admin, filename)

    assert status["status"] == "finished", status["error"]
    after = (database_facts(pg_admin, dbname), object_facts(dbname), as_reader(dbname, reader))
    assert after == before


def test_a_superuser_session_the_console_cannot_end_refuses_the_swap_and_ends_no_session(
    make_app, make_user, token_for, pg_admin, application
):
    app, admin = console_for(make_app, make_user, token_for, application, as_owner=True)
    dbname, owner = application["dbname"], application["owner"]
    filename = backup_run_in_process(app)["result"]["filename"]
    before = table_fingerprint(dbname)
    with psycopg.connect(**{**PG, "dbname": dbname, "user": owner, "application_name": "shop-app"}) as app_session, \
         psycopg.connect(**{**PG, "dbname": dbname, "application_name": "dba-console"}) as superuser:  # fmt: skip
        browser, _ = signed_in(app, make_user, "admin", "root")
        page = browser.get(f"/backups/{filename}/restore").get_data(as_text=True)
        assert "2 sessions" in page and "shop-app" in page and "dba-console" in page
        assert "the console cannot end this one" in page  # said before the passkey is asked
        status = restore_through_api(app, app.test_client(), admin, filename)
        assert status["status"] == "failed"
        assert "cannot end 1 session(s)" in status["error"] and "dba-console" in status["error"]
        assert "no session was ended" in status["error"]
        assert app_session.execute("SELECT 1").fetchone() == (1,)  # the application is still connected
        assert superuser.execute("SELECT 1").fetchone() == (1,)
    assert table_fingerprint(dbname) == before
    assert database_names(pg_admin, f"{dbname}_pgc_%") == []
    # New connections are allowed again.
    with psycopg.connect(**{**PG, "dbname": dbname, "user": owner}) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_event_trigger_with_a_console_that_is_not_a_superuser_is_refused_before_anything_changes(
    make_app, make_user, token_for, pg_admin, application
):
    dbname = application["dbname"]
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION public.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$")
        conn.execute("CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION public.note_ddl()")
    app, admin = console_for(make_app, make_user, token_for, application, as_owner=True)
    filename = backup_run_in_process(app)["result"]["filename"]
    before = table_fingerprint(dbname)

    status = restore_through_api(app, app.test_client(), admin, filename)

    assert status["status"] == "failed"
    assert "only a superuser can create" in status["error"] and "event triggers (note_ddl)" in status["error"]
    assert table_fingerprint(dbname) == before
    assert database_names(pg_admin, f"{dbname}_pgc_%") == []


def test_a_backup_naming_a_missing_role_is_refused_then_restored_without_owners_by_choice(
    make_app, make_user, token_for, pg_admin, application, target_db
):
    """A backup from another server whose roles this one lacks: the restore names them and changes
    nothing; with the admin's choice it restores, every object owned by the console's role."""
    source = application["dbname"]
    app, admin = console_for(make_app, make_user, token_for, application, as_owner=False)
    filename = backup_run_in_process(app)["result"]["filename"]
    expected = table_fingerprint(source)
    create_database(pg_admin, other := new_name(), rows=10)
    try:
        into = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{other}")
        pg_admin.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(application["reader"]),
                                                                      sql.Identifier(renamed := new_name())))
        refused = restore_through_api(into, into.test_client(), admin, filename)
        assert refused["status"] == "failed" and application["reader"] in refused["error"]
        assert "without owners and grants" in refused["error"]
        done = restore_through_api(into, into.test_client(), admin, filename, without_owners=True)
        assert done["status"] == "finished", done["error"]
        assert done["result"]["without_owners"] is True
        assert "without owners and grants" in audit_rows(into, "restore")[-1].detail  # the choice, recorded
        browser, _ = signed_in(into, make_user, "viewer", "vera")
        assert "without owners and grants" in browser.get(f"/jobs/{done['id']}").get_data(as_text=True)
        assert table_fingerprint(other) == expected
        with psycopg.connect(**{**PG, "dbname": other}) as conn:
            assert {r[0] for r in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'shop'")} == {
                "postgres"}
    finally:
        pg_admin.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(renamed),
                                                                      sql.Identifier(application["reader"])))
        drop_database(pg_admin, other)


# --------------------------------------------------------------------------- the whole database (tests/support)


def console_role(pg_admin, rich: RichDatabase, undo: contextlib.ExitStack, as_owner: bool) -> str:
    """The role a console on the rich database connects as: its owner, granted what the README asks of the
    console's role for such a database (taken back by `undo`), or postgres."""
    if not as_owner:
        return "postgres"
    owner = sql.Identifier(rich.roles.owner)
    pg_admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(owner))
    pg_admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(rich.roles.writer), owner))
    pg_admin.execute(sql.SQL("GRANT SET ON PARAMETER app.tenant TO {}").format(owner))
    undo.callback(pg_admin.execute, sql.SQL("REVOKE SET ON PARAMETER app.tenant FROM {}").format(owner))
    return rich.roles.owner


@pytest.mark.parametrize("as_owner", [True, False], ids=["as the owner role", "as postgres"])
def test_a_rich_database_comes_back_with_zero_differences(make_app, make_user, token_for, pg_admin, as_owner):
    """Faithful means: every kind of object, owners, grants, default privileges, large objects and
    their ACLs, extensions at their versions, database properties, locale and role settings; compared by
    the schema dump per object, the pg_database row, pg_db_role_setting, rows, sequences and what each
    application role sees — after a backup, a change, and a restore through the console's API."""
    # An event trigger needs a superuser to create: the database restored as postgres has one.
    with rich_database(pg_admin, with_event_trigger=not as_owner) as rich, contextlib.ExitStack() as undo:
        user = console_role(pg_admin, rich, undo, as_owner)
        app = make_app(DATABASE_URL=f"postgresql://{user}@127.0.0.1:5432/{rich.name}")
        make_user("ada", "admin")
        before = fingerprint(rich.name, roles=rich.roles)
        filename = backup_run_in_process(app)["result"]["filename"]
        with psycopg.connect(**{**PG, "dbname": rich.name}, autocommit=True) as conn:
            conn.execute("DELETE FROM shop.words")
            conn.execute("ALTER DATABASE " + rich.name + " SET work_mem = '64MB'")

        status = restore_through_api(app, app.test_client(), token_for("ada"), filename)

        assert status["status"] == "finished", status["error"]
        assert status["result"]["notes"] == []
        assert differences(before, fingerprint(rich.name, roles=rich.roles)) == []


# --------------------------------------------------------------------------- no committed write is lost


def test_writes_made_just_before_a_restore_are_in_its_safety_backup_and_undo_brings_them_back(
    make_app, make_user, token_for, target_db, pg_admin, tmp_path
):
    """The replaced database is backed up after the swap, as it was at that moment: rows written a second
    before "Restore" are in that safety backup, which "Undo" offers; following Undo's link as an admin does
    brings them back. The safety dump is made slow (a pg_dump that waits 6 s first when it dumps the
    set-aside database) and the live database refused connections (a client connecting every 10 ms) only
    for the swap: far shorter than that dump, both measured."""
    import re
    import threading
    import time

    from tests.helpers import PASSKEY, post
    from tests.jobs.test_restore_safety import set_aside_pg_dump

    marks = tmp_path / "safety-dump-times"
    slow = set_aside_pg_dump(tmp_path / "bin", f'date +%s.%N >> "{marks}"; sleep 6; "$real" "$@"; code=$?; '
                                               f'date +%s.%N >> "{marks}"; exit $code')  # fmt: skip
    app = make_app(PG_BIN_DIRS=slow)
    make_user("ada", "admin")
    admin = token_for("ada")
    filename = backup_run_in_process(app)["result"]["filename"]
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("INSERT INTO customers (name) VALUES ('written a second before the restore')")
    with_the_write = table_fingerprint(target_db)
    refused: list[float] = []
    stop = threading.Event()

    def knock() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(**{**PG, "dbname": target_db}, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
            except psycopg.OperationalError:
                refused.append(time.monotonic())
            time.sleep(0.01)

    knocker = threading.Thread(target=knock)
    knocker.start()
    try:
        status = restore_through_api(app, app.test_client(), admin, filename)
    finally:
        stop.set()
        knocker.join()

    assert status["status"] == "finished", status["error"]
    safety = status["result"]["safety_backup_of_replaced"]
    assert safety and safety == status["result"]["safety_backup"] and safety != filename
    assert table_fingerprint(target_db) != with_the_write  # the restore replaced it
    started, ended = map(float, marks.read_text().split())
    dump_seconds, refused_seconds = ended - started, (refused[-1] - refused[0] if refused else 0.0)
    assert dump_seconds >= 6.0
    assert refused_seconds < 3.0 and refused_seconds < dump_seconds / 2, (
        f"connections refused for {refused_seconds:.1f} s, the safety dump took {dump_seconds:.1f} s")
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []  # the replaced database went once backed up
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get(f"/jobs/{status['id']}").get_data(as_text=True)
    assert "backed up first as it was at the swap" in page and safety in page

    # Undo, as an admin follows it: the link on the job page, its page, the form filled in and sent.
    browser, auth = signed_in(app, make_user, "admin", "root")
    page = browser.get(f"/jobs/{status['id']}").get_data(as_text=True)
    href = re.search(r'<p id="job-undo">.*?<a href="([^"]+)">', page, re.S)[1]
    assert href == f"/backups/{safety}/restore"
    confirm = browser.get(href)
    assert confirm.status_code == 200 and f"Type {target_db} to confirm" in confirm.get_data(as_text=True)
    sent = post(browser, auth, href, {"passkey": PASSKEY, "confirm": target_db}, page=href)
    assert sent.status_code == 303 and sent.headers["Location"].startswith("/jobs/")
    run_jobs_for(app)
    undone = job_of(app, sent.headers["Location"].removeprefix("/jobs/"))
    assert undone["status"] == "finished", undone["error"]
    assert undone["result"]["filename"] == safety
    assert table_fingerprint(target_db) == with_the_write
