"""Backup benchmark: the console's streamed backup against plain pg_dump and the seed's way.

    .venv/bin/python bench/backup_bench.py [--size-mb 500] [--out bench/results/backup.md] [--double]

In one run, at the console's default compression, it measures

  (a) `pg_dump -Fc` to /dev/null (the floor: nothing can be faster than the dump itself);
  (b) the console's backup job end to end, through the real path (a `flask --app wsgi worker`
      process, the job enqueued with `app.jobs.queue.start_job`), once to S3 (moto's threaded
      server, in this process) and once to a local folder;
  (c) the seed's way: `pg_dump -Fc` to a temp file, then boto3 `upload_file` to the same S3
      (run in a child process, like the worker, so it does not share this process's GIL with moto);

with the peak PSS of the worker and its work horse (pg_dump excluded, reported apart), and the
temp disk each one used. It writes a Markdown report. See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
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
    ROOT,
    MiB,
    WorkerProcess,
    bench_marker,
    build_database,
    comm_of,
    cpu_times,
    database_size,
    drop_database,
    empty_bucket,
    is_complete,
    log,
    machine_summary,
    make_workdir,
    moto_version,
    pg_connect,
    process_tree,
    pss_kib,
    purge_namespace,
    remove_bucket,
    s3_client,
    start_moto,
    wait_until_idle,
    write_report,
)

common.LOG["prefix"] = "bench"
SAMPLING = {"seconds": 0.05}  # --sample-ms
CONSOLE_STORE = "console.sqlite3"  # the console's own users/audit store in the instance folder: state, not temp

ROW_PG_DUMP = "pg_dump to /dev/null"
ROW_S3 = "console → S3 (moto)"
ROW_LOCAL = "console → local folder"
ROW_SEED = "seed way (temp file + upload)"
ROWS = (ROW_PG_DUMP, ROW_S3, ROW_LOCAL, ROW_SEED)
ROW_KEYS = {ROW_PG_DUMP: "pg_dump", ROW_S3: "s3", ROW_LOCAL: "local", ROW_SEED: "seed"}


# --------------------------------------------------------------------------- the bench database


def ensure_database(size_mb: int) -> str:
    """`pgconsole_bench_<size>`, reused when its marker says it is complete and big enough."""
    from psycopg import sql

    name = f"pgconsole_bench_{size_mb}"
    with pg_connect() as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if exists:
            if is_complete(name, size_mb):
                built = bench_marker(name).get("built_at")
                log(f"reusing {name} ({database_size(name) / MiB:.0f} MiB, built {built})")
                return name
            log(f"{name} exists but is incomplete or stale: rebuilding it")
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    build_database(name, size_mb)
    return name


# --------------------------------------------------------------------------- sampling /proc


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds a live process has used, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def under(path: str, folder: Path | str) -> bool:
    folder = str(folder).rstrip("/")
    return path == folder or path.startswith(folder + "/")


def folder_bytes(folder: Path, skip=lambda name: False) -> int:
    total = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    total += folder_bytes(Path(entry.path), skip)
                elif entry.is_file(follow_symlinks=False) and not skip(entry.name):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def snapshot(folder: Path, exclude: list[Path]) -> dict[str, tuple[int, float]]:
    """path → (size, mtime) of every regular file below `folder`, skipping `exclude`."""
    found: dict[str, tuple[int, float]] = {}

    def walk(path: str) -> None:
        with contextlib.suppress(OSError), os.scandir(path) as entries:
            for entry in entries:
                if any(under(entry.path, ex) for ex in exclude):
                    continue
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        walk(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found[entry.path] = (st.st_size, st.st_mtime)

    walk(str(folder))
    return found


def is_store_file(name: str) -> bool:
    return os.path.basename(name).startswith(CONSOLE_STORE)


@dataclass
class Sample:
    worker_pss_peak_kib: int = 0
    worker_pss_first_kib: int = 0
    dump_pss_peak_kib: int = 0
    temp_open_peak: int = 0  # bytes in temp files held open by the tree, at the worst sample
    temp_files: dict[str, int] = field(default_factory=dict)  # each temp file seen open, its largest size
    instance_growth_peak: int = 0  # the instance folder (console store excluded), peak minus baseline
    store_growth_peak: int = 0  # the console store (SQLite audit log), peak minus baseline
    fs_delta_peak: int = 0  # shutil.disk_usage('/tmp').used, peak minus baseline, destination excluded
    samples: int = 0
    busy_seconds: float = 0.0  # time spent sampling (the observer's own cost)
    dump_first_seen: float | None = None  # time.monotonic() when pg_dump was first / last seen in the tree
    dump_last_seen: float | None = None
    cpu: dict[int, tuple[str, float, float]] = field(default_factory=dict)  # pid → (comm, first, last) CPU s

    def cpu_used(self, dump: bool) -> float:
        return sum(last - first for comm, first, last in self.cpu.values() if (comm == "pg_dump") == dump)


class TreeSampler(threading.Thread):
    """Every `interval` s: PSS of a process tree (pg_dump apart), temp files it holds open, disk usage.

    A temp file is a regular file held open by any process of the tree (pg_dump included) that is
    deleted-but-open or lies under /tmp, /var/tmp or the instance folder, and not under the
    backup destination (which is the backup, not temp) nor the console store.
    """

    def __init__(
        self,
        root_pid: int,
        *,
        interval: float,
        light: bool = False,
        instance: Path | None,
        destination: Path | None,
        exclude: list[Path],
    ):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval = interval
        self.light = light  # only watch when pg_dump runs (cheap: no smaps, no fds)
        self.instance = instance
        self.destination = destination
        self.exclude = [p for p in (destination, *exclude) if p is not None]
        self.temp_roots = ["/tmp", "/var/tmp"] + ([str(instance)] if instance else [])
        self.result = Sample()
        self._halt = threading.Event()
        self._fs_base = shutil.disk_usage("/tmp").used
        self._instance_base = folder_bytes(instance, is_store_file) if instance else 0
        self._store_base = self._store_bytes()

    def _store_bytes(self) -> int:
        if not self.instance:
            return 0
        return folder_bytes(self.instance, lambda name: not is_store_file(name))

    def run(self) -> None:
        if self.interval <= 0:  # a timed pass: nothing observes the processes
            return
        while not self._halt.is_set():
            started = time.perf_counter()
            self.watch_dump() if self.light else self.sample()
            self.result.busy_seconds += time.perf_counter() - started
            self._halt.wait(self.interval)
        if not self.light:
            self.sample()

    def watch_dump(self) -> None:
        """When pg_dump runs, and the CPU each process of the tree uses (cheap: /proc/<pid>/stat)."""
        now = time.monotonic()
        first_pass = not self.result.cpu
        for pid in process_tree(self.root_pid):
            comm, used = comm_of(pid), cpu_seconds_of(pid)
            if used is None:
                continue
            if comm == "pg_dump":
                if self.result.dump_first_seen is None:
                    self.result.dump_first_seen = now
                self.result.dump_last_seen = now
            # a process already running when the watch began counts from then; a new one from its start
            _, first, _ = self.result.cpu.get(pid, (comm, used if first_pass else 0.0, 0.0))
            self.result.cpu[pid] = (comm, first, used)

    def stop(self) -> Sample:
        self._halt.set()
        self.join(timeout=10)
        return self.result

    def _temp_files(self, pid: int, seen: dict[tuple[int, int], tuple[str, int]]) -> None:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
                if not link.startswith("/") or link.startswith(("/dev/", "/proc/")):
                    continue
                deleted = link.endswith(" (deleted)")
                path = link.removesuffix(" (deleted)")
                if any(under(path, ex) for ex in self.exclude) or is_store_file(path):
                    continue
                if not (deleted or any(under(path, root) for root in self.temp_roots)):
                    continue
                st = os.stat(f"{fd_dir}/{fd}")  # follows the fd: works for deleted files too
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                seen[(st.st_dev, st.st_ino)] = (link, st.st_size)

    def sample(self) -> None:
        r = self.result
        worker = dump = 0
        open_temp: dict[tuple[int, int], tuple[str, int]] = {}
        for pid in process_tree(self.root_pid):
            if comm_of(pid) == "pg_dump":
                dump += pss_kib(pid)
            else:
                worker += pss_kib(pid)
            self._temp_files(pid, open_temp)
        if r.samples == 0:
            r.worker_pss_first_kib = worker
        r.samples += 1
        r.worker_pss_peak_kib = max(r.worker_pss_peak_kib, worker)
        r.dump_pss_peak_kib = max(r.dump_pss_peak_kib, dump)
        r.temp_open_peak = max(r.temp_open_peak, sum(size for _, size in open_temp.values()))
        for link, size in open_temp.values():
            r.temp_files[link] = max(r.temp_files.get(link, 0), size)
        if self.instance:
            r.instance_growth_peak = max(
                r.instance_growth_peak, folder_bytes(self.instance, is_store_file) - self._instance_base
            )
            r.store_growth_peak = max(r.store_growth_peak, self._store_bytes() - self._store_base)
        used = shutil.disk_usage("/tmp").used - self._fs_base
        if self.destination:
            used -= folder_bytes(self.destination)
        r.fs_delta_peak = max(r.fs_delta_peak, used)


# --------------------------------------------------------------------------- measurements


class CpuMeter:
    """CPU over one pass: the whole machine (/proc/stat), this process (moto, polling) and reaped children."""

    def __init__(self) -> None:
        self.busy0, _ = cpu_times()
        self.wall0 = time.monotonic()
        self.self0 = resource.getrusage(resource.RUSAGE_SELF)
        self.children0 = resource.getrusage(resource.RUSAGE_CHILDREN)

    def stop(self) -> dict[str, float]:
        busy, _ = cpu_times()
        wall = time.monotonic() - self.wall0
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": wall,
            "machine": (busy - self.busy0) / CLK_TCK,
            "bench": me.ru_utime + me.ru_stime - self.self0.ru_utime - self.self0.ru_stime,
            "children": kids.ru_utime + kids.ru_stime - self.children0.ru_utime - self.children0.ru_stime,
        }


QUIET = {"threshold": 0.15, "max_wait": 120.0, "waited": 0.0, "worst": 0.0}


def wait_quiet() -> None:
    """Other work on this small machine (a test run, a build) skews seconds: wait until it is idle."""
    busy, waited = wait_until_idle(QUIET["threshold"], QUIET["max_wait"])
    QUIET["waited"] += waited
    QUIET["worst"] = max(QUIET["worst"], busy)


@dataclass
class Measurement:
    row: str
    seconds: float
    worker_pss_mib: float | None = None
    dump_pss_mib: float | None = None
    temp_bytes: int | None = None
    dump_bytes: int | None = None
    job_seconds: float | None = None
    finish_seconds: float | None = None  # of job_seconds: the store finishing the file after its last byte
    idle_worker_pss_mib: float | None = None
    fs_delta_bytes: int | None = None
    store_growth_bytes: int | None = None
    changed_tmp_files: list[str] = field(default_factory=list)  # the run's own: open by its tree, or its instance
    other_tmp_changes: tuple[int, int] = (0, 0)  # files (count, bytes) other processes may have written in /tmp
    parts: dict[str, float] = field(default_factory=dict)
    observed_seconds: float | None = None  # the same run while sampled (the observer slows it down)
    phases: dict[str, float] = field(default_factory=dict)  # console: before / during / after pg_dump
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by consumer, timed pass
    sampler_busy_seconds: float | None = None


@dataclass
class Context:
    dbname: str
    db_bytes: int
    pg_dump: object  # app.domain.pgtools.ClientTool
    server_version: str
    compression: list[str]
    compression_setting: str
    target: object  # app.settings.TargetDatabase
    workdir: Path
    moto_url: str
    bucket: str
    redis_url: str
    logs: Path


def temp_scan_excludes(ctx: Context) -> list[Path]:
    """Not the console's temp: this bench's logs and moto's spill folder, and the shell tool's job logs."""
    return [ctx.logs, ctx.workdir / "spill", *Path("/tmp").glob("bash_jobs*"), *Path("/tmp").glob("bash_tool_*")]


def changed_files(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]], since: float
) -> dict[str, int]:
    """path → growth of the files new or grown since `since`."""
    changed = {}
    for path, (size, mtime) in after.items():
        old = before.get(path)
        if mtime >= since and (old is None or size > old[0]):
            changed[path] = size - (old[0] if old else 0)
    return changed


def split_changes(changed: dict[str, int], instance: Path | None) -> tuple[list[str], tuple[int, int]]:
    """(files under the instance folder, console store aside: ours), (count, bytes) of the rest of /tmp."""
    ours = [f"{p} (+{n} B)" for p, n in changed.items() if instance and under(p, instance) and not is_store_file(p)]
    rest = [n for p, n in changed.items() if not (instance and under(p, instance))]
    return ours, (len(rest), sum(rest))


def measure_pg_dump(ctx: Context, interval: float) -> Measurement:
    from app.domain import pgtools

    # stdout to /dev/null, as the console reads it from stdout (`--file=/dev/null` would fail on fsync)
    argv = [ctx.pg_dump.path, "--format=custom", "--no-password", *ctx.compression]
    meter = CpuMeter()
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=pgtools.child_env(ctx.target), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = TreeSampler(proc.pid, interval=interval, instance=None, destination=None, exclude=temp_scan_excludes(ctx))
    sampler.start()
    _, err = proc.communicate()
    seconds = time.monotonic() - started
    cpu = meter.stop()
    sample = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {err.decode(errors='replace')}")
    return Measurement(
        ROW_PG_DUMP,
        seconds,
        dump_pss_mib=sample.dump_pss_peak_kib / 1024,
        temp_bytes=sample.temp_open_peak,
        sampler_busy_seconds=sample.busy_seconds,
        cpu=cpu_split(cpu, dump=cpu["children"], python=0.0),
    )


def cpu_split(meter: dict[str, float], *, dump: float, python: float) -> dict[str, float]:
    return {
        "cores busy": meter["machine"] / meter["wall"],
        "pg_dump": dump,
        "python": python,
        "bench": meter["bench"],
        "other": meter["machine"] - dump - python - meter["bench"],
    }


def measure_console(ctx: Context, row: str, run: int, interval: float) -> Measurement:
    from app.clients import redis_for
    from app.jobs.queue import job_status, start_job
    from app.settings import Settings

    kind = "s3" if row == ROW_S3 else "local"
    namespace = f"pgbench-{uuid.uuid4().hex[:12]}"
    instance = ctx.workdir / f"instance-{kind}-{run}"
    destination = ctx.workdir / f"local-backups-{run}" if kind == "local" else None
    env = {
        "APP_ENV": "bench",
        "SECRET_KEY": uuid.uuid4().hex,
        "DATABASE_URL": f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{ctx.dbname}",
        "REDIS_URL": ctx.redis_url,
        "REDIS_NAMESPACE": namespace,
        "INSTANCE_PATH": str(instance),
        "JOB_TIMEOUT_SECONDS": "3600",
    }
    if destination is not None:
        env["BACKUP_STORAGE_URL"] = destination.as_uri()
    else:
        env.update(
            {
                "BACKUP_STORAGE_URL": f"s3://{ctx.bucket}/console",
                "S3_ENDPOINT_URL": ctx.moto_url,
                "AWS_REGION": REGION,
                **CREDENTIALS,
            }
        )
    settings = Settings.from_env(env)
    redis = redis_for(settings)
    worker = WorkerProcess(env, ctx.logs / f"worker-{kind}-{run}.log")
    try:
        worker.wait_ready(redis, namespace)
        time.sleep(0.5)  # let the worker settle into its blocking dequeue
        excludes = temp_scan_excludes(ctx)
        scan_excludes = excludes + ([destination] if destination else [])
        before = snapshot(Path("/tmp"), scan_excludes)  # the instance folder is under /tmp too
        since = time.time()
        sampler = TreeSampler(
            worker.proc.pid,
            interval=interval or SAMPLING["seconds"],
            light=not interval,  # the timed pass only notes when pg_dump starts and ends
            instance=instance,
            destination=destination,
            exclude=excludes,
        )
        sampler.start()
        meter = CpuMeter()
        started = time.monotonic()
        job_id = start_job(settings, redis, "backup", "bench")
        deadline = started + settings.job_timeout_seconds + 60
        status = None
        while time.monotonic() < deadline:
            status = job_status(redis, job_id)
            if status and status["status"] in ("finished", "failed"):
                break
            time.sleep(POLL_SECONDS)
        finished = time.monotonic()
        seconds = finished - started
        cpu = meter.stop()
        sample = sampler.stop()
        phases = {}
        if sample.dump_first_seen is not None and sample.dump_last_seen is not None:
            phases = {
                "enqueue→pg_dump start": sample.dump_first_seen - started,
                "pg_dump running": sample.dump_last_seen - sample.dump_first_seen,
                "pg_dump exit→finished": finished - sample.dump_last_seen,
            }
        if not status or status["status"] != "finished":
            raise RuntimeError(f"{row}: the job did not finish: {status and status.get('error')}\n{worker.tail()}")
        after = snapshot(Path("/tmp"), scan_excludes)
        changed, others = split_changes(changed_files(before, after, since), instance)
        result = status["result"]
    finally:
        worker.stop()
        purge_namespace(redis, namespace)
        redis.close()
    if destination is not None:
        shutil.rmtree(destination, ignore_errors=True)
    else:
        empty_bucket(ctx.moto_url, ctx.bucket)
    shutil.rmtree(instance, ignore_errors=True)
    temp = max(sample.temp_open_peak, sample.instance_growth_peak)
    return Measurement(
        row,
        seconds,
        worker_pss_mib=sample.worker_pss_peak_kib / 1024,
        dump_pss_mib=sample.dump_pss_peak_kib / 1024,
        temp_bytes=temp,
        dump_bytes=result["size"],
        job_seconds=result["seconds"],
        finish_seconds=result.get("finish_seconds"),
        idle_worker_pss_mib=sample.worker_pss_first_kib / 1024,
        fs_delta_bytes=sample.fs_delta_peak,
        store_growth_bytes=sample.store_growth_peak,
        changed_tmp_files=changed + [f"{p} (open, {s} B)" for p, s in sample.temp_files.items()],
        other_tmp_changes=others,
        sampler_busy_seconds=sample.busy_seconds,
        phases=phases,
        cpu=cpu_split(cpu, dump=sample.cpu_used(dump=True), python=sample.cpu_used(dump=False)) if sample.cpu else {},
    )


def measure_seed(ctx: Context, run: int, interval: float) -> Measurement:
    """pg_dump -Fc to a temp file, then boto3 upload_file: in a child process, like the seed's service."""
    from app.domain import pgtools

    spec = {
        "pg_dump": ctx.pg_dump.path,
        "compression": ctx.compression,
        "endpoint": ctx.moto_url,
        "bucket": ctx.bucket,
        "key": f"seed/{ctx.dbname}-{run}-{uuid.uuid4().hex[:8]}.dump",
    }
    env = {**pgtools.child_env(ctx.target), **CREDENTIALS, "PYTHONUNBUFFERED": "1"}
    env.pop("TMPDIR", None)  # the seed writes its dump to the system temp folder
    before = snapshot(Path("/tmp"), temp_scan_excludes(ctx))
    since = time.time()
    meter = CpuMeter()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--seed-child", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sampler = TreeSampler(proc.pid, interval=interval, instance=None, destination=None, exclude=temp_scan_excludes(ctx))
    sampler.start()
    out, err = proc.communicate()
    cpu = meter.stop()
    sample = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"the seed-way child failed: {err.decode(errors='replace')}")
    timing = json.loads(out.decode().strip().splitlines()[-1])
    after = snapshot(Path("/tmp"), temp_scan_excludes(ctx))
    empty_bucket(ctx.moto_url, ctx.bucket)
    return Measurement(
        ROW_SEED,
        timing["dump_seconds"] + timing["upload_seconds"],
        worker_pss_mib=sample.worker_pss_peak_kib / 1024,
        dump_pss_mib=sample.dump_pss_peak_kib / 1024,
        temp_bytes=max(sample.temp_open_peak, timing["size"]),
        dump_bytes=timing["size"],
        fs_delta_bytes=sample.fs_delta_peak,
        changed_tmp_files=[f"{p} (open, {s} B)" for p, s in sample.temp_files.items()],
        other_tmp_changes=split_changes(changed_files(before, after, since), None)[1],
        parts={"dump": timing["dump_seconds"], "upload": timing["upload_seconds"]},
        sampler_busy_seconds=sample.busy_seconds,
        # the meter spans the child's whole life, its start-up (imports) included
        cpu=cpu_split(cpu, dump=timing["pg_dump_cpu"], python=cpu["children"] - timing["pg_dump_cpu"]),
    )


