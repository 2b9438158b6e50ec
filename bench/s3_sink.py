"""A local S3-compatible sink for the scale benchmark: multipart uploads checked part by part, bodies discarded.

    .venv/bin/python -m bench.s3_sink [--port 0] [--max-parts 10000] [--max-part-size 5368709120]

It prints `ready <url>` once it listens. It takes any bucket and any credentials (no signature is
checked) and stores no body: a terabyte goes through it without touching the disk (stdlib only). What it checks,
answering as S3 does (an XML error, status 400) when a rule is broken:

- UploadPart: the part number is 1 … --max-parts; the part is at most --max-part-size; every part
  but the highest-numbered has one size and the highest is no larger (Cloudflare R2's rule of equal
  parts; checked as parts arrive, whatever their order);
- CompleteMultipartUpload: the listed parts ascend, were all received, are at most --max-parts,
  equal but the last, at least 5 MiB but the last (S3's own minimum), within --max-part-size.

`GET /_sink/uploads` answers JSON: every upload's key, state, part size, part count, bytes
received, the object's size once complete, and the errors it answered. Bodies are read into one
1 MiB buffer per connection, so the sink costs little CPU beside the worker it measures. A body may
come with a Content-Length, chunked, or aws-chunked (botocore's streaming signatures or trailers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MiB = 1024 * 1024
S3_MIN_PART = 5 * MiB  # S3 refuses a smaller part that is not the last
READ_CHUNK = MiB
REPORT_PATH = "/_sink/uploads"  # no bucket name starts with "_"


@dataclass
class Limits:
    max_parts: int = 10_000
    max_part_size: int = 5 * 1024 * MiB


@dataclass
class MultipartUpload:
    bucket: str
    key: str
    upload_id: str
    initiated: datetime
    parts: dict[int, int] = field(default_factory=dict)  # part number → bytes
    bytes_received: int = 0  # every body, refused or repeated ones included
    state: str = "open"  # open, complete, aborted
    object_size: int | None = None
    listed_parts: int | None = None  # in CompleteMultipartUpload
    errors: list[str] = field(default_factory=list)
    first_byte: float | None = None  # time.time() of the first part's arrival, and of the completion
    completed: float | None = None

    def report(self) -> dict:
        sizes = [self.parts[n] for n in sorted(self.parts)]
        return {
            "bucket": self.bucket, "key": self.key, "upload_id": self.upload_id, "state": self.state,
            "part_size": sizes[0] if sizes else 0, "last_part_size": sizes[-1] if sizes else 0,
            "parts": len(sizes), "listed_parts": self.listed_parts, "bytes_received": self.bytes_received,
            "object_size": self.object_size, "errors": self.errors, "first_byte": self.first_byte,
            "completed": self.completed,
        }  # fmt: skip


class SinkError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Sink:
    """The uploads, the completed objects' sizes, and the rules; every method under one lock."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.lock = threading.Lock()
        self.uploads: dict[str, MultipartUpload] = {}
        self.objects: dict[tuple[str, str], tuple[int, datetime]] = {}  # (bucket, key) → (size, when)

    def create(self, bucket: str, key: str) -> str:
        upload_id = uuid.uuid4().hex
        with self.lock:
            self.uploads[upload_id] = MultipartUpload(bucket, key, upload_id, datetime.now(UTC))
        return upload_id

    def _upload(self, upload_id: str) -> MultipartUpload:
        upload = self.uploads.get(upload_id)
        if upload is None or upload.state != "open":
            raise SinkError("NoSuchUpload", "The specified multipart upload does not exist.", 404)
        return upload

    def _refuse(self, upload: MultipartUpload, code: str, message: str) -> SinkError:
        upload.errors.append(f"{code}: {message}")
        return SinkError(code, message)

    def part(self, upload_id: str, number: int, size: int) -> None:
        limits = self.limits
        with self.lock:
            upload = self._upload(upload_id)
            upload.bytes_received += size
            upload.first_byte = upload.first_byte or time.time()
            if not 1 <= number <= limits.max_parts:
                raise self._refuse(upload, "InvalidArgument",
                                   f"Part number must be an integer between 1 and {limits.max_parts}, inclusive "
                                   f"(got {number})")  # fmt: skip
            if size > limits.max_part_size:
                raise self._refuse(upload, "EntityTooLarge",
                                   f"Part {number} is {size} bytes, more than the {limits.max_part_size} allowed")
            upload.parts[number] = size
            problem = unequal(upload.parts)
            if problem:
                del upload.parts[number]
                raise self._refuse(upload, "InvalidPart", problem)

    def complete(self, upload_id: str, listed: list[int]) -> int:
        limits = self.limits
        with self.lock:
            upload = self._upload(upload_id)
            upload.listed_parts = len(listed)
            if not listed:
                raise self._refuse(upload, "MalformedXML", "The XML lists no part.")
            if listed != sorted(set(listed)):
                raise self._refuse(upload, "InvalidPartOrder", "The list of parts was not in ascending order.")
            if len(listed) > limits.max_parts or listed[-1] > limits.max_parts:
                raise self._refuse(upload, "InvalidArgument", f"{len(listed)} parts, more than {limits.max_parts}")
            missing = [n for n in listed if n not in upload.parts]
            if missing:
                raise self._refuse(upload, "InvalidPart", f"Part {missing[0]} was not uploaded.")
            sizes = {n: upload.parts[n] for n in listed}
            problem = unequal(sizes)
            if problem:
                raise self._refuse(upload, "InvalidPart", problem)
            small = [n for n in listed[:-1] if sizes[n] < S3_MIN_PART]
            if small:
                raise self._refuse(upload, "EntityTooSmall",
                                   f"Part {small[0]} is {sizes[small[0]]} bytes, under the {S3_MIN_PART} minimum")
            upload.object_size = sum(sizes.values())
            upload.state, upload.completed = "complete", time.time()
            self.objects[(upload.bucket, upload.key)] = (upload.object_size, datetime.now(UTC))
            return upload.object_size

    def abort(self, upload_id: str) -> None:
        with self.lock:
            self._upload(upload_id).state = "aborted"

    def open_uploads(self, bucket: str) -> list[MultipartUpload]:
        with self.lock:
            return [u for u in self.uploads.values() if u.bucket == bucket and u.state == "open"]

    def report(self) -> dict:
        with self.lock:
            return {"limits": vars(self.limits), "uploads": [u.report() for u in self.uploads.values()]}


