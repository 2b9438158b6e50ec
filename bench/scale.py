"""The worker's memory at any archive size: a simulated dump of 1 GiB to 1 TiB through the real upload path.

    .venv/bin/python -m bench.scale [--sizes 1G,10G,100G] [--max-parts 10000] [--max-part-size 5GiB]
                                    [--repeat 1] [--restore-size 10G] [--sample-ms 200]
    .venv/bin/python -m bench.scale --sizes 1T                    # the long row, on its own
    .venv/bin/python -m bench.scale --sizes 10G --max-parts 1000  # Scaleway's limit
    .venv/bin/python -m bench.scale --restore-size 10G            # only the streamed restore (bench/scale_restore.py)

Each row is one backup in a fresh worker process: a child that loads what a real RQ work horse has
loaded (the app built from its settings as `flask worker` builds it, app.jobs.tasks imported, the heap
frozen) and runs the console's own `stream_backup` with a `BackupPlan` whose part size the console
plans itself (`storage.plan_upload`, from the expected size and the store's S3_MAX_PARTS and
S3_MAX_PART_SIZE). Only pg_dump is simulated: the plan's `pg_dump` is a small script that ignores its
arguments and writes N bytes (a random 1 MiB block, repeated: incompressible, and nearly free to make),
so the bytes go through the real pipe reader, sha256, part staging and S3 client to a local
S3-compatible sink (bench/s3_sink.py) that checks every part against the limits and discards it.

Per row: the worker's peak PSS (/proc/<pid>/smaps_rollup every --sample-ms, the generator apart) and
VmHWM (its peak RSS, an upper bound), the part size and count the sink saw, throughput (bytes / wall
seconds of `stream_backup`), and the CPU of the worker, the generator and the sink. Rows are merged
into bench/results/scale.json (one per kind, size and store limit; a new run replaces its rows) and the
report bench/results/scale.md is written from them, with a verdict for each target of the issue.
MB = 2^20 bytes throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench import common
from bench.common import MiB, cpu_times, log, machine_summary, make_workdir, pss_kib, wait_until_idle
from bench.performance.meter import cpu_of
from bench.s3_sink import Limits, RunningSink, running_sink
from tests.support import ROOT
from tests.support.processes import Processes, child_env, stop_group

common.LOG["prefix"] = "scale"
PSS_TARGET_MB = 150
SPREAD_TARGET_MB = 20
THROUGHPUT_TARGET = 0.90  # the largest row's throughput at least this × the smallest's
BUCKET = "scale-bench"
BLOCK = MiB  # the generator repeats one random block of this size
RESULTS = ROOT / "bench" / "results"
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
S3_LIMITS = Limits()  # S3's own: 10,000 parts of at most 5 GiB


def parse_size(text: str) -> int:
    """1G, 10GiB, 1T, 512M → bytes (binary units: 1G = 1GiB = 2^30)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(?:ib)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1G, 10G, 1T or 5GiB")
    return int(match.group(1)) * UNITS[match.group(2).lower()]


def size_label(n: int) -> str:
    """2^30 → "1 GiB"; sizes that are not whole units in MiB."""
    for unit, name in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n / MiB:.1f} MiB"


# --------------------------------------------------------------------------- the simulated pg_dump


def write_generator(folder: Path, size: int) -> Path:
    """An executable that ignores pg_dump's arguments and writes `size` bytes: one random 1 MiB block, repeated."""
    block = folder / "block.bin"
    if not block.exists():
        block.write_bytes(os.urandom(BLOCK))
    script = folder / f"pg_dump-{size}"
    script.write_text(f"""#!{sys.executable} -S
import os
view = memoryview(open({str(block)!r}, "rb").read())
left, at = {size}, 0
while left:
    written = os.write(1, view[at : at + min(left, len(view) - at)])
    left -= written
    at = (at + written) % len(view)
""")
    script.chmod(0o700)
    return script


# --------------------------------------------------------------------------- the worker under test


def load_worker():
    """The app as `flask --app wsgi worker` builds it, with what a work horse has imported before its job
    starts, and the heap frozen as the worker freezes it before forking; for a worker child."""
    import gc

    import app.jobs.tasks  # noqa: F401
    from app import create_app
    from app.jobs import runtime

    flask_app = create_app()  # from the environment the bench gave this child
    runtime.configure(flask_app)
    gc.freeze()
    return flask_app


