"""The storage check of a folder: can it be created, written, renamed into place, read, listed, emptied; room?"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from app.adapters.storage import PRIVATE_FOLDER, LocalStorage
from app.adapters.storage_check.steps import PROBE_PREFIX, CheckFailed, CheckResult, Steps
from app.formatting import human_size

GiB = 1024**3
# A folder with less free space than this, or than its largest backup, fails: the next backup
# would most likely not fit (and a full disk also stops the console's own store beside it).
MIN_FREE_BYTES = GiB


def _os_failure(exc: Exception) -> CheckFailed:
    if isinstance(exc, OSError):
        code = errno.errorcode.get(exc.errno or 0, "OSError")
        return CheckFailed(code, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    return CheckFailed(type(exc).__name__, str(exc)[:300])


WRITE, RENAME = "write (open, write, fsync)", "atomic rename (os.replace)"


def check_folder(storage: LocalStorage, time_limit: float) -> list[CheckResult]:
    """Every folder check, in order, then the probe files removed whatever failed."""
    return _FolderCheck(storage, time_limit).run()


class _FolderCheck:
    def __init__(self, storage: LocalStorage, time_limit: float):
        self.storage = storage
        self.folder = storage.folder
        self.probe = self.folder / f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
        self.partial = self.probe.with_name(self.probe.name + ".partial")
        self.body = os.urandom(64 * 1024)
        self.steps = Steps(time_limit, _os_failure)

    def run(self) -> list[CheckResult]:
        steps = self.steps
        try:
            steps.run("create folder (mkdir)", self.create)
            steps.run(WRITE, self.write)
            steps.run(RENAME, self.rename, needs=(WRITE,))
            steps.run("read (seek, read)", self.read, needs=(RENAME,))
            steps.run("list (scandir)", self.listed, needs=(RENAME,))
            steps.run("delete (unlink)", self.delete, needs=(RENAME,))
            steps.run("free space", self.free_space)
        finally:
            left = [str(p) for p in (self.partial, self.probe) if _remove(p)]
        if left:
            steps.results.append(CheckResult("clean-up", False, "LeftBehind", f"could not remove {', '.join(left)}"))
        return steps.results

    # ---- the checks, in order

    def create(self) -> None:
        try:
            self.folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)  # as the store makes it: owner only
        except OSError as exc:
            failure = _os_failure(exc)
            failure.fatal = True  # nothing else can work without the folder
            raise failure from None

    def write(self) -> None:
        with open(self.partial, "xb") as fh:
            fh.write(self.body)
            fh.flush()
            os.fsync(fh.fileno())

    def rename(self) -> None:
        os.replace(self.partial, self.probe)  # how a finished backup appears under its name

    def read(self) -> None:
        with open(self.probe, "rb") as fh:
            fh.seek(1000)
            if fh.read(1000) != self.body[1000:2000]:
                raise CheckFailed("WrongRange", f"{self.probe}: a read at offset 1000 returned other bytes")

    def listed(self) -> None:
        if self.probe.name not in {entry.name for entry in os.scandir(self.folder)}:
            raise CheckFailed("NotListed", f"{self.probe.name} is not listed in {self.folder}")

    def delete(self) -> None:
        self.probe.unlink()
        if self.probe.exists():
            raise CheckFailed("NotDeleted", f"{self.probe} is still there after unlink")

    def free_space(self) -> str:
        free = shutil.disk_usage(self.folder).free
        largest = max((o.size for o in self.storage.list_objects()), default=0)
        needed = max(MIN_FREE_BYTES, largest)
        said = f"{human_size(free)} free"
        if free < needed:
            why = f"the largest backup here is {human_size(largest)}" if largest > MIN_FREE_BYTES else "at least 1 GiB"
            raise CheckFailed("LowSpace", f"{self.folder}: {said}; the next backup needs about {why}")
        return said


def _remove(path: Path) -> bool:
    """Remove a probe file; True when it is still there afterwards."""
    if not os.path.lexists(path):  # also when the folder itself could not be made
        return False
    try:
        path.unlink()
    except OSError:
        return True
    return False