def unequal(parts: dict[int, int]) -> str:
    """Why these parts break the rule of equal parts ("" when they keep it): every part but the
    highest-numbered has one size, and the highest is no larger."""
    if len(parts) < 2:
        return ""
    last = max(parts)
    sizes = {size for number, size in parts.items() if number != last}
    if len(sizes) > 1:
        return f"All non-trailing parts must have the same length (got sizes {sorted(sizes)})."
    if parts[last] > next(iter(sizes)):
        return f"Part {last} ({parts[last]} bytes) is larger than the parts before it ({next(iter(sizes))} bytes)."
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` answered before the body is sent
    server_version = "pgconsole-scale-sink"
    timeout = 600
    sink: Sink  # set on the class by `serve`

    def setup(self) -> None:
        super().setup()
        self.scratch = memoryview(bytearray(READ_CHUNK))  # one per connection, reused for every body

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    # ------------------------------------------------------------------ bodies

    def discard(self, n: int) -> None:
        while n:
            got = self.rfile.readinto(self.scratch[: min(n, READ_CHUNK)])
            if not got:
                raise ConnectionError("the client closed the connection in a body")
            n -= got

    def discard_chunks(self) -> int:
        """Read `<hex>[;ext]CRLF<data>CRLF … 0CRLF<trailers>CRLF` (HTTP chunked, or aws-chunked); the data's length."""
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers (e.g. x-amz-checksum-crc32)
                return total
            self.discard(size)
            self.rfile.readline(16)
            total += size

    def body_length(self) -> int:
        """Read the body and drop it; the payload's length (aws-chunked framing and signatures not counted)."""
        streaming = (
            "aws-chunked" in self.headers.get("Content-Encoding", "").lower()
            or self.headers.get("x-amz-content-sha256", "").upper().startswith("STREAMING-")
        )
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or streaming:
            return self.discard_chunks()  # aws-chunked inside a Content-Length ends with its own 0-chunk
        length = int(self.headers.get("Content-Length") or 0)
        self.discard(length)
        return length

    def small_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # ------------------------------------------------------------------ answers

    def answer(self, status: int, body: bytes = b"", content_type: str = "application/xml",
               headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        headers = {"Content-Length": str(len(body)), **(headers or {})}  # a HEAD says the object's length
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16])
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def xml(self, root: str, inner: str) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' \
               f"{inner}</{root}>"  # fmt: skip
        self.answer(200, body.encode())

    def error(self, exc: SinkError) -> None:
        body = f"<Error><Code>{exc.code}</Code><Message>{xml_escape(exc.message)}</Message></Error>"
        self.answer(exc.status, ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode())

    # ------------------------------------------------------------------ routing

    def route(self) -> tuple[str, str, dict[str, str]]:
        url = urlsplit(self.path)
        bucket, _, key = unquote(url.path).lstrip("/").partition("/")
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        return bucket, key, query

    def handle_one(self, method) -> None:
        try:
            method(*self.route())
        except SinkError as exc:
            self.error(exc)

    def do_HEAD(self) -> None:
        self.handle_one(self.head)

    def do_GET(self) -> None:
        self.handle_one(self.get)

    def do_PUT(self) -> None:
        self.handle_one(self.put)

    def do_POST(self) -> None:
        self.handle_one(self.post)

    def do_DELETE(self) -> None:
        self.handle_one(self.delete)

    def head(self, bucket: str, key: str, query: dict[str, str]) -> None:
        if not key:
            return self.answer(200)  # HeadBucket: any bucket exists
        found = self.sink.objects.get((bucket, key))
        if found is None:
            raise SinkError("NoSuchKey", "The specified key does not exist.", 404)
        self.answer(200, headers={"Content-Length": str(found[0]), "Last-Modified": http_date(found[1]),
                                  "ETag": '"0"'})  # fmt: skip

    def get(self, bucket: str, key: str, query: dict[str, str]) -> None:
        if self.path == REPORT_PATH:
            return self.answer(200, json.dumps(self.sink.report()).encode(), "application/json")
        if key:
            raise SinkError("NotImplemented", "The sink keeps no object's body.", 501)
        if "uploads" in query:
            uploads = "".join(
                f"<Upload><Key>{xml_escape(u.key)}</Key><UploadId>{u.upload_id}</UploadId>"
                f"<Initiated>{u.initiated.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</Initiated></Upload>"
                for u in self.sink.open_uploads(bucket)
            )
            return self.xml("ListMultipartUploadsResult",
                            f"<Bucket>{bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
                            f"<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>{uploads}")  # fmt: skip
        prefix = query.get("prefix", "")
        with self.sink.lock:
            listed = sorted((k, v) for (b, k), v in self.sink.objects.items() if b == bucket and k.startswith(prefix))
        contents = "".join(
            f"<Contents><Key>{xml_escape(k)}</Key><LastModified>{when.strftime('%Y-%m-%dT%H:%M:%S.000Z')}"
            f"</LastModified><ETag>\"0\"</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            for k, (size, when) in listed
        )
        self.xml("ListBucketResult", f"<Name>{bucket}</Name><Prefix>{xml_escape(prefix)}</Prefix>"
                                     f"<KeyCount>{len(listed)}</KeyCount><MaxKeys>1000</MaxKeys>"
                                     f"<IsTruncated>false</IsTruncated>{contents}")  # fmt: skip

    def put(self, bucket: str, key: str, query: dict[str, str]) -> None:
        size = self.body_length()
        if not key:
            return self.answer(200)  # CreateBucket
        if "uploadId" in query:
            number = int(query.get("partNumber") or 0)
            self.sink.part(query["uploadId"], number, size)
            return self.answer(200, headers={"ETag": f'"{uuid.uuid4().hex}"'})
        with self.sink.lock:  # PutObject: the size is kept, the body is not
            self.sink.objects[(bucket, key)] = (size, datetime.now(UTC))
        self.answer(200, headers={"ETag": f'"{uuid.uuid4().hex}"'})

    def post(self, bucket: str, key: str, query: dict[str, str]) -> None:
        body = self.small_body()
        if "uploads" in query:
            upload_id = self.sink.create(bucket, key)
            return self.xml("InitiateMultipartUploadResult", f"<Bucket>{bucket}</Bucket><Key>{xml_escape(key)}</Key>"
                                                             f"<UploadId>{upload_id}</UploadId>")  # fmt: skip
        if "uploadId" in query:
            listed = [int(n) for n in re.findall(rb"<PartNumber>\s*(\d+)\s*</PartNumber>", body)]
            self.sink.complete(query["uploadId"], listed)
            etag = f'"{uuid.uuid4().hex}-{len(listed)}"'
            return self.xml("CompleteMultipartUploadResult",
                            f"<Location>/{bucket}/{xml_escape(key)}</Location><Bucket>{bucket}</Bucket>"
                            f"<Key>{xml_escape(key)}</Key><ETag>{etag}</ETag>")  # fmt: skip
        raise SinkError("NotImplemented", f"POST {self.path} is not something the sink does.", 501)

    def delete(self, bucket: str, key: str, query: dict[str, str]) -> None:
        self.small_body()
        if "uploadId" in query:
            self.sink.abort(query["uploadId"])
        elif key:
            with self.sink.lock:
                self.sink.objects.pop((bucket, key), None)
        self.answer(204)


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def http_date(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S GMT")


def serve(port: int, limits: Limits) -> ThreadingHTTPServer:
    handler = type("SinkHandler", (Handler,), {"sink": Sink(limits)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


# --------------------------------------------------------------------------- for the benchmark


@dataclass(frozen=True)
class RunningSink:
    url: str
    pid: int

    def report(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + REPORT_PATH, timeout=30) as answer:  # noqa: S310 - a local server
            return json.loads(answer.read())

    def upload_of(self, key: str) -> dict | None:
        """The latest upload of `key` the sink saw (None if none)."""
        found = [u for u in self.report()["uploads"] if u["key"] == key]
        return found[-1] if found else None


@contextlib.contextmanager
def running_sink(limits: Limits) -> Iterator[RunningSink]:
    """The sink in a process of its own (its CPU apart from the worker's), stopped at the end."""
    from tests.support import ROOT
    from tests.support.processes import child_env, stop_group

    argv = [sys.executable, "-m", "bench.s3_sink", "--max-parts", str(limits.max_parts),
            "--max-part-size", str(limits.max_part_size)]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=child_env({}), stdout=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            raise RuntimeError(f"the S3 sink did not start (exit {proc.poll()})")
        yield RunningSink(line[1], proc.pid)
    finally:
        stop_group(proc, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--max-parts", type=int, default=Limits.max_parts)
    parser.add_argument("--max-part-size", type=int, default=Limits.max_part_size, help="bytes")
    args = parser.parse_args()
    limits = Limits(args.max_parts, args.max_part_size)
    server = serve(args.port, limits)
    print(f"ready http://127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
