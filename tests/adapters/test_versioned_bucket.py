"""The console on buckets that protect themselves: versioning (moto, SeaweedFS) and Object Lock.

A versioned bucket turns every delete the console makes (retention, unpin) into a delete marker:
the file leaves the listing but its data stays as a non-current version, which the bucket's owner
can bring back by deleting the marker. That is the protection against a compromised console or
leaked keys, so these tests check it through the console's own pages and API, then read the
versions from the server. The JuiceFS gateway has no versioning and is not used here.

Object Lock: SeaweedFS applies a bucket's default retention to every new version (multipart
uploads included) and refuses to delete a locked version; moto does not lock what a multipart
upload makes, and, as AWS documents, refuses a PutObject without Content-MD5 or a checksum header
into such a bucket (`MissingUploadObjectWithObjectLockHeaders`).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.helpers import PASSKEY, audit_rows, backup_run_in_process, keys, run_jobs_for, signed_in, storage_of
from tests.support.databases import PG, table_fingerprint
from tests.support.s3_servers import REGION, S3Bucket, create_bucket, remove_bucket

LOCK_DAYS = 1
LISTING_SECONDS = 1  # BACKUP_LIST_CACHE_SECONDS here: an owner's recovery shows once it expires


@pytest.fixture(params=["moto", "seaweedfs"])
def versioned_store(request, s3_endpoints) -> S3Bucket:
    """A fresh bucket with versioning on; removed afterwards with every version and delete marker."""
    endpoint = s3_endpoints[request.param]
    bucket = create_bucket(endpoint)
    endpoint.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield S3Bucket(endpoint, bucket)
    remove_bucket(endpoint, bucket)


def locked_bucket(endpoint) -> S3Bucket:
    """A bucket made with Object Lock on and a default governance retention of LOCK_DAYS."""
    client = endpoint.client()
    bucket = S3Bucket(endpoint, f"pgct-lock-{uuid.uuid4().hex[:12]}")
    client.create_bucket(
        Bucket=bucket.name, CreateBucketConfiguration={"LocationConstraint": REGION}, ObjectLockEnabledForBucket=True
    )  # Object Lock can only be chosen when a bucket is made
    client.put_object_lock_configuration(Bucket=bucket.name, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": LOCK_DAYS}},
    })  # fmt: skip
    return bucket


def remove_locked_bucket(bucket: S3Bucket) -> None:
    """Governance retention yields to the bucket's owner when asked to (BypassGovernanceRetention)."""
    client = bucket.client()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket.name):
        for item in page.get("Versions", []):
            client.delete_object(Bucket=bucket.name, Key=item["Key"], VersionId=item["VersionId"],
                                 BypassGovernanceRetention=True)  # fmt: skip
    remove_bucket(bucket.endpoint, bucket.name)


@pytest.fixture
def seaweedfs_locked(s3_endpoints) -> S3Bucket:
    bucket = locked_bucket(s3_endpoints["seaweedfs"])
    yield bucket
    remove_locked_bucket(bucket)


@pytest.fixture
def moto_locked(s3_endpoints) -> S3Bucket:
    bucket = locked_bucket(s3_endpoints["moto"])
    yield bucket
    remove_locked_bucket(bucket)


def versions(bucket: S3Bucket, key: str) -> tuple[list[dict], list[dict]]:
    """(versions, delete markers) of exactly this key, newest first."""
    page = bucket.client().list_object_versions(Bucket=bucket.name, Prefix=key)
    return ([v for v in page.get("Versions", []) if v["Key"] == key],
            [m for m in page.get("DeleteMarkers", []) if m["Key"] == key])  # fmt: skip


def assert_deleted_but_kept(bucket: S3Bucket, key: str) -> list[dict]:
    """Gone from the listing, hidden by a delete marker, its data still there as a non-current version."""
    kept, markers = versions(bucket, key)
    assert key not in keys(bucket)
    assert markers and markers[0]["IsLatest"], f"{key}: no delete marker on top"
    assert kept and not any(v["IsLatest"] for v in kept), f"{key}: no non-current version kept"
    return kept


def recover(bucket: S3Bucket, key: str) -> None:
    """What the bucket's owner does to bring a deleted file back: delete the delete marker."""
    _, markers = versions(bucket, key)
    bucket.client().delete_object(Bucket=bucket.name, Key=key, VersionId=markers[0]["VersionId"])


def backup(app) -> dict:
    status = backup_run_in_process(app)
    assert status["status"] == "finished", status["error"]
    return status["result"]


