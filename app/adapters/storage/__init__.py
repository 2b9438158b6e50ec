"""Where backups live: an S3 bucket (or S3-compatible store) or a local folder, behind one interface.

Both adapters make a file visible under its final name only when it is complete: S3 through
a multipart upload that is completed last (or aborted), the folder through an atomic rename
of a hidden partial file. `tests/test_storage.py` runs one contract suite against both.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import threading
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

MiB = 1024 * 1024
MIN_PART_SIZE = 8 * MiB
MAX_PARTS = 10_000
WRITE_BACK_EVERY = 64 * MiB  # local folder: bytes between two writeback starts
PARTIAL_PREFIX = ".partial-"
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


def _fill(readinto: Callable[[memoryview], int | None], buffer: memoryview) -> int:
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


def open_storage(
    url: str,
    *,
    region: str = "ap-south-1",
    endpoint_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    addressing_style: str = "auto",
) -> Storage:
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
        )
    if parts.scheme == "file":
        return LocalStorage(Path(unquote(parts.path)))
    raise StorageError(f"unsupported storage URL {url!r}: use s3://bucket[/prefix] or file:///folder")


# --------------------------------------------------------------------------- local folder


class LocalStorage:
    """A folder. Whoever can write to it can put links, FIFOs and devices in it, so every read opens
    the name itself (never a link's target) and reads it only when it is a regular file."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.description = f"folder {folder}"

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
            got = _fill(fh.readinto, memoryview(buffer))
        if got > max_bytes:
            raise TooLarge(f"{name} is more than the {max_bytes} bytes it may have")
        return bytes(buffer[:got])

    def stat(self, name: str) -> StoredObject | None:
        if not os.path.lexists(self._path(name)):
            return None
        fh, st = self._open(name)  # a link or a FIFO is refused, not described
        fh.close()
        return StoredObject(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def read_into(self, name: str, start: int, buffer: memoryview) -> int:
        """Fill `buffer` with the file's bytes from `start`; fewer only where the file ends."""
        fh, _ = self._open(name)
        with fh:
            fh.seek(start)
            return _fill(fh.readinto, buffer)

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


# --------------------------------------------------------------------------- S3


class S3Storage:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        concurrency: int = 2,
        addressing_style: str = "auto",
    ):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.region = region
        self.concurrency = concurrency
        self.description = f"s3://{bucket}/{self.prefix}"
        self.client = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=max(10, concurrency * 2),
                # The dump's own sha256 (in the manifest) is the integrity check that matters; a
                # second checksum of every part only costs CPU while pg_dump competes for it.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # "path" for stores without per-bucket host names (MinIO, SeaweedFS, an IP endpoint).
                # No SigV4 hash of each part's body: botocore would otherwise sha256 every part a
                # second time (always over http, and over https too without a Content-MD5).
                s3={"addressing_style": addressing_style, "payload_signing_enabled": False},
            ),
        )

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def explain(self, exc: Exception, action: str) -> StorageError:
        """Turn a boto error into words a person can act on (no secret ever appears in them)."""
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return StorageError(
                f"cannot {action}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY and AWS_SECRET_KEY)"
            )
        if isinstance(exc, EndpointConnectionError):
            endpoint = exc.kwargs.get("endpoint_url")
            return StorageError(f"cannot {action}: the S3 endpoint cannot be reached ({endpoint})")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket" or (code == "404" and action.startswith("reach bucket")):
                return StorageError(
                    f"bucket {self.bucket!r} does not exist in region {self.region}; create it with: "
                    f"aws s3 mb s3://{self.bucket} --region {self.region}"
                )
            if code in ("NoSuchKey", "404"):
                return StorageError(f"cannot {action}: it does not exist in {self.description}")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
                return StorageError(f"cannot {action}: S3 refused the credentials ({code}); check the AWS keys")
            return StorageError(f"cannot {action}: S3 answered {code or 'an error'}")
        return StorageError(f"cannot {action}: {type(exc).__name__}: {exc}")

    def _call(self, action: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self.explain(exc, action) from None

    def check(self) -> None:
        self._call(f"reach bucket {self.bucket}", self.client.head_bucket, Bucket=self.bucket)

    def list_objects(self) -> list[StoredObject]:
        from botocore.exceptions import BotoCoreError, ClientError

        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    if name and not name.startswith("."):
                        found.append(StoredObject(name, item["Size"], item["LastModified"].astimezone(UTC)))
        except (BotoCoreError, ClientError) as exc:
            raise self.explain(exc, "list backups") from None
        return found

    def begin_upload(self, name: str, part_size: int = MIN_PART_SIZE) -> Upload:
        key = self._key(name)
        response = self._call(
            f"start uploading {name}", self.client.create_multipart_upload, Bucket=self.bucket, Key=key
        )
        return _S3Upload(self, key, response["UploadId"], part_size)

    def put_bytes(self, name: str, data: bytes) -> None:
        self._call(f"write {name}", self.client.put_object, Bucket=self.bucket, Key=self._key(name), Body=data)

    def get_bytes(self, name: str, max_bytes: int | None = None) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        if max_bytes is None:
            response = self._call(f"read {name}", self.client.get_object, Bucket=self.bucket, Key=self._key(name))
            return response["Body"].read()
        # One byte more than allowed is asked for, and read at most (a server may ignore Range).
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name), Range=f"bytes=0-{max_bytes}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # no byte 0: the object is empty
                return b""
            raise self.explain(exc, f"read {name}") from None
        except BotoCoreError as exc:
            raise self.explain(exc, f"read {name}") from None
        total = response.get("ContentRange", "").rpartition("/")[2]
        if total.isdigit() and int(total) > max_bytes:
            response["Body"].close()
            raise TooLarge(f"{name} is {total} bytes, more than the {max_bytes} it may have")
        try:
            with contextlib.closing(response["Body"]) as body:
                data = body.read(max_bytes + 1)
        except BotoCoreError as exc:
            raise self.explain(exc, f"read {name}") from None
        if len(data) > max_bytes:
            raise TooLarge(f"{name} is more than the {max_bytes} bytes it may have")
        return data

    def stat(self, name: str) -> StoredObject | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.explain(exc, f"look up {name}") from None
        except BotoCoreError as exc:
            raise self.explain(exc, f"look up {name}") from None
        return StoredObject(name, head["ContentLength"], head["LastModified"].astimezone(UTC))

    def read_into(self, name: str, start: int, buffer: memoryview) -> int:
        """One ranged GET, read straight into `buffer` (no intermediate copy of the range)."""
        from botocore.exceptions import BotoCoreError

        response = self._call(
            f"download {name}",
            self.client.get_object,
            Bucket=self.bucket,
            Key=self._key(name),
            Range=f"bytes={start}-{start + len(buffer) - 1}",
        )
        try:
            with contextlib.closing(response["Body"]) as body:
                return _fill(body.readinto, buffer)
        except BotoCoreError as exc:
            raise self.explain(exc, f"download {name}") from None

    def open_stream(self, name: str) -> Iterator[bytes]:
        response = self._call(f"download {name}", self.client.get_object, Bucket=self.bucket, Key=self._key(name))
        return response["Body"].iter_chunks(MiB)

    def delete(self, name: str) -> None:
        self._call(f"delete {name}", self.client.delete_object, Bucket=self.bucket, Key=self._key(name))

    def download_url(self, name: str, seconds: int = 300) -> str | None:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(name), "ResponseContentDisposition": "attachment"},
            ExpiresIn=seconds,
        )

    def abort_upload(self, name: str, upload_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(name), UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise self.explain(exc, f"abort the upload of {name}") from None
        except BotoCoreError as exc:
            raise self.explain(exc, f"abort the upload of {name}") from None

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix)
            stale = [u for page in pages for u in page.get("Uploads", []) if u["Initiated"] < cutoff]
        except (BotoCoreError, ClientError) as exc:
            raise self.explain(exc, "list unfinished uploads") from None
        for upload in stale:
            self._call(
                "abort a stale upload",
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )
            aborted += 1
        return aborted


