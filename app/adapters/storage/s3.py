"""An S3 bucket (or S3-compatible store) as a backup store.

A file appears under its final name only when complete: through a multipart upload that is
completed last, or aborted.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.adapters.storage.contract import (
    MIN_PART_SIZE,
    MiB,
    PartLimits,
    StorageError,
    StoredObject,
    TooLarge,
    Upload,
    WontFit,
    changed,
    check_name,
    fill_buffer,
)
from app.formatting import human_size

STAGE_READ = MiB  # a staged part is read back and sent in blocks of this size


@dataclass(frozen=True)
class Patience:
    """How long a client waits for the store, and how many times in all it tries a call."""

    connect_seconds: float
    read_seconds: float
    attempts: int


# A backup can wait: a minute a read, five retries. A page waiting for an answer cannot.
BACKUP_PATIENCE = Patience(connect_seconds=5, read_seconds=60, attempts=6)


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
        patience: Patience = BACKUP_PATIENCE,
        part_limits: PartLimits = PartLimits(),
        spool_dir: str | None = None,
    ):
        import boto3
        from botocore.config import Config

        # The same store on another client, for `with_patience`: the keys stay inside this call.
        self._reopen = functools.partial(
            S3Storage, bucket, prefix, region=region, endpoint_url=endpoint_url, access_key=access_key,
            secret_key=secret_key, concurrency=concurrency, addressing_style=addressing_style,
            part_limits=part_limits, spool_dir=spool_dir,
        )  # fmt: skip
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.region = region
        self.concurrency = concurrency
        self.part_limits = part_limits
        self.spool_dir = spool_dir  # where parts are staged; None: the system temp folder (TMPDIR)
        self.description = f"s3://{bucket}/{self.prefix}"
        self.client = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                retries={"total_max_attempts": patience.attempts, "mode": "standard"},
                connect_timeout=patience.connect_seconds,
                read_timeout=patience.read_seconds,
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

    def with_patience(self, patience: Patience) -> S3Storage:
        """This store again (bucket, prefix, endpoint, keys, addressing) on a client that waits as `patience` says."""
        return self._reopen(patience=patience)

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

    def plan_upload(self, expected_bytes: int, room_for: int = 0) -> int:
        """The part size for an archive of about `expected_bytes` (room for `room_for`); WontFit, before
        anything starts, when the store's limits or the worker's temp folder cannot take it."""
        part_size = self.part_limits.part_size_for(expected_bytes, room_for)
        staged = part_size * (self.concurrency + 1)
        folder = self.spool_dir or tempfile.gettempdir()
        free = shutil.disk_usage(folder).free
        if free < staged:
            raise WontFit(
                f"The worker stages up to {self.concurrency + 1} parts of {human_size(part_size)} in {folder} while "
                f"they upload ({human_size(staged)}), and that folder has {human_size(free)} free. Point TMPDIR at "
                "a folder with more room. Nothing was dumped."
            )
        return part_size

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

    def version_of(self, name: str) -> str:
        """The object's ETag and Last-Modified (HeadObject). Other bytes get another ETag; Last-Modified
        changes with every write, so even bytes made to share an MD5 (a simple PUT's ETag) are told apart."""
        head = self._call(f"look up {name}", self.client.head_object, Bucket=self.bucket, Key=self._key(name))
        return _version(head)

    def read_into(self, name: str, start: int, buffer: memoryview, version: str | None = None) -> int:
        """One ranged GET, read straight into `buffer` (no intermediate copy of the range).

        With `version` (`version_of`), the GET carries If-Match on its ETag, so a replaced object answers
        412 and sends nothing; the response's own ETag and Last-Modified are compared too, for a store that
        ignores If-Match (moto, SeaweedFS and the JuiceFS gateway all honour it)."""
        from botocore.exceptions import BotoCoreError, ClientError

        etag = version.rpartition(" ")[0] if version is not None else ""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name),
                                              Range=f"bytes={start}-{start + len(buffer) - 1}",
                                              **({"IfMatch": etag} if etag else {}))  # fmt: skip
        except ClientError as exc:
            if version is not None and exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise changed(name, self.description) from None
            raise self.explain(exc, f"download {name}") from None
        except BotoCoreError as exc:
            raise self.explain(exc, f"download {name}") from None
        try:
            with contextlib.closing(response["Body"]) as body:
                if version is not None and _version(response) != version:
                    raise changed(name, self.description)
                return fill_buffer(body.readinto, buffer)
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


def _version(response: dict) -> str:
    """An object's version as `version_of` gives it, from a HeadObject or GetObject response."""
    modified = response.get("LastModified")
    return f"{response.get('ETag', '')} {modified.astimezone(UTC).isoformat() if modified else ''}"


