"""Cron expressions: whether one is usable, and when it fires, read in a time zone.

Five fields (minute hour day month weekday), as the settings page and BACKUP_SCHEDULE take them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter


def cron_problem(expression: str) -> str | None:
    """Why a cron expression is unusable, or None. Five fields: minute hour day month weekday."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return f"must be a cron expression of five fields, e.g. '0 2 * * *' (got {expression!r})"
    try:
        croniter(expression).get_next()
    except Exception:  # noqa: BLE001 - croniter raises several kinds for dates that never come
        return f"never fires (got {expression!r}, e.g. the 30th of February)"
    return None


def next_run(expression: str, zone: ZoneInfo, after: datetime | None = None) -> datetime | None:
    """The next time the cron expression fires, read in `zone`, in UTC; None if it never does."""
    base = (after or datetime.now(UTC)).astimezone(zone)
    try:
        return croniter(expression, base).get_next(datetime).astimezone(UTC)
    except Exception:  # noqa: BLE001 - croniter raises several kinds for dates that never come
        return None


def previous_run(expression: str, zone: ZoneInfo, before: datetime) -> datetime | None:
    """The last time the cron expression fired before `before`, read in `zone`, in UTC."""
    try:
        return croniter(expression, before.astimezone(zone)).get_prev(datetime).astimezone(UTC)
    except Exception:  # noqa: BLE001 - as in next_run
        return None