def timed(work: Callable[[], dict], ready: dict) -> None:
    """In a worker child: say `ready` (JSON), wait for the bench's "go" (its sampler is running), run `work`
    and print what it returned with its wall and CPU seconds and the process's VmHWM (JSON)."""
    import resource

    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    print(json.dumps({"ready": True, **ready}), flush=True)
    sys.stdin.readline()
    own, reaped, started = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.monotonic()
    out = dict(ready)
    try:
        out.update(work())
    except Exception as exc:  # the row's failure, in the report
        out["error"] = f"{type(exc).__name__}: {exc}"
    out.update(seconds=time.monotonic() - started, worker_cpu=cpu(resource.RUSAGE_SELF) - own,
               tool_cpu=cpu(resource.RUSAGE_CHILDREN) - reaped, vmhwm_kib=status_kib("VmHWM"))  # fmt: skip
    print(json.dumps(out), flush=True)


def stream_child(spec: dict) -> None:
    """One backup of `spec["bytes"]` from the generator through `stream_backup` to the store (the sink)."""
    from datetime import timedelta

    from app.adapters import postgres
    from app.adapters.storage import WontFit
    from app.domain import backup
    from app.jobs import runtime

    flask_app = load_worker()
    size = int(spec["bytes"])
    with flask_app.app_context():
        ours = runtime.console()
        ours.storage.check()  # what the backup job asks of the store before it plans
        ours.storage.abort_stale_uploads(older_than=timedelta(hours=6))
        try:
            # As plan_backup plans: the estimate and the database's size are both the stream's (it does not
            # compress); the plan leaves room for the estimate to double.
            part_size = ours.storage.plan_upload(size, room_for=size)
        except WontFit as exc:
            print(json.dumps({"refused": str(exc)}), flush=True)
            return
        tool = postgres.ClientTool("pg_dump", spec["generator"], 15, "15 (a generator of random bytes)")
        plan = backup.BackupPlan(filename=spec["filename"], dump=tool, server_version="15", compression=[],
                                 expected_bytes=size, database_bytes=size, part_size=part_size)  # fmt: skip

        def work() -> dict:
            result = backup.stream_backup(plan, ours.target, ours.storage)
            return {"size": result.size, "sha256": result.sha256, "finish_seconds": result.finish_seconds}

        timed(work, {"part_size": part_size})


def status_kib(field: str, pid: int | str = "self") -> int:
    """A `kB` line of /proc/<pid>/status (0 when absent)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PssSampler(threading.Thread):
    """The peak PSS of one process (its children, the generator or pg_restore, apart), read every `interval` s."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.first_kib = pss_kib(pid)  # after the imports, before the work
        self.peak_kib, self.samples = self.first_kib, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.peak_kib = max(self.peak_kib, pss_kib(self.pid))
            self.samples += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        self.peak_kib = max(self.peak_kib, pss_kib(self.pid))  # the child waits for stdin to close


def run_child(mode: str, spec: dict, env: dict[str, str], *, label: str, server_pid: int,
              sample_seconds: float) -> dict:  # fmt: skip
    """A worker child in `mode`, measured from its "go" to its result: its peak PSS, what it reported, the
    CPU of the S3 server (`server_pid`) and of the whole machine. {"refused": …} when it did not get ready."""
    argv = [sys.executable, "-m", "bench.scale", "--worker-child", json.dumps({**spec, "mode": mode})]
    child = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        first = json.loads(child.stdout.readline() or '{"error": "the worker child exited at start"}')
        if not first.get("ready"):
            return {"refused": first.get("refused") or first.get("error")}
        busy, _ = wait_until_idle(0.35, 30, label)
        sampler = PssSampler(child.pid, sample_seconds)
        server_cpu, machine = sum(cpu_of(server_pid) or (0, 0)), cpu_times()
        sampler.start()
        child.stdin.write("go\n")
        child.stdin.flush()
        log(f"{label}: started" + (f" (part size {size_label(first['part_size'])})" if "part_size" in first else ""))
        result = json.loads(child.stdout.readline() or '{"error": "the worker child died"}')
        sampler.stop()
        after = cpu_times()
        return {"busy_before": busy, "server_cpu": sum(cpu_of(server_pid) or (0, 0)) - server_cpu,
                "machine_busy": (after[0] - machine[0]) / max(after[1] - machine[1], 1),
                "peak_pss_kib": sampler.peak_kib, "idle_pss_kib": sampler.first_kib, "samples": sampler.samples,
                **result}  # fmt: skip
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_group(child)


