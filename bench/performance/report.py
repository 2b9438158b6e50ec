"""The report: every figure as a ratio against the peer measured in the same rounds, medians and spread."""

from __future__ import annotations

import os
import statistics
from datetime import datetime

from bench.common import MiB, machine_summary
from bench.performance import CONSOLE, CONTENDERS, TARGETS
from bench.performance.console import POLL_SECONDS
from bench.performance.contenders import Run, Size

GiB = 1024 * MiB
PSS_TARGET_MB = 150
HEADLINE = {"seaweedfs": "the headline", "moto": "for comparison only"}
SCALE_TARGET = 0.10


def med(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values, digits: int = 2) -> str:
    values = [v for v in values if v is not None]
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}" if values else "—"


def phase_order(runs: list[Run]) -> list[str]:
    """The phases seen in any run, in the order they happen (by the median moment each began)."""
    began: dict[str, list[float]] = {}
    for run in runs:
        at = 0.0
        for name, seconds in run.phases.items():
            began.setdefault(name, []).append(at)
            at += seconds
    return sorted(began, key=lambda name: med(began[name]))


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def ratios(size: Size, num: str, den: str, attr: str = "seconds") -> tuple[float, float]:
    """(ratio of the medians, median of each round's own ratio)."""
    a = [getattr(r, attr) for r in size.runs[num]]
    b = [r.seconds for r in size.runs[den]]
    return med(a) / med(b), med([x / y for x, y in zip(a, b, strict=True)])


def label(key: str, jobs: int) -> str:
    return CONTENDERS[key].replace("-j N", f"-j {jobs}")


