"""Issue 14's benchmark: the console end to end, as a user sees it, against the shortest scripts doing the same work.

    .venv/bin/python bench/performance.py [--servers seaweedfs,moto] [--sizes 500,1000] [--rounds 5]
                                          [--out bench/results/performance.md]

For each S3 server (SeaweedFS's `weed mini`, the headline, started as the tests start it; moto's
server in its own process, for comparison) it runs one console as a user runs it: gunicorn
(`wsgi:app`, 2 sync workers, as the Dockerfile) and `flask --app wsgi worker`, the console store
migrated with `flask db upgrade`, an admin and an API token made with the console's CLI, and a
TARGETS_FILE with one target per database and store. For each database size (the bench databases
of bench/common.py) every round runs each contender once, in an order rotated every round:

  (a) `pg_dump -Fc <the console's compression>` to /dev/null;
  (b) the pipe a user would script: `pg_dump … | python: boto3 upload_fileobj(stdin)` to the same bucket;
  (c) the console's backup to S3: `POST /api/targets/<t>/backup`, then `GET` the status URL every
      50 ms until it reads `finished`;
  (d) the same to a local folder (a second target, `file:///…`);
  (e) boto3 `download_file` + `pg_restore -j N --no-owner --no-privileges --exit-on-error` into a
      fresh empty database (its creation not counted);
  (f) the console's restore (`POST /api/targets/<t>/restore` with the passkey) of the same archive.

Also the fixed cost of a job (a backup of an empty database, at least 5 runs), the worker's peak
PSS in a separate sampled run of (c) and (f), and where the CPU went (/proc/<pid>/stat of every
process involved). Progress goes to stderr, the report to --out; bench/README.md has the method.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import common
from common import ROOT, MiB, children_of, comm_of, cpu_times, log, pg_connect, process_tree, pss_kib

common.LOG["prefix"] = "perf"
CLK_TCK = os.sysconf("SC_CLK_TCK")
GiB = 1024 * MiB
POLL_SECONDS = 0.05  # how often a user's script (and this bench) asks for the job's status
WATCH_SECONDS = 0.05  # how often the CPU watch reads /proc/<pid>/stat of processes that may exit
TOOLS = ("pg_dump", "pg_restore", "pg_wrapper")  # pg_wrapper: Debian's perl behind /usr/bin/pg_*
CONTENDERS = {
    "a": "(a) `pg_dump -Fc` to /dev/null",
    "b": "(b) pipe: `pg_dump \\| upload_fileobj(stdin)`",  # \| : a | inside a table cell
    "c": "(c) console backup → S3",
    "d": "(d) console backup → local folder",
    "e": "(e) `download_file` + `pg_restore -j N`",
    "f": "(f) console restore from S3",
    "g": "(g) `pg_dump \\| cat` to /dev/null",  # information: what any reader of pg_dump's output costs it
}
CONSOLE = ("c", "d", "f")
TARGETS = (("c", "b", 1.00), ("d", "a", 1.05), ("f", "e", 1.05))  # (console, peer, most console/peer)
PSS_TARGET_MB = 150
HEADLINE = {"seaweedfs": "the headline", "moto": "for comparison only"}
SCALE_TARGET = 0.10


# --------------------------------------------------------------------------- /proc


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


@dataclass
class Processes:
    """The long-lived processes whose CPU each run is charged: the S3 server, gunicorn, the worker."""

    s3: int
    web: int = 0
    worker: int = 0


class Meter:
    """The CPU of one run, split by consumer; see `stop`."""

    def __init__(self, procs: Processes, *, watch_root: int | None = None, backends: tuple[str, str] | None = None):
        self.procs = procs
        self.watch = CpuWatch(watch_root, backends)
        self.s3 = tree_cpu(procs.s3)
        self.web = tree_cpu(procs.web) if procs.web else 0.0
        self.worker = sum(cpu_of(procs.worker) or (0.0, 0.0)) if procs.worker else 0.0
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


# --------------------------------------------------------------------------- children (stdlib + boto3 only)


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


def sampler_child(spec: dict) -> None:
    """Until stdin closes, every `interval` s: PSS of a process tree (pg_dump/pg_restore and below apart) and
    the bytes of temp files its processes hold open; then the peaks as JSON. Its own process, so that its
    work never holds the bench's GIL."""
    root, interval = int(spec["root"]), float(spec["interval"])
    temp_roots, exclude = spec["temp_roots"], spec["exclude"]
    peaks = {"worker_kib": 0, "tool_kib": 0, "first_worker_kib": None, "temp_bytes": 0, "samples": 0, "cpu": 0.0}

    def temp_open(pid: int, seen: dict) -> None:
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

    def tree() -> list[tuple[int, bool]]:
        """(pid, is a tool or below one) of every process under root."""
        found, stack = [], [(root, False)]
        while stack:
            pid, inside = stack.pop()
            is_tool = inside or comm_of(pid) in TOOLS
            found.append((pid, is_tool))
            stack.extend((child, is_tool) for child in children_of(pid))
        return found

    def sample() -> None:
        worker = tool = 0
        files: dict = {}
        members = tree()
        for pid, is_tool in members:
            if is_tool:
                tool += pss_kib(pid)
            else:
                worker += pss_kib(pid)
            temp_open(pid, files)
        if tree() != members:
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
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), f"--{mode}-child", json.dumps(spec)],
                             env=common.child_env(env), stdout=subprocess.PIPE, text=True, **popen)  # fmt: skip
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
        raise RuntimeError(f"the child {child.args[2]} failed ({child.returncode})")
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


