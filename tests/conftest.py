"""Test fixtures on real services: PostgreSQL and Redis on 127.0.0.1, three S3 servers
(tests/s3_servers.py), PostgreSQL 17 and 18 (tests/pg_servers.py).

Each test gets its own throw-away database, its own Redis key space (namespace and queue)
and its own bucket or folder, and removes them afterwards. A missing service fails the test
(never skips it), so a green run always means the real parts were exercised.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from psycopg import sql

from app.jobs.queue import purge_namespace

pytest.register_assert_rewrite("tests.s3_servers", "tests.pg_servers", "tests.notify_servers")
from tests.s3_servers import create_bucket, free_port, remove_bucket  # noqa: E402 - after the rewrite hook, so its asserts report well

pytest_plugins = ["tests.s3_servers", "tests.pg_servers", "tests.notify_servers"]

ROOT = Path(__file__).resolve().parent.parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"


# --------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(**PG, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not answering on 127.0.0.1:5432 (start it; see README): {exc}")
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def redis_server() -> redis_lib.Redis:
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis_lib.ConnectionError as exc:
        pytest.fail(f"Redis is not answering at {REDIS_URL} (start it; see README): {exc}")
    return client


def new_name(prefix: str = "pgct") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(pg_admin: psycopg.Connection, name: str, rows: int = 2000, server: Mapping = PG) -> None:
    """A database with sample rows, made through `pg_admin` on `server` (connection params like PG)."""
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(**{**server, "dbname": name}, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE,
                                    created_at timestamptz DEFAULT now(), profile jsonb);
            CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                                 total numeric(12,2), note text);
            CREATE INDEX ON orders (customer_id);
            """
        )
        conn.execute(
            """INSERT INTO customers (name, email, profile)
               SELECT 'customer ' || g, 'c' || g || '@example.com', jsonb_build_object('n', g, 'tag', md5(g::text))
               FROM generate_series(1, %(rows)s) g""",
            {"rows": rows},
        )
        conn.execute(
            """INSERT INTO orders (customer_id, total, note)
               SELECT 1 + (g %% %(rows)s), (g * 7 %% 1000) / 3.0, md5(g::text) || md5((g * 3)::text)
               FROM generate_series(1, %(rows)s * 3) g""",
            {"rows": rows},
        )


def drop_database(pg_admin: psycopg.Connection, name: str) -> None:
    pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_names(pg_admin: psycopg.Connection, like: str) -> list[str]:
    rows = pg_admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,)).fetchall()
    return sorted(r[0] for r in rows)


def table_fingerprint(dbname: str, server: Mapping = PG) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every user table's rows."""
    with psycopg.connect(**{**server, "dbname": dbname}) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        result = {}
        for table in tables:
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) FROM {} t"
            ).format(sql.SQL(table))
            count, digest = conn.execute(query).fetchone()
            result[table] = (count, digest)
        return result


@pytest.fixture
def target_db(pg_admin) -> Iterator[str]:
    """A throw-away target database with sample rows, dropped afterwards."""
    name = new_name()
    create_database(pg_admin, name)
    yield name
    drop_database(pg_admin, name)
    for leftover in database_names(pg_admin, f"{name}%"):  # scratch or set-aside copies
        drop_database(pg_admin, leftover)


@pytest.fixture
def redis_ns(redis_server) -> Iterator[str]:
    namespace = new_name("pgct-ns").replace("_", "-")
    yield namespace
    purge_namespace(redis_server, namespace)


# --------------------------------------------------------------------------- S3 (see tests/s3_servers.py)


@pytest.fixture
def s3_server(s3_endpoints) -> Iterator[dict[str, str]]:
    """A fresh bucket on the moto server (for console behaviour, not the store's); yields its settings."""
    endpoint = s3_endpoints["moto"]
    bucket = create_bucket(endpoint)
    yield endpoint.env(bucket)
    remove_bucket(endpoint, bucket)


# --------------------------------------------------------------------------- the app


@pytest.fixture
def app_env(target_db, redis_ns, tmp_path) -> dict[str, str]:
    """Environment variables for a console on this test's database, Redis space and folder."""
    return {
        "APP_ENV": "staging",
        "APP_NAME": "pharmatracker",
        "SECRET_KEY": uuid.uuid4().hex,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{target_db}",
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": redis_ns,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "BACKUP_STORAGE_URL": (tmp_path / "backups").as_uri(),
        "RESTORE_PASSKEY": "test-passkey-0451",
        "JOB_TIMEOUT_SECONDS": "120",
        "BACKUP_MIN_INTERVAL_SECONDS": "0",  # many tests back up quickly; tests/test_history.py sets it
    }


