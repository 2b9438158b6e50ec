"""One contract suite for both storage adapters: a local folder and S3 on three real servers.

Every test that takes `storage` runs four times: on a local folder and on a fresh bucket of
each S3 server in tests/s3_servers.py (moto, SeaweedFS, the JuiceFS gateway). It asserts only
what a caller of the `Storage` interface (and so, in the end, a user) can see. The few checks
that need to peek behind the interface (hidden files, unfinished uploads, the bucket itself)
go through the small helpers below, which know where each adapter keeps things.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from app.adapters.storage import (
    MAX_PARTS,
    MIN_PART_SIZE,
    PARTIAL_PREFIX,
    InvalidName,
    LocalStorage,
    NotRegularFile,
    S3Storage,
    Storage,
    StorageError,
    TooLarge,
    check_name,
    open_storage,
    part_size_for,
)
from tests.support.s3_servers import REGION, SERVERS, S3Bucket, S3Endpoint, create_bucket, remove_bucket

MiB = 1024 * 1024
GB = 1000**3


def s3_storage_on(bucket: S3Bucket, prefix: str = "backups") -> S3Storage:
    """The console's adapter on a test bucket, under a prefix (so "../x" has somewhere to be)."""
    endpoint = bucket.endpoint
    storage = open_storage(
        f"s3://{bucket.name}/{prefix}",
        region=REGION,
        endpoint_url=endpoint.url,
        access_key=endpoint.access_key,
        secret_key=endpoint.secret_key,
    )
    assert isinstance(storage, S3Storage)
    return storage


@pytest.fixture(params=["local", *sorted(SERVERS)])
def storage(request, tmp_path) -> Iterator[Storage]:
    """The adapter under test: a folder, or a fresh bucket on one S3 server (started on first use)."""
    if request.param == "local":
        yield LocalStorage(tmp_path / "store")
        return
    endpoint = request.getfixturevalue("s3_endpoints")[request.param]
    bucket = create_bucket(endpoint)
    yield s3_storage_on(S3Bucket(endpoint, bucket))
    remove_bucket(endpoint, bucket)


@pytest.fixture
def s3_storage(s3_store: S3Bucket) -> S3Storage:
    """The S3 adapter on each of the three servers in turn."""
    return s3_storage_on(s3_store)


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- names


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


# --------------------------------------------------------------------------- stale uploads


def initiated(storage: S3Storage) -> dict[str, datetime]:
    """When the server says each unfinished upload under the prefix began, by file name."""
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix).get("Uploads", [])
    return {u["Key"][len(storage.prefix) :]: u["Initiated"] for u in uploads}


def test_abort_stale_uploads_removes_only_uploads_older_than_the_cutoff(storage, request):
    """Only uploads begun before the cutoff are aborted; a fresh one is left and still completes.

    A folder's partial file is aged with utime. An S3 upload cannot be back-dated, so the
    stale one is begun over a second before the fresh one (SeaweedFS reports whole seconds)
    and the cutoff goes between the two times the server reports. moto reports every upload
    as initiated at one fixed moment in 2010 (moto/s3/responses.py), so it cannot tell the
    two apart: there the test checks only a cutoff either side of that moment.
    """
    stale = storage.begin_upload("stale.dump")
    stale.write(b"left by a killed worker")
    if isinstance(storage, LocalStorage):
        two_hours_ago = time.time() - 2 * 3600
        os.utime(stale.partial, (two_hours_ago, two_hours_ago))
        fresh = storage.begin_upload("fresh.dump")
        older_than = timedelta(hours=1)
        fresh_id = fresh.upload_id
    else:
        stale_at = initiated(storage)["stale.dump"]
        time.sleep(max(0.0, (stale_at + timedelta(seconds=1.5) - datetime.now(UTC)).total_seconds()))
        fresh = storage.begin_upload("fresh.dump")
        fresh_at = initiated(storage)["fresh.dump"]
        fresh_id = storage.prefix + "fresh.dump"
        if request.node.callspec.params["storage"] == "moto":
            assert fresh_at == stale_at
            age = datetime.now(UTC) - stale_at
            assert storage.abort_stale_uploads(age + timedelta(hours=1)) == 0
            assert storage.abort_stale_uploads(age - timedelta(hours=1)) == 2
            assert unfinished_uploads(storage) == []
            return
        assert fresh_at > stale_at
        older_than = datetime.now(UTC) - (stale_at + (fresh_at - stale_at) / 2)
    fresh.write(b"still being written")
    assert len(unfinished_uploads(storage)) == 2

    assert storage.abort_stale_uploads(older_than) == 1

    assert unfinished_uploads(storage) == [fresh_id]
    fresh.complete()
    assert storage.get_bytes("fresh.dump") == b"still being written"
    assert names(storage) == ["fresh.dump"]


