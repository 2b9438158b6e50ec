"""The Upload page in a real browser against gunicorn and a worker: the file is PUT by the page's script, the
uploaded file's page says who uploaded it and, once the worker has read it, what it holds; a PNG is refused
on the page; axe-core finds nothing on either page at both sizes, light and dark."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.browser.test_accessibility import SIZES, axe_source, violations  # noqa: F401 - axe_source: a fixture
from tests.browser.test_activity_browser import console, sign_in
from tests.jobs.test_uploads import dump_made_elsewhere
from tests.support.databases import drop_database

pytestmark = pytest.mark.browser


def test_upload_on_the_page_then_its_page_says_uploaded(browser, app_env, processes, pg_admin, tmp_path,
                                                        axe_source):  # noqa: F811  # fmt: skip
    source, archive = dump_made_elsewhere(pg_admin, tmp_path, "from-old-host.dump", rows=500)
    try:
        png = tmp_path / "photo.dump"
        png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        base = console(app_env, processes, ("ada", "admin"))
        setup = browser.new_context()
        page = setup.new_page()
        sign_in(page, base, "ada")
        page.get_by_role("link", name="Upload a dump made elsewhere").click()
        page.get_by_label("Archive file").set_input_files(str(png))
        page.get_by_role("button", name="Upload").click()
        page.locator("#upload-status", has_text="This is not a pg_dump archive: it is a PNG image.").wait_for()

        page.reload()
        page.get_by_label("Archive file").set_input_files(str(archive))
        page.get_by_role("button", name="Upload").click()
        page.wait_for_url("**/backups/pharmatracker-uploaded-on-*")
        uploaded = page.url.removeprefix(base)
        facts = page.locator("#fact-uploaded")
        assert "Uploaded by ada from the file from-old-host.dump" in facts.inner_text()
        for _ in range(60):  # the worker reads it within seconds
            if "pg_restore reads it" in facts.inner_text():
                break
            page.wait_for_timeout(500)
            page.reload()
        assert "pg_restore reads it: 2 tables in 1 schema." in facts.inner_text()
        state = setup.storage_state()
        setup.close()

        found = {}
        for (size, viewport), scheme in itertools.product(SIZES.items(), ("light", "dark")):
            context = browser.new_context(viewport=viewport, bypass_csp=True, storage_state=state,
                                          color_scheme=scheme)  # fmt: skip
            tab = context.new_page()
            for name, path in {"upload": "/uploads/new", "uploaded": uploaded}.items():
                tab.goto(base + path)
                found[f"{name} {size} {scheme}"] = violations(tab, axe_source)
            context.close()
        bad = {name: v for name, v in found.items() if v}
        assert not bad, json.dumps(bad, indent=1)
    finally:
        drop_database(pg_admin, source)
