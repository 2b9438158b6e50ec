"""Encryption benchmark: the console's backup job with age encryption against the same job without.

    .venv/bin/python -m bench.encryption_bench [--size-mb 200] [--repeat 5] [--out bench/results/encryption.md]

Two real workers (`python -m flask --app wsgi worker`), identical but for
`BACKUP_ENCRYPTION_RECIPIENTS` (a key made with pyrage for this run), back up the same bench
database (bench/common.py's generator, reused when it exists) into a local folder. The two are
interleaved, one run of each per round and the order swapped every round, so that other work on
the machine's two cores falls on both alike. Seconds are from enqueue until the job says
finished (the API's view), median and spread over the rounds. Memory is a separate, sampled
pass of each (sampling /proc slows a 2-core machine): the peak PSS of the worker and its work
horse, pg_dump excluded.

Wall time on a shared 2-core machine moves by more than the few percent in question, so the
same rounds also run the backup stream alone in this process (`stream_backup` into a folder,
as the job does) and report CPU seconds, which other load does not change: this process's
own (read, [encrypt,] hash, write) and pg_dump's (`RUSAGE_CHILDREN`).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from bench import common
from bench.common import (
    DEFAULT_REDIS_URL,
    PG_HOST,
    PG_PORT,
    PG_USER,
    MiB,
    comm_of,
    database_size,
    log,
    machine_summary,
    make_workdir,
    process_tree,
    pss_kib,
    purge_namespace,
    wait_until_idle,
    write_report,
)
from tests.support.processes import Processes

common.LOG["prefix"] = "encryption"
QUIET = {"threshold": 0.35, "max_wait": 30.0}
KINDS = ("plain", "encrypted")


class PeakPss(threading.Thread):
    """The worker tree's peak PSS (KiB), pg_dump excluded, sampled every 100 ms."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.peak, self.done = root, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = sum(pss_kib(pid) for pid in process_tree(self.root) if comm_of(pid) != "pg_dump")
            self.peak = max(self.peak, total)
            time.sleep(0.1)


class Console:
    """One worker with its own namespace, instance and destination folder."""

    def __init__(self, kind: str, dbname: str, workdir: Path, recipients: str):
        from app import create_app
        from app.services.clients import redis_for

        self.kind = kind
        self.folder = workdir / f"backups-{kind}"
        self.env = {
            "APP_ENV": "bench",
            "APP_NAME": f"bench{kind}",
            "SECRET_KEY": uuid.uuid4().hex,
            "DATABASE_URL": f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}",
            "REDIS_URL": DEFAULT_REDIS_URL,
            "REDIS_NAMESPACE": f"pgbench-{uuid.uuid4().hex[:12]}",
            "INSTANCE_PATH": str(workdir / f"instance-{kind}"),
            "BACKUP_STORAGE_URL": self.folder.as_uri(),
            "JOB_TIMEOUT_SECONDS": "3600",
            "BACKUP_MIN_INTERVAL_SECONDS": "0",
            "MAX_BACKUP_FILES": "1",
        }
        if recipients:
            self.env["BACKUP_ENCRYPTION_RECIPIENTS"] = recipients
        self.processes = Processes(workdir)
        self.processes.flask(self.env, "db", "upgrade")  # the worker refuses a store not at this release's revision
        self.app = create_app(self.env)  # a job is requested in the console store, as the web app requests it
        self.settings = self.app.config["SETTINGS"]
        self.redis = redis_for(self.settings)
        self.worker = self.processes.worker(self.env, f"worker-{kind}")
        from app.jobs.queue import queue_for

        self.processes.wait_registered(self.redis, queue_for(self.settings, self.redis).name, f"worker-{kind}")

    def backup(self, sample: bool = False) -> tuple[float, int, int]:
        """(seconds from enqueue to finished, stored bytes, peak PSS KiB or 0)."""
        from app.jobs.queue import job_status, start_job

        sampler = PeakPss(self.worker.pid) if sample else None
        if sampler:
            sampler.start()
        started = time.monotonic()
        with self.app.app_context():
            job_id = start_job(self.settings, self.redis, "backup", "bench")
            while (status := job_status(self.redis, job_id))["status"] not in ("finished", "failed"):
                time.sleep(common.POLL_SECONDS)
        seconds = time.monotonic() - started
        if sampler:
            sampler.done.set()
            sampler.join()
        if status["status"] != "finished":
            raise RuntimeError(f"{self.kind} backup failed: {status['error']}")
        return seconds, status["result"]["size"], sampler.peak if sampler else 0

    def close(self) -> None:
        self.processes.stop_all()
        purge_namespace(self.redis, self.settings.redis_namespace)