def test_abort_stale_uploads_on_an_empty_store_is_zero(storage):
    assert storage.abort_stale_uploads(timedelta(0)) == 0


# --------------------------------------------------------------------------- S3 specifics


def test_s3_listing_pages_past_a_thousand_objects(s3_storage):
    wanted = [f"tiny-{i:04d}.dump" for i in range(1005)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda name: s3_storage.put_bytes(name, b"x"), wanted))

    listed = s3_storage.list_objects()

    assert len(listed) == 1005
    assert sorted(o.name for o in listed) == wanted


def test_s3_lists_only_its_own_prefix(s3_storage):
    s3_storage.put_bytes("mine.dump", b"m")
    client, bucket = s3_storage.client, s3_storage.bucket
    client.put_object(Bucket=bucket, Key="elsewhere.dump", Body=b"e")
    client.put_object(Bucket=bucket, Key=s3_storage.prefix.rstrip("/") + "-old/theirs.dump", Body=b"t")
    client.put_object(Bucket=bucket, Key=s3_storage.prefix + "sub/nested.dump", Body=b"n")
    assert names(s3_storage) == ["mine.dump"]


def test_s3_missing_bucket_says_how_to_create_it(s3_store):
    missing = s3_storage_on(S3Bucket(s3_store.endpoint, "pgct-missing-bucket-xyz"), prefix="")
    for action in (missing.check, missing.list_objects):
        with pytest.raises(StorageError) as caught:
            action()
        message = str(caught.value)
        assert "pgct-missing-bucket-xyz" in message
        assert "ap-south-1" in message
        assert "aws s3 mb s3://pgct-missing-bucket-xyz --region ap-south-1" in message


@pytest.mark.parametrize("s3_store", ["juicefs", "seaweedfs"], indirect=True)  # moto checks no signature
def test_s3_wrong_secret_key_is_explained_without_showing_it(s3_store):
    wrong = S3Endpoint(s3_store.endpoint.name, s3_store.endpoint.url, s3_store.endpoint.access_key, "wrong-s3cr3t-42")
    refused = s3_storage_on(S3Bucket(wrong, s3_store.name))
    for action in (refused.check, refused.list_objects, lambda: refused.put_bytes("a.dump", b"a"),
                   lambda: refused.stat("a.dump"), lambda: refused.begin_upload("b.dump")):  # fmt: skip
        with pytest.raises(StorageError) as caught:
            action()
        assert "S3 refused the credentials" in str(caught.value) and "wrong-s3cr3t-42" not in str(caught.value)
    assert s3_storage_on(s3_store).list_objects() == []  # nothing got in


def test_s3_unreachable_endpoint_is_explained_without_a_traceback(monkeypatch):
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    closed = open_storage(
        "s3://some-bucket/backups",
        region="ap-south-1",
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens there
        access_key="AKIATESTING",
        secret_key="s3cr3t-never-shown",
    )
    for action in (closed.check, closed.list_objects, lambda: closed.put_bytes("a.dump", b"a")):
        with pytest.raises(StorageError) as caught:
            action()
        message = str(caught.value)
        assert "cannot be reached" in message
        assert "127.0.0.1:9" in message
        assert "\n" not in message
        for noise in ("Traceback", 'File "', "botocore", "urllib3", "Exception", "s3cr3t"):
            assert noise not in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


# --------------------------------------------------------------------------- part sizes


def test_part_size_for_is_at_least_the_minimum_and_stays_under_the_part_limit():
    assert part_size_for(0) == 8 * MiB
    for expected in (0, 1, 10 * MiB, 40 * GB, 500 * GB, 5 * 1024**4):
        size = part_size_for(expected)
        assert size >= MIN_PART_SIZE
        assert size % MiB == 0
        assert size <= 5 * 1024**3  # S3's largest part
        assert -(-expected // size) < MAX_PARTS
    assert -(-500 * GB // part_size_for(500 * GB)) < 10_000


def test_open_storage_reads_both_url_forms(tmp_path):
    local = open_storage((tmp_path / "backups folder").as_uri())
    assert isinstance(local, LocalStorage)
    assert local.folder == tmp_path / "backups folder"
    with pytest.raises(StorageError) as caught:
        open_storage("ftp://host/x")
    assert "s3://bucket" in str(caught.value)
