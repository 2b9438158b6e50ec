"""PostgreSQL 15, 17 and 18: backup, restore and verify against each server, through the jobs layer.

The servers are real (tests/support/pg_servers.py): 15 is the system's, 17 and 18 come from wheels whose
`pg_dump` builds differ (17 has zstd and lz4, 18 has gzip only). The worker finds the wheels'
tools through PG_BIN_DIRS, and picks the compression each build really has.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from app.adapters import postgres
from app.config import ConfigError, Settings
from app.domain.naming import backup_filename
from tests.helpers import (
    NOTHING_LEFT,
    backup_run_in_process,
    leftovers,
    operator_headers,
    run_jobs_for,
    storage_of,
    wait_for_job,
)
from tests.support.databases import database_names, table_fingerprint
from tests.support.pg_servers import SYSTEM, wheel_bin_dir, wheel_bin_dirs

# What `auto` gives on each server's own pg_dump (the worker picks the oldest major >= the server's).
AUTO_LEVEL = "1"  # the measured choice for zstd (README, Benchmarks; bench/results/compression.md)
AUTO_METHOD = {15: "gzip:1", 17: f"zstd:{AUTO_LEVEL}", 18: "gzip:1"}
SAMPLE_ROWS = {"public.customers": 2000, "public.orders": 6000}  # tests.conftest.create_database


def pg_dump_of(major: int) -> str:
    return f"{SYSTEM['bin_dir'] if major == SYSTEM['major'] else wheel_bin_dir(major)}/pg_dump"


@pytest.fixture
def console_on(make_app, monkeypatch):
    """A console whose target database is `dbname` on `server`; its worker finds both wheels' tools."""
    monkeypatch.delenv("PG_BIN_DIRS", raising=False)

    def build(server, dbname: str, **overrides: str):
        return make_app(**{"DATABASE_URL": server.url(dbname), "PG_BIN_DIRS": wheel_bin_dirs(), **overrides})

    return build


def run_job(app, kind: str, filename: str) -> dict:
    """Start a restore or verify through the jobs layer, run it in this process, return its status."""
    from app.jobs.queue import job_status, start_job
    from app.services import redis, settings

    with app.app_context():
        job_id = start_job(settings(), redis(), kind, "ada", filename=filename)
    run_jobs_for(app)
    with app.app_context():
        return job_status(redis(), job_id)


