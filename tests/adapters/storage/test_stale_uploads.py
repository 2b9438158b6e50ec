"""Unfinished uploads older than a cutoff are aborted; younger ones and finished files stay."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from app.adapters.storage import (
    LocalStorage,
    S3Storage,
)
from tests.adapters.storage.stores import (
    names,
    unfinished_uploads,
)


def initiated(storage: S3Storage) -> dict[str, datetime]:
    """When the server says each unfinished upload under the prefix began, by file name."""
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix).get("Uploads", [])
    return {u["Key"][len(storage.prefix) :]: u["Initiated"] for u in uploads}


def test_abort_stale_uploads_removes_only_uploads_older_than_the_cutoff(storage, request):
    """Only uploads begun before the cutoff are aborted; a fresh one is left and still completes.

    A folder's partial file is aged with utime. An S3 upload cannot be back-dated, so the
    stale one is begun over a second before the fresh one (SeaweedFS reports whole seconds)
    and the cutoff goes between the two times the server reports. moto reports every upload
    as initiated at one fixed moment in 2010 (moto/s3/responses.py), so it cannot tell the
    two apart: there the test checks only a cutoff either side of that moment.
    """
    stale = storage.begin_upload("stale.dump")
    stale.write(b"left by a killed worker")
    if isinstance(storage, LocalStorage):
        two_hours_ago = time.time() - 2 * 3600
        os.utime(stale.partial, (two_hours_ago, two_hours_ago))
        fresh = storage.begin_upload("fresh.dump")
        older_than = timedelta(hours=1)
        fresh_id = fresh.upload_id
    else:
        stale_at = initiated(storage)["stale.dump"]
        time.sleep(max(0.0, (stale_at + timedelta(seconds=1.5) - datetime.now(UTC)).total_seconds()))
        fresh = storage.begin_upload("fresh.dump")
        fresh_at = initiated(storage)["fresh.dump"]
        fresh_id = storage.prefix + "fresh.dump"
        if request.node.callspec.params["storage"] == "moto":
            assert fresh_at == stale_at
            age = datetime.now(UTC) - stale_at
            assert storage.abort_stale_uploads(age + timedelta(hours=1)) == 0
            assert storage.abort_stale_uploads(age - timedelta(hours=1)) == 2
            assert unfinished_uploads(storage) == []
            return
        assert fresh_at > stale_at
        older_than = datetime.now(UTC) - (stale_at + (fresh_at - stale_at) / 2)
    fresh.write(b"still being written")
    assert len(unfinished_uploads(storage)) == 2

    assert storage.abort_stale_uploads(older_than) == 1

    assert unfinished_uploads(storage) == [fresh_id]
    fresh.complete()
    assert storage.get_bytes("fresh.dump") == b"still being written"
    assert names(storage) == ["fresh.dump"]


def test_abort_stale_uploads_on_an_empty_store_is_zero(storage):
    assert storage.abort_stale_uploads(timedelta(0)) == 0