# --------------------------------------------------------------------------- databases


def row_counts(dbname: str) -> dict[str, int]:
    from psycopg import sql

    with pg_connect(dbname) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        count = "SELECT count(*) FROM {}.{}"
        return {f"{s}.{t}": int(conn.execute(sql.SQL(count).format(sql.Identifier(s), sql.Identifier(t))).fetchone()[0])
                for s, t in tables}  # fmt: skip


def create_database(name: str, template: str = "template0") -> None:
    """CREATE DATABASE name TEMPLATE template, retried while someone else is connected to the template."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + 120
    while True:
        try:
            with pg_connect() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                                sql.Identifier(template)))  # fmt: skip
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sql_run(dbname: str, statement: str) -> None:
    with pg_connect(dbname) as conn:
        conn.execute(statement)


def databases_like(prefix: str) -> list[str]:
    with pg_connect() as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s",
                             (len(prefix), prefix)).fetchall()  # fmt: skip
    return [r[0] for r in rows]


# --------------------------------------------------------------------------- the console


class Console:
    """gunicorn (2 sync workers, as the Dockerfile) + `flask --app wsgi worker`, with an admin's API token."""

    def __init__(self, folder: Path, s3: common.S3Server, targets: dict[str, dict], redis_url: str, passkey: str):
        import redis

        self.namespace = f"pgperf-{uuid.uuid4().hex[:10]}"
        self.redis = redis.Redis.from_url(redis_url)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for name, table in targets.items():
            lines += ["", f"[targets.{name}]", *(f"{key} = {json.dumps(value)}" for key, value in table.items())]
        (folder / "targets.toml").write_text("\n".join(lines).lstrip() + "\n")
        self.env = common.child_env({
            "PYTHONPATH": str(ROOT), "APP_ENV": "perf", "SECRET_KEY": uuid.uuid4().hex,
            "TARGETS_FILE": str(folder / "targets.toml"), "REDIS_URL": redis_url, "REDIS_NAMESPACE": self.namespace,
            "INSTANCE_PATH": str(folder / "instance"), "S3_ENDPOINT_URL": s3.url, **s3.credentials,
            "AWS_REGION": common.REGION, "JOB_TIMEOUT_SECONDS": "3600", "BACKUP_MIN_INTERVAL_SECONDS": "0",
            # the recent-backup rule still runs; a wide window keeps a long run from being refused
            "BACKUP_RECENT_CHECK_MINUTES": "600", "REQUIRE_2FA": "none", "PERF_RESTORE_PASSKEY": passkey,
            "PG_BIN_DIRS": os.environ.get("PG_BIN_DIRS", ""),
        })  # fmt: skip
        self.instance = folder / "instance"
        where = subprocess.run([sys.executable, "-c", "import app; print(app.__file__)"], cwd=ROOT, env=self.env,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        if not where.startswith(str(ROOT)):
            raise RuntimeError(f"the console would run the code in {where}, not this checkout's")
        self.web = self.worker = None
        try:
            self._start(folder)
        except BaseException:
            self.stop()
            raise

    def _start(self, folder: Path) -> None:
        import requests

        self.worker = common.WorkerProcess(self.env, folder / "worker.log")  # runs `flask db upgrade` first
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        subprocess.run([*flask, "users", "create", "perf", "--role", "admin", "--password-stdin"], cwd=ROOT,
                       env=self.env, input=uuid.uuid4().hex, text=True, check=True, capture_output=True)  # fmt: skip
        token = subprocess.run([*flask, "tokens", "create", "perf"], cwd=ROOT, env=self.env, text=True, check=True,
                               capture_output=True).stdout.strip().splitlines()[-1]  # fmt: skip
        port = common.free_port()
        self.host, self.port = "127.0.0.1", port
        self.base = f"http://127.0.0.1:{port}"
        self.web_log = open(folder / "gunicorn.log", "ab")  # noqa: SIM115 - closed in stop()
        self.web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "300",
             "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self.web_log, stderr=self.web_log, start_new_session=True,
        )  # fmt: skip
        common.wait_http(self.base + "/login", self.web)
        self.worker.wait_ready(self.redis, self.namespace)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        for _ in range(4):  # each gunicorn worker loads the app's first-request pieces
            self.session.get(self.base + "/api/targets", timeout=60).raise_for_status()

    def run_job(self, path: str, body: dict | None = None) -> JobRun:
        """POST `path`, then GET the status URL every 50 ms until it reads finished (RuntimeError if it failed)."""
        started, epoch = time.monotonic(), time.time()
        answer = self.session.post(self.base + path, json=body, timeout=120)
        posted = time.monotonic()
        if answer.status_code != 202:
            raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text[:500]}")
        url = answer.json()["status_url"]
        seen: dict[str, float] = {}
        while True:
            status = self.poll(url)
            now = time.monotonic()
            seen.setdefault((status.get("progress") or {}).get("phase") or "?", now - started)
            if status["status"] in ("finished", "failed"):
                break
            if now - started > 3700:
                raise RuntimeError(f"{path}: the job did not end within an hour")
            time.sleep(POLL_SECONDS)
        if status["status"] != "finished":
            raise RuntimeError(f"{path}: the job failed: {status.get('error')}\n{self.worker.tail()}")
        return JobRun(now - started, posted - started, seen, status, epoch)

    def poll(self, path: str) -> dict:
        """GET `path` as a small script would, with http.client: requests' own work per call costs the
        two shared cores about 1 ms, 20 times a second, which the peers do not pay."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            connection.request("GET", path, headers={"Authorization": self.session.headers["Authorization"]})
            answer = connection.getresponse()
            body = answer.read()
        finally:
            connection.close()
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status} {body[:500]!r}")
        return json.loads(body)

    def stop(self) -> None:
        if self.web is not None:
            common.stop_group(self.web)
            self.web_log.close()
        if self.worker is not None:
            self.worker.stop()
        common.purge_namespace(self.redis, self.namespace)
        for key in [*self.redis.scan_iter(f"{self.namespace}:*"), *self.redis.scan_iter(f"rq:*{self.namespace}*")]:
            self.redis.delete(key)
        self.redis.close()


@dataclass
class JobRun:
    seconds: float  # POST sent → a poll read "finished"
    post_seconds: float  # POST sent → its 202 answer read
    phases_seen: dict[str, float]  # phase → seconds after the POST when a poll first saw it
    status: dict
    epoch: float  # time.time() when the POST was sent

    @property
    def job_seconds(self) -> float | None:
        result = self.status.get("result") or {}
        return float(result["seconds"]) if "seconds" in result else None

    def phases(self) -> dict[str, float]:
        """Each phase's seconds as the polls saw it (±50 ms), the POST's round trip first."""
        marks = sorted(self.phases_seen.items(), key=lambda kv: kv[1])
        out = {"POST answered": self.post_seconds}
        for (name, at), (_, nxt) in zip(marks, [*marks[1:], ("end", self.seconds)], strict=True):
            out[name] = nxt - at
        return out

    def rq_steps(self) -> dict[str, float]:
        """From RQ's own timestamps: POST → enqueued, enqueued → started (dequeue, fork), started → ended, → seen."""

        def at(key: str) -> float | None:
            text = self.status.get(key)
            if not text:
                return None
            moment = datetime.fromisoformat(text)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() - self.epoch

        enq, start, end = at("enqueued_at"), at("started_at"), at("ended_at")
        if None in (enq, start, end):
            return {}
        return {"POST sent → enqueued": enq, "enqueued → started (dequeue, fork)": start - enq,
                "started → ended (the job function)": end - start,
                "ended → a poll saw finished": self.seconds - end}  # fmt: skip


