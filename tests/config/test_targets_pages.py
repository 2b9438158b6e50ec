"""Targets on the pages: the overview marks a stale target, in the test client and in the browser; the list has tabs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.config.targets import backed_up, make_person, token
from tests.support import ROOT
from tests.support.processes import child_env


def test_the_overview_marks_a_stale_target(console):
    client, _ = make_person(console, "ada", "admin")
    backed_up(console, client, token(console, "ada"), "production")
    page = client.get("/").get_data(as_text=True)
    rows = dict(re.findall(r'<tr class="target-row([^"]*)" data-target="(\w+)"', page)[i][::-1] for i in range(3))
    assert rows == {"staging": " stale", "production": "", "reports": " stale"}
    assert "backup <strong>ok</strong>" in page  # production's last job
    assert 'data-label="Newest backup"' in page and 'data-label="Last job"' in page  # each card says what is what
    assert client.get("/targets/production/").status_code == 200


def test_a_targets_list_has_tabs_on_its_own_address_and_says_who_made_each_backup(console):
    """staging and production share a bucket: production's list has both, and the console store knows both."""
    from tests.web.test_backups_list import cell, tabs_of

    client, _ = make_person(console, "ada", "admin")
    headers = token(console, "ada")
    ours, theirs = backed_up(console, client, headers, "production"), backed_up(console, client, headers, "staging")
    page = client.get("/targets/production/").get_data(as_text=True)
    assert tabs_of(page) == [("All", "/targets/production/", True),
                             ("production", "/targets/production/?environment=production", False),
                             ("staging", "/targets/production/?environment=staging", False)]  # fmt: skip
    assert cell(page, ours, "Made by") == cell(page, theirs, "Made by") == "ada · manual"
    only = client.get("/targets/production/?environment=staging").get_data(as_text=True)
    assert theirs in only and ours not in only


@pytest.mark.browser
def test_the_overview_in_the_browser_shows_which_target_is_stale(page, processes, targets_env):
    """gunicorn and a worker as real processes; production is backed up from the CLI, the others never were."""
    from tests.browser.test_browser import sign_in
    from tests.helpers import PASSWORD

    def flask(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, input=stdin,
                              env=child_env(targets_env), capture_output=True, text=True, timeout=180)  # fmt: skip

    assert flask("users", "create", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD).returncode == 0
    base = processes.web(targets_env)
    processes.worker(targets_env)
    made = flask("backup", "create", "--target", "production", "--wait")
    assert made.returncode == 0 and "Backup finished: pharmatracker-production-on-" in made.stdout, made.stderr

    sign_in(page, base)
    page.get_by_role("heading", name="Targets").wait_for()
    rows = page.locator("table.targets tbody tr")
    assert rows.count() == 3
    production, staging = rows.filter(has_text="production"), page.locator('tr[data-target="staging"]')
    assert "pharmatracker-production-on-" in production.inner_text()
    assert "backup ok" in production.inner_text() and "stale" not in production.inner_text()
    assert "stale" in staging.inner_text() and "none yet" in staging.inner_text()
    # It stands out: a stale row is painted differently from a healthy one.
    background = "el => getComputedStyle(el).backgroundColor"
    assert staging.evaluate(background) != production.evaluate(background)

    page.get_by_role("link", name="production", exact=True).click()
    page.get_by_role("heading", name="Backups").wait_for()
    assert page.url == base + "/targets/production/"
    assert page.locator("#target-name").inner_text() == "production"
    assert "pharmatracker-production-on-" in page.locator("table.backups tbody tr").first.inner_text()
