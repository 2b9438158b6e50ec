"""How this environment's backups have grown and how long they took, and when one shrank suspiciously.

Pure: takes the catalog's `Backup` list and the manifests already read, returns points and an SVG string.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape
from statistics import median

from app.domain.catalog import Backup
from app.domain.naming import Owner
from app.formatting import DAY_LAYOUT, TIME_LAYOUT, human_count, human_duration, human_size, in_zone

# How many earlier backups the drop rule compares with, and how many it needs before it judges.
DROP_WINDOW = 5
DROP_MIN_HISTORY = 2
POINTS = 30  # the newest backups a trend shows (only their manifests are needed)


@dataclass(frozen=True)
class Point:
    filename: str
    created_at: datetime
    size: int
    seconds: float | None  # from the manifest's started_at/finished_at; None without one
    dropped: bool
    drop_pct: int | None = None  # how much smaller than the earlier median, in whole %, when dropped


def backup_trend(
    backups: list[Backup],
    manifests: dict[str, dict],
    *,
    owner: Owner,
    drop_percent: int,
    limit: int = POINTS,
) -> list[Point]:
    """This app and environment's `.dump` backups, oldest first (the newest `limit` of them).

    Each point carries the dump's duration when its manifest (keyed by filename in `manifests`)
    records `started_at` and `finished_at`.

    The drop rule: a backup is flagged `dropped` when its size is more than `drop_percent` %
    below the median size of the (up to 5) backups taken just before it, and only when at least
    2 earlier backups exist to compare with. The median rather than the mean or the previous
    backup, so that one odd backup (a half-empty test run, or one bloated by a bulk load) neither
    raises a false alarm for the next one nor lifts/lowers the baseline enough to hide a real
    drop after it. The comparison runs over the whole history, so the oldest point shown still
    has its predecessors; backups of other environments or apps never enter it.
    """
    own = [b for b in backups if owner.owns(b)]
    own.sort(key=lambda b: (b.created_at, b.last_modified, b.filename))
    points = []
    for index, backup in enumerate(own):
        earlier = [b.size for b in own[max(0, index - DROP_WINDOW) : index]]
        pct = _drop_pct(backup.size, earlier)
        dropped = pct is not None and pct > drop_percent
        points.append(
            Point(
                filename=backup.filename,
                created_at=backup.created_at,
                size=backup.size,
                seconds=manifest_seconds(manifests.get(backup.filename)),
                dropped=dropped,
                drop_pct=round(pct) if dropped and pct is not None else None,
            )
        )
    return points[-limit:] if limit > 0 else []


def size_dropped(points: list[Point], filename: str) -> bool:
    """Whether the point for this file is flagged as a possible data loss (False when absent)."""
    return any(p.dropped for p in points if p.filename == filename)


def drop_percent_of(points: list[Point], filename: str) -> int | None:
    """How many % smaller than the earlier median this file is, when flagged; else None."""
    return next((p.drop_pct for p in points if p.filename == filename and p.dropped), None)


def _drop_pct(size: int, earlier: list[int]) -> float | None:
    if len(earlier) < DROP_MIN_HISTORY:
        return None
    baseline = median(earlier)
    if baseline <= 0:
        return None
    return (baseline - size) * 100 / baseline


def manifest_seconds(manifest: dict | None) -> float | None:
    """How long the backup took, from its manifest's started_at and finished_at; None when unknown."""
    if not isinstance(manifest, dict):
        return None
    try:
        started = datetime.fromisoformat(manifest["started_at"])
        finished = datetime.fromisoformat(manifest["finished_at"])
        seconds = (finished - started).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


# --- the chart -------------------------------------------------------------------------------

# (width, height, left, right, top, bottom, font size) of the wide chart and of the one phones show.
_WIDE = (640, 160, 64, 56, 16, 24, 11)
_NARROW = (360, 200, 58, 50, 16, 26, 12)


def chart_svg(points: list[Point], *, zone: tzinfo | None = None) -> str:
    """The chart twice: wide for screens, narrow for phones; the CSS shows one (.trend-wide, .trend-narrow).

    Scaled down, the wide chart's text would be too small to read on a phone; a hidden copy is out of
    the accessibility tree too (display: none), so each reader meets one chart. "" for fewer than 2 points.
    """
    if len(points) < 2:
        return ""
    return "\n".join((one_chart_svg(points, zone=zone), one_chart_svg(points, zone=zone, narrow=True)))


def one_chart_svg(points: list[Point], *, zone: tzinfo | None = None, narrow: bool = False) -> str:
    """A small server-rendered SVG: bars for sizes, a line for durations on a second (right) scale.

    Accessible: role="img" with a <title> and a <desc> that says the series in words, and a
    <title> on each bar. No inline styles or scripts (the CSP forbids them): presentation
    attributes give sane defaults and the classes "bar", "bar dropped", "duration", "axis" and
    "axis-label" are styled in static/style.css. Dates are shown in `zone` (UTC-aware datetimes
    as stored when None): the days of the first and last backup, or their times when both are of
    one day. "" for fewer than 2 points.
    """
    if len(points) < 2:
        return ""
    chart = _Chart(points, _NARROW if narrow else _WIDE, zone)
    ids = "trend-narrow" if narrow else "trend-wide"
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend-chart {ids}" role="img" '
        f'aria-labelledby="{ids}-title {ids}-desc" viewBox="0 0 {chart.width} {chart.height}" '
        f'width="{chart.width}" height="{chart.height}" font-size="{chart.font}" font-family="sans-serif">',
        f'<title id="{ids}-title">Backup sizes (bars) and durations (line)</title>',
        f'<desc id="{ids}-desc">{escape(_description(chart))}</desc>',
        *_axes(chart), *_bars(chart), *_duration_line(chart), "</svg>",
    ])  # fmt: skip


