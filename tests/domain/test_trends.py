"""The backup trend: points, the size-drop rule and the server-rendered chart (pure, no Flask)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.domain.catalog import Backup
from app.domain.naming import Owner, backup_filename
from app.domain.trends import Point, backup_trend, chart_svg, drop_percent_of, one_chart_svg, size_dropped

ZONE = ZoneInfo("Asia/Kolkata")
START = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
MB = 1024 * 1024
SVG = "{http://www.w3.org/2000/svg}"


def make(size: int, day: int, *, app: str = "shop", env: str = "staging", name: str | None = None) -> Backup:
    at = START + timedelta(days=day)
    filename = name or backup_filename(app, env, at, ZONE)
    return Backup(filename, size, at, at, app, env, True)


def trend(backups: list[Backup], manifests: dict | None = None, **kw) -> list[Point]:
    kw.setdefault("drop_percent", 50)
    return backup_trend(backups, manifests or {}, owner=Owner("shop", "staging"), **kw)


def series(*sizes: int) -> list[Backup]:
    return [make(size, day) for day, size in enumerate(sizes)]


def test_oldest_first_and_limited_to_the_newest():
    backups = series(*(100 + i for i in range(40)))
    backups.reverse()  # the catalog lists newest first
    points = trend(backups, limit=30)
    assert len(points) == 30
    assert [p.size for p in points] == [100 + i for i in range(10, 40)]
    assert points[0].created_at < points[-1].created_at


def test_durations_come_from_manifests():
    backups = series(100, 100, 100)
    manifests = {
        backups[0].filename: {
            "started_at": "2024-03-01T02:00:00+00:00",
            "finished_at": "2024-03-01T02:00:03.500+00:00",
        },
        backups[1].filename: {"started_at": "2024-03-02T02:00:00+00:00"},  # unfinished: no duration
    }
    points = trend(backups, manifests)
    assert [p.seconds for p in points] == [3.5, None, None]


def test_drop_flagged_below_the_median_by_more_than_the_threshold():
    points = trend(series(100, 100, 100, 40), drop_percent=50)
    assert [p.dropped for p in points] == [False, False, False, True]
    assert points[-1].drop_pct == 60
    assert size_dropped(points, points[-1].filename)
    assert drop_percent_of(points, points[-1].filename) == 60
    assert not size_dropped(points, points[0].filename)
    assert drop_percent_of(points, points[0].filename) is None
    assert not size_dropped(points, "missing.dump")


def test_no_drop_at_sixty_percent_of_the_median():
    points = trend(series(100, 100, 100, 60), drop_percent=50)
    assert not any(p.dropped for p in points)
    assert points[-1].drop_pct is None


def test_no_judgement_with_fewer_than_two_earlier_backups():
    points = trend(series(100, 10), drop_percent=50)
    assert not any(p.dropped for p in points)


def test_two_earlier_backups_are_enough():
    points = trend(series(100, 100, 10), drop_percent=50)
    assert points[-1].dropped


def test_one_earlier_outlier_does_not_hide_a_drop_or_raise_a_false_one():
    # a huge odd backup would lift a mean; the median ignores it
    assert trend(series(100, 100, 5000, 100, 40))[-1].dropped
    # a tiny odd backup would drag a mean down and hide the drop after it
    assert trend(series(100, 100, 1, 100, 40))[-1].dropped
    # and a normal backup after the tiny one is not flagged
    points = trend(series(100, 100, 100, 1, 100))
    assert [p.dropped for p in points] == [False, False, False, True, False]


def test_only_the_five_backups_before_count():
    # old large backups beyond the window no longer set the baseline
    points = trend(series(1000, 1000, 1000, 100, 100, 100, 100, 100, 60))
    assert not points[-1].dropped


def test_drop_judged_against_history_outside_the_limit():
    points = trend(series(100, 100, 100, 40), limit=1)
    assert len(points) == 1 and points[0].dropped


def test_other_environments_apps_and_files_ignored():
    backups = [
        *series(100, 100, 100),
        make(1, 3, env="production"),
        make(1, 4, app="other"),
        Backup("notes.txt", 1, START, START + timedelta(days=5), None, None, False),
        make(5, 6, name=backup_filename("shop", "staging", START + timedelta(days=6), ZONE) + ".gz"),
    ]
    points = trend(backups)
    assert [p.size for p in points] == [100, 100, 100]
    assert not any(p.dropped for p in points)


# --- the chart ---------------------------------------------------------------------------------


def points_for(*sizes: int, seconds: float | None = 2.0) -> list[Point]:
    backups = series(*sizes)
    manifests = {
        b.filename: {
            "started_at": b.created_at.isoformat(),
            "finished_at": (b.created_at + timedelta(seconds=seconds or 0)).isoformat(),
        }
        for b in backups
        if seconds is not None
    }
    return trend(backups, manifests)


def parse(svg: str) -> ET.Element:
    """Well-formedness check; the input is the chart this module just rendered, not outside data."""
    return ET.fromstring(svg)  # noqa: S314


def test_chart_empty_for_fewer_than_two_points():
    assert chart_svg([]) == ""
    assert chart_svg(points_for(100 * MB)) == ""


def test_chart_is_well_formed_accessible_and_inline_free():
    points = points_for(100 * MB, 100 * MB, 100 * MB, 245 * MB, 40 * MB, seconds=3.2)
    svg = one_chart_svg(points)
    root = parse(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text
    desc = root.find(f"{SVG}desc").text
    assert "5 backups from 2024-03-01 to 2024-03-05" in desc
    assert "latest 40.0 MB, 3.2 s" in desc
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == len(points)
    assert [r.get("class") for r in rects] == ["bar"] * 4 + ["bar dropped"]
    assert root.find(f"{SVG}polyline").get("class") == "duration"
    labels = " ".join(t.text for t in root.iter(f"{SVG}text"))
    assert "245.0 MB" in labels and "2024-03-01" in labels and "2024-03-05" in labels
    assert "style=" not in svg
    assert "<script" not in svg.lower()


def test_chart_without_durations_has_no_line():
    svg = one_chart_svg(points_for(1000, 2000, 3000, seconds=None))
    root = parse(svg)
    assert root.find(f"{SVG}polyline") is None
    assert len(root.findall(f"{SVG}rect")) == 3
    assert "KB" in svg or " B<" in svg


def test_chart_escapes_hostile_filenames():
    at = START
    points = [
        Point("x<script>.dump", at, 100, 1.0, False),
        Point('y"&<b>.dump', at + timedelta(days=1), 100, 1.0, False),
        Point("z</title><script>alert(1)</script>.dump", at + timedelta(days=2), 10, None, True, 90),
    ]
    svg = chart_svg(points)
    assert "<script" not in svg
    assert "x&lt;script&gt;.dump" in svg
    root = parse(one_chart_svg(points))  # still well-formed
    titles = [r.find(f"{SVG}title").text for r in root.findall(f"{SVG}rect")]
    assert titles[0].startswith("x<script>.dump")
    assert titles[1].startswith('y"&<b>.dump')
    assert "z</title><script>alert(1)</script>.dump" in root.find(f"{SVG}desc").text


def test_chart_twice_wide_and_narrow_each_with_its_own_ids():
    svg = chart_svg(points_for(100 * MB, 120 * MB, 130 * MB))
    first, second = svg.split("\n<svg", 1)
    wide, narrow = parse(first), parse("<svg" + second)
    assert "trend-wide" in wide.get("class") and "trend-narrow" in narrow.get("class")
    assert int(narrow.get("width")) <= 360 < int(wide.get("width"))
    ids = [e.get("id") for root in (wide, narrow) for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids)) == 4


def test_axis_labels_are_days_or_the_times_of_one_day():
    def labels(points: list[Point]) -> list[str]:
        root = parse(one_chart_svg(points, zone=ZONE))
        return [t.text for t in root.iter(f"{SVG}text") if t.get("y") == str(160 - 6)]

    days = points_for(100, 200, 300)
    assert labels(days) == ["2024-03-01", "2024-03-03"]  # 02:00 UTC is 07:30 IST, the same day
    one_day = [Point(f"{i}.dump", START + timedelta(minutes=40 * i), 100, 0.2, False) for i in range(3)]
    assert labels(one_day) == ["07:30", "08:50"]
    assert "on 2024-03-01, 07:30 to 08:50" in parse(one_chart_svg(one_day, zone=ZONE)).find(f"{SVG}desc").text
    same_minute = [Point(f"{i}.dump", START, 100, 0.2, False) for i in range(2)]
    assert labels(same_minute) == ["07:30"]  # never two identical labels


def test_chart_durations_read_as_everywhere_else():
    root = parse(one_chart_svg(points_for(100, 200, seconds=0.489)))
    assert "0.5 s" in " ".join(t.text for t in root.iter(f"{SVG}text"))
