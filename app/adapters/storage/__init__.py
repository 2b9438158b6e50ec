"""Where backups live: an S3 bucket (or S3-compatible store) or a local folder, behind one interface.

Both adapters make a file visible under its final name only when it is complete: S3 through
a multipart upload that is completed last (or aborted), the folder through an atomic rename
of a hidden partial file. `tests/adapters/storage/` runs one contract suite against both.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.adapters.storage.contract import (
    FILL_STEP,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    PRIVATE_FILE,
    PRIVATE_FOLDER,
    InvalidName,
    MiB,
    NotRegularFile,
    ObjectChanged,
    PartLimits,
    Storage,
    StorageError,
    StoredObject,
    TooLarge,
    Upload,
    WontFit,
    check_name,
)
from app.adapters.storage.folder import PARTIAL_PREFIX, WRITE_BACK_EVERY, LocalStorage
from app.adapters.storage.s3 import BACKUP_PATIENCE, Patience, S3Storage

__all__ = [
    "BACKUP_PATIENCE", "FILL_STEP", "MAX_PART_SIZE", "MAX_PARTS", "MIN_PART_SIZE", "PARTIAL_PREFIX", "PRIVATE_FILE",
    "PRIVATE_FOLDER", "WRITE_BACK_EVERY", "InvalidName", "LocalStorage", "MiB", "NotRegularFile", "ObjectChanged",
    "PartLimits", "Patience", "S3Storage", "Storage", "StorageError", "StoredObject", "TooLarge", "Upload", "WontFit",
    "check_name", "open_storage",
]  # fmt: skip


def open_storage(
    url: str,
    *,
    region: str = "ap-south-1",
    endpoint_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    addressing_style: str = "auto",
    part_limits: PartLimits = PartLimits(),
) -> Storage:
    """The store BACKUP_STORAGE_URL names: s3://bucket[/prefix] or file:///folder."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Storage(
            parts.netloc,
            parts.path.strip("/"),
            region=region,
            endpoint_url=endpoint_url,
            access_key=access_key,
            secret_key=secret_key,
            addressing_style=addressing_style,
            part_limits=part_limits,
        )
    if parts.scheme == "file":
        return LocalStorage(Path(unquote(parts.path)))
    raise StorageError(f"unsupported storage URL {url!r}: use s3://bucket[/prefix] or file:///folder")

