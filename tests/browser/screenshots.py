"""Screenshots of the main pages for docs/screenshots/: 1280×800 and 390×844, light and dark.

Not part of the suite (the file name does not start with test_); run it on purpose:

    .venv/bin/python -m pytest tests/browser/screenshots.py -q

It drives a real console (gunicorn + worker on a throw-away database, as the browser tests do):
a backup, a verify, a restore of a damaged file that fails, then photographs each page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.domain.naming import backup_filename
from tests.browser.test_activity_browser import console, sign_in
from tests.browser.test_list_browser import foreign_backup
from tests.helpers import wait_for_job
from tests.support import ROOT

pytestmark = pytest.mark.browser
OUT = ROOT / "docs" / "screenshots"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def test_take_screenshots(browser, app_env, processes, make_app, redis_server):
    from app.jobs import runtime
    from app.scheduler import scheduled_backup

    base = console(app_env, processes, ("ada", "admin"))
    foreign_backup(app_env)  # another environment's backup: a second tab, and a row of unknown maker
    app = make_app()  # a scheduled backup, run by the worker, for a "scheduler · scheduled" row
    with app.app_context():
        runtime.configure(app)
        wait_for_job(redis_server, scheduled_backup())
    OUT.mkdir(parents=True, exist_ok=True)
    setup = browser.new_context(viewport=SIZES["desktop"])
    page = setup.new_page()
    sign_in(page, base, "ada")
    page.get_by_role("button", name="Create backup").click()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    pages = {"job-backup": page.url}
    filename = page.locator("#job-file code").inner_text()
    page.goto(base + "/")
    row = page.get_by_role("row", name=filename)
    row.locator("summary").click()
    row.get_by_role("button", name="Verify").click()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    pages["job-verify"] = page.url
    folder = Path(app_env["BACKUP_STORAGE_URL"].removeprefix("file://"))
    damaged = backup_filename(
        "pharmatracker", "staging", datetime.now(UTC) - timedelta(days=2), ZoneInfo("Asia/Kolkata")
    )
    (folder / damaged).write_bytes(b"PGDMP not an archive" * 50)
    database = app_env["DATABASE_URL"].rsplit("/", 1)[1]
    page.goto(f"{base}/backups/{damaged}/restore")
    page.get_by_label("Passkey").fill(app_env["RESTORE_PASSKEY"])
    page.get_by_label(f"Type {database} to confirm").fill(database)
    page.get_by_role("button", name="Restore database").click()
    page.locator("h1.failed-heading").wait_for(timeout=60000)
    pages["job-restore-failed"] = page.url
    pages.update({
        "list": base + "/", "list-filtered": base + "/?environment=staging", "activity": base + "/activity",
        "restore": f"{base}/backups/{filename}/restore",
        "users": base + "/users", "account": base + "/account", "audit": base + "/audit",
        "backup": f"{base}/backups/{filename}", "settings": base + "/settings", "retention": base + "/retention",
    })  # fmt: skip
    state = setup.storage_state()
    setup.close()

    for scheme in ("light", "dark"):
        for size, viewport in SIZES.items():
            context = browser.new_context(viewport=viewport, color_scheme=scheme, storage_state=state)
            shot = context.new_page()
            for name, url in pages.items():
                shot.goto(url)
                shot.screenshot(path=str(OUT / f"{name}-{size}-{scheme}.png"), full_page=True)
            context.close()
    login = browser.new_context(viewport=SIZES["phone"])
    shot = login.new_page()
    shot.goto(base + "/login")
    shot.screenshot(path=str(OUT / "login-phone-light.png"))
    login.close()
