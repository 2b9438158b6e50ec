"""Beyond the seed: schedules, pins, GFS retention, proven restores, alerts, health and size drops."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from tests.helpers import backup_run_in_process, old_backups, run_jobs_for, signed_in, storage_of
from tests.support.databases import PG, database_names, table_fingerprint


@pytest.fixture
def webhook():
    """A local Slack-style webhook receiver that records what it is sent."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/secret-path", received
    server.shutdown()
    server.server_close()


def events(received: list[dict]) -> list[str]:
    """The event of each message the webhook got (its "event: …" line; the old webhook reads "text")."""
    return [re.search(r"^event: (\S+)$", r["text"], re.M).group(1) for r in received]


# --------------------------------------------------------------------------- schedules


def test_two_schedulers_enqueue_one_run_per_slot(make_app, redis_server, make_user):
    from rq import Queue

    from app.jobs import runtime
    from app.scheduler import ConsoleScheduler, scheduled_backup
    from app.store.schedule import save_schedule

    app = make_app()
    settings = app.config["SETTINGS"]
    with app.app_context():
        runtime.configure(app)
        save_schedule("*/5 * * * *", "ada")
        schedulers = [ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup)
                      for _ in range(2)]  # fmt: skip
        slot = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
        for scheduler in schedulers:  # both find the same slot due
            scheduler.get_jobs()[0].next_enqueue_time = slot
        for scheduler in schedulers:
            scheduler.enqueue_jobs()
            scheduler.heartbeat()
    queue = Queue(settings.redis_namespace, connection=redis_server)
    assert queue.count == 1
    run_jobs_for(app)  # the trigger starts the real backup, which runs too
    from app.store.models import AuditEvent

    with app.app_context():
        events = {(e.username, e.action, e.outcome) for e in AuditEvent.query.all()}
    assert ("scheduler", "backup", "requested") in events and ("scheduler", "backup", "ok") in events
    assert len([b for b in storage_of(app).list_objects() if b.name.endswith(".dump")]) == 1
    client, _ = signed_in(app, make_user, "viewer", "vic")  # the newest backup is for signed-in people
    body = client.get("/healthz").get_json()
    assert body["checks"]["scheduler"] == "ok" and body["newest_backup"]["stale"] is False


def test_the_schedule_is_set_on_the_settings_page_and_shown_with_its_next_run(app, make_user):
    client, auth = signed_in(app, make_user, "admin", "ada")
    bad = client.post("/settings", data={"schedule": "every day", "csrf_token": auth.csrf_token("/settings")})
    assert bad.status_code == 400 and "cron expression of five fields" in bad.get_data(as_text=True)
    ok = client.post("/settings", data={"schedule": "30 2 * * *", "csrf_token": auth.csrf_token("/settings")})
    assert ok.status_code == 303
    home = client.get("/").get_data(as_text=True)
    assert "<code>30 2 * * *</code>" in home
    assert re.search(r'id="next-run">\d{4}-\d{2}-\d{2} 02:30:00 AM IST<', home)
    health = client.get("/healthz")
    assert health.status_code == 503 and "no scheduler heartbeat" in health.get_json()["checks"]["scheduler"]


# --------------------------------------------------------------------------- pins and retention


def test_a_pinned_backup_survives_retention(make_app, make_user):
    app = make_app(MAX_BACKUP_FILES="1")
    names = old_backups(app, [3, 2, 1])
    client, auth = signed_in(app, make_user)
    pinned = client.post(f"/backups/{names[0]}/pin",
                         data={"note": "before the v2.3 migration", "csrf_token": auth.csrf_token("/")})  # fmt: skip
    assert pinned.status_code == 303
    assert "pinned: before the v2.3 migration" in client.get("/").get_data(as_text=True)
    result = backup_run_in_process(app)["result"]
    assert sorted(result["deleted"]) == sorted(names[1:])
    kept = {o.name for o in storage_of(app).list_objects()}
    assert {names[0], names[0] + ".pin", result["filename"]} <= kept
    pin = json.loads(storage_of(app).get_bytes(names[0] + ".pin"))
    assert pin["note"] == "before the v2.3 migration" and pin["pinned_by"] == "olga"


def test_the_gfs_preview_names_exactly_what_retention_then_deletes(make_app, make_user):
    app = make_app(MAX_BACKUP_FILES="1", RETENTION_DAILY="3", RETENTION_MONTHLY="1")
    names = old_backups(app, [0.5, 1, 1.2, 2, 4, 6, 40, 70])
    client, _ = signed_in(app, make_user)
    page = client.get("/retention").get_data(as_text=True)
    previewed = set(re.findall(r'<td class="filename">([^<]+)</td>\s*<td>[^<]*</td>\s*<td>delete</td>', page))
    assert previewed and previewed < set(names)
    assert "newest of day" in page and "newest of month" in page
    deleted = set(backup_run_in_process(app)["result"]["deleted"])
    assert deleted == previewed


