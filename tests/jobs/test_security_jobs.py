"""Whoever can write to the bucket or to Redis: the attacks the security review found (H2, H3, M1), each shown failing.

The bucket writer plants files named like backups and swaps a confirmed file before the job runs;
the Redis writer plants a pickled job hash and enqueues functions and jobs of its own. Real
PostgreSQL, Redis and folder store; jobs run by RQ's worker in this process, as a worker would.
"""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq import Queue

from app.domain.naming import backup_filename
from tests.config import targets
from tests.config.targets import PASSKEYS, backed_up, make_person, token
from tests.helpers import (
    IST,
    audit_rows,
    backup_run_in_process,
    job_of,
    old_backups,
    restore_api,
    run_jobs_for,
    storage_of,
)
from tests.jobs.test_restore import change_live, scratch_databases
from tests.support.databases import table_fingerprint

# Fixtures: the console of tests/config/targets.py (staging and production share a bucket).
console, databases, targets_env = targets.console, targets.databases, targets.targets_env


@pytest.fixture
def admin(app, make_user, token_for):
    make_user("ada", "admin")
    return token_for("ada")


def names_in(app) -> set[str]:
    return {o.name for o in storage_of(app).list_objects()}


# --------------------------------------------------------------------------- the bucket (H2, H3)


def test_thirty_future_dated_junk_files_do_not_make_retention_delete_real_backups(make_app):
    """H2: thirty 1-byte files named like backups from 2099, then a backup: the five signed backups stay."""
    app = make_app(MAX_BACKUP_FILES="5")
    real = old_backups(app, range(1, 6))
    storage = storage_of(app)
    junk = [backup_filename("pharmatracker", "staging", datetime(2099, 1, 1, tzinfo=UTC) + timedelta(hours=h), IST)
            for h in range(30)]  # fmt: skip
    for name in junk:
        storage.put_bytes(name, b"x")

    result = backup_run_in_process(app)["result"]

    assert result["deleted"] == [real[-1]]  # the new one and the four newest signed: five, as configured
    assert set(real[:-1]) | set(junk) | {result["filename"]} <= names_in(app)


def test_newest_ignores_planted_unsigned_files(app):
    """H3's second half: an unsigned file named a minute ago is not the newest backup. (A restore no longer
    asks for a recent backup, which such a file once could pose as: the job backs up what it replaces.)"""
    from app.operations import collaborators

    [signed] = old_backups(app, [2])
    planted = backup_filename("pharmatracker", "staging", datetime.now(UTC) - timedelta(minutes=1), IST)
    storage_of(app).put_bytes(planted, b"not a backup of ours")

    with app.test_request_context():
        assert collaborators().backups.newest().filename == signed


@pytest.mark.parametrize("swap", ["another target's archive, manifest deleted", "a manifest signed for another file"])
def test_a_file_swapped_between_confirmation_and_job_is_not_restored(app, client, admin, target_db, pg_admin, swap):
    """H3: the admin confirms a signed backup; before a worker takes the job, the file is replaced. The job
    refuses it before a scratch database is made, and the live database stays as it was."""
    other = backup_run_in_process(app)["result"]["filename"]  # a real archive, of other contents
    change_live(target_db)
    confirmed = backup_run_in_process(app)["result"]["filename"]
    before = table_fingerprint(target_db)  # restoring the swapped-in file would bring back `other`'s rows
    answer = restore_api(client, admin, confirmed)
    assert answer.status_code == 202, answer.get_json()
    job_id = answer.get_json()["job_id"]

    storage, folder = storage_of(app), Path(storage_of(app).folder)
    (folder / confirmed).write_bytes((folder / other).read_bytes() + b"-" * 7)
    if swap.startswith("another"):
        storage.delete(confirmed + ".json")
    else:
        (folder / (confirmed + ".json")).write_bytes((folder / (other + ".json")).read_bytes())
    run_jobs_for(app)

    status = job_of(app, job_id)
    assert status["status"] == "failed"
    assert "is not the file that was confirmed" in status["error"] and "nothing was changed" in status["error"]
    assert table_fingerprint(target_db) == before
    assert scratch_databases(pg_admin, target_db) == []


# --------------------------------------------------------------------------- Redis (M1)


