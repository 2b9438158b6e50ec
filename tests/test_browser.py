"""Through the real pages, in the system Chromium, against gunicorn and a worker process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PASSWORD, ROOT, child_env

pytestmark = pytest.mark.browser


@pytest.fixture
def live(app_env, processes):
    """gunicorn and a worker as real processes, sharing this test's database, Redis and folder."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "users",
            "create",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        cwd=ROOT,
        env=child_env(app_env),
        input=PASSWORD,
        text=True,
        check=True,
        capture_output=True,
    )
    base = processes.web(app_env)
    processes.worker(app_env)
    return base


def sign_in(page, base: str, username: str = "admin", password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_through_the_real_page(page, live):
    sign_in(page, live, password="wrong password")
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    sign_in(page, live)
    page.get_by_role("heading", name="Backups").wait_for()
    assert page.locator(".env").first.inner_text().lower() == "staging"
    assert "admin (admin)" in page.locator("nav").inner_text()


def test_create_backup_and_watch_it_finish(page, live):
    sign_in(page, live)
    page.get_by_role("button", name="Create backup").click()
    page.wait_for_url("**/jobs/*")
    job_url = page.url
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    assert page.locator("#job-bar").get_attribute("value") == "100"
    assert page.locator("#job-phase").inner_text() == "done"
    filename = page.locator("#job-file").inner_text().removeprefix("File: ").strip()
    assert filename.startswith("pharmatracker-staging-on-") and filename.endswith("-IST.dump")

    page.reload()  # the job page is tied to the job id, not to the tab that started it
    assert page.locator("#job-status").inner_text() == "finished"
    assert page.url == job_url

    page.get_by_role("link", name="Back to backups").click()
    first_row = page.locator("table.backups tbody tr").first
    assert filename in first_row.inner_text()
    assert "staging" in first_row.inner_text().lower()