# --------------------------------------------------------------------------- proven restores


def test_verify_proves_a_good_backup_and_fails_a_corrupted_one(app, make_user, target_db, pg_admin):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user)
    response = client.post(f"/backups/{filename}/verify", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 303
    run_jobs_for(app)
    report = json.loads(storage_of(app).get_bytes(filename + ".verified.json"))
    assert report["checksum_verified"] is True
    assert report["rows"] == {"public.customers": 2000, "public.orders": 6000}
    row = next(r for r in client.get("/").get_data(as_text=True).split("<tr") if filename in r)
    assert re.search(r'class="proven"><span class="proven-mark" aria-hidden="true">✓ </span>'
                     r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M IST</td>", row)  # fmt: skip

    live = table_fingerprint(target_db)
    storage = storage_of(app)
    data = bytearray(storage.get_bytes(filename))
    data[len(data) // 3] ^= 0xFF
    storage.put_bytes(filename, bytes(data))
    client.post(f"/backups/{filename}/verify", data={"csrf_token": auth.csrf_token("/")})
    run_jobs_for(app)
    from app.store.models import AuditEvent

    with app.app_context():
        failed = AuditEvent.query.filter_by(action="verify", outcome="failed").one()
    assert "checksum mismatch" in failed.detail
    assert table_fingerprint(target_db) == live
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []


# --------------------------------------------------------------------------- alerts


def test_a_failed_backup_is_sent_to_the_webhook(make_app, webhook, pg_admin, target_db):
    url, received = webhook
    pg_admin.execute('CREATE ROLE "pgct_nobody_hook" LOGIN')
    try:
        app = make_app(ALERT_WEBHOOK_URL=url, DATABASE_URL=f"postgresql://pgct_nobody_hook@127.0.0.1:5432/{target_db}")
        status = backup_run_in_process(app)
    finally:
        pg_admin.execute('DROP ROLE "pgct_nobody_hook"')
    assert status["status"] == "failed"
    assert events(received) == ["backup-failed"]
    assert received[0]["title"].startswith("[pgconsole staging]") and "permission denied" in received[0]["text"]


def test_the_stale_backup_alert_fires_once(make_app, webhook, redis_server):
    from app.jobs import runtime
    from app.scheduler import check_stale_backups

    url, received = webhook
    app = make_app(ALERT_WEBHOOK_URL=url, BACKUP_MAX_AGE_HOURS="24")
    old_backups(app, [2])
    settings = app.config["SETTINGS"]
    runtime.configure(app)
    assert check_stale_backups(settings, redis_server) is True
    redis_server.delete(f"{settings.redis_namespace}:scheduler:stale-check")
    assert check_stale_backups(settings, redis_server) is False  # not again within the period
    run_jobs_for(app)  # the alert is delivered by a worker
    assert events(received) == ["stale-backup"]
    runtime.configure(None)


def test_a_backup_made_after_most_rows_were_deleted_is_flagged(make_app, webhook, make_user, target_db):
    url, received = webhook
    app = make_app(ALERT_WEBHOOK_URL=url)
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("INSERT INTO orders (customer_id, note) SELECT 1, repeat(md5(g::text), 20) "
                     "FROM generate_series(1, 20000) g")  # fmt: skip
    for _ in range(3):
        assert backup_run_in_process(app)["status"] == "finished"
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id > 100")
    status = backup_run_in_process(app)
    assert "possible data loss" in status["warning"]
    assert events(received) == ["size-drop"]
    client, _ = signed_in(app, make_user, "viewer", "vic")
    page = client.get("/").get_data(as_text=True)
    assert "size dropped" in page and f'Possible data loss: <span class="filename">{status["filename"]}' in page
    assert 'role="img"' in page  # the trend chart


def test_a_verify_schedule_proves_the_newest_backup(make_app, redis_server):
    from app.jobs import runtime
    from app.scheduler import ConsoleScheduler, scheduled_backup, scheduled_verify

    app = make_app(VERIFY_SCHEDULE="0 3 * * *")
    settings = app.config["SETTINGS"]
    newest = backup_run_in_process(app)["result"]["filename"]
    with app.app_context():
        runtime.configure(app)
        scheduler = ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup,
                                     scheduled_verify)  # fmt: skip
        scheduler.verify_job.next_enqueue_time = datetime.now(UTC) - timedelta(seconds=1)  # its slot is due
        assert [job.name for job in scheduler.enqueue_jobs()] == ["scheduled-verify"]
    run_jobs_for(app)  # the trigger starts the verification, which runs too
    report = json.loads(storage_of(app).get_bytes(newest + ".verified.json"))
    assert report["requested_by"] == "scheduler" and report["rows"]["public.customers"] == 2000
