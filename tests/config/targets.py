"""Several targets in one console for the tests: a TARGETS_FILE over three databases, people with per-target roles."""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers import AuthActions, job_of, log_in, run_jobs_for
from tests.support.databases import PG, create_database, database_names, drop_database, new_name

PASSKEYS = {"staging": "staging-passkey-1", "production": "production-passkey-2", "reports": "reports-passkey-3"}


def targets_toml(databases: dict[str, str], bucket_url: str, folder_url: str, default: str = "staging") -> str:
    storage = {"staging": bucket_url, "production": bucket_url, "reports": folder_url}
    environment = {"staging": "staging", "production": "production", "reports": "staging"}
    app_name = {"staging": "pharmatracker", "production": "pharmatracker", "reports": "reports"}
    tables = [f'default = "{default}"']
    for name, dbname in databases.items():
        tables.append(f"""
[targets.{name}]
environment = "{environment[name]}"
database_url = "postgresql://postgres@127.0.0.1:5432/{dbname}"
storage_url = "{storage[name]}"
app_name = "{app_name[name]}"
restore_passkey_env = "{name.upper()}_PASSKEY"
""")
    return "\n".join(tables)


def make_person(app, username: str, role: str, grants: dict[str, str] | None = None):
    """A new user with a global role and per-target roles, and a client signed in as them."""
    from app.accounts import people
    from app.accounts.people import create_user
    from tests.helpers import PASSWORD

    with app.app_context():
        user = create_user(username, role, PASSWORD, created_by="test")
        for target, target_role in (grants or {}).items():
            people.grant_target_role(user, target, target_role, "test", ["staging", "production", "reports"])
    client = app.test_client()
    log_in(app, client, username)
    return client, AuthActions(client)


def token(app, username: str, role: str | None = None) -> dict[str, str]:
    from app.accounts import people
    from app.accounts.people import find_user

    with app.app_context():
        plain = people.create_token(find_user(username), "test", role, None, "test")
    return {"Authorization": f"Bearer {plain}"}


def backed_up(app, client, headers, target: str) -> str:
    answer = client.post(f"/api/targets/{target}/backup", headers=headers)
    assert answer.status_code == 202, answer.get_json()
    run_jobs_for(app)
    status = job_of(app, answer.get_json()["job_id"])
    assert status["status"] == "finished", status["error"]
    assert status["target"] == target
    return status["result"]["filename"]


def delete_customers(dbname: str, above: int) -> None:
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE customer_id > %s", (above,))
        conn.execute("DELETE FROM customers WHERE id > %s", (above,))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def databases(pg_admin, target_db):
    """production is the conftest's target database; staging and reports are made here."""
    made = {"staging": new_name(), "reports": new_name()}
    create_database(pg_admin, made["staging"], rows=300)
    create_database(pg_admin, made["reports"], rows=100)
    yield {"staging": made["staging"], "production": target_db, "reports": made["reports"]}
    for name in made.values():
        drop_database(pg_admin, name)
        for leftover in database_names(pg_admin, f"{name}%"):
            drop_database(pg_admin, leftover)


@pytest.fixture
def targets_env(app_env, databases, s3_server, tmp_path) -> dict[str, str]:
    """The environment of a console with three targets (as the web, worker and CLI processes get it)."""
    path = tmp_path / "targets.toml"
    path.write_text(targets_toml(databases, s3_server["BACKUP_STORAGE_URL"] + "/pharmatracker",
                                 (tmp_path / "reports-backups").as_uri()))  # fmt: skip
    env = {k: v for k, v in app_env.items() if k not in ("DATABASE_URL", "BACKUP_STORAGE_URL", "RESTORE_PASSKEY")}
    return {**env, **{k: v for k, v in s3_server.items() if k != "BACKUP_STORAGE_URL"}, "TARGETS_FILE": str(path),
            **{f"{name.upper()}_PASSKEY": key for name, key in PASSKEYS.items()}}  # fmt: skip


@pytest.fixture
def console(make_app, targets_env):
    app = make_app(**targets_env)
    yield app
    from app.jobs import runtime

    runtime.configure(None)