def seed_child(spec: dict) -> None:
    """The seed's backup: dump to a local temp file, upload the file, delete it."""
    client = s3_client(spec["endpoint"], os.environ)
    fd, path = tempfile.mkstemp(prefix="pgconsole-seed-", suffix=".dump", dir="/tmp")
    os.close(fd)
    try:
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        subprocess.run(
            [spec["pg_dump"], "--format=custom", "--no-password", *spec["compression"], f"--file={path}"], check=True
        )
        dumped = time.monotonic()
        size = os.path.getsize(path)
        client.upload_file(path, spec["bucket"], spec["key"])
        uploaded = time.monotonic()
    finally:
        os.unlink(path)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "dump_seconds": dumped - started,
                "upload_seconds": uploaded - dumped,
                "size": size,
                "upload_cpu": me.ru_utime + me.ru_stime - self0.ru_utime - self0.ru_stime,
                "pg_dump_cpu": kids.ru_utime + kids.ru_stime,
            }
        )
    )


# --------------------------------------------------------------------------- one size, end to end


def median_of(runs: list[Measurement]) -> Measurement:
    """Median seconds; memory and temp disk: the worst run."""
    if len(runs) == 1:
        return runs[0]
    by_time = sorted(runs, key=lambda m: m.seconds)
    chosen = by_time[len(by_time) // 2]

    def worst(attr):
        values = [getattr(m, attr) for m in runs if getattr(m, attr) is not None]
        return max(values) if values else None

    return Measurement(
        chosen.row,
        statistics.median(m.seconds for m in runs),
        worker_pss_mib=worst("worker_pss_mib"),
        dump_pss_mib=worst("dump_pss_mib"),
        temp_bytes=worst("temp_bytes"),
        dump_bytes=chosen.dump_bytes,
        job_seconds=statistics.median(m.job_seconds for m in runs) if chosen.job_seconds is not None else None,
        finish_seconds=median_or_none([m.finish_seconds for m in runs]),
        idle_worker_pss_mib=chosen.idle_worker_pss_mib,
        fs_delta_bytes=worst("fs_delta_bytes"),
        store_growth_bytes=worst("store_growth_bytes"),
        changed_tmp_files=sorted({f for m in runs for f in m.changed_tmp_files}),
        other_tmp_changes=max(m.other_tmp_changes for m in runs),
        parts={k: statistics.median(m.parts[k] for m in runs) for k in chosen.parts},
        phases={k: statistics.median(m.phases[k] for m in runs if k in m.phases) for k in chosen.phases},
        cpu={k: statistics.median(m.cpu[k] for m in runs if k in m.cpu) for k in chosen.cpu},
        observed_seconds=median_or_none([m.observed_seconds for m in runs]),
        sampler_busy_seconds=median_or_none([m.sampler_busy_seconds for m in runs]),
    )


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def bench_size(size_mb: int, args, moto_url: str, bucket: str, workdir: Path) -> dict:
    from app.domain import pgtools
    from app.settings import Settings

    dbname = ensure_database(size_mb)
    settings = Settings.from_env(
        {"DATABASE_URL": f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}", "APP_ENV": "bench", "SECRET_KEY": "x",
         "PG_BIN_DIRS": os.environ.get("PG_BIN_DIRS", "")}  # fmt: skip
    )
    major, server_full = pgtools.server_version(settings.target)
    dump = pgtools.pick_client("pg_dump", major, settings.pg_bin_dirs)
    setting = settings.backup_compression or "auto"
    ctx = Context(
        dbname=dbname,
        db_bytes=database_size(dbname),
        pg_dump=dump,
        server_version=server_full,
        compression=pgtools.compression_for(setting, dump).args,
        compression_setting=setting,
        target=settings.target,
        workdir=workdir,
        moto_url=moto_url,
        bucket=bucket,
        redis_url=args.redis_url,
        logs=workdir / "logs",
    )
    log(f"{dbname}: {ctx.db_bytes / MiB:.0f} MiB; {one_line(dump.version)}; {' '.join(ctx.compression)}")
    log("warm-up: pg_dump to /dev/null (not reported), so every run reads from a warm cache")
    measure_pg_dump(ctx, 0)
    rows = [row for row in ROWS if row == ROW_PG_DUMP or ROW_KEYS[row] in args.only]
    runs: dict[str, list[Measurement]] = {row: [] for row in rows}

    def measure(row: str, run: int, interval: float) -> Measurement:
        if row == ROW_PG_DUMP:
            return measure_pg_dump(ctx, interval)
        if row == ROW_SEED:
            return measure_seed(ctx, run, interval)
        return measure_console(ctx, row, run, interval)

    # Sampling /proc/*/smaps_rollup every 50 ms slows a 2-core machine down noticeably, so the
    # seconds come from a timed pass that nothing observes, and memory and temp disk from a
    # second, sampled pass of the same thing (its own seconds are reported as "observed").
    interval = SAMPLING["seconds"]
    for run in range(1, args.repeat + 1):
        timed: dict[str, Measurement] = {}
        for row in rows:
            log(f"run {run}/{args.repeat}, timed pass: {row}")
            wait_quiet()
            timed[row] = measure(row, run, 0)
            log(f"  {timed[row].seconds:.2f} s")
            time.sleep(1)
        for row in rows:
            m = timed[row]
            m.worker_pss_mib = m.dump_pss_mib = m.temp_bytes = m.idle_worker_pss_mib = None
            m.fs_delta_bytes = m.store_growth_bytes = None
            m.changed_tmp_files = []
            if interval > 0:
                log(f"run {run}/{args.repeat}, sampled pass ({interval * 1000:.0f} ms): {row}")
                wait_quiet()
                p = measure(row, run, interval)
                m.worker_pss_mib, m.dump_pss_mib, m.temp_bytes = p.worker_pss_mib, p.dump_pss_mib, p.temp_bytes
                m.idle_worker_pss_mib, m.fs_delta_bytes = p.idle_worker_pss_mib, p.fs_delta_bytes
                m.store_growth_bytes, m.changed_tmp_files = p.store_growth_bytes, p.changed_tmp_files
                m.other_tmp_changes = p.other_tmp_changes
                m.observed_seconds, m.sampler_busy_seconds = p.seconds, p.sampler_busy_seconds
                log(
                    f"  {p.seconds:.2f} s observed"
                    + (f", worker PSS {p.worker_pss_mib:.1f} MiB" if p.worker_pss_mib is not None else "")
                    + f", pg_dump PSS {p.dump_pss_mib:.1f} MiB, temp {p.temp_bytes} B"
                )
                time.sleep(1)
            runs[row].append(m)
    return {"ctx": ctx, "results": {row: median_of(ms) for row, ms in runs.items()}, "runs": runs}


