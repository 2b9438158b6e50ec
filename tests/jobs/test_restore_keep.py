"""RESTORE_KEEP_PREVIOUS: the database a restore replaced is kept, closed, for a while once its safety backup
is checked; meanwhile the job page offers "Swap back" (the same swap in reverse, confirmed with the passkey
and the typed name like a restore), and the scheduler has it dropped once its time is up. What is kept is
recorded in the console store: nothing written to Redis chooses what is swapped back or drops it early.

Real PostgreSQL, Redis and folder store; jobs run by RQ's worker in this process, the scheduler's loop
called as its process calls it. The claim on SQLite and PostgreSQL stores: tests/store/test_kept_databases.py.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.config import ConfigError, Settings
from tests.helpers import PASSKEY, audit_rows, job_of, post, run_jobs_for
from tests.helpers import signed_in as signed_in_as
from tests.jobs.test_restore import scratch_databases
from tests.jobs.test_restore_safety import restored_after_changes
from tests.support.databases import table_fingerprint

BASE_ENV = {"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}


@pytest.mark.parametrize(("value", "seconds"), [(None, 0), ("0", 0), ("90s", 90), ("30m", 1800), ("1h", 3600),
                                                (" 2D ", 172800)])  # fmt: skip
def test_restore_keep_previous_is_a_duration(value, seconds, tmp_path):
    env = {**BASE_ENV, **({"RESTORE_KEEP_PREVIOUS": value} if value is not None else {})}
    assert Settings.from_env(env, instance_path=str(tmp_path)).restore_keep_previous_seconds == seconds


@pytest.mark.parametrize("value", ["soon", "1.5h", "-1h", "1 h", "60"])
def test_a_bad_restore_keep_previous_names_the_variable_and_the_form(value, tmp_path):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE_ENV, "RESTORE_KEEP_PREVIOUS": value}, instance_path=str(tmp_path))
    assert caught.value.variable == "RESTORE_KEEP_PREVIOUS" and "e.g. 30m or 1h" in str(caught.value)


def allows_connections(pg_admin, dbname: str) -> bool:
    return pg_admin.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (dbname,)).fetchone()[0]


def swap_back_through_page(app, make_user, safety: str, target_db: str):
    """An admin confirms "Swap back" on the safety backup's restore page: the response, the browser."""
    browser, auth = signed_in_as(app, make_user, "admin", "root")
    url = f"/backups/{safety}/restore"
    sent = post(browser, auth, url, {"passkey": PASSKEY, "swap_back": "y", "confirm": f"{target_db} swapping back"},
                page=url)  # fmt: skip
    return sent, browser


def test_swap_back_puts_the_replaced_database_back_in_seconds_confirmed_like_a_restore(
    make_app, make_user, token_for, target_db, pg_admin
):
    app = make_app(RESTORE_KEEP_PREVIOUS="1h")
    status, replaced = restored_after_changes(app, make_user, token_for, target_db)
    result = status["result"]
    previous, safety = result["kept_old_database"], result["safety_backup"]
    assert safety and previous and timedelta(minutes=59) < datetime.fromisoformat(result["kept_until"]) - datetime.now(
        UTC) <= timedelta(hours=1)  # fmt: skip
    assert scratch_databases(pg_admin, target_db) == [previous]  # kept after the checked safety backup, not dropped
    assert not allows_connections(pg_admin, previous)  # nobody writes to it meanwhile
    restored = table_fingerprint(target_db)

    # The job page offers it; the link opens the restore page of the safety backup with the choice made.
    browser, auth = signed_in_as(app, make_user, "admin", "root")
    page = browser.get(f"/jobs/{status['id']}").get_data(as_text=True)
    assert re.search(rf'id="job-swap-back">The replaced database itself is kept as\s+<code>{previous}</code>', page)
    href = re.search(r'id="swap-back-link" href="([^"]+)"', page)[1].replace("&amp;", "&")
    assert href == f"/backups/{safety}/restore?swap_back=1#confirm-heading"
    url = href.split("#")[0]
    confirm = browser.get(url).get_data(as_text=True)
    assert "Swap back instead" in confirm and f"kept as <code>{previous}</code>" in confirm
    assert "You chose to <strong>swap it back</strong>" in confirm
    assert re.search(r'<input [^>]*checked[^>]*id="swap_back"|<input [^>]*id="swap_back"[^>]*checked', confirm)
    form = {"passkey": PASSKEY, "swap_back": "y"}
    mistyped = post(browser, auth, url, {**form, "confirm": target_db}, page=url)
    assert mistyped.status_code == 400 and f"{target_db} swapping back" in mistyped.get_data(as_text=True)
    sent = post(browser, auth, url, {**form, "confirm": f"{target_db} swapping back"}, page=url)
    assert sent.status_code == 303, sent.get_data(as_text=True)
    run_jobs_for(app)
    back = job_of(app, sent.headers["Location"].removeprefix("/jobs/"))

    assert back["status"] == "finished", back["error"]
    assert back["result"]["swapped_back"] == previous and back["result"]["filename"] == safety
    assert table_fingerprint(target_db) == replaced  # the data from before the restore
    assert back["result"]["seconds"] < 10  # up to the swap: nothing downloaded or restored
    # What it replaced (the restored data) is set aside in turn, backed up and kept the same way.
    again = back["result"]["kept_old_database"]
    assert back["result"]["safety_backup"] not in (None, safety, status["result"]["filename"])
    assert scratch_databases(pg_admin, target_db) == [again] and again != previous
    requested, done = audit_rows(app, "restore")[-2:]
    assert "swapping back the database set aside with this backup" in requested.detail
    assert f"swapped {target_db} back to {previous}" in done.detail
    assert "Swapped back" in browser.get(f"/jobs/{back['id']}").get_data(as_text=True)
    pg_admin.execute(f'ALTER DATABASE "{again}" ALLOW_CONNECTIONS true')
    assert table_fingerprint(again) == restored

    # The same swap back again: that database is the live one now, no longer kept.
    page = browser.get(url).get_data(as_text=True)
    assert 'id="swap-back-gone"' in page and "Swap back instead" not in page
    refused = post(browser, auth, url, {**form, "confirm": f"{target_db} swapping back"}, page=url)
    assert refused.status_code == 409 and "no longer kept" in refused.get_data(as_text=True)
    assert table_fingerprint(target_db) == replaced


