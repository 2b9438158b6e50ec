"""Security review M2 and L2: a target hidden by role `none` shows nothing of its jobs, and /healthz names
no target to a caller who may not see it.

The console of tests/config/targets.py (staging, the default, and production in one bucket; reports
in a folder). dev is a viewer everywhere but on reports, which is hidden from them.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from rq.job import Job

from tests.config import targets
from tests.config.targets import backed_up, make_person, token
from tests.helpers import job_of, run_jobs_for
from tests.support.databases import PG, drop_database

# Fixtures: that module's console of three targets, on its databases and bucket.
console, databases, targets_env = targets.console, targets.databases, targets.targets_env


def job_of_target(app, client, headers, target: str) -> str:
    """A backup of `target`, asked for through the API and run to its end; its job id."""
    answer = client.post(f"/api/targets/{target}/backup", headers=headers)
    assert answer.status_code == 202, answer.get_json()
    run_jobs_for(app)
    return answer.get_json()["job_id"]


def rq_job(app, job_id: str) -> Job:
    """The job as RQ keeps it, read with the serializer the console's queue writes with."""
    from app.jobs.queue import queue_for
    from app.services import redis, settings

    with app.app_context():
        return Job.fetch(job_id, connection=redis(), serializer=queue_for(settings(), redis()).serializer)


def forget_in_rq(app, job_id: str) -> None:
    """What RQ does once a job's result_ttl is over (or Redis is emptied): only the record remains."""
    rq_job(app, job_id).delete()
    assert job_of(app, job_id) is None


def set_record_target(app, job_id: str, target: str | None) -> None:
    from app.extensions import db
    from app.store.models import JobRun

    with app.app_context():
        db.session.get(JobRun, job_id).target = target
        db.session.commit()


@pytest.fixture
def hidden_job(console):
    """(admin client, admin token, dev client, dev token, a reports job id, a staging job id)."""
    admin, _ = make_person(console, "ada", "admin")
    admin_token = token(console, "ada")
    reports_job = job_of_target(console, admin, admin_token, "reports")
    staging_job = job_of_target(console, admin, admin_token, "staging")
    dev, _ = make_person(console, "dev", "viewer", {"reports": "none"})
    return admin, admin_token, dev, token(console, "dev"), reports_job, staging_job


def not_found_like_an_unknown_id(client, url: str, headers=None) -> None:
    """`url` answers 404 with the very body an id that never existed gets: nothing tells them apart."""
    answer = client.get(url, headers=headers)
    unknown = client.get(re.sub(r"[0-9a-f]{32}", uuid.uuid4().hex, url), headers=headers)
    assert answer.status_code == 404, url
    assert unknown.status_code == 404
    assert answer.get_data() == unknown.get_data(), url


# --------------------------------------------------------------------------- M2: jobs of a hidden target


def test_activity_and_its_filters_show_no_job_of_a_hidden_target(console, hidden_job):
    admin, _, dev, _, reports_job, staging_job = hidden_job
    for url in ("/activity", "/activity?kind=backup", "/activity?status=finished", "/activity?kind=backup&status=x"):
        page = dev.get(url).get_data(as_text=True)
        assert staging_job in page, url
        assert reports_job not in page, url
    assert reports_job in admin.get("/activity").get_data(as_text=True)  # hidden from dev only
    assert "of the targets you may see" in page  # the page says what it lists


def test_a_hidden_targets_job_is_404_while_rq_has_it_and_once_only_its_record_remains(console, hidden_job):
    admin, admin_token, dev, dev_token, reports_job, _ = hidden_job
    for stage in ("in RQ", "record only"):
        for url in (f"/jobs/{reports_job}", f"/api/jobs/{reports_job}"):
            not_found_like_an_unknown_id(dev, url)
            not_found_like_an_unknown_id(dev, url, dev_token)
        assert admin.get(f"/jobs/{reports_job}").status_code == 200, stage
        if stage == "in RQ":
            assert admin.get(f"/api/jobs/{reports_job}", headers=admin_token).status_code == 200
            forget_in_rq(console, reports_job)
    assert "reports" in admin.get(f"/jobs/{reports_job}").get_data(as_text=True)  # the record names its target


