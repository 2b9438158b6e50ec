"""The one formatter: sizes, durations, counts and dates read the same on every page, chart, alert and export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.formatting import (
    CLOCK_LAYOUT,
    DAY_LAYOUT,
    human_age,
    human_count,
    human_duration,
    human_number,
    human_period,
    human_size,
    in_zone,
)

IST = ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(("size", "words"), [
    (None, ""), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (1536, "1.5 KB"), (40 * 1024**2, "40.0 MB"),
    (79_331_926_016, "73.9 GB"), (3 * 1024**5, "3072.0 TB"),
])  # fmt: skip
def test_sizes(size, words):
    assert human_size(size) == words


@pytest.mark.parametrize(("seconds", "words"), [
    (None, ""), (0, "0 s"), (-3, "0 s"), (0.2, "0.2 s"), (0.489, "0.5 s"), (1.2, "1.2 s"), (5, "5 s"), (2.04, "2 s"),
    (9.94, "9.9 s"),
    (9.96, "10 s"),  # rounds past the boundary: whole seconds, never "10.0 s"
    (10, "10 s"), (42.4, "42 s"), (59.4, "59 s"), (59.6, "1 min"), (60, "1 min"), (125, "2 min 5 s"),
    (3599, "59 min 59 s"), (3600, "1 h"), (3840, "1 h 4 min"), (90000, "25 h"),
])  # fmt: skip
def test_durations_one_rule_at_the_boundaries(seconds, words):
    assert human_duration(seconds) == words


def test_counts_have_thousands_separators():
    assert human_number(25000) == "25,000"
    assert human_number(1234567) == "1,234,567"
    assert human_number(999) == "999"
    assert human_number(None) == ""
    assert human_count(25000, "row") == "25,000 rows"
    assert human_count(1, "row") == "1 row"
    assert human_count(0, "table") == "0 tables"
    assert human_count(2, "entry", "entries") == "2 entries"


def test_dates_in_the_display_zone():
    moment = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    assert in_zone(moment, IST) == "2024-03-01 07:30:00 AM IST"
    assert in_zone(moment.replace(tzinfo=None), IST) == "2024-03-01 07:30:00 AM IST"  # the store's naive UTC
    assert in_zone("2024-03-01T02:00:00+00:00", IST, CLOCK_LAYOUT) == "07:30 AM IST"
    assert in_zone(datetime(2024, 3, 1, 20, 0, tzinfo=UTC), IST, DAY_LAYOUT) == "2024-03-02"
    assert in_zone(None, IST) == "" and in_zone("", IST) == ""


def test_ages_and_periods():
    now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert human_age(now - timedelta(seconds=30), now) == "just now"
    assert human_age(now - timedelta(minutes=12), now) == "12 min ago"
    assert human_age(now - timedelta(hours=5), now) == "5 h ago"
    assert human_age(now - timedelta(days=3), now) == "3 days ago"
    assert human_period(timedelta(days=2, hours=3, minutes=5)) == "2d 3h 5m"
    assert human_period(timedelta(seconds=30)) == "0m"
