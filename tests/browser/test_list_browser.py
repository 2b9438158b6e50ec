"""The backups list in the system Chromium, against gunicorn and a worker process: environment
tabs that filter it, and rows that say who made each backup, how, and how long it took."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.browser.test_activity_browser import console, sign_in
from tests.helpers import wait_for_job

pytestmark = pytest.mark.browser


def foreign_backup(env: dict[str, str], environment: str = "production", days: int = 2) -> str:
    """A file named as another environment's console names its backups (no manifest, no job record here)."""
    from app.domain.naming import backup_filename

    folder = Path(env["BACKUP_STORAGE_URL"].removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    name = backup_filename("pharmatracker", environment, datetime.now(UTC) - timedelta(days=days),
                           ZoneInfo("Asia/Kolkata"))  # fmt: skip
    (folder / name).write_bytes(b"another console's backup")
    return name


def cell(row, label: str) -> str:
    """The cell's text as read aloud (with its screen-reader-only words), on one line."""
    return " ".join(row.locator(f'td[data-label="{label}"]').inner_text().split())


def test_a_viewer_filters_by_environment_and_sees_who_made_each_backup(page, app_env, processes, make_app,
                                                                       redis_server):  # fmt: skip
    from app.jobs import runtime
    from app.scheduler import scheduled_backup

    base = console(app_env, processes, ("olga", "operator"), ("vera", "viewer"))
    other = foreign_backup(app_env)
    sign_in(page, base, "olga")  # a person's backup ...
    page.get_by_role("button", name="Create backup").click()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    manual = page.locator("#job-file code").inner_text()
    app = make_app()  # ... then the scheduler's, run by the worker process like any other
    with app.app_context():
        runtime.configure(app)
        job_id = scheduled_backup()
    assert job_id
    scheduled = wait_for_job(redis_server, job_id)["result"]["filename"]
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, base, "vera")
    tabs = page.get_by_role("navigation", name="Environments")
    assert tabs.get_by_role("link").all_inner_texts() == ["All", "production", "staging"]
    assert tabs.get_by_role("link", name="All").get_attribute("aria-current") == "page"
    rows = page.locator("table.backups tbody tr")
    assert rows.count() == 3
    by_name = {name: page.get_by_role("row", name=name) for name in (manual, scheduled, other)}
    assert cell(by_name[scheduled], "Made by") == "scheduler · scheduled"
    assert cell(by_name[manual], "Made by") == "olga · manual"
    assert re.fullmatch(r"\d+(\.\d)? s", cell(by_name[manual], "Duration"))
    assert re.fullmatch(r"\d+(\.\d)? s", cell(by_name[scheduled], "Duration"))
    assert re.fullmatch(r"\S+ \S+ [AP]M IST (just now|\d+ min ago)", cell(by_name[manual], "Created"))
    assert cell(by_name[other], "Made by") == cell(by_name[other], "Duration") == "— not known"  # nothing here says
    assert by_name[other].locator("td[data-label='Made by'] span[aria-hidden='true']").inner_text() == "—"

    tabs.get_by_role("link", name="production").click()
    page.wait_for_url("**/?environment=production")
    assert rows.count() == 1 and other in rows.first.inner_text()
    assert tabs.get_by_role("link", name="production").get_attribute("aria-current") == "page"
    assert tabs.get_by_role("link", name="All").get_attribute("aria-current") is None

    tabs.get_by_role("link", name="staging").click()
    page.wait_for_url("**/?environment=staging")
    assert rows.count() == 2 and other not in page.locator("table.backups").inner_text()

    page.goto(base + "/?environment=nowhere")
    assert "No backup in the store is from an environment called “nowhere”." in page.locator(
        "#no-such-environment").inner_text()  # fmt: skip
    page.locator("#no-such-environment").get_by_role("link", name="Show all backups").click()
    page.wait_for_url(base + "/")
    assert rows.count() == 3
