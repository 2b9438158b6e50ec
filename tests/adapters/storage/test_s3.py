"""What only S3 does: listing pages, prefixes, the errors it explains, part sizes, and both URL forms."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.adapters.storage import (
    MAX_PARTS,
    MIN_PART_SIZE,
    PartLimits,
    StorageError,
    WontFit,
    open_storage,
)
from tests.adapters.storage.stores import (
    GB,
    MiB,
    names,
    s3_storage_on,
    unfinished_uploads,
)
from tests.helpers import tiny_disk
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


def test_parts_leave_room_for_the_estimate_to_double_within_the_store_limits():
    s3 = PartLimits()
    assert s3.part_size_for(0) == MIN_PART_SIZE
    for expected in (1, 10 * MiB, 40 * GB, 500 * GB, 1000 * GB, 20 * 1024**4):
        size = s3.part_size_for(expected)
        assert MIN_PART_SIZE <= size <= 5 * 1024**3 and size % MiB == 0
        assert -(-2 * expected // size) <= MAX_PARTS  # twice the estimate still fits
    # A terabyte: about 200 MiB parts (S3 allows up to 5 GiB); they are staged on disk, not held in memory.
    assert -(-1000 * GB // s3.part_size_for(1000 * GB)) <= MAX_PARTS // 2
    # Scaleway (1,000 parts): the 15 GB database its users hit the limit with fits with room to spare.
    scaleway = PartLimits(max_parts=1000)
    assert -(-2 * 15 * GB // scaleway.part_size_for(15 * GB)) <= 1000
    # Near the limit the parts are as large as allowed: what fits, fits.
    assert s3.part_size_for(40 * 1024**4) == 5 * 1024**3


def test_an_archive_the_store_cannot_take_is_refused_with_the_numbers_and_what_to_set():
    with pytest.raises(WontFit) as refused:
        PartLimits(max_parts=1000, max_part_size=MIN_PART_SIZE).part_size_for(15 * GB)
    message = str(refused.value)
    assert "about 14.0 GB" in message and "1,000 parts of at most 8.0 MB (7.8 GB)" in message
    assert "S3_MAX_PART_SIZE" in message and "S3_MAX_PARTS" in message and "Nothing was dumped" in message


def test_a_stream_that_outgrows_the_part_limit_fails_at_once_and_leaves_nothing(s3_store):
    """The store takes 2 parts: the third part's first byte fails the write, not the end of the stream."""
    storage = s3_storage_on(s3_store, part_limits=PartLimits(max_parts=2, max_part_size=MIN_PART_SIZE))
    upload = storage.begin_upload("big.dump", part_size=MIN_PART_SIZE)
    block = os.urandom(MiB)
    with pytest.raises(WontFit, match="2 parts of 8.0 MB"):
        for _ in range(3 * 8 + 1):
            upload.write(block)
    upload.abort()
    assert storage.list_objects() == [] and unfinished_uploads(storage) == []


def test_parts_are_staged_on_disk_and_refused_before_anything_when_it_lacks_room(s3_store, tmp_path):
    """Large parts sit in the worker's temp folder, never in its memory: the plan checks the folder has room
    for them (concurrency + 1 parts) and says what to do when it has not."""
    small = s3_storage_on(s3_store, spool_dir=str(tmp_path / "spool"))
    with tiny_disk(tmp_path / "spool", "2m"):
        with pytest.raises(WontFit) as refused:
            small.plan_upload(100 * GB)
        message = str(refused.value)
        assert "3 parts of" in message and "TMPDIR" in message and "Nothing was dumped" in message
    folder = tmp_path / "roomy"
    folder.mkdir()
    roomy = s3_storage_on(s3_store, spool_dir=str(folder))
    part = roomy.plan_upload(20 * MiB)
    assert part == MIN_PART_SIZE
    data = os.urandom(2 * part + 12345)
    upload = roomy.begin_upload("staged.dump", part_size=part)
    upload.write(data)
    assert upload.complete() == len(data)
    assert roomy.get_bytes("staged.dump") == data
    assert list(folder.iterdir()) == []  # the staged parts were never named in the folder
