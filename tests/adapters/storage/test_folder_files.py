"""The folder store reads and writes only regular files, never a link's target or a FIFO; 0600 files, 0700 folders."""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.adapters.storage import (
    LocalStorage,
    NotRegularFile,
    StorageError,
)
from tests.adapters.storage.stores import (
    MiB,
    names,
    unfinished_uploads,
)

SECRET = b"SECRET_KEY=do-not-leak-0451\0AWS_SECRET_ACCESS_KEY=s3cr3t\0"


def plant_not_a_file(folder, name: str, kind: str, outside) -> None:
    """What someone who can write to the folder puts there under a backup's name, in place of the file."""
    path = folder / name
    path.unlink(missing_ok=True)
    if kind == "link to a secret":
        outside.write_bytes(SECRET)
        path.symlink_to(outside)
    elif kind == "link to /proc/self/environ":
        path.symlink_to("/proc/self/environ")
    elif kind == "link to a file in the folder":
        (folder / "real.dump").write_bytes(b"PGDMP a real file")
        path.symlink_to("real.dump")
    elif kind == "dangling link":
        path.symlink_to(outside / "nothing")
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()


READS = {
    "get_bytes": lambda s, n: s.get_bytes(n),
    "get_bytes capped": lambda s, n: s.get_bytes(n, max_bytes=64 * 1024),
    "stat": lambda s, n: s.stat(n),
    "read_into": lambda s, n: s.read_into(n, 0, memoryview(bytearray(4096))),
    "version_of": lambda s, n: s.version_of(n),
    "open_stream": lambda s, n: b"".join(s.open_stream(n)),
}


NOT_FILES = ["link to a secret", "link to /proc/self/environ", "link to a file in the folder", "dangling link", "FIFO",
             "folder"]  # fmt: skip


@pytest.mark.parametrize("kind", NOT_FILES)
def test_the_folder_reads_only_regular_files_never_a_links_target(tmp_path, kind):
    storage = LocalStorage(tmp_path / "store")
    name = "pharmatracker-staging-on-2025-01-15-at-02-30-23-PM-IST.dump"
    storage.put_bytes(name, b"PGDMP the listed backup")
    listed = names(storage)
    plant_not_a_file(storage.folder, name, kind, tmp_path / "outside")

    outcomes = {}
    with ThreadPoolExecutor(len(READS)) as pool:  # a FIFO must be refused, not waited on
        futures = {method: pool.submit(read, storage, name) for method, read in READS.items()}
        try:
            for method, future in futures.items():
                try:
                    outcomes[method] = f"read {future.result(timeout=10)!r}"
                except NotRegularFile as exc:
                    outcomes[method] = str(exc)
                except Exception as exc:  # shown in the failure: a wait on the FIFO, another error
                    outcomes[method] = f"{type(exc).__name__}: {exc}"
        finally:
            if kind == "FIFO":  # release any reader that did block, so the test ends
                with contextlib.suppress(OSError):
                    os.close(os.open(storage.folder / name, os.O_WRONLY | os.O_NONBLOCK))

    for method, outcome in outcomes.items():
        assert "not a regular file: the console reads only regular files" in outcome, method
        assert name in outcome
        assert "SECRET" not in outcome and "s3cr3t" not in outcome and "PGDMP" not in outcome
    expected = "a symbolic link" if "link" in kind else {"FIFO": "a FIFO", "folder": "a folder"}[kind]
    assert all(expected in outcome for outcome in outcomes.values())
    assert name in listed and name not in names(storage)  # the listing never showed it
    if kind == "folder":
        with pytest.raises(StorageError, match="cannot delete"):
            storage.delete(name)
        return
    storage.delete(name)  # removes the link itself, never what it points at
    assert not os.path.lexists(storage.folder / name)
    if kind == "link to a secret":
        assert (tmp_path / "outside").read_bytes() == SECRET


def test_a_listed_file_swapped_for_a_link_after_it_was_opened_keeps_reading_the_file(tmp_path):
    # The check is on the opened descriptor: what was opened is what is read, whatever the name becomes.
    storage = LocalStorage(tmp_path / "store")
    storage.put_bytes("swapped.dump", b"PGDMP" + b"x" * (3 * MiB))
    blocks = storage.open_stream("swapped.dump")
    plant_not_a_file(storage.folder, "swapped.dump", "link to a secret", tmp_path / "outside")
    assert b"".join(blocks) == b"PGDMP" + b"x" * (3 * MiB)
    with pytest.raises(NotRegularFile):
        storage.open_stream("swapped.dump")


def test_the_folder_creates_its_files_0600_and_its_folders_0700(tmp_path):
    # A backup is the whole database: under the usual umask 022 it used to be 0644, readable by every local user.
    old = os.umask(0o022)
    try:
        storage = LocalStorage(tmp_path / "made" / "store")
        upload = storage.begin_upload("private.dump")
        upload.write(b"PGDMP")
        (partial,) = unfinished_uploads(storage)
        assert (storage.folder / partial).stat().st_mode & 0o777 == 0o600
        upload.complete()
        storage.put_bytes("private.dump.json", b"{}")
    finally:
        os.umask(old)
    assert storage.folder.stat().st_mode & 0o777 == 0o700
    for name in ("private.dump", "private.dump.json"):
        assert (storage.folder / name).stat().st_mode & 0o777 == 0o600


def test_a_folder_given_as_a_link_is_used(tmp_path):
    # The folder itself is the operator's choice (a link to a mounted disk is common); only someone who
    # can write to its parent could swap it. Names inside are single components, so no link is followed there.
    (tmp_path / "disk").mkdir()
    (tmp_path / "backups").symlink_to(tmp_path / "disk")
    storage = LocalStorage(tmp_path / "backups")
    storage.put_bytes("on-the-disk.dump", b"PGDMP")
    assert storage.get_bytes("on-the-disk.dump") == b"PGDMP"
    assert (tmp_path / "disk" / "on-the-disk.dump").read_bytes() == b"PGDMP"
