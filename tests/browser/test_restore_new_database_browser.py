"""Restore into a new database in a browser: the page's choice, a bad name said at its field, the job page's
connection string; axe-core on both pages at 1280×800 and 390×844, light and dark."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.browser.test_accessibility import SIZES, axe_source, violations  # noqa: F401 - the fixture
from tests.browser.test_activity_browser import console, sign_in
from tests.helpers import PASSKEY
from tests.support.databases import drop_database, new_name, table_fingerprint

pytestmark = pytest.mark.browser


def test_a_backup_restored_into_a_new_database_from_the_page(browser, app_env, processes, pg_admin, target_db,
                                                             axe_source):  # noqa: F811  # fmt: skip
    base = console(app_env, processes, ("ada", "admin"))
    new = new_name("pgct_new")
    setup = browser.new_context()
    page = setup.new_page()
    try:
        sign_in(page, base, "ada")
        page.get_by_role("button", name="Create backup").click()
        page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
        filename = page.locator("#job-file code").inner_text()
        restore_url = f"{base}/backups/{filename}/restore"
        page.goto(restore_url)
        page.get_by_label("Into a new database: replaces nothing").check()
        page.get_by_label("Name of the new database").fill("1 bad")
        page.get_by_label("Passkey").fill(PASSKEY)
        page.get_by_label("to confirm").fill("new:1 bad")
        page.get_by_role("button", name="Restore database").click()
        page.locator("#new_database-error", has_text="Use only letters, digits and underscores").wait_for()
        refused_url = page.url

        page.get_by_label("Name of the new database").fill(new)
        page.get_by_label("Passkey").fill(PASSKEY)
        page.get_by_label("to confirm").fill(f"new:{new}")
        page.get_by_role("button", name="Restore database").click()
        page.wait_for_url("**/jobs/*")
        page.locator("#job-new-database", has_text=f"Restored into new database {new}").wait_for(timeout=60000)
        assert f"postgresql://postgres@127.0.0.1:5432/{new}" in page.locator("#job-connection").inner_text()
        assert table_fingerprint(new) == table_fingerprint(target_db)
        job_url = page.url
        state = setup.storage_state()

        found = {}
        for (size, viewport), scheme in itertools.product(SIZES.items(), ("light", "dark")):
            context = browser.new_context(viewport=viewport, bypass_csp=True, storage_state=state,
                                          color_scheme=scheme)  # fmt: skip
            tab = context.new_page()
            tab.goto(f"{restore_url}?into=new")
            found[f"restore into new {size} {scheme}"] = violations(tab, axe_source)
            tab.get_by_label("Name of the new database").fill("1 bad")
            tab.get_by_role("button", name="Restore database").click()
            tab.locator("#error-summary").wait_for()
            found[f"refused {size} {scheme}"] = violations(tab, axe_source)
            tab.goto(job_url)
            found[f"job {size} {scheme}"] = violations(tab, axe_source)
            context.close()
        assert refused_url.startswith(restore_url)
        bad = {name: v for name, v in found.items() if v}
        assert not bad, json.dumps(bad, indent=1)
    finally:
        setup.close()
        drop_database(pg_admin, new)