def test_a_target_written_into_redis_does_not_unhide_a_job_whose_record_is_hidden(console, hidden_job):
    _, _, dev, dev_token, reports_job, _ = hidden_job
    job = rq_job(console, reports_job)  # whoever can write to Redis rewrites the job's meta
    job.meta["target"] = "staging"
    job.save_meta()
    assert job_of(console, reports_job)["target"] == "staging"
    for url in (f"/jobs/{reports_job}", f"/api/jobs/{reports_job}"):
        not_found_like_an_unknown_id(dev, url, dev_token)


def test_a_job_without_a_record_is_judged_by_its_target_in_rq(console, hidden_job):
    """A job RQ has but the console store does not (a release without records): its meta decides."""
    admin, _, dev, dev_token, reports_job, staging_job = hidden_job
    from app.extensions import db
    from app.store.models import JobRun

    with console.app_context():
        db.session.execute(db.delete(JobRun))
        db.session.commit()
    not_found_like_an_unknown_id(dev, f"/api/jobs/{reports_job}", dev_token)
    assert dev.get(f"/api/jobs/{staging_job}", headers=dev_token).status_code == 200
    assert dev.get(f"/jobs/{staging_job}").status_code == 200


def test_a_record_without_a_target_is_the_default_targets_and_one_of_an_unknown_target_nobodys(console, hidden_job):
    admin, _, dev, _, reports_job, staging_job = hidden_job
    set_record_target(console, reports_job, None)  # as written before records carried their target
    forget_in_rq(console, reports_job)
    assert dev.get(f"/jobs/{reports_job}").status_code == 200  # the default target (staging) is dev's to see
    assert reports_job in dev.get("/activity").get_data(as_text=True)
    blind, _ = make_person(console, "blind", "admin", {"staging": "none"})
    not_found_like_an_unknown_id(blind, f"/jobs/{reports_job}")
    assert reports_job not in blind.get("/activity").get_data(as_text=True)

    set_record_target(console, staging_job, "gone")  # a target taken out of TARGETS_FILE
    forget_in_rq(console, staging_job)
    not_found_like_an_unknown_id(admin, f"/jobs/{staging_job}")
    assert staging_job not in admin.get("/activity").get_data(as_text=True)


def test_a_target_page_shows_only_its_own_running_jobs_and_failures(console, databases, pg_admin):
    """reports and staging share the environment "staging": each page's banners are its target's only."""
    admin, _ = make_person(console, "ada", "admin")
    admin_token = token(console, "ada")
    drop_database(pg_admin, databases["reports"])  # reports' next backup fails
    failed = job_of_target(console, admin, admin_token, "reports")
    assert job_of(console, failed)["status"] == "failed"
    queued = admin.post("/api/targets/reports/backup", headers=admin_token).get_json()["job_id"]  # not run: queued
    dev, _ = make_person(console, "dev", "viewer", {"reports": "none"})

    staging_page = dev.get("/targets/staging/").get_data(as_text=True)
    assert "Last backup failed" not in staging_page and failed not in staging_page
    assert queued not in staging_page and "Running now" not in staging_page
    reports_page = admin.get("/targets/reports/").get_data(as_text=True)
    assert "Last backup failed" in reports_page and failed in reports_page and queued in reports_page
    assert "Last backup failed" not in admin.get("/targets/staging/").get_data(as_text=True)


# --------------------------------------------------------------------------- L2: /healthz


def test_anonymous_healthz_names_no_target_and_no_backup(console, databases, pg_admin):
    admin, _ = make_person(console, "ada", "admin")
    made = backed_up(console, admin, token(console, "ada"), "reports")
    anonymous = console.test_client()
    up = anonymous.get("/healthz")
    assert up.status_code == 200
    assert up.get_json() == {"status": "ok", "checks": {"redis": "ok", "storage": "ok", "database": "ok",
                                                        "console_store": "ok"}}  # fmt: skip

    drop_database(pg_admin, databases["reports"])
    with console.app_context():
        console.extensions.pop("pgconsole.health", None)  # past the anonymous answer's short cache
    down = anonymous.get("/healthz")
    assert down.status_code == 503
    body = down.get_json()
    assert body["down"] == ["database"] and body["checks"]["database"] == "down: on 1 target"
    text = down.get_data(as_text=True)
    assert not any(name in text for name in ("production", "reports", made, PG["host"]))


