"""Planning a backup for its size: the estimate, the part size, and refusing what the store cannot take
before pg_dump starts. Real PostgreSQL, real S3 (moto), a real worker run in process."""

from __future__ import annotations

import stat

import psycopg
import pytest

from app.adapters import postgres
from tests.helpers import NOTHING_LEFT, backup_run_in_process, leftovers
from tests.support.databases import PG

MiB = 1024 * 1024


def fill(dbname: str, megabytes: int, table: str = "filler") -> None:
    """About `megabytes` of table data that does not compress (random bytes as hex text)."""
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id serial, body text)")
        conn.execute(f"INSERT INTO {table} (body) SELECT encode(gen_random_bytes(512), 'hex') "
                     f"FROM generate_series(1, {megabytes * 1024})")  # fmt: skip


@pytest.fixture
def watched_pg_dump(tmp_path):
    """A folder for PG_BIN_DIRS whose pg_dump leaves a mark when it is asked for a dump, then is the real one."""
    real = postgres.pick_client("pg_dump", 15)
    folder, mark = tmp_path / "bin", tmp_path / "pg_dump-ran"
    folder.mkdir()
    script = folder / "pg_dump"
    script.write_text(f'#!/bin/sh\ncase "$*" in *--format=custom*) touch "{mark}";; esac\nexec "{real.path}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder, mark


def test_a_backup_the_store_cannot_take_is_refused_before_pg_dump_starts(make_app, s3_server, target_db,
                                                                         watched_pg_dump):  # fmt: skip
    """A store of two 8 MiB parts (16 MiB) and a database of about 40 MiB that does not compress: refused
    with the numbers and what to set, and pg_dump never ran. The same store takes a small backup."""
    folder, mark = watched_pg_dump
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    fill(target_db, 40)
    app = make_app(**s3_server, S3_MAX_PARTS="2", S3_MAX_PART_SIZE="8MiB", BACKUP_COMPRESSION="none",
                   PG_BIN_DIRS=str(folder))  # fmt: skip
    status = backup_run_in_process(app)
    assert status["status"] == "failed"
    error = status["error"]
    assert "The backup is expected to be about" in error and "2 parts of at most 8.0 MB (16.0 MB)" in error
    assert "S3_MAX_PART_SIZE" in error and "Nothing was dumped" in error
    assert not mark.exists()  # refused before pg_dump started, not after the dump was sent
    assert leftovers(app) == NOTHING_LEFT

    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("TRUNCATE filler")
        conn.execute("VACUUM FULL filler")
    assert backup_run_in_process(app)["status"] == "finished"
    assert mark.exists()


def test_the_first_estimate_comes_from_a_sample_and_later_ones_from_the_growth(app, target_db):
    """No backup yet: the database's tables times the compression measured on a sample. Then: the previous
    backup's size scaled by how much the database grew since."""
    from app.domain import backup as backups
    from app.jobs import runtime

    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes AS SELECT g AS id, md5(g::text) || repeat(' note', g % 40) AS body "
                     "FROM generate_series(1, 200000) g")  # fmt: skip
    with app.app_context():
        runtime.configure(app)
        ours = runtime.console()
        tool = backups.choose_dump(ours.target, compression="gzip:1")
        first = backups.plan_backup(ours, tool)
    made = backup_run_in_process(app)["result"]
    assert 0.5 < first.expected_bytes / made["size"] < 2, (first.expected_bytes, made["size"])

    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("INSERT INTO notes SELECT * FROM notes")
        conn.execute("CHECKPOINT")
    with app.app_context():
        runtime.configure(app)
        ours = runtime.console()
        second = backups.plan_backup(ours, tool)
    grown = second.database_bytes / first.database_bytes
    assert grown > 1.3
    assert second.expected_bytes == pytest.approx(made["size"] * grown, rel=0.01)
    assert second.part_size == 8 * MiB  # a small database keeps the smallest parts
