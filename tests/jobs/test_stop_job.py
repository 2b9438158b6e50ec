"""Stopping a job: a running backup leaves no object and no upload, a restore stopped before its swap leaves
the live database as it was and no scratch database, one whose swap has begun cannot be stopped, a viewer
cannot stop anything, and a stop request forged in Redis for a finished job changes nothing.

A real worker process (RQ's fork and alarm: the watch that answers the stop), real PostgreSQL and Redis,
moto behind a proxy that slows the upload's parts; the requests come through the API, as the Stop button's do.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests.helpers import PASSKEY, backup_sessions, open_uploads, wait_for, wait_for_job
from tests.support.databases import PG, database_names, table_fingerprint
from tests.support.processes import descendants


@pytest.fixture
def stop_console(make_app, console_of, processes):
    """(settings, redis, storage, client, headers by role) of a console on `env`, with its worker running."""

    def start(env: dict[str, str]):
        settings, redis, storage = console_of(env)
        app = make_app(**env)
        headers = {role: _token(app, name, role) for name, role in
                   (("olga", "operator"), ("ada", "admin"), ("vera", "viewer"))}  # fmt: skip
        processes.worker(env)
        return settings, redis, storage, app.test_client(), headers

    return start


def _token(app, username: str, role: str) -> dict[str, str]:
    from app.accounts.people import create_user
    from app.extensions import db
    from app.store.models import ApiToken

    with app.app_context():
        user = create_user(username, role, "x" * 12, created_by="test")
        token, plain = ApiToken.issue(user)
        db.session.add(token)
        db.session.commit()
    return {"Authorization": f"Bearer {plain}"}



def _job(client, headers, job_id) -> dict:
    answer = client.get(f"/api/jobs/{job_id}", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _record(job_id: str):
    from app.jobs import history

    return history.find(job_id)


def _audit(action: str, job_id: str) -> list[tuple[str, str | None, str | None]]:
    from app.extensions import db
    from app.store.models import AuditEvent

    db.session.expire_all()
    rows = db.session.execute(db.select(AuditEvent).where(AuditEvent.action == action, AuditEvent.job_id == job_id)
                              .order_by(AuditEvent.id)).scalars()  # fmt: skip
    return [(row.outcome, row.username, row.detail) for row in rows]


def _tool(processes, name_prefix: str, database_prefix: str) -> int:
    """The pid of a running pg tool the worker started: PGAPPNAME and PGDATABASE as the job sets them."""
    for pid in descendants(processes.named["worker"].pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(v.split(b"=", 1) for v in environ if b"=" in v)
        if env.get(b"PGAPPNAME", b"").startswith(name_prefix.encode()) and \
                env.get(b"PGDATABASE", b"").startswith(database_prefix.encode()):  # fmt: skip
            return pid
    return 0


def _hold_once_logged(pid: int, logged) -> None:
    """Hold (SIGSTOP) the tool `pid`, letting it run a few ms at a time until `logged()` sees its log on the job."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 30
    while not logged():
        assert time.monotonic() < deadline, "the tool's log never reached the job"
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.6)  # the job saves a line within 0.5 s


def test_a_running_backup_stops_and_leaves_nothing(app_env, slow_parts, big_table, pg_admin, stop_console):
    from app.jobs.locks import DatabaseLock

    _, s3 = slow_parts
    env = {**app_env, **s3, "BACKUP_COMPRESSION": "none"}
    settings, redis, storage, client, headers = stop_console(env)
    started = client.post("/api/setting/backup", headers=headers["operator"])
    assert started.status_code == 202
    job_id = started.get_json()["job_id"]
    wait_for(lambda: open_uploads(storage) and _job(client, headers["operator"], job_id)["progress"]["bytes_done"],
             timeout=60, message="the upload to be under way")  # fmt: skip

    running = _job(client, headers["operator"], job_id)
    assert running["may_stop"] and any(line.startswith("pg_dump: ") for line in running["log"])  # the live log
    assert all(len(line) <= 300 for line in running["log"]) and len(running["log"]) <= 50
    seen_by_viewer = _job(client, headers["viewer"], job_id)
    assert seen_by_viewer["log"] == [] and not seen_by_viewer["may_stop"]
    refused = client.post(f"/api/jobs/{job_id}/stop", headers=headers["viewer"])
    assert refused.status_code == 403 and "needs the operator role" in refused.get_json()["error"]

    asked = time.monotonic()
    stop = client.post(f"/api/jobs/{job_id}/stop", headers=headers["operator"])
    assert stop.status_code == 202 and stop.get_json()["status"] == "stopping"
    final = wait_for_job(redis, job_id, "stopped", timeout=30)
    assert time.monotonic() - asked < 15  # within a second or two, unless the machine is busy
    assert final["stopped_by"] == "olga" and final["error"] is None

    assert storage.list_objects() == [] and open_uploads(storage) == []  # no object, no part left
    assert DatabaseLock(redis, settings.redis_namespace, settings.lock_name).holder() is None
    assert backup_sessions(pg_admin, big_table) == 0
    run = _record(job_id)
    assert run.status == "stopped" and run.outcome == "stopped by olga; no backup was saved"
    assert [(o, u) for o, u, _ in _audit("stop", job_id)] == [("refused", "vera"), ("requested", "olga")]
    assert [(o, u) for o, u, _ in _audit("backup", job_id)] == [("requested", "olga"), ("stopped", "olga")]
    page = client.get(f"/api/jobs/{job_id}", headers=headers["viewer"]).get_json()
    assert page["status"] == "stopped" and page["view"]["status_text"] == "stopped by olga"
    again = client.post(f"/api/jobs/{job_id}/stop", headers=headers["operator"])
    assert again.status_code == 409 and "already ended" in again.get_json()["error"]