class _StagedPart:
    """One part's bytes, staged in an unlinked file in the worker's temp folder (TMPDIR).

    A part may be 5 GiB (S3 needs large parts to hold a terabyte in 10,000), so it cannot sit in
    memory; staged on disk it costs the worker one read buffer at any size, and it can be sent again
    when the store asks for a retry. The file has no name, so nothing is left if the worker dies,
    and emptying it drops its pages before the kernel writes them back: the disk sees little of it.
    """

    def __init__(self, folder: str | None):
        self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - open for the upload's life; see close
        self.fd = self._file.fileno()
        self.folder = folder or tempfile.gettempdir()
        self.size = 0
        self.buffer = bytearray(STAGE_READ)

    def append(self, data: memoryview) -> None:
        try:
            while data:
                written = os.pwrite(self.fd, data, self.size)
                self.size += written
                data = data[written:]
        except OSError as exc:
            raise StorageError(f"cannot stage the next part in {self.folder}: {exc.strerror}") from None

    def clear(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0

    def close(self) -> None:
        self._file.close()


class _PartBody:
    """A staged part as a request body: read in STAGE_READ blocks (urllib3 would ask for 16 KiB at a
    time and copy each), seekable so that botocore can send it again on a retry."""

    def __init__(self, part: _StagedPart):
        self._part = part
        self._position = 0

    def __len__(self) -> int:
        return self._part.size

    def read(self, amount: int = -1) -> bytes | memoryview:
        if amount is None or amount < 0:  # nobody in the upload path asks for all; answered anyway
            data = os.pread(self._part.fd, self._part.size - self._position, self._position)
            self._position += len(data)
            return data
        # One whole buffer whatever is asked: each block is sent before the next is read.
        got = os.preadv(self._part.fd, [self._part.buffer], self._position)
        self._position += got
        return memoryview(self._part.buffer)[:got]

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._part.size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position


class _S3Upload:
    """Parts go up on a small thread pool while the caller keeps writing.

    Every part but the last is exactly `part_size` bytes: Cloudflare R2 (and others) refuse a
    multipart upload whose parts differ, and pipe reads come in uneven lengths. Each part is staged
    on disk (`_StagedPart`), so memory does not depend on the part size; at most concurrency + 1
    parts are staged at once (`write` waits for a free slot before it starts another), and their
    files are reused. The part count is checked as parts are sent: a stream that outgrows the
    store's limit fails at once, not after the whole dump was sent.
    """

    def __init__(self, storage: S3Storage, key: str, upload_id: str, part_size: int):
        self.storage = storage
        self.key = key
        self.upload_id = upload_id
        self.part_size = part_size
        self.size = 0
        self._staged: list[_StagedPart] = []  # every file this upload made, closed at the end
        self._spare: list[_StagedPart] = []  # sent and emptied; appended and popped atomically
        self._current: _StagedPart | None = None  # the part being filled; taken when its first byte arrives
        self._count = 0  # parts sent so far
        # A finished part keeps only its ETag (a Future per part grew the worker by 2 KiB a part).
        self._etags: dict[int, str] = {}
        self._pending: list[Future] = []
        self._slots = threading.Semaphore(storage.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=storage.concurrency, thread_name_prefix="s3-part")

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        while view:
            part = self._current or self._take_part()
            take = min(len(view), self.part_size - part.size)
            part.append(view[:take])
            view = view[take:]
            if part.size == self.part_size:
                self._send_part()

    def _take_part(self) -> _StagedPart:
        if self._spare:
            self._current = self._spare.pop()
        else:
            self._current = _StagedPart(self.storage.spool_dir)
            self._staged.append(self._current)
        return self._current

    def _send_part(self) -> None:
        number = self._count + 1
        if number > self.storage.part_limits.max_parts:
            raise self.storage.part_limits.outgrown(self.part_size)
        self._settle()  # an earlier part's failure surfaces now, not at the end
        part = self._current or self._take_part()  # an empty object is one empty part
        self._slots.acquire()
        self._pending.append(self._pool.submit(self._upload_part, number, part))
        self._count = number
        self._current = None

    def _settle(self, wait: bool = False) -> None:
        """Drop the parts that are up (raising the first failure); with `wait`, wait for all of them."""
        still = []
        for future in self._pending:
            if wait or future.done():
                future.result()
            else:
                still.append(future)
        self._pending = still

    def _upload_part(self, number: int, part: _StagedPart) -> None:
        try:
            response = self.storage._call(
                f"upload part {number}",
                self.storage.client.upload_part,
                Bucket=self.storage.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=_PartBody(part),
                ContentLength=part.size,
            )
            self._etags[number] = response["ETag"]
        finally:
            part.clear()
            self._spare.append(part)
            self._slots.release()

    def complete(self) -> int:
        if self._current is not None or not self._count:
            self._send_part()
        try:
            self._settle(wait=True)
        finally:
            self._close()
        parts = [{"PartNumber": number, "ETag": etag} for number, etag in sorted(self._etags.items())]
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
        self._close(cancel=True)
        self.storage.abort_upload(self.key[len(self.storage.prefix) :], self.upload_id)

    def _close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        for part in self._staged:
            part.close()
