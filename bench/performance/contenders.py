"""The contenders of one server's round: the peers' scripts and the console's jobs, each timed and metered."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import common
from bench.common import S3Server, pg_connect
from bench.performance.children import Sampler, child_result, start_child
from bench.performance.console import Console
from bench.performance.meter import Meter, Pids, wait4


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


def sql_run(dbname: str, statement: str) -> None:
    with pg_connect(dbname) as conn:
        conn.execute(statement)


def databases_like(prefix: str) -> list[str]:
    with pg_connect() as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s",
                             (len(prefix), prefix)).fetchall()  # fmt: skip
    return [r[0] for r in rows]



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
    s3: S3Server
    bucket: str
    console: Console
    procs: Pids
    workdir: Path
    dump: object  # postgres.ClientTool
    restore_tool: object
    compression: list[str]
    jobs: int
    target: object  # app.config.TargetDatabase of the server (for the tools' environment)
    server_version: str = ""
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
        common.copy_database(baseline)  # not counted
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

