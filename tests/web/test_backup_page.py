"""A page per backup (`/backups/<filename>`), for each role that may see it, and a double click on
"Create backup" that lands on the job it started."""

from __future__ import annotations

import re

import pytest

from tests.helpers import audit_rows, post, run_jobs_for, signed_in
from tests.store.test_history import queued

# --------------------------------------------------------------------------- a double submit


@pytest.mark.parametrize("interval", ["60", "0"], ids=["refused-by-the-interval", "refused-by-the-lock"])
def test_a_second_click_on_create_backup_lands_on_the_job_the_first_started(make_app, make_user, interval):
    app = make_app(BACKUP_MIN_INTERVAL_SECONDS=interval)
    operator, auth = signed_in(app, make_user, "operator", "olga")
    first = post(operator, auth, "/backups")
    second = post(operator, auth, "/backups")
    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"] and first.headers["Location"].startswith("/jobs/")
    page = operator.get(second.headers["Location"]).text
    assert "Your backup is already running." in page and "flash-error" not in page
    assert queued(app) == 1
    assert [e.outcome for e in audit_rows(app, "backup")] == ["requested", "refused"]


def test_the_api_says_which_of_your_backups_a_second_request_ran_into(make_app, make_user, token_for):
    app = make_app(BACKUP_MIN_INTERVAL_SECONDS="60")
    make_user("olga", "operator")
    api, headers = app.test_client(), token_for("olga")
    first = api.post("/api/setting/backup", headers=headers).get_json()
    second = api.post("/api/setting/backup", headers=headers)
    body = second.get_json()
    assert second.status_code == 429 and re.search(r"wait \d+ s", body["error"])
    assert body["job_id"] == first["job_id"] and body["status_url"] == first["status_url"]

    make_user("otto", "operator")  # someone else's backup is not theirs to be led to
    other = api.post("/api/setting/backup", headers=token_for("otto"))
    assert other.status_code == 429 and "job_id" not in other.get_json()
    run_jobs_for(app)
