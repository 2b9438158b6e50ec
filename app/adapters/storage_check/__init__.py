"""Check storage: run every call the console makes against a probe under the prefix, and say which fail.

For people setting up a bucket or a folder. Each check is named after the S3 permission that
its calls need (`s3:PutObject`, `s3:AbortMultipartUpload`…), so a failure says what to grant.
The probe objects are hidden names (`.pgconsole-check-…`), which are never listed as backups,
and they are removed (and the probe uploads aborted) whatever fails along the way.

When a call fails in a way that dooms every later call (no such bucket, refused keys, wrong
region, skewed clock, endpoint unreachable), the rest are reported as not run rather than as
a row of misleading failures. No message carries a secret: only the server's error code, its
message and the names of settings.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from app.adapters.storage import PRIVATE_FOLDER, LocalStorage, S3Storage, Storage

MiB = 1024 * 1024
GiB = 1024 * MiB
PROBE_PREFIX = ".pgconsole-check-"
FIRST_PART = 5 * MiB  # S3's minimum for a part that is not the last (and every other part must match it)
# A folder with less free space than this, or than its largest backup, fails: the next backup
# would most likely not fit (and a full disk also stops the console's own store beside it).
MIN_FREE_BYTES = GiB
TIME_LIMIT = 20.0  # seconds: the page waits for the check, and gunicorn kills a request at 30
NOT_RUN = "NotRun"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    code: str = ""  # the server's error code (AccessDenied, EROFS…), or NotRun
    message: str = ""

    @property
    def ran(self) -> bool:
        return self.code != NOT_RUN

    @property
    def outcome(self) -> str:
        return "ok" if self.ok else "FAILED" if self.ran else "not run"

    def line(self) -> str:
        """One line for the command line: `name: ok`, `name: FAILED: code, message`, `name: not run: why`."""
        if self.ok:
            return f"{self.name}: ok" + (f" ({self.message})" if self.message else "")
        if not self.ran:
            return f"{self.name}: not run: {self.message}"
        return f"{self.name}: FAILED: {self.code}, {self.message}"


class CheckFailed(Exception):
    """One check failed; `fatal` when no later call can succeed either (no bucket, refused keys…)."""

    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(message)
        self.code, self.message, self.fatal = code, message, fatal


def check_storage(storage: Storage, time_limit: float = TIME_LIMIT) -> list[CheckResult]:
    """Every check for this store, in order; all passed when every result is ok.

    It runs synchronously (a page request waits for it): about ten calls, one of them a 5 MiB
    part, on a client of its own with short timeouts and one retry, and checks that would
    start after `time_limit` seconds are reported as not run, so a slow or unreachable store
    answers within gunicorn's 30 s instead of killing the request. A job would add a queue, a
    worker and a result page for an answer an admin wants while setting the bucket up.
    """
    if isinstance(storage, LocalStorage):
        return _check_folder(storage, time_limit)
    if isinstance(storage, S3Storage):
        return _S3Check(storage, time_limit).run()
    raise TypeError(f"no check for {type(storage).__name__}")


def all_passed(results: list[CheckResult]) -> bool:
    return bool(results) and all(r.ok for r in results)


def summary(results: list[CheckResult]) -> str:
    """The failed calls and their codes, for the audit log."""
    return "; ".join(f"{r.name}: {r.code}" for r in results if r.ran and not r.ok) or "every call passed"


class _Steps:
    """Runs checks in order, each after the ones it needs; a fatal failure stops the rest."""

    def __init__(self, time_limit: float, translate: Callable[[Exception], CheckFailed]):
        self.results: list[CheckResult] = []
        self.stopped = ""  # why the remaining checks are not run
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.translate = translate

    def passed(self, name: str) -> bool:
        return any(r.name == name and r.ok for r in self.results)

    def run(self, name: str, check: Callable[[], str | None], needs: tuple[str, ...] = ()) -> bool:
        reason = self.stopped or next((f"needs {n}, which did not pass" for n in needs if not self.passed(n)), "")
        if not reason and time.monotonic() > self.deadline:
            reason = f"the check ran out of time ({self.time_limit:.0f} s); the store answers slowly"
        if reason:
            self.results.append(CheckResult(name, False, NOT_RUN, reason))
            return False
        try:
            note = check()
        except Exception as exc:  # noqa: BLE001 - a check reports every failure; it never crashes the page
            failure = exc if isinstance(exc, CheckFailed) else self.translate(exc)
            self.results.append(CheckResult(name, False, failure.code, failure.message))
            if failure.fatal:
                self.stopped = f"{name} failed ({failure.code})"
            return False
        self.results.append(CheckResult(name, True, "", note or ""))
        return True


# --------------------------------------------------------------------------- S3

# Errors after which no later call can succeed: reporting each later call would only mislead.
FATAL_CODES = {
    "NoSuchBucket", "InvalidBucketName", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoCredentials",
    "RequestTimeTooSkewed", "AuthorizationHeaderMalformed", "PermanentRedirect", "301", "InvalidRegion",
    "IllegalLocationConstraintException", "Unreachable", "Timeout", "ExpiredToken", "InvalidToken",
    "AccountProblem", "AllAccessDisabled",
}  # fmt: skip
REGION_CODES = {"AuthorizationHeaderMalformed", "PermanentRedirect", "301", "InvalidRegion",
                "IllegalLocationConstraintException"}  # fmt: skip
# What an IAM policy must allow for each call (several calls share one permission).
PERMISSION = {
    "HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "HeadObject": "s3:GetObject", "GetObject": "s3:GetObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads", "DeleteObject": "s3:DeleteObject",
}  # fmt: skip
HEAD_BUCKET, PUT, LIST = "s3:ListBucket (HeadBucket)", "s3:PutObject", "s3:ListBucket (ListObjectsV2)"


def _quick_client(client):
    """The storage's client again (same endpoint, keys, addressing), with short timeouts and one retry.

    The storage's own client waits up to 60 s a read and retries 5 times, which suits a backup
    and not a page that waits for the answer.
    """
    import boto3
    from botocore.config import Config

    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if credentials is None:  # no keys found, or a botocore without this attribute: the usual chain
        keys = {}
    else:
        frozen = credentials.get_frozen_credentials()
        keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
                "aws_session_token": frozen.token}  # fmt: skip
    endpoint = client.meta.endpoint_url
    if _is_aws(endpoint):
        endpoint = None  # AWS itself: let botocore pick the bucket's host as the storage's client does
    config = client.meta.config.merge(
        Config(connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 2, "mode": "standard"})
    )
    return boto3.client("s3", region_name=client.meta.region_name, endpoint_url=endpoint, config=config, **keys)


def _is_aws(endpoint_url: str) -> bool:
    return (urlsplit(endpoint_url).hostname or "").endswith(".amazonaws.com")


class _S3Check:
    def __init__(self, storage: S3Storage, time_limit: float):
        self.storage = storage
        self.bucket = storage.bucket
        self.region = storage.region
        self.client = _quick_client(storage.client)
        self.endpoint = self.client.meta.endpoint_url
        self.steps = _Steps(time_limit, self.translate)
        self.key = f"{storage.prefix}{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
        self.body = os.urandom(64 * 1024)
        self.written: set[str] = set()  # probe keys that may exist and must be deleted
        self.open_uploads: dict[str, str] = {}  # upload id -> key, to abort at the end
        self.last_request_time: datetime | None = None
        self.client.meta.events.register("before-send.s3", self._remember_request_time)

    def _remember_request_time(self, request, **_) -> None:
        """The signing time of the last request: with the server's Date, it measures a clock skew."""
        stamp = request.headers.get("X-Amz-Date")
        if stamp:
            value = stamp.decode() if isinstance(stamp, bytes) else stamp
            self.last_request_time = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    def run(self) -> list[CheckResult]:
        run, key = self.steps.run, self.key
        try:
            run(HEAD_BUCKET, self.head_bucket)
            run(PUT, self.put)
            run("s3:GetObject (HeadObject)", self.head, needs=(PUT,))
            run("s3:GetObject (range)", self.ranged_get, needs=(PUT,))
            run(LIST, self.list_probe)
            run("s3:PutObject (multipart upload, 2 parts)", self.multipart)
            run("s3:AbortMultipartUpload", self.aborted_multipart)
            run("s3:ListBucketMultipartUploads", self.list_uploads)
            run("s3:DeleteObject", self.delete)
        finally:
            leftovers = self.clean_up()
        if leftovers:
            self.steps.results.append(CheckResult(
                "clean-up", False, "LeftBehind",
                f"could not remove {', '.join(leftovers)} from s3://{self.bucket}; delete by hand (key {key!r})",
            ))  # fmt: skip
        return self.steps.results

    # ---- the checks, in order

    def head_bucket(self) -> str | None:
        response = self.client.head_bucket(Bucket=self.bucket)
        theirs = response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
        if theirs and theirs != self.region:
            if _is_aws(self.endpoint):  # botocore follows the redirect, but download links would be signed wrong
                raise CheckFailed("RegionMismatch", self.region_message(theirs), fatal=False)
            return f"the store reports region {theirs}; AWS_REGION is {self.region}, which it accepts"
        return None

    def put(self) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self.body)
        self.written.add(self.key)

    def head(self) -> None:
        size = self.client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"]
        if size != len(self.body):
            raise CheckFailed("WrongSize", f"HeadObject says {size} bytes; {len(self.body)} were written")

    def ranged_get(self) -> None:
        got = self.client.get_object(Bucket=self.bucket, Key=self.key, Range="bytes=1000-1999")["Body"].read()
        if got != self.body[1000:2000]:
            raise CheckFailed("WrongRange", f"GetObject with Range bytes=1000-1999 returned {len(got)} other bytes")

    def list_probe(self) -> None:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key, MaxKeys=10).get("Contents", [])
        if self.steps.passed(PUT) and self.key not in {item["Key"] for item in listed}:
            raise CheckFailed("NotListed", "ListObjectsV2 with the prefix does not list the object just written")

    def start_upload(self, key: str) -> str:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        self.open_uploads[upload_id] = key
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict:
        response = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                           Body=body)  # fmt: skip
        return {"PartNumber": number, "ETag": response["ETag"]}

    def multipart(self) -> None:
        """Two parts, completed: the first exactly 5 MiB (S3's minimum), the last shorter, as a backup's are."""
        key = self.key + ".multipart"
        upload_id = self.start_upload(key)
        parts = [self.upload_part(key, upload_id, 1, bytes(FIRST_PART)), self.upload_part(key, upload_id, 2, self.body)]
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})  # fmt: skip
        del self.open_uploads[upload_id]
        self.written.add(key)

    def aborted_multipart(self) -> None:
        """What a failed backup does: start an upload, send a part, abort it."""
        key = self.key + ".aborted"
        upload_id = self.start_upload(key)
        self.upload_part(key, upload_id, 1, self.body)
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        del self.open_uploads[upload_id]

    def list_uploads(self) -> None:
        """What the sweep of stale uploads does; the upload just aborted must not be listed."""
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.key).get("Uploads", [])
        if self.steps.passed("s3:AbortMultipartUpload") and any(u["Key"] == self.key + ".aborted" for u in uploads):
            raise CheckFailed("UploadLeft", "AbortMultipartUpload succeeded, but the upload is still listed")

    def delete(self) -> None:
        for key in sorted(self.written) or [self.key]:  # deleting a missing key still proves the permission
            self.client.delete_object(Bucket=self.bucket, Key=key)
            self.written.discard(key)
        if self.steps.passed(PUT) and self.exists(self.key):
            self.written.add(self.key)
            raise CheckFailed("NotDeleted", "DeleteObject succeeded, but the object is still there")

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def clean_up(self) -> list[str]:
        """Abort the probe uploads and delete the probe objects left by a failed step; say what remains."""
        left = []
        for upload_id, key in list(self.open_uploads.items()):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - reported below, by name
                left.append(f"an unfinished upload to {key}")
        for key in sorted(self.written):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
                if self.exists(key):
                    left.append(key)
            except Exception:  # noqa: BLE001 - reported below, by name
                left.append(key)
        return left

    # ---- errors in words

    def region_message(self, theirs: str | None) -> str:
        if not theirs:
            return f"the store refuses region {self.region} (AWS_REGION) and does not say which region it wants"
        return f"the bucket is in region {theirs}, but AWS_REGION is {self.region}; set AWS_REGION={theirs}"

    def translate(self, exc: Exception) -> CheckFailed:
        """The failure in words: the call, the server's code, and what to change (never a secret)."""
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = urlsplit(self.endpoint)
        endpoint = f"{where.scheme}://{where.hostname}" + (f":{where.port}" if where.port else "")  # no user:pass
        if isinstance(exc, NoCredentialsError):
            return CheckFailed("NoCredentials", "no AWS credentials found: set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY", fatal=True)  # fmt: skip
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return CheckFailed("Timeout", f"{endpoint} did not answer in time", fatal=True)
        if isinstance(exc, EndpointConnectionError):
            return CheckFailed("Unreachable", f"cannot reach {endpoint} (S3_ENDPOINT_URL)", fatal=True)
        if not isinstance(exc, ClientError):
            return CheckFailed(type(exc).__name__, str(exc)[:300])
        error = exc.response.get("Error", {})
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        code, said = error.get("Code") or "Error", (error.get("Message") or "")[:300]
        call = exc.operation_name
        if code in ("404", "NoSuchBucket") and (code == "NoSuchBucket" or call == "HeadBucket"):
            return CheckFailed("NoSuchBucket", f"bucket {self.bucket!r} does not exist at {endpoint} (region "
                               f"{self.region}); create it, or fix BACKUP_STORAGE_URL", fatal=True)  # fmt: skip
        if code in REGION_CODES or (code == "400" and headers.get("x-amz-bucket-region")):
            region = error.get("Region") or headers.get("x-amz-bucket-region")
            return CheckFailed(code, f"{call}: {self.region_message(region)}", fatal=True)
        if code == "RequestTimeTooSkewed":
            return CheckFailed(code, f"{call}: {self.skew_message(error, headers)}", fatal=True)
        if code == "InvalidAccessKeyId":
            return CheckFailed(code, f"{call}: the store does not know this access key (AWS_ACCESS_KEY_ID)", fatal=True)
        if code == "SignatureDoesNotMatch":
            return CheckFailed(code, f"{call}: the secret key (AWS_SECRET_ACCESS_KEY) does not match the access key",
                               fatal=True)  # fmt: skip
        if code in ("AccessDenied", "403"):
            if code == "403":  # a HEAD answer has no body to say why
                return CheckFailed(code, f"{call}: Forbidden, without a reason: the keys are wrong or may not "
                                   "list the bucket (the next checks tell which)")  # fmt: skip
            permission = PERMISSION.get(call, f"the permission for {call}")
            resource = f"arn:aws:s3:::{self.bucket}" + ("" if permission.startswith("s3:List") else
                                                        f"/{self.storage.prefix}*")  # fmt: skip
            return CheckFailed(code, f"{call}: {said.rstrip('.')}; the keys need {permission} on {resource}")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", code)
        return CheckFailed(code, f"{call}: {said or f'HTTP {status}'}", fatal=code in FATAL_CODES)

    def skew_message(self, error: dict, headers: dict) -> str:
        """How far this machine's clock is from the store's, in seconds.

        AWS puts RequestTime and ServerTime in the error; other stores only send their Date
        header, which is compared with the time this request was signed at.
        """
        request_time = _parse_time(error.get("RequestTime")) or self.last_request_time
        server_time = _parse_time(error.get("ServerTime")) or _parse_time(headers.get("date"))
        if not (request_time and server_time):
            return "this machine's clock is too far from the store's (more than 15 minutes); fix it (NTP)"
        seconds = round((request_time - server_time).total_seconds())
        side = "ahead of" if seconds > 0 else "behind"
        return f"this machine's clock is {abs(seconds)} s {side} the store's; S3 allows 15 minutes: fix it (NTP)"


