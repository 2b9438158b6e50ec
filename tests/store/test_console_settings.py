"""Settings stored from the settings page: the server's values are the defaults and a lock, stored values
reach the settings every process reads, a notification URL is stored encrypted."""

from __future__ import annotations

import pytest

from app.config import Settings

pytestmark = pytest.mark.web_only


def test_the_server_set_settings_are_recorded_when_read(tmp_path):
    env = {"DATABASE_URL": "postgresql://u@h/db", "MAX_BACKUP_FILES": "9", "NOTIFY_URLS": "json://a.example/x",
           "RETENTION_DAILY": " ", "BACKUP_SCHEDULE": "@daily"}  # fmt: skip
    settings = Settings.from_env(env)
    assert settings.server_set == {"max_backup_files", "notify_urls", "backup_schedule"}  # a blank one is unset
    assert settings.backup_schedule == "@daily"
    table = tmp_path / "targets.toml"
    table.write_text('[targets.a]\ndatabase_url = "postgresql://u@h/a"\nstorage_url = "file:///tmp/a"\n'
                     'retention_weekly = 4\n[targets.b]\ndatabase_url = "postgresql://u@h/b"\n'
                     'storage_url = "file:///tmp/b"\n')  # fmt: skip
    several = Settings.from_env({"TARGETS_FILE": str(table), "VERIFY_SCHEDULE": "0 4 * * 0", "SECRET_KEY": "k" * 32})
    assert several.for_target("a").server_set == {"retention_weekly", "verify_schedule"}
    assert several.for_target("b").server_set == {"verify_schedule"}


def test_stored_values_apply_where_the_server_does_not_set_them(make_app):
    from app import services
    from app.store import console_settings

    app = make_app(MAX_BACKUP_FILES="30", NOTIFY_EVENTS="backup-failed")
    with app.test_request_context():
        base = app.config["SETTINGS"]
        assert console_settings.save("retention_daily", 7, base, "ada") == "daily backups kept: 0 → 7"
        assert console_settings.save("retention_daily", 7, base, "ada") is None  # unchanged: nothing to audit
        assert services.settings().retention_daily == 7  # this process reads it again at once
        assert services.retention_policy(services.settings()).daily == 7
        for name, value in (("max_backup_files", 2), ("notify_events", ("verify-failed",))):
            with pytest.raises(console_settings.Refused, match=r"Set by the server \((MAX_BACKUP_FILES|NOTIFY_EV)"):
                console_settings.save(name, value, base, "ada")
        with pytest.raises(console_settings.Refused, match="from 0 to 100,000"):
            console_settings.save("retention_weekly", -1, base, "ada")
        with pytest.raises(console_settings.Refused, match="Minute must be 0–59"):
            console_settings.save("verify_schedule", "61 * * * *", base, "ada")
        # A row stored before the server set the value (an upgrade, a changed .env) is ignored.
        from app.extensions import db
        from app.store.models import ConsoleSetting

        db.session.add(ConsoleSetting(key="max_backup_files", value="2"))
        db.session.commit()
        console_settings.forget_cached()
        assert services.settings().max_backup_files == 30


def test_notification_urls_are_stored_encrypted_and_described_by_scheme_and_host(make_app):
    from app import services
    from app.config.alert_urls import apprise_urls
    from app.extensions import db
    from app.store import console_settings
    from app.store.models import ConsoleSetting

    app = make_app()
    secret_url = "json://hooks.example.com/T0KEN-very-secret"
    with app.test_request_context():
        change = console_settings.save("notify_urls", (secret_url,), app.config["SETTINGS"], "ada")
        assert change == "notification channels: none → json://hooks.example.com"
        stored = db.session.get(ConsoleSetting, "notify_urls").value
        assert "T0KEN" not in stored and "hooks.example.com" not in stored
        assert apprise_urls(services.settings()) == [secret_url]
    other = make_app(SECRET_KEY="another-secret-key-for-this-test")
    with other.test_request_context():
        assert apprise_urls(services.settings()) == []  # unreadable with another key, and the console still works
