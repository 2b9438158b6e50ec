"""Restore: the guards, a restore that replaces the live database, and failures that change nothing."""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from app.domain.naming import backup_filename
from tests.helpers import (
    PASSKEY,
    backup_run_in_process,
    job_of,
    restore_api,
    restore_through_api,
    run_jobs_for,
    storage_of,
    wait_for,
    wait_for_job,
)
from tests.support.databases import PG, create_database, database_names, drop_database, new_name, table_fingerprint


@pytest.fixture
def admin(app, make_user, token_for):
    make_user("ada", "admin")
    return token_for("ada")


def change_live(dbname: str) -> None:
    """What happens after a backup: rows deleted and added, a table created."""
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")
        conn.execute("INSERT INTO customers (name) VALUES ('after the backup')")
        conn.execute("CREATE TABLE scratchpad (x int)")


def scratch_databases(pg_admin, target_db) -> list[str]:
    return database_names(pg_admin, f"{target_db}_pgc_%")


def lock_holder(app):
    from app.jobs.locks import DatabaseLock
    from app.services import redis

    settings = app.config["SETTINGS"]
    with app.app_context():
        return DatabaseLock(redis(), settings.redis_namespace, settings.target.dbname).holder()


def test_restore_brings_back_every_row_and_drops_the_rest(app, client, admin, target_db, pg_admin, caplog):
    caplog.set_level(logging.DEBUG)
    at_backup = table_fingerprint(target_db)
    backup = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    assert table_fingerprint(target_db) != at_backup

    response = restore_api(client, admin, backup)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job_id"]
    run_jobs_for(app)
    status = job_of(app, job_id)
    assert status["status"] == "finished", status["error"]
    assert status["result"]["verified"] is True and status["result"]["tables"] == 2
    assert table_fingerprint(target_db) == at_backup  # same tables, same rows; scratchpad is gone
    assert scratch_databases(pg_admin, target_db) == []
    assert lock_holder(app) is None

    from app.store.models import AuditEvent

    with app.app_context():
        rows = AuditEvent.query.filter_by(action="restore").all()
        assert [(r.outcome, r.job_id) for r in rows] == [("requested", job_id), ("ok", job_id)]
        assert all(PASSKEY not in f"{r.detail} {r.target}" for r in AuditEvent.query.all())
    assert PASSKEY not in caplog.text


