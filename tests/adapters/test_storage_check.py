"""Check storage (`flask --app wsgi storage check` and the button on /settings) on real stores.

The S3 checks run against moto, SeaweedFS and the JuiceFS gateway; the folder checks against a
real folder, one that root cannot write (`chattr +i`, a regular file as parent) and a tiny tmpfs.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from datetime import timedelta

import pytest

from tests.helpers import signed_in
from tests.support.s3_servers import create_bucket, remove_bucket

S3_CHECKS = [
    "s3:ListBucket (HeadBucket)", "s3:PutObject", "s3:GetObject (HeadObject)", "s3:GetObject (range)",
    "s3:ListBucket (ListObjectsV2)", "s3:PutObject (multipart upload, 2 parts)", "s3:AbortMultipartUpload",
    "s3:ListBucketMultipartUploads", "s3:DeleteObject",
]  # fmt: skip
FOLDER_CHECKS = [
    "create folder (mkdir)", "write (open, write, fsync)", "atomic rename (os.replace)", "read (seek, read)",
    "list (scandir)", "delete (unlink)", "free space",
]  # fmt: skip


def storage_check(app):
    """Run `flask --app wsgi storage check`; return (exit code, {check name: rest of its line})."""
    result = app.test_cli_runner().invoke(args=["storage", "check"])
    lines = result.output.splitlines()
    assert lines[0].startswith("Checking "), result.output
    return result.exit_code, dict(line.split(": ", 1) for line in lines[1:])


def leftovers(client, bucket: str) -> tuple[list[str], list[str]]:
    objects = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


@pytest.fixture(params=["seaweedfs", "juicefs"])
def signing_store(request, s3_endpoints):
    """A fresh bucket on a server that checks signatures and clocks (moto checks neither)."""
    endpoint = s3_endpoints[request.param]
    bucket = create_bucket(endpoint)
    yield endpoint, bucket
    remove_bucket(endpoint, bucket)


# --------------------------------------------------------------------------- S3


def test_every_call_passes_on_each_server_and_nothing_is_left(make_app, s3_store):
    client = s3_store.client()
    client.put_object(Bucket=s3_store.name, Key="backups/keep-me.dump", Body=b"a backup")
    app = make_app(**{**s3_store.env, "BACKUP_STORAGE_URL": f"s3://{s3_store.name}/backups"})
    code, lines = storage_check(app)
    assert code == 0, lines
    assert list(lines) == S3_CHECKS
    assert all(line.startswith("ok") for line in lines.values()), lines
    assert leftovers(client, s3_store.name) == (["backups/keep-me.dump"], [])


def test_a_missing_bucket_fails_the_first_call_and_the_rest_are_not_run(make_app, s3_store):
    app = make_app(**{**s3_store.env, "BACKUP_STORAGE_URL": "s3://pgct-no-such-bucket-4471"})
    code, lines = storage_check(app)
    assert code == 1
    first = lines.pop("s3:ListBucket (HeadBucket)")
    assert first.startswith("FAILED: NoSuchBucket, bucket 'pgct-no-such-bucket-4471' does not exist"), first
    assert lines and all(line.startswith("not run: s3:ListBucket (HeadBucket) failed") for line in lines.values())


def test_a_wrong_secret_key_fails_naming_the_call_and_leaves_nothing(make_app, signing_store):
    endpoint, bucket = signing_store
    wrong = "wrong-secret-key-that-must-not-show-7731"
    app = make_app(**{**endpoint.env(bucket), "AWS_SECRET_ACCESS_KEY": wrong})
    result = app.test_cli_runner().invoke(args=["storage", "check"])
    assert result.exit_code == 1
    assert "s3:PutObject: FAILED: SignatureDoesNotMatch, PutObject: the secret key" in result.output
    assert "s3:DeleteObject: not run: s3:PutObject failed (SignatureDoesNotMatch)" in result.output
    assert wrong not in result.output and "clean-up" not in result.output
    assert leftovers(endpoint.client(), bucket) == ([], [])


def test_keys_that_may_only_read_get_each_refused_call_named_and_the_rest_still_run(make_app, seaweedfs_bucket):
    """SeaweedFS's "reader" identity has Read and List only: each refusal is its own failure, not a stop."""
    access, secret = seaweedfs_bucket.endpoint.reader
    app = make_app(**{**seaweedfs_bucket.env, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret})
    code, lines = storage_check(app)
    assert code == 1
    bucket = seaweedfs_bucket.name
    need = f"the keys need s3:PutObject on arn:aws:s3:::{bucket}/*"
    assert lines["s3:PutObject"] == f"FAILED: AccessDenied, PutObject: Access Denied; {need}"
    assert lines["s3:DeleteObject"].startswith("FAILED: AccessDenied, DeleteObject: ")
    assert lines["s3:AbortMultipartUpload"].startswith("FAILED: AccessDenied, CreateMultipartUpload: ")
    assert lines["s3:GetObject (range)"] == "not run: needs s3:PutObject, which did not pass"
    assert lines["s3:ListBucket (ListObjectsV2)"] == "ok" and lines["s3:ListBucketMultipartUploads"] == "ok"
    assert leftovers(seaweedfs_bucket.client(), bucket) == ([], [])