class Planted:
    """Unpickling this leaves a file behind: proof that someone's pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_job_hash_is_never_unpickled_by_the_api(app, make_user, token_for, tmp_path):
    """M1: a job hash in Redis whose meta is a pickle that runs code; a viewer opens /api/jobs/<id>."""
    from app.services import redis

    make_user("vera", "viewer")
    marker = tmp_path / "pickle-ran"
    job_id = uuid.uuid4().hex
    with app.app_context():
        redis().hset(f"rq:job:{job_id}", mapping={
            "status": "finished", "created_at": "2026-12-07T10:00:00.000000Z", "origin": "x",
            "data": pickle.dumps(("os.getcwd", None, (), {})), "meta": pickle.dumps(Planted(marker)),
        })  # fmt: skip
    try:
        answer = app.test_client().get(f"/api/jobs/{job_id}", headers=token_for("vera"))
    finally:
        with app.app_context():
            redis().delete(f"rq:job:{job_id}")
    assert not marker.exists()
    assert answer.status_code in (200, 404)  # an odd job, or none: never a 500, never the pickle's effect


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_a_function_enqueued_by_hand_is_not_run(app, tmp_path, serializer):
    """M1: `enqueue('subprocess.getoutput', ...)` on the console's queue; the worker runs nothing of it."""
    from app.services import redis, settings

    marker = tmp_path / "enqueued-command-ran"
    with app.app_context():
        queue = Queue(settings().redis_namespace, connection=redis(), serializer=serializer)
        job = queue.enqueue("subprocess.getoutput", f"touch {marker}", on_failure="subprocess.getoutput")
    run_jobs_for(app)
    assert not marker.exists()
    status = job_of(app, job.id)
    assert status is None or status["status"] == "failed"  # a pickled job cannot even be read
    if serializer == "json":
        from app.jobs.queue import fetch_job

        with app.app_context():
            assert "is not one of this console's jobs" in fetch_job(redis(), job.id).latest_result().exc_string


def test_a_restore_job_enqueued_without_the_passkey_does_nothing(app, target_db, pg_admin):
    """M1: `restore_job` put on the queue directly (no passkey, no request): refused, audited, nothing changed."""
    from app.jobs.queue import queue_for
    from app.services import redis, settings

    backup = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    before = table_fingerprint(target_db)
    with app.app_context():
        job = queue_for(settings(), redis()).enqueue(
            "app.jobs.tasks.restore_job", kwargs={"filename": backup, "requested_by": "mallory"},
            on_failure="app.jobs.tasks.on_failure",
            meta={"kind": "backup", "filename": backup, "published": False},  # would have clean-up delete it
        )  # fmt: skip
    run_jobs_for(app)

    status = job_of(app, job.id)
    assert status["status"] == "failed" and "not requested through the console" in status["error"]
    assert table_fingerprint(target_db) == before and scratch_databases(pg_admin, target_db) == []
    assert backup in names_in(app)  # the failure callback did not take the planted meta's word
    assert [(r.outcome, r.job_id) for r in audit_rows(app, "backup") if r.job_id == job.id] == [("refused", job.id)]


def test_a_finished_restore_put_back_on_the_queue_is_not_run_again(app, client, admin, target_db):
    """M1: the id of a restore that ran, pushed onto the queue again, would restore the old file a second time."""
    from app.jobs.queue import queue_for
    from app.services import redis, settings

    backup = backup_run_in_process(app)["result"]["filename"]
    answer = restore_api(client, admin, backup)
    run_jobs_for(app)
    job_id = answer.get_json()["job_id"]
    assert job_of(app, job_id)["status"] == "finished"
    change_live(target_db)
    after = table_fingerprint(target_db)

    with app.app_context():
        queue = queue_for(settings(), redis())
        queue.enqueue_job(queue.fetch_job(job_id))
    run_jobs_for(app)

    assert table_fingerprint(target_db) == after  # the writes since the restore are still there
    assert "not requested through the console" in job_of(app, job_id)["error"]


# --------------------------------------------------------------------------- a store two targets share (M3)