class _Chart:
    """The plot's geometry and scales, shared by its parts."""

    def __init__(self, points: list[Point], layout: tuple[int, ...], zone: tzinfo | None):
        self.width, self.height, self.left, self.right_margin, self.top, bottom_margin, self.font = layout
        self.points, self.zone = points, zone
        self.plot_h = self.height - self.top - bottom_margin
        self.bottom = self.top + self.plot_h
        self.right = self.width - self.right_margin
        self.slot = (self.right - self.left) / len(points)
        self.bar_w = max(1.0, self.slot * 0.7)
        self.max_size = max(p.size for p in points) or 1
        self.durations = [p.seconds for p in points if p.seconds is not None]
        self.max_seconds = max(self.durations, default=0) or 1.0
        # One day's backups: the axis says their times, else two identical dates would label it.
        self.one_day = self.day(points[0].created_at) == self.day(points[-1].created_at)

    def day(self, moment: datetime) -> str:
        return in_zone(moment, self.zone, DAY_LAYOUT)

    def moment(self, moment: datetime) -> str:
        return in_zone(moment, self.zone, f"{DAY_LAYOUT} {TIME_LAYOUT}")

    def axis_label(self, moment: datetime) -> str:
        return in_zone(moment, self.zone, TIME_LAYOUT if self.one_day else DAY_LAYOUT)

    def centre(self, i: int) -> float:
        return self.left + self.slot * i + self.slot / 2


def _description(chart: _Chart) -> str:
    points, first, last = chart.points, chart.points[0], chart.points[-1]
    latest = human_size(last.size) + (f", {human_duration(last.seconds)}" if last.seconds is not None else "")
    span = (f"on {chart.day(first.created_at)}, {chart.axis_label(first.created_at)} to "
            f"{chart.axis_label(last.created_at)}" if chart.one_day
            else f"from {chart.day(first.created_at)} to {chart.day(last.created_at)}")  # fmt: skip
    desc = f"{human_count(len(points), 'backup')} {span}; latest {latest}."
    desc += f" Sizes from {human_size(min(p.size for p in points))} to {human_size(chart.max_size)}."
    if chart.durations:
        desc += f" Durations from {human_duration(min(chart.durations))} to {human_duration(max(chart.durations))}."
    flagged = [p for p in points if p.dropped]
    if flagged:
        desc += f" {len(flagged)} flagged as a possible data loss: {', '.join(p.filename for p in flagged)}."
    return desc


def _axes(chart: _Chart) -> list[str]:
    """Sizes on the left, durations on the right, the first and last backup's day (or time) along the bottom."""
    left, right, top, bottom = chart.left, chart.right, chart.top, chart.bottom
    first, last = chart.axis_label(chart.points[0].created_at), chart.axis_label(chart.points[-1].created_at)
    out = [
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#8c959f"/>',
        f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#8c959f"/>',
        f'<line class="axis" x1="{right}" y1="{top}" x2="{right}" y2="{bottom}" stroke="#8c959f"/>',
        _text(left - 4, top + 4, human_size(chart.max_size), "end"),
        _text(left - 4, bottom, human_size(0), "end"),
        _text(left, chart.height - 6, first, "start"),
    ]
    if last != first:  # backups within one minute: one label says it
        out.append(_text(right, chart.height - 6, last, "end"))
    if chart.durations:
        out.append(_text(right + 4, top + 4, human_duration(chart.max_seconds), "start"))
        out.append(_text(right + 4, bottom, human_duration(0), "start"))
    return out


def _bars(chart: _Chart) -> list[str]:
    out = []
    for i, p in enumerate(chart.points):
        h = p.size / chart.max_size * chart.plot_h
        x = chart.centre(i) - chart.bar_w / 2
        label = f"{p.filename}: {human_size(p.size)}"
        if p.seconds is not None:
            label += f", {human_duration(p.seconds)}"
        label += f", {chart.moment(p.created_at)}"
        if p.dropped:
            label += f" (possible data loss: {p.drop_pct} % smaller than the backups before it)"
        css, fill = ("bar dropped", "#b3261e") if p.dropped else ("bar", "#8fb8de")
        out.append(
            f'<rect class="{css}" x="{x:.1f}" y="{chart.bottom - h:.1f}" width="{chart.bar_w:.1f}" '
            f'height="{h:.1f}" fill="{fill}"><title>{escape(label)}</title></rect>'
        )
        if p.dropped:  # not by colour alone
            out.append(
                f'<text class="drop-mark" x="{chart.centre(i):.1f}" y="{max(chart.top, chart.bottom - h - 3):.1f}" '
                f'text-anchor="middle" fill="#b3261e" aria-hidden="true">!</text>'
            )
    return out


def _duration_line(chart: _Chart) -> list[str]:
    coords = [
        (f"{chart.centre(i):.1f}", f"{chart.bottom - p.seconds / chart.max_seconds * chart.plot_h:.1f}")
        for i, p in enumerate(chart.points)
        if p.seconds is not None
    ]
    out = []
    if len(coords) >= 2:
        line = " ".join(f"{x},{y}" for x, y in coords)
        out.append(f'<polyline class="duration" points="{line}" fill="none" stroke="#1b1f24" stroke-width="2"/>')
    out.extend(f'<circle class="duration-dot" cx="{x}" cy="{y}" r="2.5" fill="#1b1f24"/>' for x, y in coords)
    return out


def _text(x: float, y: float, words: str, anchor: str) -> str:
    return f'<text class="axis-label" x="{x}" y="{y}" text-anchor="{anchor}" fill="#57606a">{escape(words)}</text>'
