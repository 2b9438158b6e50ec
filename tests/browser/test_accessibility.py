"""axe-core on the main pages at 1280×800 and 390×844, light and dark: no violations, `target-size` included.

axe-core is the npm package, installed by `.ci/run` (or `npm install --prefix .cache/npm axe-core@AXE_VERSION`)
into `.cache/npm`; a missing copy fails the test, as a missing service does.
"""

from __future__ import annotations

import itertools
import json

import pytest

from tests.browser.test_activity_browser import console, sign_in
from tests.browser.test_list_browser import foreign_backup
from tests.support import ROOT

pytestmark = pytest.mark.browser
AXE_VERSION = "4.14.1"  # .ci/run installs this exact version
AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed at {AXE}: run npm install --prefix .cache/npm axe-core@{AXE_VERSION}")
    installed = json.loads((AXE.parent / "package.json").read_text())["version"]
    assert installed == AXE_VERSION, f"axe-core {installed} installed, the tests pin {AXE_VERSION}"
    return AXE.read_text()


def violations(page, axe_source: str) -> list[str]:
    page.evaluate(axe_source)
    found = page.evaluate(
        "async () => (await axe.run(document, {rules: {'target-size': {enabled: true}}})).violations"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return found


def test_no_axe_violations_on_the_main_pages_at_both_sizes_light_and_dark(browser, app_env, processes, axe_source):
    base = console(app_env, processes, ("ada", "admin"))
    foreign_backup(app_env)  # the list then has environment tabs and a row of unknown maker
    setup = browser.new_context()
    page = setup.new_page()
    # A failed sign-in with a 64-character name: the audit log's widest value, checked too.
    page.goto(base + "/login")
    page.get_by_label("Username").fill("n" * 64)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    sign_in(page, base, "ada")
    page.get_by_role("button", name="Create backup").click()
    page.locator("#job-status", has_text="finished").wait_for(timeout=60000)
    job = page.url
    filename = page.locator("#job-file code").inner_text()
    state = setup.storage_state()
    setup.close()
    paths = {"list": "/", "filtered list": "/?environment=staging", "unknown environment": "/?environment=nowhere",
             "activity": "/activity", "job": job.removeprefix(base), "users": "/users",
             "restore": f"/backups/{filename}/restore", "account": "/account", "audit": "/audit",
             "backup": f"/backups/{filename}", "searched list": "/?kind=manual&q=ada", "settings": "/settings",
             "retention": "/retention"}  # fmt: skip
    found = {}
    for (size, viewport), scheme in itertools.product(SIZES.items(), ("light", "dark")):
        # bypass_csp: axe is injected as a script, which the console's CSP (rightly) refuses to pages.
        anonymous = browser.new_context(viewport=viewport, bypass_csp=True, color_scheme=scheme)
        login = anonymous.new_page()
        login.goto(base + "/login")
        found[f"login {size} {scheme}"] = violations(login, axe_source)
        anonymous.close()
        context = browser.new_context(viewport=viewport, bypass_csp=True, storage_state=state, color_scheme=scheme)
        tab = context.new_page()
        for name, path in paths.items():
            tab.goto(base + path)
            found[f"{name} {size} {scheme}"] = violations(tab, axe_source)
        context.close()
    bad = {page: v for page, v in found.items() if v}
    assert not bad, json.dumps(bad, indent=1)
