"""The whole loop on each real S3 server, and the equal-parts rule read back from SeaweedFS.

moto accepts multipart uploads whose parts differ in size; Cloudflare R2 refuses them. SeaweedFS
answers `HEAD ?partNumber=N` with each part's own length and the number of parts, so the tests
below read the part sizes back from the server rather than trusting the uploader.
"""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest

from app.adapters.storage import MIN_PART_SIZE, S3Storage
from tests.helpers import PASSKEY, backup_run_in_process, keys, run_jobs_for
from tests.support.databases import PG, drop_database, new_name, table_fingerprint
from tests.support.s3_servers import REGION, S3Bucket

MiB = 1024 * 1024


def part_sizes(bucket: S3Bucket, key: str) -> list[int]:
    """Each part's length as the server stored it."""
    client = bucket.client()
    first = client.head_object(Bucket=bucket.name, Key=key, PartNumber=1)
    sizes = [first["ContentLength"]]
    for number in range(2, first["PartsCount"] + 1):
        sizes.append(client.head_object(Bucket=bucket.name, Key=key, PartNumber=number)["ContentLength"])
    return sizes


def unfinished(bucket: S3Bucket) -> list[str]:
    return [u["Key"] for u in bucket.client().list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])]


def test_backup_list_retention_and_restore_on_each_store(s3_store, make_app, make_user, token_for, target_db):
    app = make_app(**s3_store.env, MAX_BACKUP_FILES="2")
    client = app.test_client()
    make_user("ada", "admin")
    headers = token_for("ada")

    made, results = [], []
    for _ in range(3):
        status = backup_run_in_process(app)
        assert status["status"] == "finished", status["error"]
        made.append(status["result"]["filename"])
        results.append(status["result"])
    assert [r["deleted"] for r in results] == [[], [], [made[0]]]
    assert results[2]["delete_failures"] == {}
    before = table_fingerprint(target_db)

    listed = client.get("/api/setting/backups", headers=headers).get_json()
    names = [b["filename"] for b in listed]
    assert names == [made[2], made[1]]  # newest first; the oldest went to retention
    assert keys(s3_store) == sorted(f"{name}{suffix}" for name in made[1:] for suffix in ("", ".json"))
    assert unfinished(s3_store) == []

    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")
        conn.execute("CREATE TABLE after_the_backup (x int)")
    assert table_fingerprint(target_db) != before

    answer = client.post("/api/setting/restore", headers=headers, json={"filename": made[2], "passkey": PASSKEY})
    assert answer.status_code == 202, answer.get_json()
    run_jobs_for(app)
    status = client.get(answer.get_json()["status_url"], headers=headers).get_json()
    assert status["status"] == "finished", status["error"]
    assert status["result"]["verified"] is True  # the sha256 read back from this store matched the manifest
    assert table_fingerprint(target_db) == before
    assert unfinished(s3_store) == []


def test_uneven_writes_go_up_as_equal_parts(seaweedfs_bucket):
    endpoint = seaweedfs_bucket.endpoint
    storage = S3Storage(seaweedfs_bucket.name, "p", region=REGION, endpoint_url=endpoint.url,
                        access_key=endpoint.access_key, secret_key=endpoint.secret_key)  # fmt: skip
    data = os.urandom(3 * MIN_PART_SIZE + 123_457)
    upload = storage.begin_upload("uneven.dump", part_size=MIN_PART_SIZE)
    # Pipe reads come in lengths like these; 1,000,003 and 7 make writes straddle part boundaries.
    lengths, offset = itertools.cycle((4096, 65536, 1_000_003, 7)), 0
    while offset < len(data):
        length = next(lengths)
        upload.write(data[offset : offset + length])
        offset += length
    assert upload.complete() == len(data)

    assert part_sizes(seaweedfs_bucket, "p/uneven.dump") == [MIN_PART_SIZE] * 3 + [123_457]
    assert storage.get_bytes("uneven.dump") == data


def test_a_stream_that_ends_on_a_part_boundary_has_no_empty_last_part(seaweedfs_bucket):
    endpoint = seaweedfs_bucket.endpoint
    storage = S3Storage(seaweedfs_bucket.name, "p", region=REGION, endpoint_url=endpoint.url,
                        access_key=endpoint.access_key, secret_key=endpoint.secret_key)  # fmt: skip
    data = os.urandom(2 * MIN_PART_SIZE)
    upload = storage.begin_upload("exact.dump", part_size=MIN_PART_SIZE)
    for offset in range(0, len(data), 1_000_000):
        upload.write(memoryview(data)[offset : offset + 1_000_000])
    assert upload.complete() == len(data)

    assert part_sizes(seaweedfs_bucket, "p/exact.dump") == [MIN_PART_SIZE] * 2
    assert storage.get_bytes("exact.dump") == data


@pytest.fixture
def big_db(pg_admin):
    """About 28 MB of rows, so that an uncompressed dump needs at least three 8 MiB parts."""
    name = new_name()
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(**{**PG, "dbname": name}, autocommit=True) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO blobs SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, 28000) g")
    yield name
    drop_database(pg_admin, name)


def test_a_backup_of_three_parts_has_equal_parts_on_seaweedfs(seaweedfs_bucket, make_app, big_db):
    app = make_app(**seaweedfs_bucket.env, DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{big_db}",
                   BACKUP_COMPRESSION="none")  # fmt: skip
    status = backup_run_in_process(app)
    assert status["status"] == "finished", status["error"]
    result = status["result"]

    sizes = part_sizes(seaweedfs_bucket, result["filename"])
    assert len(sizes) >= 3
    assert sizes[:-1] == [MIN_PART_SIZE] * (len(sizes) - 1)
    assert 0 < sizes[-1] <= MIN_PART_SIZE
    assert sum(sizes) == result["size"]
