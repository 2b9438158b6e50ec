"""Job records and /activity through the Flask test client: what everyone can see happened."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.helpers import post, run_jobs_for, signed_in


@pytest.fixture
def broken_app(make_app, run_jobs):
    """A console whose target database refuses connections (nothing listens on port 1)."""
    return make_app(DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")


def backup_from_page(app, make_user, run_jobs, username: str = "olga") -> str:
    """An operator asks for a backup on `app`'s home page; its worker runs it; returns the job id."""
    client, auth = signed_in(app, make_user, "operator", username)
    response = post(client, auth, "/backups")
    assert response.status_code == 303, response.get_data(as_text=True)
    run_jobs_for(app)
    return response.headers["Location"].split("/jobs/")[1].split("?")[0]


def test_a_viewer_sees_a_finished_backup_on_the_activity_page(app, make_user, run_jobs):
    job_id = backup_from_page(app, make_user, run_jobs)
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get("/activity").get_data(as_text=True)
    row = re.search(r"<tr class=\"status-finished\".*?</tr>", page, re.S)
    assert row, page
    assert f'href="/jobs/{job_id}"' in row[0] and ">Backup<" in row[0]
    assert "olga" in row[0] and "staging" in row[0] and "saved pharmatracker-staging-on-" in row[0]
    assert re.search(r'data-label="Size" class="num">\d+(\.\d)? [KM]?B<', row[0])
    assert 'aria-current="page">Activity<' in page


def test_a_failed_backup_shows_its_reason_on_activity_and_as_a_banner(broken_app, make_user, run_jobs):
    app = broken_app
    job_id = backup_from_page(app, make_user, run_jobs)
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get("/activity?status=failed").get_data(as_text=True)
    assert "Failed: the database refused connections" in page and f"/jobs/{job_id}" in page
    assert "No jobs" not in page
    assert "No jobs match these filters" in viewer.get("/activity?status=finished").get_data(as_text=True)

    home = viewer.get("/").get_data(as_text=True)
    banner = re.search(r'<p class="banner banner-failed" role="alert">(.*?)</p>', home, re.S)
    assert banner, home
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", banner[1]))
    assert re.search(r"Last backup failed at \d{4}-\d\d-\d\d .* IST: the database refused connections · details", text)
    assert f'href="/jobs/{job_id}"' in banner[1]


def test_a_later_success_clears_the_banner(broken_app, app, make_user, run_jobs):
    backup_from_page(broken_app, make_user, run_jobs)
    client, _ = signed_in(app, make_user, "viewer", "vera")  # the same store, on the real database
    assert "Last backup failed" in client.get("/").get_data(as_text=True)
    backup_from_page(app, make_user, run_jobs, "otto")
    assert "Last backup failed" not in client.get("/").get_data(as_text=True)


def test_a_refused_backup_links_to_the_running_job_which_is_a_live_row_on_top(app, make_user):
    client, auth = signed_in(app, make_user, "operator", "olga")
    first = post(client, auth, "/backups").headers["Location"].split("/jobs/")[1].split("?")[0]
    home = client.get("/").get_data(as_text=True)
    assert "Running now" in home and f'data-live-job="/api/jobs/{first}"' in home and "live.js" in home
    again = post(client, auth, "/backups")  # the same person again: a double submit lands on the job
    assert again.status_code == 303 and again.headers["Location"].startswith(f"/jobs/{first}")
    other, other_auth = signed_in(app, make_user, "operator", "otto")  # someone else is told, with the link
    page = post(other, other_auth, "/backups")
    page = other.get(page.headers["Location"]) if page.status_code == 303 else page
    assert f'(<a href="/jobs/{first}">job {first}</a>)' in page.get_data(as_text=True)
    activity = client.get("/activity?status=running").get_data(as_text=True)
    assert f'data-live-job="/api/jobs/{first}"' in activity and "queued" in activity