def test_signed_in_healthz_shows_only_the_targets_the_caller_may_see(console, databases, pg_admin):
    admin, _ = make_person(console, "ada", "admin")
    backed_up(console, admin, token(console, "ada"), "reports")
    dev, _ = make_person(console, "dev", "viewer", {"reports": "none"})
    body = dev.get("/healthz").get_json()
    assert set(body["targets"]) == {"staging", "production"}
    assert {"storage:staging", "database:production"} <= set(body["checks"])
    assert not [name for name in body["checks"] if name.endswith(":reports")]
    assert "reports-staging-on-" not in dev.get("/healthz").get_data(as_text=True)  # reports' newest backup

    drop_database(pg_admin, databases["reports"])
    down = dev.get("/healthz", headers=token(console, "dev"))
    assert down.status_code == 503 and down.get_json()["down"] == ["database"]  # what, not whose
    assert "reports" not in down.get_data(as_text=True)
    assert set(admin.get("/healthz").get_json()["down"]) == {"database", "database:reports"}

    blind, _ = make_person(console, "blind", "viewer", {"staging": "none"})  # the default target hidden
    body = blind.get("/healthz").get_json()
    assert "newest_backup" not in body and set(body["targets"]) == {"production", "reports"}


# --------------------------------------------------------------------------- who made a hidden target's backup


def made_by(page: str, filename: str) -> str:
    """The text of the "Made by" cell in `filename`'s row of a backups list."""
    [row] = [row for row in page.split("<tr>") if f'<td class="filename">{filename}' in row]
    return re.sub(r"<[^>]+>", "", re.search(r'class="made-by">(.*?)</td>', row, re.S)[1]).strip()


def test_a_shared_stores_list_names_no_maker_of_a_hidden_targets_backup(console):
    """staging and production share a bucket, so staging's list shows production's backups too."""
    admin, _ = make_person(console, "ada", "admin")
    admin_token = token(console, "ada")
    ours, theirs = (backed_up(console, admin, admin_token, name) for name in ("staging", "production"))
    # An admin's restore page of production's backup, reached through staging: this process keeps its manifest.
    assert admin.get(f"/targets/staging/backups/{theirs}/restore").status_code == 200
    assert made_by(admin.get("/targets/staging/").get_data(as_text=True), theirs).startswith("ada")

    dev, _ = make_person(console, "dev", "viewer", {"production": "none"})
    page = dev.get("/targets/staging/").get_data(as_text=True)
    assert made_by(page, ours).startswith("ada")
    assert made_by(page, theirs) == "—not known"  # neither its job record nor its manifest


# --------------------------------------------------------------------------- a missed schedule, per target


def scheduled_run(app, job_id: str, target: str, ago: timedelta) -> None:
    """The record a scheduled backup of `target` leaves (reports and staging share the environment "staging")."""
    from app.extensions import db
    from app.store.models import JobRun, utcnow

    with app.app_context():
        db.session.add(JobRun(id=job_id, kind="backup", environment="staging", database="d", target=target,
                              requested_by="scheduler", scheduled=True, status="finished",
                              enqueued_at=utcnow() - ago))  # fmt: skip
        db.session.commit()


def test_another_targets_scheduled_backup_does_not_hide_a_missed_one(console):
    from app import services
    from app.extensions import db
    from app.store.schedule import save_schedule, stored_schedule

    with console.app_context():  # staging backs up hourly, set three hours ago
        staging = services.console_settings().for_target("staging")
        save_schedule("0 * * * *", "ada", staging)
        stored_schedule(staging).updated_at -= timedelta(hours=3)
        db.session.commit()
    scheduled_run(console, "staging-earlier", "staging", timedelta(hours=2, minutes=30))
    scheduled_run(console, "reports-now", "reports", timedelta(0))  # the same environment, another target
    admin, _ = make_person(console, "ada", "admin")
    assert 'id="missed-backup"' in admin.get("/targets/staging/").get_data(as_text=True)

    scheduled_run(console, "staging-now", "staging", timedelta(0))
    assert 'id="missed-backup"' not in admin.get("/targets/staging/").get_data(as_text=True)
