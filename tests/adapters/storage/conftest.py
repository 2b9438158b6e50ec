"""The stores every storage test runs on: a local folder and a fresh bucket on each S3 server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.adapters.storage import (
    LocalStorage,
    S3Storage,
    Storage,
)
from tests.adapters.storage.stores import (
    s3_storage_on,
)
from tests.support.s3_servers import SERVERS, S3Bucket, create_bucket, remove_bucket


@pytest.fixture(params=["local", *sorted(SERVERS)])
def storage(request, tmp_path) -> Iterator[Storage]:
    """The adapter under test: a folder, or a fresh bucket on one S3 server (started on first use)."""
    if request.param == "local":
        yield LocalStorage(tmp_path / "store")
        return
    endpoint = request.getfixturevalue("s3_endpoints")[request.param]
    bucket = create_bucket(endpoint)
    yield s3_storage_on(S3Bucket(endpoint, bucket))
    remove_bucket(endpoint, bucket)


@pytest.fixture
def s3_storage(s3_store: S3Bucket) -> S3Storage:
    """The S3 adapter on each of the three servers in turn."""
    return s3_storage_on(s3_store)
