"""Restore into a new database (issue 34, item 3): on the backup's own server or another target's, with the
backup's roles and properties, the live database never touched; a taken or bad name refused at its field.

The fidelity is measured with tests/support/fidelity.py's whole-database fingerprint: the new database must
equal the one backed up, and the live database must be what it was before.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.config.targets import make_person, token
from tests.helpers import PASSKEY, audit_rows, backup_run_in_process, job_of, post, run_jobs_for, signed_in
from tests.support.databases import PG, create_database, database_names, drop_database, new_name, table_fingerprint
from tests.support.fidelity import differences, fingerprint
from tests.support.pg_servers import SYSTEM, PgServer, throwaway_server
from tests.support.rich_database import rich_database


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def into_new(app, headers, filename: str, database: str, url: str = "/api/setting/restore", **body):
    """Ask the API for a restore of `filename` into a new database `database` (the passkey: PASSKEY unless given)."""
    into = {"database": database, **({"target": body.pop("target")} if "target" in body else {})}
    return app.test_client().post(url, headers=headers, json={"filename": filename, "passkey": PASSKEY,
                                                              "into": into, **body})  # fmt: skip


@contextlib.contextmanager
def dropped_after(admin: psycopg.Connection, name: str) -> Iterator[str]:
    try:
        yield name
    finally:
        drop_database(admin, name)


def test_into_a_new_database_on_the_same_server_equals_the_backup_and_leaves_the_live_one_as_it_was(
    make_app, make_user, token_for, pg_admin
):
    with rich_database(pg_admin, with_event_trigger=True) as rich, dropped_after(pg_admin, new_name("pgct_new")) as new:
        app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{rich.name}")
        make_user("ada", "admin")
        before = fingerprint(rich.name, roles=rich.roles)
        filename = backup_run_in_process(app)["result"]["filename"]
        with psycopg.connect(**{**PG, "dbname": rich.name}, autocommit=True) as conn:
            conn.execute("DELETE FROM shop.words")  # the live database moves on after the backup
        live = fingerprint(rich.name, roles=rich.roles)

        answer = into_new(app, token_for("ada"), filename, new)
        assert answer.status_code == 202, answer.get_json()
        run_jobs_for(app)
        status = job_of(app, answer.get_json()["job_id"])

        assert status["status"] == "finished", status["error"]
        result = status["result"]
        assert result["new_database"] == new and result["notes"] == []
        assert result["connection"] == f"postgresql://postgres@127.0.0.1:5432/{new}"
        assert differences(before, fingerprint(new, roles=rich.roles)) == []
        assert differences(live, fingerprint(rich.name, roles=rich.roles)) == []  # untouched
        assert database_names(pg_admin, f"{rich.name}_pgc_%") == []  # no scratch, nothing set aside
        detail = audit_rows(app, "restore")[-1].detail
        assert f"into a new database {new}" in detail and filename in detail and "127.0.0.1:5432" in detail
        viewer, _ = signed_in(app, make_user, "viewer", "vera")
        page = text_of(viewer.get(f"/jobs/{status['id']}").get_data(as_text=True))
        assert f"Restored into new database {new}" in page
        assert f"postgresql://postgres@127.0.0.1:5432/{new}" in page
        assert "Give it the new name" in page and "Swap in" not in page and "Back up the replaced" not in page


def two_targets(tmp_path, production_db: str, staging: PgServer, staging_db: str) -> dict[str, str]:
    """A TARGETS_FILE: production on the system's server, staging on a server of its own, each with its passkey."""
    path = tmp_path / "targets.toml"
    tables = ['default = "production"']
    for name, url in (("production", f"postgresql://postgres@127.0.0.1:5432/{production_db}"),
                      ("staging", staging.url(staging_db))):  # fmt: skip
        tables.append(f"""
[targets.{name}]
environment = "{name}"
database_url = "{url}"
storage_url = "{(tmp_path / f"{name}-backups").as_uri()}"
app_name = "pharmatracker"
restore_passkey_env = "{name.upper()}_PASSKEY"
""")
    path.write_text("\n".join(tables))
    return {"TARGETS_FILE": str(path), "PRODUCTION_PASSKEY": "production-passkey", "STAGING_PASSKEY": "staging-passkey"}


