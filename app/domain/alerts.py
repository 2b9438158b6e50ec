"""Alerts to people, through Apprise: one URL scheme for Slack, Teams, Discord, Telegram, e-mail, ntfy, …

An alert is a side effect of a job that has already succeeded or failed on its own terms; a
broken channel must not turn a good backup into a failed job, nor hide the original error. So
`deliver` retries each URL a few times with backoff, logs what went wrong and returns one
outcome per URL instead of raising. (The jobs layer runs it in a job of its own, so a slow
channel never holds up the job it reports on: see `app/jobs/notify.py`.)

Every channel is an Apprise URL: `NOTIFY_URLS`, plus the older `ALERT_WEBHOOK_URL` and
`SMTP_*`/`ALERT_EMAIL_TO` settings translated into Apprise URLs (`apprise_urls`).

URLs hold secrets (a webhook's token, a mail password, a bot token). They are never logged,
shown, stored in Redis or audited: a URL is named by `where` (scheme and host only), and any
text that came from Apprise is redacted before it is logged or returned. Apprise's own log
(its debug lines quote whole URLs) is kept out of the application's log.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, unquote, urlencode, urlsplit

from app.config import Settings
from app.domain.catalog import Backup
from app.domain.console import target_name
from app.domain.naming import Owner

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- Apprise's log
# Apprise logs whole URLs ("Unparseable URL …", its debug lines), and urllib3's debug lines
# quote a webhook's path: none of their records reach any handler. Apprise's warnings are kept
# for the delivery running in this context and shown only after redaction (`_deliver_to`).
_collected: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("apprise_messages", default=None)


class _KeptFromTheLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        messages = _collected.get()
        if messages is not None and record.levelno >= logging.WARNING:
            messages.append(record.getMessage())
        return False


class _QuietWhileDelivering(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _collected.get() is None


def _guard(name: str, kind: type[logging.Filter]) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


APPRISE_LOGGER = "apprise"  # apprise.LOGGER_NAME; Apprise itself is imported only to deliver (it and
# requests weigh 8 MB, in every process that imports this module)
_guard(APPRISE_LOGGER, _KeptFromTheLog)
logging.getLogger(APPRISE_LOGGER).setLevel(logging.WARNING)  # its debug lines are not even made
for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _guard(_name, _QuietWhileDelivering)


# --------------------------------------------------------------------------- alerts


@dataclass
class Alert:
    kind: str  # one of settings.NOTIFY_EVENTS, or "test"
    summary: str  # one line: the message title and its first line
    details: dict[str, str] = field(default_factory=dict)  # shown as "name: value" lines, in order

    def to_json(self) -> dict:
        """Plain values for a job's arguments (no secret is ever part of an alert)."""
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict) -> Alert:
        return cls(str(value["kind"]), str(value["summary"]), {str(k): str(v) for k, v in value["details"].items()})


def job_alert(
    kind: str,
    settings: Settings,
    *,
    action: str,
    job_id: str | None,
    requested_by: str,
    seconds: float | None,
    filename: str | None = None,
    reason: str | None = None,
) -> Alert:
    """The alert for a job that finished or failed: what happened, who asked, how long, why, and where to look."""
    failed = reason is not None
    what = f"{action} of {settings.target.dbname} {'failed' if failed else 'finished'}"
    details = {"requested by": requested_by or "?"}
    if seconds is not None:
        details["took"] = duration_words(seconds)
    if filename:
        details["file"] = filename
    if failed:
        details["reason"] = reason or "unknown"
    if job_id:
        details["job"] = job_link(settings, job_id)
    return Alert(kind, what, details)


def job_link(settings: Settings, job_id: str) -> str:
    """The job page's address when PUBLIC_URL is set, else the job id alone."""
    return f"{settings.public_url}/jobs/{job_id}" if settings.public_url else job_id


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
            "newest backup": newest.filename if newest else "none",
            "newest backup age": duration(now - newest.created_at) if newest else "none",
            "max age": duration(max_age),
        },
    )


def notification_test_alert(requested_by: str) -> Alert:
    return Alert("test", "Test notification from pgconsole", {"requested by": requested_by})


def message(alert: Alert, settings: Settings) -> tuple[str, str]:
    """(title, body): every message names the target, its environment and database."""
    summary = _one_line(alert.summary)
    where = f"{target_name(settings)} · {settings.app_env}" if settings.several_targets else settings.app_env
    title = f"[pgconsole {where}] {summary}"
    lines = [
        summary,
        "",
        f"target: {target_name(settings)} ({settings.app_name})",
        f"environment: {settings.app_env}",
        f"database: {settings.target.dbname}",
        f"event: {alert.kind}",
        *(f"{name}: {_one_line(value)}" for name, value in alert.details.items()),
    ]
    return title, "\n".join(lines)


# --------------------------------------------------------------------------- channels


def apprise_urls(settings: Settings) -> list[str]:
    """Every channel as an Apprise URL: NOTIFY_URLS, then the older webhook and SMTP settings translated."""
    urls = list(settings.notify_urls)
    if settings.alert_webhook_url:
        urls.append(_webhook_as_apprise(settings.alert_webhook_url))
    if settings.alert_email_to and settings.smtp_host:
        urls.append(_smtp_as_apprise(settings))
    return urls


