"""Each target's backup schedule as an admin set it on the settings page, stored in the console store.

A stored schedule wins over the target's BACKUP_SCHEDULE; a stored "" means switched off.
"""

from __future__ import annotations

from app import services
from app.config import Settings
from app.extensions import db
from app.store.models import ConsoleSetting, utcnow

SCHEDULE_SETTING = "backup_schedule"


def schedule_setting(settings: Settings) -> str:
    """The console setting holding a target's schedule: the default target keeps the name it had alone."""
    if settings.target_name == settings.default_target:
        return SCHEDULE_SETTING
    return f"{SCHEDULE_SETTING}:{settings.target_name}"


def stored_schedule(settings: Settings | None = None) -> ConsoleSetting | None:
    """The schedule saved for `settings`' target (default: the one this request acts on), or None."""
    return db.session.get(ConsoleSetting, schedule_setting(settings or services.settings()))


def effective_schedule(settings: Settings) -> str | None:
    """The page's schedule when an admin set one ("" means switched off), else the target's BACKUP_SCHEDULE."""
    stored = stored_schedule(settings)
    if stored is not None:
        return stored.value or None
    return settings.backup_schedule


def save_schedule(expression: str, by: str, settings: Settings | None = None) -> None:
    """Save the schedule of `settings`' target (default: the one this request acts on)."""
    settings = settings or services.settings()
    row = stored_schedule(settings) or ConsoleSetting(key=schedule_setting(settings))
    row.value, row.updated_by, row.updated_at = expression, by, utcnow()
    db.session.add(row)
    db.session.commit()
