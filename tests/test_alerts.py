"""Alerts against real local servers: an HTTP webhook receiver and a minimal SMTP responder."""

from __future__ import annotations

import base64
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.domain.alerts import Alert, deliver, stale_backup_alert
from app.domain.catalog import Backup
from app.domain.naming import Owner
from app.settings import Settings

SECRET_PATH = "/services/T0000/B0000/s3cr3tW3bh00kT0ken"
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


def failure_alert() -> Alert:
    return Alert("backup-failed", "Backup failed: pg_dump exited 1", {"error": "connection refused", "job": "j-42"})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- webhook receiver


@dataclass
class Receiver:
    url: str = ""
    plan: list[int] = field(default_factory=list)  # statuses to answer first, in order
    default: int = 200  # then this one
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.requests.append((self.path, dict(self.headers), body))
                status = state.plan.pop(0) if state.plan else state.default
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_webhook_delivers_slack_compatible_json(tmp_path, receiver):
    settings = make_settings(tmp_path, ALERT_WEBHOOK_URL=receiver.url)

    result = deliver(failure_alert(), settings, **NO_SLEEP)

    assert result == {"webhook": "ok", "email": "not configured"}
    [(path, headers, body)] = receiver.requests
    assert path == SECRET_PATH
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert "staging" in payload["text"] and "Backup failed: pg_dump exited 1" in payload["text"]
    assert payload["pgconsole"]["kind"] == "backup-failed"
    assert payload["pgconsole"]["environment"] == "staging"
    assert payload["pgconsole"]["app_name"] == "pharmatracker"
    assert payload["pgconsole"]["database"] == "x"
    assert payload["pgconsole"]["details"]["job"] == "j-42"


