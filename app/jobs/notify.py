"""Alerts are delivered by a short RQ job of their own, on a queue that workers serve first.

Why a job and not a call or a thread: a delivery retries with backoff (seconds, for a channel
that is down), and the job it reports on must neither wait for that nor fail because of it. A
thread would not do: RQ's work horse exits as soon as its job is done, killing the thread. So
the failing (or finishing) job only enqueues a `deliver_job` with the alert's plain text and its
target's name (no URL, no secret: the delivering worker reads the URLs from its own settings)
and goes on. Workers
listen on the notify queue before the job queue, so the alert goes out within seconds, as soon
as a worker is free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis import Redis

from app import services
from app.adapters import apprise
from app.config import Settings
from app.config.alert_urls import apprise_urls
from app.domain import alerts
from app.jobs.queue import notify_queue
from app.jobs.runtime import console_job

log = logging.getLogger(__name__)

SECONDS_PER_URL = 60  # three attempts, their backoff and Apprise's own timeouts (mail connects wait 15 s)


def notify(settings: Settings, redis: Redis, alert: alerts.Alert) -> str | None:
    """Enqueue the delivery of `alert` when its event is wanted and a channel is set; never raises.

    Returns the delivery job's id, or None when nothing was enqueued.
    """
    urls = apprise_urls(settings)
    if alert.kind not in settings.notify_events or not urls:
        return None
    try:
        job = notify_queue(settings, redis).enqueue(
            "app.jobs.notify.deliver_job",
            # The target's name: the delivering worker uses that target's channels and names it.
            kwargs={"alert": alert.to_json(), **({"target": settings.target_name} if settings.target_name else {})},
            job_timeout=SECONDS_PER_URL * len(urls),
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            description=f"alert: {alert.kind}",
        )
    except Exception as exc:  # noqa: BLE001 - an alert that cannot be queued must not fail its job
        log.warning("could not queue the %s alert: %s", alert.kind, type(exc).__name__)
        return None
    return job.id


@console_job
def deliver_job(alert: dict) -> list[dict]:
    """Send one alert to every configured URL (retried with backoff); the outcome per URL is its result."""
    deliveries = deliver(alerts.Alert.from_json(alert), services.settings())
    return [{"where": d.where, "outcome": d.outcome} for d in deliveries]


def deliver(alert: alerts.Alert, settings: Settings, *, attempts: int = 3, backoff_seconds: float = 1.0,
            sleep: Callable[[float], object] = time.sleep) -> list[apprise.Delivery]:  # fmt: skip
    """Send `alert` to every URL `settings` configure, each retried with backoff; never raises."""
    title, body = alerts.message(alert, alert_source(settings))
    return apprise.deliver(apprise_urls(settings), title, body, attempts=attempts, backoff_seconds=backoff_seconds,
                           sleep=sleep)  # fmt: skip


def job_alert(kind: str, settings: Settings, **facts: Any) -> alerts.Alert:
    """The alert for a job of `settings`' target that finished or failed (see `alerts.job_alert`)."""
    return alerts.job_alert(kind, alert_source(settings), **facts)


def alert_source(settings: Settings) -> alerts.AlertSource:
    """What messages say about `settings`' target."""
    return alerts.AlertSource(target=services.target_name(settings), app_name=settings.app_name,
                              environment=settings.app_env, dbname=settings.target.dbname,
                              public_url=settings.public_url, several_targets=settings.several_targets)  # fmt: skip
