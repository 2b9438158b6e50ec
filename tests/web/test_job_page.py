"""The job page agrees with itself: status line, bar and steps from one view; elapsed only once started; the target
in one line; Stop offered to who may use it; the tool's log shown to operators and admins, scrubbed, bounded."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.helpers import run_jobs_for, signed_in


def _job(**changes) -> dict:
    job = {"kind": "backup", "status": "started", "progress": {"phase": "queued", "bytes_done": 0, "percent": None},
           "started_at": None, "ended_at": None, "stopped_by": None}  # fmt: skip
    return {**job, **changes}


def test_a_started_job_whose_worker_has_not_named_a_step_is_on_the_first_one():
    from app.web.job_steps import job_view

    view = job_view(_job())
    assert view["status_text"] == "running" and view["step_text"] == "step 1 of 4: Prepare"
    assert [s["state"] for s in view["steps"]] == ["current", "todo", "todo", "todo"]
    assert view["bar"] and view["percent"] is None  # measuring, but nothing known yet: no made-up percent
    assert view["elapsed_text"] == ""  # not started: no "elapsed 0 s"


def test_the_view_follows_the_job_from_queue_to_stop():
    from app.web.job_steps import job_view

    queued = job_view(_job(status="queued"))
    assert queued["status_text"] == "waiting for a worker" and not queued["bar"] and queued["step_text"] == ""
    assert all(s["state"] == "todo" for s in queued["steps"])
    now = datetime.now(UTC)
    dumping = job_view(_job(progress={"phase": "dumping", "bytes_done": 50 * 1024 * 1024, "percent": 40},
                            started_at=(now - timedelta(seconds=25)).isoformat()), now=now)  # fmt: skip
    assert dumping["step_text"] == "step 2 of 4: Dump and upload" and dumping["percent"] == 40
    assert dumping["bytes_text"] == "50.0 MB" and dumping["rate_text"] == "2.0 MB/s"
    assert dumping["elapsed_text"] == "25 s"
    stopped = job_view(_job(status="stopped", stopped_by="olga", progress={"phase": "dumping", "bytes_done": 9,
                                                                         "percent": 10}))  # fmt: skip
    assert stopped["status_text"] == "stopped by olga" and not stopped["bar"]
    assert [s["state"] for s in stopped["steps"]] == ["done", "stopped", "todo", "todo"]


def test_log_lines_are_scrubbed_and_bounded():
    from app.jobs.state import LOG_LINES, JobRecord, scrub_log_line

    assert scrub_log_line("connection to postgresql://app:s3cret@db:5432/appdb failed") == \
        "connection to postgresql://db:5432/appdb failed"  # fmt: skip
    assert "s3cret" not in scrub_log_line("could not connect: host=db password=s3cret user=app")
    assert "it's" not in scrub_log_line("password='it''s' host=db") or "hidden" in scrub_log_line("password='x'")
    assert len(scrub_log_line("x" * 1000)) == 300
    record = JobRecord(None)
    for n in range(120):
        record.log_line(f"pg_dump: dumping contents of table public.t{n}")
    assert len(record.state.log) == LOG_LINES and record.state.log[-1].endswith("public.t119")


def test_a_queued_job_offers_stop_to_an_operator_not_to_a_viewer_and_is_cancelled(app, make_user):
    from app.jobs.queue import start_job
    from app.services import redis, settings

    with app.app_context():
        job_id = start_job(settings(), redis(), "backup", "olga")
    operator, auth = signed_in(app, make_user, "operator", "olga")
    page = operator.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Backup waiting for a worker" in page and 'id="job-stop"' in page
    assert "elapsed 0" not in page and "running for" not in page and "ran for" not in page
    assert re.search(r'id="job-target">Target: <strong>[^<]+</strong>, database <code>[^<]+</code> on '
                     r"127\.0\.0\.1:5432, environment staging</p>", page)  # fmt: skip
    assert 'id="job-log"' in page  # an operator reads the tool's log (empty until it starts)
    viewer, viewer_auth = signed_in(app, make_user, "viewer", "vera")
    seen = viewer.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="job-stop"' not in seen and 'id="job-log"' not in seen
    refused = viewer.post(f"/jobs/{job_id}/stop", data={"csrf_token": viewer_auth.csrf_token(f"/jobs/{job_id}")})
    assert refused.status_code == 403

    token = auth.csrf_token(f"/jobs/{job_id}")
    stopped = operator.post(f"/jobs/{job_id}/stop", data={"csrf_token": token}, follow_redirects=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", stopped.get_data(as_text=True)))
    assert "Stopped before it started." in text
    assert "Backup stopped by olga: no backup was saved" in text and "Try again" not in text
    assert "Stopped by olga before it started; nothing was done." in text
    run_jobs_for(app)  # a worker now finds nothing to run
    with app.app_context():
        from app.jobs import history

        assert history.find(job_id).status == "stopped"


def test_a_finished_job_shows_no_stop_and_its_elapsed_time_once(app, make_user, run_jobs):
    from app.jobs.queue import start_job
    from app.services import redis, settings

    with app.app_context():
        job_id = start_job(settings(), redis(), "backup", "olga")
    run_jobs()
    operator, _ = signed_in(app, make_user, "operator", "olga")
    page = operator.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="job-stop"' not in page and page.count("ran for") == 1
    assert re.search(r'<progress id="job-bar" max="100" value="100"', page)
    api = operator.get(f"/api/jobs/{job_id}").get_json()
    assert api["view"]["status_text"] == "finished" and not api["may_stop"]
    assert any(line.startswith("pg_dump: ") for line in api["log"])  # pg_dump --verbose, kept for the page
