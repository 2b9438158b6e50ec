"""Schedules: cron expressions checked field by field, the presets people pick instead, a schedule in
words, its next runs, and whether it and retention together keep what people expect.

Five fields (minute hour day month weekday), or a name such as `@daily`, read in a time zone, as the
settings page, BACKUP_SCHEDULE and VERIFY_SCHEDULE take them. Pure: every value is an argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

# The names croniter also knows, as the five fields they stand for.
NAMED = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}  # fmt: skip
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@dataclass(frozen=True)
class CronField:
    label: str
    least: int
    most: int
    names: tuple[str, ...] = ()  # names standing for least, least+1, …

    def range_words(self) -> str:
        words = f"{self.least}–{self.most}"
        return f"{words} or {self.names[0]}–{self.names[-1]}" if self.names else words

    def value(self, text: str) -> int | None:
        """The number `text` stands for (a digit string or a name), or None when it is neither."""
        if text.isdigit():
            return int(text)
        if text in self.names:
            return self.least + self.names.index(text)
        return None


FIELDS = (
    CronField("Minute", 0, 59), CronField("Hour", 0, 23), CronField("Day of month", 1, 31),
    CronField("Month", 1, 12, MONTHS), CronField("Day of week", 0, 7, WEEKDAYS),
)  # fmt: skip
_CRONITER_ONLY = re.compile(r"l|\d+l|l\d+|lw")  # the last day (of the month, or a weekday's last)
_ITEM = re.compile(r"^(?P<start>\*|[a-z0-9]+)(?:-(?P<end>[a-z0-9]+))?(?:/(?P<step>[a-z0-9]*))?$")


def expand(expression: str) -> str:
    """`expression` with its spaces collapsed, a name such as @daily as its five fields."""
    words = " ".join(expression.split())
    return NAMED.get(words.lower(), words)


def _field_problem(field: CronField, text: str) -> str | None:
    """What is wrong with one field's text, or None (syntax only croniter knows, such as L or #, is left to it)."""
    for item in text.lower().split(","):
        found = _ITEM.match(item)
        if not found:
            continue
        for part in ("start", "end"):
            raw = found[part]
            if raw is None or raw == "*" or _CRONITER_ONLY.fullmatch(raw):
                continue
            number = field.value(raw)
            if number is None or not field.least <= number <= field.most:
                got = raw if raw.isdigit() else repr(raw)
                return f"{field.label} must be {field.range_words()} (got {got})"
        step = found["step"]
        if step is not None and (not step.isdigit() or int(step) < 1):
            return f"{field.label}: the step after '/' must be a whole number of at least 1 (got {step!r})"
    return None


def cron_problem(expression: str) -> str | None:
    """Why a schedule is unusable, naming the field and its range, or None."""
    expanded = expand(expression)
    if expanded.startswith("@"):
        return f"must be five fields or one of {', '.join(sorted(set(NAMED)))} (got {expression.strip()!r})"
    fields = expanded.split()
    if len(fields) != 5:
        got = f"{len(fields)} field{'s' * (len(fields) != 1)}"
        return (f"must be a cron expression of five fields (minute hour day-of-month month day-of-week), "
                f"e.g. '0 2 * * *', or a name such as @daily (got {got})")  # fmt: skip
    for field, text in zip(FIELDS, fields, strict=True):
        if problem := _field_problem(field, text):
            return problem
    if not croniter.is_valid(expanded):
        return f"is not a cron expression this console understands (got {expression.strip()!r})"
    try:
        croniter(expanded).get_next()
    except Exception:  # noqa: BLE001 - croniter raises several kinds for dates that never come
        return f"never fires (got {expression.strip()!r}, e.g. the 30th of February)"
    return None


def next_run(expression: str, zone: ZoneInfo, after: datetime | None = None) -> datetime | None:
    """The next time the schedule fires, read in `zone`, in UTC; None if it never does."""
    runs = next_runs(expression, zone, 1, after)
    return runs[0] if runs else None


def next_runs(expression: str, zone: ZoneInfo, count: int = 5, after: datetime | None = None) -> list[datetime]:
    """The next `count` times the schedule fires, read in `zone`, in UTC (fewer if it never does)."""
    base = (after or datetime.now(UTC)).astimezone(zone)
    try:
        runs = croniter(expand(expression), base)
        return [runs.get_next(datetime).astimezone(UTC) for _ in range(count)]
    except Exception:  # noqa: BLE001 - croniter raises several kinds for dates that never come
        return []


def previous_run(expression: str, zone: ZoneInfo, before: datetime) -> datetime | None:
    """The last time the schedule fired before `before`, read in `zone`, in UTC."""
    try:
        return croniter(expand(expression), before.astimezone(zone)).get_prev(datetime).astimezone(UTC)
    except Exception:  # noqa: BLE001 - as in next_runs
        return None


# --------------------------------------------------------------------------- presets

