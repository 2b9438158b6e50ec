"""DESIGN.md restore invariant 7: what a restore cannot reproduce here is shown on the restore page before
the passkey is asked — from the backup's signed manifest and this server — never discovered after the download.

Real PostgreSQL: each test backs up an application database through the console (the `application`
fixture and `console_for` of tests/jobs/test_restore_fidelity.py), changes this server, and reads the page.
"""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest
from psycopg import sql

from app.domain.preflight import BackupNeeds, ServerFacts, problems, refusing
from tests.helpers import (
    audit_rows,
    backup_run_in_process,
    put_signed_backup,
    restore_through_api,
    signed_in,
    storage_of,
)
from tests.jobs.test_restore_fidelity import application, console_for  # noqa: F401 - `application` is a fixture
from tests.support.databases import PG, database_names, drop_database, new_name
from tests.support.fidelity import differences, fingerprint
from tests.support.rich_database import rich_database


def submit_of(page: str) -> str:
    return re.search(r'<input [^>]*id="submit"[^>]*>', page)[0]


def before_you_restore(page: str) -> str:
    return re.search(r'<section class="card" aria-labelledby="before-heading".*?</section>', page, re.S)[0]


def restore_page(client, filename: str, query: str = "") -> str:
    response = client.get(f"/backups/{filename}/restore{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_an_owner_role_missing_here_is_shown_before_the_passkey_and_blocks_all_but_without_owners(
    make_app,
    make_user,
    token_for,
    pg_admin,
    application,  # noqa: F811
):
    app, _ = console_for(make_app, make_user, token_for, application, as_owner=False)
    owner = application["owner"]
    filename = backup_run_in_process(app)["result"]["filename"]
    pg_admin.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(owner),
                                                                  sql.Identifier(renamed := new_name())))  # fmt: skip
    try:
        browser, _ = signed_in(app, make_user, "admin", "root")

        page = restore_page(browser, filename)

        said = before_you_restore(page)
        assert "does not have: " + owner in said and "or restore without owners and grants" in said
        assert page.index("Before you restore") < page.index('id="passkey"')  # read before the passkey
        assert " disabled " in submit_of(page) and "preflight-blocked" in submit_of(page)
        assert 'id="choose-without-owners"' in said

        chosen = restore_page(browser, filename, "?without_owners=1")

        assert "Nothing in this backup needs anything this server lacks" in before_you_restore(chosen)
        assert " disabled " not in submit_of(chosen)
        assert re.search(r'<input [^>]*checked[^>]*id="without_owners"|<input [^>]*id="without_owners"[^>]*checked',
                         chosen)  # fmt: skip
        # A refused attempt (wrong passkey) keeps the choice, and so the enabled button.
        browser.get(f"/backups/{filename}/restore")
        again = browser.post(
            f"/backups/{filename}/restore",
            data={
                "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', chosen)[1],
                "passkey": "wrong",
                "without_owners": "y",
                "confirm": f"{application['dbname']} without owners",
            },
        )
        assert again.status_code == 403
        assert " disabled " not in submit_of(again.get_data(as_text=True))
    finally:
        pg_admin.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(renamed), sql.Identifier(owner)))


