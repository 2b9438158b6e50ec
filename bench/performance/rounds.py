"""One S3 server's share of the benchmark: its console, the fixed cost of a job, then each size's rounds."""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import replace
from pathlib import Path

from bench import common
from bench.common import MiB, log
from bench.performance import CONTENDERS
from bench.performance.console import Console
from bench.performance.contenders import Bench, Run, Size, databases_like
from bench.performance.meter import Pids

EMPTY = "pgconsole_perf_empty"


def run_server(kind: str, args, sizes: list[Size], workdir: Path) -> dict:
    """Every measurement on one S3 server; its figures for the report. Scratch databases and the bucket go after."""
    only = {int(mb) for mb in args.moto_sizes.split(",")} if kind == "moto" and args.moto_sizes else None
    # this server's own figures (moto may run fewer sizes: it is the comparison, not the headline)
    sizes = [replace(s, runs={}, memory={}, counts_ok=[]) for s in sizes if only is None or s.size_mb in only]
    with common.s3_server(kind) as s3:
        log(f"{kind}: {s3.version} at {s3.url}")
        bucket = f"pgperf-{uuid.uuid4().hex[:10]}"
        client = common.s3_client(s3.url, s3.credentials)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": common.REGION})
        folder = workdir / kind
        folder.mkdir()
        console = None
        try:
            targets = prepare_targets(sizes, bucket, folder)
            log(f"{kind}: starting the console (gunicorn + worker)")
            console = Console(folder / "console", s3, targets, args.redis_url, args.passkey)
            bench = make_bench(args, s3, bucket, console, folder)
            log(f"{kind}: warm-up backup of the empty database (not reported)")
            console.run_job("/api/targets/empty/backup")
            bench.clear_target("empty")
            fixed = fixed_cost(bench, EMPTY)
            per_size = {size.size_mb: run_size(bench, size) for size in sizes}
            return {
                "server": s3, "fixed": fixed, "sizes": per_size, "busy": bench.busy, "pg_dump": bench.dump,
                "pg_restore": bench.restore_tool, "compression": bench.compression, "jobs": bench.jobs,
                "server_version": bench.server_version,
            }  # fmt: skip
        finally:
            if console is not None:
                with contextlib.suppress(Exception):
                    log(f"{kind}: worker log tail:\n{console.processes.tail('worker', 8)}")
                console.stop()
            for size in sizes:
                for name in [size.restore_db, f"pgconsole_perf_baseline_{size.size_mb}",
                             *databases_like(f"{size.restore_db}_pgc_")]:  # fmt: skip
                    common.drop_database(name)
            common.drop_database(EMPTY)
            with contextlib.suppress(Exception):
                common.remove_bucket(s3.url, bucket, s3.credentials)


def prepare_targets(sizes: list[Size], bucket: str, folder: Path) -> dict[str, dict]:
    """The scratch databases (empty, each size's restore copy) and the console's targets on them."""
    common.drop_database(EMPTY)
    common.copy_database(EMPTY)
    targets = {"empty": target_table(EMPTY, f"s3://{bucket}/empty")}
    for size in sizes:
        for name in [size.restore_db, *databases_like(f"{size.restore_db}_pgc_")]:
            common.drop_database(name)
        log(f"copying {size.source} to {size.restore_db}")
        common.copy_database(size.restore_db, template=size.source)
        targets[f"s3-{size.size_mb}"] = target_table(size.source, f"s3://{bucket}/s3-{size.size_mb}")
        local = folder / f"local-{size.size_mb}"
        local.mkdir()
        targets[f"local-{size.size_mb}"] = target_table(size.source, local.as_uri())
        targets[f"restore-{size.size_mb}"] = {
            **target_table(size.restore_db, f"s3://{bucket}/restore-{size.size_mb}"),
            "restore_passkey_env": "PERF_RESTORE_PASSKEY",
        }
    return targets


def make_bench(args, s3: common.S3Server, bucket: str, console: Console, folder: Path) -> Bench:
    """The contenders' context: the tools the console would pick for this server, at its compression."""
    from app.adapters import postgres
    from app.config import Settings

    settings = Settings.from_env({"DATABASE_URL": f"postgresql://{common.PG_USER}@{common.PG_HOST}:"
                                  f"{common.PG_PORT}/postgres", "APP_ENV": "perf", "SECRET_KEY": "x",
                                  "PG_BIN_DIRS": os.environ.get("PG_BIN_DIRS", "")})  # fmt: skip
    major, server_version = postgres.server_version(settings.target)
    dump = postgres.pick_client("pg_dump", major, settings.pg_bin_dirs)
    bench = Bench(
        args=args, s3=s3, bucket=bucket, console=console, procs=Pids(s3.pid, *console.pids), workdir=folder,
        dump=dump, restore_tool=postgres.pick_client("pg_restore", major, settings.pg_bin_dirs),
        compression=postgres.compression_for(settings.backup_compression or "auto", dump).args,
        jobs=settings.restore_jobs, target=settings.target, server_version=server_version,
    )  # fmt: skip
    log(f"{s3.name}: {' '.join(dump.version.split())}, {' '.join(bench.compression)}, RESTORE_JOBS={bench.jobs}")
    return bench


