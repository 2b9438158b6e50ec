"""Schedules: one run per slot however many schedulers run, set on the settings page and shown with its next run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.helpers import run_jobs_for, signed_in, storage_of


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
    token = auth.csrf_token("/settings")
    bad = client.post("/settings/backup_schedule", data={"backup-kind": "cron", "backup-cron": "every day",
                                                         "backup-csrf_token": token})  # fmt: skip
    assert bad.status_code == 400 and "cron expression of five fields" in bad.get_data(as_text=True)
    ok = client.post("/settings/backup_schedule", data={"backup-kind": "daily", "backup-time": "02:30",
                                                        "backup-csrf_token": token})  # fmt: skip
    assert ok.status_code == 303
    home = client.get("/").get_data(as_text=True)
    assert "<code>30 2 * * *</code>" in home
    assert re.search(r'id="next-run">\d{4}-\d{2}-\d{2} 02:30:00 AM IST<', home)
    health = client.get("/healthz")
    assert health.status_code == 503 and "no scheduler heartbeat" in health.get_json()["checks"]["scheduler"]


# --------------------------------------------------------------------------- pins and retention


# --------------------------------------------------------------------------- proven restores


# --------------------------------------------------------------------------- alerts