PRESETS = {
    "off": "Off", "hourly": "Every hour", "every-6-hours": "Every 6 hours", "daily": "Every day at…",
    "weekly": "Every week on…", "cron": "Cron expression",
}  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A schedule as the settings page's choices hold it: a kind, a time of day and a weekday (0 is Sunday)."""

    kind: str
    time: str = "02:00"
    weekday: int = 0
    cron: str = ""


def schedule_of(preset: Preset) -> str:
    """The cron expression a preset stands for ("" for off; a cron preset is its own text)."""
    hour, minute = (int(part) for part in preset.time.split(":"))
    return {
        "off": "", "hourly": "0 * * * *", "every-6-hours": "0 */6 * * *", "daily": f"{minute} {hour} * * *",
        "weekly": f"{minute} {hour} * * {preset.weekday}", "cron": " ".join(preset.cron.split()),
    }[preset.kind]  # fmt: skip


def preset_of(expression: str | None) -> Preset:
    """The preset a schedule is (a cron preset holding the text when it is none of the others)."""
    if not expression:
        return Preset("off")
    fields = expand(expression).split()
    if fields in (["0", "*", "*", "*", "*"], ["0", "*/6", "*", "*", "*"]):
        return Preset("hourly" if fields[1] == "*" else "every-6-hours")
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and fields[2:4] == ["*", "*"]:
        minute, hour = int(fields[0]), int(fields[1])
        if minute < 60 and hour < 24:
            time = f"{hour:02d}:{minute:02d}"
            if fields[4] == "*":
                return Preset("daily", time)
            day = FIELDS[4].value(fields[4])
            if day is not None and day <= 7:
                return Preset("weekly", time, day % 7)
    return Preset("cron", cron=" ".join(expression.split()))


def describe(expression: str | None, zone: ZoneInfo) -> str:
    """The schedule in words, with its time zone: "Every day at 02:00 (Asia/Kolkata)"; "Off" without one."""
    if not expression:
        return "Off"
    preset = preset_of(expression)
    words = {
        "hourly": "Every hour, on the hour", "every-6-hours": "Every 6 hours, at 00:00, 06:00, 12:00 and 18:00",
        "daily": f"Every day at {preset.time}", "weekly": f"Every {DAY_NAMES[preset.weekday]} at {preset.time}",
    }.get(preset.kind) or _described_by_library(expand(expression))  # fmt: skip
    return f"{words} ({zone.key})"


def _described_by_library(expression: str) -> str:
    """cron-descriptor's words for any other expression ("At 02:30, only on Monday"); the text if it fails."""
    from cron_descriptor import Options, get_description

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return get_description(expression, options)
    except Exception:  # noqa: BLE001 - a describer's failure must not hide the schedule itself
        return expression


# --------------------------------------------------------------------------- schedule and retention


def _span_words(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    if minutes < 120:
        return f"{minutes} minute{'s' * (minutes != 1)}"
    hours = round(minutes / 60)
    return f"{hours} hours" if hours < 48 else f"{round(hours / 24)} days"


def _period_starts(now: datetime, unit: str, count: int) -> list[datetime]:
    """The starts of the next `count` whole days, ISO weeks or months after `now` (in now's zone), and the one after."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return [day + timedelta(days=n) for n in range(1, count + 2)]
    if unit == "week":
        monday = day - timedelta(days=day.weekday())
        return [monday + timedelta(weeks=n) for n in range(1, count + 2)]
    starts, year, month = [], now.year, now.month
    for _ in range(count + 1):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        starts.append(now.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0))
    return starts


def retention_warnings(expression: str | None, zone: ZoneInfo, newest: int, daily: int = 0, weekly: int = 0,
                       monthly: int = 0, now: datetime | None = None) -> list[str]:  # fmt: skip
    """Why this schedule and retention keep less than people expect: less than a day of backups, or fewer
    than the daily/weekly/monthly counts promise (a period without a run has no backup to keep)."""
    if not expression:
        return []
    now = (now or datetime.now(UTC)).astimezone(zone)
    warnings = []
    # The newest N backups reach back N runs: with runs every minute and N = 30, half an hour.
    runs = croniter(expand(expression), now)
    first = previous = runs.get_next(datetime)
    for _ in range(newest):
        previous = runs.get_next(datetime)
        if previous - first >= timedelta(days=1):
            break
    else:
        besides = f", besides one a day for {daily} days" if daily else ""
        warnings.append(f"With this schedule, keeping the newest {newest} keeps only the last "
                        f"{_span_words(previous - first)} of backups{besides}.")  # fmt: skip
    for count, unit, promise in ((daily, "day", "each day"), (weekly, "week", "each week"),
                                 (monthly, "month", "each month")):  # fmt: skip
        if not count:
            continue
        checked = min(count, 12)
        starts = _period_starts(now, unit, checked)
        after = [croniter(expand(expression), start - timedelta(seconds=1)).get_next(datetime) for start in starts]
        empty = sum(1 for run, end in zip(after, starts[1:], strict=False) if run >= end)
        if empty:
            warnings.append(
                f"Retention keeps a backup of {promise} for {count} {unit}s, but this schedule runs in "
                f"only {checked - empty} of the next {checked} {unit}s: fewer {unit}s will have one."
            )
    return warnings