def _webhook_as_apprise(url: str) -> str:
    """A Slack-compatible webhook (Slack, Mattermost, Teams' Slack-style hooks): Apprise's JSON
    sender, with its "message" field renamed to the "text" those hooks read."""
    parts = urlsplit(url)
    scheme = "jsons" if parts.scheme == "https" else "json"
    query = f"{parts.query}&" if parts.query else ""
    return f"{scheme}://{parts.netloc}{parts.path or '/'}?{query}{quote(':message')}=text"


def _smtp_as_apprise(settings: Settings) -> str:
    login = ""
    if settings.smtp_username:
        login = quote(settings.smtp_username, safe="")
        if settings.smtp_password:
            login += ":" + quote(settings.smtp_password, safe="")
        login += "@"
    query = {"to": ",".join(settings.alert_email_to), "from": settings.smtp_from,
             "mode": "starttls" if settings.smtp_starttls else "insecure"}  # fmt: skip
    scheme = "mailtos" if settings.smtp_starttls else "mailto"
    return f"{scheme}://{login}{settings.smtp_host}:{settings.smtp_port}?{urlencode(query)}"


@dataclass(frozen=True)
class Delivery:
    """What happened to one URL: `where` is its scheme and host, `outcome` "ok" or "failed: why"."""

    where: str
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def line(self) -> str:
        return f"{self.where}: {self.outcome}"


def deliver(
    alert: Alert,
    settings: Settings,
    *,
    attempts: int = 3,
    backoff_seconds: float = 1.0,
    sleep: Callable[[float], object] = time.sleep,
) -> list[Delivery]:
    """Send `alert` to every configured URL, each retried with exponential backoff; never raises."""
    title, body = message(alert, settings)
    return [_deliver_to(url, title, body, attempts, backoff_seconds, sleep) for url in apprise_urls(settings)]


def _deliver_to(url: str, title: str, body: str, attempts: int, backoff: float, sleep: Callable) -> Delivery:
    import apprise

    shown, secrets = where(url), _secret_parts(url)
    attempts, reason = max(1, attempts), ""
    for n in range(attempts):
        messages: list[str] = []
        token = _collected.set(messages)
        try:
            service = apprise.Apprise.instantiate(url)
            if service is None:
                return _failed(shown, "not a valid Apprise URL (or its service is unavailable here)", 1)
            if service.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT):
                return Delivery(shown, "ok")
            reason = _redact("; ".join(messages) or "the service refused the message", secrets)
        except Exception as exc:  # noqa: BLE001 - a channel's failure is reported, never raised
            reason = _redact(f"{type(exc).__name__}: {exc}", secrets)
        finally:
            _collected.reset(token)
        if n + 1 < attempts:
            sleep(backoff * 2**n)
    return _failed(shown, reason, attempts)


def _failed(shown: str, reason: str, attempts: int) -> Delivery:
    log.warning("alert to %s failed after %d attempt(s): %s", shown, attempts, reason)
    return Delivery(shown, f"failed: {reason}")


def where(url: str) -> str:
    """A URL named without its secrets: scheme://host[:port].

    Only a real host name (with a dot, an IP address or localhost) is shown: many services put
    a token where the host would be (slack://TokenA/…, tgram://bot-token/…), so for those only
    the scheme is named.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return f"{url.partition('://')[0][:20]}://…" if "://" in url else "<unreadable URL>"
    if not _is_host_name(host):
        return f"{parts.scheme}://…"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}"


def _is_host_name(host: str) -> bool:
    if host == "localhost" or "." in host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _secret_parts(url: str) -> dict[str, str]:
    """Every part of a URL that may be secret, longest first, mapped to what is shown instead."""
    secrets = {url: where(url)}
    try:
        parts = urlsplit(url)
        candidates = [parts.password, parts.username, parts.path, parts.query]
        if not _is_host_name(parts.hostname or ""):
            candidates.append(parts.netloc)
    except ValueError:
        candidates = []
    for part in candidates:
        if not part or len(part) < 2:  # never redact a bare "/": it would garble every message
            continue
        for form in {part, unquote(part)}:  # a message may quote it as written or decoded
            secrets[form] = "…"
            for piece in form.strip("/").split("/"):  # … or quote one segment (a token)
                if len(piece) >= 6:
                    secrets[piece] = "…"
    return dict(sorted(secrets.items(), key=lambda item: -len(item[0])))


def _redact(text: str, secrets: dict[str, str]) -> str:
    for secret, shown in secrets.items():
        text = text.replace(secret, shown)
    return text


# --------------------------------------------------------------------------- helpers


def _one_line(text: str) -> str:
    # A newline in a mail subject is header injection; in chat, noise.
    return " ".join(str(text).split())


def duration_words(seconds: float) -> str:
    """3 s, 2 min 5 s, 1 h 4 min: how long a job took, for people."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or "0m"