class _S3Upload:
    """Parts go up on a small thread pool while the caller keeps writing.

    Every part but the last is exactly `part_size` bytes: Cloudflare R2 (and others) refuse a
    multipart upload whose parts differ, and pipe reads come in uneven lengths. Each part is
    filled in place in a buffer of exactly that size (no join, no extra copy), and a buffer
    is reused once its part is sent. Memory stays near part_size × (concurrency + 1): `write`
    waits for a free slot before it starts filling a part beyond that.
    """

    def __init__(self, storage: S3Storage, key: str, upload_id: str, part_size: int):
        self.storage = storage
        self.key = key
        self.upload_id = upload_id
        self.part_size = part_size
        self.size = 0
        self._spare: list[bytearray] = []  # buffers whose parts are up; appended and popped atomically
        self._buffer: bytearray | None = None  # the part being filled; taken when its first byte arrives
        self._filled = 0
        self._parts: list[Future] = []
        self._slots = threading.Semaphore(storage.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=storage.concurrency, thread_name_prefix="s3-part")

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        self.size += len(view)
        while view:
            if self._buffer is None:
                self._buffer = self._spare.pop() if self._spare else bytearray(self.part_size)
            take = min(len(view), self.part_size - self._filled)
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self.part_size:
                self._send_part()

    def _send_part(self) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError("the backup is larger than S3's 10,000-part limit allows at this part size")
        for done in self._parts:  # surface an earlier part's failure now, not at the end
            if done.done() and done.exception():
                raise done.exception()  # type: ignore[misc]
        body = self._buffer if self._buffer is not None else bytearray()
        reuse = self._filled == self.part_size
        if not reuse:  # the last, short part: trimmed in place rather than copied
            del body[self._filled :]
        self._slots.acquire()
        self._parts.append(self._pool.submit(self._upload_part, number, body, reuse))
        # The next buffer is taken only when a byte arrives for it: after the last part none is
        # (a copy of that part and a new buffer once raised the peak by up to two parts).
        self._buffer = None
        self._filled = 0

    def _upload_part(self, number: int, body: bytearray, reuse: bool) -> dict:
        try:
            response = self.storage._call(
                f"upload part {number}",
                self.storage.client.upload_part,
                Bucket=self.storage.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
            )
            if reuse:
                self._spare.append(body)
            return {"PartNumber": number, "ETag": response["ETag"]}
        finally:
            self._slots.release()

    def complete(self) -> int:
        if self._filled or not self._parts:
            self._send_part()
        parts = [future.result() for future in self._parts]
        self._pool.shutdown()
        self.storage._call(
            "finish the upload",
            self.storage.client.complete_multipart_upload,
            Bucket=self.storage.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts},
        )
        return self.size

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.storage.abort_upload(self.key[len(self.storage.prefix) :], self.upload_id)
