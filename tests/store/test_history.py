"""History an operator cannot erase, and other environments' backups.

Each test replays an attack from the review against the real services and shows it fails: an
operator unpinning, a burst of backups, retention deleting without a trace, and an operator
reaching into another environment's backups.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue

from app.domain.naming import backup_filename
from tests.helpers import IST, audit_rows, backup_run_in_process, old_backups, run_jobs_for, signed_in, storage_of


def queued(app) -> int:
    settings = app.config["SETTINGS"]
    with app.app_context():
        from app.services import redis

        return Queue(settings.redis_namespace, connection=redis()).count


# --------------------------------------------------------------------------- unpinning


def test_an_operator_cannot_unpin_and_the_pin_stays(make_app, make_user):
    from app.domain.catalog import read_pin

    app = make_app(BACKUP_MIN_INTERVAL_SECONDS="0")
    [name] = old_backups(app, [1])
    operator, op_auth = signed_in(app, make_user, "operator", "olga")
    pinned = operator.post(f"/backups/{name}/pin", data={"note": "keep", "csrf_token": op_auth.csrf_token("/")})
    assert pinned.status_code == 303  # pinning stays an operator's

    refused = operator.post(f"/backups/{name}/unpin", data={"csrf_token": op_auth.csrf_token("/")})
    assert refused.status_code == 403 and "admin" in refused.get_data(as_text=True)
    assert read_pin(storage_of(app), name)["note"] == "keep"
    assert audit_rows(app, "unpin") == []
    assert "/unpin" not in operator.get("/").get_data(as_text=True)  # no button that only answers 403

    admin, admin_auth = signed_in(app, make_user, "admin", "ada")
    assert f"/backups/{name}/unpin" in admin.get("/").get_data(as_text=True)
    done = admin.post(f"/backups/{name}/unpin", data={"csrf_token": admin_auth.csrf_token("/")})
    assert done.status_code == 303 and read_pin(storage_of(app), name) is None


# --------------------------------------------------------------------------- backup interval


def test_a_backup_burst_gets_429_but_the_scheduled_backup_is_accepted(make_app, make_user, token_for):
    from app.jobs import runtime
    from app.scheduler import scheduled_backup

    app = make_app(BACKUP_MIN_INTERVAL_SECONDS="60")
    make_user("olga", "operator")
    api = app.test_client()
    headers = token_for("olga")
    first = api.post("/api/setting/backup", headers=headers)
    assert first.status_code == 202
    second = api.post("/api/setting/backup", headers=headers)
    assert second.status_code == 429  # before the 409 of the running job: the burst is what is refused
    error = second.get_json()["error"]
    wait = re.search(r"^Wait (\d+) s|^Wait 1 min:", error)
    assert wait and 1 <= int(wait.group(1) or 60) <= 60 and "at least 1 min apart" in error
    assert "BACKUP_MIN_INTERVAL_SECONDS" not in error  # a setting only admins can change: named to them only
    assert queued(app) == 1  # nothing enqueued for the second
    assert [e.outcome for e in audit_rows(app, "backup")] == ["requested", "refused"]

    run_jobs_for(app)  # the first finishes; the interval counts from its finish too
    again = api.post("/api/setting/backup", headers=headers)
    assert again.status_code == 429 and queued(app) == 0

    page, page_auth = signed_in(app, make_user, "operator", "otto")
    refused = page.post("/backups", data={"csrf_token": page_auth.csrf_token("/")})
    assert refused.status_code == 429
    assert re.search(r'class="flash flash-error"[^>]*>[^<]*Wait (\d+ s|1 min)', refused.get_data(as_text=True))

    cli = app.test_cli_runner().invoke(args=["backup", "create"])
    assert cli.exit_code != 0 and "Wait" in cli.output and queued(app) == 0

    with app.app_context():
        runtime.configure(app)
        scheduled = scheduled_backup()
    assert scheduled is not None and queued(app) == 1
    run_jobs_for(app)
    dumps = [o.name for o in storage_of(app).list_objects() if o.name.endswith(".dump")]
    assert len(dumps) == 2


def test_the_backup_interval_is_checked_in_settings():
    from app.config import ConfigError, Settings

    base = {"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}
    assert Settings.from_env(base).backup_min_interval_seconds == 60
    assert Settings.from_env({**base, "BACKUP_MIN_INTERVAL_SECONDS": "0"}).backup_min_interval_seconds == 0
    for bad in ("-1", "1.5", "soon"):
        with pytest.raises(ConfigError, match="BACKUP_MIN_INTERVAL_SECONDS"):
            Settings.from_env({**base, "BACKUP_MIN_INTERVAL_SECONDS": bad})


# --------------------------------------------------------------------------- retention, audited


def test_each_file_retention_deletes_is_in_the_audit_log_with_its_backup(make_app):
    app = make_app(MAX_BACKUP_FILES="1", BACKUP_MIN_INTERVAL_SECONDS="0")
    names = old_backups(app, [3, 2, 1])
    status = backup_run_in_process(app)
    made, deleted = status["result"]["filename"], status["result"]["deleted"]
    assert sorted(deleted) == sorted(names)
    rows = audit_rows(app, "retention-delete")
    assert sorted(r.target for r in rows) == sorted(names)
    for row in rows:
        assert row.outcome == "ok" and made in row.detail and row.job_id == status["id"]


# --------------------------------------------------------------------------- other environments


def test_an_operator_cannot_touch_another_environments_backups_but_an_admin_can_pin(make_app, make_user):
    from app.domain.catalog import read_pin

    app = make_app(BACKUP_MIN_INTERVAL_SECONDS="0")
    storage = storage_of(app)
    production = old_backups(app, [1], env="production")[0]
    other_app = backup_filename("billing", "staging", datetime.now(UTC) - timedelta(hours=2), IST)
    storage.put_bytes(other_app, b"old")
    admin, admin_auth = signed_in(app, make_user, "admin", "ada")
    operator, op_auth = signed_in(app, make_user, "operator", "olga")

    for name in (production, other_app):
        assert name in operator.get("/").get_data(as_text=True)  # listing is unchanged
        assert f"/backups/{name}/download" not in operator.get("/").get_data(as_text=True)
        download = operator.get(f"/backups/{name}/download")
        assert download.status_code == 403 and "belongs to another environment" in download.get_data(as_text=True)
        pin = operator.post(f"/backups/{name}/pin", data={"note": "mine", "csrf_token": op_auth.csrf_token("/")})
        assert pin.status_code == 403 and read_pin(storage, name) is None
        verify = operator.post(f"/backups/{name}/verify", data={"csrf_token": op_auth.csrf_token("/")})
        assert verify.status_code == 403 and "belongs to another environment" in verify.get_data(as_text=True)

        pinned = admin.post(f"/backups/{name}/pin", data={"note": "theirs", "csrf_token": admin_auth.csrf_token("/")})
        assert pinned.status_code == 303 and read_pin(storage, name)["note"] == "theirs"
        unpin = operator.post(f"/backups/{name}/unpin", data={"csrf_token": op_auth.csrf_token("/")})
        assert unpin.status_code == 403 and read_pin(storage, name)["note"] == "theirs"
        assert admin.get(f"/backups/{name}/download").status_code == 200

    assert queued(app) == 0  # no verify was enqueued
    assert {(e.username, e.target) for e in audit_rows(app, "download")} == {("ada", production), ("ada", other_app)}
    assert {e.username for e in audit_rows(app, "pin")} == {"ada"}
    assert audit_rows(app, "unpin") == [] and audit_rows(app, "verify") == []
