"""The web worker's memory while a dump is uploaded through the API (issue 34: under 150 MB for 1 GB).

    .venv/bin/python -m bench.upload_memory [--size 1G] [--sample-ms 100]

A real gunicorn (`wsgi:app`, one worker) on a fresh console store, an admin and an API token made with the
console's CLI, and the store an S3-compatible sink (bench/s3_sink.py: S3's part limits checked, bodies
discarded). The body is `PGDMP` and then a random 1 MiB block repeated up to --size bytes, sent with its
Content-Length by http.client in 1 MiB writes: `PUT /api/setting/uploads/bench.dump`, as
`curl --upload-file` does. No worker runs, so the check job the upload enqueues stays queued (its Redis
namespace is purged at the end): what is measured is the web process alone.

Reported: the web worker's peak RSS (VmHWM, from /proc/<pid>/status at the end) and its peak PSS (sampled
every --sample-ms by bench.scale's PssSampler), both before and after the upload, the parts the sink
received, and throughput. Written to bench/results/upload_memory.json. MB = 2^20 bytes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import redis

from bench import common
from bench.common import MiB, log, make_workdir, purge_namespace
from bench.s3_sink import running_sink
from bench.scale import RESULTS, S3_LIMITS, PssSampler, parse_size, sink_env, status_kib
from tests.support.processes import Processes, children_of

common.LOG["prefix"] = "upload"
RSS_TARGET_MB = 150


def archive_body(size: int) -> Iterator[bytes]:
    """`size` bytes that begin as a custom-format archive does; a random block repeated (nearly free to make)."""
    block = bytearray(os.urandom(MiB))
    block[:5] = b"PGDMP"
    first = bytes(block)
    block[:5] = os.urandom(5)
    rest = bytes(block)
    sent = 0
    while sent < size:
        chunk = (first if sent == 0 else rest)[: size - sent]
        sent += len(chunk)
        yield chunk


def put_upload(base: str, token: str, size: int) -> tuple[int, dict, float]:
    """PUT the body with its Content-Length; the status, the answer and the wall seconds."""
    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=600)
    started = time.monotonic()
    conn.putrequest("PUT", "/api/setting/uploads/bench.dump")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    for chunk in archive_body(size):
        conn.send(chunk)
    response = conn.getresponse()
    answer = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, answer, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--sample-ms", type=int, default=100)
    args = parser.parse_args()
    workdir = make_workdir("pgupload-", "instance")
    processes = Processes(workdir)
    with running_sink(S3_LIMITS) as sink:
        env = {**sink_env(workdir, sink, S3_LIMITS), "REQUIRE_2FA": "none", "REDIS_URL": common.DEFAULT_REDIS_URL}
        try:
            processes.flask(env, "db", "upgrade")
            processes.flask(env, "users", "create", "bench", "--role", "admin", "--password-stdin",
                            stdin=os.urandom(16).hex())  # fmt: skip
            token = processes.flask(env, "tokens", "create", "bench").strip().splitlines()[-1]
            base = processes.web(env, "--timeout", "900", workers=1)
            worker = children_of(processes.named["web"].pid)[0]
            before_rss = status_kib("VmHWM", worker)
            sampler = PssSampler(worker, args.sample_ms / 1000)
            sampler.start()
            log(f"uploading {args.size / MiB:,.0f} MiB to {base} (web worker {worker})")
            status, answer, seconds = put_upload(base, token, args.size)
            sampler.stop()
            peak_rss = status_kib("VmHWM", worker)
            uploads = [{k: u.get(k) for k in ("key", "state", "part_size", "parts", "object_size", "errors")}
                       for u in sink.report()["uploads"]]  # fmt: skip
        finally:
            processes.stop_all()
            purge_namespace(redis.Redis.from_url(common.DEFAULT_REDIS_URL), env["REDIS_NAMESPACE"])
    row = {
        "bytes": args.size, "status": status, "answer": answer, "seconds": round(seconds, 1),
        "mb_per_second": round(args.size / MiB / seconds, 1), "peak_rss_mb": round(peak_rss / 1024, 1),
        "rss_before_mb": round(before_rss / 1024, 1), "peak_pss_mb": round(sampler.peak_kib / 1024, 1),
        "pss_before_mb": round(sampler.first_kib / 1024, 1), "pss_samples": sampler.samples,
        "target_mb": RSS_TARGET_MB, "within_target": peak_rss / 1024 < RSS_TARGET_MB, "sink_uploads": uploads,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "upload_memory.json").write_text(json.dumps(row, indent=2) + "\n")
    log(f"status {status}; web worker peak RSS {row['peak_rss_mb']} MB (before {row['rss_before_mb']} MB), peak PSS "
        f"{row['peak_pss_mb']} MB; {row['mb_per_second']} MB/s; target < {RSS_TARGET_MB} MB: "
        f"{'met' if row['within_target'] else 'NOT met'}")  # fmt: skip
    return 0 if status == 201 and row["within_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
