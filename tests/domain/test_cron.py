"""Schedules people can read: presets, @names, errors naming the field and its range, words, the next five
runs, and the warning when schedule and retention keep less than people expect. Pure: values in, values out."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.domain.cron import (
    Preset,
    cron_problem,
    describe,
    next_runs,
    preset_of,
    retention_warnings,
    schedule_of,
)

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 12, 7, 22, 48, tzinfo=UTC)  # 04:18 on a Tuesday in Kolkata


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("61 * * * *", "Minute must be 0–59 (got 61)"),
        ("0 24 * * *", "Hour must be 0–23 (got 24)"),
        ("0 2 0 * *", "Day of month must be 1–31 (got 0)"),
        ("0 2 32 * *", "Day of month must be 1–31 (got 32)"),
        ("0 2 * 13 *", "Month must be 1–12 or jan–dec (got 13)"),
        ("0 2 * smarch *", "Month must be 1–12 or jan–dec (got 'smarch')"),
        ("0 2 * * 8", "Day of week must be 0–7 or sun–sat (got 8)"),
        ("0 2 * * funday", "Day of week must be 0–7 or sun–sat (got 'funday')"),
        ("0 1-25 * * *", "Hour must be 0–23 (got 25)"),
        ("0,75 * * * *", "Minute must be 0–59 (got 75)"),
        ("*/0 * * * *", "Minute: the step after '/' must be a whole number of at least 1 (got '0')"),
    ],
)
def test_each_field_error_names_the_field_and_its_range(expression, problem):
    assert cron_problem(expression) == problem


def test_the_wrong_number_of_fields_and_unknown_names_say_what_is_expected():
    assert "five fields" in cron_problem("every day") and "(got 2 fields)" in cron_problem("every day")
    assert "(got 6 fields)" in cron_problem("* * * * * *")
    assert "@daily" in cron_problem("@sometimes")
    assert "never fires" in cron_problem("0 0 30 2 *")


@pytest.mark.parametrize(
    "expression", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight", "@DAILY",
                   "0 2 * * *", "*/15 * * * *", "0 9-17 * * mon-fri", "0 3 L * *", "0 0 * JAN SUN"],
)  # fmt: skip
def test_names_and_usual_expressions_are_accepted(expression):
    assert cron_problem(expression) is None
    assert len(next_runs(expression, IST, 5, NOW)) == 5


def test_presets_make_their_expression_and_are_recognised_back():
    cases = {
        Preset("hourly"): "0 * * * *", Preset("every-6-hours"): "0 */6 * * *",
        Preset("daily", "02:30"): "30 2 * * *", Preset("weekly", "23:05", 1): "5 23 * * 1",
        Preset("off"): "", Preset("cron", cron="  0  4 * * 0 "): "0 4 * * 0",
    }  # fmt: skip
    for preset, expression in cases.items():
        assert schedule_of(preset) == expression
        if preset.kind != "cron":
            assert preset_of(expression) == preset
    assert preset_of("0 4 * * 0") == Preset("weekly", "04:00", 0)
    assert preset_of("@daily") == Preset("daily", "00:00")
    assert preset_of("0 9-17 * * 1-5") == Preset("cron", cron="0 9-17 * * 1-5")


def test_a_schedule_in_words_with_its_time_zone():
    assert describe("0 2 * * *", IST) == "Every day at 02:00 (Asia/Kolkata)"
    assert describe("@daily", IST) == "Every day at 00:00 (Asia/Kolkata)"
    assert describe("30 3 * * 1", IST) == "Every Monday at 03:30 (Asia/Kolkata)"
    assert describe("0 * * * *", IST) == "Every hour, on the hour (Asia/Kolkata)"
    assert describe("0 */6 * * *", IST).startswith("Every 6 hours")
    assert describe("0 9-17 * * 1-5", IST) == (
        "At 0 minutes past the hour, between 09:00 and 17:59, Monday through Friday (Asia/Kolkata)"
    )
    assert describe(None, IST) == "Off"


def test_the_next_five_runs_are_read_in_the_zone():
    runs = next_runs("0 2 * * *", IST, 5, NOW)
    assert [r.astimezone(IST).strftime("%m-%d %H:%M") for r in runs] == [
        "12-09 02:00", "12-10 02:00", "12-11 02:00", "12-12 02:00", "12-13 02:00",
    ]  # fmt: skip
    assert all(r.tzinfo == UTC for r in runs)
    assert next_runs("0 0 30 2 *", IST, 5, NOW) == []


def test_a_schedule_that_keeps_less_than_a_day_is_warned_about():
    assert retention_warnings("* * * * *", IST, 30, now=NOW) == [
        "With this schedule, keeping the newest 30 keeps only the last 30 minutes of backups."
    ]
    (warning,) = retention_warnings("*/30 * * * *", IST, 30, daily=7, now=NOW)
    assert "only the last 15 hours of backups, besides one a day for 7 days" in warning
    assert retention_warnings("0 2 * * *", IST, 30, now=NOW) == []
    assert retention_warnings("0 * * * *", IST, 24, now=NOW) == []  # exactly a day
    assert retention_warnings(None, IST, 1, now=NOW) == []


def test_a_schedule_that_misses_what_the_tiers_promise_is_warned_about():
    (daily,) = retention_warnings("0 2 * * 0", IST, 30, daily=7, now=NOW)
    assert daily == ("Retention keeps a backup of each day for 7 days, but this schedule runs in only 1 of the next "
                     "7 days: fewer days will have one.")  # fmt: skip
    (weekly,) = retention_warnings("0 2 1 * *", IST, 30, weekly=4, monthly=3, now=NOW)
    assert "each week for 4 weeks" in weekly and "only 1 of the next 4 weeks" in weekly
    assert retention_warnings("0 2 * * *", IST, 30, daily=7, weekly=4, monthly=12, now=NOW) == []