def test_restore_from_another_environment_without_a_manifest(app, client, admin, target_db, pg_admin, tmp_path):
    """A backup made elsewhere (old system, other roles) names a role this server lacks: refused, naming it;
    then restored by the admin's choice without owners and grants: objects owned by the configured user."""
    role, source = new_name("pgct_owner"), new_name()
    pg_admin.execute(f'CREATE ROLE "{role}"')
    create_database(pg_admin, source, rows=300)
    with psycopg.connect(**{**PG, "dbname": source}, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE customers OWNER TO "{role}"')
        conn.execute(f'GRANT SELECT ON orders TO "{role}"')
    expected = table_fingerprint(source)
    archive = tmp_path / "elsewhere.dump"
    subprocess.run(["pg_dump", "-Fc", "-h", "127.0.0.1", "-U", "postgres", "-f", str(archive), source], check=True)
    drop_database(pg_admin, source)
    pg_admin.execute(f'DROP ROLE "{role}"')  # that role does not exist here

    zone = ZoneInfo("Asia/Kolkata")
    old_name = backup_filename("pharmatracker", "production", datetime.now(UTC) - timedelta(days=3), zone)
    storage_of(app).put_bytes(old_name, archive.read_bytes())

    refused = restore_through_api(app, client, admin, old_name)
    assert refused["status"] == "failed" and f"roles this server does not have: {role}" in refused["error"]
    assert table_fingerprint(target_db) != expected and scratch_databases(pg_admin, target_db) == []
    status = restore_through_api(app, client, admin, old_name, without_owners=True)
    assert status["status"] == "finished", status["error"]
    assert status["result"]["without_owners"] is True
    assert status["result"]["verified"] is False
    assert "no manifest" in status["warning"]
    assert table_fingerprint(target_db) == expected
    with psycopg.connect(**{**PG, "dbname": target_db}) as conn:
        owners = {r[0] for r in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
    assert owners == {"postgres"}


def prepared(app, target_db):
    """A backup, then changes: the backup's name and the fingerprint of the live database."""
    filename = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    return filename, table_fingerprint(target_db)


def assert_failed_and_unchanged(app, job_id, target_db, pg_admin, before, *words):
    status = job_of(app, job_id)
    assert status["status"] == "failed"
    for word in words:
        assert word in status["error"], status["error"]
    assert table_fingerprint(target_db) == before
    assert scratch_databases(pg_admin, target_db) == []
    assert lock_holder(app) is None
    return status


def test_a_corrupted_archive_is_refused_before_anything_is_touched(app, client, admin, target_db, pg_admin):
    filename, before = prepared(app, target_db)
    storage = storage_of(app)
    data = bytearray(storage.get_bytes(filename))
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    storage.put_bytes(filename, bytes(data))
    job_id = restore_api(client, admin, filename).get_json()["job_id"]
    run_jobs_for(app)
    status = assert_failed_and_unchanged(app, job_id, target_db, pg_admin, before, "checksum mismatch")
    assert "was not touched" in status["error"] or "nothing was changed" in status["error"]


def test_a_truncated_archive_fails_in_pg_restore_and_changes_nothing(app, client, admin, target_db, pg_admin):
    filename, before = prepared(app, target_db)
    storage = storage_of(app)
    data = storage.get_bytes(filename)
    zone = ZoneInfo("Asia/Kolkata")
    truncated = backup_filename("pharmatracker", "staging", datetime.now(UTC) - timedelta(days=1), zone)
    storage.put_bytes(truncated, data[: int(len(data) * 0.6)])  # no manifest, so only pg_restore can tell
    job_id = restore_api(client, admin, truncated).get_json()["job_id"]
    run_jobs_for(app)
    status = assert_failed_and_unchanged(app, job_id, target_db, pg_admin, before, "pg_restore")
    assert "was not touched" in status["error"]


def test_open_connections_are_ended_and_new_ones_see_the_restored_data(app, client, admin, target_db):
    at_backup = table_fingerprint(target_db)
    filename = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    idle = psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True)
    busy = psycopg.connect(**{**PG, "dbname": target_db})
    busy.execute("SELECT count(*) FROM orders")  # a session inside an open transaction
    try:
        job_id = restore_api(client, admin, filename).get_json()["job_id"]
        run_jobs_for(app)
        assert job_of(app, job_id)["status"] == "finished"
        for conn in (idle, busy):
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
    finally:
        idle.close()
        busy.close()
    assert table_fingerprint(target_db) == at_backup


def test_a_swap_that_fails_halfway_puts_the_live_database_back(app, target_db, pg_admin):
    from app.domain import restore

    settings = app.config["SETTINGS"]
    before = table_fingerprint(target_db)
    scratch = restore.scratch_name(target_db)
    restore.create_scratch(settings.target, scratch)

    def scratch_vanishes():  # a real fault at the worst moment: the live database is already aside
        drop_database(pg_admin, scratch)

    with pytest.raises(psycopg.Error):
        restore.swap_in(
            settings.target,
            scratch,
            restore.scratch_name(target_db, "previous"),
            keep_old=False,
            before_rename=scratch_vanishes,
        )
    assert table_fingerprint(target_db) == before  # back under its own name, accepting connections
    assert scratch_databases(pg_admin, target_db) == []


def test_the_previous_database_is_dropped_after_the_restore_reports_finished(app, client, admin, target_db, pg_admin):
    """DROP DATABASE waits for a checkpoint: the restore ends first, and a job of its own drops the old copy."""
    at_backup = table_fingerprint(target_db)
    backup = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)

    response = restore_api(client, admin, backup)
    assert response.status_code == 202, response.get_json()
    run_jobs_for(app, max_jobs=1)  # the restore alone
    status = job_of(app, response.get_json()["job_id"])
    assert status["status"] == "finished", status["error"]
    assert status["result"]["kept_old_database"] is None
    assert table_fingerprint(target_db) == at_backup
    (set_aside,) = scratch_databases(pg_admin, target_db)
    assert set_aside.startswith(f"{target_db}_pgc_previous_")
    allowed = pg_admin.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (set_aside,)).fetchone()
    assert allowed == (False,)  # nobody can start using the old copy meanwhile

    run_jobs_for(app)  # the drop, first in line
    assert scratch_databases(pg_admin, target_db) == []
    assert table_fingerprint(target_db) == at_backup