@dataclass
class Bench:
    workdir: Path
    env: dict[str, str]
    sink: RunningSink
    limits: Limits
    sample_seconds: float


def console_env(workdir: Path, store: dict[str, str], **settings: str) -> dict[str, str]:
    """The console's settings for a worker under test: `store` (its S3 settings) and any others."""
    return child_env({
        "PYTHONPATH": str(ROOT), "APP_ENV": "scale", "SECRET_KEY": uuid.uuid4().hex,
        "INSTANCE_PATH": str(workdir / "instance"), "TMPDIR": str(workdir / "spill"),
        "DATABASE_URL": f"postgresql://{common.PG_USER}@{common.PG_HOST}:{common.PG_PORT}/postgres",
        "AWS_REGION": common.REGION, "S3_ADDRESSING_STYLE": "path",
        "REDIS_NAMESPACE": f"pgscale-{uuid.uuid4().hex[:8]}",  # never connected to: no job is queued
        "PG_BIN_DIRS": os.environ.get("PG_BIN_DIRS", ""), **store, **settings,
    })  # fmt: skip


def sink_env(workdir: Path, sink: RunningSink, limits: Limits) -> dict[str, str]:
    """The sink as the store, with these limits."""
    return console_env(workdir, {"BACKUP_STORAGE_URL": f"s3://{BUCKET}", "S3_ENDPOINT_URL": sink.url,
                                 "AWS_ACCESS_KEY_ID": "scale", "AWS_SECRET_ACCESS_KEY": "scale"},
                       S3_MAX_PARTS=str(limits.max_parts), S3_MAX_PART_SIZE=str(limits.max_part_size))  # fmt: skip


def run_backup(bench: Bench, size: int) -> dict:
    """One row: a fresh worker child streams `size` bytes to the sink."""
    filename = f"scale-{size}-{uuid.uuid4().hex[:8]}.dump"
    spec = {"bytes": size, "generator": str(write_generator(bench.workdir, size)), "filename": filename}
    row = {"kind": "backup", "bytes": size, "max_parts": bench.limits.max_parts,
           "max_part_size": bench.limits.max_part_size}  # fmt: skip
    measured = run_child("stream", spec, bench.env, label=size_label(size), server_pid=bench.sink.pid,
                         sample_seconds=bench.sample_seconds)  # fmt: skip
    if "refused" in measured:
        return {**row, "status": f"refused before the dump: {measured['refused']}"}
    row.update(measured, planned_part_size=measured["part_size"])
    upload = bench.sink.upload_of(filename) or {}
    row.update(part_size=upload.get("part_size", 0), parts=upload.get("parts", 0),
               object_size=upload.get("object_size"), sink_errors=upload.get("errors", []))  # fmt: skip
    row["status"] = judge(row, upload)
    return row


def judge(row: dict, upload: dict) -> str:
    """"ok", or what went wrong: the worker's error, the sink's refusals, a size or part plan not kept."""
    problems = [row["error"]] if "error" in row else []
    if row["sink_errors"]:
        problems.append(f"the sink refused {len(row['sink_errors'])} request(s), first: {row['sink_errors'][0]}")
    if not problems:
        if upload.get("state") != "complete" or row["object_size"] != row["bytes"]:
            problems.append(f"the sink holds {row['object_size']} bytes, not {row['bytes']}")
        if row["part_size"] != row.get("planned_part_size"):
            problems.append(f"parts of {row['part_size']} bytes, planned {row.get('planned_part_size')}")
        if row["parts"] > row["max_parts"]:
            problems.append(f"{row['parts']} parts, over the limit of {row['max_parts']}")
    return "; ".join(problems) or "ok"


def combined(runs: list[dict]) -> dict:
    """Backups of one size as one row: the median run (by seconds) with the highest peaks of all, and the
    throughput's spread; the first failed run if any failed."""
    failed = next((r for r in runs if r["status"] != "ok"), None)
    if failed is not None:
        return {**failed, "repeats": len(runs)}
    row = dict(sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2])
    row.update(peak_pss_kib=max(r["peak_pss_kib"] for r in runs), vmhwm_kib=max(r["vmhwm_kib"] for r in runs),
               repeats=len(runs), mbps_all=[round(mbps(r), 1) for r in runs])  # fmt: skip
    return row


