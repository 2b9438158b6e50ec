"""Signed manifests: only backups this team's consoles made are trusted, and nothing unattended runs the rest.

The attacks of the security review, each shown to fail: an operator verifying a file someone
dropped into the bucket, a forged manifest with the right sha256, and a file named in 2099 to
be picked by the scheduled verify. The archives used here are harmless pg_dump files; what is
checked is the refusal and the absence of side effects (no job, no scratch database).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.config import ConfigError, Settings
from app.domain import provenance
from app.domain.catalog import Backup, read_json
from app.domain.naming import backup_filename
from tests.helpers import PASSKEY, job_of, restore_api, run_jobs_for, signed_in, storage_of
from tests.support.databases import database_names, new_name

KEY = b"k" * 32
IST = ZoneInfo("Asia/Kolkata")


def listed(filename: str = "x.dump", size: int = 10) -> Backup:
    now = datetime.now(UTC)
    return Backup(filename, size, now, now, "pharmatracker", "staging", has_manifest=True)


def test_a_signed_manifest_is_trusted_and_any_change_to_it_is_not():
    fields = {"filename": "x.dump", "size": 10, "sha256": "ab" * 32, "finished_at": "2026-01-01T00:00:00+00:00"}
    manifest = provenance.sign(fields, KEY)
    assert provenance.provenance_of(listed(), manifest, KEY).trusted
    assert provenance.provenance_of(listed(), manifest, KEY).finished_at == datetime(2026, 1, 1, tzinfo=UTC)
    for change, words in [
        ({"sha256": "cd" * 32}, "signature does not match"),  # someone edits the checksum to match their file
        ({"signature": "hmac-sha256:" + "0" * 64}, "signature does not match"),
        ({"signature": ""}, "not signed"),
    ]:
        forged = {**manifest, **change}
        found = provenance.provenance_of(listed(), forged, KEY)
        assert not found.trusted and words in found.reason
    assert "another file" in provenance.provenance_of(listed("y.dump"), manifest, KEY).reason  # renamed object
    assert "11 bytes" in provenance.provenance_of(listed(size=11), manifest, KEY).reason  # replaced object
    assert "cannot be read" in provenance.provenance_of(listed(), None, KEY).reason  # listed with one, unreadable
    assert "no manifest" in provenance.provenance_of(replace(listed(), has_manifest=False), None, KEY).reason
    assert not provenance.provenance_of(listed(), manifest, b"another key" * 4).trusted


def test_the_signing_key_is_shared_by_setting_it_or_derived_from_the_secret_key():
    base = {"APP_ENV": "staging", "SECRET_KEY": "s" * 40, "DATABASE_URL": "postgresql://postgres@127.0.0.1/db"}
    derived = Settings.from_env(base)
    assert derived.signing_key == Settings.from_env(base).signing_key != base["SECRET_KEY"].encode()
    assert Settings.from_env({**base, "SECRET_KEY": "t" * 40}).signing_key != derived.signing_key
    shared = "team-key-" + "x" * 32
    staging = Settings.from_env({**base, "BACKUP_SIGNING_KEY": shared})
    production = Settings.from_env(
        {**base, "APP_ENV": "production", "SECRET_KEY": "p" * 40, "BACKUP_SIGNING_KEY": shared}
    )
    assert staging.signing_key == production.signing_key == shared.encode()
    assert shared not in repr(staging)
    with pytest.raises(ConfigError, match="BACKUP_SIGNING_KEY"):
        Settings.from_env({**base, "BACKUP_SIGNING_KEY": "short"})


def plain_dump(pg_admin, tmp_path) -> bytes:
    """A pg_dump archive made outside any console (harmless: one small table)."""
    source = new_name()
    pg_admin.execute(f'CREATE DATABASE "{source}"')
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-d", source, "-c",
                        "CREATE TABLE planted (x int); INSERT INTO planted VALUES (1)"], check=True)  # fmt: skip
        archive = tmp_path / "planted.dump"
        subprocess.run(["pg_dump", "-Fc", "-h", "127.0.0.1", "-U", "postgres", "-f", str(archive), source], check=True)
    finally:
        pg_admin.execute(f'DROP DATABASE "{source}"')
    return archive.read_bytes()


def own_name(when: datetime) -> str:
    return backup_filename("pharmatracker", "staging", when, IST)


def audit_rows(app, action: str) -> list[tuple[str, str | None, str | None]]:
    from app.store.models import AuditEvent

    with app.app_context():
        rows = AuditEvent.query.filter_by(action=action).order_by(AuditEvent.id)
        return [(r.outcome, r.target, r.detail) for r in rows]


def queued_jobs(app) -> int:
    from app.jobs.queue import queue_for

    settings = app.config["SETTINGS"]
    with app.app_context():
        from app.services import redis

        return queue_for(settings, redis()).count


def test_an_operator_cannot_verify_a_file_dropped_into_the_bucket(app, make_user, pg_admin, target_db, tmp_path):
    storage = storage_of(app)
    storage.check()
    planted = own_name(datetime.now(UTC) - timedelta(hours=2))  # named like one of ours, no manifest
    storage.put_bytes(planted, plain_dump(pg_admin, tmp_path))
    client, auth = signed_in(app, make_user, "operator", "olga")
    response = client.post(f"/backups/{planted}/verify", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 403
    assert "not trusted (it has no manifest); only an admin may verify it" in response.get_data(as_text=True)
    assert queued_jobs(app) == 0
    run_jobs_for(app)
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []
    assert read_json(storage, planted + ".verified.json") is None
    assert audit_rows(app, "verify")[-1][:2] == ("refused", planted)


def test_a_forged_manifest_with_the_right_checksum_is_untrusted(app, make_user, pg_admin, target_db, tmp_path):
    import hashlib

    storage = storage_of(app)
    storage.check()
    data = plain_dump(pg_admin, tmp_path)
    planted = own_name(datetime.now(UTC) - timedelta(hours=2))
    storage.put_bytes(planted, data)
    forged = {"filename": planted, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "app_name": "pharmatracker", "environment": "staging", "finished_at": datetime.now(UTC).isoformat(),
              "signature": "hmac-sha256:" + "1" * 64}  # fmt: skip
    storage.put_bytes(planted + ".json", json.dumps(forged).encode())
    client, auth = signed_in(app, make_user, "operator", "olga")
    response = client.post(f"/backups/{planted}/verify", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 403 and "signature does not match" in response.get_data(as_text=True)
    assert queued_jobs(app) == 0 and database_names(pg_admin, f"{target_db}_pgc_%") == []

    make_user("ada", "admin")
    admin = app.test_client()
    from tests.helpers import AuthActions

    AuthActions(admin).login("ada")
    page = admin.get(f"/backups/{planted}/restore").get_data(as_text=True)
    assert "untrusted" in page and provenance.UNTRUSTED_WARNING in page
    assert "signature does not match" in page


def test_a_console_made_backup_is_trusted_and_an_admin_may_still_verify_a_foreign_one(
    app, make_user, pg_admin, target_db, tmp_path
):
    from tests.helpers import backup_run_in_process

    made = backup_run_in_process(app)["result"]["filename"]
    manifest = json.loads(storage_of(app).get_bytes(made + ".json"))
    assert manifest["signature"].startswith("hmac-sha256:")
    client, auth = signed_in(app, make_user, "admin", "ada")
    page = client.get(f"/backups/{made}/restore").get_data(as_text=True)
    assert 'class="mark trusted">trusted' in page and provenance.UNTRUSTED_WARNING not in page

    foreign = own_name(datetime.now(UTC) - timedelta(days=1))
    storage_of(app).put_bytes(foreign, plain_dump(pg_admin, tmp_path))
    response = client.post(f"/backups/{foreign}/verify", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 303
    assert audit_rows(app, "verify")[-1] == ("requested", foreign, "untrusted backup: it has no manifest")
    run_jobs_for(app)
    report = json.loads(storage_of(app).get_bytes(foreign + ".verified.json"))
    assert report["trusted"] is False and report["rows"] == {"public.planted": 1}
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []


def test_restoring_an_untrusted_backup_needs_the_passkey_and_is_audited_as_untrusted(
    app, make_user, token_for, pg_admin, tmp_path
):
    from tests.helpers import backup_run_in_process

    make_user("ada", "admin")
    headers = token_for("ada")
    old = own_name(datetime.now(UTC) - timedelta(days=3))  # e.g. a file of the old system
    storage_of(app).put_bytes(old, plain_dump(pg_admin, tmp_path))
    backup_run_in_process(app)  # the safety backup
    client = app.test_client()
    assert restore_api(client, headers, old, passkey="wrong").status_code == 403
    response = restore_api(client, headers, old, passkey=PASSKEY)
    assert response.status_code == 202
    assert audit_rows(app, "restore")[-1] == ("requested", old, "untrusted backup: it has no manifest")
    run_jobs_for(app)
    status = job_of(app, response.get_json()["job_id"])
    assert status["status"] == "finished" and status["result"]["trusted"] is False
    assert provenance.UNTRUSTED_WARNING in status["warning"]
    assert "untrusted backup (it has no manifest)" in audit_rows(app, "restore")[-1][2]


def test_the_scheduled_verify_skips_a_future_dated_unsigned_file_and_an_older_name(make_app, redis_server):
    from app.jobs import runtime
    from app.scheduler import scheduled_verify
    from tests.helpers import backup_run_in_process

    app = make_app(VERIFY_SCHEDULE="0 3 * * *")
    made = backup_run_in_process(app)["result"]["filename"]
    storage = storage_of(app)
    bait = own_name(datetime(2099, 1, 1, tzinfo=UTC))  # sorts first by its name
    storage.put_bytes(bait, b"PGDMP planted")
    with app.app_context():
        runtime.configure(app)
        job_id = scheduled_verify()
    assert job_of(app, job_id)["filename"] == made
    run_jobs_for(app)
    assert json.loads(storage.get_bytes(made + ".verified.json"))["trusted"] is True
    assert read_json(storage, bait + ".verified.json") is None

    assert provenance.dated_in_future(Backup(bait, 1, datetime.now(UTC), datetime(2099, 1, 1, tzinfo=UTC),
                                             "pharmatracker", "staging", False), datetime.now(UTC))  # fmt: skip


def test_a_worker_role_that_is_not_a_superuser_backs_up_verifies_and_restores(
    make_app, make_user, token_for, pg_admin, target_db
):
    """The role the README recommends: CREATEDB and owner of the target, nothing more."""
    import psycopg

    from tests.helpers import backup_run_in_process
    from tests.support.databases import PG, table_fingerprint

    role = new_name("pgct_worker")
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN CREATEDB')
    try:
        pg_admin.execute(f'ALTER DATABASE "{target_db}" OWNER TO "{role}"')
        with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
            for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall():
                conn.execute(f'ALTER TABLE "{table}" OWNER TO "{role}"')  # sequences follow their tables
        app = make_app(DATABASE_URL=f"postgresql://{role}@127.0.0.1:5432/{target_db}")
        before = table_fingerprint(target_db)
        made = backup_run_in_process(app)
        assert made["status"] == "finished", made["error"]
        client, auth = signed_in(app, make_user, "admin", "ada")
        assert client.post(f"/backups/{made['filename']}/verify",
                           data={"csrf_token": auth.csrf_token("/")}).status_code == 303  # fmt: skip
        run_jobs_for(app)
        report = json.loads(storage_of(app).get_bytes(made["filename"] + ".verified.json"))
        assert report["trusted"] is True and report["rows"]["public.customers"] == 2000
        with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
            conn.execute("DELETE FROM orders")
        response = restore_api(app.test_client(), token_for("ada"), made["filename"])
        assert response.status_code == 202, response.get_json()
        run_jobs_for(app)
        status = job_of(app, response.get_json()["job_id"])
        assert status["status"] == "finished", status["error"]
        assert table_fingerprint(target_db) == before
        assert database_names(pg_admin, f"{target_db}_pgc_%") == []
    finally:
        pg_admin.execute(f'ALTER DATABASE "{target_db}" OWNER TO postgres')
        with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
            conn.execute(f'REASSIGN OWNED BY "{role}" TO postgres')
        pg_admin.execute(f'DROP ROLE "{role}"')
