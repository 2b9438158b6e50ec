"""Restores that fit the worker: without room for a copy of the archive in RESTORE_TMP_DIR, the archive
streams from the store into pg_restore, and the restored database is the one that was backed up.

RESTORE_TMP_DIR is a 2 MB tmpfs (mounted for the test, as root); the archives are a few MB of
incompressible rows (BACKUP_COMPRESSION=none), so no copy of them could fit there.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from app.domain import restore
from tests.adapters.test_encryption import age_key
from tests.helpers import (
    audit_rows,
    backup_run_in_process,
    job_of,
    restore_through_api,
    run_jobs_for,
    signed_in,
    storage_of,
    tiny_disk,
)
from tests.jobs.test_restore_fidelity import console_role
from tests.support.databases import PG, create_database, database_names, drop_database, new_name, table_fingerprint
from tests.support.fidelity import differences, fingerprint
from tests.support.rich_database import rich_database

NOISE_ROWS = 60_000  # 32 random bytes each, 66 characters of COPY text: about 4 MB of archive


def add_noise(dbname: str, user: str) -> None:
    """A table of random bytes, owned by `user`: what makes the archive bigger than the tiny disk."""
    with psycopg.connect(**{**PG, "dbname": dbname, "user": user}, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.noise (id int PRIMARY KEY, bytes bytea)")
        conn.execute("INSERT INTO public.noise SELECT g, decode(md5(random()::text) || md5(random()::text), 'hex') "
                     "FROM generate_series(1, %s) g", (NOISE_ROWS,))  # fmt: skip


@pytest.mark.parametrize(
    ("as_owner", "encrypted"), [(True, False), (False, True)], ids=["as the owner role", "as postgres, age file"]
)
def test_an_archive_larger_than_the_restore_folder_streams_and_the_same_database_comes_back(
    make_app, make_user, token_for, pg_admin, tmp_path, as_owner, encrypted
):
    """As the owner role (not a superuser), the grants go in by hand after a pg_restore told by --use-list to
    skip them: that list works on stdin too. As postgres, an age file is decrypted in the stream."""
    with rich_database(pg_admin) as rich, contextlib.ExitStack() as undo:
        add_noise(rich.name, rich.roles.owner)
        user = console_role(pg_admin, rich, undo, as_owner)
        restore_tmp = undo.enter_context(tiny_disk(tmp_path / "restore-tmp", "2m"))
        env = {"DATABASE_URL": f"postgresql://{user}@127.0.0.1:5432/{rich.name}", "BACKUP_COMPRESSION": "none",
               "RESTORE_TMP_DIR": str(restore_tmp)}  # fmt: skip
        if encrypted:
            identity, recipient = age_key(tmp_path, "worker-key")
            env |= {"BACKUP_ENCRYPTION_RECIPIENTS": recipient, "BACKUP_ENCRYPTION_IDENTITY_FILE": str(identity)}
        app = make_app(**env)
        make_user("ada", "admin")
        before = fingerprint(rich.name, roles=rich.roles)
        made = backup_run_in_process(app)["result"]
        assert made["size"] > 3 * 1024 * 1024 and made["filename"].endswith(".age" if encrypted else ".dump")
        with psycopg.connect(**{**PG, "dbname": rich.name}, autocommit=True) as conn:
            conn.execute("DELETE FROM public.noise WHERE id % 2 = 0")
            conn.execute("DELETE FROM shop.words")

        status = restore_through_api(app, app.test_client(), token_for("ada"), made["filename"])

        assert status["status"] == "finished", status["error"]
        assert status["result"]["streamed"] is True and status["result"]["verified"] is True
        note = f"There is not room for a copy of the 4.7 MB archive in {restore_tmp} (2.0 MB free): it is streamed"
        assert note in status["warning"]
        assert differences(before, fingerprint(rich.name, roles=rich.roles)) == []
        assert "streamed from the store into pg_restore" in audit_rows(app, "restore")[-1].detail
        browser, _ = signed_in(app, make_user, "viewer", "vera")
        page = browser.get(f"/jobs/{status['id']}").get_data(as_text=True)
        assert "it is streamed from the store into pg_restore, one table at a time" in page
        assert list(restore_tmp.iterdir()) == []


def test_with_room_for_a_copy_the_archive_is_downloaded_as_before(make_app, make_user, token_for, target_db,
                                                                  tmp_path):  # fmt: skip
    restore_tmp = tmp_path / "roomy"  # on the test machine's disk: gigabytes free
    app = make_app(RESTORE_TMP_DIR=str(restore_tmp))
    make_user("ada", "admin")
    before = table_fingerprint(target_db)
    filename = backup_run_in_process(app)["result"]["filename"]
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")

    status = restore_through_api(app, app.test_client(), token_for("ada"), filename)

    assert status["status"] == "finished", status["error"]
    assert status["result"]["streamed"] is False and status["warning"] is None
    assert table_fingerprint(target_db) == before
    assert "streamed" not in audit_rows(app, "restore")[-1].detail
    assert list(restore_tmp.iterdir()) == []  # the downloaded copy went with its folder


def test_a_streamed_archive_whose_bytes_changed_fails_at_its_checksum_and_changes_nothing(
    make_app, make_user, target_db, pg_admin, tmp_path
):
    """One character of a row changed in the store, the file's size kept: pg_restore loads it without
    complaint, and the checksum, compared once the last byte has passed, fails the verify; its scratch
    database is dropped. (A restore fails the same way, in the same shared step, before its swap.)"""
    add_noise(target_db, "postgres")
    with tiny_disk(tmp_path / "restore-tmp", "2m") as restore_tmp:
        app = make_app(BACKUP_COMPRESSION="none", RESTORE_TMP_DIR=str(restore_tmp))
        filename = backup_run_in_process(app)["result"]["filename"]
        storage = storage_of(app)
        data = bytearray(storage.get_bytes(filename))
        row = data.index(b"\t\\\\x", len(data) // 2) + 4  # a noise row's hex (COPY text: \\x…), past the middle
        data[row] = ord("a") if data[row] != ord("a") else ord("b")
        storage.put_bytes(filename, bytes(data))
        live = table_fingerprint(target_db)
        client, auth = signed_in(app, make_user)

        client.post(f"/backups/{filename}/verify", data={"csrf_token": auth.csrf_token("/")})
        run_jobs_for(app)

        failed = audit_rows(app, "verify")[-1]
        assert failed.outcome == "failed" and "checksum mismatch" in failed.detail, failed.detail
        assert "it is streamed from the store into pg_restore" in job_of(app, failed.job_id)["warning"]
        assert table_fingerprint(target_db) == live
        assert database_names(pg_admin, f"{target_db}_pgc_%") == []
        assert list(restore_tmp.iterdir()) == []


def test_a_table_of_contents_past_the_first_mib_is_read_from_a_longer_head(make_app, make_user, target_db, tmp_path):
    """A 1.5 MB comment makes the table of contents longer than the first head (1 MiB): the next (4 MiB)
    holds it, within half the 16 MB disk."""
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute(sql.SQL("COMMENT ON TABLE customers IS {}").format(sql.Literal("x" * 1_500_000)))
    with tiny_disk(tmp_path / "restore-tmp", "16m") as restore_tmp:
        app = make_app(RESTORE_TMP_DIR=str(restore_tmp))
        filename = backup_run_in_process(app)["result"]["filename"]
        client, auth = signed_in(app, make_user)

        client.post(f"/backups/{filename}/verify", data={"csrf_token": auth.csrf_token("/")})
        run_jobs_for(app)

        done = audit_rows(app, "verify")[-1]
        assert done.outcome == "ok", done.detail
        assert "it is streamed from the store into pg_restore" in job_of(app, done.job_id)["warning"]
        report = json.loads(storage_of(app).get_bytes(filename + ".verified.json"))
        assert report["checksum_verified"] is True
        assert report["rows"] == {"public.customers": 2000, "public.orders": 6000}
        assert list(restore_tmp.iterdir()) == []


# --------------------------------------------------------------------------- a file replaced in the store


@contextlib.contextmanager
def hostile_archive(pg_admin, size: int) -> Iterator[tuple[bytes, str]]:
    """What someone who can write to the store puts in place of a backup: a pg_dump archive padded to the
    backup's `size`, whose restore creates a role (its name given) as the console's role: a materialized
    view, refreshed by pg_restore, calls a function that runs CREATE ROLE. Proven on a throw-away database
    first, so a test that finds no such role afterwards shows that the archive's SQL never ran."""
    source, proof, marker = new_name("pgct_hostile"), new_name("pgct_hostile"), new_name("pgct_marker")
    create_database(pg_admin, source, rows=10)
    try:
        with psycopg.connect(**{**PG, "dbname": source}, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE FUNCTION public.marker() RETURNS int LANGUAGE plpgsql AS {}").format(
                sql.Literal(f"BEGIN EXECUTE 'CREATE ROLE {marker}'; RETURN 1; END")))  # fmt: skip
            conn.execute("CREATE MATERIALIZED VIEW public.marked AS SELECT public.marker() AS x")
        dump = subprocess.run(["pg_dump", "-Fc", "-Z0", "-h", "127.0.0.1", "-U", "postgres", source],
                              capture_output=True, check=True).stdout  # fmt: skip
    finally:
        drop_database(pg_admin, source)
        pg_admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(marker)))
    assert len(dump) < size
    data = dump + os.urandom(size - len(dump))  # pg_restore stops after the last entry: the rest is never read
    try:
        pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(proof)))
        subprocess.run(["pg_restore", "--exit-on-error", "-h", "127.0.0.1", "-U", "postgres", "-d", proof],
                       input=data, capture_output=True, check=True)  # fmt: skip
        assert role_exists(pg_admin, marker), "the hostile archive must create its role when restored"
        pg_admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(marker)))
        yield data, marker
    finally:
        drop_database(pg_admin, proof)
        pg_admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(marker)))


