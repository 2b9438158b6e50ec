"""What each target has of its own: its lock, schedule, alerts, metrics, retention and encryption recipients."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.jobs.queue import queue_for
from tests.config.targets import PASSKEYS, backed_up, delete_customers, make_person, token
from tests.helpers import job_of, run_jobs_for
from tests.support.databases import table_fingerprint as fingerprint


def test_two_targets_on_one_database_share_its_lock(make_app, app_env, target_db, tmp_path):
    path = tmp_path / "same.toml"
    path.write_text("\n".join(f"""
[targets.{name}]
environment = "{name}"
database_url = "postgresql://postgres@127.0.0.1:5432/{target_db}"
storage_url = "{(tmp_path / name).as_uri()}"
""" for name in ("one", "two")))
    app = make_app(TARGETS_FILE=str(path))
    client, _ = make_person(app, "ada", "admin")
    headers = token(app, "ada")
    assert client.post("/api/targets/one/backup", headers=headers).status_code == 202
    busy = client.post("/api/targets/two/backup", headers=headers)
    assert busy.status_code == 409 and "Another backup or restore" in busy.get_json()["error"]


def test_one_scheduler_fires_each_targets_schedule_with_its_name(console, redis_server):
    from app.jobs import runtime
    from app.scheduler import ConsoleScheduler, scheduled_backup
    from app.store.schedule import save_schedule

    settings = console.config["SETTINGS"]
    client, auth = make_person(console, "ada", "admin")
    token = auth.csrf_token("/targets/reports/settings")
    saved = client.post("/targets/reports/settings/backup_schedule",
                        data={"backup-kind": "cron", "backup-cron": "0 3 * * *", "backup-csrf_token": token})
    assert saved.status_code == 303
    assert saved.headers["Location"] == "/targets/reports/settings?saved=backup-schedule#backup-schedule"
    assert "<code>0 3 * * *</code>" in client.get("/targets/reports/").get_data(as_text=True)
    assert "<code>0 3 * * *</code>" not in client.get("/targets/staging/").get_data(as_text=True)
    with console.app_context():
        runtime.configure(console)
        save_schedule("*/5 * * * *", "ada", settings.for_target("production"))
        scheduler = ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup)
        assert sorted(j.name for j in scheduler.get_jobs()) == ["scheduled-backup:production",
                                                                 "scheduled-backup:reports"]  # fmt: skip
        for cron_job in scheduler.get_jobs():
            cron_job.next_enqueue_time = datetime.now(UTC) - timedelta(seconds=1)
        scheduler.enqueue_jobs()
    queued = queue_for(settings, redis_server).get_jobs()
    assert sorted(j.kwargs["target"] for j in queued) == ["production", "reports"]
    run_jobs_for(console)  # each trigger requests its target's backup, which runs too
    from app.store.models import AuditEvent

    with console.app_context():
        done = {e.target_name for e in AuditEvent.query.filter_by(action="backup", outcome="ok", username="scheduler")}
    assert done == {"production", "reports"}


def test_alerts_and_healthz_name_each_target(make_app, targets_env, redis_server, webhook):
    from app.jobs import runtime
    from app.scheduler import check_stale_backups

    url, received = webhook
    app = make_app(**targets_env, ALERT_WEBHOOK_URL=url)
    settings = app.config["SETTINGS"]
    runtime.configure(app)
    with app.app_context():
        assert check_stale_backups(settings.for_target("reports"), redis_server) is True
    run_jobs_for(app)  # the delivery is a job of its own, for the target it names
    runtime.configure(None)
    assert received[0]["title"].startswith("[pgconsole reports · staging] No backup of reports (staging)")
    assert "target: reports (reports)" in received[0]["text"]

    client, _ = make_person(app, "ada", "admin", {"reports": "none"})
    body = client.get("/healthz").get_json()
    assert {"storage:staging", "database:production", "storage", "database"} <= set(body["checks"])
    assert "database:reports" not in body["checks"] and body["checks"]["database"] == "ok"  # over every target
    assert set(body["targets"]) == {"staging", "production"}  # reports is hidden from ada


def test_metrics_have_one_series_per_target(make_app, targets_env):
    from prometheus_client.parser import text_string_to_metric_families

    secret = "metrics-token-for-the-targets-test"
    app = make_app(**targets_env, METRICS_TOKEN=secret)
    client, _ = make_person(app, "ada", "admin")
    backed_up(app, client, token(app, "ada"), "reports")
    text = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {secret}"}).get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    stored = {s.labels["target"]: s.value for s in families["pgconsole_backups_stored"].samples}
    assert stored == {"staging": 0, "production": 0, "reports": 1}
    up = {(s.labels["target"], s.labels["component"]) for s in families["pgconsole_up"].samples if s.value == 1}
    assert {("reports", "storage"), ("production", "database"), ("staging", "storage")} <= up
    assert text.count("# HELP pgconsole_backups_stored ") == 1  # one family, a series per target


def test_retention_is_per_target_and_environment(make_app, targets_env):
    path = Path(targets_env["TARGETS_FILE"])
    production = 'restore_passkey_env = "PRODUCTION_PASSKEY"'
    path.write_text(path.read_text().replace(production, production + "\nmax_backup_files = 1", 1))
    app = make_app(**targets_env)
    client, _ = make_person(app, "ada", "admin")
    headers = token(app, "ada")
    staging = backed_up(app, client, headers, "staging")
    first = backed_up(app, client, headers, "production")
    second = backed_up(app, client, headers, "production")
    listed = {b["filename"] for b in client.get("/api/targets/production/backups", headers=headers).get_json()}
    assert listed == {staging, second}  # production keeps 1 of its own; staging's, in the same bucket, stays
    assert first not in listed


def test_each_target_encrypts_to_its_own_recipients(make_app, targets_env, databases, tmp_path):
    """Production's backups are age files for production's key; staging (no recipients) stays plain."""
    from tests.adapters.test_encryption import age_key

    key, public = age_key(tmp_path, "production-key")
    path = Path(targets_env["TARGETS_FILE"])
    path.write_text(path.read_text().replace(
        'restore_passkey_env = "PRODUCTION_PASSKEY"',
        f'restore_passkey_env = "PRODUCTION_PASSKEY"\nencryption_recipients = ["{public}"]'))  # fmt: skip
    app = make_app(**targets_env, BACKUP_ENCRYPTION_IDENTITY_FILE=str(key))
    client, _ = make_person(app, "ada", "admin")
    headers = token(app, "ada")
    production, staging = (backed_up(app, client, headers, name) for name in ("production", "staging"))
    assert production.endswith(".dump.age") and staging.endswith(".dump")
    from app.services.clients import storage_for

    storage = storage_for(app.config["SETTINGS"].for_target("production"))
    stored = storage.get_bytes(production)
    assert not stored.startswith(b"PGDMP")
    plain = subprocess.run(["age", "-d", "-i", str(key)], input=stored, capture_output=True, check=True).stdout
    assert plain.startswith(b"PGDMP") and storage.get_bytes(staging).startswith(b"PGDMP")

    before = fingerprint(databases["production"])
    delete_customers(databases["production"], 10)
    answer = client.post("/api/targets/production/restore", headers=headers,
                         json={"filename": production, "passkey": PASSKEYS["production"]})  # fmt: skip
    assert answer.status_code == 202, answer.get_json()
    run_jobs_for(app)
    assert job_of(app, answer.get_json()["job_id"])["status"] == "finished"
    assert fingerprint(databases["production"]) == before
