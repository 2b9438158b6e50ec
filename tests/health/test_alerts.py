"""Alerts through Apprise against real local servers: an HTTP receiver (json://, and the old
Slack-compatible webhook) and aiosmtpd (mailto://, and the old SMTP settings)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.adapters.apprise import where
from app.config import ConfigError, Settings
from app.domain.alerts import Alert, stale_backup_alert
from app.domain.catalog import Backup
from app.domain.naming import Owner
from app.jobs.notify import deliver, job_alert
from tests.helpers import AuthActions, audit_rows, run_jobs_for, wait_for, wait_for_job
from tests.support.notify import SECRET_PATH, closed_port, mail_text
from tests.support.processes import free_port

SMTP_PASSWORD = "smtp-pa55word-never-logged"
NO_SLEEP = {"sleep": lambda s: None}


def make_settings(tmp_path, **extra: str) -> Settings:
    env = {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1/x",
        "SECRET_KEY": "test-secret",
        "APP_ENV": "staging",
        "APP_NAME": "pharmatracker",
        "SMTP_STARTTLS": "false",
        **extra,
    }
    return Settings.from_env(env, instance_path=str(tmp_path))


def failure_alert(settings: Settings) -> Alert:
    return job_alert("backup-failed", settings, action="backup", job_id="j-42", requested_by="olga", seconds=75,
                     reason="database error: connection refused")  # fmt: skip


# --------------------------------------------------------------------------- delivering


def test_a_json_url_gets_target_environment_what_who_how_long_why_and_the_job_link(tmp_path, receiver):
    settings = make_settings(tmp_path, NOTIFY_URLS=receiver.url(), PUBLIC_URL="https://console.example/")

    [delivery] = deliver(failure_alert(settings), settings, **NO_SLEEP)

    assert (delivery.where, delivery.outcome) == (f"json://127.0.0.1:{receiver.port}", "ok")
    [(path, payload)] = receiver.requests
    assert path == SECRET_PATH
    assert payload["title"] == "[pgconsole staging] Backup of x failed"
    lines = payload["message"].splitlines()
    for line in ("target: staging (pharmatracker)", "environment: staging", "database: x", "event: backup-failed",
                 "requested by: olga", "took: 1 min 15 s", "reason: database error: connection refused",
                 "job: https://console.example/jobs/j-42"):  # fmt: skip
        assert line in lines


def test_a_mailto_url_sends_the_same_message_by_email(tmp_path, mailbox):
    settings = make_settings(tmp_path, NOTIFY_URLS=mailbox.url())

    [delivery] = deliver(failure_alert(settings), settings, **NO_SLEEP)

    assert delivery.ok, delivery.outcome
    [(sender, rcpts, data)] = mailbox.messages
    assert sender == "pgconsole@example.com" and rcpts == ["ops@example.com"]
    assert "Subject: [pgconsole staging] Backup of x failed" in data
    text = mail_text(data)
    assert "reason: database error: connection refused" in text and "requested by: olga" in text
    assert "job: j-42" in text  # no PUBLIC_URL: the job id alone


def test_the_old_webhook_variable_still_posts_slack_compatible_text(tmp_path, receiver):
    settings = make_settings(tmp_path, ALERT_WEBHOOK_URL=receiver.url("http"))

    [delivery] = deliver(failure_alert(settings), settings, **NO_SLEEP)

    assert delivery.ok and delivery.where == f"json://127.0.0.1:{receiver.port}"
    [(path, payload)] = receiver.requests
    assert path == SECRET_PATH
    assert "Backup of x failed" in payload["text"] and "reason: database error" in payload["text"]


def test_the_old_smtp_variables_still_send_mail_and_log_in(tmp_path, mailbox):
    settings = make_settings(tmp_path, ALERT_EMAIL_TO="ops@example.com, dba@example.com", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=str(mailbox.port), SMTP_FROM="pgconsole@example.com",
                             SMTP_USERNAME="mailer", SMTP_PASSWORD=SMTP_PASSWORD)  # fmt: skip

    [delivery] = deliver(failure_alert(settings), settings, **NO_SLEEP)

    assert delivery.ok, delivery.outcome
    assert delivery.where == f"mailto://127.0.0.1:{mailbox.port}"
    assert sorted(r for _, rcpts, _ in mailbox.messages for r in rcpts) == ["dba@example.com", "ops@example.com"]
    assert set(mailbox.logins) == {("mailer", SMTP_PASSWORD)}


def test_a_refused_smtp_login_is_reported_without_the_password(tmp_path, mailbox, caplog):
    mailbox.refuse_logins = True
    settings = make_settings(tmp_path, ALERT_EMAIL_TO="ops@example.com", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=str(mailbox.port), SMTP_USERNAME="mailer",
                             SMTP_PASSWORD=SMTP_PASSWORD)  # fmt: skip

    with caplog.at_level(logging.DEBUG):
        [delivery] = deliver(failure_alert(settings), settings, attempts=2, **NO_SLEEP)

    assert delivery.outcome.startswith("failed: ")
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN), on each of the 2 attempts.
    assert mailbox.logins == [("mailer", SMTP_PASSWORD)] * 4 and mailbox.messages == []
    assert SMTP_PASSWORD not in caplog.text and SMTP_PASSWORD not in delivery.outcome
    assert f"alert to mailto://127.0.0.1:{mailbox.port} failed after 2 attempt(s)" in caplog.text


def test_every_url_is_tried_in_turn_whatever_the_others_do(tmp_path, receiver, mailbox):
    urls = f"json://127.0.0.1:{closed_port()}/x, {receiver.url()} {mailbox.url()}"
    settings = make_settings(tmp_path, NOTIFY_URLS=urls)

    deliveries = deliver(failure_alert(settings), settings, attempts=1)

    assert [d.ok for d in deliveries] == [False, True, True]
    assert len(receiver.requests) == 1 and len(mailbox.messages) == 1


def test_delivery_is_retried_with_exponential_backoff(tmp_path, receiver):
    receiver.plan = [500, 500]
    sleeps: list[float] = []
    settings = make_settings(tmp_path, NOTIFY_URLS=receiver.url())

    [delivery] = deliver(failure_alert(settings), settings, sleep=sleeps.append)

    assert delivery.ok
    assert len(receiver.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_a_failing_url_is_reported_and_logged_by_scheme_and_host_only(tmp_path, receiver, caplog):
    receiver.default = 503
    settings = make_settings(tmp_path, NOTIFY_URLS=receiver.url())

    with caplog.at_level(logging.DEBUG):
        [delivery] = deliver(failure_alert(settings), settings, attempts=4, **NO_SLEEP)

    assert delivery.outcome.startswith("failed: ") and "503" in delivery.outcome
    assert len(receiver.requests) == 4
    assert f"alert to json://127.0.0.1:{receiver.port} failed after 4 attempt(s)" in caplog.text
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in delivery.outcome


def test_an_unreadable_url_fails_without_its_secret_reaching_the_log(tmp_path, caplog):
    settings = make_settings(tmp_path, NOTIFY_URLS="nosuchservice://tok3n-s3cr3t@host.example/p4th-s3cr3t")

    with caplog.at_level(logging.DEBUG):  # Apprise itself logs "Unparseable URL <the whole URL>"
        [delivery] = deliver(failure_alert(settings), settings, **NO_SLEEP)

    assert delivery.where == "nosuchservice://host.example"
    assert delivery.outcome.startswith("failed: not a valid Apprise URL")
    assert "s3cr3t" not in caplog.text


def test_token_hosts_are_never_shown():
    assert where("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ") == "slack://…"
    assert where("tgram://123456789:AAHkLm-s3cr3t/-100123") == "tgram://…"
    assert where("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js") == "discord://…"
    assert where("mailtos://user:pass@smtp.example.com:587?to=a@b.c") == "mailtos://smtp.example.com:587"
    assert where("ntfy://localhost/topic") == "ntfy://localhost"


def test_nothing_configured_sends_nothing(tmp_path):
    settings = make_settings(tmp_path)
    assert deliver(failure_alert(settings), settings) == []


def test_notify_urls_split_on_spaces_and_commas_but_not_inside_a_url(tmp_path):
    settings = make_settings(tmp_path, NOTIFY_URLS="json://a.example/x, mailto://h.example?to=a@b.c,d@e.f  ntfy://t")
    assert settings.notify_urls == ("json://a.example/x", "mailto://h.example?to=a@b.c,d@e.f", "ntfy://t")


def test_bad_notify_settings_name_the_variable_and_never_quote_a_url(tmp_path):
    with pytest.raises(ConfigError) as bad_url:
        make_settings(tmp_path, NOTIFY_URLS="json://ok.example/x not-a-url-s3cr3t")
    assert bad_url.value.variable == "NOTIFY_URLS" and "entry 1 is not an Apprise URL" in str(bad_url.value)
    assert "s3cr3t" not in str(bad_url.value)
    with pytest.raises(ConfigError) as bad_event:
        make_settings(tmp_path, NOTIFY_EVENTS="backup-failed, lunch")
    assert bad_event.value.variable == "NOTIFY_EVENTS" and "'lunch'" in str(bad_event.value)
    narrowed = make_settings(tmp_path, NOTIFY_EVENTS="size-drop backup-failed")
    assert narrowed.notify_events == ("backup-failed", "size-drop")


# --------------------------------------------------------------------------- from the jobs


def run_jobs_in(app) -> None:
    from app.jobs import runtime

    try:
        run_jobs_for(app)
    finally:
        runtime.configure(None)


def test_a_failed_backup_is_delivered_within_seconds_to_json_and_mailto(app_env, processes, receiver, mailbox):
    """A real worker: the backup fails (its database refuses connections), and both channels hear of it."""
    from app import create_app
    from app.jobs.queue import start_job
    from app.services.clients import redis_for

    dbname = app_env["DATABASE_URL"].rsplit("/", 1)[1]
    env = {**app_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/{dbname}",
           "NOTIFY_URLS": f"{receiver.url()} {mailbox.url()}", "PUBLIC_URL": "https://console.example"}  # fmt: skip
    processes.worker(env)
    app = create_app(env)
    settings = app.config["SETTINGS"]
    redis = redis_for(settings)
    with app.app_context():
        job_id = start_job(settings, redis, "backup", "olga")
    final = wait_for_job(redis, job_id, "failed", timeout=60)
    failed_at = time.monotonic()

    wait_for(lambda: receiver.requests and mailbox.messages, timeout=10, message="both deliveries")

    assert time.monotonic() - failed_at < 10
    [(_, payload)] = receiver.requests
    assert payload["title"] == f"[pgconsole staging] Backup of {dbname} failed"
    assert f"reason: {final['error']}" in payload["message"]
    assert f"job: https://console.example/jobs/{job_id}" in payload["message"]
    assert "requested by: olga" in payload["message"] and "took: " in payload["message"]
    text = mail_text(mailbox.messages[0][2])
    assert f"reason: {final['error']}" in text
    assert final["error"].startswith("database error:")  # the job's own reason, untouched by the alert


def test_a_failing_channel_leaves_the_jobs_outcome_as_it_was(make_app, receiver):
    """The restore finishes, its "restore-finished" alert fails three times, and the restore is still finished."""
    from app.jobs.queue import fetch_job, job_status, notify_queue, start_job
    from app.services import redis, settings

    receiver.default = 503
    app = make_app(NOTIFY_URLS=receiver.url())
    with app.app_context():
        backup_id = start_job(settings(), redis(), "backup", "olga")
    run_jobs_in(app)
    with app.app_context():
        filename = job_status(redis(), backup_id)["result"]["filename"]
        restore_id = start_job(settings(), redis(), "restore", "ada", filename=filename)
    run_jobs_in(app)

    with app.app_context():
        restore = job_status(redis(), restore_id)
        [delivery_id] = notify_queue(settings(), redis()).finished_job_registry.get_job_ids()
        delivery = fetch_job(redis(), delivery_id)
        assert restore["status"] == "finished" and restore["error"] is None
        assert restore["result"]["filename"] == filename
        [outcome] = delivery.return_value()
        assert outcome["where"] == f"json://127.0.0.1:{receiver.port}" and outcome["outcome"].startswith("failed")
    assert len(receiver.requests) == 3  # tried, with backoff, and given up
    assert "Restore of" in receiver.requests[0][1]["title"] and "finished" in receiver.requests[0][1]["title"]


@pytest.mark.web_only  # the target database is never reached
def test_notify_events_narrows_what_is_queued(make_app, redis_server):
    from app.jobs.notify import notify
    from app.jobs.queue import notify_queue

    app = make_app(NOTIFY_URLS="json://127.0.0.1:9/x", NOTIFY_EVENTS="restore-failed")
    settings = app.config["SETTINGS"]
    alert = Alert("backup-failed", "backup of x failed", {})

    assert notify(settings, redis_server, alert) is None
    assert notify_queue(settings, redis_server).count == 0
    assert notify(settings, redis_server, Alert("restore-failed", "restore of x failed", {})) is not None
    assert notify_queue(settings, redis_server).count == 1


# --------------------------------------------------------------------------- the test notification


@pytest.mark.web_only  # the target database is never reached
def test_the_settings_button_reports_each_url_by_scheme_and_host(app_env, make_app, make_user, receiver):
    dead = closed_port()
    app = make_app(NOTIFY_URLS=f"{receiver.url()} json://127.0.0.1:{dead}/also-s3cr3t")
    make_user("ada", "admin")
    client = app.test_client()
    auth = AuthActions(client)
    auth.login("ada")

    page = client.get("/settings").get_data(as_text=True)
    assert f"json://127.0.0.1:{receiver.port}" in page and "s3cr3t" not in page
    response = client.post("/settings/test-notification", data={"csrf_token": auth.csrf_token("/settings")})

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"<code>json://127.0.0.1:{receiver.port}</code></td>\n            <td>Delivered" in page
    assert f'<code>json://127.0.0.1:{dead}</code></td>\n            <td><span class="mark danger-mark">Failed' in page
    assert "s3cr3t" not in page
    [(_, payload)] = receiver.requests
    assert payload["title"] == "[pgconsole staging] Test notification from pgconsole"
    assert "requested by: ada" in payload["message"]
    [event] = audit_rows(app, "notify-test")
    assert event.outcome == "failed" and event.username == "ada"
    assert f"json://127.0.0.1:{receiver.port}: ok" in event.detail and "s3cr3t" not in event.detail


@pytest.mark.web_only  # the target database is never reached
def test_only_admins_may_send_a_test_notification(app, make_user, receiver):
    make_user("olga", "operator")
    client = app.test_client()
    auth = AuthActions(client)
    auth.login("olga")
    response = client.post("/settings/test-notification", data={"csrf_token": auth.csrf_token("/")})
    assert response.status_code == 403 and receiver.requests == []


@pytest.mark.web_only  # the target database is never reached
def test_the_cli_prints_each_urls_outcome_and_fails_when_one_fails(make_app, receiver, mailbox):
    dead = closed_port()
    app = make_app(NOTIFY_URLS=f"{receiver.url()} {mailbox.url()} json://127.0.0.1:{dead}/s3cr3t")

    result = app.test_cli_runner().invoke(args=["notify", "test"])

    lines = result.stdout.splitlines()  # stderr may carry the log's warning about the failed URL
    assert result.exit_code == 1
    assert lines[0] == f"json://127.0.0.1:{receiver.port}: ok"
    assert lines[1] == f"mailto://127.0.0.1:{mailbox.port}: ok"
    assert lines[2].startswith(f"json://127.0.0.1:{dead}: failed: ")
    assert "s3cr3t" not in result.output
    assert len(receiver.requests) == 1 and len(mailbox.messages) == 1


@pytest.mark.web_only  # the target database is never reached
def test_the_cli_says_when_nothing_is_configured(make_app):
    result = make_app().test_cli_runner().invoke(args=["notify", "test"])
    assert result.exit_code == 2 and "no notification URL is configured" in result.output


# --------------------------------------------------------------------------- stale backups

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def backup(app: str, env: str, hours_ago: float, suffix: str = ".dump") -> Backup:
    at = NOW - timedelta(hours=hours_ago)
    name = f"{app}-{env}-on-{at:%Y-%m-%d-at-%H-%M-%S}-UTC{suffix}"
    return Backup(name, 1000, at, at, app, env, True)


def stale(backups: list[Backup]) -> Alert | None:
    owner = Owner("pharmatracker", "staging")
    newest = max((b for b in backups if owner.owns(b)), key=lambda b: b.created_at, default=None)
    return stale_backup_alert(newest, owner, max_age=timedelta(hours=26), now=NOW)


def test_recent_backup_of_this_environment_means_no_alert():
    assert stale([backup("pharmatracker", "staging", 30), backup("pharmatracker", "staging", 2)]) is None


def test_only_old_backups_name_the_newest():
    old, older = backup("pharmatracker", "staging", 30), backup("pharmatracker", "staging", 54)

    alert = stale([older, old, backup("pharmatracker", "production", 1)])

    assert alert is not None and alert.kind == "stale-backup"
    assert "staging" in alert.summary
    assert alert.details["newest backup"] == old.filename
    assert alert.details["newest backup age"] == "1d 6h"


def test_only_other_environments_or_apps_or_files_mean_none():
    alert = stale(
        [
            backup("pharmatracker", "production", 1),
            backup("otherapp", "staging", 1),
            backup("pharmatracker", "staging", 1, suffix=".dump.partial"),
        ]
    )

    assert alert is not None
    assert alert.details["newest backup"] == "none" and alert.details["newest backup age"] == "none"
    assert stale([]) is not None
