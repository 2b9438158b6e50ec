"""Sizes, durations, ages, counts and dates as people read them, the same on every page, alert and chart.

Imports nothing of the app, so any layer may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

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


def human_duration(seconds: float | None) -> str:
    """How long something took, by one rule for every page, chart and alert; "" when unknown.

    Under 10 s with one decimal (0.5 s, 1.2 s: short runs stay apart; 5 s, not 5.0 s), then whole seconds (42 s),
    then minutes (2 min 5 s, 1 min) and hours (1 h 4 min, 2 h). A negative span (clocks that disagree) reads as 0 s.
    """
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds == 0:
        return "0 s"
    if round(seconds, 1) < 10:
        return f"{seconds:.1f}".removesuffix(".0") + " s"  # 0.5 s, 1.2 s; 5 s, not 5.0 s
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


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


def human_number(n: int | float | None) -> str:
    """A count with thousands separators: 25,000; "" when unknown."""
    if n is None:
        return ""
    return f"{n:,}" if isinstance(n, int) else f"{n:,.0f}"


def human_count(n: int, noun: str, plural: str | None = None) -> str:
    """1 target, 3 targets, 25,000 rows: a count with its noun, plural when it is not one."""
    return f"{human_number(n)} {noun if n == 1 else plural or noun + 's'}"


# Moments: the console shows every date and time in its display zone (DISPLAY_TIMEZONE) in these layouts.
MOMENT_LAYOUT = "%Y-%m-%d %I:%M:%S %p %Z"  # a moment in full: 2024-03-01 07:30:00 AM IST
CLOCK_LAYOUT = "%I:%M %p %Z"  # only the time of day, for moments within the hour
DAY_LAYOUT = "%Y-%m-%d"  # a day, where the time does not matter (the chart's axis)
TIME_LAYOUT = "%H:%M"  # a time of day on the chart, when all its points are of one day


def in_zone(moment: datetime | str | None, zone: tzinfo | None, layout: str = MOMENT_LAYOUT) -> str:
    """`moment` (aware, naive UTC as the console store keeps it, or ISO text) in `zone`; "" when unknown."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment.astimezone(zone) if zone else moment).strftime(layout)
