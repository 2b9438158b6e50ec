"""Security review H1, M5 and L4: what someone who can write to the backup folder or bucket must not achieve.

H1: a listed backup swapped for a link (to a secret, to /proc/self/environ, to a good copy elsewhere)
is never read: not by a download, not by a verify or restore job. M5: a manifest or pin note that is
huge or nested 200,000 deep marks its backup untrusted and never takes a page down. L4: what the
console creates (the SQLite store, its folder, quickstart's secrets) is for its owner only.
The folder store's own rules (links, FIFOs, sizes, modes) are in tests/adapters/storage/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.domain import provenance, restore
from tests.helpers import (
    STORE_FILE,
    backup_run_in_process,
    job_of,
    old_backups,
    restore_api,
    run_jobs_for,
    signed_in,
    storage_of,
)
from tests.support import ROOT
from tests.support.databases import database_names, table_fingerprint
from tests.support.processes import child_env

SECRET = "SECRET_KEY=the-web-servers-secret-0451"
MiB = 1024 * 1024


def audit_rows(app, action: str) -> list[tuple[str, str | None, str | None]]:
    from app.store.models import AuditEvent

    with app.app_context():
        return [(r.outcome, r.target, r.detail) for r in AuditEvent.query.filter_by(action=action)]


# --------------------------------------------------------------------------- H1: links in the backup folder


@pytest.mark.parametrize("points_at", ["a file holding a secret", "/proc/self/environ"])
def test_a_listed_backup_swapped_for_a_link_is_refused_on_download(make_app, make_user, tmp_path, points_at):
    app = make_app(BACKUP_LIST_CACHE_SECONDS="300")  # the listing the pages share still names the file
    (name,) = old_backups(app, [1])
    client, _ = signed_in(app, make_user, "operator", "olga")
    assert client.get("/").status_code == 200  # the operator's list: the shared listing now holds the file
    if points_at == "/proc/self/environ":
        target = Path("/proc/self/environ")
        leaked = [entry for entry in target.read_bytes().split(b"\0") if entry.startswith(b"PATH=")]
    else:
        target = tmp_path / "secrets.env"
        target.write_text(SECRET)
        leaked = [SECRET.encode()]
    path = storage_of(app).folder / name
    path.unlink()
    path.symlink_to(target)  # what `ln -s /proc/self/environ <name>` did in the attack

    response = client.get(f"/backups/{name}/download")

    body = response.get_data()
    assert response.status_code == 409, body[:300]
    assert b"is a symbolic link, not a regular file: the console reads only regular files" in body
    assert leaked and not any(secret in body for secret in leaked)
    assert b"PATH=" not in body and b"SECRET_KEY=" not in body
    assert audit_rows(app, "download")[-1][:2] == ("refused", name)


@pytest.mark.parametrize("action", ["verify", "restore"])
def test_a_backup_swapped_for_a_link_between_the_checks_and_the_download_is_not_read(
    app, make_user, token_for, pg_admin, target_db, tmp_path, monkeypatch, action
):
    """The link points at a copy of the very archive (same bytes, same sha256, signed manifest): only the
    store's refusal to follow it stops the job, and it stops before anything is restored."""
    safety = backup_run_in_process(app)["result"]["filename"]  # the restore's recent backup
    made = backup_run_in_process(app)["result"]["filename"]
    assert made != safety
    folder = storage_of(app).folder
    copy = tmp_path / "elsewhere.dump"
    shutil.copyfile(folder / made, copy)
    before = table_fingerprint(target_db)
    fetch_archive = restore.fetch_archive

    def swapped_first(*args, **kwargs):  # the writer's move, after the job listed and checked the file
        (folder / made).unlink()
        (folder / made).symlink_to(copy)
        return fetch_archive(*args, **kwargs)

    monkeypatch.setattr(restore, "fetch_archive", swapped_first)
    make_user("ada", "admin")
    if action == "verify":
        client, auth = signed_in(app, make_user, "admin", "root")
        response = client.post(f"/backups/{made}/verify", data={"csrf_token": auth.csrf_token("/")})
        assert response.status_code == 303
        job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    else:
        response = restore_api(app.test_client(), token_for("ada"), made)
        assert response.status_code == 202, response.get_json()
        job_id = response.get_json()["job_id"]
    run_jobs_for(app)

    status = job_of(app, job_id)
    assert status["status"] == "failed", status
    assert "symbolic link" in status["error"]
    assert (folder / made).is_symlink() and not (folder / f"{made}.verified.json").exists()
    assert table_fingerprint(target_db) == before
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []


