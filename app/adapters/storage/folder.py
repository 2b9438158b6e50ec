"""A local folder as a backup store.

A file appears under its final name only when complete: it is written as a hidden partial
file and renamed into place atomically. Every read opens the name itself, never a link's target.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from app.adapters.storage.contract import (
    MIN_PART_SIZE,
    PRIVATE_FILE,
    PRIVATE_FOLDER,
    InvalidName,
    MiB,
    NotRegularFile,
    StorageError,
    StoredObject,
    TooLarge,
    Upload,
    changed,
    check_name,
    fill_buffer,
)

WRITE_BACK_EVERY = 64 * MiB  # bytes between two writeback starts
PARTIAL_PREFIX = ".partial-"


class LocalStorage:
    """A folder. Whoever can write to it can put links, FIFOs and devices in it, so every read opens
    the name itself (never a link's target) and reads it only when it is a regular file."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.description = f"folder {folder}"
        self.part_limits = None  # a file is written whole: no parts to plan

    def plan_upload(self, expected_bytes: int, room_for: int = 0) -> int:
        return MIN_PART_SIZE

    def _path(self, name: str) -> Path:
        return self.folder / check_name(name)

    def check(self) -> None:
        try:
            self.folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create backup folder {self.folder}: {exc.strerror}") from None
        if not self.folder.is_dir():
            raise StorageError(f"backup folder {self.folder} is not a folder")
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise StorageError(f"backup folder {self.folder} is not writable")

    def list_objects(self) -> list[StoredObject]:
        if not self.folder.is_dir():
            return []
        found = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted while listed
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.append(StoredObject(entry.name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return found

    def begin_upload(self, name: str, part_size: int = MIN_PART_SIZE) -> Upload:
        self.check()
        return _LocalUpload(self._path(name))

    def put_bytes(self, name: str, data: bytes) -> None:
        upload = self.begin_upload(name)
        upload.write(data)
        upload.complete()

    def _open(self, name: str) -> tuple[io.FileIO, os.stat_result]:
        """The one way this store opens a file to read: the named regular file itself, and its fstat.

        O_NOFOLLOW refuses a link as the last component (ELOOP); the check on the opened
        descriptor, not the name, refuses what is not a regular file, so nothing swapped in
        between a check and the open is read. O_NONBLOCK: opening a FIFO must not wait for a writer.
        """
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise StorageError(f"{name} does not exist in {self.description}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotRegularFile(self._refusal(name, "a symbolic link")) from None
            raise StorageError(f"cannot read {name} in {self.description}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(self._refusal(name, _kind_of(st.st_mode)))
            return io.FileIO(fd, "rb"), st
        except BaseException:
            os.close(fd)
            raise

    def _refusal(self, name: str, kind: str) -> str:
        return f"{name} in {self.description} is {kind}, not a regular file: the console reads only regular files"

    def get_bytes(self, name: str, max_bytes: int | None = None) -> bytes:
        fh, st = self._open(name)
        with fh:
            if max_bytes is not None and st.st_size > max_bytes:
                raise TooLarge(f"{name} is {st.st_size} bytes, more than the {max_bytes} it may have")
            if max_bytes is None:
                return fh.readall()
            # One byte more than allowed at most, so a file that grew since the fstat is refused too.
            buffer = bytearray(max_bytes + 1)
            got = fill_buffer(fh.readinto, memoryview(buffer))
        if got > max_bytes:
            raise TooLarge(f"{name} is more than the {max_bytes} bytes it may have")
        return bytes(buffer[:got])

    def stat(self, name: str) -> StoredObject | None:
        if not os.path.lexists(self._path(name)):
            return None
        fh, st = self._open(name)  # a link or a FIFO is refused, not described
        fh.close()
        return StoredObject(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def version_of(self, name: str) -> str:
        """The file's identity: which file is under the name (device, inode) and its size and times, which
        any write changes. A file replaced under the name (a rename, as uploads do) is another inode."""
        fh, st = self._open(name)
        fh.close()
        return _identity(st)

    def read_into(self, name: str, start: int, buffer: memoryview, version: str | None = None) -> int:
        """Fill `buffer` with the file's bytes from `start`; fewer only where the file ends. With `version`
        (`version_of`), only from that very file: checked on the opened descriptor before and after reading."""
        fh, st = self._open(name)
        with fh:
            if version is not None and _identity(st) != version:
                raise changed(name, self.description)
            fh.seek(start)
            got = fill_buffer(fh.readinto, buffer)
            if version is not None and _identity(os.fstat(fh.fileno())) != version:  # written to while read
                raise changed(name, self.description)
            return got

    def open_stream(self, name: str) -> Iterator[bytes]:
        # Opened now, not when the first block is asked for: a refusal comes before any response starts.
        fh, _ = self._open(name)

        def chunks() -> Iterator[bytes]:
            with fh:
                while block := fh.read(MiB):
                    yield block

        return chunks()

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()  # a link is removed itself, never its target
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {name}: {exc.strerror}") from None

    def download_url(self, name: str, seconds: int = 300) -> str | None:
        return None  # the web layer streams local files through open_stream

    def abort_upload(self, name: str, upload_id: str) -> None:
        check_name(name)
        if not upload_id.startswith(PARTIAL_PREFIX) or any(c in upload_id for c in "/\\\0"):
            raise InvalidName(f"{upload_id[:80]!r} is not an upload of this store")
        (self.folder / upload_id).unlink(missing_ok=True)

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        if not self.folder.is_dir():
            return 0
        cutoff = (datetime.now(UTC) - older_than).timestamp()
        removed = 0
        for path in self.folder.glob(PARTIAL_PREFIX + "*"):
            if path.lstat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _kind_of(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))  # fmt: skip
    return next((kind for test, kind in kinds if test(mode)), "not a file")


class _LocalUpload:
    def __init__(self, final: Path):
        self.final = final
        # Not named after the file: a 255-byte name plus a prefix would pass the filesystem's limit.
        self.upload_id = f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
        self.partial = final.parent / self.upload_id
        # 0600 whatever the umask; O_EXCL also refuses a link planted under the partial's name.
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
        self.fh: BinaryIO | None = os.fdopen(fd, "wb")  # closed in complete/abort
        self.size = 0
        self._written_back = 0

    def write(self, data: bytes) -> None:
        assert self.fh is not None
        self.fh.write(data)
        self.size += len(data)
        if self.size - self._written_back >= WRITE_BACK_EVERY:
            self._write_back()

    def _write_back(self) -> None:
        """Start writing what we have to disk now, and keep it out of the page cache.

        On Linux this advice starts writeback without waiting for it and drops the pages
        already written, so the final fsync has at most WRITE_BACK_EVERY bytes left to wait
        for, and a large backup does not push the database's own pages out of memory.
        """
        assert self.fh is not None
        self.fh.flush()
        with contextlib.suppress(AttributeError, OSError):  # no posix_fadvise: only the fsync is slower
            os.posix_fadvise(self.fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        self._written_back = self.size

    def complete(self) -> int:
        assert self.fh is not None
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        self.fh = None
        os.replace(self.partial, self.final)
        return self.size

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        self.partial.unlink(missing_ok=True)
