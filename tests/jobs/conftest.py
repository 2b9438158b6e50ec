"""Fixtures the job tests share: a slow S3 upload (slow_s3 is in tests/server_fixtures.py), a big table."""

from __future__ import annotations

import psycopg
import pytest

from tests.jobs.test_faults import FlakyS3
from tests.support.databases import PG

PART_SECONDS = 1.5  # each 8 MiB part is held this long: a 64 MB backup takes over 10 s, and never stalls for 5 s


@pytest.fixture
def slow_parts(slow_s3) -> tuple[FlakyS3, dict[str, str]]:
    """slow_s3 holding every uploaded part for PART_SECONDS: an upload that moves, slowly."""
    proxy, s3 = slow_s3
    proxy.hold = lambda method, path: PART_SECONDS if method == "PUT" and "partNumber=" in path else 0.0
    return proxy, s3


@pytest.fixture
def big_table(target_db) -> str:
    """About 64 MB of dump (8 parts) with compression off."""
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 32) AS body "
                     "FROM generate_series(1, 64000) g")  # fmt: skip
    return target_db
