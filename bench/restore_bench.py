"""Restore benchmark: the console's restore job against a plain download + `pg_restore`.

    .venv/bin/python bench/restore_bench.py [--size-mb 500] [--out bench/results/restore.md]

In one run it

  1. uses (or builds) the source database `pgconsole_bench_<size>` (the same data and marker as
     bench/backup_bench.py, so either bench reuses the other's database), copies it to a
     throw-away target `pgconsole_bench_restore_target` (CREATE DATABASE … TEMPLATE) and backs
     the target up with the console's own backup job (a real `flask --app wsgi worker` process)
     into moto's ThreadedMotoServer, running in this process;
  2. measures
     (a) the baseline: boto3 `download_file` of that archive from the same S3 to a temp file (in a
         child process, like the worker, so it does not share this process's GIL with moto), then
         `pg_restore -j N --no-owner --no-privileges --exit-on-error -d <fresh empty db>`;
     (b) the console's restore job end to end: `start_job(…, "restore", …)` until `job_status`
         says finished (polled every 0.1 s), and the job's own `result["seconds"]`;
     with the peak PSS of the worker + its work horse (pg_restore excluded) and of pg_restore,
     sampled from /proc/<pid>/smaps_rollup by a separate sampler process;
  3. checks that every table of the restored target has the source's row count;
  4. writes a Markdown report and removes everything it made except the source database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import common
from common import (
    CREDENTIALS,
    DEFAULT_REDIS_URL,
    PG_HOST,
    PG_PORT,
    PG_USER,
    POLL_SECONDS,
    REGION,
    MiB,
    WorkerProcess,
    bench_marker,
    build_database,
    child_env,
    children_of,
    comm_of,
    cpu_times,
    database_exists,
    database_size,
    drop_database,
    is_complete,
    log,
    machine_summary,
    make_workdir,
    moto_version,
    pg_connect,
    pss_kib,
    purge_namespace,
    remove_bucket,
    s3_client,
    start_moto,
    wait_until_idle,
    write_report,
)

common.LOG["prefix"] = "restore-bench"
TARGET_DB = "pgconsole_bench_restore_target"
BASELINE_DB = "pgconsole_bench_restore_baseline"
TARGET_RATIO = 1.15


# --------------------------------------------------------------------------- /proc (stdlib only: the sampler child)


# pg_restore, and Debian's pg_wrapper (/usr/bin/pg_restore), which pgtools runs for `--version`
CLIENT_COMMS = ("pg_restore", "pg_wrapper")


def sampler_child(spec: dict) -> None:
    """Sample a process tree's PSS until stdin closes; print the peaks as JSON.

    Runs as its own process so that its work never competes for the GIL of the bench process
    (which serves S3 through moto). Every process whose comm is `pg_restore`, and everything
    below it, counts as pg_restore (so does Debian's pg_wrapper, the perl script behind
    /usr/bin/pg_restore); the rest of the tree counts as the worker (worker + horse).
    """
    root, interval = int(spec["root"]), float(spec["interval"])
    skip = {int(p) for p in spec.get("skip", [])} | {os.getpid()}
    count_root = bool(spec.get("count_root", True))
    peaks = {"main_kib": 0, "restore_kib": 0, "restore_single_kib": 0, "first_main_kib": None,
             "samples": 0, "busy_seconds": 0.0, "restore_processes_max": 0,
             "first_detail": [], "peak_detail": [], "restore_first": None, "restore_last": None}  # fmt: skip

    def is_real_restore(pid: int) -> bool:  # not `pg_restore --list` nor a `--version` probe
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            return False
        return comm_of(pid) == "pg_restore" and b"--list" not in argv and b"--version" not in argv

    def sample() -> None:
        main = restore = single = processes = 0
        detail = []  # (pid, comm, kib) of the worker side
        stack = [(root, False)]
        seen = set()
        while stack:
            pid, inside = stack.pop()
            if pid in skip or pid in seen:
                continue
            seen.add(pid)
            is_restore = inside or comm_of(pid) in CLIENT_COMMS
            if is_restore and not inside and is_real_restore(pid):
                now = time.monotonic()  # CLOCK_MONOTONIC: the same clock as the bench process's
                peaks["restore_first"] = peaks["restore_first"] or now
                peaks["restore_last"] = now
            if pid != root or count_root:
                kib = pss_kib(pid)
                if is_restore:
                    restore += kib
                    single = max(single, kib)
                    processes += 1
                else:
                    main += kib
                    detail.append((pid, comm_of(pid), kib))
            stack.extend((child, is_restore) for child in children_of(pid))
        if peaks["first_main_kib"] is None:
            peaks["first_main_kib"], peaks["first_detail"] = main, detail
        peaks["samples"] += 1
        if main > peaks["main_kib"]:
            peaks["main_kib"], peaks["peak_detail"] = main, detail
        peaks["restore_kib"] = max(peaks["restore_kib"], restore)
        peaks["restore_single_kib"] = max(peaks["restore_single_kib"], single)
        peaks["restore_processes_max"] = max(peaks["restore_processes_max"], processes)

    sample()  # the first sample before "ready": the tree as it was before the measured step began
    print("ready", flush=True)
    while True:
        started, cpu = time.perf_counter(), time.process_time()
        sample()
        spent = time.perf_counter() - started
        peaks["busy_seconds"] += time.process_time() - cpu  # CPU (user + system) the sampling cost
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, interval - spent))
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    print(json.dumps(peaks), flush=True)


class Sampler:
    def __init__(self, root: int, interval: float, *, skip: list[int] | None = None, count_root: bool = True):
        spec = {"root": root, "interval": interval, "skip": skip or [], "count_root": count_root}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--sampler-child", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the PSS sampler did not start")

    def stop(self) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(timeout=30)
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- the source database


def ensure_source(size_mb: int, rebuild: bool, wait_minutes: float) -> str:
    """`pgconsole_bench_<size>`: reused when complete; waited for while another bench builds it."""
    from psycopg import sql

    name = f"pgconsole_bench_{size_mb}"
    if database_exists(name) and not rebuild:
        deadline = time.monotonic() + wait_minutes * 60
        while not is_complete(name, size_mb):
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{name} exists but is incomplete (no bench_meta marker, or too small) and nothing completed "
                    f"it within {wait_minutes:g} min; rerun with --rebuild to drop and rebuild it"
                )
            log(f"{name} exists but is not complete yet (another bench building it?): waiting")
            time.sleep(15)
        log(f"reusing {name} ({database_size(name) / MiB:.0f} MiB, built {bench_marker(name).get('built_at')})")
        return name
    with pg_connect() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    build_database(name, size_mb)
    return name


def copy_database(source: str, target: str, wait_minutes: float) -> None:
    """CREATE DATABASE target TEMPLATE source, retried while someone else is connected to the source."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + wait_minutes * 60
    last_note = 0.0
    while True:
        try:
            with pg_connect() as admin:
                admin.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(target), sql.Identifier(source))
                )
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            if time.monotonic() - last_note > 10:
                log(f"  {source} is in use by another session (another bench?); retrying the copy")
                last_note = time.monotonic()
            time.sleep(0.5)