# --------------------------------------------------------------------------- one server's context


@dataclass
class Run:
    key: str
    seconds: float
    job_seconds: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    rq: dict[str, float] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
    busy_before: float = 0.0
    archive_bytes: int | None = None


@dataclass
class Size:
    size_mb: int
    source: str
    db_bytes: int
    counts: dict[str, int]
    restore_db: str
    archive: str = ""
    archive_key: str = ""
    archive_bytes: int = 0
    runs: dict[str, list[Run]] = field(default_factory=dict)
    memory: dict[str, dict] = field(default_factory=dict)
    counts_ok: list[bool] = field(default_factory=list)


@dataclass
class Bench:
    args: argparse.Namespace
    s3: common.S3Server
    bucket: str
    console: Console
    procs: Processes
    workdir: Path
    dump: object  # postgres.ClientTool
    restore_tool: object
    compression: list[str]
    jobs: int
    target: object  # app.config.TargetDatabase of the server (for the tools' environment)
    busy: list[float] = field(default_factory=list)

    # ---------------------------------------------------------------- helpers

    def quiet(self, label: str) -> float:
        """Wait (bounded) for the machine to be quiet; the load seen just before is recorded."""
        with pg_connect() as admin:
            admin.execute("CHECKPOINT")  # what earlier runs left dirty is not written during this one
        busy, _ = common.wait_until_idle(self.args.quiet, self.args.quiet_wait, label)
        self.busy.append(busy)
        return busy

    def client(self):
        return common.s3_client(self.s3.url, self.s3.credentials)

    def empty_prefix(self, prefix: str) -> None:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=self.bucket, Key=item["Key"])

    def tool_env(self, dbname: str, appname: str) -> dict[str, str]:
        from app.adapters import postgres

        return postgres.child_env(self.target, dbname=dbname, application_name=appname)

    # ---------------------------------------------------------------- the contenders

    def pg_dump(self, dbname: str) -> Run:
        """(a): pg_dump -Fc to /dev/null (its stdout, as the console reads it)."""
        return self._dump_alone("a", dbname, subprocess.DEVNULL)

    def pg_dump_to_cat(self, dbname: str) -> Run:
        """(g): pg_dump -Fc | cat > /dev/null. For information: writing into a pipe (any reader's) costs
        pg_dump itself more than writing to /dev/null, so this is the floor for (d) and every pipe."""
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            return self._dump_alone("g", dbname, cat.stdin)
        finally:
            cat.stdin.close()
            cat.wait()

    def _dump_alone(self, key: str, dbname: str, stdout) -> Run:
        """pg_dump -Fc at the console's compression into `stdout`, timed from its start to its exit."""
        appname = f"perf-dump-{uuid.uuid4().hex[:8]}"
        meter = Meter(self.procs, backends=(appname, dbname))
        started = time.monotonic()
        proc = subprocess.Popen([self.dump.path, "--format=custom", "--no-password", *self.compression],
                                env=self.tool_env(dbname, appname), stdout=stdout)  # fmt: skip
        code, tool = wait4(proc)
        seconds = time.monotonic() - started
        if code != 0:
            raise RuntimeError(f"pg_dump {dbname} failed ({code})")
        return Run(key, seconds, cpu=meter.stop(tool=tool, python=0.0))

    def pipe(self, dbname: str) -> Run:
        """(b): pg_dump | a Python child doing boto3 upload_fileobj(stdin), default settings, to the same bucket.

        The child imports boto3 and opens its connection before pg_dump starts (a shell pipe would
        start both at once): the peer at its fastest. Timed from pg_dump's start to the child's exit.
        """
        appname = f"perf-pipe-{uuid.uuid4().hex[:8]}"
        key = f"peer/{dbname}-{uuid.uuid4().hex[:8]}.dump"
        read_end, write_end = os.pipe()
        child = start_child("upload", {"endpoint": self.s3.url, "bucket": self.bucket, "key": key},
                            self.s3.credentials, stdin=read_end)  # fmt: skip
        os.close(read_end)
        meter = Meter(self.procs, backends=(appname, dbname))
        started = time.monotonic()
        proc = subprocess.Popen([self.dump.path, "--format=custom", "--no-password", *self.compression],
                                env=self.tool_env(dbname, appname), stdout=write_end)  # fmt: skip
        os.close(write_end)
        code, tool = wait4(proc)
        result = child_result(child)
        seconds = time.monotonic() - started
        if code != 0:
            raise RuntimeError(f"pg_dump {dbname} failed ({code})")
        cpu = meter.stop(tool=tool, python=result["cpu"])
        size = self.client().head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        self.client().delete_object(Bucket=self.bucket, Key=key)
        return Run("b", seconds, cpu=cpu, archive_bytes=size)

    def console_backup(self, key: str, target: str, dbname: str) -> Run:
        """(c) or (d): POST /api/targets/<target>/backup, polled until finished."""
        meter = Meter(self.procs, watch_root=self.procs.worker, backends=("pgconsole-backup-%", dbname))
        job = self.console.run_job(f"/api/targets/{target}/backup")
        cpu = meter.stop()
        run = Run(key, job.seconds, job.job_seconds, cpu=cpu, phases=job.phases(), rq=job.rq_steps(),
                  archive_bytes=(job.status.get("result") or {}).get("size"))  # fmt: skip
        self.clear_target(target)
        return run

    def clear_target(self, target: str) -> None:
        if target.startswith("local-"):
            folder = self.workdir / target
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        else:
            self.empty_prefix(f"{target}/")

    def download_restore(self, size: Size) -> Run:
        """(e): boto3 download_file (a child, default settings), then pg_restore -j N into a fresh empty database."""
        baseline = f"pgconsole_perf_baseline_{size.size_mb}"
        common.drop_database(baseline)
        create_database(baseline)  # not counted
        folder = self.workdir / "download"
        folder.mkdir(exist_ok=True)
        path = folder / "archive.dump"
        appname = f"perf-restore-{uuid.uuid4().hex[:8]}"
        spec = {"endpoint": self.s3.url, "bucket": self.bucket, "key": size.archive_key, "path": str(path)}
        child = start_child("download", spec, self.s3.credentials, stdin=subprocess.PIPE)
        meter = Meter(self.procs, backends=(appname, baseline))
        started = time.monotonic()
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        got = child_result(child)
        restoring = time.monotonic()
        argv = [self.restore_tool.path, f"-j{self.jobs}", "--no-owner", "--no-privileges", "--exit-on-error",
                "-d", baseline, str(path)]  # fmt: skip
        proc = subprocess.Popen(argv, env=self.tool_env(baseline, appname), stdout=subprocess.DEVNULL)
        code, tool = wait4(proc)
        ended = time.monotonic()
        cpu = meter.stop(tool=tool, python=got["cpu"])
        if code != 0:
            raise RuntimeError(f"pg_restore into {baseline} failed ({code})")
        parts = {"download_file": got["seconds"], "pg_restore": ended - restoring}
        size.counts_ok.append(row_counts(baseline) == size.counts)
        common.drop_database(baseline)
        path.unlink()
        return Run("e", ended - started, cpu=cpu, parts=parts, archive_bytes=size.archive_bytes)

    def console_restore(self, size: Size, sampler_ms: int = 0) -> tuple[Run, dict | None]:
        """(f): POST /api/targets/restore-<size>/restore with the passkey, polled until finished."""
        target = f"restore-{size.size_mb}"
        backends = ("pgconsole-restore-%", f"{size.restore_db}_pgc_%")
        meter = Meter(self.procs, watch_root=self.procs.worker, backends=backends)
        sampler = self.sampler(sampler_ms)
        try:
            job = self.console.run_job(f"/api/targets/{target}/restore",
                                       {"filename": size.archive, "passkey": self.args.passkey})  # fmt: skip
        finally:
            peaks = sampler.stop() if sampler else None
        cpu = meter.stop()
        size.counts_ok.append(row_counts(size.restore_db) == size.counts)
        # The restored tables would draw autovacuum into the next runs: do that work now, untimed.
        sql_run(size.restore_db, "VACUUM (FREEZE, ANALYZE)")
        run = Run("f", job.seconds, job.job_seconds, cpu=cpu, phases=job.phases(), rq=job.rq_steps(),
                  archive_bytes=size.archive_bytes)  # fmt: skip
        return run, peaks

    def sampler(self, interval_ms: int) -> Sampler | None:
        if not interval_ms:
            return None
        return Sampler(self.procs.worker, interval_ms / 1000, ["/tmp", "/var/tmp", str(self.console.instance)],
                       [str(self.workdir / name) for name in os.listdir(self.workdir) if name.startswith("local-")]
                       + [str(self.console.instance / "console.sqlite3")])  # fmt: skip

    def sampled_backup(self, target: str, dbname: str) -> tuple[float, dict]:
        sampler = self.sampler(self.args.sample_ms)
        assert sampler is not None
        try:
            job = self.console.run_job(f"/api/targets/{target}/backup")
        finally:
            peaks = sampler.stop()
        self.clear_target(target)
        return job.seconds, peaks


