"""The settings page: schedules as presets or cron with errors at the field, retention and notifications
stored and audited, and what the server sets locked (shown, disabled, a POST refused at the field)."""

from __future__ import annotations

import re

import pytest

from tests.helpers import audit_rows, signed_in

pytestmark = pytest.mark.web_only


def _post(client, auth, url, data):
    return client.post(url, data={**data, "csrf_token": auth.csrf_token("/settings")})


def test_a_preset_schedule_is_saved_shown_in_words_with_its_next_runs_and_audited(app, make_user):
    client, auth = signed_in(app, make_user, "admin", "ada")
    token = auth.csrf_token("/settings")
    ok = client.post("/settings/backup_schedule", data={"backup-kind": "weekly", "backup-time": "03:30",
                                                        "backup-weekday": "1", "backup-csrf_token": token})  # fmt: skip
    assert ok.status_code == 303 and ok.headers["Location"].endswith("/settings?saved=backup-schedule#backup-schedule")
    page = client.get("/settings?saved=backup-schedule").get_data(as_text=True)
    assert "Every Monday at 03:30 (Asia/Kolkata)" in page and "<code>30 3 * * 1</code>" in page
    runs = re.search(r'<ol class="next-runs" id="backup-schedule-runs">(.*?)</ol>', page, re.S).group(1)
    assert len(re.findall(r"<li>\d{4}-\d{2}-\d{2} 03:30:00 AM IST</li>", runs)) == 5
    assert "Every Monday at 03:30 (Asia/Kolkata)" in client.get("/").get_data(as_text=True)
    (row,) = audit_rows(app, "settings")
    assert row.username == "ada" and row.detail == "backup schedule: off → 30 3 * * 1"


@pytest.mark.parametrize(
    ("cron", "message"),
    [("61 * * * *", "Minute must be 0–59 (got 61)."), ("0 2 * * funday", "Day of week must be 0–7 or sun–sat"),
     ("every day", "The schedule must be a cron expression of five fields"), ("", "Enter a cron expression")],
)  # fmt: skip
def test_a_bad_cron_is_refused_at_the_field_naming_the_field_and_range(app, make_user, cron, message):
    client, auth = signed_in(app, make_user, "admin", "ada")
    token = auth.csrf_token("/settings")
    bad = client.post("/settings/verify_schedule", data={"verify-kind": "cron", "verify-cron": cron,
                                                         "verify-csrf_token": token})  # fmt: skip
    body = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert re.search(r'<p class="field-error" id="verify-cron-error">' + re.escape(message), body)
    assert 'aria-invalid="true"' in body
    assert audit_rows(app, "settings") == []


def test_at_daily_is_accepted_and_an_every_minute_schedule_warns_about_retention(app, make_user):
    client, auth = signed_in(app, make_user, "admin", "ada")
    token = auth.csrf_token("/settings")
    daily = {"backup-kind": "cron", "backup-cron": "@daily", "backup-csrf_token": token}
    assert client.post("/settings/backup_schedule", data=daily).status_code == 303
    assert "Every day at 00:00 (Asia/Kolkata)" in client.get("/settings").get_data(as_text=True)
    every_minute = {**daily, "backup-cron": "* * * * *"}
    assert client.post("/settings/backup_schedule", data=every_minute).status_code == 303
    page = client.get("/settings").get_data(as_text=True)
    assert "keeping the newest 30 keeps only the last 30 minutes of backups" in page


def test_retention_and_notifications_are_stored_and_the_worker_settings_use_them(app, make_user):
    from app import services

    client, auth = signed_in(app, make_user, "admin", "ada")
    saved = _post(client, auth, "/settings/retention", {"max_backup_files": "2", "retention_daily": "7",
                                                        "retention_weekly": "0", "retention_monthly": "0"})  # fmt: skip
    assert saved.status_code == 303
    secret = "json://hooks.example.com/SECRET-T0KEN"
    assert _post(client, auth, "/settings/notifications/channels", {"url": secret}).status_code == 303
    assert _post(client, auth, "/settings/notifications/events", {"events": ["backup-failed"]}).status_code == 303
    with app.test_request_context():
        settings = services.settings()
        assert (settings.max_backup_files, settings.retention_daily, settings.notify_events) == (
            2,
            7,
            ("backup-failed",),
        )
        assert settings.notify_urls == (secret,)
    page = client.get("/settings").get_data(as_text=True)
    assert "SECRET-T0KEN" not in page and "<code>json://hooks.example.com</code>" in page
    details = [row.detail for row in audit_rows(app, "settings")]
    assert "newest backups kept: 30 → 2; daily backups kept: 0 → 7" in details
    assert "notification channels: none → json://hooks.example.com" in details
    assert not any("SECRET" in d for d in details)
    fingerprint = re.search(r'name="channel" value="([0-9a-f]+)"', page).group(1)
    assert _post(client, auth, "/settings/notifications/channels/remove", {"channel": fingerprint}).status_code == 303
    assert "No channel yet" in client.get("/settings").get_data(as_text=True)


def test_the_test_notification_is_disabled_with_a_reason_when_no_channel_is_set(app, make_user):
    client, _ = signed_in(app, make_user, "admin", "ada")
    page = client.get("/settings").get_data(as_text=True)
    assert re.search(
        r'<button type="submit" disabled aria-describedby="notify-disabled">Send a test notification', page
    )
    assert "Add a channel first: there is nowhere to send it." in page


def test_a_value_the_server_sets_is_locked_and_a_post_that_tries_is_refused_at_the_field(make_app):
    from app import services
    from app.accounts.people import create_user

    app = make_app(MAX_BACKUP_FILES="30", BACKUP_SCHEDULE="0 2 * * *", NOTIFY_URLS="json://ops.example/x")
    with app.app_context():
        create_user("ada", "admin", "correct horse battery", created_by="test")
    client, auth = signed_in(app, lambda *args: None, "admin", "ada")
    page = client.get("/settings").get_data(as_text=True)
    assert re.search(r'<input disabled id="max_backup_files" name="max_backup_files" type="number" value="30">', page)
    assert "Set by the server</span> (MAX_BACKUP_FILES); change it there." in page
    assert "(BACKUP_SCHEDULE); change it there." in page and "Add a channel" in page and 'id="url"' not in page
    wanted = {"max_backup_files": "2", "retention_daily": "1", "retention_weekly": "0", "retention_monthly": "0"}
    refused = _post(client, auth, "/settings/retention", wanted)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert re.search(r'id="max_backup_files-error">Set by the server \(MAX_BACKUP_FILES\); change it there.', body)
    token = auth.csrf_token("/settings")
    schedule = client.post("/settings/backup_schedule", data={"backup-kind": "hourly", "backup-csrf_token": token})
    assert schedule.status_code == 400 and 'id="backup-kind-error">Set by the server (BACKUP_SCHEDULE)' in (
        schedule.get_data(as_text=True)
    )
    assert _post(client, auth, "/settings/notifications/channels", {"url": "json://x.example/y"}).status_code == 400
    with app.test_request_context():
        settings = services.settings()
        assert (settings.max_backup_files, settings.retention_daily, settings.backup_schedule) == (30, 0, "0 2 * * *")
        assert settings.notify_urls == ("json://ops.example/x",)
    assert audit_rows(app, "settings") == []
    # The fields the server leaves alone are still saved when a disabled one is not posted (as a browser does).
    ok = _post(client, auth, "/settings/retention", {"retention_daily": "3", "retention_weekly": "0",
                                                     "retention_monthly": "0"})  # fmt: skip
    assert ok.status_code == 303
