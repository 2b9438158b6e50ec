"""The fault matrix: real worker processes against a flaky S3, a missing PostgreSQL, a worker
killed at other phases. Each asserts that nothing was lost and the console still answers."""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.helpers import wait_for, wait_for_job
from tests.support.databases import PG, database_names, table_fingerprint


class FlakyS3:
    """A proxy in front of moto's server that misbehaves on purpose.

    `fail_next` requests answer 503 (S3's "slow down"), `always_fail` answers 503 forever, and
    `delay` slows every ranged GET (a slow download) so a test can act mid-transfer. `hold`
    (method, path → seconds) slows chosen requests, to keep a job in one phase.
    """

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.fail_next = 0
        self.always_fail = False
        self.delay = 0.0
        self.hold = lambda method, path: 0.0
        self.seen = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.seen += 1
                if proxy.delay and self.command == "GET" and "Range" in self.headers:
                    time.sleep(proxy.delay)
                time.sleep(proxy.hold(self.command, self.path))
                if proxy.always_fail or proxy.fail_next > 0:
                    proxy.fail_next = max(0, proxy.fail_next - 1)
                    error = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()



def test_s3_answering_503_for_a_while_is_retried_and_the_backup_completes(app_env, slow_s3, processes, console_of):
    from app.jobs.queue import start_job

    proxy, s3 = slow_s3
    env = {**app_env, **s3}
    settings, redis, storage = console_of(env)
    processes.worker(env)
    proxy.fail_next = 2  # S3 says "slow down" twice, then recovers
    final = wait_for_job(redis, start_job(settings, redis, "backup", "olga"), timeout=120)
    assert proxy.seen > 2
    assert [o.name for o in storage.list_objects()] == [
        final["result"]["filename"],
        final["result"]["filename"] + ".json",
    ]


def test_s3_answering_503_for_good_fails_clearly_and_leaves_nothing(app_env, slow_s3, processes, target_db, console_of):
    from app.jobs.locks import DatabaseLock
    from app.jobs.queue import start_job

    proxy, s3 = slow_s3
    env = {**app_env, **s3}
    settings, redis, storage = console_of(env)
    processes.worker(env)
    proxy.always_fail = True
    final = wait_for_job(redis, start_job(settings, redis, "backup", "olga"), "failed", timeout=180)
    assert "SlowDown" in final["error"] or "503" in final["error"]
    proxy.always_fail = False
    assert storage.list_objects() == []
    assert DatabaseLock(redis, settings.redis_namespace, target_db).holder() is None


def test_a_worker_killed_mid_download_leaves_the_live_database_and_no_temp_file(
    app_env, slow_s3, processes, target_db, pg_admin, console_of, tmp_path
):
    from app.jobs.queue import job_status, start_job

    proxy, s3 = slow_s3
    restore_tmp = tmp_path / "restore-tmp"
    env = {**app_env, **s3, "RESTORE_TMP_DIR": str(restore_tmp)}
    settings, redis, _ = console_of(env)
    first = processes.worker(env, name="worker-1")
    backup = wait_for_job(redis, start_job(settings, redis, "backup", "olga"), timeout=120)["result"]["filename"]
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 3 = 0")
    before = table_fingerprint(target_db)
    proxy.delay = 5  # every ranged read now takes 5 s
    job_id = start_job(settings, redis, "restore", "ada", filename=backup)
    wait_for(lambda: job_status(redis, job_id)["progress"]["phase"] == "downloading", timeout=60,
             message="the download to start")  # fmt: skip
    assert list(restore_tmp.glob("restore-*"))  # the partial archive exists
    processes.kill(first)
    proxy.delay = 0
    processes.worker(env, name="worker-2")
    final = wait_for_job(redis, job_id, "failed", timeout=120)
    assert "worker running this job stopped" in final["error"]
    assert table_fingerprint(target_db) == before
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []
    assert not list(restore_tmp.glob("restore-*"))


def test_postgresql_refusing_connections_fails_the_job_and_the_console_still_answers(make_app, app_env, make_user):
    from tests.helpers import AuthActions, backup_run_in_process
    from tests.support.processes import free_port

    app = make_app(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/{app_env['DATABASE_URL'].rsplit('/', 1)[1]}"
    )
    status = backup_run_in_process(app)
    assert status["status"] == "failed"
    assert status["error"].startswith("database error:") and "refused" in status["error"].lower()
    make_user("vic", "viewer")
    client = app.test_client()
    AuthActions(client).login("vic")
    assert client.get("/").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["down"] == ["database"]