def test_an_event_trigger_with_a_console_that_is_not_a_superuser_is_shown_with_the_reason(
    make_app,
    make_user,
    token_for,
    pg_admin,
    application,  # noqa: F811
):
    with psycopg.connect(**{**PG, "dbname": application["dbname"]}, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION public.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$")
        conn.execute("CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION public.note_ddl()")
    app, _ = console_for(make_app, make_user, token_for, application, as_owner=True)
    filename = backup_run_in_process(app)["result"]["filename"]
    browser, _ = signed_in(app, make_user, "admin", "root")

    for query in ("", "?without_owners=1"):  # the choice does not help: only a superuser can create it
        page = restore_page(browser, filename, query)

        said = before_you_restore(page)
        assert "event triggers (note_ddl), which only a superuser can create" in said
        assert f"the console connects as {application['owner']}, which is not one" in said
        assert " disabled " in submit_of(page)
        blocked = re.search(r'<p class="help" id="preflight-blocked">(.*?)</p>', page, re.S)[1]
        assert "only a superuser can create" in blocked


def test_a_plain_backup_shows_no_problem_and_an_older_one_is_checked_after_the_download(
    make_app,
    make_user,
    token_for,
    application,  # noqa: F811
):
    app, _ = console_for(make_app, make_user, token_for, application, as_owner=True)
    filename = backup_run_in_process(app)["result"]["filename"]
    browser, _ = signed_in(app, make_user, "admin", "root")

    page = restore_page(browser, filename)

    assert "Nothing in this backup needs anything this server lacks" in before_you_restore(page)
    assert 'id="preflight-problems"' not in page and 'id="choose-without-owners"' not in page
    assert " disabled " not in submit_of(page)

    older = filename.replace(".dump", "-older.dump")  # signed, but from before the manifest recorded the needs
    put_signed_backup(app, older)
    said = before_you_restore(restore_page(browser, older))
    assert "checked after the download" in said and " disabled " not in submit_of(restore_page(browser, older))


def test_extensions_the_server_lacks_or_only_a_superuser_may_create_are_named():
    """The pure rules, on facts as the manifest and the adapter give them."""
    needs = BackupNeeds(roles=frozenset({"app"}), owners=frozenset({"app"}), grantors=frozenset(),
                        event_triggers=(), superuser_extensions=frozenset({"file_fdw"}),
                        extensions=(("hstore", "1.7"), ("file_fdw", "1.0"), ("postgis", "3.4")))  # fmt: skip
    server = ServerFacts(console_role="app", superuser=False, roles=frozenset({"app"}), acts_as=frozenset({"app"}),
                         extension_versions=frozenset({("hstore", "1.8"), ("file_fdw", "1.0")}),
                         superuser_only=frozenset({("file_fdw", "1.0")}))  # fmt: skip

    found = problems(needs, server)

    texts = [p.text for p in found]
    assert any("hstore 1.7 is not available" in t and "default version" in t for t in texts)
    assert any("file_fdw can only be created by a superuser" in t for t in texts)
    assert any("postgis is not installed on this server" in t for t in texts)
    assert [p.text.split()[1] for p in refusing(found, without_owners=True)] == ["file_fdw", "postgis"]
    superuser = ServerFacts(**{**server.__dict__, "superuser": True})
    assert [p.refuses for p in problems(needs, superuser)] == [False, True]  # hstore's note, postgis


# --------------------------------------------------------------------------- roles travel with the backup (item 3)


def test_a_backup_restored_where_its_roles_are_missing_creates_them_by_choice_with_zero_differences(
    make_app, make_user, token_for, pg_admin
):
    """A staging server that never had production's roles: the page names them before the passkey and
    offers to create them; the job refuses without the choice, and with it creates the roles (attributes
    and memberships from the signed manifest, no password hash) and restores with zero differences."""
    from app.domain.catalog import read_manifest

    with rich_database(pg_admin) as rich:
        owner, reader, writer = rich.roles.owner, rich.roles.reader, rich.roles.writer
        pg_admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(reader), sql.Identifier(writer)))
        app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{rich.name}")
        make_user("ada", "admin")
        admin = token_for("ada")
        before = fingerprint(rich.name, roles=rich.roles)
        filename = backup_run_in_process(app)["result"]["filename"]
        defined = {d["name"]: d for d in read_manifest(storage_of(app), filename)["role_definitions"]}
        assert {owner, reader, writer} <= set(defined) and not any("password" in d for d in defined.values())
        assert defined[owner]["createdb"] and defined[writer]["member_of"] == [{"role": reader, "admin": False}]
        # This server loses the database and its roles; an empty database of the same name is the live one.
        drop_database(pg_admin, rich.name)
        pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(rich.name)))
        for role in (writer, reader, owner):
            pg_admin.execute(sql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(sql.Identifier(role),
                                                                               sql.Identifier(role)))  # fmt: skip
        browser, _ = signed_in(app, make_user, "admin", "root")

        page = restore_page(browser, filename)

        assert owner in before_you_restore(page) and 'id="choose-create-roles"' in page
        assert " disabled " in submit_of(page)
        chosen = restore_page(browser, filename, "?create_roles=1")
        assert " disabled " not in submit_of(chosen) and "creating roles</code>" in chosen
        refused = restore_through_api(app, app.test_client(), admin, filename)
        assert refused["status"] == "failed" and owner in refused["error"]  # the job's preflight: the authority

        done = restore_through_api(app, app.test_client(), admin, filename, create_roles=True)

        assert done["status"] == "finished", done["error"]
        assert done["result"]["created_roles"] == sorted([owner, reader, writer])
        assert differences(before, fingerprint(rich.name, roles=rich.roles)) == []
        member = pg_admin.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (writer, reader)).fetchone()[0]
        assert member is True
        assert any(owner in (row.detail or "") for row in audit_rows(app, "create-roles"))
        assert any("creating the missing roles" in (row.detail or "") for row in audit_rows(app, "restore"))


@pytest.mark.parametrize("pg_server", [17], indirect=True)
def test_an_icu_backup_is_refused_before_the_scratch_database_on_a_server_without_icu(pg_server, pg_admin, tmp_path,
                                                                                    server_db):  # fmt: skip
    """The PostgreSQL 17 wheel is built without ICU: a backup of a database that sorts with ICU could not get its
    scratch database there. The job's preflight says so before anything is created."""
    from app.adapters.postgres import TargetDatabase
    from app.domain import restore

    source = new_name()
    pg_admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' "
                             "LOCALE 'C.UTF-8'").format(sql.Identifier(source)))  # fmt: skip
    try:
        archive = tmp_path / "icu.dump"
        subprocess.run([pg_server_tool(15), "--format=custom", "-f", str(archive), "-h", PG["host"], "-U", PG["user"],
                        source], check=True)  # fmt: skip
        target = TargetDatabase(pg_server.host, pg_server.port, pg_server.user, "", server_db)
        with pytest.raises(restore.RestoreRefused, match="built without ICU") as refused:
            restore.preflight(target, archive, with_owners=False, bin_dirs=(pg_server.bin_dir,))
        assert "Nothing was changed" in str(refused.value)
        with pg_server.admin() as admin:
            assert database_names(admin, f"{server_db}%") == [server_db]
    finally:
        drop_database(pg_admin, source)


def pg_server_tool(major: int) -> str:
    from app.adapters import postgres

    return postgres.pick_client("pg_dump", major).path
