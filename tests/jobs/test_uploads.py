"""Upload a dump made elsewhere and restore it (issue 34, item 5): through the API, into a folder store and a real
S3 server (SeaweedFS), checked by pg_restore on the worker, marked uploaded on the list and its page, restored
into a new database with the data equal; anything but an archive refused at once with nothing stored.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PASSKEY, audit_rows, job_of, log_in, post, run_jobs_for, signed_in
from tests.support.databases import PG, create_database, drop_database, new_name, table_fingerprint

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 4000


def dump_made_elsewhere(pg_admin, tmp_path: Path, name: str = "nightly.dump", rows: int = 3000) -> tuple[str, Path]:
    """A database with rows and its `pg_dump -Fc`, made by the real pg_dump outside the console (the caller
    drops the database)."""
    source = new_name("pgct_outside")
    create_database(pg_admin, source, rows=rows)
    archive = tmp_path / name
    subprocess.run(["pg_dump", "-Fc", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], "-f", str(archive),
                    source], check=True)  # fmt: skip
    return source, archive


def put(app, headers, name: str, body: bytes, url: str = "/api/setting/uploads"):
    return app.test_client().put(f"{url}/{name}", headers=headers, data=body)


def stored_names(app) -> list[str]:
    from app import services

    with app.app_context():
        return sorted(o.name for o in services.storage().list_objects())


@pytest.fixture(params=["folder", "seaweedfs"])
def store_env(request, tmp_path) -> dict[str, str]:
    if request.param == "folder":
        return {"BACKUP_STORAGE_URL": (tmp_path / "store").as_uri()}
    return request.getfixturevalue("seaweedfs_bucket").env


def test_an_uploaded_dump_restores_into_a_new_database_with_its_data(make_app, make_user, token_for, pg_admin,
                                                                      tmp_path, store_env, target_db):  # fmt: skip
    source, archive = dump_made_elsewhere(pg_admin, tmp_path)
    new = new_name("pgct_new")
    try:
        app = make_app(**store_env)
        make_user("ada", "admin")
        headers = token_for("ada")
        data = archive.read_bytes()

        answer = put(app, headers, "nightly.dump", data)
        assert answer.status_code == 201, answer.get_json()
        stored = answer.get_json()
        filename = stored["filename"]
        assert filename.startswith("pharmatracker-uploaded-on-") and stored["size"] == len(data)
        assert stored["state"] == "checking…"
        page = app.test_client()
        # Before the worker has read it: "checking…", and no restore yet.
        facts = page.get(f"/api/setting/backups/{filename}", headers=headers).get_json()
        assert facts["uploaded"]["state"] == "checking…" and facts["kind"] == "uploaded"
        early = page.post("/api/setting/restore", headers=headers,
                          json={"filename": filename, "passkey": PASSKEY, "into": {"database": new}})  # fmt: skip
        assert early.status_code == 409 and "still being checked" in early.get_json()["error"]

        run_jobs_for(app)
        facts = page.get(f"/api/setting/backups/{filename}", headers=headers).get_json()
        assert facts["trusted"] is True and facts["madeBy"] == "ada" and facts["kind"] == "uploaded"
        assert facts["uploaded"] == {"by": "ada", "originalName": "nightly.dump", "state": "checked",
                                     "tables": 2, "schemas": 1}  # fmt: skip
        assert facts["sha256"] == hashlib.sha256(data).hexdigest()

        # Over the live database: refused without the words that name it as outside data.
        over = page.post("/api/setting/restore", headers=headers, json={"filename": filename, "passkey": PASSKEY})
        assert over.status_code == 400, over.get_json()
        said = over.get_json()["error"]
        assert "outside data into" in said and "not made by this console" in said

        answer = page.post("/api/setting/restore", headers=headers,
                           json={"filename": filename, "passkey": PASSKEY, "into": {"database": new}})  # fmt: skip
        assert answer.status_code == 202, answer.get_json()
        run_jobs_for(app)
        status = job_of(app, answer.get_json()["job_id"])
        assert status["status"] == "finished", status["error"]
        assert table_fingerprint(new) == table_fingerprint(source)

        # Over the live database with the words: the live database then holds the outside data.
        words = {"filename": filename, "passkey": PASSKEY, "outside_data": f"outside data into {target_db}"}
        answer = page.post("/api/setting/restore", headers=headers, json=words)
        assert answer.status_code == 202, answer.get_json()
        run_jobs_for(app)
        status = job_of(app, answer.get_json()["job_id"])
        assert status["status"] == "finished", status["error"]
        assert table_fingerprint(target_db) == table_fingerprint(source)

        viewer = app.test_client()
        make_user("vera", "viewer")
        listed = viewer.get("/api/setting/backups", headers=token_for("vera")).get_json()
        assert filename in [b["filename"] for b in listed]
        assert [row.outcome for row in audit_rows(app, "upload")] == ["requested", "ok"]
    finally:
        drop_database(pg_admin, source)
        drop_database(pg_admin, new)


def test_the_list_and_the_page_say_uploaded_and_by_whom(make_app, make_user, token_for, pg_admin, tmp_path):
    source, archive = dump_made_elsewhere(pg_admin, tmp_path)
    try:
        app = make_app()
        make_user("ada", "admin")
        filename = put(app, token_for("ada"), "from-old-host.dump", archive.read_bytes()).get_json()["filename"]
        run_jobs_for(app)
        client = app.test_client()
        log_in(app, client, "ada")
        listing = client.get("/").get_data(as_text=True)
        assert filename in listing and "kind-uploaded" in listing
        page = client.get(f"/backups/{filename}").get_data(as_text=True)
        assert "Uploaded by ada" in page and "from-old-host.dump" in page and "not made by this console" in page
    finally:
        drop_database(pg_admin, source)


def test_a_png_named_dump_is_refused_at_once_and_nothing_is_stored(make_app, make_user, token_for, store_env):
    app = make_app(**store_env)
    make_user("ada", "admin")
    answer = put(app, token_for("ada"), "photo.dump", PNG)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith("This is not a pg_dump archive: it is a PNG image.")
    plain = put(app, token_for("ada"), "nightly.sql", b"--\n-- PostgreSQL database dump\n--\nSET x = 1;\n")
    assert plain.status_code == 400 and "it is a plain SQL dump" in plain.get_json()["error"]
    assert stored_names(app) == []
    if store_env["BACKUP_STORAGE_URL"].startswith("file:"):  # not even a hidden partial file
        folder = Path(store_env["BACKUP_STORAGE_URL"].removeprefix("file://"))
        assert not folder.exists() or list(folder.iterdir()) == []
    else:
        from app import services

        with app.app_context():
            storage = services.storage()
            assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    assert [row.outcome for row in audit_rows(app, "upload")] == ["refused", "refused"]


def test_an_archive_pg_restore_cannot_read_is_refused_and_deleted(make_app, make_user, token_for):
    app = make_app()
    make_user("ada", "admin")
    answer = put(app, token_for("ada"), "broken.dump", b"PGDMP" + b"\x01" * 5000)
    assert answer.status_code == 201
    run_jobs_for(app)
    refused = audit_rows(app, "upload")[-1]
    assert stored_names(app) == [], refused.detail
    assert refused.outcome == "refused" and "pg_restore cannot read" in refused.detail


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_admin_may_upload(make_app, make_user, token_for, role):
    app = make_app()
    make_user("olga", role)
    answer = put(app, token_for("olga"), "nightly.dump", b"PGDMP" + b"\0" * 100)
    assert answer.status_code == 403
    assert stored_names(app) == []


def test_the_restore_page_asks_for_the_outside_data_words(make_app, make_user, token_for, pg_admin, tmp_path,
                                                          target_db):  # fmt: skip
    source, archive = dump_made_elsewhere(pg_admin, tmp_path)
    try:
        app = make_app()
        make_user("ada", "admin")
        filename = put(app, token_for("ada"), "nightly.dump", archive.read_bytes()).get_json()["filename"]
        run_jobs_for(app)
        client, auth = signed_in(app, make_user, "admin", "root")
        url = f"/backups/{filename}/restore"
        assert f"Type outside data into {target_db} to confirm" in client.get(url).get_data(as_text=True)
        refused = post(client, auth, url, {"passkey": PASSKEY, "confirm": target_db}, page=url)
        assert refused.status_code == 400 and f"outside data into {target_db}" in refused.get_data(as_text=True)
        asked = post(client, auth, url, {"passkey": PASSKEY, "confirm": f"outside data into {target_db}"}, page=url)
        assert asked.status_code == 303 and "/jobs/" in asked.headers["Location"]
        run_jobs_for(app)
        assert table_fingerprint(target_db) == table_fingerprint(source)  # the live database holds the outside data
    finally:
        drop_database(pg_admin, source)