def leftovers_of(name: str) -> list[str]:
    """The console's scratch / set-aside copies of `name` (`<name>_pgc_…`)."""
    prefix = f"{name[:40]}_pgc_"
    with pg_connect() as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE left(datname, %s) = %s", (len(prefix), prefix)
        ).fetchall()
    return sorted(r[0] for r in rows)


def row_counts(dbname: str) -> dict[str, int]:
    from psycopg import sql

    with pg_connect(dbname) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{table}": int(
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                ).fetchone()[0]
            )
            for schema, table in tables
        }


def checkpoint() -> None:
    """Flush what earlier steps left dirty, so it is not written during the next measurement."""
    with pg_connect() as admin:
        admin.execute("CHECKPOINT")


# --------------------------------------------------------------------------- machine load


QUIET = {"threshold": 0.15, "max_wait": 180.0}


def wait_quiet(label: str) -> float:
    """Other work on a small machine skews the seconds: wait (bounded) until it is idle; returns the load."""
    busy, _ = wait_until_idle(QUIET["threshold"], QUIET["max_wait"], label)
    return busy


# --------------------------------------------------------------------------- worker, redis, S3


def download_child(spec: dict) -> None:
    """The baseline's download: plain boto3 `download_file` (default transfer settings), timed.

    Default settings split an archive over 8 MiB into 8 MiB ranged GETs, 10 at a time.
    """
    client = s3_client(spec["endpoint"], os.environ)
    client.head_bucket(Bucket=spec["bucket"])  # connection set up outside the timed part
    print("ready", flush=True)
    sys.stdin.readline()
    config = None
    if spec.get("single_get"):  # one GET streamed to the file (information: moto's cheapest download)
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=1 << 50)
    started = time.monotonic()
    client.download_file(spec["bucket"], spec["key"], spec["path"], Config=config)
    seconds = time.monotonic() - started
    print(json.dumps({"seconds": seconds, "size": os.path.getsize(spec["path"])}), flush=True)


