"""Through the real pages, in the system Chromium, against gunicorn and a worker process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import PASSWORD
from tests.support import ROOT
from tests.support.processes import child_env

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


def test_the_whole_restore_flow_through_the_pages(page, live, app_env, target_db, tmp_path):
    import subprocess
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from zoneinfo import ZoneInfo

    import psycopg

    from app.domain.naming import backup_filename
    from tests.support.databases import PG, table_fingerprint

    # Yesterday's backup (made by hand, without a manifest), then a day of changes.
    at_backup = table_fingerprint(target_db)
    folder = Path(app_env["BACKUP_STORAGE_URL"].removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    name = backup_filename("pharmatracker", "staging", datetime.now(UTC) - timedelta(days=1), ZoneInfo("Asia/Kolkata"))
    subprocess.run(
        ["pg_dump", "-Fc", "-h", "127.0.0.1", "-U", "postgres", "-f", str(folder / name), target_db], check=True
    )
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders")
    assert table_fingerprint(target_db) != at_backup

    sign_in(page, live)
    row = page.get_by_role("row", name=name)
    row.locator("summary").click()  # the row's actions menu
    row.get_by_role("link", name="Restore").click()
    # No backup to make first: the job backs up the database it replaces.
    page.get_by_text("You do not need to make a backup first").wait_for()

    page.get_by_label("Passkey").fill(app_env["RESTORE_PASSKEY"])
    page.get_by_label(f"Type {target_db} to confirm").fill(target_db)
    page.get_by_role("button", name="Restore database").click()
    page.wait_for_load_state()
    assert "/jobs/" in page.url, page.locator("main").inner_text()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    assert page.locator("#job-bar").get_attribute("value") == "100"
    assert "no manifest" in page.locator("#job-warning").inner_text()
    assert table_fingerprint(target_db) == at_backup


def test_an_admin_adds_an_operator_who_can_back_up_but_not_restore(page, live):
    sign_in(page, live)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Role", exact=True).select_option("operator")
    page.get_by_label("Initial password").fill("olga's long password")
    page.get_by_role("button", name="Add user").click()
    page.get_by_text("Added operator olga.").wait_for()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live, "olga", "olga's long password")
    assert "olga (operator)" in page.locator("nav").inner_text()
    page.get_by_role("button", name="Create backup").click()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    page.get_by_role("link", name="Back to backups").click()
    rows = page.locator("table.backups tbody tr")
    rows.first.locator("summary").click()  # the row's actions menu, open: Download, but no Restore
    assert rows.count() == 1 and "Download" in rows.first.inner_text()
    assert page.get_by_role("link", name="Restore").count() == 0
    assert page.get_by_role("link", name="Users").count() == 0
    filename = rows.first.locator(".filename").inner_text().split()[0]
    response = page.goto(f"{live}/backups/{filename}/restore")
    assert response.status == 403
    assert "This needs the admin role" in page.locator("main").inner_text()


def test_pin_a_backup_and_prove_it_restorable_from_the_page(page, live):
    sign_in(page, live)
    page.get_by_role("button", name="Create backup").click()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    page.get_by_role("link", name="Back to backups").click()
    row = page.locator("table.backups tbody tr").first
    filename = row.locator(".filename").inner_text().split()[0]
    row.locator("summary").click()  # the row's actions menu
    row.get_by_label(f"Note for {filename}").fill("before the v2.3 migration")
    row.get_by_role("button", name="Pin").click()
    page.get_by_text(f"Pinned {filename}").wait_for()
    row = page.locator("table.backups tbody tr").first
    assert "pinned: before the v2.3 migration" in row.inner_text()

    row.locator("summary").click()
    row.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/jobs/*")
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    page.get_by_role("link", name="Back to backups").click()
    proven = page.locator("table.backups tbody tr").first.locator("td").nth(4).inner_text()
    assert proven.endswith("IST")  # when it was last proven restorable


def test_single_sign_on_through_the_provider_in_the_browser(page, app_env, processes, oidc_provider):
    """The whole round trip in Chromium: the console's button, the provider's page, back signed in."""
    env = {**app_env, "OIDC_ISSUER": oidc_provider.url, "OIDC_CLIENT_ID": "pgconsole",
           "OIDC_CLIENT_SECRET": "browser-test-client-secret", "OIDC_ROLE_MAP": "dba=admin,developers=operator",
           "OIDC_BUTTON_TEXT": "Sign in with Example ID"}  # fmt: skip
    base = processes.web(env)
    oidc_provider.set_user("u-1", preferred_username="alice", email="alice@example.com", groups=["dba"])
    oidc_provider.set_user("u-2", preferred_username="mallory", groups=["marketing"])

    page.goto(base + "/login")
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.wait_for_url(oidc_provider.url + "/oauth2/authorize*")  # the provider's own page
    page.get_by_placeholder("sub").fill("u-1")
    page.get_by_role("button", name="Authorize").click()
    page.get_by_role("heading", name="Backups").wait_for()
    assert page.url == base + "/"
    assert "alice (admin)" in page.locator("nav").inner_text()
    page.get_by_role("link", name="Users").click()
    assert "single sign-on" in page.locator("table.users").inner_text()

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.get_by_placeholder("sub").fill("u-2")
    page.get_by_role("button", name="Authorize").click()
    page.get_by_role("heading", name="Not signed in").wait_for()
    assert "none of your groups is given a role in this console" in page.locator("#refusal").inner_text()
    assert page.locator("nav").inner_text().strip() == ""  # nobody is signed in


def test_two_factor_enrolment_and_sign_in_in_the_browser(page, app_env, processes):
    """REQUIRE_2FA=admins: the admin lands on enrolment, the server-drawn QR code shows, then the Code step."""
    import re
    import time

    import pyotp

    env = {**app_env, "REQUIRE_2FA": "admins"}
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", "ada", "--role", "admin",
                    "--password-stdin"], cwd=ROOT, env=child_env(env), input=PASSWORD, text=True, check=True,
                   capture_output=True)  # fmt: skip
    base = processes.web(env)
    sign_in(page, base, "ada")
    page.get_by_role("heading", name="Set up two-factor codes").wait_for()
    assert page.url == base + "/account/two-factor"
    qr = page.get_by_role("img", name="QR code of your two-factor secret")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 100")  # drawn, and allowed by the CSP
    secret = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor codes").click()
    assert page.locator("#recovery-codes li").count() == 10
    page.get_by_role("link", name="I have saved them").click()
    assert "On since" in page.locator("#two-factor-state").inner_text()

    page.get_by_role("button", name="Sign out", exact=True).click()
    sign_in(page, base, "ada")
    page.get_by_role("heading", name="Code").wait_for()
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Backups").wait_for()
    assert "ada (admin)" in page.locator("nav").inner_text()