# --------------------------------------------------------------------------- one server


def run_server(kind: str, args, sizes: list[Size], workdir: Path) -> dict:
    from app.adapters import postgres
    from app.config import Settings

    only = {int(mb) for mb in args.moto_sizes.split(",")} if kind == "moto" and args.moto_sizes else None
    # this server's own figures (moto may run fewer sizes: it is the comparison, not the headline)
    sizes = [replace(s, runs={}, memory={}, counts_ok=[]) for s in sizes if only is None or s.size_mb in only]
    with common.s3_server(kind) as s3:
        log(f"{kind}: {s3.version} at {s3.url}")
        bucket = f"pgperf-{uuid.uuid4().hex[:10]}"
        client = common.s3_client(s3.url, s3.credentials)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": common.REGION})
        folder = workdir / kind
        folder.mkdir()
        console = None
        empty = "pgconsole_perf_empty"
        try:
            common.drop_database(empty)
            create_database(empty)
            targets = {"empty": target_table(empty, f"s3://{bucket}/empty")}
            for size in sizes:
                for name in [size.restore_db, *databases_like(f"{size.restore_db}_pgc_")]:
                    common.drop_database(name)
                log(f"copying {size.source} to {size.restore_db}")
                create_database(size.restore_db, template=size.source)
                targets[f"s3-{size.size_mb}"] = target_table(size.source, f"s3://{bucket}/s3-{size.size_mb}")
                local = folder / f"local-{size.size_mb}"
                local.mkdir()
                targets[f"local-{size.size_mb}"] = target_table(size.source, local.as_uri())
                targets[f"restore-{size.size_mb}"] = {
                    **target_table(size.restore_db, f"s3://{bucket}/restore-{size.size_mb}"),
                    "restore_passkey_env": "PERF_RESTORE_PASSKEY",
                }
            log(f"{kind}: starting the console (gunicorn + worker)")
            console = Console(folder / "console", s3, targets, args.redis_url, args.passkey)
            settings = Settings.from_env({"DATABASE_URL": f"postgresql://{common.PG_USER}@{common.PG_HOST}:"
                                          f"{common.PG_PORT}/postgres", "APP_ENV": "perf", "SECRET_KEY": "x",
                                          "PG_BIN_DIRS": os.environ.get("PG_BIN_DIRS", "")})  # fmt: skip
            major, server_version = postgres.server_version(settings.target)
            dump = postgres.pick_client("pg_dump", major, settings.pg_bin_dirs)
            bench = Bench(
                args=args, s3=s3, bucket=bucket, console=console,
                procs=Processes(s3=s3.pid, web=console.web.pid, worker=console.worker.proc.pid), workdir=folder,
                dump=dump, restore_tool=postgres.pick_client("pg_restore", major, settings.pg_bin_dirs),
                compression=postgres.compression_for(settings.backup_compression or "auto", dump).args,
                jobs=settings.restore_jobs, target=settings.target,
            )  # fmt: skip
            log(f"{kind}: {' '.join(dump.version.split())}, {' '.join(bench.compression)}, RESTORE_JOBS={bench.jobs}")
            log(f"{kind}: warm-up backup of the empty database (not reported)")
            console.run_job("/api/targets/empty/backup")
            bench.clear_target("empty")
            fixed = fixed_cost(bench, empty)
            per_size = {}
            for size in sizes:
                per_size[size.size_mb] = run_size(bench, size)
            return {
                "server": s3, "fixed": fixed, "sizes": per_size, "busy": bench.busy, "pg_dump": dump,
                "pg_restore": bench.restore_tool, "compression": bench.compression, "jobs": bench.jobs,
                "server_version": server_version,
            }  # fmt: skip
        finally:
            if console is not None:
                with contextlib.suppress(Exception):
                    log(f"{kind}: worker log tail:\n{console.worker.tail(8)}")
                console.stop()
            for size in sizes:
                for name in [size.restore_db, f"pgconsole_perf_baseline_{size.size_mb}",
                             *databases_like(f"{size.restore_db}_pgc_")]:  # fmt: skip
                    common.drop_database(name)
            common.drop_database(empty)
            with contextlib.suppress(Exception):
                remove_bucket(client, bucket)