def size_section(result: dict, size: Size) -> list[str]:
    jobs = result["jobs"]
    peers = {num: (den, most) for num, den, most in TARGETS}
    lines = [
        "",
        f"### {result['server'].name}, {size.source}: {size.db_bytes / MiB:.0f} MiB on disk, archive "
        f"{size.archive_bytes / MiB:.1f} MiB",
        "",
        "| contender | median s | spread s | compared with | ratio of medians | median of per-round ratios | target "
        "| met |",
        "|---|---:|---:|---|---:|---:|---|---|",
    ]
    for key in CONTENDERS:
        runs = size.runs[key]
        cells = [label(key, jobs), f"{med(r.seconds for r in runs):.2f}", spread(r.seconds for r in runs)]
        if key in peers:
            den, most = peers[key]
            by_medians, by_rounds = ratios(size, key, den)
            cells += [f"({den})", f"{by_medians:.3f}", f"{by_rounds:.3f}", f"≤ {most:.2f}", verdict(by_medians <= most)]
        else:
            cells += ["", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
        if key in CONSOLE:
            den, most = peers[key]
            by_medians, by_rounds = ratios(size, key, den, "job_seconds")
            lines.append(f"| ({key}) the job's own `result.seconds` | {med(r.job_seconds for r in runs):.2f} | "
                         f"{spread(r.job_seconds for r in runs)} | ({den}) | {by_medians:.3f} | {by_rounds:.3f} | "
                         "(information) | |")  # fmt: skip
    c_vs_a = ratios(size, "c", "a")
    lines += [
        "",
        f"For information: (c) console → S3 against plain `pg_dump` (a): {c_vs_a[0]:.3f} × by the medians "
        f"({c_vs_a[1]:.3f} × by rounds); (b) the pipe against (a): {ratios(size, 'b', 'a')[0]:.3f} ×; (g) "
        f"`pg_dump | cat` against (a): {ratios(size, 'g', 'a')[0]:.3f} × ({ratios(size, 'g', 'a')[1]:.3f} × by "
        f"rounds), and (d) the console → folder against (g): {ratios(size, 'd', 'g')[0]:.3f} × "
        f"({ratios(size, 'd', 'g')[1]:.3f} × by rounds). (e) is "
        f"download_file {med(r.parts['download_file'] for r in size.runs['e']):.2f} s + pg_restore "
        f"{med(r.parts['pg_restore'] for r in size.runs['e']):.2f} s (medians).",
        "",
        "Where the console's time went (medians; phases as the 50 ms polls first saw them, so ±50 ms each; RQ's "
        "own timestamps on the right):",
        "",
    ]
    for key in CONSOLE:
        runs = size.runs[key]
        names = phase_order(runs)
        phases = ", ".join(f"{n} {med(r.phases.get(n) for r in runs):.2f}" for n in names)
        steps = list(dict.fromkeys(n for r in runs for n in r.rq))
        rq = ", ".join(f"{n} {med(r.rq.get(n) for r in runs):.2f}" for n in steps)
        lines.append(f"- {label(key, jobs)}: {phases}. RQ: {rq or '—'}.")
    return lines + rounds_rows(size)


def rounds_rows(size: Size) -> list[str]:
    """Every round's seconds, and whether every restore brought back the source's row counts."""
    lines: list[str] = []
    lines += ["", "Every round's seconds (the order rotates each round; machine busy in the second before each run):",
              "", "| round | " + " | ".join(f"({k})" for k in CONTENDERS) + " | busy before, max |",
              "|---|" + "---:|" * (len(CONTENDERS) + 1)]  # fmt: skip
    for i in range(len(size.runs["a"])):
        row = [size.runs[k][i] for k in CONTENDERS]
        lines.append(f"| {i + 1} | " + " | ".join(f"{r.seconds:.2f}" for r in row) +
                     f" | {max(r.busy_before for r in row):.0%} |")  # fmt: skip
    ok = all(size.counts_ok) and bool(size.counts_ok)
    lines += ["", f"Row counts after every restore ((e) and (f), {len(size.counts_ok)} restores) against the source "
              f"({', '.join(f'{t} {n:,}' for t, n in size.counts.items())}): "
              + ("**equal**" if ok else "**DIFFERENT**") + "."]  # fmt: skip
    return lines


def cpu_section(result: dict, size: Size) -> list[str]:
    gib = size.archive_bytes / GiB
    cols = (("tool", "pg_dump / pg_restore"), ("backend", "PostgreSQL backend(s)"), ("s3", "S3 server"),
            ("python", "worker + horse / the peer's Python child"), ("web", "gunicorn"),
            ("bench", "bench (polling)"), ("rest", "rest of the machine"))  # fmt: skip
    lines = [
        "",
        f"#### Where the CPU went: {result['server'].name}, {size.size_mb} MiB (CPU-seconds per GiB of archive, "
        f"archive {size.archive_bytes / MiB:.1f} MiB; medians over the rounds)",
        "",
        "| contender | wall s | " + " | ".join(name for _, name in cols) + " | whole machine | cores busy |",
        "|---|---:|" + "---:|" * (len(cols) + 2),
    ]
    for key in CONTENDERS:
        runs = [r for r in size.runs[key] if r.cpu]
        if not runs:
            continue
        wall = med(r.cpu["wall"] for r in runs)
        cells = [f"{med(r.cpu[k] for r in runs) / gib:.2f}" for k, _ in cols]
        machine = med(r.cpu["machine"] for r in runs)
        lines.append(f"| {label(key, result['jobs'])} | {wall:.2f} | " + " | ".join(cells) +
                     f" | {machine / gib:.2f} | {machine / wall:.2f} |")  # fmt: skip
    return lines


def memory_rows(result: dict) -> list[str]:
    lines = []
    sizes = result["sizes"]
    for mb, size in sizes.items():
        for key in ("c", "f"):
            m = size.memory.get(key)
            if not m:
                continue
            pss = m["worker_kib"] / 1024
            lines.append(f"| {result['server'].name} | {mb} | {label(key, result['jobs'])} | {pss:.1f} | "
                         f"{(m['first_worker_kib'] or 0) / 1024:.1f} | {m['tool_kib'] / 1024:.1f} | "
                         f"{m['temp_bytes'] / MiB:.1f} | {m['seconds']:.2f} | ≤ {PSS_TARGET_MB} | "
                         f"{verdict(pss <= PSS_TARGET_MB)} |")  # fmt: skip
    return lines


def scale_rows(result: dict) -> list[str]:
    sizes = sorted(result["sizes"])
    if len(sizes) < 2:
        return []
    small, large = result["sizes"][sizes[0]], result["sizes"][sizes[-1]]
    lines = []
    for key in ("c", "f"):
        if key in small.memory and key in large.memory:
            a, b = small.memory[key]["worker_kib"] / 1024, large.memory[key]["worker_kib"] / 1024
            change = b / a - 1
            lines.append(f"- {result['server'].name}, {label(key, result['jobs'])}: {a:.1f} MB at {sizes[0]} MiB → "
                         f"{b:.1f} MB at {sizes[-1]} MiB ({change:+.1%}; target ±{SCALE_TARGET:.0%}): "
                         f"{verdict(abs(change) <= SCALE_TARGET)}")  # fmt: skip
    return lines


def fixed_section(result: dict) -> list[str]:
    runs = result["fixed"]
    c = runs["c"]
    lines = [
        "",
        f"### Fixed cost per job: a backup of an empty database, {result['server'].name} ({len(c)} runs each, "
        "interleaved)",
        "",
        "| what | median s | spread s |",
        "|---|---:|---:|",
        f"| `pg_dump -Fc` of the empty database to /dev/null | {med(r.seconds for r in runs['a']):.3f} | "
        f"{spread([r.seconds for r in runs['a']], 3)} |",
        f"| the pipe (`pg_dump \\| upload_fileobj`) | {med(r.seconds for r in runs['b']):.3f} | "
        f"{spread([r.seconds for r in runs['b']], 3)} |",
        f"| **the console, end to end (POST → a poll reads finished)** | **{med(r.seconds for r in c):.3f}** | "
        f"{spread([r.seconds for r in c], 3)} |",
        f"| the console: the job's own `result.seconds` | {med(r.job_seconds for r in c):.3f} | "
        f"{spread([r.job_seconds for r in c], 3)} |",
    ]
    for name in dict.fromkeys(n for r in c for n in r.rq):
        values = [r.rq.get(name) for r in c]
        lines.append(f"| RQ: {name} | {med(values):.3f} | {spread(values, 3)} |")
    for name in phase_order(c):
        lines.append(f"| phase as polled: {name} | {med(r.phases.get(name) for r in c):.3f} | "
                     f"{spread([r.phases.get(name) for r in c], 3)} |")  # fmt: skip
    cpu = {k: med(r.cpu.get(k) for r in c) for k in ("python", "web", "tool", "backend", "s3")}
    lines += ["", f"CPU-seconds per console run (medians): worker + horse {cpu['python']:.2f}, gunicorn "
              f"{cpu['web']:.2f}, pg_dump {cpu['tool']:.2f}, its backend {cpu['backend']:.2f}, S3 server "
              f"{cpu['s3']:.2f}."]  # fmt: skip
    return lines


def summary_rows(result: dict) -> list[str]:
    lines = []
    for mb, size in result["sizes"].items():
        for num, den, most in TARGETS:
            by_medians, by_rounds = ratios(size, num, den)
            lines.append(f"| {result['server'].name} | {mb} | {label(num, result['jobs'])} ≤ {most:.2f} × "
                         f"{label(den, result['jobs'])} | {med(r.seconds for r in size.runs[num]):.2f} s vs "
                         f"{med(r.seconds for r in size.runs[den]):.2f} s | {by_medians:.3f} × ({by_rounds:.3f} ×) | "
                         f"{verdict(by_medians <= most)} |")  # fmt: skip
        for key, what in (("c", "backup to S3"), ("f", "restore")):
            m = size.memory.get(key)
            if m:
                pss = m["worker_kib"] / 1024
                lines.append(f"| {result['server'].name} | {mb} | worker peak PSS, {what} ≤ {PSS_TARGET_MB} MB | "
                             f"{pss:.1f} MB | | {verdict(pss <= PSS_TARGET_MB)} |")  # fmt: skip
    return lines


def header_rows(results: list[dict], args, started: datetime) -> list[str]:
    """How the run was made: the command, the machine, the servers, the method; then the targets' table head."""
    first = results[0]
    busy = [b for r in results for b in r["busy"]]
    lines = [
        "# pgconsole performance",
        "",
        f"`.venv/bin/python -m bench.performance --servers {args.servers} --sizes {args.sizes} --rounds {args.rounds}"
        + (f" --moto-sizes {args.moto_sizes}" if args.moto_sizes else "")
        + "`"
        f", {started:%Y-%m-%d %H:%M} – {datetime.now().astimezone():%H:%M %Z}.",
        "",
        f"- machine: {len(os.sched_getaffinity(0))} cores, {machine_summary()}; PostgreSQL "
        f"{first['server_version']} on 127.0.0.1; {' '.join(first['pg_dump'].version.split())} at the console's "
        f"compression `{' '.join(first['compression'])}`; `pg_restore -j {first['jobs']}` (RESTORE_JOBS)",
        "- S3 servers: "
        + "; ".join(f"{r['server'].name} ({HEADLINE[r['server'].name]}): {r['server'].version}" for r in results)
        + " — each its own process on the same 2 cores",
        f"- the console: gunicorn `wsgi:app` (2 sync workers) + `flask --app wsgi worker`; every console figure is "
        f"end to end as a user sees it (POST, then GET the status URL every {POLL_SECONDS * 1000:.0f} ms until it "
        "reads finished)",
        f"- each round runs every contender once, the order rotated by one each round; {args.rounds} round(s); "
        "medians, spread (min–max), ratio of the medians and the median of each round's own ratio",
        f"- before each run: a CHECKPOINT, then a wait (up to {args.quiet_wait:.0f} s) for the machine to be under "
        f"{args.quiet:.0%} busy. The machine busy in the second before a run: median {med(busy):.0%}, max "
        f"{max(busy, default=0):.0%} (another session's browser tests share these 2 cores)",
        "",
        *(f"- **failed**: {failure}" for failure in args.failures),
        "",
        "## Targets",
        "",
        "| server | MiB | target | medians | ratio of medians (median of per-round ratios) | |",
        "|---|---:|---|---|---|---|",
    ]
    return lines


def report(results: list[dict], args, started: datetime) -> str:
    """The whole report in Markdown."""
    lines = header_rows(results, args, started)
    for result in results:
        lines += summary_rows(result)
    for result in results:
        lines += scale_rows(result) and ["", *scale_rows(result)]
    lines += ["", "## Speed"]
    for result in results:
        for size in result["sizes"].values():
            lines += size_section(result, size)
    lines += ["", "## Fixed cost per job"]
    for result in results:
        lines += fixed_section(result)
    lines += [
        "",
        f"## Memory (a separate run of (c) and (f), PSS sampled every {args.sample_ms} ms by a child process)",
        "",
        "MB = 2^20 bytes. Worker = `flask worker` + its forked work horse; pg_dump / pg_restore (all its -j "
        "processes) apart. Temp = regular files under /tmp or the instance folder (or deleted) held open by the "
        "worker's tree, the local destination and the console store excluded.",
        "",
        "| server | MiB | run | worker peak PSS MB | worker idle MB | pg_dump / pg_restore peak MB | temp held open "
        "peak MiB | seconds while sampled | target | met |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for result in results:
        lines += memory_rows(result)
    lines += ["", "## CPU"]
    for result in results:
        for size in result["sizes"].values():
            lines += cpu_section(result, size)
    lines += [
        "",
        "pg_dump / pg_restore: for (a), (b), (e) from wait4; for the console, the most the work horse had reaped "
        "(or the tool's own /proc figure), read every 50 ms. Backends: found by application_name in "
        "pg_stat_activity, read every 50 ms until they end (up to 50 ms each may be missed). S3 server, gunicorn: "
        "their process trees, before and after. Worker + horse: the worker's own and reaped CPU after the horse "
        "was reaped, minus the tools. The peer's child reports its own CPU from after its imports. Rest: the "
        "whole machine's busy time (/proc/stat) minus all of these — other people's work, and the kernel's.",
    ]
    return "\n".join(lines) + "\n"