def test_filters_and_pages(app, make_user):
    from app.extensions import db
    from app.store.models import JobRun

    with app.app_context():
        for n in range(60):
            db.session.add(JobRun(id=f"job{n:03}", kind="verify" if n % 2 else "backup", environment="staging",
                                  database="d", requested_by="scheduler", status="finished"))  # fmt: skip
        db.session.commit()
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    first = viewer.get("/activity").get_data(as_text=True)
    assert first.count("<tr class=") == 50 and "Older" in first and "Newer" not in first
    second = viewer.get("/activity?page=2").get_data(as_text=True)
    assert second.count("<tr class=") == 10 and "Newer" in second
    verifies = viewer.get("/activity?kind=verify").get_data(as_text=True)
    assert verifies.count("<tr class=") == 30 and ">Backup<" not in verifies
    # Nonsense arguments show the unfiltered first page, never a 500.
    assert viewer.get("/activity?kind=drop&page=-4&status=%00").status_code == 200


def test_records_are_kept_for_500_jobs_or_30_days(app):
    from app.extensions import db
    from app.jobs import history
    from app.store.models import JobRun, utcnow

    now = utcnow()
    with app.app_context():

        def add(job_id, at):
            db.session.add(JobRun(id=job_id, kind="backup", environment="staging", database="d", requested_by="a",
                                  status="finished", enqueued_at=at))  # fmt: skip

        for n in range(520):  # 520 old records, the oldest last
            add(f"old{n:03}", now - timedelta(days=90, minutes=n))
        for n in range(30):  # and 30 of this month
            add(f"new{n:03}", now - timedelta(days=29))
        db.session.commit()
        assert history.prune() == 50  # the newest 500 are kept, the 30 recent ones among them
        kept = set(db.session.execute(db.select(JobRun.id)).scalars())
        assert len(kept) == 500 and {f"new{n:03}" for n in range(30)} <= kept
        assert "old469" in kept and "old470" not in kept


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_failed_backup_page_says_what_did_not_change_and_offers_next_steps(broken_app, make_user, run_jobs):
    job_id = backup_from_page(broken_app, make_user, run_jobs)
    client, _ = signed_in(broken_app, make_user, "operator", "otto")
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    heading = re.search(r'<h1 class="failed-heading" id="job-heading">(.*?)</h1>', page, re.S)
    assert heading and text_of(heading[1]).strip() == "Backup failed: no backup was saved, nowhere is unchanged"
    assert "<progress" not in page and "job.js" not in page  # nothing moves on a job that ended
    assert "Cause: the database refused connections." in text_of(page)
    assert re.search(r"<details id=\"job-error-detail\"><summary>Technical detail</summary><p id=\"job-error\">"
                     r"database error: connection", page)  # fmt: skip
    assert re.search(r'action="/backups".*?>Try again</button>', page, re.S)
    assert '<a href="/">Back to backups</a>' in page
    assert re.search(r'class="step step-failed" aria-current="step">\s*Prepare', page)


def test_a_finished_backup_links_to_download_and_restore_and_a_verify_shows_its_report(app, make_user, run_jobs):
    job_id = backup_from_page(app, make_user, run_jobs)
    admin, auth = signed_in(app, make_user, "admin", "ada")
    page = admin.get(f"/jobs/{job_id}").get_data(as_text=True)
    filename = re.search(r"Saved <code>([^<]+)</code>", page)[1]
    assert f'href="/backups/{filename}/download">Download</a>' in page
    assert f'href="/backups/{filename}/restore">Restore</a>' in page
    assert page.count('class="step step-done"') == 4 and 'aria-current="step"' not in page

    verify = post(admin, auth, f"/backups/{filename}/verify")
    run_jobs()
    report = admin.get(verify.headers["Location"]).get_data(as_text=True)
    assert "Verify finished" in report
    assert re.search(r"restores: \d+ tables, [\d,]+ rows, in [\d.]+ s\.", text_of(report))
    assert re.search(r"<tr><td>public\.\w+</td><td class=\"num\">\d+</td></tr>", report), report


@pytest.mark.web_only
def test_each_environment_has_its_colour_on_a_full_width_bar(make_app, make_user):
    from app.config import ConfigError, Settings

    staging = make_app()
    client, _ = signed_in(staging, make_user, "viewer", "vera")
    assert re.search(r'<div class="env-bar env-amber">staging console · database \w+</div>', client.get("/").text)
    production = make_app(APP_ENV="production")
    assert '<div class="env-bar env-red">production console' in production.test_client().get("/login").text
    chosen = make_app(APP_ENV="qa", ENVIRONMENT_COLORS="qa=blue, production=purple")
    assert '<div class="env-bar env-blue">qa console' in chosen.test_client().get("/login").text
    assert Settings.from_env({"DATABASE_URL": "postgresql://h/d"}).color_of("development") == "neutral"
    with pytest.raises(ConfigError, match="^ENVIRONMENT_COLORS: .*got 'qa=pink'"):
        Settings.from_env({"DATABASE_URL": "postgresql://h/d", "ENVIRONMENT_COLORS": "qa=pink"})