def remove_bucket(client, bucket: str) -> None:
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


def target_table(dbname: str, storage_url: str) -> dict[str, str]:
    return {"environment": "perf", "database_url": f"postgresql://{common.PG_USER}@{common.PG_HOST}:{common.PG_PORT}/"
            f"{dbname}", "storage_url": storage_url, "app_name": dbname}  # fmt: skip


def fixed_cost(bench: Bench, empty: str) -> dict[str, list[Run]]:
    """A backup of an empty database: pg_dump alone, the pipe and the console, interleaved, ≥ 5 runs each."""
    runs: dict[str, list[Run]] = {"a": [], "b": [], "c": []}
    order = list(runs)
    for number in range(bench.args.fixed_runs):
        for key in order[number % 3 :] + order[: number % 3]:
            busy = bench.quiet(f"fixed cost {key}")
            if key == "a":
                run = bench.pg_dump(empty)
            elif key == "b":
                run = bench.pipe(empty)
            else:
                run = bench.console_backup("c", "empty", empty)
            run.busy_before = busy
            runs[key].append(run)
        log(f"  fixed cost {number + 1}/{bench.args.fixed_runs}: " +
            ", ".join(f"{k} {runs[k][-1].seconds:.3f} s" for k in order))  # fmt: skip
    return runs