class StreamCpu:
    """`stream_backup` in this process, timed by CPU: ours and pg_dump's."""

    def __init__(self, dbname: str, workdir: Path, recipient: str):
        from app.adapters import postgres
        from app.adapters.storage import LocalStorage
        from app.config import TargetDatabase

        self.target = TargetDatabase(PG_HOST, PG_PORT, PG_USER, "", dbname)
        self.dump = postgres.pick_client("pg_dump", postgres.server_version(self.target)[0], ())
        self.compression = postgres.compression_for("auto", self.dump).args
        self.storage = LocalStorage(workdir / "stream")
        self.recipients = {"plain": (), "encrypted": (recipient,)}
        self.ours: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.pg_dump: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.wall: dict[str, list[float]] = {kind: [] for kind in KINDS}

    def run(self, kind: str) -> None:
        from app.domain.backup import BackupPlan, stream_backup

        plan = BackupPlan(f"stream-{kind}.dump", self.dump, "", self.compression, 0, 0,
                          recipients=self.recipients[kind])  # fmt: skip
        before, children, started = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.monotonic()
        stream_backup(plan, self.target, self.storage)
        self.wall[kind].append(time.monotonic() - started)
        self.ours[kind].append(cpu(resource.RUSAGE_SELF) - before)
        self.pg_dump[kind].append(cpu(resource.RUSAGE_CHILDREN) - children)
        self.storage.delete(plan.filename)


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "encryption.md"))
    args = parser.parse_args()

    from pyrage import x25519

    dbname = common.ensure_database(args.size_mb)
    db_bytes = database_size(dbname)
    workdir = make_workdir("pgconsole-encbench-")
    recipient = str(x25519.Identity.generate().to_public())  # the private key is not needed: nothing is restored
    runs = run_rounds(args.repeat, dbname, workdir, recipient)
    write_report("\n".join(report(args, dbname, db_bytes, runs)), args.out)


def run_rounds(repeat: int, dbname: str, workdir: Path, recipient: str) -> dict:
    """A warm-up, `repeat` timed rounds of both kinds (the order swapped each round), then one sampled run of each."""
    consoles = {kind: Console(kind, dbname, workdir, recipient if kind == "encrypted" else "") for kind in KINDS}
    stream = StreamCpu(dbname, workdir, recipient)
    seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
    sizes: dict[str, int] = {}
    busiest = 0.0
    try:
        log("warm-up: one backup of each (not reported)")
        for kind in KINDS:
            consoles[kind].backup()
        for round_no in range(repeat):
            order = KINDS if round_no % 2 == 0 else KINDS[::-1]
            for kind in order:
                busy, _ = wait_until_idle(QUIET["threshold"], QUIET["max_wait"], kind)
                busiest = max(busiest, busy)
                taken, size, _ = consoles[kind].backup()
                seconds[kind].append(taken)
                sizes[kind] = size
                log(f"round {round_no + 1}/{repeat} {kind}: {taken:.2f} s, {size / MiB:.1f} MiB")
                stream.run(kind)
        peaks = {}
        for kind in KINDS:
            wait_until_idle(QUIET["threshold"], QUIET["max_wait"], kind)
            sampled, _, peaks[kind] = consoles[kind].backup(sample=True)
            log(f"sampled {kind}: {sampled:.2f} s, peak PSS {peaks[kind] / 1024:.1f} MiB")
    finally:
        for console in consoles.values():
            console.close()
        shutil.rmtree(workdir, ignore_errors=True)

    return {"seconds": seconds, "sizes": sizes, "peaks": peaks, "busiest": busiest, "stream": stream}