def test_a_skewed_clock_is_reported_in_seconds(make_app, signing_store, monkeypatch):
    """This machine's clock 20 minutes slow (botocore signs with it); the server's answer is real."""
    import botocore.auth

    real = botocore.auth.get_current_datetime
    endpoint, bucket = signing_store
    app = make_app(**endpoint.env(bucket))
    with monkeypatch.context() as patch:  # undone before the bucket is removed
        patch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: real(*a, **k) - timedelta(minutes=20))
        code, lines = storage_check(app)
    assert code == 1
    assert re.fullmatch(r"FAILED: RequestTimeTooSkewed, PutObject: this machine's clock is 1(19\d|20\d) s behind "
                        r"the store's; .*", lines["s3:PutObject"]), lines  # fmt: skip
    assert lines["s3:DeleteObject"].startswith("not run")


# --------------------------------------------------------------------------- local folder


def test_a_local_folder_passes_and_keeps_nothing(make_app, tmp_path):
    folder = tmp_path / "new" / "backups"
    code, lines = storage_check(make_app(BACKUP_STORAGE_URL=folder.as_uri()))
    assert code == 0, lines
    assert list(lines) == FOLDER_CHECKS
    assert re.fullmatch(r"ok \([\d.]+ [KMGT]?B free\)", lines["free space"])
    assert list(folder.iterdir()) == []


@contextlib.contextmanager
def immutable(path):
    path.mkdir()
    subprocess.run(["chattr", "+i", str(path)], check=True)  # a real EPERM, even for root
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_folder_root_cannot_write_fails_naming_the_step(make_app, tmp_path):
    with immutable(tmp_path / "frozen") as frozen:
        code, lines = storage_check(make_app(BACKUP_STORAGE_URL=frozen.as_uri()))
        assert list(frozen.iterdir()) == []
    assert code == 1
    assert lines["create folder (mkdir)"] == "ok"
    assert lines["write (open, write, fsync)"].startswith("FAILED: EPERM, "), lines
    assert lines["atomic rename (os.replace)"].startswith("not run: needs write")
    assert lines["free space"].startswith("ok")  # still measured: the folder is there


def test_a_folder_that_cannot_be_created_stops_the_rest(make_app, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    code, lines = storage_check(make_app(BACKUP_STORAGE_URL=(tmp_path / "a-file" / "backups").as_uri()))
    assert code == 1
    assert lines["create folder (mkdir)"].startswith("FAILED: ENOTDIR, ")
    assert all(line.startswith("not run: create folder (mkdir) failed") for line in list(lines.values())[1:])


def test_a_nearly_full_disk_fails_the_free_space_check(make_app, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)  # a tiny disk
    try:
        code, lines = storage_check(make_app(BACKUP_STORAGE_URL=disk.as_uri()))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert code == 1
    assert re.fullmatch(r"FAILED: LowSpace, .*: [\d.]+ [KMGT]?B free; the next backup needs about at least 1 GiB",
                        lines["free space"])  # fmt: skip
    assert lines["delete (unlink)"] == "ok"


# --------------------------------------------------------------------------- the button on /settings


def test_the_settings_button_shows_each_check_to_admins_only(make_app, make_user, s3_server):
    app = make_app(**{**s3_server, "AWS_SECRET_ACCESS_KEY": "page-secret-that-must-not-show-5521"})  # moto takes any
    admin, auth = signed_in(app, make_user, "admin", "ada")
    assert 'value="Check storage"' in admin.get("/settings").get_data(as_text=True)
    assert admin.post("/settings/storage-check", data={}).status_code == 400  # no CSRF token
    page = admin.post("/settings/storage-check", data={"csrf_token": auth.csrf_token("/settings")})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Every call passed." in html
    rows = re.findall(r'<tr class="ok">\s*<td><code>([^<]+)</code></td>\s*<td>ok</td>', html)
    assert rows == S3_CHECKS
    assert "page-secret-that-must-not-show-5521" not in html
    for role, name in (("viewer", "vic"), ("operator", "olga")):
        other, other_auth = signed_in(app, make_user, role, name)
        token = other_auth.csrf_token("/")
        assert other.post("/settings/storage-check", data={"csrf_token": token}).status_code == 403
    from app.store.models import AuditEvent

    with app.app_context():
        event = AuditEvent.query.filter_by(action="storage-check").one()
    assert (event.outcome, event.username, event.detail) == ("ok", "ada", "every call passed")


def test_the_settings_button_names_the_failed_call(make_app, make_user, s3_server):
    app = make_app(**{**s3_server, "BACKUP_STORAGE_URL": "s3://pgct-no-such-bucket-4471"})
    admin, auth = signed_in(app, make_user, "admin", "ada")
    html = admin.post("/settings/storage-check", data={"csrf_token": auth.csrf_token("/settings")}).get_data(
        as_text=True
    )
    assert "Some calls failed." in html
    failed = r'<tr class="failed">\s*<td><code>s3:ListBucket \(HeadBucket\)</code></td>\s*<td><span class="mark'
    assert re.search(failed + r' danger-mark">FAILED</span></td>\s*<td>NoSuchBucket</td>', html)
    assert len(re.findall(r'<tr class="not-run">', html)) == len(S3_CHECKS) - 1
    from app.store.models import AuditEvent

    with app.app_context():
        event = AuditEvent.query.filter_by(action="storage-check").one()
    assert event.outcome == "failed" and event.detail == "s3:ListBucket (HeadBucket): NoSuchBucket"
