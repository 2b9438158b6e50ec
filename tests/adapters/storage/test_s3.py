"""What only S3 does: listing pages, prefixes, the errors it explains, part sizes, and both URL forms."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from app.adapters.storage import (
    MAX_PARTS,
    MIN_PART_SIZE,
    LocalStorage,
    StorageError,
    open_storage,
    part_size_for,
)
from tests.adapters.storage.stores import (
    GB,
    MiB,
    names,
    s3_storage_on,
)
from tests.support.s3_servers import S3Bucket, S3Endpoint


def test_s3_listing_pages_past_a_thousand_objects(s3_storage):
    wanted = [f"tiny-{i:04d}.dump" for i in range(1005)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda name: s3_storage.put_bytes(name, b"x"), wanted))

    listed = s3_storage.list_objects()

    assert len(listed) == 1005
    assert sorted(o.name for o in listed) == wanted


def test_s3_lists_only_its_own_prefix(s3_storage):
    s3_storage.put_bytes("mine.dump", b"m")
    client, bucket = s3_storage.client, s3_storage.bucket
    client.put_object(Bucket=bucket, Key="elsewhere.dump", Body=b"e")
    client.put_object(Bucket=bucket, Key=s3_storage.prefix.rstrip("/") + "-old/theirs.dump", Body=b"t")
    client.put_object(Bucket=bucket, Key=s3_storage.prefix + "sub/nested.dump", Body=b"n")
    assert names(s3_storage) == ["mine.dump"]


def test_s3_missing_bucket_says_how_to_create_it(s3_store):
    missing = s3_storage_on(S3Bucket(s3_store.endpoint, "pgct-missing-bucket-xyz"), prefix="")
    for action in (missing.check, missing.list_objects):
        with pytest.raises(StorageError) as caught:
            action()
        message = str(caught.value)
        assert "pgct-missing-bucket-xyz" in message
        assert "ap-south-1" in message
        assert "aws s3 mb s3://pgct-missing-bucket-xyz --region ap-south-1" in message


@pytest.mark.parametrize("s3_store", ["juicefs", "seaweedfs"], indirect=True)  # moto checks no signature
def test_s3_wrong_secret_key_is_explained_without_showing_it(s3_store):
    wrong = S3Endpoint(s3_store.endpoint.name, s3_store.endpoint.url, s3_store.endpoint.access_key, "wrong-s3cr3t-42")
    refused = s3_storage_on(S3Bucket(wrong, s3_store.name))
    for action in (refused.check, refused.list_objects, lambda: refused.put_bytes("a.dump", b"a"),
                   lambda: refused.stat("a.dump"), lambda: refused.begin_upload("b.dump")):  # fmt: skip
        with pytest.raises(StorageError) as caught:
            action()
        assert "S3 refused the credentials" in str(caught.value) and "wrong-s3cr3t-42" not in str(caught.value)
    assert s3_storage_on(s3_store).list_objects() == []  # nothing got in


def test_s3_unreachable_endpoint_is_explained_without_a_traceback(monkeypatch):
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    closed = open_storage(
        "s3://some-bucket/backups",
        region="ap-south-1",
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens there
        access_key="AKIATESTING",
        secret_key="s3cr3t-never-shown",
    )
    for action in (closed.check, closed.list_objects, lambda: closed.put_bytes("a.dump", b"a")):
        with pytest.raises(StorageError) as caught:
            action()
        message = str(caught.value)
        assert "cannot be reached" in message
        assert "127.0.0.1:9" in message
        assert "\n" not in message
        for noise in ("Traceback", 'File "', "botocore", "urllib3", "Exception", "s3cr3t"):
            assert noise not in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_part_size_for_is_at_least_the_minimum_and_stays_under_the_part_limit():
    assert part_size_for(0) == 8 * MiB
    for expected in (0, 1, 10 * MiB, 40 * GB, 500 * GB, 5 * 1024**4):
        size = part_size_for(expected)
        assert size >= MIN_PART_SIZE
        assert size % MiB == 0
        assert size <= 5 * 1024**3  # S3's largest part
        assert -(-expected // size) < MAX_PARTS
    assert -(-500 * GB // part_size_for(500 * GB)) < 10_000


def test_open_storage_reads_both_url_forms(tmp_path):
    local = open_storage((tmp_path / "backups folder").as_uri())
    assert isinstance(local, LocalStorage)
    assert local.folder == tmp_path / "backups folder"
    with pytest.raises(StorageError) as caught:
        open_storage("ftp://host/x")
    assert "s3://bucket" in str(caught.value)
