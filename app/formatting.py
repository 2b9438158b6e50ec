"""Sizes, durations, ages and counts as people read them, the same on every page, alert and chart.

Imports nothing of the app, so any layer may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SIZE_UNITS = ("B", "KB", "MB", "GB", "TB")


def human_size(size: float | None) -> str:
    """1023 B, 1.5 KB, 40.0 MB … in TB at most; "" when unknown."""
    if size is None:
        return ""
    value = float(size)
    for unit in SIZE_UNITS:
        if value < 1024 or unit == SIZE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable: the last unit takes any value


def human_duration(seconds: float | None, *, tenths: bool = False) -> str:
    """How long something took: 3 s, 2 min 5 s, 1 h 4 min; "" when unknown.

    `tenths` shows 3.2 s under a minute, where short runs must stay apart (the trend chart).
    A negative span (clocks that disagree) reads as 0 s.
    """
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if tenths else f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def human_period(delta: timedelta) -> str:
    """A span in whole minutes, compact: 2d 3h 5m, 1d 6h, 0m (a backup's age, the longest allowed)."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or "0m"


def human_age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in words: "just now", "12 min ago", "5 h ago", "3 days ago"; "" when unknown."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # the console store keeps naive UTC
        moment = moment.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def human_count(n: int, noun: str) -> str:
    """1 target, 3 targets: a count with its noun, plural when it is not one."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