def archive_compression(data: bytes, tmp_path: Path) -> str:
    """The compression an archive's own header names, read by the newest pg_restore (18)."""
    archive = tmp_path / "header.dump"
    archive.write_bytes(data)
    listing = subprocess.run([f"{wheel_bin_dir(18)}/pg_restore", "--list", str(archive)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    return next(line.split(":", 1)[1].strip() for line in listing.splitlines() if "Compression:" in line)


def change_rows(server, dbname: str) -> None:
    with psycopg.connect(**server.params(dbname), autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")
        conn.execute("CREATE TABLE after_the_backup (x int)")


# --------------------------------------------------------------------------- end to end, per server


def test_backup_restore_and_verify_on_each_server(pg_server, server_db, console_on, tmp_path):
    app = console_on(pg_server, server_db)
    at_backup = table_fingerprint(server_db, pg_server.params())

    status = backup_run_in_process(app)
    assert status["status"] == "finished", status["error"]
    filename = status["result"]["filename"]
    storage = storage_of(app)
    manifest = json.loads(storage.get_bytes(filename + ".json"))
    assert manifest["sha256"] == status["result"]["sha256"]
    assert manifest["server_version"].startswith(f"{pg_server.major}.")
    assert manifest["pg_dump_major"] == pg_server.major  # the oldest pg_dump that fits
    assert manifest["compression_method"] == AUTO_METHOD[pg_server.major]  # zstd on 17; gzip on 15 and 18
    method = AUTO_METHOD[pg_server.major].split(":")[0]
    assert archive_compression(storage.get_bytes(filename), tmp_path) in (method, "1")  # pg_dump 15 says "1"

    listed = app.test_client().get("/api/setting/backups", headers=operator_headers(app)).get_json()
    assert [(b["filename"], b["hasManifest"]) for b in listed] == [(filename, True)]

    change_rows(pg_server, server_db)
    restored = run_job(app, "restore", filename)
    assert restored["status"] == "finished", restored["error"]
    assert restored["result"]["verified"] is True and restored["result"]["tables"] == 2
    assert table_fingerprint(server_db, pg_server.params()) == at_backup

    verified = run_job(app, "verify", filename)
    assert verified["status"] == "finished", verified["error"]
    assert verified["result"]["rows"] == SAMPLE_ROWS and verified["result"]["checksum_verified"] is True
    listed = app.test_client().get("/api/setting/backups", headers=operator_headers(app, "vera")).get_json()
    assert next(b for b in listed if b["filename"] == filename)["verifiedAt"] is not None  # (the restore's safety
    # backup of the replaced database is the newest now)
    with pg_server.admin() as admin:
        assert database_names(admin, f"{server_db}_%") == []  # no scratch or set-aside copy left


@pytest.mark.parametrize("pg_server", [18], indirect=True)
def test_a_compression_the_pg_dump_build_lacks_fails_before_any_upload(pg_server, server_db, console_on):
    app = console_on(pg_server, server_db, BACKUP_COMPRESSION="zstd:3")
    status = backup_run_in_process(app)
    assert status["status"] == "failed"
    assert status["progress"]["phase"] == "preparing"  # never reached "dumping": no upload was begun
    error = status["error"]
    assert "BACKUP_COMPRESSION=zstd:3" in error and pg_dump_of(18) in error
    assert "supports gzip, none" in error
    assert leftovers(app) == NOTHING_LEFT


@pytest.mark.parametrize("pg_server", [17, 18], indirect=True)
def test_a_pg15_archive_restores_into_a_newer_server(pg_server, server_db, console_on, target_db, tmp_path):
    """An archive that system pg_dump 15 made from the 5432 server (a migration), restored by the console."""
    archive = tmp_path / "from-15.dump"
    subprocess.run([pg_dump_of(15), "-Fc", "-Z1", "-h", "127.0.0.1", "-U", "postgres", "-f", str(archive), target_db],
                   check=True)  # fmt: skip
    source = table_fingerprint(target_db)  # target_db lives on the system server, 15

    app = console_on(pg_server, server_db)
    old_name = backup_filename("pharmatracker", "production", datetime.now(UTC) - timedelta(days=1),
                               ZoneInfo("Asia/Kolkata"))  # fmt: skip
    storage_of(app).put_bytes(old_name, archive.read_bytes())
    assert backup_run_in_process(app)["status"] == "finished"  # the safety backup a restore needs

    restored = run_job(app, "restore", old_name)
    assert restored["status"] == "finished", restored["error"]
    assert restored["result"]["verified"] is False  # no manifest beside a plain pg_dump file
    assert table_fingerprint(server_db, pg_server.params()) == source


@pytest.mark.parametrize("pg_server", [18], indirect=True)
def test_a_worker_without_a_new_enough_pg_dump_refuses_naming_both_versions(
    pg_server, server_db, app_env, processes, monkeypatch, console_of
):
    from app.jobs.queue import start_job

    monkeypatch.delenv("PG_BIN_DIRS", raising=False)
    env = {**app_env, "DATABASE_URL": pg_server.url(server_db)}
    settings, redis, _ = console_of(env)
    plain = processes.worker(env, name="worker-without-bin-dirs")  # finds only /usr/lib/postgresql/15
    failed = wait_for_job(redis, start_job(settings, redis, "backup", "olga"), "failed", timeout=120)
    assert "the server runs PostgreSQL 18" in failed["error"]
    assert f"15 ({pg_dump_of(15)})" in failed["error"] and "PG_BIN_DIRS" in failed["error"]

    processes.stop(plain)
    processes.worker({**env, "PG_BIN_DIRS": wheel_bin_dirs()}, name="worker-with-bin-dirs")
    done = wait_for_job(redis, start_job(settings, redis, "backup", "olga"), timeout=120)
    assert done["result"]["size"] > 0


# --------------------------------------------------------------------------- the tools themselves


@pytest.mark.parametrize(
    ("major", "expected"),
    [(15, ("gzip",)), (17, ("zstd", "lz4", "gzip")), (18, ("gzip",))],
    ids=["pg15", "pg17", "pg18"],
)
def test_the_probe_finds_the_compression_each_pg_dump_build_has(major, expected):
    postgres.supported_compression.cache_clear()  # probe for real, not a cached answer
    assert postgres.supported_compression(pg_dump_of(major), major) == expected


def tool(major: int) -> postgres.ClientTool:
    clients = postgres.installed_clients("pg_dump", tuple(wheel_bin_dirs().split(":")))
    return next(t for t in clients if t.major == major)


@pytest.mark.parametrize(
    ("major", "setting", "args"),
    [
        (15, "auto", ["--compress=1"]),
        (15, "gzip:6", ["--compress=6"]),
        (17, "auto", [f"--compress=zstd:{AUTO_LEVEL}"]),
        (17, "lz4", ["--compress=lz4"]),
        (17, "gzip:6", ["--compress=gzip:6"]),
        (18, "auto", ["--compress=gzip:1"]),
        (18, "none", ["--compress=0"]),
    ],
)
def test_compression_arguments_follow_the_build(major, setting, args):
    assert postgres.compression_for(setting, tool(major)).args == args


@pytest.mark.parametrize(("major", "setting"), [(15, "zstd:3"), (15, "lz4"), (18, "zstd"), (18, "lz4:4")])
def test_a_method_the_build_lacks_is_refused_naming_the_tool_and_what_it_has(major, setting):
    with pytest.raises(postgres.PgToolError) as caught:
        postgres.compression_for(setting, tool(major))
    message = str(caught.value)
    assert f"BACKUP_COMPRESSION={setting}" in message and pg_dump_of(major) in message
    assert message.endswith("this build supports gzip, none")


def test_pg_bin_dirs_are_searched_first_and_every_found_tool_is_a_candidate(tmp_path):
    first = tmp_path / "bin"
    first.mkdir()
    (first / "pg_dump").symlink_to(pg_dump_of(15))  # the same pg_dump 15, reached through PG_BIN_DIRS
    dirs = (str(first), *wheel_bin_dirs().split(":"))
    assert [t.major for t in postgres.installed_clients("pg_dump", dirs)] == [15, 17, 18]
    picked = {major: postgres.pick_client("pg_dump", major, dirs).path for major in (13, 15, 16, 17, 18)}
    assert picked == {13: str(first / "pg_dump"), 15: str(first / "pg_dump"), 16: pg_dump_of(17),
                      17: pg_dump_of(17), 18: pg_dump_of(18)}  # fmt: skip
    with pytest.raises(postgres.PgToolError) as caught:
        postgres.pick_client("pg_dump", 19, dirs)
    assert "PostgreSQL 19" in str(caught.value) and f"18 ({pg_dump_of(18)})" in str(caught.value)


def test_pg_bin_dirs_setting(tmp_path):
    base = {"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}
    settings = Settings.from_env({**base, "PG_BIN_DIRS": "/opt/pg/17/bin: /opt/pg/18/bin:"}, str(tmp_path))
    assert settings.pg_bin_dirs == ("/opt/pg/17/bin", "/opt/pg/18/bin")
    assert Settings.from_env(base, str(tmp_path)).pg_bin_dirs == ()
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**base, "PG_BIN_DIRS": f"/opt/pg/17/bin:{os.path.relpath(tmp_path)}"}, str(tmp_path))
    assert caught.value.variable == "PG_BIN_DIRS" and "absolute" in str(caught.value)
