"""What the home page shows of the activity: failure banners and running jobs (templates/activity/_home.html)."""

from __future__ import annotations

from datetime import datetime

from app import services
from app.config import Settings
from app.jobs import history
from app.jobs.queue import settle_history
from app.store.schedule import stored_schedule


def home_activity(settings: Settings, schedule: str | None) -> dict:
    """The home page's template values: `failures`, `missed` (a scheduled backup that did not run),
    `running` and `reason_of`, for the target `settings` are of and its environment."""
    settle_history(services.redis())
    environment = settings.app_env
    # This page is one target's (the caller may see it, or the page is a 404): only its jobs.
    this_target = history.Seen.of([settings.target_name], settings.default_target)
    return {
        "failures": history.latest_failures(environment, this_target),
        "missed": history.missed_scheduled_backup(environment, this_target, schedule, settings.zone, schedule_since())
        if schedule else None,
        "running": history.running(environment, this_target),
        "reason_of": history.reason_of,
    }  # fmt: skip


def schedule_since() -> datetime | None:
    """When an admin last set the schedule (None when it comes from BACKUP_SCHEDULE)."""
    stored = stored_schedule()
    return stored.updated_at if stored else None
