"""The console store's schema is Alembic's (`flask --app wsgi db upgrade`): stores written by the
releases before migrations upgrade in place, upgrades repeat safely, the models and the
migrations agree, and nothing runs on a store that is behind. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from psycopg import sql

from tests.helpers import PASSWORD
from tests.support import ROOT
from tests.support.databases import drop_database, new_name
from tests.support.processes import child_env

# Releases that landed before migrations: each made its store with create_all and kept no revision.
# 11ca1fb predates users.session_epoch and login_sessions; a951972 is the last release without Alembic.
PREVIOUS_RELEASES = ["11ca1fb", "a951972"]

# Runs in the old release's checkout, so it names that release's modules (app.models, app.audit).
WRITE_OLD_STORE = """
from app import create_app
from app.extensions import db
from app.models import ConsoleSetting
from app import audit
app = create_app()
with app.app_context():
    db.session.add(ConsoleSetting(key="backup_schedule", value="15 3 * * *", updated_by="olga"))
    db.session.commit()
    audit.record("backup", "ok", username="olga", target="old.dump", detail="from the old release")
"""


def flask(cwd: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=cwd, env=child_env(env), input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def checkout(release: str, into: Path) -> Path:
    """The app as it was at `release`, from this repository's history."""
    archive = subprocess.run(["git", "archive", release, "app", "wsgi.py"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.fixture(params=["sqlite", "postgresql"])
def store_env(request, tmp_path, target_db, pg_admin) -> Iterator[dict[str, str]]:
    """Settings for a console whose store is a new, empty SQLite file or PostgreSQL database."""
    env = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{target_db}",
        "SECRET_KEY": "migration-test-key",
        "APP_ENV": "staging",
        "APP_NAME": "pharmatracker",
        "REQUIRE_2FA": "none",  # the old release's admin signs in with the password it had (no enrolment step)
    }
    if request.param == "sqlite":
        yield env
        return
    store = new_name("pgct_store")
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(store)))
    yield {**env, "CONSOLE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{store}"}
    drop_database(pg_admin, store)


@pytest.mark.parametrize("release", PREVIOUS_RELEASES)
def test_a_store_written_by_an_earlier_release_upgrades_in_place(release, store_env, tmp_path, monkeypatch):
    old = checkout(release, tmp_path / f"release-{release}")
    made = flask(old, store_env, "users", "create", "olga", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    token = flask(old, store_env, "tokens", "create", "olga")
    assert token.returncode == 0, token.stderr
    plain = token.stdout.strip()
    wrote = subprocess.run([sys.executable, "-c", WRITE_OLD_STORE], cwd=old, env=child_env(store_env),
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr

    # This release refuses the old store until it is upgraded, with one line saying what to run…
    refused = flask(ROOT, store_env, "users", "create", "someone", "--role", "viewer", "--password-stdin",
                    stdin=PASSWORD)  # fmt: skip
    assert refused.returncode != 0
    assert "the console store is at revision none (empty), this release needs" in refused.stderr
    assert "run flask --app wsgi db upgrade" in refused.stderr and "Traceback" not in refused.stderr

    # …then upgrades it in place, twice without harm.
    for _ in range(2):
        upgraded = flask(ROOT, store_env, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
    checked = flask(ROOT, store_env, "db", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    from app import create_app
    from app.extensions import db
    from app.store.models import AuditEvent, ConsoleSetting
    from tests.helpers import AuthActions

    for name in ("DATABASE_URL", "CONSOLE_DATABASE_URL", "INSTANCE_PATH"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({**store_env, "TESTING": True})
    try:
        client = app.test_client()
        assert AuthActions(client).login("olga").status_code == 302  # the same user signs in…
        assert client.get("/").status_code == 200
        api = app.test_client().get("/api/setting/backups", headers={"Authorization": f"Bearer {plain}"})
        assert api.status_code == 200  # …and the same API token works
        with app.app_context():
            assert db.session.get(ConsoleSetting, "backup_schedule").value == "15 3 * * *"
            assert db.session.execute(
                db.select(AuditEvent).where(AuditEvent.detail == "from the old release")
            ).scalar_one().username == "olga"
    finally:
        with app.app_context():
            db.engine.dispose()


def test_a_new_store_is_created_by_db_upgrade_and_matches_the_models(store_env):
    assert flask(ROOT, store_env, "db", "upgrade").returncode == 0
    current = flask(ROOT, store_env, "db", "current")
    assert current.returncode == 0 and "(head)" in current.stdout
    # `db check` is Alembic's comparison of the models with the migrated schema.
    checked = flask(ROOT, store_env, "db", "check")
    assert checked.returncode == 0 and "No new upgrade operations detected" in checked.stdout + checked.stderr


def test_processes_started_against_a_store_that_is_behind_exit_with_one_line(store_env):
    line = "this release needs"
    web = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=child_env(store_env),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert web.returncode != 0 and web.stderr.strip().count("\n") == 0 and line in web.stderr
    for command in (["worker", "--burst"], ["scheduler"], ["tokens", "create", "x"], ["storage", "check"]):
        done = flask(ROOT, store_env, *command)
        assert done.returncode != 0 and line in done.stderr, command
        assert "Traceback" not in done.stderr


def test_two_upgrades_at_once_on_a_new_store_both_succeed(store_env):
    """Web and worker containers each run `db upgrade` at boot: the migration lock serialises them."""
    procs = [
        subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                         env=child_env(store_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert "(head)" in flask(ROOT, store_env, "db", "current").stdout