def run_size(bench: Bench, size: Size) -> Size:
    kind = bench.s3.name
    size.runs = {key: [] for key in CONTENDERS}
    log(f"{kind} {size.size_mb} MiB: warm-up pg_dump (not reported), and the archive both restores use")
    bench.pg_dump(size.source)
    target = f"restore-{size.size_mb}"
    job = bench.console.run_job(f"/api/targets/{target}/backup")
    size.archive, size.archive_bytes = job.status["result"]["filename"], job.status["result"]["size"]
    keys = [o["Key"] for o in bench.client().list_objects_v2(Bucket=bench.bucket, Prefix=f"{target}/")["Contents"]]
    size.archive_key = next(k for k in keys if k.endswith("/" + size.archive))
    log(f"  archive {size.archive_key}: {size.archive_bytes / MiB:.1f} MiB")
    measure = {
        "a": lambda: bench.pg_dump(size.source),
        "b": lambda: bench.pipe(size.source),
        "c": lambda: bench.console_backup("c", f"s3-{size.size_mb}", size.source),
        "d": lambda: bench.console_backup("d", f"local-{size.size_mb}", size.source),
        "e": lambda: bench.download_restore(size),
        "f": lambda: bench.console_restore(size)[0],
        "g": lambda: bench.pg_dump_to_cat(size.source),
    }
    order = list(CONTENDERS)
    for number in range(bench.args.rounds):
        for key in order[number % len(order) :] + order[: number % len(order)]:
            busy = bench.quiet(f"{key}, round {number + 1}")
            run = measure[key]()
            run.busy_before = busy
            size.runs[key].append(run)
            own = f" (job's own {run.job_seconds:.2f} s)" if run.job_seconds is not None else ""
            log(f"  {kind} {size.size_mb} MiB round {number + 1}/{bench.args.rounds} {key}: {run.seconds:.2f} s{own}"
                f"; machine busy before {busy:.0%}")  # fmt: skip
    if bench.args.sample_ms:
        log(f"  {kind} {size.size_mb} MiB: sampled runs (PSS every {bench.args.sample_ms} ms)")
        bench.quiet("sampled backup")
        seconds, peaks = bench.sampled_backup(f"s3-{size.size_mb}", size.source)
        size.memory["c"] = {**peaks, "seconds": seconds}
        bench.quiet("sampled restore")
        run, peaks = bench.console_restore(size, bench.args.sample_ms)
        size.memory["f"] = {**(peaks or {}), "seconds": run.seconds}
        log(f"  worker peak PSS: backup {size.memory['c']['worker_kib'] / 1024:.1f} MB, restore "
            f"{size.memory['f']['worker_kib'] / 1024:.1f} MB")  # fmt: skip
    return size


