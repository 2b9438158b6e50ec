"""The peers' Python halves and the memory sampler, each a child process of its own (stdlib + boto3 only).

They run as `python -m bench.performance --<mode>-child <spec>`, from the checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import subprocess
import sys
import time

from bench import common
from bench.common import comm_of, pss_kib
from bench.performance import TOOLS
from bench.performance.meter import rusage_cpu
from tests.support import ROOT
from tests.support.processes import child_env, children_of


def upload_child(spec: dict) -> None:
    """The peer's uploader: boto3 `upload_fileobj(sys.stdin.buffer, …)` with boto3's default settings."""
    client = common.s3_client(spec["endpoint"], os.environ)
    client.head_bucket(Bucket=spec["bucket"])  # imports and the connection before pg_dump starts
    cpu0 = rusage_cpu(resource.getrusage(resource.RUSAGE_SELF))
    print("ready", flush=True)
    client.upload_fileobj(sys.stdin.buffer, spec["bucket"], spec["key"])
    print(json.dumps({"cpu": rusage_cpu(resource.getrusage(resource.RUSAGE_SELF)) - cpu0}), flush=True)


def download_child(spec: dict) -> None:
    """The peer's download: boto3 `download_file` with boto3's default settings, timed from "go"."""
    client = common.s3_client(spec["endpoint"], os.environ)
    client.head_bucket(Bucket=spec["bucket"])
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0, started = rusage_cpu(resource.getrusage(resource.RUSAGE_SELF)), time.monotonic()
    client.download_file(spec["bucket"], spec["key"], spec["path"])
    seconds = time.monotonic() - started
    cpu = rusage_cpu(resource.getrusage(resource.RUSAGE_SELF)) - cpu0
    print(json.dumps({"seconds": seconds, "cpu": cpu}), flush=True)


def temp_open(pid: int, seen: dict, temp_roots: list[str], exclude: list[str]) -> None:
    """Into `seen`: the size of each temp file `pid` holds open (deleted, or under one of `temp_roots`)."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                path = link.removesuffix(" (deleted)")
                is_temp = link.endswith(" (deleted)") or any(path.startswith(r + "/") for r in temp_roots)
                if link.startswith("/") and is_temp and not any(path.startswith(e) for e in exclude):
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                    if (st.st_mode & 0o170000) == 0o100000:  # a regular file
                        seen[(st.st_dev, st.st_ino)] = st.st_size


def tool_tree(root: int) -> list[tuple[int, bool]]:
    """(pid, is a tool or below one) of every process under root."""
    found, stack = [], [(root, False)]
    while stack:
        pid, inside = stack.pop()
        is_tool = inside or comm_of(pid) in TOOLS
        found.append((pid, is_tool))
        stack.extend((child, is_tool) for child in children_of(pid))
    return found


def sampler_child(spec: dict) -> None:
    """Until stdin closes, every `interval` s: PSS of a process tree (pg_dump/pg_restore and below apart) and
    the bytes of temp files its processes hold open; then the peaks as JSON. Its own process, so that its
    work never holds the bench's GIL."""
    root, interval = int(spec["root"]), float(spec["interval"])
    temp_roots, exclude = spec["temp_roots"], spec["exclude"]
    peaks = {"worker_kib": 0, "tool_kib": 0, "first_worker_kib": None, "temp_bytes": 0, "samples": 0, "cpu": 0.0}

    def sample() -> None:
        worker = tool = 0
        files: dict = {}
        members = tool_tree(root)
        for pid, is_tool in members:
            if is_tool:
                tool += pss_kib(pid)
            else:
                worker += pss_kib(pid)
            temp_open(pid, files, temp_roots, exclude)
        if tool_tree(root) != members:
            # A fork (the work horse, a pg_restore) happened while the tree was read: the parent's PSS
            # was read before its pages were shared, the child's after, so the sum counts them twice.
            return
        if peaks["first_worker_kib"] is None:
            peaks["first_worker_kib"] = worker
        peaks["samples"] += 1
        peaks["worker_kib"] = max(peaks["worker_kib"], worker)
        peaks["tool_kib"] = max(peaks["tool_kib"], tool)
        peaks["temp_bytes"] = max(peaks["temp_bytes"], sum(files.values()))

    sample()
    print("ready", flush=True)
    while True:
        cpu = time.process_time()
        sample()
        peaks["cpu"] += time.process_time() - cpu
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    print(json.dumps(peaks), flush=True)


def start_child(mode: str, spec: dict, env: dict[str, str], **popen) -> subprocess.Popen:
    """This script as a child in `mode`, waited for until it prints "ready"."""
    child = subprocess.Popen([sys.executable, "-m", "bench.performance", f"--{mode}-child", json.dumps(spec)],
                             cwd=ROOT, env=child_env(env), stdout=subprocess.PIPE, text=True, **popen)  # fmt: skip
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise RuntimeError(f"the {mode} child did not start")
    return child


def child_result(child: subprocess.Popen) -> dict:
    """The JSON line a child prints last."""
    assert child.stdout is not None
    out = child.stdout.read()
    if child.wait() != 0:
        raise RuntimeError(f"the child {child.args[3]} failed ({child.returncode})")
    return json.loads(out.strip().splitlines()[-1])


class Sampler:
    """A sampler child on the worker's tree for the length of one run."""

    def __init__(self, root: int, interval: float, temp_roots: list[str], exclude: list[str]):
        spec = {"root": root, "interval": interval, "temp_roots": temp_roots, "exclude": exclude}
        self.child = start_child("sampler", spec, {}, stdin=subprocess.PIPE)

    def stop(self) -> dict:
        assert self.child.stdin is not None
        self.child.stdin.close()
        return child_result(self.child)