def wait_job(redis, job_id: str, timeout: float, phases: dict[str, float] | None = None) -> tuple[dict, float]:
    """Poll job_status every 0.1 s until the job ends; note when each phase was first seen."""
    from app.jobs.queue import job_status

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job_status(redis, job_id)
        now = time.monotonic()
        if status and phases is not None:
            phases.setdefault((status.get("progress") or {}).get("phase") or "?", now)
        if status and status["status"] in ("finished", "failed"):
            return status, now
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"job {job_id} did not end within {timeout:.0f} s")


# --------------------------------------------------------------------------- the run


@dataclass
class Pass:
    """One (a) + (b) pair."""

    create_seconds: float = 0.0  # CREATE DATABASE of the empty baseline database (not in (a))
    download_seconds: float = 0.0
    single_get_seconds: float = 0.0  # information: the same download as one GET
    pg_restore_seen: float = 0.0  # (b): the real pg_restore's lifetime as the sampler saw it (±interval)
    before_pg_restore: float = 0.0  # (b): "restoring" phase seen → pg_restore first seen (±interval)
    restore_seconds: float = 0.0
    download_pss_mib: float = 0.0
    baseline_restore_pss_mib: float = 0.0
    baseline_counts_ok: bool = False
    console_seconds: float = 0.0
    job_seconds: float = 0.0
    worker_pss_mib: float = 0.0
    worker_idle_pss_mib: float = 0.0
    console_restore_pss_mib: float = 0.0
    console_restore_single_mib: float = 0.0
    sampler: dict = field(default_factory=dict)
    phases: list[tuple[str, float]] = field(default_factory=list)
    target_counts: dict[str, int] = field(default_factory=dict)
    load_before: dict[str, float] = field(default_factory=dict)  # machine busy in the second before
    busy_during: dict[str, float] = field(default_factory=dict)  # machine busy during (ours included)

    @property
    def baseline_seconds(self) -> float:
        return self.download_seconds + self.restore_seconds


@dataclass
class Results:
    source: str = ""
    source_bytes: int = 0
    archive: str = ""
    archive_bytes: int = 0
    backup_seconds: float = 0.0
    jobs: int = 1
    pg_restore: str = ""
    pg_restore_path: str = ""
    server_version: str = ""
    source_counts: dict[str, int] = field(default_factory=dict)
    passes: list[Pass] = field(default_factory=list)

    @property
    def counts_match(self) -> bool:
        return bool(self.passes) and all(p.target_counts == self.source_counts for p in self.passes)


class BusyMeter:
    """The whole machine's CPU busy fraction over a stretch (our own processes included)."""

    def __init__(self):
        self.start = cpu_times()

    def stop(self) -> float:
        b1, t1 = cpu_times()
        return (b1 - self.start[0]) / max(t1 - self.start[1], 1)


@dataclass
class Setup:
    args: argparse.Namespace
    settings: object
    redis: object
    worker: WorkerProcess
    tool: object  # app.domain.pgtools.ClientTool
    moto_url: str
    bucket: str
    workdir: Path


