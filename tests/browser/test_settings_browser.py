"""The settings page in the system Chromium against gunicorn: an admin changes the schedule and retention and
sees the next runs, a bad cron is refused at its field, an every-minute schedule warns, what the server sets
is locked, and a test notification's result is on screen without scrolling; at 1280×800 and 390×844, light
and dark, with no axe-core violations on the settings and retention pages."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.browser.test_accessibility import SIZES, axe_source, violations  # noqa: F401 - axe_source is a fixture
from tests.browser.test_activity_browser import create_user, sign_in

pytestmark = pytest.mark.browser


def in_view(page, selector: str) -> bool:
    """Whether the element's top is on screen, as the page now stands (no scrolling by the test)."""
    box = page.locator(selector).bounding_box()
    return box is not None and 0 <= box["y"] < page.viewport_size["height"] - 20


def test_an_admin_sets_schedule_retention_and_channels_in_the_page(browser, app_env, processes, receiver,
                                                                    axe_source):  # noqa: F811  # fmt: skip
    env = {**app_env, "VERIFY_SCHEDULE": "0 4 * * 0"}  # the server sets the restore tests: locked on the page
    create_user(env, "ada", "admin")
    base = processes.web(env)
    setup = browser.new_context(viewport=SIZES["desktop"])
    page = setup.new_page()
    page.set_default_timeout(15000)
    sign_in(page, base, "ada")
    page.goto(base + "/settings")

    backup = page.locator("#backup-schedule")
    page.locator("#backup-kind").select_option("daily")
    page.locator("#backup-time").fill("03:15")
    backup.get_by_role("button", name="Save schedule").click()
    page.wait_for_url("**/settings?saved=backup-schedule#backup-schedule")
    assert page.locator("#backup-schedule-words").inner_text() == "Every day at 03:15 (Asia/Kolkata) (15 3 * * *)"
    runs = page.locator("#backup-schedule-runs li").all_inner_texts()
    assert len(runs) == 5 and all(run.endswith("03:15:00 AM IST") for run in runs)

    page.locator("#backup-kind").select_option("cron")
    page.locator("#backup-cron").fill("61 * * * *")
    backup.get_by_role("button", name="Save schedule").click()
    error = page.locator("#backup-cron-error")
    assert error.inner_text() == "Minute must be 0–59 (got 61)."
    assert in_view(page, "#backup-cron-error")  # the answer lands at the field, not at the top of the page
    page.locator("#backup-cron").fill("* * * * *")
    page.locator("#backup-schedule").get_by_role("button", name="Save schedule").click()
    page.wait_for_url("**#backup-schedule")
    warning = page.locator("#retention-warning-1").inner_text()
    assert "keeping the newest 30 keeps only the last 30 minutes of backups" in warning

    page.locator("#max_backup_files").fill("2")
    page.locator("#retention_daily").fill("7")
    page.locator("#retention").get_by_role("button", name="Save retention").click()
    page.wait_for_url("**#retention")
    assert "newest 2 + 7 daily" in page.locator("#retention").inner_text()
    assert "only the last 2 minutes of backups, besides one a day for 7 days" in page.locator(
        "#retention-warning-1").inner_text()  # fmt: skip

    assert page.locator("#verify-kind").is_disabled() and page.locator("#verify-cron").is_disabled()
    assert (
        "Set by the server (VERIFY_SCHEDULE); change it there." in page.locator("#verify_schedule-locked").inner_text()
    )
    assert page.locator("#verify-schedule").get_by_role("button", name="Save schedule").count() == 0

    tester = page.get_by_role("button", name="Send a test notification")
    assert tester.is_disabled() and "Add a channel first" in page.locator("#notify-disabled").inner_text()
    page.get_by_label("Apprise URL").fill(receiver.url() + "/s3cr3t-token")
    assert page.get_by_label("Apprise URL").get_attribute("type") == "password"
    page.get_by_role("button", name="Add channel").click()
    page.wait_for_url("**#notifications")
    assert "s3cr3t" not in page.content()
    state = setup.storage_state()
    setup.close()

    found = {}
    for (size, viewport), scheme in itertools.product(SIZES.items(), ("light", "dark")):
        context = browser.new_context(viewport=viewport, bypass_csp=True, storage_state=state, color_scheme=scheme)
        tab = context.new_page()
        tab.set_default_timeout(15000)
        tab.goto(base + "/settings")
        found[f"settings {size} {scheme}"] = violations(tab, axe_source)
        tab.get_by_role("button", name="Send a test notification").click()
        tab.locator("#notify-summary").wait_for()
        assert tab.locator("#notify-summary").inner_text() == "Every channel took it.", size
        assert in_view(tab, "#notify-summary"), f"the result is off screen at {size} {scheme}"
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), size
        found[f"settings with a result {size} {scheme}"] = violations(tab, axe_source)
        tab.goto(base + "/retention")
        found[f"retention {size} {scheme}"] = violations(tab, axe_source)
        context.close()
    assert len(receiver.requests) == 4
    bad = {name: v for name, v in found.items() if v}
    assert not bad, json.dumps(bad, indent=1)
