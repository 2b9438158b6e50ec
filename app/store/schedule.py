"""Each target's backup schedule: the page's (app/store/console_settings.py holds every editable setting),
unless the server sets BACKUP_SCHEDULE (or the target's backup_schedule); a stored "" means switched off.
"""

from __future__ import annotations

from app import services
from app.config import Settings
from app.store import audit
from app.store.console_settings import current, save, stored_row
from app.store.models import ConsoleSetting


def stored_schedule(settings: Settings | None = None) -> ConsoleSetting | None:
    """The schedule saved for `settings`' target (default: the one this request acts on), or None."""
    return stored_row("backup_schedule", settings or services.settings())


def effective_schedule(settings: Settings) -> str | None:
    """The schedule backups run on: the server's when it sets one, else the page's, else none."""
    return current("backup_schedule", settings) or None  # type: ignore[return-value]


def save_schedule(expression: str, by: str, settings: Settings | None = None) -> None:
    """Save the schedule of `settings`' target (default: the one this request acts on), audited."""
    change = save("backup_schedule", expression, settings or services.settings(), by)
    if change:
        audit.record("settings", "ok", username=by, target="backup schedule", detail=change)