def run(args, workdir: Path, moto_url: str, bucket: str, cleanup: list) -> Results:
    from app.clients import redis_for
    from app.domain import pgtools
    from app.jobs.queue import start_job
    from app.settings import Settings

    r = Results(jobs=args.jobs)
    r.source = ensure_source(args.size_mb, args.rebuild, args.wait_minutes)
    r.source_bytes = database_size(r.source)
    r.source_counts = row_counts(r.source)
    log(f"source {r.source}: {r.source_bytes / MiB:.0f} MiB, rows {r.source_counts}")

    for name in [TARGET_DB, BASELINE_DB, *leftovers_of(TARGET_DB)]:  # a previous run that was killed
        drop_database(name)
    log(f"copying {r.source} to {TARGET_DB}")
    copy_database(r.source, TARGET_DB, args.wait_minutes)

    namespace = f"pgrbench-{uuid.uuid4().hex[:12]}"
    env = {
        "APP_ENV": "bench",
        "SECRET_KEY": uuid.uuid4().hex,
        "DATABASE_URL": f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{TARGET_DB}",
        "REDIS_URL": args.redis_url,
        "REDIS_NAMESPACE": namespace,
        "INSTANCE_PATH": str(workdir / "instance"),
        "BACKUP_STORAGE_URL": f"s3://{bucket}",
        "S3_ENDPOINT_URL": moto_url,
        "AWS_REGION": REGION,
        **CREDENTIALS,
        "RESTORE_PASSKEY": "bench",
        "JOB_TIMEOUT_SECONDS": "3600",
        "RESTORE_JOBS": str(args.jobs),
        # The recent-backup rule still runs in the job; a wide window only keeps a slow run (or a
        # long wait for an idle machine) from being refused.
        "BACKUP_RECENT_CHECK_MINUTES": "600",
        "PG_BIN_DIRS": os.environ.get("PG_BIN_DIRS", ""),
    }
    settings = Settings.from_env(env)
    redis = redis_for(settings)
    cleanup.append(lambda: (purge_namespace(redis, namespace), redis.close()))
    major, r.server_version = pgtools.server_version(settings.target)
    tool = pgtools.pick_client("pg_restore", major, settings.pg_bin_dirs)  # the same binary the console picks
    r.pg_restore, r.pg_restore_path = " ".join(tool.version.split()), tool.path

    worker = WorkerProcess(env, workdir / "worker.log")
    cleanup.append(worker.stop)
    worker.wait_ready(redis, namespace)

    # ---- the archive, made by the console's own backup job
    log("backup job (the archive both restores use)")
    started = time.monotonic()
    job_id = start_job(settings, redis, "backup", "bench")
    status, ended = wait_job(redis, job_id, 3600 + 60)
    if status["status"] != "finished":
        raise RuntimeError(f"the backup job failed: {status['error']}\n{worker.tail()}")
    r.backup_seconds = ended - started
    r.archive, r.archive_bytes = status["result"]["filename"], status["result"]["size"]
    log(f"  {r.archive}: {r.archive_bytes / MiB:.1f} MiB in {r.backup_seconds:.1f} s")

    setup = Setup(args, settings, redis, worker, tool, moto_url, bucket, workdir)
    for number in range(1, args.repeat + 1):
        p = Pass()
        log(f"pass {number}/{args.repeat}")
        measure_baseline(setup, r, p)
        measure_console(setup, r, p)
        # ---- 3. the restored target has the source's rows
        p.target_counts = row_counts(TARGET_DB)
        log("  row counts " + ("match" if p.target_counts == r.source_counts else f"DIFFER: {p.target_counts}"))
        if number < args.repeat:
            # The freshly restored target would draw autovacuum (1M new rows) into the next pass's
            # measurements: do that work now, untimed.
            with pg_connect(TARGET_DB) as conn:
                conn.execute("VACUUM (FREEZE, ANALYZE)")
            checkpoint()
        r.passes.append(p)
    return r