def test_the_scheduler_drops_a_kept_database_once_its_time_is_up_and_swap_back_is_then_refused(
    make_app, make_user, token_for, target_db, pg_admin, redis_server
):
    from rq import Queue

    from app.jobs import runtime
    from app.scheduler import ConsoleScheduler, scheduled_backup

    app = make_app(RESTORE_KEEP_PREVIOUS="8s")
    status, _ = restored_after_changes(app, make_user, token_for, target_db)
    previous, safety = status["result"]["kept_old_database"], status["result"]["safety_backup"]
    settings = app.config["SETTINGS"]
    queue = Queue(settings.redis_namespace, connection=redis_server)
    with app.app_context():
        runtime.configure(app)
        schedulers = [ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup)
                      for _ in range(2)]  # fmt: skip
        schedulers[0].enqueue_jobs()
        assert queue.count == 0  # not yet: its time is not up
        until = datetime.fromisoformat(status["result"]["kept_until"])
        time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()))
        for scheduler in schedulers:  # both find it due: one drop
            scheduler.enqueue_jobs()
    assert queue.count == 1 and scratch_databases(pg_admin, target_db) == [previous]
    run_jobs_for(app)
    assert scratch_databases(pg_admin, target_db) == []

    refused, browser = swap_back_through_page(app, make_user, safety, target_db)
    assert refused.status_code == 409 and "no longer kept" in refused.get_data(as_text=True)
    assert "no longer kept" in audit_rows(app, "restore")[-1].detail
    assert 'id="swap-back-gone"' in browser.get(f"/backups/{safety}/restore?swap_back=1").get_data(as_text=True)
    with app.app_context():  # acted on: its record is gone from the console store
        from app.extensions import db
        from app.store.models import KeptDatabaseRecord

        assert db.session.execute(db.select(KeptDatabaseRecord)).scalars().all() == []


def test_what_is_written_to_redis_neither_chooses_what_is_swapped_back_nor_drops_a_kept_database(
    make_app, make_user, token_for, target_db, pg_admin, redis_server
):
    """Redis is writable by an outsider (SECURITY.md): the hash the kept databases were once listed in, a drop
    job pushed by hand and a decoy named like a set-aside database change nothing."""
    from rq import Queue

    from app.domain.restore_database import scratch_name
    from app.jobs import runtime
    from app.jobs.queue import drop_previous_database_later
    from app.scheduler import ConsoleScheduler, scheduled_backup

    app = make_app(RESTORE_KEEP_PREVIOUS="1h")
    status, replaced = restored_after_changes(app, make_user, token_for, target_db)
    previous, safety = status["result"]["kept_old_database"], status["result"]["safety_backup"]
    settings = app.config["SETTINGS"]
    decoy = scratch_name(target_db, "previous")  # a name a restore of this target could have set aside, closed
    pg_admin.execute(f'CREATE DATABASE "{decoy}"')
    pg_admin.execute(f'ALTER DATABASE "{decoy}" ALLOW_CONNECTIONS false')
    key = f"{settings.key_prefix}:kept-databases"

    def listed(entries: dict[str, float]) -> None:
        redis_server.delete(key)
        for name, until in entries.items():
            redis_server.hset(key, name, json.dumps({"database": name, "until": until, "safety_backup": safety}))

    # Both listed as due, and a drop of the kept one pushed onto the queue by hand: nothing is dropped.
    listed({previous: 0, decoy: 0})
    queue = Queue(settings.redis_namespace, connection=redis_server)
    with app.app_context():
        runtime.configure(app)
        ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup).enqueue_jobs()
        assert queue.count == 0  # the sweep reads the console store: not due
        drop_previous_database_later(settings, redis_server, previous)
    run_jobs_for(app)
    assert scratch_databases(pg_admin, target_db) == sorted([previous, decoy])

    # Only the decoy listed, with the safety backup's name: the swap back still puts back the kept database.
    listed({decoy: time.time() + 3600})
    sent, _ = swap_back_through_page(app, make_user, safety, target_db)
    assert sent.status_code == 303, sent.get_data(as_text=True)
    run_jobs_for(app)
    back = job_of(app, sent.headers["Location"].removeprefix("/jobs/"))
    assert back["status"] == "finished", back["error"]
    assert back["result"]["swapped_back"] == previous and table_fingerprint(target_db) == replaced
    assert decoy in scratch_databases(pg_admin, target_db) and previous not in scratch_databases(pg_admin, target_db)
