"""A failed job's cause in plain words matches its detail: each cause its own words.

Where PostgreSQL can be made to say it here (trust auth on 127.0.0.1), the words come from the real
server and the real pg_dump; a wrong password and a full disk are the exact messages libpq and the
server give, as this machine cannot produce them.
"""

from __future__ import annotations

import errno
import socket
import subprocess

import psycopg
import pytest

from app.domain.cleanup import describe_error, plain_reason
from tests.support.databases import PG, drop_database, new_name


def failure_of(**conninfo) -> str:
    """The reason a job records for this connection's failure (describe_error, as the jobs layer calls it)."""
    with pytest.raises(psycopg.Error) as caught:
        psycopg.connect(**{**PG, "connect_timeout": 5, **conninfo}).close()
    return describe_error(caught.value) or str(caught.value)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again once the socket is: nothing listens there


def test_missing_database_says_it_does_not_exist_not_refused():
    missing = new_name("pgct_missing")
    reason = plain_reason(failure_of(dbname=missing))
    assert reason == "the database does not exist on the server: check its name"
    dumped = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-d", missing, "-f", "/dev/null"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "does not exist" in dumped.stderr
    assert plain_reason(f"pg_dump failed (exit {dumped.returncode}): {dumped.stderr}") == reason


def test_closed_port_is_a_refused_connection():
    assert plain_reason(failure_of(port=closed_port())) == "the database refused connections"


def test_missing_role_says_so():
    reason = plain_reason(failure_of(user=new_name("pgct_nobody")))
    assert reason == "the database server has no user by the console's user name"


def test_permission_denied_and_timeout_from_the_server(pg_admin):
    name, role = new_name(), new_name("pgct_role")
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    pg_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        with psycopg.connect(**{**PG, "dbname": name}, autocommit=True) as conn:
            conn.execute("CREATE TABLE secrets (id int)")
        with psycopg.connect(**{**PG, "dbname": name, "user": role}) as conn, pytest.raises(psycopg.Error) as denied:
            conn.execute("SELECT * FROM secrets")
        assert "permission denied" in str(denied.value)
        assert plain_reason(describe_error(denied.value)) == "the console's database user lacks a permission it needs"
        with psycopg.connect(**{**PG, "dbname": name}) as conn, pytest.raises(psycopg.Error) as slow:
            conn.execute("SET statement_timeout = 50")
            conn.execute("SELECT pg_sleep(2)")
        assert plain_reason(describe_error(slow.value)) == "the database server did not answer in time"
    finally:
        drop_database(pg_admin, name)
        pg_admin.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize(("detail", "words"), [
    ('pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication '
     'failed for user "shop"', "the database server refused the console's password"),
    ('connection to server at "db" (10.0.0.5), port 5432 failed: fe_sendauth: no password supplied',
     "the database server refused the console's password"),
    ('connection to server at "10.0.0.5", port 5432 failed: timeout expired',
     "the database server did not answer in time"),
    ('pg_restore: error: could not execute query: ERROR:  could not extend file "base/16384/16385": No space left '
     'on device', "the database server's disk is full"),
    ("pg_dump: error: could not write to output file: No space left on device", "the worker's disk is full"),
    ("the worker's disk is full (/backups); free space there", "the worker's disk is full"),
    ("[Errno 13] Permission denied: '/var/backups/x.dump'", "the worker may not read or write a file it needs"),
    ('pg_dump: error: query failed: ERROR:  permission denied for table orders',
     "the console's database user lacks a permission it needs"),
    ('could not translate host name "dbb" to address: Name or service not known',
     "the database server's host name is unknown"),
    ('connection to server at "127.0.0.1", port 5999 failed: Connection refused', "the database refused connections"),
    ("made no progress for 5 s (JOB_TIMEOUT_SECONDS); nothing was kept",
     "it made no progress for too long and was stopped"),
    ("the live database shop does not exist on the server", "the live database does not exist on the server"),
    ("something new; and more", "something new"),
    ("", "the job failed without saying why"),
])  # fmt: skip
def test_each_cause_has_its_own_words(detail, words):
    assert plain_reason(detail) == words


def test_no_setting_names_in_the_causes():
    for detail in ("made no progress for 5 s (JOB_TIMEOUT_SECONDS)", "ran past the longest a job may run"):
        assert not any(word.isupper() and "_" in word for word in plain_reason(detail).split())


def test_a_full_worker_disk_is_described():
    full = OSError(errno.ENOSPC, "No space left on device", "/backups/x.dump")
    assert plain_reason(describe_error(full)) == "the worker's disk is full"