# --------------------------------------------------------------------------- results and report


def row_key(row: dict) -> tuple:
    return row["kind"], row["bytes"], row["max_parts"], row["max_part_size"]


def merge(rows: list[dict], path: Path) -> list[dict]:
    """This run's rows over the saved ones (same kind, size and limits: replaced); all of them, saved."""
    saved = json.loads(path.read_text()) if path.exists() else []
    mine = {row_key(r) for r in rows}
    merged = sorted([r for r in saved if row_key(r) not in mine] + rows,
                    key=lambda r: (r["kind"], -r["max_parts"], r["max_part_size"], r["bytes"]))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def mb(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def mbps(row: dict) -> float:
    return row["bytes"] / MiB / row["seconds"]


def throughput(row: dict) -> str:
    """MB/s, with the spread over repeated runs: "456 (410–551, 3 runs)"."""
    runs = row.get("mbps_all") or []
    spread = f" ({min(runs):.0f}–{max(runs):.0f}, {len(runs)} runs)" if len(runs) > 1 else ""
    return f"{mbps(row):.0f}{spread}"


def limit_label(row: dict) -> str:
    return f"{row['max_parts']:,} × {size_label(row['max_part_size'])}"


def backup_table(rows: list[dict]) -> list[str]:
    lines = ["| archive | store limit (parts × part) | part size | parts | worker peak PSS MB | PSS before MB "
             "| VmHWM MB | MB/s | seconds | worker CPU s | generator CPU s | sink CPU s | busy | run | status |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
    for r in rows:
        if "seconds" not in r:
            lines.append(f"| {size_label(r['bytes'])} | {limit_label(r)} | | | | | | | | | | | | {r['run']} "
                         f"| {r['status']} |")  # fmt: skip
            continue
        lines.append(
            f"| {size_label(r['bytes'])} | {limit_label(r)} | {size_label(r['part_size'])} | {r['parts']:,} "
            f"| {mb(r['peak_pss_kib'])} | {mb(r['idle_pss_kib'])} | {mb(r['vmhwm_kib'])} | {throughput(r)} "
            f"| {r['seconds']:.1f} | {r['worker_cpu']:.1f} | {r['tool_cpu']:.1f} | {r['server_cpu']:.1f} "
            f"| {r['machine_busy']:.0%} | {r['run']} | {r['status']} |"
        )
    return lines


def restore_table(rows: list[dict]) -> list[str]:
    lines = ["| archive | worker peak PSS MB | PSS before MB | VmHWM MB | MB/s | restore s | job s | worker CPU s "
             "| pg_restore CPU s | SeaweedFS CPU s | busy | the backup that made it | run | status |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]  # fmt: skip
    for r in rows:
        made = r.get("backup") or {}
        backup = (f"{made['seconds']:.0f} s, peak PSS {mb(made['peak_pss_kib'])} MB, parts of "
                  f"{size_label(made['part_size'])}") if made.get("seconds") and made.get("part_size") else ""
        if "restore_seconds" not in r:
            lines.append(f"| {size_label(r['bytes'])} | | | | | | | | | | | {backup} | {r['run']} | {r['status']} |")
            continue
        lines.append(
            f"| {r['archive_bytes'] / MiB:,.0f} MiB | {mb(r['peak_pss_kib'])} | {mb(r['idle_pss_kib'])} "
            f"| {mb(r['vmhwm_kib'])} | {r['archive_bytes'] / MiB / r['restore_seconds']:.0f} "
            f"| {r['restore_seconds']:.1f} | {r['seconds']:.1f} | {r['worker_cpu']:.1f} | {r['tool_cpu']:.1f} "
            f"| {r['server_cpu']:.1f} | {r['machine_busy']:.0%} | {backup} | {r['run']} | {r['status']} |"
        )
    return lines


def verdict(ok: bool | None) -> str:
    return "pending" if ok is None else "**met**" if ok else "**not met**"


def verdicts(rows: list[dict]) -> list[str]:
    """The issue's targets, judged on the rows of one store limit."""
    done = [r for r in rows if r["status"] == "ok"]
    if not done:
        return ["No row finished: every target is pending."]
    pss = {r["bytes"]: r["peak_pss_kib"] / 1024 for r in done}
    worst = max(pss, key=pss.get)  # type: ignore[arg-type]
    smallest, largest = min(done, key=lambda r: r["bytes"]), max(done, key=lambda r: r["bytes"])
    spread = max(pss.values()) - min(pss.values())
    failed = [r for r in rows if r["status"] != "ok"]
    over = [r for r in rows if r.get("parts", 0) > r["max_parts"] or "InvalidArgument" in r["status"]]
    tb = next((r for r in done if r["bytes"] >= 2**40), None)
    gb = next((r for r in done if r["bytes"] == 2**30), None)
    ratio = mbps(tb) / mbps(gb) if tb and gb else None
    sizes = ", ".join(size_label(b) for b in sorted(pss))
    lines = ["| target | figures | |", "|---|---|---|",
             f"| each row's worker peak PSS ≤ {PSS_TARGET_MB} MB | highest {pss[worst]:.1f} MB at "
             f"{size_label(worst)} (rows: {sizes}) | {verdict(pss[worst] <= PSS_TARGET_MB)} |",
             f"| spread between the smallest and largest row ≤ {SPREAD_TARGET_MB} MB | {spread:.1f} MB over all rows; "
             f"{size_label(smallest['bytes'])} {mb(smallest['peak_pss_kib'])} MB → {size_label(largest['bytes'])} "
             f"{mb(largest['peak_pss_kib'])} MB | {verdict(spread <= SPREAD_TARGET_MB if len(done) > 1 else None)} |",
             f"| part count ≤ the store's limit in every row | most {max(r.get('parts', 0) for r in rows):,} of "
             f"{rows[0]['max_parts']:,} | {verdict(not over)} |",
             "| throughput at 1 TiB no more than 10 % below 1 GiB | "
             + (f"{mbps(tb):.0f} against {mbps(gb):.0f} MB/s: {ratio:.3f} ×"
                + (" (faster at 1 TiB: larger parts, and the 1 GiB run carries the job's fixed cost)"
                   if ratio > 1 / THROUGHPUT_TARGET else "") if ratio else
                "needs a 1 GiB and a 1 TiB row")
             + f" | {verdict(ratio >= THROUGHPUT_TARGET if ratio else None)} |"]  # fmt: skip
    if failed:
        lines += ["", "Rows that did not finish: " + "; ".join(f"{size_label(r['bytes'])}: {r['status']}"
                                                             for r in failed)]  # fmt: skip
    return lines


def report(rows: list[dict]) -> str:
    backups = [r for r in rows if r["kind"] == "backup"]
    groups: dict[str, list[dict]] = {}
    for r in backups:
        groups.setdefault(limit_label(r), []).append(r)
    runs = {(r["run"], r["command"]): r for r in rows}
    out = [
        "# The worker's memory from 1 GiB to 1 TiB (bench/scale.py)", "",
        "Each row: one backup of a simulated archive (a generator writing N random bytes in place of pg_dump) "
        "through the console's own `stream_backup` — pipe reader, sha256, part staging, S3 client — in a fresh "
        "worker process loaded as a work horse is, to a local S3 sink (bench/s3_sink.py) that checks every "
        "part against the store limit and discards it. The part size is the console's own plan "
        "(`storage.plan_upload` from the expected size and S3_MAX_PARTS / S3_MAX_PART_SIZE); the part size "
        "and count are what the sink received. Worker peak PSS: /proc/<pid>/smaps_rollup every 200 ms "
        "(--sample-ms; the generator apart); PSS before: after the imports, before the stream; VmHWM: the "
        "worker's peak RSS, an upper bound of its PSS. MB/s: bytes / wall seconds of `stream_backup`. Busy: the "
        "whole machine during the row (2 cores: 100 % = both). With --repeat, a row is its median run by "
        "seconds, with the highest peaks of its runs and the spread of their MB/s. MB = 2^20 bytes.", "",
    ]  # fmt: skip
    for label, group in groups.items():
        out += [f"## Store limit {label}", "", *backup_table(group), "", *verdicts(group), ""]
    restores = [r for r in rows if r["kind"] == "restore"]
    if restores:
        out += ["## A restore streamed from the store into pg_restore", "",
                "`--restore-size`: a table of that much text (64 KiB values, compressed by TOAST on disk) backed up "
                "by the console's own backup (real pg_dump, BACKUP_COMPRESSION=none) into SeaweedFS, then restored "
                "by a fresh worker as a restore job does without room for a copy in RESTORE_TMP_DIR "
                "(`restore.stream_archive`, `preflight`, `restore_into`: one pg_restore reading stdin). MB/s: the "
                "archive's bytes / seconds of `restore_into`; job s: also the head, the preflight, the scratch "
                "database, the row count and its drop. Worker peak PSS: pg_restore apart.", "",
                *restore_table(restores), ""]  # fmt: skip
        finished = [r for r in restores if r["status"] == "ok"]
        if finished:
            worst = max(r["peak_pss_kib"] for r in finished) / 1024
            out += [f"Worker peak PSS ≤ {PSS_TARGET_MB} MB in every finished restore: highest {worst:.1f} MB, "
                    f"{verdict(worst <= PSS_TARGET_MB)}.", ""]  # fmt: skip
    out += ["## Runs", ""]
    for (run, command), r in sorted(runs.items()):
        out.append(f"- {run}: `{command}` on {r['machine']}, at {r['commit']}")
    return "\n".join(out) + "\n"


def git_commit() -> str:
    """HEAD's short hash, and "+ changes" when app/ differs from it (the code measured is the working tree's)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "app"], cwd=ROOT, capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes in app/" if dirty.stdout.strip() else "")


def run_backups(workdir: Path, sizes: list[int], limits: Limits, args: argparse.Namespace) -> Iterator[dict]:
    """The backup rows, one per size, each through fresh worker children (`--repeat` of them)."""
    with running_sink(limits) as sink:
        env = sink_env(workdir, sink, limits)
        Processes(workdir).flask(env, "db", "upgrade")  # the worker refuses a store behind this release
        bench = Bench(workdir, env, sink, limits, args.sample_ms / 1000)
        for size in sizes:
            runs: list[dict] = []
            while len(runs) < args.repeat and all(r["status"] == "ok" for r in runs):
                runs.append(run_backup(bench, size))
                last = runs[-1]
                figures = (f", peak PSS {mb(last['peak_pss_kib'])} MB, {last['parts']:,} parts of "
                           f"{size_label(last['part_size'])}, {mbps(last):.0f} MB/s") if "seconds" in last else ""
                log(f"{size_label(size)} run {len(runs)}/{args.repeat}: {last['status']}{figures}")
            yield combined(runs)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="archive sizes, binary units (default 1G,10G,100G; none with only "
                        "--restore-size)")  # fmt: skip
    parser.add_argument("--max-parts", type=int, default=S3_LIMITS.max_parts, help="the store's S3_MAX_PARTS")
    parser.add_argument("--max-part-size", type=parse_size, default=S3_LIMITS.max_part_size,
                        help="the store's S3_MAX_PART_SIZE (default 5GiB)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="backups of each size, each in a fresh worker "
                        "(default 1); the row: the median run's time, the highest peaks")  # fmt: skip
    parser.add_argument("--restore-size", type=parse_size, help="also a streamed restore of an archive this "
                        "large, from SeaweedFS into pg_restore (e.g. 10G)")  # fmt: skip
    parser.add_argument("--sample-ms", type=int, default=200, help="PSS sampling interval (default 200)")
    parser.add_argument("--out", default=str(RESULTS / "scale.md"), help="the report; its rows in <out>.json")
    parser.add_argument("--worker-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_child:
        from bench import scale_restore

        spec = json.loads(args.worker_child)
        {"stream": stream_child, **scale_restore.CHILDREN}[spec["mode"]](spec)
        return 0
    default = "" if args.restore_size and args.sizes is None else "1G,10G,100G"
    sizes = sorted({parse_size(s) for s in (args.sizes or default).split(",") if s.strip()})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    limits = Limits(args.max_parts, args.max_part_size)
    run = {"run": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "machine": machine_summary(),
           "command": " ".join([".venv/bin/python -m bench.scale", *sys.argv[1:]]), "commit": git_commit()}  # fmt: skip
    workdir = make_workdir("pgconsole-scale-", "instance")
    rows = []
    try:
        if sizes:
            rows += [{**row, **run} for row in run_backups(workdir, sizes, limits, args)]
        if args.restore_size:
            from bench import scale_restore

            rows.append({**scale_restore.run_restore(workdir, args.restore_size, args.sample_ms / 1000), **run})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if rows:
            out = Path(args.out)
            text = report(merge(rows, out.with_suffix(".json")))
            common.write_report(text, out)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