def report(args, dbname: str, db_bytes: int, runs: dict) -> list[str]:
    """The report's lines: the method, both kinds' seconds and memory, and the stream's CPU."""
    seconds, sizes, peaks, busiest, stream = (runs[k] for k in ("seconds", "sizes", "peaks", "busiest", "stream"))
    plain, encrypted = (statistics.median(seconds[k]) for k in KINDS)
    from importlib.metadata import version

    lines = [
        "# pgconsole encryption benchmark",
        "",
        f"- date: {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}",
        f"- database: `{dbname}`, {db_bytes / MiB:.0f} MiB on disk (bench/common.py's generator), PostgreSQL on "
        f"{PG_HOST}:{PG_PORT}; the console's default compression",
        "- each run: the console's backup job in a real worker process into a local folder, timed from enqueue "
        "until the job reports finished; `encrypted` has `BACKUP_ENCRYPTION_RECIPIENTS` set to one X25519 "
        f"recipient (pyrage {version('pyrage')}), `plain` has not; nothing else differs",
        f"- {args.repeat} rounds after one warm-up backup of each; each round runs both, the order swapped every "
        "round; seconds are the median with the spread (min–max)",
        f"- before each run the bench waited up to {QUIET['max_wait']:.0f} s for the machine to be under "
        f"{QUIET['threshold']:.0%} busy; the busiest a run started at: {busiest:.0%} (others were running tests "
        "on these 2 cores; load during a run is not controlled)",
        "- memory: a separate sampled run of each (PSS of the worker and its work horse every 100 ms, pg_dump "
        "excluded), because sampling /proc slows the timed runs",
        f"- machine: {os.cpu_count()} cores, {machine_summary()}",
        "",
        "| backup | seconds (median) | spread | stored MiB | peak worker PSS MiB | time vs plain |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        median = statistics.median(seconds[kind])
        lines.append(
            f"| {kind} | {median:.2f} | {spread(seconds[kind])} | {sizes[kind] / MiB:.1f} | "
            f"{peaks[kind] / 1024:.1f} | {median / plain:.3f} × |"
        )
    return lines + stream_lines(stream, seconds, sizes)



def stream_lines(stream: StreamCpu, seconds: dict[str, list[float]], sizes: dict[str, int]) -> list[str]:
    """The stream alone, and what encryption costs the worker's CPU and the wall time."""
    plain, encrypted = (statistics.median(seconds[k]) for k in KINDS)
    lines: list[str] = []
    lines += [
        "",
        "The stream alone (`stream_backup` in the bench process, same rounds): CPU seconds, median (min–max).",
        "",
        "| backup | wall s | the worker's CPU s | pg_dump's CPU s |",
        "|---|---:|---:|---:|",
    ]
    for kind in KINDS:
        lines.append(
            f"| {kind} | {statistics.median(stream.wall[kind]):.2f} ({spread(stream.wall[kind])}) | "
            f"{statistics.median(stream.ours[kind]):.2f} ({spread(stream.ours[kind])}) | "
            f"{statistics.median(stream.pg_dump[kind]):.2f} ({spread(stream.pg_dump[kind])}) |"
        )
    extra = statistics.median(stream.ours["encrypted"]) - statistics.median(stream.ours["plain"])
    lines += [
        "",
        f"Encryption costs the worker {extra:+.2f} CPU s per {sizes['plain'] / MiB:.0f} MiB archive, "
        f"{100 * extra / min(seconds['plain']):+.1f} % of the plain job's fastest run; it runs beside pg_dump "
        "(which keeps one core busy), so on a quiet machine it adds at most about that to the wall time.",
        "",
        f"Encrypted / plain: **{encrypted / plain:.3f} ×** by the medians (target ≤ 1.05 ×); "
        f"{min(seconds['encrypted']) / min(seconds['plain']):.3f} × by the fastest runs; the median of the "
        f"rounds' own ratios (each round's two runs back to back, so slow changes in load cancel): "
        f"{statistics.median(e / p for e, p in zip(seconds['encrypted'], seconds['plain'], strict=True)):.3f} ×. "
        "The age file is "
        f"{sizes['encrypted'] - sizes['plain']:+d} bytes against the plain archive of the same database "
        "(header plus 16 bytes per 64 KiB chunk; the two runs' dumps can differ by a few bytes).",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
