"""Activity and job pages in the system Chromium, against gunicorn and a worker process:
what people see happened (activity, failure banner, job pages that conclude)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import PASSWORD
from tests.support import ROOT
from tests.support.databases import PG, table_fingerprint
from tests.support.processes import child_env

pytestmark = pytest.mark.browser


def create_user(env: dict[str, str], username: str, role: str) -> None:
    argv = [sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", username, "--role", role,
            "--password-stdin"]  # fmt: skip
    subprocess.run(argv, cwd=ROOT, env=child_env(env), input=PASSWORD, text=True, check=True, capture_output=True)


def console(env: dict[str, str], processes, *users: tuple[str, str]) -> str:
    """gunicorn and a worker on `env`, with these (username, role) users; returns the base URL."""
    for username, role in users:
        create_user(env, username, role)
    base = processes.web(env)
    processes.worker(env)
    return base


def sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Backups").wait_for()


def test_a_failed_backup_is_visible_to_a_viewer_on_activity_home_and_its_job_page(page, app_env, processes):
    env = {**app_env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/appdb"}  # nothing listens on port 1
    base = console(env, processes, ("olga", "operator"), ("vera", "viewer"))
    sign_in(page, base, "olga")
    page.get_by_role("button", name="Create backup").click()
    page.wait_for_url("**/jobs/*")
    heading = page.locator("h1.failed-heading")
    heading.wait_for(timeout=60000)
    job_url = page.url
    assert heading.inner_text() == "Backup failed: no backup was saved, appdb is unchanged"
    assert page.locator("progress").count() == 0  # nothing keeps moving on a job that ended
    assert page.locator("#job-reason").inner_text() == "Cause: the database refused connections."
    assert not page.locator("#job-error").is_visible()  # the technical detail is folded away
    page.get_by_text("Technical detail").click()
    assert "database error: connection" in page.locator("#job-error").inner_text()
    assert page.get_by_role("button", name="Try again").is_visible()
    assert page.get_by_role("link", name="Back to backups").is_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, base, "vera")
    banner = page.locator(".banner-failed")
    assert banner.inner_text().startswith("Last backup failed at ")
    assert banner.inner_text().endswith(": the database refused connections · details")
    banner.get_by_role("link", name="details").click()
    assert page.url == job_url

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Activity").click()
    row = page.locator("table.activity tbody tr").first
    cells = [row.locator(f'[data-label="{label}"]').inner_text() for label in ("Kind", "Status", "Asked by", "Outcome")]
    assert cells == ["Backup", "failed", "olga", "Failed: the database refused connections"]
    page.get_by_label("Status").select_option("finished")
    page.get_by_role("button", name="Filter").click()
    assert "No jobs match these filters." in page.locator("table.activity").inner_text()


def _a_good_and_a_damaged_backup(app_env: dict, target_db: str, when: datetime, zone: ZoneInfo) -> tuple[str, str]:
    """A real archive of `target_db` taken `when`, and a file an hour older that only looks like one."""
    from app.domain.naming import backup_filename

    folder = Path(app_env["BACKUP_STORAGE_URL"].removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    good = backup_filename("pharmatracker", "staging", when, zone)
    damaged = backup_filename("pharmatracker", "staging", when - timedelta(hours=1), zone)
    subprocess.run(["pg_dump", "-Fc", "-h", "127.0.0.1", "-U", "postgres", "-f", str(folder / good), target_db],
                   check=True)  # fmt: skip
    (folder / damaged).write_bytes(b"PGDMP this is not an archive" * 100)
    return good, damaged


def _restore_through_the_page(page, base: str, filename: str, passkey: str, target_db: str) -> None:
    """Fill in the restore page of `filename` as an admin does, submit, and land on the job's page."""
    page.goto(f"{base}/backups/{filename}/restore")
    page.get_by_label("Passkey").fill(passkey)
    page.get_by_label(f"Type {target_db} to confirm").fill(target_db)
    page.get_by_role("button", name="Restore database").click()
    page.wait_for_url("**/jobs/*")


