"""Stop in the system Chromium, against gunicorn and a worker process: an operator stops a running backup at
1280×800 (light), an admin a running restore before its swap at 390×844 (dark); each page shows the tool's log
while it runs and "… stopped by <name>" after, with no axe violations either time, and nothing changed:
no object or upload in the bucket, the live database as it was, no scratch database."""

from __future__ import annotations

import psycopg
import pytest

from tests.browser.test_accessibility import SIZES, axe_source, violations  # noqa: F401 - axe_source: a fixture
from tests.browser.test_activity_browser import console, sign_in
from tests.helpers import PASSKEY, open_uploads, wait_for, wait_for_job
from tests.jobs.test_stop_job import _hold_once_logged, _token, _tool
from tests.support.databases import PG, database_names, table_fingerprint

pytestmark = pytest.mark.browser
HOLD_SECONDS = 6.0  # each write to the store, once held: the backup stays in "Dump and upload" for long enough



def test_stop_a_running_backup_and_a_running_restore_in_the_browser(
    browser, app_env, slow_s3, target_db, pg_admin, processes, console_of, make_app, request, tmp_path
):
    axe = request.getfixturevalue("axe_source")  # test_accessibility's, imported above
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:  # seconds for pg_restore to load
        conn.execute("CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 32) AS body "
                     "FROM generate_series(1, 150000) g")  # fmt: skip
    from app.jobs.queue import job_status

    proxy, s3 = slow_s3
    env = {**app_env, **s3, "RESTORE_JOBS": "1"}
    base = console(env, processes, ("olga", "operator"), ("ada", "admin"))
    settings, redis, storage = console_of(env)
    admin = _token(make_app(**env), "ada-api", "admin")
    made = wait_for_job(redis, _post(base, "/api/setting/backup", admin)["job_id"], timeout=90)
    filename = made["result"]["filename"]
    kept = sorted(o.name for o in storage.list_objects())
    found = {}

    # An operator stops a running backup (its writes to the store held), at 1280×800 in light mode.
    proxy.hold = lambda method, path: HOLD_SECONDS if method in ("PUT", "POST") else 0.0
    context = browser.new_context(viewport=SIZES["desktop"], bypass_csp=True, color_scheme="light")
    page = context.new_page()
    sign_in(page, base, "olga")
    page.get_by_role("button", name="Create backup").click()
    page.wait_for_url("**/jobs/*")
    page.locator("#job-log", has_text="pg_dump: ").wait_for(timeout=30000)  # the live log, while it runs
    assert page.locator("#job-status").inner_text() == "running"
    assert page.locator("#job-step").inner_text().strip() == "· step 2 of 4: Dump and upload"
    found["backup running"] = violations(page, axe)
    page.screenshot(path=str(tmp_path / "job-backup-running.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    heading = page.get_by_role("heading", name="Backup stopped by olga")
    heading.wait_for(timeout=30000)
    assert heading.inner_text() == f"Backup stopped by olga: no backup was saved, {target_db} is unchanged"
    assert page.get_by_role("button", name="Try again").count() == 0 and page.locator("progress").count() == 0
    found["backup stopped"] = violations(page, axe)
    context.close()
    proxy.hold = lambda method, path: 0.0
    assert sorted(o.name for o in storage.list_objects()) == kept and open_uploads(storage) == []

    # An admin stops a running restore before its swap (pg_restore held), at 390×844 in dark mode.
    before = table_fingerprint(target_db)
    context = browser.new_context(viewport=SIZES["phone"], bypass_csp=True, color_scheme="dark")
    page = context.new_page()
    sign_in(page, base, "ada")
    job_id = _post(base, "/api/setting/restore", admin, {"filename": filename, "passkey": PASSKEY})["job_id"]
    pid = wait_for(lambda: _tool(processes, "pgconsole-restore-", f"{target_db}_pgc_restore_"), timeout=60,
                   interval=0.005,
                   message="pg_restore into the scratch database")  # fmt: skip
    # Held (ended by SIGKILL after the grace then: a stopped process does not answer SIGTERM), once it has logged.
    _hold_once_logged(pid, lambda: any(line.startswith("pg_restore: ") for line in job_status(redis, job_id)["log"]))
    page.goto(f"{base}/jobs/{job_id}")
    page.locator("#job-log", has_text="pg_restore: ").wait_for(timeout=30000)
    assert page.locator("#job-step").inner_text().strip() == "· step 4 of 6: Restore into a scratch database"
    found["restore running"] = violations(page, axe)
    page.screenshot(path=str(tmp_path / "job-restore-running.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    heading = page.get_by_role("heading", name="Restore stopped by ada")
    heading.wait_for(timeout=30000)
    assert heading.inner_text() == f"Restore stopped by ada: {target_db} is unchanged"
    found["restore stopped"] = violations(page, axe)
    context.close()
    assert table_fingerprint(target_db) == before
    assert database_names(pg_admin, f"{target_db}_pgc_%") == []
    assert not {page: v for page, v in found.items() if v}, found


def _post(base: str, path: str, headers: dict[str, str], body: dict | None = None) -> dict:
    import json
    import urllib.request

    request = urllib.request.Request(base + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 202
        return json.loads(answer.read())