def test_a_backups_estimate_follows_the_database_when_the_previous_backup_is_outgrown_or_missing():
    from app.domain.backup import BackupPlan

    def plan(previous: int, database: int) -> BackupPlan:
        return BackupPlan("f.dump", None, "16.0", [], expected_bytes=previous, database_bytes=database)

    assert plan(previous=300, database=1000).estimate(0) == 300
    assert plan(previous=300, database=1000).estimate(300) == 300
    assert plan(previous=300, database=1000).estimate(301) == 1000  # grown past the last backup
    assert plan(previous=0, database=1000).estimate(0) == 1000  # the first backup
    assert plan(previous=300, database=1000).estimate(5000) == 5000  # never below what is done


@pytest.mark.web_only
def test_a_scheduled_backup_that_did_not_run_is_a_banner(app, make_user):
    from app.extensions import db
    from app.store.models import ConsoleSetting, JobRun, utcnow
    from app.store.schedule import save_schedule

    now = utcnow()
    with app.app_context():
        save_schedule("0 * * * *", "ada")  # hourly; set three hours ago, used since
        db.session.get(ConsoleSetting, "backup_schedule").updated_at = now - timedelta(hours=3)
        db.session.add(JobRun(id="earlier", kind="backup", environment="staging", database="d",
                              requested_by="scheduler", scheduled=True, status="finished",
                              enqueued_at=now - timedelta(hours=2, minutes=30)))  # fmt: skip
        db.session.commit()
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    home = viewer.get("/").text
    banner = re.search(r'<p class="banner banner-failed" role="alert" id="missed-backup">(.*?)</p>', home, re.S)
    assert banner, home
    assert re.search(r"The scheduled backup of \d{4}-\d\d-\d\d \d\d:00:00 [AP]M IST did not run", text_of(banner[1]))
    assert 'href="/activity?kind=backup"' in banner[1]

    with app.app_context():  # the scheduler came back: the latest slot's backup was enqueued
        db.session.add(JobRun(id="on-time", kind="backup", environment="staging", database="d", scheduled=True,
                              requested_by="scheduler", status="finished", enqueued_at=now))  # fmt: skip
        db.session.commit()
    assert "missed-backup" not in viewer.get("/").text


@pytest.mark.web_only
def test_a_job_the_queue_lost_is_not_shown_running_for_ever(app, make_user):
    from app.extensions import db
    from app.store.models import JobRun

    with app.app_context():
        db.session.add(JobRun(id="f" * 32, kind="backup", environment="staging", database="d",
                              requested_by="olga", status="started"))  # fmt: skip
        db.session.commit()
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get("/activity").text
    assert 'class="status-failed"' in page and "data-live-job" not in page
    assert "Failed: the job was lost when Redis was restarted or emptied" in page
    assert "Last backup failed at" in viewer.get("/").text


@pytest.mark.web_only
def test_the_empty_list_says_what_to_do_first(app, make_user):
    operator, _ = signed_in(app, make_user, "operator", "olga")
    assert "No backups yet. Start with “Create backup” above: it dumps" in operator.get("/").text
    admin, _ = signed_in(app, make_user, "admin", "ada")
    assert 'Then set a schedule under <a href="/settings">Settings</a>' in admin.get("/").text
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    assert "No backups yet. An operator or an admin makes the first one;" in viewer.get("/").text


@pytest.mark.web_only
def test_each_listed_backup_says_how_old_it_is(app, make_user):
    from datetime import UTC, datetime

    from app.web import human_age
    from tests.helpers import old_backups

    old_backups(app, [1, 3])  # named 25 hours and 73 hours ago
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get("/").text
    assert '<span class="muted age">25 h ago</span>' in page and '<span class="muted age">3 days ago</span>' in page
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert [human_age(now - timedelta(seconds=s), now) for s in (5, 720, 7200)] == ["just now", "12 min ago", "2 h ago"]
