"""JOB_TIMEOUT_SECONDS limits silence, not length: a backup that streams runs as long as it needs,
one whose pg_dump waits on a lock is stopped, and the database lock lives as long as the job moves.

A real worker process (RQ's fork and alarm), real PostgreSQL, moto behind a proxy that slows
the upload's parts.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime

import psycopg

from tests.helpers import backup_sessions, open_uploads, wait_for, wait_for_job
from tests.support.databases import PG

LIMIT = 5  # JOB_TIMEOUT_SECONDS: its minimum




def _seconds(status: dict) -> float:
    return (datetime.fromisoformat(status["ended_at"]) - datetime.fromisoformat(status["started_at"])).total_seconds()



def test_a_backup_that_keeps_streaming_runs_past_the_timeout(app_env, slow_parts, big_table, processes, console_of):
    from app.jobs.queue import start_job

    _, s3 = slow_parts
    env = {**app_env, **s3, "JOB_TIMEOUT_SECONDS": str(LIMIT), "BACKUP_COMPRESSION": "none"}
    settings, redis, storage = console_of(env)
    processes.worker(env)
    final = wait_for_job(redis, start_job(settings, redis, "backup", "olga"), timeout=120)
    assert _seconds(final) > LIMIT + 1  # RQ would have killed it at LIMIT before
    assert final["result"]["size"] > 60_000_000
    assert [o.name for o in storage.list_objects()] == [final["result"]["filename"],
                                                         final["result"]["filename"] + ".json"]  # fmt: skip


def test_a_pg_dump_waiting_on_a_lock_is_stopped_and_leaves_nothing(
    app_env, s3_server, target_db, pg_admin, processes, console_of
):
    from app.jobs.locks import DatabaseLock
    from app.jobs.queue import start_job

    env = {**app_env, **s3_server, "JOB_TIMEOUT_SECONDS": str(LIMIT)}
    settings, redis, storage = console_of(env)
    blocker = psycopg.connect(**{**PG, "dbname": target_db})
    blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # pg_dump waits on it forever
    try:
        processes.worker(env)
        job_id = start_job(settings, redis, "backup", "olga")
        wait_for(lambda: open_uploads(storage), timeout=60, message="the upload to start")
        final = wait_for_job(redis, job_id, "failed", timeout=60)
    finally:
        blocker.close()
    assert final["error"] == f"made no progress for {LIMIT} s (JOB_TIMEOUT_SECONDS); nothing was kept"
    assert LIMIT <= _seconds(final) < LIMIT + 10  # the dump's first seconds, the limit, one look for work
    assert storage.list_objects() == [] and open_uploads(storage) == []
    assert DatabaseLock(redis, settings.redis_namespace, settings.lock_name).holder() is None
    assert backup_sessions(pg_admin, target_db) == 0


def test_the_lock_is_renewed_while_a_long_backup_progresses(app_env, slow_parts, big_table, processes, console_of):
    from app.jobs.locks import LOCK_GRACE_SECONDS, DatabaseLock
    from app.jobs.queue import JobRefused, job_status, start_job

    _, s3 = slow_parts
    env = {**app_env, **s3, "JOB_TIMEOUT_SECONDS": str(LIMIT), "BACKUP_COMPRESSION": "none"}
    settings, redis, storage = console_of(env)
    lock = DatabaseLock(redis, settings.redis_namespace, settings.lock_name)
    job_id = start_job(settings, redis, "backup", "olga")
    assert redis.ttl(lock.key) > settings.job_timeout_seconds + LOCK_GRACE_SECONDS  # queued: held past the limit
    processes.worker(env)
    wait_for(lambda: job_status(redis, job_id)["progress"]["phase"] == "dumping", timeout=60, message="the dump")
    ttls, refused, second = [], [], None
    while True:
        ttl = redis.pttl(lock.key)
        try:
            second = start_job(settings, redis, "backup", "vic")
        except JobRefused as refusal:
            outcome = refusal.status
        else:
            outcome = None
        # Read after both observations: a job not yet "done" held its lock through them (it saves
        # "done" before it frees the lock). Once done, the lock may be free already.
        now = job_status(redis, job_id)
        if now["status"] != "started" or now["progress"]["phase"] == "done":
            break
        assert outcome is not None, "a second backup started while the first one was running"
        ttls.append(ttl)
        refused.append(outcome)
        time.sleep(0.25)
    if second is not None:
        wait_for_job(redis, second, timeout=120)
    assert wait_for_job(redis, job_id, timeout=60)["status"] == "finished"
    assert set(refused) == {409} and len(refused) > 4 * LIMIT  # refused for the whole run
    # Running, the lock lasts the no-progress window plus grace, and is pushed back as the job moves.
    window = (settings.job_timeout_seconds + LOCK_GRACE_SECONDS) * 1000
    assert all(0 < ttl <= window for ttl in ttls)
    assert any(later > earlier for earlier, later in zip(ttls, ttls[1:], strict=False))
    assert lock.holder() is None


def _psql(target_db: str, session: str, sql: str) -> subprocess.Popen:
    """A client standing in for pg_restore: a child of this process, named as the job names its tools."""
    env = {**os.environ, "PGHOST": PG["host"], "PGPORT": str(PG["port"]), "PGUSER": PG["user"],
           "PGDATABASE": target_db, "PGAPPNAME": session}  # fmt: skip
    return subprocess.Popen(["psql", "-X", "-q", "-c", sql], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def test_a_silent_tool_is_working_while_its_server_session_works_not_while_it_waits(target_db, pg_admin):
    """What the watch asks when a job is quiet: a statement running (an index, one huge table) is
    progress; a statement queued behind another session's lock is not."""
    from app.jobs.watch import ToolActivity

    activity = ToolActivity({**PG, "dbname": target_db})
    busy = _psql(target_db, "pgconsole-test-busy",
                 "SET statement_timeout = '20s'; SELECT count(*) FROM generate_series(1, 1000000000)")  # fmt: skip
    try:
        wait_for(activity.working, timeout=10, message="the running statement to count as work")
    finally:
        busy.kill()
        busy.wait()
        pg_admin.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                         ("pgconsole-test-busy",))  # fmt: skip
    blocker = psycopg.connect(**{**PG, "dbname": target_db})
    blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    waiting = _psql(target_db, "pgconsole-test-waiting", "SELECT count(*) FROM orders")
    try:
        wait_for(lambda: pg_admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            ("pgconsole-test-waiting",)).fetchone(), timeout=10, message="the client to wait on the lock")  # fmt: skip
        activity.working()  # the first look only notes the tools' CPU time
        time.sleep(0.5)
        assert not activity.working()
    finally:
        blocker.close()
        waiting.kill()
        waiting.wait()
