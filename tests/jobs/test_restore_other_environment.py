"""A production backup restored into staging, whose server has never had production's roles (issue 30).

Two consoles, each with its own console store, Redis namespace and secret key, sharing one store (a
folder) and BACKUP_SIGNING_KEY, so staging trusts production's signed manifest: "production" on the
system's PostgreSQL 15 (127.0.0.1:5432) with the rich database of tests/support/rich_database.py, and
"staging" on a second cluster of its own (tests/support/pg_servers.py), which has none of its roles.

The second server is another cluster of the system's 15, not the 17 or 18 wheels: both wheels are built
without ICU, so the rich database (ICU locale de-DE) cannot be faithfully restored there at all, and 18
has no pgcrypto. A restore across majors is tests/adapters/test_pg_versions.py's subject.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from collections.abc import Mapping

import psycopg
from psycopg import sql

from app.jobs.queue import purge_namespace
from tests.helpers import (
    PASSKEY,
    STORE_FILE,
    audit_rows,
    backup_run_in_process,
    job_of,
    post,
    restore_through_api,
    run_jobs_for,
    signed_in,
)
from tests.jobs.test_restore_preflight import before_you_restore, restore_page, submit_of
from tests.support.databases import PG, create_database, database_names, drop_database, new_name, table_fingerprint
from tests.support.fidelity import CATALOG_OPTIONS, differences, fingerprint, large_objects, sequence_values, table_rows
from tests.support.pg_servers import SYSTEM, PgServer, throwaway_server
from tests.support.rich_database import rich_database

MISSING = re.compile(r"The backup names roles this server does not have: ([^.]+)\.")


def data_of(dbname: str, server: Mapping) -> dict[str, object]:
    """The rows (count and md5 per table), sequences and large objects' contents: what "the data" is, owners aside."""
    with psycopg.connect(**{**server, "dbname": dbname}, options=CATALOG_OPTIONS, autocommit=True) as conn:
        return {"tables": table_rows(conn), "sequences": sequence_values(conn),
                "large objects": {oid: lo["md5"] for oid, lo in large_objects(conn).items()}}  # fmt: skip


def roles_on(server: PgServer, names: list[str]) -> list[str]:
    with server.admin() as admin:
        return sorted(r[0] for r in admin.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,)))


def staging_as_it_was(server: PgServer, dbname: str, roles: list[str]) -> None:
    """Staging's server back to lacking production's roles: its database with its own sample rows again, the roles
    a restore created dropped (with what they own; the restored database and its set-aside copies go first)."""
    with server.admin() as admin:
        for name in database_names(admin, f"{dbname}%"):
            drop_database(admin, name)
        create_database(admin, dbname, rows=100, server=server.params())
        for role in roles:
            admin.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}").format(sql.Identifier(role)))


def choose(browser, auth, filename: str, choice: str, typed: str) -> str:
    """The restore page's form sent as an admin sends it, with a choice ticked; the job's id."""
    url = f"/backups/{filename}/restore"
    sent = post(browser, auth, url, {"passkey": PASSKEY, choice: "y", "confirm": typed}, page=f"{url}?{choice}=1")
    assert sent.status_code == 303, sent.get_data(as_text=True)
    return sent.headers["Location"].removeprefix("/jobs/")