def test_into_a_new_database_on_another_targets_server_with_the_backups_roles(make_app, pg_admin, app_env, tmp_path):
    """Production's backup, into a new database on staging's server, which has none of its roles: created from
    the backup ("create the missing roles"), the new database equals production's; staging's own is untouched."""
    with contextlib.ExitStack() as undo:
        rich = undo.enter_context(rich_database(pg_admin, with_event_trigger=True))
        other = undo.enter_context(throwaway_server(SYSTEM["major"], SYSTEM["bin_dir"]))
        staging_db, new = new_name("pgct_staging"), new_name("pgct_new")
        with other.admin() as admin:
            create_database(admin, staging_db, rows=50, server=other.params())
            # Granted nothing, so the backup does not name it; it must exist for the fingerprint's "as outsider".
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(rich.roles.outsider)))
        env = {k: v for k, v in app_env.items() if k not in ("DATABASE_URL", "BACKUP_STORAGE_URL", "RESTORE_PASSKEY")}
        app = make_app(**env, **two_targets(tmp_path, rich.name, other, staging_db))
        undo.callback(shutil.rmtree, tmp_path / "production-backups", ignore_errors=True)
        client, _ = make_person(app, "ada", "admin")
        headers = token(app, "ada")
        before = fingerprint(rich.name, roles=rich.roles, pg_dump=other.tool("pg_dump"))
        staging_rows = table_fingerprint(staging_db, other.params())
        answer = client.post("/api/targets/production/backup", headers=headers)
        run_jobs_for(app)
        filename = job_of(app, answer.get_json()["job_id"])["result"]["filename"]

        page = client.get(f"/targets/production/backups/{filename}/restore?into=new").get_data(as_text=True)
        assert re.search(rf'<option value="staging">staging \(127\.0\.0\.1:{other.port}\)</option>', page), page

        # Staging's passkey (the destination's), not production's.
        url = "/api/targets/production/restore"
        wrong = into_new(app, headers, filename, new, url, target="staging", passkey="production-passkey")
        assert wrong.status_code == 403 and wrong.get_json()["error"] == "Wrong passkey"
        answer = into_new(app, headers, filename, new, url, target="staging", passkey="staging-passkey",
                          create_roles=True)  # fmt: skip
        assert answer.status_code == 202, answer.get_json()
        run_jobs_for(app)
        status = job_of(app, answer.get_json()["job_id"])

        assert status["status"] == "finished", status["error"]
        assert status["result"]["connection"] == f"postgresql://postgres@127.0.0.1:{other.port}/{new}"
        named = sorted([rich.roles.owner, rich.roles.reader, rich.roles.writer])
        assert sorted(status["result"]["created_roles"]) == named
        assert differences(before, fingerprint(new, roles=rich.roles, server=other.params(),
                                               pg_dump=other.tool("pg_dump"))) == []  # fmt: skip
        assert table_fingerprint(staging_db, other.params()) == staging_rows
        assert "(target staging)" in audit_rows(app, "restore")[-1].detail


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_restore_into_a_new_database(app, make_user, token_for, target_db, role):
    make_user("pat", role)
    answer = into_new(app, token_for("pat"), "x.dump", "copy_1")
    assert answer.status_code == 403


def test_a_taken_or_bad_name_is_refused_at_its_field_and_nothing_changes(
    app, make_user, token_for, pg_admin, target_db
):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "admin", "ada")
    url = f"/backups/{filename}/restore"
    page = client.get(f"{url}?into=new").get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*value="new"|<input[^>]*value="new"[^>]*checked', page), page
    assert "Type new:&lt;name&gt; to confirm" in page and 'id="new_database"' in page
    live = table_fingerprint(target_db)
    create_database(pg_admin, taken := new_name("pgct_taken"), rows=5)
    try:
        taken_rows = table_fingerprint(taken)
        form = {"where": "new", "new_database": taken, "passkey": PASSKEY, "confirm": f"new:{taken}"}
        refused = post(client, auth, url, form, page=url)
        assert refused.status_code == 409
        said = refused.get_data(as_text=True)
        field_error = re.search(r'<p class="field-error" id="new_database-error">([^<]*)</p>', said)
        assert field_error and f"A database named {taken} already exists" in field_error[1]
        bad = post(client, auth, url, {**form, "new_database": "1-drop table", "confirm": "new:1-drop table"}, page=url)
        assert bad.status_code == 400
        said = bad.get_data(as_text=True)
        assert re.search(r'id="new_database-error">Use only letters, digits and underscores', said)
        api = into_new(app, token_for("ada"), filename, taken)
        assert api.status_code == 409 and "already exists" in api.get_json()["error"]
        too_long = into_new(app, token_for("ada"), filename, "a" * 64)
        assert too_long.status_code == 400 and "at most 63" in too_long.get_json()["error"]

        # Taken after the request (a race): the job refuses it, and leaves that database and the live one alone.
        asked = into_new(app, token_for("ada"), filename, later := new_name("pgct_later"))
        assert asked.status_code == 202
        with dropped_after(pg_admin, later):
            create_database(pg_admin, later, rows=3)
            later_rows = table_fingerprint(later)
            run_jobs_for(app)
            failed = job_of(app, asked.get_json()["job_id"])
            assert failed["status"] == "failed" and f"A database named {later} already exists" in failed["error"]
            assert table_fingerprint(later) == later_rows
        assert table_fingerprint(taken) == taken_rows and table_fingerprint(target_db) == live
        assert database_names(pg_admin, f"{target_db}_pgc_%") == []
        assert "refused" in [row.outcome for row in audit_rows(app, "restore")]
    finally:
        drop_database(pg_admin, taken)


def test_the_page_restores_into_a_new_database(app, make_user, pg_admin, target_db):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "admin", "ada")
    url = f"/backups/{filename}/restore"
    live = table_fingerprint(target_db)
    with dropped_after(pg_admin, new_name("pgct_new")) as new:
        mistyped = post(client, auth, url, {"where": "new", "new_database": new, "passkey": PASSKEY,
                                            "confirm": target_db}, page=url)  # fmt: skip
        assert mistyped.status_code == 400 and f"exactly: new:{new}" in mistyped.get_data(as_text=True)
        asked = post(client, auth, url, {"where": "new", "new_database": new, "passkey": PASSKEY,
                                         "confirm": f"new:{new}"}, page=url)  # fmt: skip
        assert asked.status_code == 303, asked.get_data(as_text=True)
        run_jobs_for(app)
        job_page = text_of(client.get(asked.headers["Location"]).get_data(as_text=True))
        assert f"Restored into new database {new}" in job_page, job_page
        assert table_fingerprint(new) == live and table_fingerprint(target_db) == live


def test_a_target_that_is_not_offered_is_refused_at_its_field(app, make_user, target_db):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "admin", "ada")
    url = f"/backups/{filename}/restore"
    form = {"where": "new", "new_database": "copy_1", "into_target": "nosuch", "passkey": PASSKEY,
            "confirm": "new:copy_1"}  # fmt: skip
    refused = post(client, auth, url, form, page=url)
    assert refused.status_code == 400
    assert "Choose a target you may restore into" in refused.get_data(as_text=True)