def _parse_time(value: str | None) -> datetime | None:
    """AWS's `20250101T120000Z` and `2025-01-01T12:15:00Z`, or an HTTP Date header."""
    if not value:
        return None
    for pattern in ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- local folder


def _os_failure(exc: Exception) -> CheckFailed:
    if isinstance(exc, OSError):
        code = errno.errorcode.get(exc.errno or 0, "OSError")
        return CheckFailed(code, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    return CheckFailed(type(exc).__name__, str(exc)[:300])


def _check_folder(storage: LocalStorage, time_limit: float) -> list[CheckResult]:
    """The same questions for a folder: can it be created, written, renamed into place, read, listed, emptied; room?"""
    folder = storage.folder
    probe = folder / f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
    partial = probe.with_name(probe.name + ".partial")
    body = os.urandom(64 * 1024)
    steps = _Steps(time_limit, _os_failure)

    def create() -> None:
        try:
            folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)  # as the store makes it: owner only
        except OSError as exc:
            failure = _os_failure(exc)
            failure.fatal = True  # nothing else can work without the folder
            raise failure from None

    def write() -> None:
        with open(partial, "xb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())

    def rename() -> None:
        os.replace(partial, probe)  # how a finished backup appears under its name

    def read() -> None:
        with open(probe, "rb") as fh:
            fh.seek(1000)
            if fh.read(1000) != body[1000:2000]:
                raise CheckFailed("WrongRange", f"{probe}: a read at offset 1000 returned other bytes")

    def listed() -> None:
        if probe.name not in {entry.name for entry in os.scandir(folder)}:
            raise CheckFailed("NotListed", f"{probe.name} is not listed in {folder}")

    def delete() -> None:
        probe.unlink()
        if probe.exists():
            raise CheckFailed("NotDeleted", f"{probe} is still there after unlink")

    def free_space() -> str:
        free = shutil.disk_usage(folder).free
        largest = max((o.size for o in storage.list_objects()), default=0)
        needed = max(MIN_FREE_BYTES, largest)
        said = f"{free:,} bytes free"
        if free < needed:
            why = f"the largest backup here is {largest:,} bytes" if largest > MIN_FREE_BYTES else "at least 1 GiB"
            raise CheckFailed("LowSpace", f"{folder}: {said}; the next backup needs about {why}")
        return said

    try:
        steps.run("create folder (mkdir)", create)
        steps.run("write (open, write, fsync)", write)
        steps.run("atomic rename (os.replace)", rename, needs=("write (open, write, fsync)",))
        steps.run("read (seek, read)", read, needs=("atomic rename (os.replace)",))
        steps.run("list (scandir)", listed, needs=("atomic rename (os.replace)",))
        steps.run("delete (unlink)", delete, needs=("atomic rename (os.replace)",))
        steps.run("free space", free_space)
    finally:
        left = [str(p) for p in (partial, probe) if _remove(p)]
    if left:
        steps.results.append(CheckResult("clean-up", False, "LeftBehind", f"could not remove {', '.join(left)}"))
    return steps.results


def _remove(path: Path) -> bool:
    """Remove a probe file; True when it is still there afterwards."""
    if not os.path.lexists(path):  # also when the folder itself could not be made
        return False
    try:
        path.unlink()
    except OSError:
        return True
    return False
