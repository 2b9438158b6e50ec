"""Backups run by real worker processes: from the shell, with progress, a killed worker, S3 going away mid-backup."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from tests.helpers import (
    AuthActions,
    wait_for,
    wait_for_job,
)
from tests.jobs import test_backups
from tests.jobs.test_backups import start_backup
from tests.support import ROOT
from tests.support.databases import PG
from tests.support.processes import child_env

operator = test_backups.operator  # fixtures


@pytest.fixture
def worker_env(app_env, s3_server):
    return {**app_env, **s3_server}


def test_backup_from_the_shell_with_a_real_worker(worker_env, processes, tmp_path):
    processes.worker(worker_env)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "backup", "create", "--wait"],
            cwd=ROOT,
            env=child_env(worker_env),
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the backup did not finish in 120 s; worker log:\n" + processes.log("worker"))
    assert done.returncode == 0, done.stderr + processes.log("worker")
    assert "Backup finished: pharmatracker-staging-on-" in done.stdout


def test_progress_moves_while_a_backup_runs(worker_env, processes, pg_admin, target_db, console_of):
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE blobs AS SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) AS v "
            "FROM generate_series(1, 1500000) g"
        )
    env = {**worker_env, "BACKUP_COMPRESSION": "gzip:9"}  # slow enough to watch
    from app.jobs.queue import job_status, start_job

    settings, redis, _ = console_of(env)
    processes.worker(env)
    job_id = start_job(settings, redis, "backup", "olga")
    seen = []

    def sample():
        status = job_status(redis, job_id)
        if status["status"] == "started" and status["progress"]["phase"] == "dumping":
            seen.append(status["progress"]["bytes_done"])
        return status["status"] in ("finished", "failed")

    wait_for(sample, timeout=120, interval=0.05, message="the backup to end")
    final = job_status(redis, job_id)
    assert final["status"] == "finished", final["error"]
    moving = sorted(set(seen))
    assert len([b for b in moving if b > 0]) >= 3, moving
    assert seen == sorted(seen)  # never goes backwards
    assert final["progress"]["percent"] == 100 and final["progress"]["bytes_done"] == final["result"]["size"]


def test_a_killed_worker_is_reported_and_its_upload_aborted(worker_env, processes, target_db, console_of):
    from app.jobs.locks import DatabaseLock
    from app.jobs.queue import job_status, start_job

    settings, redis, storage = console_of(worker_env)
    blocker = psycopg.connect(**{**PG, "dbname": target_db})
    blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # holds the job mid-dump
    try:
        first = processes.worker(worker_env, name="worker-1")
        job_id = start_job(settings, redis, "backup", "olga")
        wait_for(
            lambda: job_status(redis, job_id)["progress"]["phase"] == "dumping", timeout=60, message="the dump to start"
        )
        wait_for(
            lambda: storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads"),
            timeout=10,
            message="the upload to start",
        )
        processes.kill(first)
    finally:
        blocker.close()
    assert job_status(redis, job_id)["status"] == "started"  # nobody knows yet
    processes.worker(worker_env, name="worker-2")
    final = wait_for_job(redis, job_id, "failed", timeout=240)
    assert "worker running this job stopped" in final["error"]
    assert storage.list_objects() == []
    assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    assert DatabaseLock(redis, settings.redis_namespace, settings.target.dbname).holder() is None


def test_page_and_api_agree_on_a_job_seen_from_two_clients(client, auth, make_user, operator):
    job_id = start_backup(client, operator)
    make_user("vic", "viewer")
    second = client.application.test_client()
    AuthActions(second).login("vic")
    assert job_id in second.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert second.get(f"/api/jobs/{job_id}").get_json()["status"] == "queued"
    assert second.get("/jobs/does-not-exist").status_code == 404
    assert second.get("/api/jobs/does-not-exist").status_code == 404


def test_s3_going_away_mid_backup_leaves_no_backup_and_says_why(app_env, processes, target_db, console_of):
    import boto3
    from moto.server import ThreadedMotoServer

    from app.jobs.locks import DatabaseLock
    from app.jobs.queue import start_job
    from tests.support.processes import free_port

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    credentials = {"aws_access_key_id": "t", "aws_secret_access_key": "t"}
    boto3.client("s3", endpoint_url=endpoint, region_name="ap-south-1", **credentials).create_bucket(
        Bucket="pgct-flaky", CreateBucketConfiguration={"LocationConstraint": "ap-south-1"}
    )
    env = {**app_env, "BACKUP_STORAGE_URL": "s3://pgct-flaky", "S3_ENDPOINT_URL": endpoint,
           "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}  # fmt: skip
    settings, redis, storage = console_of(env)
    blocker = psycopg.connect(**{**PG, "dbname": target_db})
    blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # hold the dump until S3 is gone
    try:
        processes.worker(env)
        job_id = start_job(settings, redis, "backup", "olga")
        wait_for(lambda: storage.client.list_multipart_uploads(Bucket="pgct-flaky").get("Uploads"), timeout=60,
                 message="the upload to start")  # fmt: skip
        server.stop()
    finally:
        blocker.close()
    final = wait_for_job(redis, job_id, "failed", timeout=120)
    assert "cannot be reached" in final["error"]
    assert DatabaseLock(redis, settings.redis_namespace, target_db).holder() is None

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # S3 is back
    server.start()
    try:
        assert storage.list_objects() == []  # nothing under the final name
        # The abort could not reach S3 either; the next backup sweeps the stale upload.
        # (moto dates every upload in 2010, so "stale" holds at once here; on S3 it is after 6 hours.)
        assert storage.client.list_multipart_uploads(Bucket="pgct-flaky").get("Uploads")
        wait_for_job(redis, start_job(settings, redis, "backup", "olga"), timeout=120)
        assert storage.client.list_multipart_uploads(Bucket="pgct-flaky").get("Uploads", []) == []
        assert len([o for o in storage.list_objects() if o.name.endswith(".dump")]) == 1
    finally:
        server.stop()