def test_a_production_backup_restored_into_staging_without_its_roles_refuses_then_creates_them_or_drops_owners(
    make_app, make_user, token_for, pg_admin, redis_server, migrated_store, tmp_path, app_env
):
    """Refused first, naming the missing roles (page and job); then with "create the missing roles", zero
    differences from production's database (schema with owners and grants, database properties, role settings,
    data, what each role sees); then, on a server lacking them again, "without owners and grants": the data
    equal, every object the console's, and the job page and audit log say so."""
    shared_key = "team-signing-key-" + uuid.uuid4().hex
    store = tmp_path / "backups"  # app_env's BACKUP_STORAGE_URL: the folder both consoles use
    # Staging's server is a cluster of this test's own: removed at the end with everything made on it.
    with contextlib.ExitStack() as undo:
        rich = undo.enter_context(rich_database(pg_admin, with_event_trigger=True))  # the event trigger: postgres
        other = undo.enter_context(throwaway_server(SYSTEM["major"], SYSTEM["bin_dir"]))
        undo.callback(shutil.rmtree, store, ignore_errors=True)
        owner, reader, writer, outsider = rich.roles.owner, rich.roles.reader, rich.roles.writer, rich.roles.outsider
        named = sorted([owner, reader, writer])  # the roles the backup names (the outsider is granted nothing)
        pg_admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(reader), sql.Identifier(writer)))

        # Production: its own console store, Redis namespace and secret key; only the store and signing key shared.
        production_ns = new_name("pgct-ns").replace("_", "-")
        undo.callback(purge_namespace, redis_server, production_ns)
        (instance := tmp_path / "production-instance").mkdir()
        shutil.copyfile(migrated_store, instance / STORE_FILE)
        production = make_app(APP_ENV="production", SECRET_KEY=uuid.uuid4().hex, INSTANCE_PATH=str(instance),
                              REDIS_NAMESPACE=production_ns, BACKUP_SIGNING_KEY=shared_key,
                              RESTORE_TMP_DIR=str(tmp_path / "production-restore-tmp"),
                              DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{rich.name}")  # fmt: skip
        before = fingerprint(rich.name, roles=rich.roles, pg_dump=other.tool("pg_dump"))
        data = data_of(rich.name, PG)
        backed_up = backup_run_in_process(production)
        assert backed_up["status"] == "finished", backed_up["error"]
        filename = backed_up["result"]["filename"]
        assert filename.startswith("pharmatracker-production-")

        # Staging: a database of its own with its own rows, and a role of its own the backup does not know.
        staging_db = new_name("pgct_staging")
        with other.admin() as admin:
            create_database(admin, staging_db, rows=100, server=other.params())
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(outsider)))
        assert roles_on(other, named) == []
        staging = make_app(APP_ENV="staging", BACKUP_SIGNING_KEY=shared_key, DATABASE_URL=other.url(staging_db))
        make_user("ada", "admin")
        api = token_for("ada")
        browser, auth = signed_in(staging, make_user, "admin", "root")
        staging_rows = table_fingerprint(staging_db, other.params())

        # 1. Refused first, with the list: on the page before the passkey, and by the job when asked anyway.
        page = restore_page(browser, filename)
        assert "This backup comes from another environment." in page
        assert f"Type production/{staging_db} to confirm" in page
        said = before_you_restore(page)
        assert MISSING.search(said)[1].split(", ") == named
        assert page.index("Before you restore") < page.index('id="passkey"')
        assert " disabled " in submit_of(page)
        assert 'id="choose-create-roles"' in said and 'id="choose-without-owners"' in said

        refused = restore_through_api(staging, staging.test_client(), api, filename)

        assert refused["status"] == "failed"
        assert all(role in refused["error"] for role in named), refused["error"]
        assert table_fingerprint(staging_db, other.params()) == staging_rows
        assert roles_on(other, named) == []
        with other.admin() as admin:
            assert database_names(admin, f"{staging_db}_pgc_%") == []

        # 2. "Create the missing roles": zero differences from production's database.
        chosen = restore_page(browser, filename, "?create_roles=1")
        assert " disabled " not in submit_of(chosen) and "creating roles</code>" in chosen
        job_id = choose(browser, auth, filename, "create_roles", f"production/{staging_db} creating roles")
        run_jobs_for(staging)
        done = job_of(staging, job_id)

        assert done["status"] == "finished", done["error"]
        assert done["result"]["created_roles"] == named
        assert done["result"]["notes"] == [] and done["result"]["without_owners"] is False
        after = fingerprint(staging_db, roles=rich.roles, server=other.params(), pg_dump=other.tool("pg_dump"))
        assert differences(before, after) == []
        with other.admin() as admin:  # the membership travelled with the roles
            assert admin.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (writer, reader)).fetchone()[0] is True
        assert any(owner in (row.detail or "") for row in audit_rows(staging, "create-roles"))
        assert any("creating the missing roles" in (row.detail or "") for row in audit_rows(staging, "restore"))

        # 3. On a server lacking them again, "without owners and grants": the data equal, said on the page and log.
        staging_as_it_was(other, staging_db, named)
        assert MISSING.search(before_you_restore(restore_page(browser, filename)))[1].split(", ") == named
        chosen = restore_page(browser, filename, "?without_owners=1")
        assert "when restored without owners and" in before_you_restore(chosen)
        assert " disabled " not in submit_of(chosen)
        job_id = choose(browser, auth, filename, "without_owners", f"production/{staging_db} without owners")
        run_jobs_for(staging)
        done = job_of(staging, job_id)

        assert done["status"] == "finished", done["error"]
        assert done["result"]["without_owners"] is True and done["result"]["created_roles"] == []
        assert data_of(staging_db, other.params()) == data
        assert roles_on(other, named) == []
        with psycopg.connect(**other.params(staging_db)) as conn:
            owners = conn.execute("""SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
                                       JOIN pg_namespace n ON n.oid = c.relnamespace
                                      WHERE n.nspname IN ('shop', 'audit')""").fetchall()  # fmt: skip
            assert owners == [("postgres",)]
            assert {lo["owner"] for lo in large_objects(conn).values()} == {"postgres"}
            assert conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                (staging_db,)).fetchone() == ("postgres",)  # fmt: skip
            # The SECURITY DEFINER function now runs as postgres: nobody else may call it, though no grant came back.
            assert conn.execute("SELECT has_function_privilege(%s, 'shop.customer_digest(integer)', 'EXECUTE')",
                                (outsider,)).fetchone() == (False,)  # fmt: skip
        notes = done["result"]["notes"]
        assert any("PUBLIC has PostgreSQL's default rights" in note for note in notes), notes
        assert any("shop.customer_digest(" in note for note in notes), notes
        job_page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
        assert "Restored <strong>without owners and grants</strong>, as chosen." in job_page
        logged = {row.outcome: row.detail or "" for row in audit_rows(staging, "restore") if row.job_id == job_id}
        assert set(logged) == {"requested", "ok"}, logged
        assert "without owners and grants (the admin's choice)" in logged["requested"]
        assert "without owners and grants (an admin's choice)" in logged["ok"]
