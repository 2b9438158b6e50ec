"""The backup page, the list's link to it, the audit log's width and a double click on "Create backup", in the
system Chromium against gunicorn and a worker: at 1280×800 and 390×844, light and dark, with axe-core."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from tests.browser.test_accessibility import SIZES, axe_source, violations  # noqa: F401 - axe_source is a fixture
from tests.browser.test_activity_browser import console, sign_in
from tests.helpers import audit_rows

pytestmark = pytest.mark.browser
LONG_NAME = "m" * 30 + "-a-name-someone-tried-at-sign-in-" + "z"  # 64 characters
WIDEST = "document.documentElement.scrollWidth"


def backup_jobs(app) -> int:
    from app.extensions import db
    from app.store.models import JobRun

    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(JobRun).where(JobRun.kind == "backup"))


def test_a_double_click_makes_one_backup_whose_page_a_viewer_opens_and_the_audit_log_fits(
    browser, page, app_env, processes, make_app, axe_source  # noqa: F811 - the fixture
):  # fmt: skip
    env = {**app_env, "BACKUP_MIN_INTERVAL_SECONDS": "60"}
    base = console(env, processes, ("olga", "operator"), ("vera", "viewer"), ("ada", "admin"))
    app = make_app(BACKUP_MIN_INTERVAL_SECONDS="60")

    # A double click on "Create backup": one backup, and its job page, not a red "wait".
    sign_in(page, base, "olga")
    # Each press held 30 ms: the first request is on its way when the second is sent (the browser drops the
    # first navigation for the second's, as it does for a person's double click).
    page.get_by_role("button", name="Create backup").dblclick(delay=30)
    # The job page says so calmly (until it reloads itself once the job ends).
    page.locator(".flash-info", has_text="Your backup is already running.").wait_for(timeout=30000)
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    assert "/jobs/" in page.url
    assert page.locator(".flash-error").count() == 0
    filename = page.locator("#job-file code").inner_text()
    assert backup_jobs(app) == 1
    outcomes = [e.outcome for e in audit_rows(app, "backup")]
    assert outcomes.count("requested") == 1 and outcomes.count("refused") == 1  # both clicks reached the console
    page.get_by_role("button", name="Sign out").click()

    # Someone tries to sign in with a 64-character name; a refusal whose detail holds a sha256 is logged.
    page.goto(base + "/login")
    page.get_by_label("Username").fill(LONG_NAME)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    with app.app_context():
        from app.store import audit

        digest = hashlib.sha256(b"an archive").hexdigest()
        audit.record("verify", "refused", username="olga", target=filename,
                     detail=f"the archive's sha256 is {digest}, its signed manifest says {'0' * 64}")  # fmt: skip

    # A viewer opens the backup's page from the list: what is known, and no action.
    setup = browser.new_context()  # each person's own browser, left signed in for the pages below
    tab = setup.new_page()
    sign_in(tab, base, "vera")
    row = tab.get_by_role("row", name=filename)
    row.get_by_role("link").first.click()
    tab.wait_for_url(f"**/backups/{filename}")
    assert tab.locator("#backup-filename").inner_text() == filename
    assert len(tab.locator("#fact-sha256").inner_text()) == 64
    assert tab.locator("#fact-made-by").inner_text().startswith("olga (by hand)")
    assert tab.get_by_role("link", name="Download").count() == 0
    assert tab.get_by_role("button").count() == 1  # Sign out: no action for a viewer
    viewer = setup.storage_state()
    setup.close()
    setup = browser.new_context()
    sign_in(setup.new_page(), base, "ada")
    admin = setup.storage_state()
    setup.close()

    found, widths = {}, {}
    for (size, viewport), scheme in itertools.product(SIZES.items(), ("light", "dark")):
        for who, state, paths in (
            ("viewer", viewer, {"backup": f"/backups/{filename}", "list": "/", "filtered": "/?kind=manual&q=olga"}),
            ("admin", admin, {"audit": "/audit", "backup": f"/backups/{filename}"}),
        ):
            context = browser.new_context(viewport=viewport, bypass_csp=True, storage_state=state, color_scheme=scheme)
            tab = context.new_page()
            for name, path in paths.items():
                tab.goto(base + path)
                assert "/login" not in tab.url, (who, path)  # signed in: the page itself is checked
                found[f"{name} as {who} {size} {scheme}"] = violations(tab, axe_source)
                widths[f"{name} as {who} {size} {scheme}"] = (tab.evaluate(WIDEST), viewport["width"])
            if who == "admin":
                tab.goto(base + "/audit")
                user = tab.locator("td[data-label='User'] .clip", has_text=LONG_NAME).first
                assert user.get_attribute("title") == LONG_NAME
                if size == "phone":  # each card names its fields
                    label = user.evaluate("e => getComputedStyle(e.parentElement, '::before').content")
                    assert label == '"User: "', label
            context.close()
    bad = {name: v for name, v in found.items() if v}
    assert not bad, json.dumps(bad, indent=1)
    wide = {name: w for name, w in widths.items() if w[0] > w[1]}
    assert not wide, wide  # no page scrolls sideways, the audit log at 1280 px with its long values included
