"""A second copy of a backup in another store (the 3-2-1 rule): streamed from the first store, checked there.

The dump is read from the first store in blocks pinned to the version first seen (`Storage.version_of`; a
replaced object stops the copy) and written through the copy store's upload path, so memory stays flat and
the copy store shows the file only once it is complete. The bytes passing through are hashed, and must give
the sha256 and size the manifest holds before the upload is completed. Then the copy is read back from the
copy store whole (`safety.check_stored`) and must give that sha256 again: the running hash proves what was
sent, only the read-back proves what the copy store holds (a store that truncates or corrupts on write, or a
proxy that answered for it, would pass the first check). The manifest goes last, byte for byte, and is read
back too: the copy store lists the backup only once both are there, as the first store does.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from app.adapters.storage import MiB, Storage
from app.domain.catalog import MAX_SIDECAR_BYTES, manifest_name, read_manifest
from app.domain.safety import check_stored

COPY_BLOCK = 8 * MiB  # one read from the first store; the only buffer the copy holds besides the upload's part


class CopyFailed(Exception):
    """The copy was not made or did not prove whole; the message says why, in words."""


@dataclass(frozen=True)
class CopiedBackup:
    filename: str
    size: int
    sha256: str  # as read back from the copy store


def copy_backup(source: Storage, destination: Storage, filename: str,
                on_progress: Callable[[int], None] = lambda done: None) -> CopiedBackup:  # fmt: skip
    """Copy `filename` and its manifest from `source` to `destination`, and prove the copy by reading it back."""
    manifest = read_manifest(source, filename)
    if not manifest or not isinstance(manifest.get("sha256"), str) or not isinstance(manifest.get("size"), int):
        raise CopyFailed(f"{filename} has no manifest with its sha256 and size in the first store: nothing to check "
                         "a copy against, nothing was copied")  # fmt: skip
    size, sha256 = manifest["size"], manifest["sha256"]
    destination.check()
    _stream(source, destination, filename, size, sha256, on_progress)
    if problem := check_stored(destination, filename, size=size, sha256=sha256):
        raise CopyFailed(f"{filename} was copied, but reading it back from the copy store did not prove it whole: "
                         f"{problem}")  # fmt: skip
    sidecar = manifest_name(filename)
    data = source.get_bytes(sidecar, max_bytes=MAX_SIDECAR_BYTES)
    destination.put_bytes(sidecar, data)
    if destination.get_bytes(sidecar, max_bytes=MAX_SIDECAR_BYTES) != data:
        raise CopyFailed(f"{sidecar} read back from the copy store differs from the one written")
    return CopiedBackup(filename, size, sha256)


def _stream(source: Storage, destination: Storage, filename: str, size: int, sha256: str,
            on_progress: Callable[[int], None]) -> None:  # fmt: skip
    """Stream the dump through the copy store's upload; completed only when its bytes match the manifest."""
    version = source.version_of(filename)
    upload = destination.begin_upload(filename, destination.plan_upload(size, room_for=size))
    try:
        buffer = memoryview(bytearray(COPY_BLOCK))
        digest, done = hashlib.sha256(), 0
        while done < size:
            got = source.read_into(filename, done, buffer[: min(COPY_BLOCK, size - done)], version)
            if not got:
                break
            digest.update(buffer[:got])
            upload.write(bytes(buffer[:got]))
            done += got
            on_progress(done)
        if done != size or digest.hexdigest() != sha256:
            found = f"{done} bytes, sha256 {digest.hexdigest()}"
            raise CopyFailed(f"{filename} in the first store is not what its manifest says ({found}; the manifest "
                             f"says {size} bytes, sha256 {sha256}): nothing was copied")  # fmt: skip
        upload.complete()
    except BaseException:
        with contextlib.suppress(Exception):  # the failure itself is what the job reports
            upload.abort()
        raise
