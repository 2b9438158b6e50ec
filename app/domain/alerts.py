"""Alerts to people: a Slack-compatible webhook and/or email, sent so that they never fail the caller.

An alert is a side effect of a job that has already succeeded or failed on its own terms; a
broken webhook or mail server must not turn a good backup into a failed job, nor hide the
original error. So `deliver` retries each channel a few times, logs what went wrong and
returns a per-channel report instead of raising.

Secrets stay out of logs and reports: a Slack webhook URL carries its token in the path, so
only its scheme and host are ever shown, and the SMTP password is never shown at all.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

from app.domain.catalog import Backup
from app.domain.naming import Owner
from app.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
KINDS = ("backup-failed", "restore-failed", "verify-failed", "stale-backup", "size-drop")


@dataclass
class Alert:
    kind: str  # one of KINDS
    summary: str  # one line, shown as the chat message and the mail subject
    details: dict[str, str] = field(default_factory=dict)


def deliver(
    alert: Alert,
    settings: Settings,
    *,
    attempts: int = 3,
    backoff_seconds: float = 1.0,
    sleep: Callable[[float], object] = time.sleep,
) -> dict[str, str]:
    """Send `alert` to every configured channel; never raises.

    Returns {"webhook": ..., "email": ...}, each "ok", "failed: <reason>" or "not configured".
    """
    report = {"webhook": "not configured", "email": "not configured"}
    if settings.alert_webhook_url:
        where = _safe_url(settings.alert_webhook_url)
        report["webhook"] = _with_retries(
            f"webhook to {where}",
            lambda: _post_webhook(alert, settings),
            attempts,
            backoff_seconds,
            sleep,
            secrets=_webhook_secrets(settings.alert_webhook_url, where),
        )
    if settings.alert_email_to and settings.smtp_host:
        report["email"] = _with_retries(
            f"email via {settings.smtp_host}:{settings.smtp_port}",
            lambda: _send_email(alert, settings),
            attempts,
            backoff_seconds,
            sleep,
            secrets={settings.smtp_password: "***"} if settings.smtp_password else {},
        )
    return report


def is_stale(newest: Backup | None, max_age: timedelta, now: datetime) -> bool:
    """The staleness rule, for alerts and /healthz alike: no backup, or the newest is older than max_age."""
    return newest is None or newest.created_at <= now - max_age


def stale_backup_alert(newest: Backup | None, owner: Owner, *, max_age: timedelta, now: datetime) -> Alert | None:
    """A "stale-backup" alert when `newest`, our newest backup, is missing or older than max_age."""
    if not is_stale(newest, max_age, now):
        return None
    return Alert(
        kind="stale-backup",
        summary=f"No backup of {owner.app_name} ({owner.environment}) in the last {duration(max_age)}",
        details={
            "newest_backup": newest.filename if newest else "none",
            "newest_backup_age": duration(now - newest.created_at) if newest else "none",
            "max_age": duration(max_age),
        },
    )


# --------------------------------------------------------------------------- channels


def _post_webhook(alert: Alert, settings: Settings) -> None:
    url = settings.alert_webhook_url or ""
    payload = {
        # Slack (and Mattermost, Teams' Slack-compatible hooks, …) show "text"; the rest is for machines.
        "text": f"{_label(settings)} {_one_line(alert.summary)}",
        "attachments": [
            {
                "color": "danger",
                "fields": [{"title": k, "value": str(v), "short": False} for k, v in alert.details.items()],
            }
        ]
        if alert.details
        else [],
        "pgconsole": {
            "kind": alert.kind,
            "target": settings.target_name,
            "environment": settings.app_env,
            "app_name": settings.app_name,
            "database": settings.target.dbname,
            "details": {k: str(v) for k, v in alert.details.items()},
        },
    }
    # Settings checks this too, but Settings can be built by hand; urllib would also open file://.
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("alert webhook URL must be http:// or https://")
    request = urllib.request.Request(  # noqa: S310 - scheme checked just above
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
        response.read()  # urlopen raises HTTPError for 4xx/5xx, so reaching here means delivered


def _send_email(alert: Alert, settings: Settings) -> None:
    message = EmailMessage()
    message["Subject"] = f"[pgconsole {_label(settings)[1:]} {_one_line(alert.summary)}"
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(settings.alert_email_to)
    lines = [
        _one_line(alert.summary),
        "",
        f"kind: {alert.kind}",
        f"target: {settings.target_name}",
        f"environment: {settings.app_env}",
        f"app_name: {settings.app_name}",
        f"database: {settings.target.dbname}",
        *(f"{k}: {v}" for k, v in alert.details.items()),
    ]
    message.set_content("\n".join(lines) + "\n")
    with smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message, to_addrs=list(settings.alert_email_to))


# --------------------------------------------------------------------------- helpers


def _with_retries(
    what: str,
    send: Callable[[], None],
    attempts: int,
    backoff_seconds: float,
    sleep: Callable[[float], object],
    secrets: dict[str, str],
) -> str:
    attempts = max(1, attempts)
    reason = ""
    for n in range(attempts):
        try:
            send()
            return "ok"
        except Exception as exc:  # any failure of a channel is reported, never raised
            reason = _redact(f"{type(exc).__name__}: {exc}", secrets)
            if n + 1 < attempts:
                sleep(backoff_seconds * 2**n)
    log.warning("alert %s failed after %d attempt(s): %s", what, attempts, reason)
    return f"failed: {reason}"


def _redact(text: str, secrets: dict[str, str]) -> str:
    """Exception texts may quote the URL (e.g. InvalidURL) or, in theory, the password."""
    for secret, shown in secrets.items():
        if secret:
            text = text.replace(secret, shown)
    return text


def _webhook_secrets(url: str, shown: str) -> dict[str, str]:
    """The whole URL, then its path alone (some errors quote just the path), mapped to safe text."""
    secrets = {url: shown}
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    if len(path) > 1:  # never redact a bare "/": it would garble every message
        secrets[path] = "/…"
    return secrets


def _safe_url(url: str) -> str:
    """scheme://host[:port] only: the path of a Slack webhook URL is its secret."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}"
    except ValueError:
        return "<webhook>"


def _label(settings: Settings) -> str:
    """[environment], or [target · environment] when the console has several targets: an alert names its target."""
    if settings.several_targets:
        return f"[{settings.target_name} · {settings.app_env}]"
    return f"[{settings.app_env}]"


def _one_line(text: str) -> str:
    # A newline in a mail subject is header injection (EmailMessage refuses it); in chat, noise.
    return " ".join(str(text).split())


def duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or "0m"
