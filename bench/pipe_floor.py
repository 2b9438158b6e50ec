"""What any reader of pg_dump's output costs pg_dump: the floor under the local-folder target.

    .venv/bin/python -m bench.pipe_floor [--sizes 500,1000] [--rounds 5] [--out bench/results/pipe-floor.md]

A backup to a local folder is measured against `pg_dump -Fc` writing to /dev/null. A write to
/dev/null costs pg_dump nothing; a write into a pipe (4 KiB at a time, pg_dump's own block) or a
file does. This benchmark times, on the benchmark databases of bench.performance and at the
console's compression, interleaved and the order rotated every round:

- `pg_dump > /dev/null` (the target's reference);
- `pg_dump | reader`: the console's own pipe reader (`app.adapters.pg_dump.read_output`), which
  does nothing with the blocks: what handing the bytes to any process costs;
- `pg_dump | cat > /dev/null`: the shortest shell pipe;
- `pg_dump -f FILE` then `fsync`: the shortest script that keeps the backup on disk;
- the console's stream (`stream_backup` into a `LocalStorage` folder, in this process): reading,
  sha256, writing and fsync, without the web, the queue or the job's bookkeeping;
- two levers tried on 2026-12-04 and not kept (bench/README.md): `stdbuf -o1M pg_dump | reader`
  (coreutils gives pg_dump's stdout a 1 MiB buffer: 1 MiB writes instead of 4 KiB), and the
  console's stream read at nice +10 (pg_dump and its backend at the normal priority).

Each figure is the median of the rounds with the spread, and its ratio to /dev/null; beside it the
CPU of this process (the reader, the stream) and of the children it waited for (pg_dump, and `cat`).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from app.adapters import postgres
from app.adapters.database_facts import database_facts
from app.adapters.pg_dump import RunningDump, read_output
from app.adapters.storage import LocalStorage
from app.config import TargetDatabase
from app.domain import backup
from bench import common
from bench.common import ensure_database, log, machine_summary, wait_until_idle, write_report
from tests.support import ROOT

common.LOG["prefix"] = "pipe-floor"
VARIANTS = ("/dev/null", "reader", "cat", "file+fsync", "console stream", "stdbuf -o1M reader", "niced stream")


def contenders(target: TargetDatabase, folder: Path) -> dict[str, Callable[[], None]]:
    major, version = postgres.server_version(target)
    dump = postgres.pick_client("pg_dump", major)
    compression = postgres.compression_for("auto", dump)
    argv = [dump.path, "--format=custom", "--no-password", *compression.args]
    env = postgres.child_env(target)

    def devnull() -> None:
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)

    def reader(prefix: tuple[str, ...] = ()) -> None:
        proc = subprocess.Popen([*prefix, *argv], stdout=subprocess.PIPE, env=env, bufsize=0)
        assert proc.stdout is not None
        for _ in read_output(proc.stdout.fileno()):
            pass
        proc.stdout.close()
        if proc.wait() != 0:
            raise RuntimeError("pg_dump failed")

    def cat() -> None:
        with subprocess.Popen(argv, stdout=subprocess.PIPE, env=env) as proc:
            subprocess.run(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL, check=True)
        if proc.returncode != 0:
            raise RuntimeError("pg_dump failed")

    def file_fsync() -> None:
        path = folder / "plain.dump"
        subprocess.run([*argv, "--file", str(path)], env=env, check=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()

    def console_stream(nice: int = 0) -> None:
        plan = backup.BackupPlan(filename=f"bench-{time.time_ns()}.dump", dump=dump, server_version=version,
                                 compression=compression.args, compression_method=compression.method,
                                 expected_bytes=0, database_bytes=database_facts(target).size)  # fmt: skip
        running = RunningDump(plan.dump, plan.compression, target)  # at this process's priority

        def stream() -> None:
            os.setpriority(os.PRIO_PROCESS, 0, nice)  # on Linux: this thread only
            backup.stream_backup(plan, target, LocalStorage(folder), running=running)

        worker = threading.Thread(target=stream)
        worker.start()
        worker.join()
        (folder / plan.filename).unlink()

    def stdbuf_reader() -> None:
        reader(("stdbuf", "-o1M"))

    def niced_stream() -> None:
        console_stream(nice=10)

    run = (devnull, reader, cat, file_fsync, console_stream, stdbuf_reader, niced_stream)
    return dict(zip(VARIANTS, run, strict=True))


def cpu_seconds() -> tuple[float, float]:
    """(this process's CPU, its waited-for children's CPU), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def checkpoint() -> None:
    with common.pg_connect() as conn:
        conn.execute("CHECKPOINT")


def run_size(size_mb: int, rounds: int) -> list[str]:
    name = ensure_database(size_mb)
    target = TargetDatabase(host=common.PG_HOST, port=common.PG_PORT, user=common.PG_USER, password="", dbname=name)
    folder = Path(tempfile.mkdtemp(prefix="pgconsole-pipe-floor-", dir="/var/tmp"))
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ours: dict[str, list[float]] = {v: [] for v in VARIANTS}  # this process's CPU (the reader, the stream)
    tools: dict[str, list[float]] = {v: [] for v in VARIANTS}  # the children's: pg_dump (and cat)
    try:
        run = contenders(target, folder)
        for round_no in range(rounds):
            order = VARIANTS[round_no % len(VARIANTS) :] + VARIANTS[: round_no % len(VARIANTS)]
            for variant in order:
                checkpoint()
                wait_until_idle(0.25, 30, variant)
                before = cpu_seconds()
                started = time.monotonic()
                run[variant]()
                seconds[variant].append(time.monotonic() - started)
                after = cpu_seconds()
                ours[variant].append(after[0] - before[0])
                tools[variant].append(after[1] - before[1])
                log(f"{size_mb} MiB round {round_no + 1}/{rounds} {variant}: {seconds[variant][-1]:.2f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = statistics.median(seconds["/dev/null"])
    lines = [f"### {name}: {common.database_size(name) / common.MiB:.0f} MiB on disk, {rounds} rounds", "",
             "| contender | median s | spread s | ratio to /dev/null | this process's CPU s "
             "| pg_dump's CPU s (and cat's) |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for variant in VARIANTS:
        xs = seconds[variant]
        lines.append(f"| {variant} | {statistics.median(xs):.2f} | {min(xs):.2f}–{max(xs):.2f} | "
                     f"{statistics.median(xs) / base:.3f} | {statistics.median(ours[variant]):.2f} | "
                     f"{statistics.median(tools[variant]):.2f} |")  # fmt: skip
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000", help="bench database sizes, MiB (default 500,1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every contender (default 5)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "pipe-floor.md"))
    args = parser.parse_args()
    started = datetime.now()
    body = []
    for size in (int(s) for s in args.sizes.split(",")):
        body += run_size(size, args.rounds)
    header = [
        "# What any reader of pg_dump's output costs pg_dump (bench/pipe_floor.py)", "",
        f"`{' '.join(sys.argv)}`, {started:%Y-%m-%d %H:%M} – {datetime.now():%H:%M}.", "",
        f"- machine: {machine_summary()}",
        "- after a CHECKPOINT and a wait (up to 30 s) for the machine to be under 25 % busy; interleaved, the order "
        "rotated each round; medians, spread (min–max)", "",
    ]  # fmt: skip
    write_report("\n".join(header + body), args.out)


if __name__ == "__main__":
    main()