def timed_download(s: Setup, key: str, path: Path, single_get: bool = False) -> tuple[float, float]:
    """boto3 download_file in a child process; (seconds as the child timed it, the child's peak PSS MB)."""
    spec = {"endpoint": s.moto_url, "bucket": s.bucket, "key": key, "path": str(path), "single_get": single_get}
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--download-child", json.dumps(spec)],
        env=child_env(CREDENTIALS),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("the download child did not start")
    sampler = Sampler(child.pid, s.args.sample_ms / 1000)
    child.stdin.write("go\n")
    child.stdin.flush()
    out = child.stdout.read()
    if child.wait() != 0:
        sampler.kill()
        raise RuntimeError("the baseline download failed")
    pss = sampler.stop()["main_kib"] / 1024
    return json.loads(out.strip().splitlines()[-1])["seconds"], pss


def measure_baseline(s: Setup, r: Results, p: Pass) -> None:
    """(a): boto3 download_file, then pg_restore -j N into a fresh empty database."""
    from psycopg import sql

    from app.domain import pgtools

    folder = Path(tempfile.mkdtemp(prefix="baseline-", dir=s.workdir))
    archive_path = folder / "archive.dump"
    started = time.monotonic()
    with pg_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(BASELINE_DB)))
    p.create_seconds = time.monotonic() - started
    checkpoint()
    p.load_before["a"] = wait_quiet("the baseline")
    busy = BusyMeter()
    log("  (a) baseline: boto3 download_file")
    p.download_seconds, p.download_pss_mib = timed_download(s, r.archive, archive_path)
    log(f"    {p.download_seconds:.2f} s")

    log(f"  (a) baseline: pg_restore -j {s.args.jobs}")
    sampler = Sampler(os.getpid(), s.args.sample_ms / 1000, skip=[s.worker.proc.pid], count_root=False)
    argv = [s.tool.path, f"-j{s.args.jobs}", "--no-owner", "--no-privileges", "--exit-on-error",
            "-d", BASELINE_DB, str(archive_path)]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(argv, env=pgtools.child_env(s.settings.target, dbname=BASELINE_DB), capture_output=True)
    p.restore_seconds = time.monotonic() - started
    p.busy_during["a"] = busy.stop()
    peaks = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"baseline pg_restore failed: {proc.stderr.decode(errors='replace')}")
    p.baseline_restore_pss_mib = peaks["restore_kib"] / 1024
    log(f"    {p.restore_seconds:.2f} s; (a) total {p.baseline_seconds:.2f} s")
    p.baseline_counts_ok = row_counts(BASELINE_DB) == r.source_counts
    # information only, after (a): the same download as one GET, which moto serves most cheaply
    p.single_get_seconds, _ = timed_download(s, r.archive, folder / "single.dump", single_get=True)
    shutil.rmtree(folder)
    drop_database(BASELINE_DB)
    checkpoint()


def describe(detail: list) -> str:
    return ", ".join(f"{comm} {pid} {kib / 1024:.1f} MB" for pid, comm, kib in detail) or "—"


def measure_console(s: Setup, r: Results, p: Pass) -> None:
    """(b): the console's restore job, from enqueue until job_status says finished."""
    from app.jobs.queue import start_job

    p.load_before["b"] = wait_quiet("the console's restore")
    log(f"  (b) console restore job (RESTORE_JOBS={s.args.jobs})")
    sampler = Sampler(s.worker.proc.pid, s.args.sample_ms / 1000)
    phases: dict[str, float] = {}
    busy = BusyMeter()
    started = time.monotonic()
    job_id = start_job(s.settings, s.redis, "restore", "bench", filename=r.archive)
    try:
        status, ended = wait_job(s.redis, job_id, 3600 + 60, phases)
    finally:
        p.busy_during["b"] = busy.stop()
        peaks = sampler.stop()
    if status["status"] != "finished":
        raise RuntimeError(f"the restore job failed: {status['error']}\n{s.worker.tail()}")
    p.console_seconds = ended - started
    p.job_seconds = float(status["result"]["seconds"])
    p.sampler = peaks
    p.worker_pss_mib = peaks["main_kib"] / 1024
    p.worker_idle_pss_mib = (peaks["first_main_kib"] or 0) / 1024
    p.console_restore_pss_mib = peaks["restore_kib"] / 1024
    p.console_restore_single_mib = peaks["restore_single_kib"] / 1024
    marks = sorted(phases.items(), key=lambda kv: kv[1])
    p.phases = [("enqueue → first poll", marks[0][1] - started if marks else 0.0)]
    for (name, at), (_, nxt) in zip(marks, [*marks[1:], ("end", ended)], strict=True):
        p.phases.append((name, nxt - at))
    if peaks.get("restore_first") and peaks.get("restore_last"):
        p.pg_restore_seen = peaks["restore_last"] - peaks["restore_first"]
        if "restoring" in phases:
            p.before_pg_restore = max(0.0, peaks["restore_first"] - phases["restoring"])
    log(f"    {p.console_seconds:.2f} s end to end, job's own {p.job_seconds:.2f} s")
    log(
        f"    worker side PSS before the job: {describe(peaks['first_detail'])}; "
        f"at its peak: {describe(peaks['peak_detail'])}"
    )
    checkpoint()