def target_table(dbname: str, storage_url: str) -> dict[str, str]:
    return {"environment": "perf", "database_url": f"postgresql://{common.PG_USER}@{common.PG_HOST}:{common.PG_PORT}/"
            f"{dbname}", "storage_url": storage_url, "app_name": dbname}  # fmt: skip


def fixed_cost(bench: Bench, empty: str) -> dict[str, list[Run]]:
    """A backup of an empty database: pg_dump alone, the pipe and the console, interleaved, ≥ 5 runs each."""
    runs: dict[str, list[Run]] = {"a": [], "b": [], "c": []}
    order = list(runs)
    for number in range(bench.args.fixed_runs):
        for key in order[number % 3 :] + order[: number % 3]:
            busy = bench.quiet(f"fixed cost {key}")
            if key == "a":
                run = bench.pg_dump(empty)
            elif key == "b":
                run = bench.pipe(empty)
            else:
                run = bench.console_backup("c", "empty", empty)
            run.busy_before = busy
            runs[key].append(run)
        log(f"  fixed cost {number + 1}/{bench.args.fixed_runs}: " +
            ", ".join(f"{k} {runs[k][-1].seconds:.3f} s" for k in order))  # fmt: skip
    return runs


def run_size(bench: Bench, size: Size) -> Size:
    kind = bench.s3.name
    size.runs = {key: [] for key in CONTENDERS}
    log(f"{kind} {size.size_mb} MiB: warm-up pg_dump (not reported), and the archive both restores use")
    bench.pg_dump(size.source)
    target = f"restore-{size.size_mb}"
    job = bench.console.run_job(f"/api/targets/{target}/backup")
    size.archive, size.archive_bytes = job.status["result"]["filename"], job.status["result"]["size"]
    keys = [o["Key"] for o in bench.client().list_objects_v2(Bucket=bench.bucket, Prefix=f"{target}/")["Contents"]]
    size.archive_key = next(k for k in keys if k.endswith("/" + size.archive))
    log(f"  archive {size.archive_key}: {size.archive_bytes / MiB:.1f} MiB")
    measure = {
        "a": lambda: bench.pg_dump(size.source),
        "b": lambda: bench.pipe(size.source),
        "c": lambda: bench.console_backup("c", f"s3-{size.size_mb}", size.source),
        "d": lambda: bench.console_backup("d", f"local-{size.size_mb}", size.source),
        "e": lambda: bench.download_restore(size),
        "f": lambda: bench.console_restore(size)[0],
        "g": lambda: bench.pg_dump_to_cat(size.source),
    }
    order = list(CONTENDERS)
    for number in range(bench.args.rounds):
        for key in order[number % len(order) :] + order[: number % len(order)]:
            busy = bench.quiet(f"{key}, round {number + 1}")
            run = measure[key]()
            run.busy_before = busy
            size.runs[key].append(run)
            own = f" (job's own {run.job_seconds:.2f} s)" if run.job_seconds is not None else ""
            log(f"  {kind} {size.size_mb} MiB round {number + 1}/{bench.args.rounds} {key}: {run.seconds:.2f} s{own}"
                f"; machine busy before {busy:.0%}")  # fmt: skip
    if bench.args.sample_ms:
        log(f"  {kind} {size.size_mb} MiB: sampled runs (PSS every {bench.args.sample_ms} ms)")
        bench.quiet("sampled backup")
        seconds, peaks = bench.sampled_backup(f"s3-{size.size_mb}", size.source)
        size.memory["c"] = {**peaks, "seconds": seconds}
        bench.quiet("sampled restore")
        run, peaks = bench.console_restore(size, bench.args.sample_ms)
        size.memory["f"] = {**(peaks or {}), "seconds": run.seconds}
        log(f"  worker peak PSS: backup {size.memory['c']['worker_kib'] / 1024:.1f} MB, restore "
            f"{size.memory['f']['worker_kib'] / 1024:.1f} MB")  # fmt: skip
    return size