# --------------------------------------------------------------------------- M5: hostile sidecars


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_huge_and_deeply_nested_sidecars_mark_a_backup_untrusted_and_break_no_page(
    where, request, make_app, make_user, token_for
):
    app = make_app(**(request.getfixturevalue("s3_server") if where == "s3" else {}))
    deep, huge, pinned = old_backups(app, [1, 2, 3])
    storage = storage_of(app)
    storage.put_bytes(deep + ".json", b"[" * 200_000)  # json.loads: RecursionError
    padding = "x" * (10 * MiB)
    storage.put_bytes(huge + ".json", json.dumps({"filename": huge, "size": 3, "padding": padding,
                                                  "signature": "hmac-sha256:" + "0" * 64}).encode())  # fmt: skip
    note = "N" * (10 * MiB)
    storage.put_bytes(pinned + ".pin", json.dumps({"note": note, "pinned_by": "mallory"}).encode())
    make_user("vic", "viewer")
    admin, _ = signed_in(app, make_user, "admin", "ada")

    for client in (admin, signed_in(app, make_user, "viewer", "vera")[0]):
        home = client.get("/")
        page = home.get_data(as_text=True)
        assert home.status_code == 200, page[-2000:]
        assert deep in page and huge in page and pinned in page
        assert len(page) < MiB and "N" * 100 not in page  # the note was not read past the cap
    listed = app.test_client().get("/api/setting/backups", headers=token_for("vic"))
    assert listed.status_code == 200
    rows = {b["filename"]: b for b in listed.get_json()}
    assert rows[deep]["hasManifest"] and rows[huge]["hasManifest"] and rows[pinned]["pinned"]

    for name in (deep, huge):
        response = admin.get(f"/backups/{name}/restore")
        page = response.get_data(as_text=True)
        assert response.status_code == 200, page[-2000:]
        assert '<span class="mark">untrusted</span>' in page
        assert provenance.UNREADABLE_MANIFEST in page and provenance.UNTRUSTED_WARNING in page
    assert admin.get(f"/backups/{pinned}/restore").status_code == 200


# --------------------------------------------------------------------------- L4: modes of what the console creates


def db_upgrade(instance: Path) -> None:
    """`flask db upgrade` under umask 022, as a container's entrypoint runs it, on a SQLite store in `instance`."""
    env = {"INSTANCE_PATH": str(instance), "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres"}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT, env=child_env(env), capture_output=True, text=True, timeout=120, umask=0o022,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_console_store_and_its_folder_are_created_for_their_owner_only(tmp_path):
    instance = tmp_path / "new-instance"
    db_upgrade(instance)
    assert instance.stat().st_mode & 0o777 == 0o700
    made = [p for p in instance.iterdir() if p.name.startswith(STORE_FILE)]  # the store, its -wal and -shm
    assert instance / STORE_FILE in made
    assert {p.name: p.stat().st_mode & 0o777 for p in made} == {p.name: 0o600 for p in made}


def test_the_upgrade_lock_beside_the_store_is_0600_and_no_link_is_followed(tmp_path):
    instance = tmp_path / "new-instance"
    db_upgrade(instance)
    lock = (instance / STORE_FILE).with_suffix(".migrate-lock")
    assert lock.stat().st_mode & 0o777 == 0o600

    # Someone who could write the folder swaps the lock for a link: the upgrade refuses it, not opens the target.
    target = tmp_path / "elsewhere"
    target.write_text("kept")
    lock.unlink()
    lock.symlink_to(target)
    with pytest.raises(AssertionError, match="Too many levels of symbolic links|ELOOP"):
        db_upgrade(instance)
    assert target.read_text() == "kept"


def test_the_storage_check_creates_a_missing_backup_folder_for_its_owner_only(tmp_path):
    from app.adapters.storage import LocalStorage
    from app.adapters.storage_check import check_storage

    folder = tmp_path / "new-backups"
    old = os.umask(0o022)
    try:
        results = check_storage(LocalStorage(folder))
    finally:
        os.umask(old)
    assert results[0].name == "create folder (mkdir)" and results[0].ok
    assert folder.stat().st_mode & 0o777 == 0o700  # a backup is the whole database


def test_quickstart_writes_its_secrets_0600_in_a_0700_folder(tmp_path):
    from app.cli.quickstart import load_or_create_secrets

    old = os.umask(0o022)
    try:
        values = load_or_create_secrets(tmp_path / "instance" / "quickstart.env")
    finally:
        os.umask(old)
    assert (tmp_path / "instance").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "instance" / "quickstart.env").stat().st_mode & 0o777 == 0o600
    assert values["SECRET_KEY"] in (tmp_path / "instance" / "quickstart.env").read_text()
