"""Hostile schedules: the form answers 303 or 400, and every page that shows the next run still renders."""

from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.web.bad_input.inputs import (
    assert_page,
    form_text,
    fuzz,
    post_form,
)

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached

# Cron-like schedules, day of month kept within 1..28 (29-31 have a test of their own below).
cron_fields = (  # (what croniter accepts, what it refuses) per field
    (["*", "0", "59", "*/5", "1-5", "1,2,3"], ["60", "-1", "a"]),
    (["*", "0", "23", "*/2", "9-17"], ["24", "x"]),
    (["*", "1", "15", "28", "1-7", "L"], ["0", "32"]),  # 29-31 never come in some months: see test_bug_a_schedule
    (["*", "1", "12", "jan", "*/3"], ["13", "0"]),
    (["*", "0", "6", "7", "mon", "1-5"], ["8", "funday"]),
)


cronish = st.builds(
    lambda good, bad, spoil, sep, count: sep.join(
        [*(b if i == spoil else g for i, (g, b) in enumerate(zip(good, bad, strict=True))), "*"][:count]
    ),
    st.tuples(*(st.sampled_from(good) for good, _ in cron_fields)),
    st.tuples(*(st.sampled_from(bad) for _, bad in cron_fields)),
    st.sampled_from([None, None, None, None, 0, 1, 2, 3, 4]),
    st.sampled_from([" ", "  ", "\t", " \u3000 "]),
    st.sampled_from([5, 5, 5, 5, 4, 6]),
)


@fuzz(80)
@given(schedule=st.one_of(cronish, st.one_of(form_text, st.sampled_from(["", "@daily", "0 2 * * *", "* * * * * *"]))))
def test_schedule_form_answers_303_or_400_and_every_page_still_renders(console, schedule):
    from app.config import cron_problem
    from app.store.schedule import stored_schedule

    form = {"backup-kind": "cron", "backup-cron": schedule, "backup-csrf_token": console.csrf}
    response = post_form(console.client, "/settings/backup_schedule", form, {303, 400})
    event(f"status {response.status_code}")
    if response.status_code == 303:
        with console.app.app_context():
            saved = stored_schedule().value
        assert saved == " ".join(schedule.split()) and saved and cron_problem(saved) is None
    else:
        assert "schedule" in response.get_data(as_text=True).lower()
    for page in ("/settings", "/"):
        assert_page(console.client.get(page), {200})


def test_bug_a_schedule_that_never_fires_is_refused_not_saved(console):
    form = {"backup-kind": "cron", "backup-cron": "0 0 30 2 *", "backup-csrf_token": console.csrf}
    response = console.client.post("/settings/backup_schedule", data=form)
    # Once it was saved, and every page that shows the next run (/settings, /) answered 500.
    assert response.status_code == 400
    assert "never fires" in response.get_data(as_text=True)
    with console.app.app_context():
        from app.store.schedule import stored_schedule

        assert stored_schedule() is None  # nothing was saved
    assert console.client.get("/settings").status_code == 200
    assert console.client.get("/").status_code == 200
