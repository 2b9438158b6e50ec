"""What the storage tests need behind the interface: where each adapter keeps things; an S3 store on a bucket."""

from __future__ import annotations

from app.adapters.storage import (
    PARTIAL_PREFIX,
    LocalStorage,
    S3Storage,
)
from tests.support.s3_servers import REGION, S3Bucket

MiB = 1024 * 1024


GB = 1000**3


def s3_storage_on(bucket: S3Bucket, prefix: str = "backups", **options) -> S3Storage:
    """The console's adapter on a test bucket, under a prefix (so "../x" has somewhere to be); `options`:
    more of S3Storage's (part_limits, spool_dir)."""
    endpoint = bucket.endpoint
    return S3Storage(bucket.name, prefix, region=REGION, endpoint_url=endpoint.url, access_key=endpoint.access_key,
                     secret_key=endpoint.secret_key, **options)  # fmt: skip


def plant(storage, key: str, data: bytes) -> None:
    """Write a file behind the adapter's back; `key` is relative to the storage root ("../x" is outside)."""
    if isinstance(storage, LocalStorage):
        path = storage.folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        storage.client.put_object(Bucket=storage.bucket, Key=_s3_key(storage, key), Body=data)


def peek(storage, key: str) -> bytes | None:
    """Read a file behind the adapter's back (None when it is not there)."""
    if isinstance(storage, LocalStorage):
        path = storage.folder / key
        return path.read_bytes() if path.is_file() else None
    try:
        return storage.client.get_object(Bucket=storage.bucket, Key=_s3_key(storage, key))["Body"].read()
    except storage.client.exceptions.NoSuchKey:
        return None


def _s3_key(storage: S3Storage, key: str) -> str:
    # "../x" means "the same name one level above the prefix", as for the folder.
    if key.startswith("../"):
        parent = storage.prefix.rstrip("/").rpartition("/")[0]
        return f"{parent}/{key[3:]}" if parent else key[3:]
    return storage.prefix + key


def unfinished_uploads(storage) -> list[str]:
    """Uploads begun but neither completed nor aborted (partial files / multipart uploads)."""
    if isinstance(storage, LocalStorage):
        if not storage.folder.is_dir():
            return []
        return sorted(p.name for p in storage.folder.iterdir() if p.name.startswith(PARTIAL_PREFIX))
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    return sorted(u["Key"] for u in uploads)


def everything_stored(storage) -> list[str]:
    """Every file or object there is, hidden or not, anywhere under the root / in the bucket."""
    if isinstance(storage, LocalStorage):
        if not storage.folder.is_dir():
            return []
        return sorted(str(p.relative_to(storage.folder)) for p in storage.folder.rglob("*") if p.is_file())
    pages = storage.client.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def names(storage) -> list[str]:
    return sorted(o.name for o in storage.list_objects())