# --------------------------------------------------------------------------- report


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


def report(results: list[dict], args, started: datetime) -> str:
    first = results[0]
    busy = [b for r in results for b in r["busy"]]
    lines = [
        "# pgconsole performance (issue 14)",
        "",
        f"`.venv/bin/python bench/performance.py --servers {args.servers} --sizes {args.sizes} --rounds {args.rounds}"
        + (f" --moto-sizes {args.moto_sizes}" if args.moto_sizes else "")
        + "`"
        f", {started:%Y-%m-%d %H:%M} – {datetime.now().astimezone():%H:%M %Z}.",
        "",
        f"- machine: {len(os.sched_getaffinity(0))} cores, {common.machine_summary()}; PostgreSQL "
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


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="seaweedfs,moto", help="seaweedfs, moto or both (default both)")
    parser.add_argument("--sizes", default="500,1000", help="bench database sizes, MiB (default 500,1000)")
    parser.add_argument("--moto-sizes", default="", help="moto's sizes when fewer than --sizes (e.g. 500)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every contender (default 5)")
    parser.add_argument("--fixed-runs", type=int, default=5, help="runs of the empty-database backup (default 5)")
    parser.add_argument("--sample-ms", type=int, default=50, help="PSS sampling interval; 0 skips the memory runs")
    parser.add_argument("--quiet", type=float, default=0.25, help="wait until the machine is under this busy")
    parser.add_argument("--quiet-wait", type=float, default=30, help="… but at most this many seconds")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "performance.md"))
    parser.add_argument("--redis-url", default=common.DEFAULT_REDIS_URL)
    for mode in ("upload", "download", "sampler"):
        parser.add_argument(f"--{mode}-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for mode, run in (("upload", upload_child), ("download", download_child), ("sampler", sampler_child)):
        if getattr(args, f"{mode}_child"):
            run(json.loads(getattr(args, f"{mode}_child")))
            return 0
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if set(servers) - {"seaweedfs", "moto"} or not servers:
        parser.error("--servers takes seaweedfs and/or moto")
    if args.rounds < 1 or args.fixed_runs < 1:
        parser.error("--rounds and --fixed-runs must be at least 1")
    args.failures = []
    args.passkey = uuid.uuid4().hex  # the restore passkey of this run's console, in its environment only
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    started = datetime.now().astimezone()
    workdir = common.make_workdir("pgconsole-perf-")
    results = []
    try:
        sizes = []
        for mb in (int(s) for s in args.sizes.split(",")):
            source = common.ensure_database(mb)
            sizes.append(Size(mb, source, common.database_size(source), row_counts(source),
                              f"pgconsole_perf_restore_{mb}"))  # fmt: skip
        for kind in servers:
            try:
                results.append(run_server(kind, args, sizes, workdir))
            except Exception as exc:  # the other server's figures are still worth a report
                if not results and kind == servers[-1]:
                    raise
                log(f"{kind} failed: {exc!r}")
                args.failures.append(f"{kind}: {exc!r}"[:300])
            if results:  # each server's figures as soon as they exist
                common.write_report(report(results, args, started), args.out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        log("cleaned up (buckets, Redis keys, processes, scratch databases, temp folder); the bench databases "
            "are kept for the next run")  # fmt: skip
    return 0 if results and not args.failures else 1


if __name__ == "__main__":
    sys.exit(main())