# --------------------------------------------------------------------------- report


PHASE_NOTES = {
    "enqueue → first poll": "start_job returns, first job_status",
    "queued": "until the worker's work horse runs the job (fork)",
    "checking": "list the bucket, the recent-backup rule",
    "downloading": "ranged GETs, sha256, write the temp file",
    "verifying": "read the manifest, compare sha256, CREATE DATABASE scratch",
    "restoring": "server version, pg_restore --list, pg_restore -j N --verbose",
    "swapping": "block connections, rename live aside, rename scratch in, DROP the old database",
    "done": "audit record, lock release, RQ marks it finished",
}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def report(r: Results, args) -> str:
    ps = r.passes
    base = median([p.baseline_seconds for p in ps])
    console = median([p.console_seconds for p in ps])
    own = median([p.job_seconds for p in ps])
    ratio = console / base
    single = median([p.single_get_seconds for p in ps])
    base_single = median([p.single_get_seconds + p.restore_seconds for p in ps])
    allowed = TARGET_RATIO * base
    verdict = (
        "met"
        if ratio <= TARGET_RATIO
        else f"missed by {console - allowed:.2f} s ({(ratio / TARGET_RATIO - 1) * 100:.0f}% over the allowance)"
    )
    worst = {name: max(getattr(p, name) for p in ps) for name in (
        "worker_pss_mib", "console_restore_pss_mib", "baseline_restore_pss_mib", "download_pss_mib",
        "console_restore_single_mib", "worker_idle_pss_mib")}  # fmt: skip
    seen_names = {name for p in ps for name, _ in p.phases}
    phase_names = [n for n in PHASE_NOTES if n in seen_names] + sorted(seen_names - set(PHASE_NOTES))
    phase_median = {n: median([dict(p.phases).get(n, 0.0) for p in ps]) for n in phase_names}
    runs = "1 pass" if len(ps) == 1 else f"{len(ps)} passes of (a) then (b); seconds are medians, PSS the worst pass"
    lines = [
        "# pgconsole restore benchmark",
        "",
        f"- date: {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}",
        f"- source: `{r.source}`, {r.source_bytes / MiB:.0f} MB on disk (pg_database_size); archive "
        f"`{r.archive}`, {r.archive_bytes / MiB:.1f} MB (made by the console's backup job of the target copy "
        f"in {r.backup_seconds:.1f} s)",
        f"- pg_restore: {r.pg_restore} (`{r.pg_restore_path}`), `-j {r.jobs}` in both (a) and (b) "
        f"(RESTORE_JOBS={r.jobs}); server {r.server_version}",
        f"- machine: nproc {len(os.sched_getaffinity(0))} ({os.cpu_count()} CPUs), {machine_summary()}",
        f"- runs: {runs}",
        f"- S3: moto {moto_version()} ThreadedMotoServer inside the bench process (objects in memory; it shares the "
        "cores with the worker, pg_restore and PostgreSQL). moto answers every ranged GET by copying the whole "
        "object and slicing it, so ranged downloads (boto3's 8 MiB parts, the console's 16 MiB ranges) cost more "
        "here than on real S3",
        "- (a): boto3 `download_file` with default transfer settings, in a child process (it does not share the GIL "
        "with moto, as the worker does not), plus `pg_restore -j N --no-owner --no-privileges --exit-on-error` into "
        "a fresh empty database (CREATE DATABASE … TEMPLATE template0, "
        f"{median([p.create_seconds for p in ps]):.2f} s, not counted in (a))",
        f'- (b): `start_job(…, "restore", …)` until `job_status(…)["status"] == "finished"`, polled every '
        f"{POLL_SECONDS} s, with the worker (`flask --app wsgi worker`) already running and idle",
        "- a CHECKPOINT ran before each measurement (and, between passes, a VACUUM (FREEZE, ANALYZE) of the "
        "restored target, so autovacuum of it does not run inside the next pass); before each one the bench "
        "waited (up to "
        f"{QUIET['max_wait']:.0f} s) for the machine to be under {QUIET['threshold']:.0%} busy",
        f"- PSS from /proc/<pid>/smaps_rollup every {args.sample_ms} ms by a separate sampler process "
        f"({ps[-1].sampler.get('samples', 0)} samples in the last (b), "
        f"{ps[-1].sampler.get('busy_seconds', 0):.2f} CPU s spent sampling); worker = the worker process + its forked "
        "work horse, every pg_restore process (`--list`, and the pg_wrapper `--version` probes, included) and its "
        "children excluded; MB = 2^20 bytes",
        "",
        f"## {r.source}: {r.source_bytes / MiB:.0f} MB, archive {r.archive_bytes / MiB:.1f} MB",
        "",
        "| run | seconds | ratio to (a) | worker peak PSS MB | pg_restore peak PSS MB |",
        "|---|---:|---:|---:|---:|",
        f"| (a) boto3 download_file | {median([p.download_seconds for p in ps]):.2f} | — | — | — |",
        f"| (a) pg_restore -j {r.jobs} | {median([p.restore_seconds for p in ps]):.2f} | — | — | "
        f"{worst['baseline_restore_pss_mib']:.1f} |",
        f"| **(a) baseline total** | **{base:.2f}** | **1.000** | — | — |",
        f"| (info) the same download as one GET (not in (a)) | {single:.2f} | — | — | — |",
        f"| **(b) console restore job, enqueue → finished** | **{console:.2f}** | **{ratio:.3f}** | "
        f"**{worst['worker_pss_mib']:.1f}** | {worst['console_restore_pss_mib']:.1f} |",
        f'| (b) job\'s own result["seconds"] | {own:.2f} | {own / base:.3f} | — | — |',
        "",
        "Where (b)'s time goes (phases as the 0.1 s poll first saw them, so each is ±0.1 s):",
        "",
        "| phase | seconds | what the job does in it |",
        "|---|---:|---|",
        *[f"| {n} | {phase_median[n]:.2f} | {PHASE_NOTES.get(n, '')} |" for n in phase_names],
        "",
        f"Inside (b)'s restoring phase: pg_restore itself was seen running for "
        f"{median([p.pg_restore_seen for p in ps]):.2f} s (sampled every {args.sample_ms} ms; (a)'s pg_restore: "
        f"{median([p.restore_seconds for p in ps]):.2f} s); from the phase's start until pg_restore appeared "
        f"(CREATE DATABASE when the poll missed `verifying`, the server version, the client probes, "
        f"`pg_restore --list`): {median([p.before_pg_restore for p in ps]):.2f} s.",
        "",
        f"Other figures: worker PSS before the job {worst['worker_idle_pss_mib']:.1f} MB; pg_restore PSS is the sum "
        f"over its -j processes (largest single one {worst['console_restore_single_mib']:.1f} MB); the baseline "
        f"download child's peak PSS {worst['download_pss_mib']:.1f} MB.",
    ]
    if len(ps) > 1:
        lines += [
            "",
            "Every pass:",
            "",
            "| pass | (a) download + pg_restore s | (b) s | (b)/(a) | (b) downloading / restoring / swapping s "
            "| (b) pg_restore seen running s | machine busy during (a) / (b) |",
            "|---|---:|---:|---:|---:|---:|---|",
            *[
                f"| {i} | {p.download_seconds:.2f} + {p.restore_seconds:.2f} = {p.baseline_seconds:.2f} | "
                f"{p.console_seconds:.2f} | {p.console_seconds / p.baseline_seconds:.3f} | "
                + " / ".join(f"{dict(p.phases).get(n, 0.0):.2f}" for n in ("downloading", "restoring", "swapping"))
                + f" | {p.pg_restore_seen:.2f} | {p.busy_during.get('a', 0):.0%} / {p.busy_during.get('b', 0):.0%} |"
                for i, p in enumerate(ps, 1)
            ],
        ]
    else:
        p = ps[0]
        lines += [
            "",
            f"Machine busy (all processes, ours included) during (a) {p.busy_during.get('a', 0):.0%}, during (b) "
            f"{p.busy_during.get('b', 0):.0%}; in the second before: (a) {p.load_before.get('a', 0):.0%}, "
            f"(b) {p.load_before.get('b', 0):.0%}.",
        ]
    last = ps[-1].target_counts
    lines += [
        "",
        "Row counts (count(*) per table, source vs. the restored target):",
        "",
        "| table | source | restored target |",
        "|---|---:|---:|",
        *[f"| {t} | {r.source_counts.get(t, '—')} | {last.get(t, '—')} |" for t in sorted({*r.source_counts, *last})],
        "",
        (
            f"- restored target: every table's row count equals the source's ({len(r.source_counts)} tables"
            + (f", after each of the {len(ps)} restores" if len(ps) > 1 else "")
            + "): OK"
            if r.counts_match
            else "- restored target: row counts DIFFER from the source"
        ),
        "- baseline database: row counts "
        + ("equal the source's" if all(p.baseline_counts_ok for p in ps) else "DIFFER from the source's"),
        f"- target: restore end to end ≤ {TARGET_RATIO} × (a) = {allowed:.2f} s; measured {console:.2f} s = "
        f"{ratio:.3f} × (a): {verdict}",
        f"- for judgement, not the target: against one-GET download + pg_restore ({base_single:.2f} s, the cheapest "
        f"download moto offers) the console takes {console / base_single:.3f} ×",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500, help="source database size on disk, MiB (default 500)")
    parser.add_argument("--out", default="bench/results/restore.md", help="Markdown report file")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="pg_restore -j (default nproc)")
    parser.add_argument("--sample-ms", type=int, default=100, help="PSS sampling interval, 50–100 ms (default 100)")
    parser.add_argument("--repeat", type=int, default=1, help="passes of (a) then (b) (default 1); medians reported")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild pgconsole_bench_<size>")
    parser.add_argument(
        "--wait-minutes", type=float, default=15, help="how long to wait for a source that another bench uses/builds"
    )
    parser.add_argument("--sampler-child", help=argparse.SUPPRESS)
    parser.add_argument("--download-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sampler_child:
        sampler_child(json.loads(args.sampler_child))
        return 0
    if args.download_child:
        download_child(json.loads(args.download_child))
        return 0
    if args.size_mb < 1 or args.jobs < 1 or args.repeat < 1 or args.sample_ms < 10:
        parser.error("--size-mb, --jobs and --repeat must be at least 1, --sample-ms at least 10")

    workdir = make_workdir("pgconsole-restore-bench-")
    server, moto_url = start_moto()
    bucket = f"pgconsole-rbench-{uuid.uuid4().hex[:10]}"
    cleanup: list = []
    failed = False
    try:
        s3_client(moto_url).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        results = run(args, workdir, moto_url, bucket, cleanup)
    except BaseException:
        failed = True
        with contextlib.suppress(Exception):
            log(f"worker log tail:\n{(workdir / 'worker.log').read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for step in reversed(cleanup):  # the worker first, then the Redis keys
            try:
                step()
            except Exception as exc:
                log(f"cleanup step failed: {exc}")
        for name in [BASELINE_DB, TARGET_DB, *leftovers_of(TARGET_DB)]:
            try:
                drop_database(name)
            except Exception as exc:
                log(f"could not drop {name}: {exc}")
        with contextlib.suppress(Exception):
            remove_bucket(moto_url, bucket)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        log("cleaned up" + (" after a failure" if failed else "") + f"; kept the source pgconsole_bench_{args.size_mb}")
    write_report(report(results, args), args.out)
    return 0 if results.counts_match else 1


if __name__ == "__main__":
    sys.exit(main())
