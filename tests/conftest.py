"""Test fixtures on real services: PostgreSQL and Redis on 127.0.0.1, three S3 servers
and PostgreSQL 17 and 18 (tests/support, their fixtures in tests/server_fixtures.py). Helpers
that are not fixtures live in tests/helpers.py and tests/support.

Each test gets its own throw-away database, its own Redis key space (namespace and queue)
and its own bucket or folder, and removes them afterwards. A missing service fails the test
(never skips it), so a green run always means the real parts were exercised.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib

from app.jobs.queue import purge_namespace

# Before importing them, so that their asserts report as well as a test's own.
pytest.register_assert_rewrite("tests.helpers", "tests.server_fixtures", "tests.support")
from tests.helpers import (  # noqa: E402
    CHROMIUM,
    PASSWORD,
    REDIS_URL,
    STORE_FILE,
    AuthActions,
    run_jobs_for,
)
from tests.support import ROOT  # noqa: E402
from tests.support.databases import PG, create_database, database_names, drop_database, new_name  # noqa: E402
from tests.support.oidc import Provider, run_provider  # noqa: E402
from tests.support.processes import Processes, child_env  # noqa: E402
from tests.support.s3_servers import create_bucket, remove_bucket  # noqa: E402

pytest_plugins = ["tests.server_fixtures"]


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


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "processes" in item.fixturenames:  # gunicorn, workers: seconds each, so `-m "not slow"` can skip them
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def target_db(request, pg_admin) -> Iterator[str]:
    """A throw-away target database with sample rows, dropped afterwards.

    A test marked `web_only` (sign-in, roles, forms) never reaches the target database: it gets
    the name of one that does not exist, and nothing is created.
    """
    if request.node.get_closest_marker("web_only"):
        yield new_name("pgct_absent")
        return
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


# --------------------------------------------------------------------------- S3 (see tests/support/s3_servers.py)


@pytest.fixture
def s3_server(s3_endpoints) -> Iterator[dict[str, str]]:
    """A fresh bucket on the moto server (for console behaviour, not the store's); yields its settings."""
    endpoint = s3_endpoints["moto"]
    bucket = create_bucket(endpoint)
    yield endpoint.env(bucket)
    remove_bucket(endpoint, bucket)


# --------------------------------------------------------------------------- the app


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """A console store brought to this release's revision by `flask --app wsgi db upgrade`, once.

    Each test gets a copy (see app_env): the same file the real command makes, without running
    the migrations again for every test.
    """
    instance = tmp_path_factory.mktemp("store-template")
    env = {"INSTANCE_PATH": str(instance), "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres"}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT, env=child_env(env), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return instance / STORE_FILE


@pytest.fixture
def app_env(target_db, redis_ns, tmp_path, migrated_store) -> dict[str, str]:
    """Environment variables for a console on this test's database, Redis space and folder.

    Its instance folder starts with a current console store, as after `db upgrade` at boot.
    """
    (tmp_path / "instance").mkdir()
    shutil.copyfile(migrated_store, tmp_path / "instance" / STORE_FILE)
    return {
        "APP_ENV": "staging",
        "APP_NAME": "pharmatracker",
        "SECRET_KEY": uuid.uuid4().hex,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{target_db}",
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": redis_ns,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "BACKUP_STORAGE_URL": (tmp_path / "backups").as_uri(),
        "RESTORE_TMP_DIR": str(tmp_path / "restore-tmp"),  # each test's restores download into its own folder
        "RESTORE_PASSKEY": "test-passkey-0451",
        "JOB_TIMEOUT_SECONDS": "120",
        "BACKUP_MIN_INTERVAL_SECONDS": "0",  # many tests back up quickly; tests/store/test_history.py sets it
        # The default (admins) sends every admin to two-factor enrolment first; the tests of that
        # (tests/accounts/test_second_factor.py) set it, the others sign admins in with a password alone.
        "REQUIRE_2FA": "none",
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
def console_of(make_app):
    """(settings, redis, storage) of the console `env` configures, in an app context on its store until the
    test ends: `start_job` records each request there, and the worker process claims it before it acts."""
    from app import services

    contexts = []

    def enter(env: dict[str, str]):
        context = make_app(**env).app_context()
        context.push()
        contexts.append(context)
        return services.settings(), services.redis(), services.storage()

    yield enter
    for context in reversed(contexts):
        context.pop()


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
    from app.accounts.people import create_user

    def make(username: str, role: str = "viewer", password: str = PASSWORD):
        with app.app_context():
            return create_user(username, role, password, created_by="test").id

    return make


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def token_for(app):
    from app.extensions import db
    from app.store.models import ApiToken, User

    def issue(username: str) -> dict[str, str]:
        with app.app_context():
            user = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
            record, plain = ApiToken.issue(user)
            db.session.add(record)
            db.session.commit()
        return {"Authorization": f"Bearer {plain}"}

    return issue


# --------------------------------------------------------------------------- an OpenID Connect provider


@pytest.fixture
def oidc_provider() -> Iterator[Provider]:
    with run_provider() as provider:
        yield provider


# --------------------------------------------------------------------------- jobs and processes


@pytest.fixture
def run_jobs(app):
    """Run every queued job to completion in this process (RQ's SimpleWorker, burst mode)."""
    from app.jobs import runtime

    yield lambda: run_jobs_for(app)
    runtime.configure(None)


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


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