# --------------------------------------------------------------------------- report


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fmt(value, spec: str = ".1f", none: str = "—") -> str:
    return none if value is None else format(value, spec)


def table(section: dict) -> str:
    results = section["results"]
    floor = results[ROW_PG_DUMP].seconds
    lines = [
        "| run | seconds | ratio to pg_dump | worker peak PSS MB | temp disk bytes | dump size MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in [r for r in ROWS if r in results]:
        m = results[row]
        lines.append(
            f"| {row} | {m.seconds:.2f} | {m.seconds / floor:.3f} | {fmt(m.worker_pss_mib)} | "
            f"{fmt(m.temp_bytes, 'd')} | {fmt(m.dump_bytes / MiB if m.dump_bytes else None)} |"
        )
    return "\n".join(lines)


def details(section: dict) -> str:
    results = section["results"]
    floor = results[ROW_PG_DUMP].seconds
    lines = [
        "| run | job's own seconds (ratio) | seconds while sampled (sampler busy) | pg_dump peak PSS MB | "
        "idle worker PSS MB | /tmp fs used Δ peak, destination excluded | console store growth B | steps |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    present = [r for r in ROWS if r in results]
    for row in present:
        m = results[row]
        own = f"{m.job_seconds:.2f} ({m.job_seconds / floor:.3f})" if m.job_seconds is not None else "—"
        finishing = {"store finishing the file": m.finish_seconds} if m.finish_seconds is not None else {}
        steps = ", ".join(f"{k} {v:.2f} s" for k, v in {**m.parts, **m.phases, **finishing}.items()) or "—"
        observed = (
            f"{m.observed_seconds:.2f} ({m.sampler_busy_seconds:.2f} s)" if m.observed_seconds is not None else "—"
        )
        lines.append(
            f"| {row} | {own} | {observed} | {fmt(m.dump_pss_mib)} | {fmt(m.idle_worker_pss_mib)} | "
            f"{fmt(m.fs_delta_bytes, 'd')} | {fmt(m.store_growth_bytes, 'd')} | {steps} |"
        )
    if any(len(ms) > 1 for ms in section["runs"].values()):
        lines.append("")
        lines.append(
            "Every run's seconds: "
            + "; ".join(f"{row}: " + ", ".join(f"{m.seconds:.2f}" for m in section["runs"][row]) for row in present)
        )
    with_cpu = [row for row in present if results[row].cpu]
    if with_cpu:
        lines += [
            "",
            "Where the CPU went during the timed pass (seconds of CPU; the machine has "
            f"{len(os.sched_getaffinity(0))} cores, so a pass whose cores-busy figure nears that is CPU-bound):",
            "",
            "| run | wall s | cores busy | pg_dump | worker + work horse (seed: its Python) | bench process "
            "(moto S3, polling) | other (PostgreSQL backend, rest of machine) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in with_cpu:
            c = results[row].cpu
            lines.append(
                f"| {row} | {results[row].seconds:.2f} | {c['cores busy']:.2f} | {c['pg_dump']:.2f} | "
                f"{c['python']:.2f} | {c['bench']:.2f} | {c['other']:.2f} |"
            )
    lines += ["", "Temp files seen (sampled pass):", ""]
    for row in present:
        m = results[row]
        names = ", ".join(f"`{name}`" for name in m.changed_tmp_files[:6]) or "none"
        if len(m.changed_tmp_files) > 6:
            names += f" and {len(m.changed_tmp_files) - 6} more"
        count, size = m.other_tmp_changes
        lines.append(
            f"- {row}: held open by the run's processes or new in its instance folder: {names}; elsewhere in "
            f"/tmp {count} file(s) new or grown by {size} B during the run (other programs on the machine write "
            "there too)"
        )
    return "\n".join(lines)


def targets(section: dict) -> list[str]:
    r = section["results"]
    floor = r[ROW_PG_DUMP].seconds
    out = []
    console = [row for row in (ROW_S3, ROW_LOCAL) if row in r]
    for row in console:
        ratio = r[row].seconds / floor
        verdict = "met" if ratio <= 1.05 else f"missed: {(ratio - 1.05) * floor:.2f} s over the 1.05 allowance"
        out.append(f"- {row}: end to end {ratio:.3f} × pg_dump (target ≤ 1.05): {verdict}")
        finishing = r[row].finish_seconds
        if ratio > 1.05 and finishing:
            allowance = 0.05 * floor
            out.append(
                f"  - after the last byte, the store alone took {finishing:.2f} s to finish the file "
                f"({'moto’s CompleteMultipartUpload' if row == ROW_S3 else 'fsync and rename'}): "
                f"{finishing / allowance:.1f} × the whole 5 % allowance ({allowance:.2f} s)"
            )
    for row in console:
        pss = r[row].worker_pss_mib
        if pss is not None:
            verdict = "met" if pss <= 150 else f"missed by {pss - 150:.1f} MB"
            out.append(f"- {row}: worker peak PSS {pss:.1f} MB (target ≤ 150 MB): {verdict}")
    for row in console:
        temp = r[row].temp_bytes
        if temp is not None:
            out.append(f"- {row}: temp disk {temp} B (target 0): {'met' if temp == 0 else 'missed'}")
    return out


def report(sections: list[dict], args) -> str:
    first = sections[0]["ctx"]
    lines = [
        "# pgconsole backup benchmark",
        "",
        f"- date: {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}",
        f"- pg_dump: {one_line(first.pg_dump.version)} (`{first.pg_dump.path}`); server {first.server_version}",
        f"- compression: `{' '.join(first.compression)}` (BACKUP_COMPRESSION={first.compression_setting}, "
        "the console's default)",
        f"- machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {machine_summary()}",
        f"- S3: moto {moto_version()} ThreadedMotoServer inside the bench process (it shares the 2 cores with "
        "pg_dump, the worker and PostgreSQL; parts kept in memory)",
        f"- runs per measurement: {args.repeat} (seconds: median; memory and temp disk: worst run); a warm-up "
        "pg_dump ran first",
        "- each measurement runs twice: a timed pass that nothing observes (the seconds), then a sampled pass "
        "(memory, temp disk); sampling /proc every 50 ms on 2 busy cores slows the job itself, see Details",
        f"- before each pass the bench waited (up to {QUIET['max_wait']:.0f} s) for the machine to be under "
        f"{QUIET['threshold']:.0%} busy: {QUIET['waited']:.0f} s waited in all; the busiest a pass started at: "
        f"{QUIET['worst']:.0%} (other work during a pass is not controlled)",
        "- MB = 2^20 bytes. worker peak PSS = worker + forked work horse, pg_dump excluded (for the seed row: the "
        "Python process that runs pg_dump and boto3 `upload_file`), sampled every "
        f"{args.sample_ms} ms from /proc/*/smaps_rollup" + ("" if args.sample_ms else " (sampling off: no figures)"),
        "- temp disk = peak bytes of files under /tmp, /var/tmp or the instance folder (or deleted-but-open) held "
        "open by the worker tree, pg_dump included, plus instance-folder growth; the local destination and the "
        "console's SQLite store are not temp",
    ]
    for section in sections:
        ctx = section["ctx"]
        lines += [
            "",
            f"## {ctx.dbname}: {ctx.db_bytes / MiB:.0f} MB on disk (pg_database_size)",
            "",
            table(section),
            "",
            "Details:",
            "",
            details(section),
            "",
            "Targets:",
            "",
            *targets(section),
        ]
    if len(sections) > 1:
        a, b = sections[0], sections[-1]
        lines += ["", "## Memory at 2× database size", ""]
        for row in [r for r in (ROW_S3, ROW_LOCAL) if r in a["results"]]:
            m1, m2 = a["results"][row].worker_pss_mib, b["results"][row].worker_pss_mib
            if m1 is None or m2 is None:
                continue
            change = (m2 / m1 - 1) * 100
            verdict = "met" if abs(change) <= 10 else "missed"
            lines.append(
                f"- {row}: {m1:.1f} MB at {a['ctx'].db_bytes / MiB:.0f} MB → {m2:.1f} MB at "
                f"{b['ctx'].db_bytes / MiB:.0f} MB ({change:+.1f}%; target ±10%: {verdict})"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500, help="bench database size on disk, MiB (default 500)")
    parser.add_argument("--out", default="bench/results/backup.md", help="Markdown report file")
    parser.add_argument("--double", action="store_true", help="also run at 2× --size-mb, to compare memory")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median seconds)")
    parser.add_argument(
        "--keep-db",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep pgconsole_bench_<size> for the next run (default); --no-keep-db drops it",
    )
    parser.add_argument(
        "--sample-ms",
        type=int,
        default=50,
        help="memory/temp sampling interval (default 50); 0 = no sampling, to measure the observer's cost",
    )
    parser.add_argument(
        "--only",
        default="s3,local,seed",
        help="comma-separated runs besides pg_dump: s3, local, seed (default all)",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--seed-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_child:
        seed_child(json.loads(args.seed_child))
        return 0
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    args.only = {name.strip() for name in args.only.split(",") if name.strip()}
    if args.only - {"s3", "local", "seed"}:
        parser.error("--only takes s3, local and seed")
    SAMPLING["seconds"] = max(args.sample_ms, 0) / 1000

    # moto keeps objects in memory (so its spill never looks like the console's temp disk); anything
    # this process still spills goes under the bench's own folder, which the temp accounting excludes.
    workdir = make_workdir("pgconsole-bench-", "logs")
    server, moto_url = start_moto()
    bucket = f"pgconsole-bench-{uuid.uuid4().hex[:10]}"
    sizes = [args.size_mb, 2 * args.size_mb] if args.double else [args.size_mb]
    sections = []
    try:
        s3_client(moto_url).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        for size in sizes:
            sections.append(bench_size(size, args, moto_url, bucket, workdir))
    finally:
        with contextlib.suppress(Exception):
            remove_bucket(moto_url, bucket)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep_db:
            for size in sizes:
                name = f"pgconsole_bench_{size}"
                drop_database(name)
                log(f"dropped {name}")
    write_report(report(sections, args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
