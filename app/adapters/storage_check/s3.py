"""The storage check of an S3 bucket: each call a backup, a listing or a sweep makes, on a probe."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from app.adapters.storage import MiB, Patience, S3Storage
from app.adapters.storage_check.steps import PROBE_PREFIX, CheckFailed, CheckResult, Steps

FIRST_PART = 5 * MiB  # S3's minimum for a part that is not the last (and every other part must match it)
# The storage's own client waits up to 60 s a read and tries 6 times, which suits a backup and
# not a page that waits for the answer.
QUICK = Patience(connect_seconds=3, read_seconds=10, attempts=2)

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


def _is_aws(endpoint_url: str) -> bool:
    return (urlsplit(endpoint_url).hostname or "").endswith(".amazonaws.com")


class S3Check:
    def __init__(self, storage: S3Storage, time_limit: float):
        self.storage = storage
        self.bucket = storage.bucket
        self.region = storage.region
        self.client = storage.with_patience(QUICK).client  # same endpoint, keys and addressing
        self.endpoint = self.client.meta.endpoint_url
        self.steps = Steps(time_limit, self.translate)
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

