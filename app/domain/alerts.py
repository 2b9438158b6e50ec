"""Alerts to people: which events are told, and what each message says.

An alert names its event, one summary line and a few "name: value" details; `message` turns it
into a title and a body that name the target, its environment and database. Where messages go
is configuration (app/config/alert_urls.py); sending them is an adapter (app/adapters/apprise.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from app.domain.catalog import Backup
from app.domain.naming import Owner
from app.formatting import human_duration, human_period


@dataclass(frozen=True)
class AlertSource:
    """What every message says about where it comes from: the target, its environment and database."""

    target: str  # the target's name, or the environment's when there is one target
    app_name: str
    environment: str
    dbname: str
    public_url: str | None = None  # PUBLIC_URL: job pages are linked when it is set
    several_targets: bool = False


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
    source: AlertSource,
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
    what = f"{action.capitalize()} of {source.dbname} {'failed' if failed else 'finished'}"
    details = {"requested by": requested_by or "?"}
    if seconds is not None:
        details["took"] = human_duration(seconds)
    if filename:
        details["file"] = filename
    if failed:
        details["reason"] = reason or "unknown"
    if job_id:
        details["job"] = job_link(source.public_url, job_id)
    return Alert(kind, what, details)


def job_link(public_url: str | None, job_id: str) -> str:
    """The job page's address when PUBLIC_URL is set, else the job id alone."""
    return f"{public_url}/jobs/{job_id}" if public_url else job_id


def is_stale(newest: Backup | None, max_age: timedelta, now: datetime) -> bool:
    """The staleness rule, for alerts and /healthz alike: no backup, or the newest is older than max_age."""
    return newest is None or newest.created_at <= now - max_age


def stale_backup_alert(newest: Backup | None, owner: Owner, *, max_age: timedelta, now: datetime) -> Alert | None:
    """A "stale-backup" alert when `newest`, our newest backup, is missing or older than max_age."""
    if not is_stale(newest, max_age, now):
        return None
    return Alert(
        kind="stale-backup",
        summary=f"No backup of {owner.app_name} ({owner.environment}) in the last {human_period(max_age)}",
        details={
            "newest backup": newest.filename if newest else "none",
            "newest backup age": human_period(now - newest.created_at) if newest else "none",
            "max age": human_period(max_age),
        },
    )


def notification_test_alert(requested_by: str) -> Alert:
    return Alert("test", "Test notification from pgconsole", {"requested by": requested_by})


def message(alert: Alert, source: AlertSource) -> tuple[str, str]:
    """(title, body): every message names the target, its environment and database."""
    summary = _one_line(alert.summary)
    where = f"{source.target} · {source.environment}" if source.several_targets else source.environment
    title = f"[pgconsole {where}] {summary}"
    lines = [
        summary,
        "",
        f"target: {source.target} ({source.app_name})",
        f"environment: {source.environment}",
        f"database: {source.dbname}",
        f"event: {alert.kind}",
        *(f"{name}: {_one_line(value)}" for name, value in alert.details.items()),
    ]
    return title, "\n".join(lines)


def _one_line(text: str) -> str:
    # A newline in a mail subject is header injection; in chat, noise.
    return " ".join(str(text).split())
