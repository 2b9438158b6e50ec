"""The safety backup a restore makes of the database it replaced: never the file restored, checked in
the store before that database goes, and kept or dropped as configured.

The faults are real: a pg_dump (through PG_BIN_DIRS) that fails, or is slow, only when it dumps the
set-aside database; real PostgreSQL, Redis and folder store, jobs run by RQ's worker in this process.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from app.adapters import postgres
from app.adapters.storage import StorageError
from app.adapters.storage.folder import LocalStorage
from tests.helpers import REDIS_URL, audit_rows, backup_run_in_process, restore_through_api, run_jobs_for, signed_in
from tests.jobs.test_restore import change_live, scratch_databases
from tests.support.databases import table_fingerprint


def set_aside_pg_dump(folder: Path, when_set_aside: str) -> str:
    """A folder for PG_BIN_DIRS whose pg_dump runs `when_set_aside` (shell; "$real" is the real pg_dump)
    when it is asked to dump a database a restore set aside, and is the real pg_dump otherwise."""
    real = postgres.pick_client("pg_dump", 15).path
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "pg_dump"
    script.write_text(f'#!/bin/sh\nreal="{real}"\ncase "$PGDATABASE" in *_pgc_previous_*) {when_set_aside} ;; esac\n'
                      'exec "$real" "$@"\n')  # fmt: skip
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def restored_after_changes(app, make_user, token_for, target_db) -> tuple[dict, dict]:
    """A backup, changes, and a restore of that backup through the API by an admin: the restore's final
    status (finished), and the fingerprint of the database it replaced."""
    make_user("ada", "admin")
    filename = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    replaced = table_fingerprint(target_db)
    status = restore_through_api(app, app.test_client(), token_for("ada"), filename)
    assert status["status"] == "finished", status["error"]
    return status, replaced


@pytest.fixture
def admin(app, make_user, token_for):
    make_user("ada", "admin")
    return token_for("ada")


def test_when_the_safety_backup_fails_undo_names_no_file_and_the_replaced_database_is_kept(
    make_app, make_user, token_for, target_db, pg_admin, tmp_path
):
    failing = set_aside_pg_dump(tmp_path / "bin", 'echo "pg_dump: error: the disk said no" >&2; exit 3')
    app = make_app(PG_BIN_DIRS=failing)
    status, replaced = restored_after_changes(app, make_user, token_for, target_db)
    filename = status["result"]["filename"]
    result = status["result"]
    assert result["safety_backup"] is None and result["safety_backup_of_replaced"] is None
    kept = result["kept_old_database"]
    assert scratch_databases(pg_admin, target_db) == [kept]
    pg_admin.execute(f'ALTER DATABASE "{kept}" ALLOW_CONNECTIONS true')  # closed by the job: nobody writes to it
    assert table_fingerprint(kept) == replaced
    assert "the safety backup of the replaced database failed" in status["warning"]
    assert "the disk said no" in status["warning"] and kept in status["warning"]
    assert "its safety backup failed (pg_dump failed" in audit_rows(app, "restore")[-1].detail
    browser, _ = signed_in(app, make_user, "admin", "root")
    page = browser.get(f"/jobs/{status['id']}").get_data(as_text=True)
    assert 'id="job-undo"' not in page and f"/backups/{filename}/restore" not in page
    assert 'id="job-no-undo"' in page and f"the replaced database is kept as\n          <code>{kept}</code>" in page

    # A drop job pushed onto the queue by hand (anyone who can write to Redis can): the database stays.
    pg_admin.execute(f'ALTER DATABASE "{kept}" ALLOW_CONNECTIONS false')  # as the job left it
    from app.jobs.queue import drop_previous_database_later

    drop_previous_database_later(app.config["SETTINGS"], Redis.from_url(REDIS_URL), kept)
    run_jobs_for(app)
    assert scratch_databases(pg_admin, target_db) == [kept]


# --------------------------------------------------------------------------- the safety backup is read back first


def queued(app) -> int:
    """Jobs waiting in the console's queue (alerts have their own)."""
    return Queue(app.config["SETTINGS"].redis_namespace, connection=Redis.from_url(REDIS_URL)).count


def test_the_replaced_database_is_dropped_only_after_its_safety_backup_read_back_whole(
    app, admin, target_db, pg_admin, monkeypatch
):
    """The store's copy of the safety backup is read to its last byte before the drop is even enqueued."""
    filename = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    reads = []
    read = LocalStorage.open_stream

    def read_back(self, name):
        yield from read(self, name)
        reads.append((name, queued(app), scratch_databases(pg_admin, target_db)))  # after the last byte

    monkeypatch.setattr(LocalStorage, "open_stream", read_back)
    status = restore_through_api(app, app.test_client(), admin, filename)

    assert status["status"] == "finished", status["error"]
    safety = status["result"]["safety_backup"]
    [(name, drops_queued, databases)] = reads
    assert name == safety and drops_queued == 0 and len(databases) == 1  # still there, its drop not yet asked
    assert status["result"]["kept_old_database"] is None
    assert scratch_databases(pg_admin, target_db) == []  # then dropped, by the job queued after the check


@pytest.mark.parametrize("fault", ["read fails", "a byte differs"])
def test_a_safety_backup_that_does_not_read_back_whole_keeps_the_replaced_database(
    app, admin, make_user, target_db, pg_admin, monkeypatch, fault
):
    filename = backup_run_in_process(app)["result"]["filename"]
    change_live(target_db)
    read = LocalStorage.open_stream

    def faulty(self, name):
        blocks = read(self, name)
        if fault == "read fails":
            raise StorageError(f"the store could not read {name}: connection reset")
        first = next(blocks)
        yield bytes([first[0] ^ 0xFF]) + first[1:]
        yield from blocks

    monkeypatch.setattr(LocalStorage, "open_stream", faulty)
    status = restore_through_api(app, app.test_client(), admin, filename)

    assert status["status"] == "finished", status["error"]
    result = status["result"]
    kept = result["kept_old_database"]
    assert result["safety_backup"] is None and scratch_databases(pg_admin, target_db) == [kept]
    words = "connection reset" if fault == "read fails" else "read back from the store has sha256"
    assert "reading it back did not prove it whole" in status["warning"] and words in status["warning"]
    assert kept in status["warning"] and "nothing of it was dropped" in status["warning"]
    detail = audit_rows(app, "restore")[-1].detail
    assert "its safety backup failed" in detail and words in detail and kept in detail
    browser, _ = signed_in(app, make_user, "admin", "root")
    page = browser.get(f"/jobs/{status['id']}").get_data(as_text=True)
    assert 'id="job-undo"' not in page and 'id="job-no-undo"' in page
