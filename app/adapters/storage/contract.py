"""What every store promises: the `Storage` and `Upload` interfaces, the errors, and safe names.

The folder and S3 adapters both make a file visible under its final name only when it is
complete; `tests/adapters/storage/` runs one contract suite against both.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

MiB = 1024 * 1024
MIN_PART_SIZE = 8 * MiB
MAX_PARTS = 10_000  # S3's limits on one multipart upload; other stores set theirs (S3_MAX_PARTS)
MAX_PART_SIZE = 5 * 1024 * MiB
PRIVATE_FOLDER = 0o700  # what the folder store creates: a backup is the whole database, for its owner only
PRIVATE_FILE = 0o600


class StorageError(Exception):
    """Storage failed; the message says why in words a person can act on."""


class InvalidName(StorageError):
    """A file name that could escape the storage root or is otherwise unusable."""


class NotRegularFile(StorageError):
    """A name in the folder that is a link, FIFO, device or directory: the store reads only regular files."""


class TooLarge(StorageError):
    """An object bigger than the caller's `max_bytes`: refused before it is read whole."""


@dataclass(frozen=True)
class StoredObject:
    name: str
    size: int
    last_modified: datetime  # aware, UTC


def check_name(name: str) -> str:
    """Refuse names that are not a single plain file name (path traversal, hidden, control chars)."""
    if (
        not name
        or len(name) > 255
        or name in (".", "..")
        or name.startswith(".")
        or any(c in name for c in "/\\")
        or any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name)
        or len(name.encode("utf-8", "surrogatepass")) > 255
    ):
        raise InvalidName(f"{name[:80]!r} is not a valid backup file name")
    return name


FILL_STEP = 256 * 1024


def fill_buffer(readinto: Callable[[memoryview], int | None], buffer: memoryview) -> int:
    """Call `readinto` until `buffer` is full or the source ends; the number of bytes read.

    At most FILL_STEP at a time: urllib3's `readinto` reads into a temporary bytes object of the
    size asked for and copies it, so one call for a whole range would hold the range twice.
    """
    done = 0
    while done < len(buffer):
        got = readinto(buffer[done : done + FILL_STEP])
        if not got:
            break
        done += got
    return done


def part_size_for(expected_bytes: int) -> int:
    """A part size that keeps a stream of about `expected_bytes` well under S3's 10,000 parts."""
    wanted = -(-expected_bytes // (MAX_PARTS // 2))  # aim for at most 5,000 parts
    return max(MIN_PART_SIZE, -(-wanted // MiB) * MiB)


class Upload(Protocol):
    def write(self, data: bytes) -> None: ...
    def complete(self) -> int: ...
    def abort(self) -> None: ...


class Storage(Protocol):
    description: str

    def check(self) -> None: ...
    def list_objects(self) -> list[StoredObject]: ...
    def begin_upload(self, name: str, part_size: int = MIN_PART_SIZE) -> Upload: ...
    def put_bytes(self, name: str, data: bytes) -> None: ...
    def get_bytes(self, name: str, max_bytes: int | None = None) -> bytes: ...
    def stat(self, name: str) -> StoredObject | None: ...
    def read_into(self, name: str, start: int, buffer: memoryview) -> int: ...
    def open_stream(self, name: str) -> Iterator[bytes]: ...
    def delete(self, name: str) -> None: ...
    def download_url(self, name: str, seconds: int = 300) -> str | None: ...
    def abort_stale_uploads(self, older_than: timedelta) -> int: ...
    def abort_upload(self, name: str, upload_id: str) -> None: ...