@pytest.fixture
def make_app(app_env, monkeypatch):
    from app import create_app

    for name in ("DATABASE_URL", "DB_DATABASE", "S3_ENDPOINT_URL", "BACKUP_STORAGE_URL", "RESTORE_PASSKEY"):
        monkeypatch.delenv(name, raising=False)
    apps = []

    def build(**overrides: str):
        flask_app = create_app({**app_env, **overrides, "TESTING": True})
        apps.append(flask_app)
        return flask_app

    yield build
    for flask_app in apps:
        with flask_app.app_context():
            from app.extensions import db

            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    from app.people import create_user

    def make(username: str, role: str = "viewer", password: str = PASSWORD):
        with app.app_context():
            return create_user(username, role, password, created_by="test").id

    return make


class AuthActions:
    """Sign in through the real form, CSRF token included (the flaskr `auth` helper)."""

    def __init__(self, client):
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:
        import re

        page = self.client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
            r'name="csrf_token" value="([^"]+)"', page
        )
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, username: str = "admin", password: str = PASSWORD, next: str = ""):
        token = self.csrf_token("/login")
        return self.client.post(
            "/login", data={"username": username, "password": password, "next": next, "csrf_token": token}
        )

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf_token("/")})


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def token_for(app):
    from app.extensions import db
    from app.models import ApiToken, User

    def issue(username: str) -> dict[str, str]:
        with app.app_context():
            user = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
            record, plain = ApiToken.issue(user)
            db.session.add(record)
            db.session.commit()
        return {"Authorization": f"Bearer {plain}"}

    return issue


# --------------------------------------------------------------------------- jobs and processes


@pytest.fixture
def run_jobs(app):
    """Run every queued job to completion in this process (RQ's SimpleWorker, burst mode)."""
    from app.jobs import runtime

    yield lambda: run_jobs_for(app)
    runtime.configure(None)


def backup_run_in_process(app) -> dict:
    """Enqueue a backup through the jobs layer, run it with SimpleWorker, return its final status."""
    from app.jobs.queue import job_status, start_job
    from app.services import redis, settings

    with app.app_context():
        job_id = start_job(settings(), redis(), "backup", "olga")
    run_jobs_for(app)
    with app.app_context():
        return job_status(redis(), job_id)


def run_jobs_for(app):
    from rq import SimpleWorker

    from app.jobs import runtime
    from app.jobs.queue import worker_queues
    from app.services import redis, settings

    with app.app_context():
        runtime.configure(app)
        SimpleWorker(worker_queues(settings(), redis()), connection=redis()).work(burst=True)


def child_env(env: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
    return {**keep, **env, "PYTHONUNBUFFERED": "1"}


class Processes:
    """Real processes started by a test (worker, gunicorn), stopped at the end; logs kept."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=child_env(env),
            stdout=open(log, "ab"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((proc, log))
        return proc

    def worker(self, env: dict[str, str], name: str = "worker") -> subprocess.Popen:
        return self.start(name, [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], env)

    def web(self, env: dict[str, str]) -> str:
        port = free_port()
        self.start(
            "web",
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "wsgi:app"],
            env,
        )
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/login")
        return base

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the process and everything below it, as when a host is lost.

        RQ's work horse runs in a session of its own, so killing the worker's process group
        alone would leave the horse (and its pg_dump) running: walk the tree instead.
        """
        victims = [proc.pid, *descendants(proc.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        """A clean stop (SIGTERM: RQ finishes the current job first)."""
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    return found


def wait_for_http(url: str, timeout: float = 20) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - a local test server
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def wait_for_job(redis, job_id: str, state: str = "finished", timeout: float = 120) -> dict:
    """Poll the job's status (as the API shows it) until it reaches `state`; fail on the other end."""
    from app.jobs.queue import job_status

    def reached():
        status = job_status(redis, job_id)
        if status["status"] in ("finished", "failed") and status["status"] != state:
            raise AssertionError(f"job {job_id} ended {status['status']}: {status['error']}")
        return status if status["status"] == state else None

    return wait_for(reached, timeout=timeout, interval=0.2, message=f"job {job_id} to be {state}")


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser():
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(15000)
    yield tab
    context.close()
