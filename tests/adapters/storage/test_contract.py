"""The Storage contract: round trips, streaming uploads and reads, the same on every store (see conftest.py)."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.adapters.storage import (
    MIN_PART_SIZE,
    PARTIAL_PREFIX,
    LocalStorage,
    ObjectChanged,
    S3Storage,
    StorageError,
    TooLarge,
)
from tests.adapters.storage.stores import (
    MiB,
    everything_stored,
    names,
    plant,
    unfinished_uploads,
)

# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- basic round trip


def test_put_get_stat_delete_round_trip(storage):
    data = b"PGDMP pretend archive \x00\x01\x02" * 100
    name = "pharmatracker-production-on-2025-01-15-at-02-30-23-PM-IST.dump"
    assert storage.stat(name) is None

    storage.put_bytes(name, data)

    assert storage.get_bytes(name) == data
    found = storage.stat(name)
    assert found is not None
    assert (found.name, found.size) == (name, len(data))
    assert found.last_modified.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - found.last_modified) < timedelta(minutes=2)

    storage.put_bytes(name, b"replaced")
    assert storage.get_bytes(name) == b"replaced"
    assert storage.stat(name).size == len(b"replaced")

    storage.delete(name)
    assert storage.stat(name) is None
    assert name not in names(storage)
    storage.delete(name)  # deleting what is already gone is not an error


def test_a_missing_file_reads_as_a_storage_error_not_a_crash(storage):
    storage.check()
    assert storage.stat("nothing-here.dump") is None
    for read in (
        lambda: storage.get_bytes("nothing-here.dump"),
        lambda: storage.read_into("nothing-here.dump", 0, memoryview(bytearray(10))),
        lambda: b"".join(storage.open_stream("nothing-here.dump")),
        lambda: storage.version_of("nothing-here.dump"),
    ):
        with pytest.raises(StorageError):
            read()


def test_list_objects_reports_name_size_and_aware_utc_time(storage):
    storage.put_bytes("a.dump", b"12345")
    storage.put_bytes("a.dump.json", b"{}")
    storage.put_bytes("notes.txt", b"")
    before = datetime.now(UTC) - timedelta(minutes=2)

    listed = {o.name: o for o in storage.list_objects()}

    assert sorted(listed) == ["a.dump", "a.dump.json", "notes.txt"]
    assert (listed["a.dump"].size, listed["a.dump.json"].size, listed["notes.txt"].size) == (5, 2, 0)
    for obj in listed.values():
        assert obj.last_modified.tzinfo is not None
        assert obj.last_modified.utcoffset() == timedelta(0)
        assert before <= obj.last_modified <= datetime.now(UTC) + timedelta(minutes=2)


def test_list_objects_hides_only_hidden_and_partial_files(storage):
    storage.put_bytes("visible.dump", b"v")
    storage.put_bytes("visible.dump.json", b"{}")
    storage.put_bytes("README", b"r")
    plant(storage, ".hidden", b"h")
    plant(storage, f"{PARTIAL_PREFIX}visible.dump-0123", b"p")
    unfinished = storage.begin_upload("in-progress.dump")
    unfinished.write(b"not yet")
    try:
        assert names(storage) == ["README", "visible.dump", "visible.dump.json"]
    finally:
        unfinished.abort()


def test_an_empty_store_lists_nothing(storage):
    assert storage.list_objects() == []


# --------------------------------------------------------------------------- streaming uploads


def test_upload_is_invisible_until_complete_then_has_the_exact_bytes(storage):
    name = "streamed.dump"
    chunks = [b"PGDMP", b"\x00" * 1000, os.urandom(70_000), b"", b"tail"]
    upload = storage.begin_upload(name)
    for chunk in chunks:
        upload.write(chunk)

    assert storage.stat(name) is None
    assert name not in names(storage)
    assert len(unfinished_uploads(storage)) == 1

    size = upload.complete()

    expected = b"".join(chunks)
    assert size == len(expected)
    assert storage.get_bytes(name) == expected
    assert storage.stat(name).size == len(expected)
    assert names(storage) == [name]
    assert unfinished_uploads(storage) == []


def test_replacing_a_file_keeps_the_old_one_until_the_new_one_completes(storage):
    storage.put_bytes("same.dump", b"old contents")
    upload = storage.begin_upload("same.dump")
    upload.write(b"new contents, longer")
    assert storage.get_bytes("same.dump") == b"old contents"
    upload.complete()
    assert storage.get_bytes("same.dump") == b"new contents, longer"


def test_an_empty_upload_completes_as_an_empty_file(storage):
    upload = storage.begin_upload("empty.dump")
    assert upload.complete() == 0
    assert storage.get_bytes("empty.dump") == b""
    assert storage.stat("empty.dump").size == 0


def test_abort_leaves_no_object_and_no_unfinished_upload(storage):
    upload = storage.begin_upload("aborted.dump")
    upload.write(os.urandom(MIN_PART_SIZE + 1024))  # at least one part is already on its way (S3)
    upload.write(b"more")
    upload.abort()

    assert storage.stat("aborted.dump") is None
    assert storage.list_objects() == []
    assert unfinished_uploads(storage) == []
    assert everything_stored(storage) == []


def test_a_large_upload_in_several_parts_round_trips(storage):
    data = os.urandom(20 * MiB + 12_345)
    name = "large.dump"
    upload = storage.begin_upload(name, part_size=MIN_PART_SIZE)
    for offset in range(0, len(data), MiB):
        upload.write(data[offset : offset + MiB])
        if offset == 17 * MiB:  # two parts sent, the third still buffering
            assert storage.stat(name) is None
            assert name not in names(storage)

    assert upload.complete() == len(data)

    assert storage.stat(name).size == len(data)
    digest = hashlib.sha256()
    for block in storage.open_stream(name):
        digest.update(block)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert unfinished_uploads(storage) == []
    if isinstance(storage, S3Storage):
        # A multipart object's ETag ends in "-<number of parts>": 8 MiB + 8 MiB + the rest.
        head = storage.client.head_object(Bucket=storage.bucket, Key=storage.prefix + name)
        assert head["ETag"].strip('"').endswith("-3")


def test_a_folder_upload_written_back_as_it_goes_has_the_exact_bytes(tmp_path, monkeypatch):
    """The folder adapter starts writeback every few MiB; the file must still be whole and hidden until done."""
    from app.adapters.storage import folder as storage_module

    monkeypatch.setattr(storage_module, "WRITE_BACK_EVERY", 2 * MiB)
    storage = LocalStorage(tmp_path / "store")
    data = os.urandom(9 * MiB + 4_321)
    upload = storage.begin_upload("written-back.dump")
    for offset in range(0, len(data), 300_000):
        upload.write(data[offset : offset + 300_000])
        assert storage.stat("written-back.dump") is None
    assert upload.complete() == len(data)
    assert (tmp_path / "store" / "written-back.dump").read_bytes() == data
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["written-back.dump"]


# --------------------------------------------------------------------------- reading


def read_slice(storage, name: str, start: int, length: int) -> tuple[int, bytes]:
    """`read_into` a fresh buffer of `length` bytes: (bytes read, the buffer's content)."""
    buffer = bytearray(b"\xee" * length)
    return storage.read_into(name, start, memoryview(buffer)), bytes(buffer)


def test_read_into_fills_the_buffer_with_the_requested_slice(storage):
    data = bytes(range(256)) * 40
    storage.put_bytes("ranged.dump", data)
    assert read_slice(storage, "ranged.dump", 0, 5) == (5, data[:5])
    assert read_slice(storage, "ranged.dump", 1000, 234) == (234, data[1000:1234])
    assert read_slice(storage, "ranged.dump", len(data) - 3, 3) == (3, data[-3:])
    assert read_slice(storage, "ranged.dump", 0, len(data)) == (len(data), data)


def test_read_into_past_the_end_reads_what_there_is(storage):
    data = bytes(range(256)) * 40
    storage.put_bytes("ranged.dump", data)
    count, content = read_slice(storage, "ranged.dump", len(data) - 10, 100)
    assert count == 10 and content[:10] == data[-10:] and content[10:] == b"\xee" * 90


def pinned_slice(storage, name: str, start: int, length: int, version: str) -> bytes:
    buffer = bytearray(length)
    assert storage.read_into(name, start, memoryview(buffer), version=version) == length
    return bytes(buffer)


def test_a_read_pinned_to_a_version_reads_that_version(storage):
    """A streamed restore reads the archive twice (checksum first, then into pg_restore), pinned to the
    version it found first (`version_of`)."""
    data = os.urandom(64 * 1024)
    storage.put_bytes("pinned.dump", data)
    version = storage.version_of("pinned.dump")
    assert storage.version_of("pinned.dump") == version  # a version names the object, not the call
    assert pinned_slice(storage, "pinned.dump", 0, 1000, version) == data[:1000]
    assert pinned_slice(storage, "pinned.dump", 5000, len(data) - 5000, version) == data[5000:]


def test_a_pinned_read_of_a_replaced_file_is_refused(storage):
    """Whoever can write to the store replaces the file with another of the same size between two reads:
    the second is refused (S3: If-Match answers 412; a folder: another file under the name), nothing read."""
    storage.put_bytes("pinned.dump", b"a" * 4096)
    version = storage.version_of("pinned.dump")
    storage.put_bytes("pinned.dump", b"b" * 4096)

    buffer = bytearray(b"\xee" * 4096)
    with pytest.raises(ObjectChanged, match="pinned.dump changed in .* while it was being read"):
        storage.read_into("pinned.dump", 0, memoryview(buffer), version=version)
    assert buffer == b"\xee" * 4096
    assert storage.version_of("pinned.dump") != version
    assert read_slice(storage, "pinned.dump", 0, 4096) == (4096, b"b" * 4096)  # unpinned reads as before


def test_a_file_written_again_with_the_same_bytes_is_another_version(storage):
    """S3 gives the same bytes the same ETag (their MD5), so If-Match lets the read through; the adapter
    compares the response's Last-Modified too, as it would for a store that ignored If-Match altogether."""
    storage.put_bytes("pinned.dump", b"same bytes" * 100)
    version = storage.version_of("pinned.dump")
    time.sleep(1.1)  # Last-Modified counts whole seconds
    storage.put_bytes("pinned.dump", b"same bytes" * 100)

    with pytest.raises(ObjectChanged):
        storage.read_into("pinned.dump", 0, memoryview(bytearray(10)), version=version)


def test_a_folder_file_rewritten_in_place_is_another_version(tmp_path):
    """The same file (inode) written to: its size and times are part of its version."""
    storage = LocalStorage(tmp_path / "store")
    storage.put_bytes("pinned.dump", b"a" * 4096)
    version = storage.version_of("pinned.dump")
    with open(storage.folder / "pinned.dump", "r+b") as rewritten:
        rewritten.write(b"b" * 4096)
    os.utime(storage.folder / "pinned.dump", ns=(1, 1))  # whatever the clock's resolution: the mtime moved

    with pytest.raises(ObjectChanged):
        storage.read_into("pinned.dump", 0, memoryview(bytearray(10)), version=version)


def test_open_stream_yields_the_whole_content(storage):
    data = os.urandom(3 * MiB + 17)
    storage.put_bytes("streamed-out.dump", data)
    blocks = list(storage.open_stream("streamed-out.dump"))
    assert len(blocks) > 1
    assert b"".join(blocks) == data


def test_get_bytes_with_a_cap_reads_at_most_that_many_bytes(storage):
    # Sidecars are read with a cap (catalog.MAX_SIDECAR_BYTES): anyone who can write to the store
    # can make one as large as they like, and S3 gets a Range, so no server sends more than the cap.
    data = bytes(range(256)) * 4
    storage.put_bytes("capped.dump.json", data)
    storage.put_bytes("empty.dump.json", b"")
    assert storage.get_bytes("capped.dump.json", max_bytes=len(data)) == data
    assert storage.get_bytes("capped.dump.json", max_bytes=10 * len(data)) == data
    assert storage.get_bytes("empty.dump.json", max_bytes=100) == b""
    with pytest.raises(TooLarge, match=f"{len(data)} bytes|more than"):
        storage.get_bytes("capped.dump.json", max_bytes=len(data) - 1)
    with pytest.raises(StorageError):
        storage.get_bytes("missing.dump.json", max_bytes=100)


# --------------------------------------------------------------------------- only regular files (folder)


# --------------------------------------------------------------------------- names


# --------------------------------------------------------------------------- stale uploads


# --------------------------------------------------------------------------- S3 specifics


# --------------------------------------------------------------------------- part sizes


