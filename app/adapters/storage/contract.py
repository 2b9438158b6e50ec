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

from app.formatting import human_size

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


class ObjectChanged(StorageError):
    """The object is no longer the version a read was pinned to (`version_of`): replaced or rewritten since."""


def changed(name: str, where: str) -> ObjectChanged:
    """What a pinned read says when the object is no longer the version it was pinned to."""
    return ObjectChanged(f"{name} changed in {where} while it was being read: it was replaced or rewritten since "
                         "the read began, and nothing of the new version was used")  # fmt: skip


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


class WontFit(StorageError):
    """The backup cannot fit the store's multipart limits (or the worker's disk cannot stage its parts)."""


@dataclass(frozen=True)
class PartLimits:
    """A store's limits on one multipart upload: S3's unless the store has others (S3_MAX_PARTS,
    S3_MAX_PART_SIZE). Every part but the last has the same size, so the part size is chosen before
    the first byte: from the archive's estimate, with room for it to double."""

    max_parts: int = MAX_PARTS
    max_part_size: int = MAX_PART_SIZE

    @property
    def capacity(self) -> int:
        return self.max_parts * self.max_part_size

    def part_size_for(self, expected_bytes: int, room_for: int = 0) -> int:
        """The part size for an archive of about `expected_bytes` that may grow to `room_for` (default:
        twice the estimate): whole MiB, at least MIN_PART_SIZE. WontFit, with the numbers and what to
        set, when even the largest parts cannot hold the estimate."""
        if expected_bytes > self.capacity:
            raise WontFit(
                f"The backup is expected to be about {human_size(expected_bytes)}, more than this store takes in one "
                f"file: {self.max_parts:,} parts of at most {human_size(self.max_part_size)} "
                f"({human_size(self.capacity)}). If the store allows more, raise S3_MAX_PART_SIZE or S3_MAX_PARTS "
                "(docs/storage.md lists the limits of each store); otherwise use a store with larger limits or a "
                "stronger BACKUP_COMPRESSION. Nothing was dumped."
            )
        wanted = -(-max(room_for, 2 * expected_bytes) // self.max_parts)
        return min(self.max_part_size, max(MIN_PART_SIZE, -(-wanted // MiB) * MiB))

    def outgrown(self, part_size: int) -> StorageError:
        """What to say when a stream needs more parts than the store allows at `part_size`."""
        return WontFit(
            f"The backup outgrew its plan: {self.max_parts:,} parts of {human_size(part_size)} "
            f"({human_size(self.max_parts * part_size)}) are the most this store takes, and pg_dump was still "
            "writing, far past the estimate the parts were sized for. The upload was aborted and nothing was kept. "
            "Raise S3_MAX_PART_SIZE or S3_MAX_PARTS if the store allows it."
        )


class Upload(Protocol):
    def write(self, data: bytes) -> None: ...
    def complete(self) -> int: ...
    def abort(self) -> None: ...


class Storage(Protocol):
    description: str
    part_limits: PartLimits | None  # None: the store takes a file whole (a folder)

    def check(self) -> None: ...
    def list_objects(self) -> list[StoredObject]: ...
    def plan_upload(self, expected_bytes: int, room_for: int = 0) -> int: ...
    def begin_upload(self, name: str, part_size: int = MIN_PART_SIZE) -> Upload: ...
    def put_bytes(self, name: str, data: bytes) -> None: ...
    def get_bytes(self, name: str, max_bytes: int | None = None) -> bytes: ...
    def stat(self, name: str) -> StoredObject | None: ...
    def version_of(self, name: str) -> str: ...
    # `version`: from `version_of`; a read of any other version (the object replaced) raises ObjectChanged.
    def read_into(self, name: str, start: int, buffer: memoryview, version: str | None = None) -> int: ...
    def open_stream(self, name: str) -> Iterator[bytes]: ...
    def delete(self, name: str) -> None: ...
    def download_url(self, name: str, seconds: int = 300) -> str | None: ...
    def abort_stale_uploads(self, older_than: timedelta) -> int: ...
    def abort_upload(self, name: str, upload_id: str) -> None: ...

