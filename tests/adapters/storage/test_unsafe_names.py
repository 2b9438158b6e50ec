"""Unsafe names: check_name refuses them, and no store method touches anything outside its root."""

from __future__ import annotations

import contextlib

import pytest

from app.adapters.storage import (
    PARTIAL_PREFIX,
    InvalidName,
    StorageError,
    check_name,
)
from tests.adapters.storage.stores import (
    peek,
    plant,
    unfinished_uploads,
)

BAD_NAMES = [
    "../x",
    "..",
    ".",
    "a/b",
    "/etc/passwd",
    ".hidden",
    "",
    "a\\b",
    "..\\x",
    "a\x00b",
    "line\nbreak.dump",
    "carriage\rreturn",
    "esc\x1b[31m.dump",
    "del\x7f.dump",
    "x" * 256,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_check_name_refuses_unsafe_names(name):
    with pytest.raises(InvalidName):
        check_name(name)


@pytest.mark.parametrize(
    "name",
    ["pharmatracker-production-on-2025-01-15-at-02-30-23-PM-IST.dump", "backup.sql", "a", "x" * 255, "naïve é.dump"],
)
def test_check_name_accepts_plain_file_names(name):
    assert check_name(name) == name


def test_check_name_refuses_c1_control_characters():
    # U+0080..U+009F are control characters too (Unicode category Cc): U+009B is the 8-bit
    # terminal CSI, U+0085 a line break for str.splitlines() (and so for log and audit lines).
    for name in ("csi\x9b31m.dump", "next\x85line.dump"):
        with pytest.raises(InvalidName):
            check_name(name)


CALLS = {
    "begin_upload": lambda s, n: s.begin_upload(n),
    "put_bytes": lambda s, n: s.put_bytes(n, b"overwritten"),
    "get_bytes": lambda s, n: s.get_bytes(n),
    "stat": lambda s, n: s.stat(n),
    "read_into": lambda s, n: s.read_into(n, 0, memoryview(bytearray(4))),
    "version_of": lambda s, n: s.version_of(n),
    "open_stream": lambda s, n: b"".join(s.open_stream(n)),
    "delete": lambda s, n: s.delete(n),
    "abort_upload": lambda s, n: s.abort_upload(n, f"{PARTIAL_PREFIX}x-0123"),
}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_every_method_refuses_an_unsafe_name_and_touches_nothing_outside(storage, method):
    plant(storage, "../x", b"outside the storage root")
    plant(storage, "inside.dump", b"inside")
    not_refused = []
    for name in BAD_NAMES:
        try:
            result = CALLS[method](storage, name)
        except InvalidName:
            continue
        except StorageError as exc:
            not_refused.append(f"{name[:20]!r}: StorageError but not InvalidName: {exc}")
            continue
        if hasattr(result, "abort"):
            result.abort()
        not_refused.append(f"{name[:20]!r}: accepted")

    assert not_refused == []
    assert peek(storage, "../x") == b"outside the storage root"
    assert peek(storage, "inside.dump") == b"inside"


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "a\\b"])
def test_download_url_never_points_at_an_unsafe_name(storage, name):
    # The folder adapter hands out no URLs at all (the web layer streams the file itself),
    # so "no URL" is as good as a refusal there; S3 must refuse to sign one.
    try:
        url = storage.download_url(name)
    except InvalidName:
        return
    assert url is None


def test_abort_upload_never_deletes_outside_the_root(storage):
    # The upload id comes back from job.meta in Redis after a worker died; it must not be
    # able to name a file outside the storage root.
    plant(storage, "../victim.txt", b"keep me")
    with contextlib.suppress(StorageError):  # refusing is fine; deleting it is not
        storage.abort_upload("victim.dump", "../victim.txt")
    assert peek(storage, "../victim.txt") == b"keep me"


def test_the_longest_valid_name_can_be_stored(storage):
    # check_name accepts up to 255 characters, so every adapter must store such a name
    # (or refuse it with a StorageError a person can read, never an OSError).
    for name in ("n" * 255, "é" * 120 + ".dump"):
        check_name(name)
        try:
            storage.put_bytes(name, b"long")
        except StorageError:
            continue
        assert storage.get_bytes(name) == b"long"
        storage.delete(name)
    assert unfinished_uploads(storage) == []
