"""The Jinja filters every page uses: sizes, durations, counts, ages and moments in the console's time zone.

Each is a formatter of app/formatting.py: `{{ n | number }}` 25,000; `{{ n | count("row") }}` 25,000 rows.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import Flask, url_for
from markupsafe import Markup, escape

from app import services
from app.formatting import (
    CLOCK_LAYOUT,
    MOMENT_LAYOUT,
    human_age,
    human_count,
    human_duration,
    human_number,
    human_period,
    human_size,
    in_zone,
)

JOB_MENTION = re.compile(r"\bjob ([0-9a-f]{32})\b")  # job ids are uuid4 hex (jobs.queue.start_job)


def link_jobs(message: str) -> Markup:
    """A message that names a job ("… is running (job 9de6…)") links to that job's page."""
    escaped = str(escape(message))
    linked = JOB_MENTION.sub(lambda m: f'<a href="{url_for("jobs.show", job_id=m[1])}">job {m[1]}</a>', escaped)
    return Markup(linked)  # noqa: S704 - the message is escaped above and a job id is hex


def age(seconds: int) -> str:
    return human_period(timedelta(seconds=seconds))  # as alerts say it: 2d 3h 5m


def in_display_zone(moment: datetime | str | None, layout: str) -> str:
    return in_zone(moment, services.settings().zone, layout)


def localtime(moment: datetime | str | None) -> str:
    return in_display_zone(moment, MOMENT_LAYOUT)


def clock(moment: datetime | str | None) -> str:
    """Only the time of day ("04:28 PM IST"), for moments within the hour."""
    return in_display_zone(moment, CLOCK_LAYOUT)


FILTERS = {
    "filesize": human_size, "duration": human_duration, "link_jobs": link_jobs, "ago": human_age, "age": age,
    "localtime": localtime, "clock": clock, "number": human_number, "count": human_count,
}  # fmt: skip


def register_filters(app: Flask) -> None:
    for name, template_filter in FILTERS.items():
        app.add_template_filter(template_filter, name)
