"""Where a run's CPU went: /proc/<pid>/stat of every process involved, read before, during and after."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass

from bench.common import comm_of, cpu_times, pg_connect, process_tree
from bench.performance import TOOLS
from tests.support.processes import children_of

CLK_TCK = os.sysconf("SC_CLK_TCK")
WATCH_SECONDS = 0.05  # how often the CPU watch reads /proc/<pid>/stat of processes that may exit


@dataclass
class Pids:
    """The long-lived processes whose CPU each run is charged: the S3 server, gunicorn, the worker."""

    s3: int
    web: int = 0
    worker: int = 0


def stat_of(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, reaped children's CPU seconds) from /proc/<pid>/stat; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return int(fields[1]), (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def cpu_of(pid: int) -> tuple[float, float] | None:
    """(own, reaped children's) CPU seconds of a process; None when it is gone."""
    stat = stat_of(pid)
    return stat[1:] if stat else None


def tree_cpu(root: int) -> float:
    """CPU of a long-lived process tree: each member's own plus what it reaped (an exit moves CPU, not loses it)."""
    return sum(sum(cpu_of(pid) or (0.0, 0.0)) for pid in process_tree(root))


def rusage_cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def wait4(proc: subprocess.Popen) -> tuple[int, float]:
    """Reap `proc` with wait4: (exit code, its CPU seconds, children included)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, rusage_cpu(usage)


class CpuWatch(threading.Thread):
    """During a timed run, every 50 ms: the CPU of a process tree's members and of matching PostgreSQL backends.

    Processes that exit during the run (the work horse, pg_dump, the backends) are read until just
    before they go, so up to 50 ms of each one's CPU can be missed. Reading /proc/<pid>/stat of a
    handful of processes costs far less than the PSS sampling, which has a run of its own.
    """

    def __init__(self, root: int | None, backends: tuple[str, str] | None):
        super().__init__(daemon=True)
        self.root, self.backends = root, backends  # backends: (application_name LIKE, datname LIKE)
        self.tools: dict[int, float] = {}  # top-level pg_dump/pg_restore pid → own + reaped CPU, last seen
        self.horse_reaped = 0.0  # the most the worker's children had reaped (the tools, once they end)
        self.backend_cpu: dict[int, float] = {}
        self._halt = threading.Event()
        self._conn = pg_connect() if backends else None

    def tick(self) -> None:
        if self.root:
            for pid in process_tree(self.root):
                stat = stat_of(pid)
                if stat is None:
                    continue
                parent, own, reaped = stat
                if comm_of(pid) in TOOLS and comm_of(parent) not in TOOLS:  # pg_restore -j's children: in its own
                    self.tools[pid] = max(self.tools.get(pid, 0.0), own + reaped)
                if parent == self.root:  # the work horse
                    self.horse_reaped = max(self.horse_reaped, reaped)
        if self._conn is not None:
            rows = self._conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s AND datname LIKE %s", self.backends
            ).fetchall()
            for (pid,) in rows:
                used = cpu_of(pid)
                if used is not None:
                    self.backend_cpu[pid] = used[0]

    def run(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(Exception):
                self.tick()
            self._halt.wait(WATCH_SECONDS)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        if self._conn is not None:
            self._conn.close()


class Meter:
    """The CPU of one run, split by consumer; see `stop`."""

    def __init__(self, pids: Pids, *, watch_root: int | None = None, backends: tuple[str, str] | None = None):
        self.procs = pids
        self.watch = CpuWatch(watch_root, backends)
        self.s3 = tree_cpu(pids.s3)
        self.web = tree_cpu(pids.web) if pids.web else 0.0
        self.worker = sum(cpu_of(pids.worker) or (0.0, 0.0)) if pids.worker else 0.0
        self.me = rusage_cpu(resource.getrusage(resource.RUSAGE_SELF))
        self.machine = cpu_times()[0]
        self.wall = time.monotonic()
        self.watch.start()

    def stop(self, *, tool: float | None = None, python: float | None = None) -> dict[str, float]:
        """CPU seconds: tool (pg_dump/pg_restore), backend, s3, python (worker tree or the peer's child), web, ...

        `tool` and `python` are given for the peers (their processes are ours to reap); for the
        console they come from the worker: its own CPU plus what it reaped (the work horse, and
        through it pg_dump/pg_restore), read after the horse has gone, minus the tools' share.
        """
        wall = time.monotonic() - self.wall
        self.watch.stop()
        if tool is None and self.procs.worker:
            deadline = time.monotonic() + 10
            while children_of(self.procs.worker) and time.monotonic() < deadline:  # the horse not reaped yet
                time.sleep(0.02)
            worker = sum(cpu_of(self.procs.worker) or (0.0, 0.0)) - self.worker
            tool = max(sum(self.watch.tools.values()), self.watch.horse_reaped)
            python = worker - tool
        out = {
            "wall": wall,
            "tool": tool or 0.0,
            "backend": sum(self.watch.backend_cpu.values()),
            "s3": tree_cpu(self.procs.s3) - self.s3,
            "python": python or 0.0,
            "web": (tree_cpu(self.procs.web) - self.web) if self.procs.web else 0.0,
            "bench": rusage_cpu(resource.getrusage(resource.RUSAGE_SELF)) - self.me,
            "machine": (cpu_times()[0] - self.machine) / CLK_TCK,
        }
        out["rest"] = out["machine"] - sum(out[k] for k in ("tool", "backend", "s3", "python", "web", "bench"))
        return out

