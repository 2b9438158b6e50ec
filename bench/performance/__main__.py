"""`python -m bench.performance`: the console end to end against the shortest scripts doing the same work.

The method is in bench/performance/__init__.py and bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import uuid
from datetime import datetime

from bench import common, performance
from bench.common import DEFAULT_REDIS_URL, database_size, ensure_database, log, make_workdir, write_report
from bench.performance.children import download_child, sampler_child, upload_child
from bench.performance.contenders import Size, row_counts
from bench.performance.report import report
from bench.performance.rounds import run_server
from tests.support import ROOT

common.LOG["prefix"] = "perf"


def main() -> int:
    summary = performance.__doc__.split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.performance", description=summary)
    parser.add_argument("--servers", default="seaweedfs,moto", help="seaweedfs, moto or both (default both)")
    parser.add_argument("--sizes", default="500,1000", help="bench database sizes, MiB (default 500,1000)")
    parser.add_argument("--moto-sizes", default="", help="moto's sizes when fewer than --sizes (e.g. 500)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every contender (default 5)")
    parser.add_argument("--fixed-runs", type=int, default=5, help="runs of the empty-database backup (default 5)")
    parser.add_argument("--sample-ms", type=int, default=50, help="PSS sampling interval; 0 skips the memory runs")
    parser.add_argument("--quiet", type=float, default=0.25, help="wait until the machine is under this busy")
    parser.add_argument("--quiet-wait", type=float, default=30, help="… but at most this many seconds")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "performance.md"))
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    for mode in ("upload", "download", "sampler"):
        parser.add_argument(f"--{mode}-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for mode, run in (("upload", upload_child), ("download", download_child), ("sampler", sampler_child)):
        if getattr(args, f"{mode}_child"):
            run(json.loads(getattr(args, f"{mode}_child")))
            return 0
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if set(servers) - {"seaweedfs", "moto"} or not servers:
        parser.error("--servers takes seaweedfs and/or moto")
    if args.rounds < 1 or args.fixed_runs < 1:
        parser.error("--rounds and --fixed-runs must be at least 1")
    args.failures = []
    args.passkey = uuid.uuid4().hex  # the restore passkey of this run's console, in its environment only
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    started = datetime.now().astimezone()
    workdir = make_workdir("pgconsole-perf-")
    results = []
    try:
        sizes = []
        for mb in (int(s) for s in args.sizes.split(",")):
            source = ensure_database(mb)
            sizes.append(Size(mb, source, database_size(source), row_counts(source),
                              f"pgconsole_perf_restore_{mb}"))  # fmt: skip
        for kind in servers:
            try:
                results.append(run_server(kind, args, sizes, workdir))
            except Exception as exc:  # the other server's figures are still worth a report
                if not results and kind == servers[-1]:
                    raise
                log(f"{kind} failed: {exc!r}")
                args.failures.append(f"{kind}: {exc!r}"[:300])
            if results:  # each server's figures as soon as they exist
                write_report(report(results, args, started), args.out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        log("cleaned up (buckets, Redis keys, processes, scratch databases, temp folder); the bench databases "
            "are kept for the next run")  # fmt: skip
    return 0 if results and not args.failures else 1



if __name__ == "__main__":
    sys.exit(main())
