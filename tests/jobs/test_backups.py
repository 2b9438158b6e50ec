"""Backups end to end: create, stream, list, retention, the lock, and failures that leave nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from app.adapters.pg_dump import RunningDump
from app.adapters.storage import MiB
from app.domain.naming import backup_filename, parse_backup_name
from tests.helpers import (
    NOTHING_LEFT,
    AuthActions,
    backup_behind_a_lock,
    backup_run_in_process,
    backup_sessions,
    leftovers,
    operator_headers,
    put_signed_backup,
    run_jobs_for,
    storage_of,
)
from tests.support.databases import PG, new_name


@pytest.fixture
def operator(make_user, token_for):
    make_user("olga", "operator")
    return token_for("olga")


def start_backup(client, headers) -> str:
    response = client.post("/api/setting/backup", headers=headers)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status_url"] == f"/api/jobs/{body['job_id']}"
    return body["job_id"]


def job(client, headers, job_id) -> dict:
    response = client.get(f"/api/jobs/{job_id}", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def pg_restore_list(data: bytes, tmp_path: Path) -> str:
    archive = tmp_path / "check.dump"
    archive.write_bytes(data)
    return subprocess.run(["pg_restore", "--list", str(archive)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("where", ["s3", "folder"])
def test_a_backup_is_a_plain_archive_whose_sha256_matches_its_manifest(where, request, make_app, tmp_path, target_db):
    overrides = request.getfixturevalue("s3_server") if where == "s3" else {}
    app = make_app(**overrides)
    client = app.test_client()
    operator = operator_headers(app)
    job_id = start_backup(client, operator)
    assert job(client, operator, job_id)["status"] == "queued"
    run_jobs_for(app)
    done = job(client, operator, job_id)
    assert done["status"] == "finished", done["error"]
    assert done["progress"]["percent"] == 100
    result = done["result"]
    assert 0 < result["finish_seconds"] <= result["seconds"]
    filename = result["filename"]
    parsed = parse_backup_name(filename)
    assert (parsed.app_name, parsed.environment) == ("pharmatracker", "staging")

    storage = storage_of(app)
    data = storage.get_bytes(filename)
    manifest = json.loads(storage.get_bytes(filename + ".json"))
    assert hashlib.sha256(data).hexdigest() == result["sha256"] == manifest["sha256"]
    assert len(data) == result["size"] == manifest["size"]
    assert manifest["database"] == target_db and manifest["environment"] == "staging"
    assert manifest["requested_by"] == "olga"
    listing = pg_restore_list(data, tmp_path)
    assert "TABLE public customers" in listing and "TABLE DATA public orders" in listing

    listed = client.get("/api/setting/backups", headers=operator).get_json()
    assert [b["filename"] for b in listed] == [filename]
    assert listed[0]["environment"] == "staging" and listed[0]["size"] == len(data)

    with app.app_context():
        from app.store.models import AuditEvent

        events = [(e.action, e.outcome, e.job_id) for e in AuditEvent.query.filter_by(action="backup")]
        assert ("backup", "requested", job_id) in events and ("backup", "ok", job_id) in events


def test_create_backup_from_the_page_leads_to_its_job(client, auth, make_user, run_jobs):
    make_user("olga", "operator")
    auth.login("olga")
    response = client.post("/backups", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 303
    job_url = response.headers["Location"]
    assert job_url.startswith("/jobs/")
    assert "queued" in client.get(job_url).get_data(as_text=True)
    run_jobs()
    page = client.get(job_url).get_data(as_text=True)
    assert "finished" in page and "Finished." in page
    home = client.get("/").get_data(as_text=True)
    assert "pharmatracker-staging-on-" in home


def test_a_second_backup_is_refused_while_one_runs(client, auth, make_user, operator, run_jobs):
    first = start_backup(client, operator)
    refused = client.post("/api/setting/backup", headers=operator)
    assert refused.status_code == 409
    assert "Another backup or restore" in refused.get_json()["error"] and first in refused.get_json()["error"]

    make_user("page-op", "operator")
    browser = client.application.test_client()
    page_auth = AuthActions(browser)
    page_auth.login("page-op")
    page = browser.post("/backups", data={"csrf_token": page_auth.csrf_token("/")}, follow_redirects=True)
    assert "Another backup or restore" in page.get_data(as_text=True)

    run_jobs()  # the first finishes and frees the lock
    assert job(client, operator, first)["status"] == "finished"
    start_backup(client, operator)


def test_backups_of_every_environment_are_listed_newest_first(app, client, operator):
    storage = storage_of(app)
    zone = ZoneInfo("Asia/Kolkata")
    now = datetime.now(UTC)
    names = [
        backup_filename("pharmatracker", "production", now - timedelta(hours=1), zone),
        backup_filename("pharmatracker", "staging", now - timedelta(hours=2), zone),
        "legacy-export.dump",
    ]
    for name in names:
        storage.put_bytes(name, b"x")
    listed = client.get("/api/setting/backups", headers=operator).get_json()
    # A name that does not parse sorts by the store's time (just now): newest.
    assert [b["filename"] for b in listed] == ["legacy-export.dump", names[0], names[1]]
    assert {b["filename"]: b["environment"] for b in listed} == {
        names[0]: "production",
        names[1]: "staging",
        "legacy-export.dump": None,
    }
    page = client.application.test_client()
    assert page.get("/").status_code == 302  # pages need a session


def test_retention_keeps_the_newest_of_this_environment_only(make_app, run_jobs, make_user, token_for):
    app = make_app(MAX_BACKUP_FILES="3")
    storage = storage_of(app)
    zone = ZoneInfo("Asia/Kolkata")
    now = datetime.now(UTC)
    staging_old = [backup_filename("pharmatracker", "staging", now - timedelta(days=d), zone) for d in (1, 2, 3, 4)]
    production = [backup_filename("pharmatracker", "production", now - timedelta(days=d), zone) for d in (5, 6, 7, 8)]
    other_app = backup_filename("billing", "staging", now - timedelta(days=9), zone)
    for name in [*staging_old, *production, other_app]:
        put_signed_backup(app, name)

    result = backup_run_in_process(app)["result"]
    kept = {o.name for o in storage.list_objects()}
    assert sorted(result["deleted"]) == sorted(staging_old[2:])  # the new one + the 2 newest old = 3
    assert result["delete_failures"] == {}
    assert {result["filename"], *staging_old[:2], *production, other_app} <= kept
    assert not any(name.startswith(tuple(staging_old[2:])) for name in kept)  # manifests went too


def test_retention_reports_a_failed_delete_and_goes_on(app, tmp_path):
    from app import services
    from app.domain.backup import apply_retention
    from app.domain.retention import RetentionPolicy

    storage = storage_of(app)
    storage.check()
    zone = ZoneInfo("Asia/Kolkata")
    now = datetime.now(UTC)
    names = [backup_filename("pharmatracker", "staging", now - timedelta(days=d), zone) for d in range(5)]
    for name in names:
        put_signed_backup(app, name, b"x")
    stuck = Path(storage.folder, names[3])
    subprocess.run(["chattr", "+i", str(stuck)], check=True)  # a real EPERM, even for root
    try:
        ours = services.console_backups(app.config["SETTINGS"], storage)
        deleted, failures = apply_retention(ours, ours.listing(), policy=RetentionPolicy(2), just_made=names[0])
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert deleted == [names[2], names[4]]
    assert list(failures) == [names[3]] and "cannot delete" in failures[names[3]]
    left = sorted(o.name for o in storage.list_objects())
    assert left == sorted([*(names[i] for i in (0, 1, 3)), *(names[i] + ".json" for i in (0, 1, 3))])


@pytest.fixture
def limited_role(pg_admin, target_db):
    """A role that may connect but not read the tables: pg_dump fails for real."""
    role = new_name("pgct_role")
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    yield role
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
    pg_admin.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("where", ["s3", "folder"])
def test_a_failed_pg_dump_leaves_nothing_and_says_why(where, request, make_app, limited_role, target_db, run_jobs):
    overrides = request.getfixturevalue("s3_server") if where == "s3" else {}
    app = make_app(DATABASE_URL=f"postgresql://{limited_role}@127.0.0.1:5432/{target_db}", **overrides)
    status = backup_run_in_process(app)
    job_id = status["id"]
    assert status["status"] == "failed"
    assert "pg_dump failed" in status["error"] and "permission denied" in status["error"]
    assert status["progress"]["percent"] != 100
    assert leftovers(app) == NOTHING_LEFT
    with app.app_context():
        from app.store.models import AuditEvent

        failed = AuditEvent.query.filter_by(action="backup", outcome="failed").one()
        assert failed.job_id == job_id and "permission denied" in failed.detail


def test_a_backup_that_runs_past_its_timeout_is_stopped_and_leaves_nothing(make_app, target_db, pg_admin):
    app = make_app(JOB_TIMEOUT_SECONDS="5")
    status = backup_behind_a_lock(app, target_db)
    assert status["status"] == "failed"
    assert status["error"] == "made no progress for 5 s (JOB_TIMEOUT_SECONDS); nothing was kept"
    assert leftovers(app) == NOTHING_LEFT
    assert backup_sessions(pg_admin, target_db) == 0  # the pg_dump child was killed, not left waiting


def test_a_missing_bucket_fails_with_the_seeds_helpful_message(make_app, s3_server, run_jobs, pg_admin, target_db):
    app = make_app(**{**s3_server, "BACKUP_STORAGE_URL": "s3://pgct-no-such-bucket"})
    error = backup_run_in_process(app)["error"]
    assert "pgct-no-such-bucket" in error and "ap-south-1" in error and "aws s3 mb" in error
    # the store is checked before pg_dump starts
    assert backup_sessions(pg_admin, target_db) == 0


def test_a_name_whose_second_is_taken_names_the_next_second(app, run_jobs):
    """pg_dump, started before the name was planned (as the job does), is started again when the
    name had to wait: its snapshot must not precede the name's time."""
    from app.domain import backup as backups
    from app.jobs import runtime

    taken = backup_run_in_process(app)["filename"]
    with app.app_context():
        runtime.configure(app)
        ours = runtime.console()
        tool = backups.choose_dump(ours.target, compression="auto")
        running = RunningDump(tool.dump, tool.compression.args, ours.target)
        moment = parse_backup_name(taken).created_at(ours.zone)
        plan = backups.plan_backup(ours, tool, now=moment)
        named = parse_backup_name(plan.filename).created_at(ours.zone)
        result = backups.stream_backup(plan, ours.target, ours.storage, running=running)
    assert plan.filename != taken
    assert plan.named_at is not None and plan.named_at > moment
    assert named > moment
    assert datetime.fromisoformat(result.started_at) >= plan.named_at > running.started