def test_keep_old_database_keeps_the_previous_copy_open(make_app, target_db, pg_admin):
    from app.jobs.queue import start_job
    from app.services import redis, settings

    app = make_app(KEEP_OLD_DATABASE="true")
    at_backup = table_fingerprint(target_db)
    backup = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    changed = table_fingerprint(target_db)
    with app.app_context():
        job_id = start_job(settings(), redis(), "restore", "olga", filename=backup)
    run_jobs_for(app)
    status = job_of(app, job_id)
    assert status["status"] == "finished", status["error"]
    kept = status["result"]["kept_old_database"]
    assert scratch_databases(pg_admin, target_db) == [kept]
    assert table_fingerprint(target_db) == at_backup and table_fingerprint(kept) == changed
    drop_database(pg_admin, kept)


@pytest.mark.parametrize("name", ["{db}", "{db}_pgc_restore_0123abcd", "{db}_pgc_previous_0123abcd; DROP", "postgres"])
def test_only_a_database_a_swap_set_aside_can_be_dropped(app, target_db, name):
    from app.domain import restore

    with pytest.raises(restore.RestoreError, match="nothing was dropped"):
        restore.drop_set_aside(app.config["SETTINGS"].target, name.format(db=target_db))
    assert table_fingerprint(target_db)  # the live database is still there


# --------------------------------------------------------------------------- guards


# --------------------------------------------------------------------------- real worker processes


@pytest.fixture
def worker_env(app_env, s3_server, tmp_path):
    return {**app_env, **s3_server, "RESTORE_TMP_DIR": str(tmp_path / "restore-tmp")}


def test_a_worker_killed_mid_restore_leaves_the_live_database_as_it_was(
    worker_env, processes, target_db, pg_admin, console_of
):
    from app.jobs.queue import job_status, start_job

    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("CREATE TABLE bulk AS SELECT g, md5(g::text) AS v FROM generate_series(1, 1500000) g")
        conn.execute("CREATE INDEX ON bulk (v)")
    settings, redis, _ = console_of(worker_env)
    warm_up = processes.worker(worker_env, name="worker-0")
    backup = start_job(settings, redis, "backup", "ada")
    wait_for_job(redis, backup, timeout=120)
    before = table_fingerprint(target_db)

    processes.stop(warm_up)
    first = processes.worker(worker_env, name="worker-1")
    job_id = start_job(settings, redis, "restore", "ada", filename=job_status(redis, backup)["result"]["filename"])
    wait_for(
        lambda: job_status(redis, job_id)["progress"]["phase"] == "restoring",
        timeout=120,
        interval=0.05,
        message="pg_restore to start",
    )
    wait_for(lambda: scratch_databases(pg_admin, target_db), timeout=10, message="the scratch database")
    processes.kill(first)
    processes.worker(worker_env, name="worker-2")
    final = wait_for_job(redis, job_id, "failed", timeout=240)
    assert "worker running this job stopped" in final["error"]
    assert "was not touched" in final["error"]
    assert table_fingerprint(target_db) == before
    assert scratch_databases(pg_admin, target_db) == []
    from app.jobs.locks import DatabaseLock

    assert DatabaseLock(redis, settings.redis_namespace, target_db).holder() is None
    assert not list(Path(settings.restore_tmp_dir).glob("*"))  # the downloaded archive is gone


def test_an_s3_outage_fails_the_restore_and_changes_nothing(app_env, processes, target_db, pg_admin,
                                                            console_of):  # fmt: skip
    from moto.server import ThreadedMotoServer

    from app.jobs.queue import job_status, start_job
    from tests.support.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import boto3

    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="ap-south-1", aws_access_key_id="t", aws_secret_access_key="t"
    ).create_bucket(Bucket="pgct-outage", CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
    env = {
        **app_env,
        "BACKUP_STORAGE_URL": "s3://pgct-outage",
        "S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }
    settings, redis, _ = console_of(env)
    worker = processes.worker(env, name="worker-1")
    backup = start_job(settings, redis, "backup", "ada")
    wait_for_job(redis, backup, timeout=120)
    processes.kill(worker)
    change_live(target_db)
    before = table_fingerprint(target_db)
    job_id = start_job(settings, redis, "restore", "ada", filename=job_status(redis, backup)["result"]["filename"])
    server.stop()  # S3 goes away before the worker gets to it
    processes.worker(env, name="worker-2")
    final = wait_for_job(redis, job_id, "failed", timeout=120)
    assert "cannot be reached" in final["error"]
    assert table_fingerprint(target_db) == before
    assert scratch_databases(pg_admin, target_db) == []