def listed(client, headers) -> list[dict]:
    response = client.get("/api/setting/backups", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def test_the_whole_loop_on_a_versioned_bucket(versioned_store, make_app, make_user, token_for, target_db):
    app = make_app(**versioned_store.env, MAX_BACKUP_FILES="1", BACKUP_LIST_CACHE_SECONDS=str(LISTING_SECONDS))
    client, auth = signed_in(app, make_user, "admin", "ada")
    headers = token_for("ada")

    first = backup(app)["filename"]
    assert [b["filename"] for b in listed(client, headers)] == [first]
    pinned = client.post(
        f"/backups/{first}/pin", data={"note": "before the migration", "csrf_token": auth.csrf_token("/")}
    )
    assert pinned.status_code == 303
    assert [b["pinned"] for b in listed(client, headers)] == [True]

    second = backup(app)
    assert second["deleted"] == [] and second["delete_failures"] == {}  # the pin kept the first
    unpinned = client.post(f"/backups/{first}/unpin", data={"csrf_token": auth.csrf_token("/")})
    assert unpinned.status_code == 303
    assert [(b["filename"], b["pinned"]) for b in listed(client, headers)] == [(second["filename"], False),
                                                                              (first, False)]  # fmt: skip
    assert_deleted_but_kept(versioned_store, first + ".pin")  # unpinning, too, only hid the pin

    third = backup(app)
    assert sorted(third["deleted"]) == sorted([first, second["filename"]]) and third["delete_failures"] == {}
    assert [b["filename"] for b in listed(client, headers)] == [third["filename"]]
    for name in (first, second["filename"]):
        for key in (name, name + ".json"):
            assert_deleted_but_kept(versioned_store, key)
    assert versions(versioned_store, second["filename"])[0][0]["Size"] == second["size"]  # the data itself

    # The bucket's owner brings the second backup back, and the console lists it again.
    recover(versioned_store, second["filename"])
    recover(versioned_store, second["filename"] + ".json")
    time.sleep(LISTING_SECONDS + 0.2)  # not the console's own write: it shows once the shared listing expires
    assert [b["filename"] for b in listed(client, headers)] == [third["filename"], second["filename"]]
    home = client.get("/")
    assert home.status_code == 200 and second["filename"] in home.get_data(as_text=True)

    # ...and it restores: the sha256 read back matches its recovered manifest.
    before = table_fingerprint(target_db)
    with psycopg.connect(**{**PG, "dbname": target_db}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")
    answer = client.post("/api/setting/restore", headers=headers,
                         json={"filename": second["filename"], "passkey": PASSKEY})  # fmt: skip
    assert answer.status_code == 202, answer.get_json()
    run_jobs_for(app)
    status = client.get(answer.get_json()["status_url"], headers=headers).get_json()
    assert status["status"] == "finished", status["error"]
    assert status["result"]["verified"] is True
    assert table_fingerprint(target_db) == before


def test_retention_hides_a_locked_backup_but_cannot_destroy_it(seaweedfs_locked, make_app, make_user, token_for):
    app = make_app(**seaweedfs_locked.env, MAX_BACKUP_FILES="1", BACKUP_LIST_CACHE_SECONDS=str(LISTING_SECONDS))
    client, _ = signed_in(app, make_user, "admin", "ada")
    headers = token_for("ada")
    first = backup(app)["filename"]
    second = backup(app)

    # A delete without a version id is allowed on locked data: it only adds a delete marker, so
    # retention succeeds, and the listing, the job and the audit log say so.
    assert second["deleted"] == [first] and second["delete_failures"] == {}
    assert [b["filename"] for b in listed(client, headers)] == [second["filename"]]
    assert [(r.target, r.outcome) for r in audit_rows(app, "retention-delete")] == [(first, "ok")]
    console_s3 = storage_of(app).client  # the console's own keys: what someone who stole them holds
    for key in (first, first + ".json"):
        kept = assert_deleted_but_kept(seaweedfs_locked, key)[0]
        head = console_s3.head_object(Bucket=seaweedfs_locked.name, Key=key, VersionId=kept["VersionId"])
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=LOCK_DAYS, hours=-1)
        with pytest.raises(ClientError) as refused:
            console_s3.delete_object(Bucket=seaweedfs_locked.name, Key=key, VersionId=kept["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
        assert versions(seaweedfs_locked, key)[0] == [kept]

    recover(seaweedfs_locked, first)
    recover(seaweedfs_locked, first + ".json")
    time.sleep(LISTING_SECONDS + 0.2)
    assert [b["filename"] for b in listed(client, headers)] == [second["filename"], first]


def test_a_default_retention_that_wants_checksums_fails_the_backup_visibly(moto_locked, make_app, make_user, token_for):
    """moto, like AWS's documentation, wants Content-MD5 or a checksum header on every PutObject into a
    bucket with a default retention; the console sends neither (checksums "when_required"), so the
    manifest cannot be written. Until it does, the backup must fail in words, not half-succeed."""
    app = make_app(**moto_locked.env)
    client, _ = signed_in(app, make_user, "admin", "ada")
    status = backup_run_in_process(app)
    assert status["status"] == "failed"
    assert "MissingUploadObjectWithObjectLockHeaders" in status["error"] and ".dump.json" in status["error"]
    page = client.get(f"/jobs/{status['id']}")
    assert page.status_code == 200 and "MissingUploadObjectWithObjectLockHeaders" in page.get_data(as_text=True)
    assert [r.outcome for r in audit_rows(app, "backup") if r.outcome != "requested"] == ["failed"]
    assert client.get("/").status_code == 200 and listed(client, token_for("ada")) == []
    assert keys(moto_locked) == []  # the dump itself went behind a delete marker with the failed manifest
