"""Messages, numbers and forms for people, in the system Chromium against gunicorn and a worker, at
1280x800 and 390x844, light and dark: a missing database named as such, the users page, the restore
page's danger and button, Copy buttons for one-time secrets, recovery codes as a file, the chart's
legend and labels; axe-core finds nothing on these pages."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from tests.browser.test_accessibility import SIZES, axe_source, violations  # noqa: F401 - axe_source: a fixture
from tests.browser.test_activity_browser import console, sign_in
from tests.support.databases import new_name

pytestmark = pytest.mark.browser


def test_a_backup_of_a_missing_database_says_it_does_not_exist(page, app_env, processes):
    missing = new_name("pgct_missing")
    env = {**app_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{missing}"}
    base = console(env, processes, ("olga", "operator"))
    sign_in(page, base, "olga")
    page.get_by_role("button", name="Create backup").click()
    page.wait_for_url("**/jobs/*")
    page.locator("h1.failed-heading").wait_for(timeout=60000)
    cause = page.locator("#job-reason").inner_text()
    assert cause == "Cause: the database does not exist on the server: check its name."
    page.get_by_text("Technical detail").click()
    assert f'database "{missing}" does not exist' in page.locator("#job-error").inner_text()
    assert "refused" not in page.locator("#job-reason").inner_text()


def made_backup(page, base: str) -> str:
    page.goto(base + "/")
    page.get_by_role("button", name="Create backup").click()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    return page.locator("#job-file code").inner_text()


def scoped_violations(page, source: str, selector: str) -> list[str]:
    """axe-core on one part of a page (the trend chart: the rest of the list is another page's test)."""
    page.evaluate(source)
    return page.evaluate(
        "async (selector) => (await axe.run(selector, {rules: {'target-size': {enabled: true}}})).violations"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))",
        selector,
    )


def test_users_restore_account_and_chart_at_both_sizes_light_and_dark(browser, app_env, processes, axe_source):  # noqa: F811
    base = console(app_env, processes, ("ada", "admin"), ("olga", "operator"))
    setup = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = setup.new_page()
    page.set_default_timeout(15000)
    sign_in(page, base, "ada")
    filename = made_backup(page, base)
    made_backup(page, base)  # two of one day: the chart labels their times, not one date twice

    # A new user without a password: a one-time link with Copy, and the form empty again.
    page.goto(base + "/users")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_role("button", name="Add user").click()
    link = page.locator("#set-password-link")
    assert "/set-password/#" in link.inner_text()
    assert page.get_by_label("Username").input_value() == ""
    page.locator('button[data-copy="set-password-link"]').click()
    page.locator(".copy-done", has_text="Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == link.inner_text()

    # A token: Copy beside it, the form empty again; a non-number expiry refused at the field.
    page.goto(base + "/account")
    page.get_by_label("What the token is for").fill("ci")
    page.get_by_label("Expires after (days, empty for never)").fill("soon")
    page.get_by_role("button", name="Create token").click()
    assert "whole number of days" in page.locator("#token-expires_days-error").inner_text()
    assert page.locator("#new-token").count() == 0
    page.get_by_label("Expires after (days, empty for never)").fill("30")
    page.get_by_role("button", name="Create token").click()
    assert page.locator('button[data-copy="new-token"]').is_visible()
    assert page.get_by_label("What the token is for").input_value() == ""

    # Two-factor codes: the recovery codes copy and download as a text file.
    page.goto(base + "/account/two-factor")
    secret = page.locator("#totp-secret").inner_text()
    import pyotp

    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor codes").click()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as a text file").click()
    assert download.value.suggested_filename == "pgconsole-recovery-codes.txt"
    assert Path(download.value.path()).read_text().splitlines()[-10:] == codes
    page.get_by_role("button", name="Copy the codes").click()
    page.locator(".copy-done", has_text="Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()").split() == codes
    found = {}
    for (size, viewport), scheme in itertools.product(SIZES.items(), ("light", "dark")):  # shown once: this page
        page.set_viewport_size(viewport)
        page.emulate_media(color_scheme=scheme)
        found[f"recovery codes {size} {scheme}"] = violations(page, axe_source)
    state = setup.storage_state()
    setup.close()

    for (size, viewport), scheme in itertools.product(SIZES.items(), ("light", "dark")):
        context = browser.new_context(viewport=viewport, bypass_csp=True, storage_state=state, color_scheme=scheme)
        tab = context.new_page()
        tab.set_default_timeout(15000)
        where = f"{size} {scheme}"

        tab.goto(base + "/users")
        explained = tab.locator("#roles-explained").inner_text()
        assert all(role in explained for role in ("Viewer", "Operator", "Admin")), explained
        assert tab.get_by_role("button", name="Disable ada").count() == 0  # yourself (and the last admin)
        disable = tab.get_by_role("button", name="Disable olga")
        assert "danger" in disable.get_attribute("class")
        tab.once("dialog", lambda dialog: dialog.dismiss())  # confirmed first: dismissed, nothing happens
        disable.click()
        assert tab.get_by_role("button", name="Disable olga").is_visible()
        found[f"users {where}"] = violations(tab, axe_source)

        tab.goto(f"{base}/backups/{filename}/restore")
        danger = tab.locator("#restore-danger")
        assert "This replaces a live database." in danger.inner_text()
        assert danger.bounding_box()["y"] < tab.locator("#confirm-card").bounding_box()["y"]
        if size == "desktop":  # in view without scrolling
            button = tab.get_by_role("button", name="Restore database").bounding_box()
            assert button["y"] + button["height"] <= viewport["height"], button
        borders = tab.locator("#confirm-card fieldset").evaluate_all(
            "fs => fs.map(f => getComputedStyle(f).borderTopStyle)")
        assert borders and set(borders) == {"none"}, borders  # no box drawn inside the Confirm card
        found[f"restore {where}"] = violations(tab, axe_source)

        tab.goto(base + "/account")
        found[f"account {where}"] = violations(tab, axe_source)

        tab.goto(base + "/")
        chart = tab.locator(".trend-narrow" if size == "phone" else ".trend-wide")
        assert chart.is_visible() and tab.locator(".trend-legend").is_visible()
        texts = chart.locator("text.axis-label").evaluate_all("labels => labels.map(l => l.textContent)")
        labels = [t for t in texts if re.fullmatch(r"\d\d:\d\d", t)]  # one day's backups: their times
        assert len(labels) == len(set(labels)) >= 1, labels
        box = chart.bounding_box()
        assert box["width"] <= viewport["width"], box
        found[f"chart {where}"] = scoped_violations(tab, axe_source, ".trend")
        context.close()
    bad = {name: v for name, v in found.items() if v}
    assert not bad, json.dumps(bad, indent=1)