def test_restore_pages_conclude_failed_unchanged_then_finished_with_undo(page, app_env, processes, target_db):
    import psycopg

    zone = ZoneInfo("Asia/Kolkata")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    good, damaged = _a_good_and_a_damaged_backup(app_env, target_db, yesterday, zone)
    at_backup = table_fingerprint(target_db)
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders")
    today = table_fingerprint(target_db)

    base = console(app_env, processes, ("ada", "admin"))
    sign_in(page, base, "ada")
    page.goto(f"{base}/backups/{good}/restore")
    button = page.get_by_role("button", name="Restore database")
    assert button.is_enabled()  # nothing to make first: the job backs up the database it replaces
    assert "You do not need to make a backup first" in page.locator("#safety-how").inner_text()
    assert "not your password" in page.locator("#passkey-help").inner_text()
    assert page.locator("#tries-left").inner_text() == "5 tries left"

    page.get_by_label("Passkey").fill("not the passkey")
    page.get_by_label(f"Type {target_db} to confirm").fill(target_db)
    button.click()
    summary = page.locator("#error-summary")
    summary.wait_for()
    assert "Wrong passkey" in summary.inner_text() and page.locator("#passkey-error").inner_text() == "Wrong passkey"
    assert page.evaluate("document.activeElement.id") == "error-summary"  # read without scrolling
    assert page.locator("#tries-left").inner_text() == "4 tries left"

    _restore_through_the_page(page, base, damaged, app_env["RESTORE_PASSKEY"], target_db)
    heading = page.locator("h1.failed-heading")
    heading.wait_for(timeout=60000)
    assert heading.inner_text() == f"Restore failed: {target_db} is unchanged"
    assert page.locator("progress").count() == 0
    assert page.locator("#job-reason").inner_text().startswith("Cause: ")
    assert page.get_by_role("link", name="Try again").get_attribute("href") == f"/backups/{damaged}/restore"
    assert table_fingerprint(target_db) == today

    _restore_through_the_page(page, base, good, app_env["RESTORE_PASSKEY"], target_db)
    page.locator("#job-undo").wait_for(timeout=60000)
    done = page.locator("#job-done").inner_text()
    taken = yesterday.astimezone(zone).strftime("%Y-%m-%d %I:%M:%S %p IST")
    assert (f"{target_db} now holds the data of {good} (taken {taken}). The previous data was replaced, and backed "
            "up first as it was at the swap") in done
    # Undo offers the backup the restore made of the database it replaced, never the file it restored.
    undo = page.locator("#job-undo a")
    made = undo.inner_text()
    assert made not in (good, damaged) and made.startswith("pharmatracker-staging-on-")
    assert f"Undo: restore the safety backup {made}." in done
    assert undo.get_attribute("href") == f"/backups/{made}/restore"
    assert table_fingerprint(target_db) == at_backup


PHONE = {"width": 390, "height": 844}


def test_no_page_scrolls_sideways_on_a_phone(browser, app_env, processes):
    from tests.browser.test_list_browser import foreign_backup

    base = console(app_env, processes, ("ada", "admin"))
    foreign_backup(app_env)  # environment tabs, and a row whose maker is not known here
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        page.goto(base + "/login")
        widths = {"login": page.evaluate("document.documentElement.scrollWidth")}
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Create backup").click()
        page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
        widths["job"] = page.evaluate("document.documentElement.scrollWidth")
        filename = page.locator("#job-file code").inner_text()
        for name, path in (("list", "/"), ("filtered list", "/?environment=production"), ("activity", "/activity"),
                           ("restore", f"/backups/{filename}/restore"), ("users", "/users"), ("account", "/account"),
                           ("audit", "/audit")):  # fmt: skip
            page.goto(base + path)
            widths[name] = page.evaluate("document.documentElement.scrollWidth")
        assert widths == {name: min(width, 390) for name, width in widths.items()}, widths
        # The navigation folds behind "Menu" and opens on demand.
        menu = page.get_by_role("button", name="Menu")
        nav = page.get_by_role("navigation", name="Main")
        assert menu.is_visible() and not nav.get_by_role("link", name="Activity").is_visible()
        menu.click()
        assert menu.get_attribute("aria-expanded") == "true" and nav.get_by_role("link", name="Activity").is_visible()
        assert nav.get_by_role("link", name="Audit log").get_attribute("aria-current") == "page"
    finally:
        context.close()


def test_a_new_token_has_a_copy_button(page, app_env, processes):
    base = console(app_env, processes, ("ada", "admin"))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    sign_in(page, base, "ada")
    page.goto(base + "/account")
    page.get_by_label("What the token is for").fill("ci")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text()
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == token
    row = page.get_by_role("row", name="ci")
    assert "viewer" in row.inner_text() and "never" not in row.locator("td").nth(3).inner_text()


ROW_OF_FOCUS = "document.activeElement.closest('tr') ? document.activeElement.closest('tr').rowIndex : 0"


def test_the_keyboard_reaches_row_30s_actions_in_at_most_35_tab_presses(page, app_env, processes):
    from app.domain.naming import backup_filename

    folder = Path(app_env["BACKUP_STORAGE_URL"].removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime.now(UTC) - timedelta(days=1)
    names = [backup_filename("pharmatracker", "staging", start - timedelta(hours=n), ZoneInfo("Asia/Kolkata"))
             for n in range(32)]  # fmt: skip
    for name in names:
        (folder / name).write_bytes(b"a backup")
    older = backup_filename("pharmatracker", "production", start - timedelta(days=3), ZoneInfo("Asia/Kolkata"))
    (folder / older).write_bytes(b"another environment's backup")  # a third tab: All, production, staging
    base = console(app_env, processes, ("ada", "admin"))
    sign_in(page, base, "ada")
    # The top of the list is its environment tabs: each is a Tab stop counted on the way to row 30.
    page.locator("#environment-tabs").evaluate("t => { t.tabIndex = -1; t.focus(); }")
    assert page.locator("#environment-tabs a").count() == 3
    presses = 0
    while presses < 60:
        page.keyboard.press("Tab")
        presses += 1
        if page.evaluate(ROW_OF_FOCUS) == 30:
            break
    assert 3 + 30 <= presses <= 35, presses  # the three tabs, then one stop a row
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")  # opens the row's menu; its first action is one Tab away
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Download"
    assert names[29] in page.evaluate("document.activeElement.closest('tr').innerText")