def test_pg_dumps_small_slow_writes_are_read_whole_and_in_order():
    """The reader pauses when the pipe is nearly empty (to spare pg_dump wake-ups); nothing may be lost.

    How much the pauses save is a speed figure, measured in bench/ (bench/README.md), not here.
    """
    from app.adapters.pg_dump import read_output

    data = os.urandom(4 * MiB + 1_234)
    read_fd, write_fd = os.pipe()

    def dump_slowly():  # bursts of 4 KiB writes with gaps, like pg_dump compressing
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for burst in range(0, len(data), 64 * 1024):
                for offset in range(burst, min(burst + 64 * 1024, len(data)), 4096):
                    out.write(data[offset : offset + 4096])
                time.sleep(0.001)

    writer = threading.Thread(target=dump_slowly)
    writer.start()
    try:
        # Each block is only valid until the next is read (one reused buffer): keep a copy, as every consumer does.
        blocks = [bytes(block) for block in read_output(read_fd)]
    finally:
        writer.join()
        os.close(read_fd)
    assert b"".join(blocks) == data
    assert all(0 < len(block) <= MiB for block in blocks)


def test_pg_dump_older_than_the_server_is_refused_by_name():
    from app.adapters.postgres import PgToolError, installed_clients, pick_client

    newest = max(tool.major for tool in installed_clients("pg_dump"))
    with pytest.raises(PgToolError) as caught:
        pick_client("pg_dump", newest + 1)
    message = str(caught.value)
    assert f"PostgreSQL {newest + 1}" in message and f"{newest} (" in message
    assert f"postgresql-client-{newest + 1}" in message
    assert pick_client("pg_dump", newest).major == newest


def test_download(app, client, auth, make_user, run_jobs, operator):
    job_id = start_backup(client, operator)
    run_jobs()
    filename = job(client, operator, job_id)["result"]["filename"]
    make_user("vic", "viewer")
    auth.login("vic")
    assert client.get(f"/backups/{filename}/download").status_code == 403
    auth.logout()
    auth.login("olga")
    response = client.get(f"/backups/{filename}/download")
    assert response.status_code == 200
    assert response.data == storage_of(app).get_bytes(filename)
    assert filename in response.headers["Content-Disposition"]
    for bad in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "nope.dump", ".partial-x"):
        assert client.get(f"/backups/{bad}/download").status_code == 404


# --------------------------------------------------------------------------- real worker processes