def test_webhook_retries_with_exponential_backoff(tmp_path, receiver):
    receiver.plan = [500, 500]
    sleeps: list[float] = []

    result = deliver(failure_alert(), make_settings(tmp_path, ALERT_WEBHOOK_URL=receiver.url), sleep=sleeps.append)

    assert result["webhook"] == "ok"
    assert len(receiver.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_webhook_always_failing_is_reported_not_raised(tmp_path, receiver, caplog):
    receiver.default = 503
    settings = make_settings(tmp_path, ALERT_WEBHOOK_URL=receiver.url)

    with caplog.at_level(logging.WARNING, logger="app.domain.alerts"):
        result = deliver(failure_alert(), settings, attempts=4, **NO_SLEEP)

    assert result["webhook"].startswith("failed: ") and "503" in result["webhook"]
    assert len(receiver.requests) == 4
    assert "127.0.0.1" in caplog.text  # where it went is logged …
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in result["webhook"]  # … but never the secret path


def test_webhook_closed_port_fails_without_raising(tmp_path, caplog):
    url = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"

    with caplog.at_level(logging.WARNING, logger="app.domain.alerts"):
        result = deliver(failure_alert(), make_settings(tmp_path, ALERT_WEBHOOK_URL=url), attempts=2, **NO_SLEEP)

    assert result["webhook"].startswith("failed: ")
    assert "alert webhook" in caplog.text
    assert SECRET_PATH not in caplog.text and "s3cr3t" not in caplog.text


def test_nothing_configured(tmp_path):
    assert deliver(failure_alert(), make_settings(tmp_path)) == {"webhook": "not configured", "email": "not configured"}


# --------------------------------------------------------------------------- SMTP responder


@dataclass
class Mailbox:
    port: int = 0
    reject_auth: bool = False
    auth: list[str] = field(default_factory=list)  # decoded AUTH PLAIN credentials
    messages: list[tuple[str, list[str], str]] = field(default_factory=list)  # (from, rcpts, data)


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """Just enough SMTP for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""
    box = Mailbox()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            sender, rcpts = "", []
            self.reply("220 localhost test SMTP")
            while line := self.rfile.readline():
                command = line.decode().rstrip("\r\n")
                verb = command.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.reply("250-localhost")
                    self.reply("250 AUTH PLAIN")
                elif verb == "HELO":
                    self.reply("250 localhost")
                elif verb == "AUTH":
                    box.auth.append(base64.b64decode(command.split()[2]).decode())
                    self.reply("535 5.7.8 bad credentials" if box.reject_auth else "235 2.7.0 ok")
                elif verb == "MAIL":
                    sender, rcpts = command.split(":", 1)[1].strip(), []
                    self.reply("250 ok")
                elif verb == "RCPT":
                    rcpts.append(command.split(":", 1)[1].strip().strip("<>"))
                    self.reply("250 ok")
                elif verb == "DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    data = []
                    while (raw := self.rfile.readline().decode()) not in (".\r\n", ""):
                        data.append(raw[1:] if raw.startswith("..") else raw)  # undo dot-stuffing
                    box.messages.append((sender, rcpts, "".join(data)))
                    self.reply("250 queued")
                elif verb in ("RSET", "NOOP"):
                    self.reply("250 ok")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 not implemented")

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    box.port = server.server_address[1]
    yield box
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def email_settings(tmp_path, port: int, **extra: str) -> Settings:
    return make_settings(
        tmp_path,
        ALERT_EMAIL_TO="ops@example.com, dba@example.com",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        SMTP_FROM="pgconsole@example.com",
        **extra,
    )


def test_email_is_sent_with_subject_body_and_recipients(tmp_path, smtp_server):
    result = deliver(failure_alert(), email_settings(tmp_path, smtp_server.port), **NO_SLEEP)

    assert result == {"webhook": "not configured", "email": "ok"}
    [(sender, rcpts, data)] = smtp_server.messages
    assert "pgconsole@example.com" in sender
    assert rcpts == ["ops@example.com", "dba@example.com"]
    assert "Subject: [pgconsole staging] Backup failed: pg_dump exited 1" in data
    assert "kind: backup-failed" in data
    assert "error: connection refused" in data and "job: j-42" in data
    assert smtp_server.auth == []  # no SMTP_USERNAME, no login


def test_email_logs_in_when_a_username_is_set(tmp_path, smtp_server):
    settings = email_settings(tmp_path, smtp_server.port, SMTP_USERNAME="mailer", SMTP_PASSWORD=SMTP_PASSWORD)

    assert deliver(failure_alert(), settings, **NO_SLEEP)["email"] == "ok"
    assert smtp_server.auth == [f"\0mailer\0{SMTP_PASSWORD}"]
    assert len(smtp_server.messages) == 1


def test_email_rejected_login_is_reported_without_the_password(tmp_path, smtp_server, caplog):
    smtp_server.reject_auth = True
    settings = email_settings(tmp_path, smtp_server.port, SMTP_USERNAME="mailer", SMTP_PASSWORD=SMTP_PASSWORD)

    with caplog.at_level(logging.WARNING, logger="app.domain.alerts"):
        result = deliver(failure_alert(), settings, attempts=2, **NO_SLEEP)

    assert result["email"].startswith("failed: ") and "535" in result["email"]
    assert len(smtp_server.auth) == 2 and smtp_server.messages == []
    assert "alert email" in caplog.text and SMTP_PASSWORD not in caplog.text


def test_email_closed_port_fails_without_raising(tmp_path):
    result = deliver(failure_alert(), email_settings(tmp_path, closed_port()), attempts=2, **NO_SLEEP)
    assert result["email"].startswith("failed: ")


def test_both_channels_are_tried_even_when_one_fails(tmp_path, smtp_server):
    settings = email_settings(tmp_path, smtp_server.port, ALERT_WEBHOOK_URL=f"http://127.0.0.1:{closed_port()}/x")

    result = deliver(failure_alert(), settings, attempts=1)

    assert result["webhook"].startswith("failed: ") and result["email"] == "ok"


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
    assert alert.details["newest_backup"] == old.filename
    assert alert.details["newest_backup_age"] == "1d 6h"


def test_only_other_environments_or_apps_or_files_mean_none():
    alert = stale(
        [
            backup("pharmatracker", "production", 1),
            backup("otherapp", "staging", 1),
            backup("pharmatracker", "staging", 1, suffix=".dump.partial"),
        ]
    )

    assert alert is not None
    assert alert.details["newest_backup"] == "none" and alert.details["newest_backup_age"] == "none"
    assert stale([]) is not None
