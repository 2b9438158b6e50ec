"""The worker and the scheduler use what an admin stored on the settings page: retention after a real backup,
and restore-test schedules that reload like backup schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.helpers import backup_run_in_process, put_signed_backup, storage_of


def test_a_backup_applies_the_retention_stored_on_the_page(make_app):
    from app.domain.naming import backup_filename
    from app.store import console_settings

    app = make_app()  # MAX_BACKUP_FILES left to the page
    zone, now = ZoneInfo("Asia/Kolkata"), datetime.now(UTC)
    older = [backup_filename("pharmatracker", "staging", now - timedelta(days=d), zone) for d in (1, 2, 3, 4)]
    for name in older:
        put_signed_backup(app, name)
    with app.app_context():
        console_settings.save("max_backup_files", 2, app.config["SETTINGS"], "ada")

    result = backup_run_in_process(app)["result"]
    kept = sorted(o.name for o in storage_of(app).list_objects() if o.name.endswith(".dump"))
    assert kept == sorted([result["filename"], older[0]])  # 2 kept: the new one and the newest older one
    assert sorted(result["deleted"]) == sorted(older[1:])


def test_a_restore_test_schedule_stored_on_the_page_is_picked_up_by_a_running_scheduler(make_app, redis_server):
    from app.jobs import runtime
    from app.scheduler import ConsoleScheduler, scheduled_backup, scheduled_verify
    from app.store import console_settings

    app = make_app()
    settings = app.config["SETTINGS"]
    with app.app_context():
        runtime.configure(app)
        scheduler = ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup,
                                     scheduled_verify)  # fmt: skip
        assert scheduler.get_jobs() == []
        console_settings.save("verify_schedule", "0 4 * * 0", settings, "ada")
        scheduler.reload()
        assert [(job.name, job.cron) for job in scheduler.get_jobs()] == [("scheduled-verify", "0 4 * * 0")]
        console_settings.save("verify_schedule", "", settings, "ada")
        scheduler.reload()
        assert scheduler.get_jobs() == []
    runtime.configure(None)