def role_exists(pg_admin, name: str) -> bool:
    return pg_admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


@contextlib.contextmanager
def databases_seen(like: str) -> Iterator[set[str]]:
    """Every database named `like` that exists at any moment the block is watched (every 20 ms)."""
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        with psycopg.connect(**PG, autocommit=True) as conn:
            while not done.is_set():
                query = "SELECT datname FROM pg_database WHERE datname LIKE %s"
                seen.update(row[0] for row in conn.execute(query, (like,)))
                done.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def test_a_file_replaced_in_the_store_is_refused_before_any_database_is_made(
    make_app, make_user, token_for, target_db, pg_admin, tmp_path
):
    """Same size, another archive, the signed manifest unchanged: the whole file is read and its checksum
    compared before the table of contents is read, before the scratch database exists. Its SQL never runs."""
    add_noise(target_db, "postgres")
    with tiny_disk(tmp_path / "restore-tmp", "2m") as restore_tmp:
        app = make_app(BACKUP_COMPRESSION="none", RESTORE_TMP_DIR=str(restore_tmp))
        make_user("ada", "admin")
        made = backup_run_in_process(app)["result"]
        live = table_fingerprint(target_db)
        with hostile_archive(pg_admin, made["size"]) as (data, marker):
            storage_of(app).put_bytes(made["filename"], data)

            with databases_seen(f"{target_db}_pgc_%") as scratch:
                status = restore_through_api(app, app.test_client(), token_for("ada"), made["filename"])

            assert status["status"] == "failed", status
            assert "checksum mismatch" in status["error"] and "nothing was changed" in status["error"]
            assert status["progress"]["phase"] == "downloading"  # the first read, before the scratch database
            assert scratch == set() and database_names(pg_admin, f"{target_db}_pgc_%") == []
            assert not role_exists(pg_admin, marker)
        assert table_fingerprint(target_db) == live
        assert list(restore_tmp.iterdir()) == []


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_a_file_replaced_between_the_check_and_the_restore_is_refused_and_never_loaded(
    where, request, make_app, make_user, token_for, target_db, pg_admin, tmp_path, monkeypatch
):
    """The file is replaced once its checksum has matched and its head was read (when the preflight runs):
    the stream into pg_restore reads only the version that was checked (S3: If-Match on each ranged read;
    a folder: the same file), so the job fails there, the hostile SQL never runs, the live database is as
    it was and the scratch database is dropped."""
    add_noise(target_db, "postgres")
    store = request.getfixturevalue("s3_server") if where == "s3" else {}
    with tiny_disk(tmp_path / "restore-tmp", "2m") as restore_tmp:
        app = make_app(BACKUP_COMPRESSION="none", RESTORE_TMP_DIR=str(restore_tmp), **store)
        make_user("ada", "admin")
        made = backup_run_in_process(app)["result"]
        live = table_fingerprint(target_db)
        with hostile_archive(pg_admin, made["size"]) as (data, marker):
            preflight = restore.preflight

            def replaced_first(*args, **kwargs):  # the writer's move, between the two passes
                storage_of(app).put_bytes(made["filename"], data)
                return preflight(*args, **kwargs)

            monkeypatch.setattr(restore, "preflight", replaced_first)

            status = restore_through_api(app, app.test_client(), token_for("ada"), made["filename"])

            assert status["status"] == "failed", status
            assert not role_exists(pg_admin, marker)
            assert "changed in the store while it was being restored" in status["error"], status["error"]
            assert "nothing was changed" in status["error"]
        assert table_fingerprint(target_db) == live
        assert database_names(pg_admin, f"{target_db}_pgc_%") == []
        assert list(restore_tmp.iterdir()) == []