def test_a_restore_folder_without_room_even_for_the_table_of_contents_refuses_and_changes_nothing(
    make_app, make_user, token_for, target_db, pg_admin, tmp_path
):
    """No room for a copy of the archive: it would stream, but pg_restore cannot read its table of contents
    from the 2 KB that half of a 4 KB disk holds. Refused with the numbers and what to set, nothing filled."""
    from tests.helpers import backup_run_in_process, restore_through_api, tiny_disk

    with tiny_disk(tmp_path / "restore-tmp", "4k") as restore_tmp:
        app = make_app(RESTORE_TMP_DIR=str(restore_tmp))
        filename = backup_run_in_process(app)["result"]["filename"]
        before = table_fingerprint(target_db)
        make_user("ada", "admin")
        status = restore_through_api(app, app.test_client(), token_for("ada"), filename)
        assert status["status"] == "failed"
        assert f"from its first 2.0 KB, half the free space in {restore_tmp} (4.0 KB free)" in status["error"]
        assert "set RESTORE_TMP_DIR to a folder with more free space; nothing was changed" in status["error"]
        assert table_fingerprint(target_db) == before
        assert database_names(pg_admin, f"{target_db}_pgc_%") == []
        assert list(restore_tmp.iterdir()) == []


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own (with an append-only file), so it can be restarted."""
    import shutil
    import subprocess

    from tests.support.processes import free_port

    port = free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--appendonly", "yes", "--save", "", "--dir", str(folder)]  # fmt: skip

    class Server:
        url = f"redis://127.0.0.1:{port}/0"

        def start(self):
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            import redis

            wait_for(lambda: _pings(redis.Redis.from_url(self.url)), timeout=10, message="redis to start")

        def stop(self):
            self.proc.terminate()
            self.proc.wait(timeout=10)

    server = Server()
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_redis_restarted_mid_backup_the_job_still_finishes(app_env, own_redis, processes, target_db, console_of):
    from app.jobs.queue import job_status, start_job

    env = {**app_env, "REDIS_URL": own_redis.url}
    settings, redis, storage = console_of(env)
    blocker = psycopg.connect(**{**PG, "dbname": target_db})
    blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # hold the dump while Redis restarts
    try:
        processes.worker(env)
        job_id = start_job(settings, redis, "backup", "olga")
        wait_for(lambda: job_status(redis, job_id)["progress"]["phase"] == "dumping", timeout=60,
                 message="the dump to start")  # fmt: skip
        own_redis.stop()
        time.sleep(2)
        own_redis.start()
    finally:
        blocker.close()
    final = wait_for_job(redis, job_id, timeout=120)
    assert final["result"]["filename"] in [o.name for o in storage.list_objects()]
    # The worker came through the restart too: it takes the next job.
    assert wait_for_job(redis, start_job(settings, redis, "backup", "olga"), timeout=120)["status"] == "finished"


# Each phase of a job, held by slowing the S3 request that phase makes, then the worker killed.
PHASE_HOLDS = {
    ("backup", "preparing"): lambda method, path: 4.0 if method == "HEAD" and "?" not in path.strip("/") else 0.0,
    ("backup", "recording"): lambda method, path: 4.0 if method == "PUT" and path.endswith(".dump.json") else 0.0,
    ("restore", "checking"): lambda method, path: 4.0 if method == "GET" and "list-type=2" in path else 0.0,
    # The scratch database is made while the archive downloads: killed here, it must go too.
    ("restore", "downloading"): lambda method, path: 4.0 if method == "GET" and path.endswith(".dump") else 0.0,
}


@pytest.mark.parametrize(("kind", "phase"), list(PHASE_HOLDS))
def test_a_worker_killed_in_each_phase_loses_nothing(
    kind, phase, app_env, slow_s3, processes, target_db, pg_admin, console_of
):
    from app.jobs.locks import DatabaseLock
    from app.jobs.queue import job_status, start_job

    proxy, s3 = slow_s3
    env = {**app_env, **s3}
    settings, redis, storage = console_of(env)
    first = processes.worker(env, name="worker-1")
    names = {}
    if kind == "restore":
        names["filename"] = wait_for_job(redis, start_job(settings, redis, "backup", "olga"))["result"]["filename"]
        with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
            conn.execute("DELETE FROM orders WHERE id % 2 = 0")
    before_db = table_fingerprint(target_db)
    before_objects = sorted(o.name for o in storage.list_objects())
    proxy.hold = PHASE_HOLDS[(kind, phase)]
    job_id = start_job(settings, redis, kind, "olga", **names)
    wait_for(lambda: job_status(redis, job_id)["progress"]["phase"] == phase, timeout=60, interval=0.05,
             message=f"the {kind} to reach {phase}")  # fmt: skip
    processes.kill(first)
    proxy.hold = lambda method, path: 0.0
    processes.worker(env, name="worker-2")
    final = wait_for_job(redis, job_id, "failed", timeout=120)
    assert "worker running this job stopped" in final["error"]
    assert table_fingerprint(target_db) == before_db
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []
    assert DatabaseLock(redis, settings.redis_namespace, target_db).holder() is None
    assert sorted(o.name for o in storage.list_objects()) == before_objects  # no partial backup listed


def test_s3_failing_mid_download_fails_the_restore_and_changes_nothing(
    app_env, slow_s3, processes, target_db, pg_admin, console_of
):
    from app.jobs.queue import job_status, start_job

    proxy, s3 = slow_s3
    env = {**app_env, **s3}
    settings, redis, _ = console_of(env)
    processes.worker(env)
    backup = wait_for_job(redis, start_job(settings, redis, "backup", "olga"))["result"]["filename"]
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")
    before = table_fingerprint(target_db)
    proxy.delay = 2
    job_id = start_job(settings, redis, "restore", "olga", filename=backup)
    wait_for(lambda: job_status(redis, job_id)["progress"]["phase"] == "downloading", timeout=60, interval=0.05,
             message="the download to start")  # fmt: skip
    proxy.always_fail = True  # S3 goes bad in the middle of the transfer
    final = wait_for_job(redis, job_id, "failed", timeout=180)
    proxy.always_fail = False
    assert "SlowDown" in final["error"] or "503" in final["error"]
    assert "was not touched" in final["error"]
    assert table_fingerprint(target_db) == before
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []


def test_a_worker_killed_in_the_middle_of_the_swap_gets_the_live_database_back(
    app_env, s3_server, processes, target_db, pg_admin, console_of
):
    """The worst moment: the live database is renamed aside and the scratch not yet in place."""
    from app.jobs.queue import job_status, start_job

    env = {**app_env, **s3_server}
    settings, redis, _ = console_of(env)
    first = processes.worker(env, name="worker-1")
    backup = wait_for_job(redis, start_job(settings, redis, "backup", "olga"))["result"]["filename"]
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")
    before = table_fingerprint(target_db)
    job_id = start_job(settings, redis, "restore", "ada", filename=backup)
    scratch = wait_for(lambda: job_status(redis, job_id)["status"] == "started"
                       and database_names(pg_admin, f"{target_db}_pgc_restore_%"), timeout=60,
                       interval=0.02, message="the scratch database")[0]  # fmt: skip
    # Hold the scratch's catalog row, so the second rename (scratch -> live) waits on it.
    blocker = psycopg.connect(**PG)
    blocker.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 1000").format(sql.Identifier(scratch)))
    try:
        wait_for(lambda: database_names(pg_admin, f"{target_db}_pgc_previous_%"), timeout=60, interval=0.05,
                 message="the live database to be renamed aside")  # fmt: skip
        assert database_names(pg_admin, target_db) == []  # right now there is no live database
        processes.kill(first)
        # The host is gone: so is its connection, and the rename it was waiting to make.
        pg_admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE query LIKE 'ALTER DATABASE%%RENAME%%' AND pid <> pg_backend_pid()")  # fmt: skip
    finally:
        blocker.rollback()
        blocker.close()
    processes.worker(env, name="worker-2")
    final = wait_for_job(redis, job_id, "failed", timeout=120)
    assert "was put back as it was" in final["error"]
    assert table_fingerprint(target_db) == before
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []
    with psycopg.connect(**{**PG, "dbname": target_db}) as conn:  # open to connections again
        assert conn.execute("SELECT 1").fetchone() == (1,)
