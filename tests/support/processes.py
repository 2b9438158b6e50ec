"""Starting and stopping real processes (gunicorn, the worker, S3 servers) and waiting for them.

Every child runs in a session of its own, so that it and everything it starts stop as a group.
Stdlib only at the top level: the benchmarks' sampler children import this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support import ROOT


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """`env` plus the few variables a child needs from ours (PATH, HOME, locale, TZ), unbuffered."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
    return {**keep, **env, "PYTHONUNBUFFERED": "1"}


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` (of all its threads)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            kids.extend(int(x) for x in (task / "children").read_text().split())
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children before their own children."""
    found = []
    for child in children_of(pid):
        found += [child, *descendants(child)]
    return found


def stop_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group `proc` leads, then SIGKILL: `weed mini` takes up to 15 s to exit after SIGTERM."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything below it, as when a host is lost.

    RQ's work horse runs in a session of its own, so killing the worker's process group
    alone would leave the horse (and its pg_dump) running: walk the tree instead.
    """
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)


def tail(log: Path | None, chars: int = 3000) -> str:
    """The end of a log file ("" when there is none)."""
    return log.read_text(errors="replace")[-chars:] if log is not None and log.exists() else ""


def wait_until_answering(
    url: str, proc: subprocess.Popen | None = None, timeout: float = 20, log: Path | None = None
) -> None:
    """Until `url` answers with any HTTP status; RuntimeError (with `log`'s end) if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode} at start:\n{tail(log)}")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - a local server
            return
        except urllib.error.HTTPError:  # 403 to an anonymous request: it answers
            return
        except OSError:
            if time.monotonic() > deadline:
                if proc is not None:
                    stop_group(proc)
                raise RuntimeError(f"{url} did not answer within {timeout} s:\n{tail(log)}") from None
            time.sleep(0.1)


FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


class Processes:
    """The console's real processes (gunicorn, workers) started by a test or a benchmark; logs kept per name."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        self.named: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=child_env(env),
            stdout=open(log, "ab"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((proc, log))
        self.named[name] = proc
        return proc

    def flask(self, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
        """`flask --app wsgi <args>` run to its end (e.g. `db upgrade`, `users create`); its output."""
        done = subprocess.run([*FLASK, *args], cwd=ROOT, env=child_env(env), input=stdin, text=True, check=True,
                              capture_output=True)  # fmt: skip
        return done.stdout

    def worker(self, env: dict[str, str], name: str = "worker") -> subprocess.Popen:
        return self.start(name, [*FLASK, "worker"], env)

    def web(self, env: dict[str, str], *options: str, workers: int = 2) -> str:
        """gunicorn `wsgi:app` with 2 workers (as the Dockerfile) on a free port; its base URL once it answers."""
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), *options]
        proc = self.start("web", [*argv, "wsgi:app"], env)
        base = f"http://127.0.0.1:{port}"
        wait_until_answering(base + "/login", proc, timeout=60, log=self.log_dir / "web.log")
        return base

    def wait_registered(self, redis, queue_name: str, name: str = "worker", timeout: float = 60) -> None:
        """Until the worker `name` has registered with RQ for `queue_name`."""
        from rq import Queue, Worker

        queue, proc = Queue(queue_name, connection=redis), self.named[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited ({proc.returncode}):\n{self.tail(name)}")
            if Worker.all(connection=redis, queue=queue):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the worker did not register within {timeout} s:\n{self.tail(name)}")

    kill = staticmethod(kill_tree)

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        """A clean stop (SIGTERM: RQ finishes the current job first)."""
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def tail(self, name: str, lines: int = 30) -> str:
        """The last lines of `name`'s log."""
        return "\n".join(self.log(name).splitlines()[-lines:])

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
