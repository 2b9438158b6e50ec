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

from app.adapters.storage import LocalStorage, S3Storage, Storage
from app.adapters.storage_check.folder import check_folder
from app.adapters.storage_check.s3 import S3Check
from app.adapters.storage_check.steps import NOT_RUN, TIME_LIMIT, CheckFailed, CheckResult

__all__ = ["NOT_RUN", "CheckFailed", "CheckResult", "all_passed", "check_storage", "summary"]


def check_storage(storage: Storage, time_limit: float = TIME_LIMIT) -> list[CheckResult]:
    """Every check for this store, in order; all passed when every result is ok.

    It runs synchronously (a page request waits for it): about ten calls, one of them a 5 MiB
    part, on a client of its own with short timeouts and one retry, and checks that would
    start after `time_limit` seconds are reported as not run, so a slow or unreachable store
    answers within gunicorn's 30 s instead of killing the request. A job would add a queue, a
    worker and a result page for an answer an admin wants while setting the bucket up.
    """
    if isinstance(storage, LocalStorage):
        return check_folder(storage, time_limit)
    if isinstance(storage, S3Storage):
        return S3Check(storage, time_limit).run()
    raise TypeError(f"no check for {type(storage).__name__}")


def all_passed(results: list[CheckResult]) -> bool:
    return bool(results) and all(r.ok for r in results)


def summary(results: list[CheckResult]) -> str:
    """The failed calls and their codes, for the audit log."""
    return "; ".join(f"{r.name}: {r.code}" for r in results if r.ran and not r.ok) or "every call passed"