def test_a_restore_stops_before_the_swap_and_not_once_it_has_begun(app_env, slow_s3, target_db, pg_admin,
                                                                     stop_console, processes):  # fmt: skip
    from app.jobs.locks import DatabaseLock

    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:  # seconds for pg_restore to load
        conn.execute("CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 32) AS body "
                     "FROM generate_series(1, 150000) g")  # fmt: skip

    proxy, s3 = slow_s3
    env = {**app_env, **s3, "RESTORE_JOBS": "1"}
    settings, redis, storage, client, headers = stop_console(env)
    made = client.post("/api/setting/backup", headers=headers["operator"]).get_json()["job_id"]
    filename = wait_for_job(redis, made, timeout=60)["result"]["filename"]

    def restore() -> str:
        answer = client.post("/api/setting/restore", headers=headers["admin"],
                             json={"filename": filename, "passkey": PASSKEY})  # fmt: skip
        assert answer.status_code == 202, answer.get_json()
        return answer.get_json()["job_id"]

    # Once the swap has begun (here: the safety backup of the replaced database, its writes held), no stop.
    proxy.hold = lambda method, path: 2.0 if method in ("PUT", "POST") else 0.0
    job_id = restore()
    wait_for(lambda: _job(client, headers["admin"], job_id)["progress"]["phase"] == "safety", timeout=60,
             interval=0.05, message="the safety backup")  # fmt: skip
    assert not _job(client, headers["admin"], job_id)["may_stop"]
    late = client.post(f"/api/jobs/{job_id}/stop", headers=headers["admin"])
    assert late.status_code == 409
    assert late.get_json()["error"] == "the swap has begun; a restore cannot be stopped after that"
    assert wait_for_job(redis, job_id, timeout=90)["status"] == "finished"
    assert _audit("stop", job_id)[-1][:2] == ("refused", "ada")

    # Before the swap: pg_restore into the scratch database, held; Stop ends it (SIGTERM, then SIGKILL).
    before = table_fingerprint(target_db)
    job_id = restore()
    pid = wait_for(lambda: _tool(processes, "pgconsole-restore-", f"{target_db}_pgc_restore_"), timeout=60,
                   interval=0.005,
                   message="pg_restore into the scratch database")  # fmt: skip
    _hold_once_logged(pid, lambda: any(line.startswith("pg_restore: ") for line in
                                       _job(client, headers["admin"], job_id)["log"]))  # fmt: skip
    running = _job(client, headers["admin"], job_id)
    assert running["progress"]["phase"] == "restoring" and running["may_stop"]
    assert client.post(f"/api/jobs/{job_id}/stop", headers=headers["operator"]).status_code == 403
    stop = client.post(f"/api/jobs/{job_id}/stop", headers=headers["admin"])
    assert stop.status_code == 202
    final = wait_for_job(redis, job_id, "stopped", timeout=60)
    assert final["stopped_by"] == "ada"
    assert any(line.startswith("pg_restore: ") for line in final["log"])
    assert table_fingerprint(target_db) == before  # the live database is as it was
    assert database_names(pg_admin, f"{target_db}_pgc_restore_%") == []  # no scratch database left
    assert DatabaseLock(redis, settings.redis_namespace, settings.lock_name).holder() is None
    run = _record(job_id)
    assert run.status == "stopped" and run.outcome.startswith("stopped by ada; the live database")
    assert [(o, u) for o, u, _ in _audit("restore", job_id)] == [("requested", "ada"), ("stopped", "ada")]
    assert not list(Path(settings.restore_tmp_dir).glob("restore-*"))  # the downloaded copy is gone too


def test_a_queued_job_is_cancelled_and_a_forged_stop_for_a_finished_job_changes_nothing(
    app_env, make_app, console_of, processes
):
    from app.jobs.locks import DatabaseLock
    from app.jobs.stopping import StopRequest

    settings, redis, storage = console_of(app_env)
    app = make_app()
    client, operator = app.test_client(), _token(app, "olga", "operator")
    queued = client.post("/api/setting/backup", headers=operator).get_json()["job_id"]  # no worker yet
    stop = client.post(f"/api/jobs/{queued}/stop", headers=operator)
    assert stop.status_code == 202 and stop.get_json()["status"] == "cancelled"
    assert DatabaseLock(redis, settings.redis_namespace, settings.lock_name).holder() is None
    assert _record(queued).status == "stopped" and _job(client, operator, queued)["status"] == "stopped"

    processes.worker(app_env)
    done = client.post("/api/setting/backup", headers=operator).get_json()["job_id"]
    finished = wait_for_job(redis, done, timeout=60)
    assert _record(queued).status == "stopped"  # the cancelled job never ran
    listed = sorted(o.name for o in storage.list_objects())
    StopRequest(redis, settings.redis_namespace, done).ring("mallory", 60)  # written into Redis by hand
    time.sleep(1.5)
    assert _job(client, operator, done)["status"] == "finished" and _record(done).status == "finished"
    assert sorted(o.name for o in storage.list_objects()) == listed
    assert finished["result"]["filename"] in listed