def test_a_backup_of_a_hidden_target_in_a_shared_store_cannot_be_reached_through_another(console, databases):
    """M3: staging and production share a bucket; an admin of staging with role `none` on production asks
    through /targets/staging/… for production's dump: the download and the restore answer 404."""
    owner, _ = make_person(console, "ada", "admin")
    production = backed_up(console, owner, token(console, "ada"), "production")
    backed_up(console, owner, token(console, "ada"), "staging")  # so staging's recent-backup rule holds
    al, _ = make_person(console, "al", "admin", {"production": "none"})
    before = table_fingerprint(databases["staging"])

    assert al.get(f"/targets/staging/backups/{production}/download").status_code == 404
    answer = console.test_client().post("/api/targets/staging/restore", headers=token(console, "al"),
                                        json={"filename": production, "passkey": PASSKEYS["staging"]})  # fmt: skip
    assert answer.status_code == 404, answer.get_json()
    run_jobs_for(console)
    assert table_fingerprint(databases["staging"]) == before
    # ada, admin everywhere, still may: the rule is the role on the backup's own target, not a ban.
    assert owner.get(f"/targets/staging/backups/{production}/download").status_code in (200, 302)


# --------------------------------------------------------------------------- Redis: what is left to a writer


def test_scheduled_backups_forced_through_redis_request_one_backup(app):
    """Scheduled backups skip the manual interval: thirty pushed onto the queue by hand must not become thirty
    backups (retention would then push out every older one). The first requests a backup, the rest nothing."""
    from app.jobs.queue import queue_for
    from app.services import redis, settings

    for _ in range(4):  # one after the other, each given time to run its backup
        with app.app_context():
            queue_for(settings(), redis()).enqueue("app.scheduler.scheduled_backup")
        run_jobs_for(app)
    outcomes = [r.outcome for r in audit_rows(app, "backup") if r.username == "scheduler"]
    assert outcomes.count("ok") == 1 and outcomes.count("refused") == 3
    assert len([o for o in storage_of(app).list_objects() if o.name.endswith(".dump")]) == 1


def test_a_database_kept_by_keep_old_database_is_not_dropped_by_a_job_written_into_redis(
    make_app, make_user, token_for, pg_admin
):
    from app.jobs.queue import queue_for
    from app.services import redis, settings
    from tests.support.databases import database_names

    app = make_app(KEEP_OLD_DATABASE="true")
    make_user("ada", "admin")
    backup = backup_run_in_process(app)["result"]["filename"]
    answer = restore_api(app.test_client(), token_for("ada"), backup)
    run_jobs_for(app)
    kept = job_of(app, answer.get_json()["job_id"])["result"]["kept_old_database"]
    assert kept and database_names(pg_admin, kept) == [kept]

    with app.app_context():
        queue_for(settings(), redis()).enqueue("app.jobs.tasks.drop_previous_database", kwargs={"database": kept})
    run_jobs_for(app)
    assert database_names(pg_admin, kept) == [kept]


def test_parallel_wrong_passkeys_are_compared_no_more_than_the_limit(app, make_user, token_for):
    """The passkey limit counts each attempt before the compare: 30 guesses at once, at most 5 compared."""
    from concurrent.futures import ThreadPoolExecutor

    backup_run_in_process(app)
    make_user("ada", "admin")
    headers = token_for("ada")
    [filename] = [o.name for o in storage_of(app).list_objects() if o.name.endswith(".dump")]

    def guess(n: int) -> int:
        return restore_api(app.test_client(), headers, filename, passkey=f"wrong-{n}").status_code

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(guess, range(30)))
    assert answers.count(403) <= 5 and answers.count(429) >= 25
    assert [r.detail for r in audit_rows(app, "restore")].count("Wrong passkey") == answers.count(403)


def test_a_choice_written_into_a_queued_jobs_arguments_is_ignored(app, client, admin):
    """The request's choices are read from the console store: flipping `without_owners` (or a verify's
    `trusted_only`) in the job's arguments in Redis changes nothing."""
    from app.jobs.queue import fetch_job
    from app.services import redis

    filename = backup_run_in_process(app)["result"]["filename"]
    answer = restore_api(client, admin, filename)
    job_id = answer.get_json()["job_id"]
    with app.app_context():
        job = fetch_job(redis(), job_id)
        job.kwargs = {**job.kwargs, "without_owners": True}
        job.save()
        assert fetch_job(redis(), job_id).kwargs["without_owners"] is True
    run_jobs_for(app)
    status = job_of(app, job_id)
    assert status["status"] == "finished", status["error"]
    assert status["result"]["without_owners"] is False
