"""One console as a user runs it: gunicorn and the worker, driven through the API, each job polled."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from bench import common
from bench.common import S3Server
from tests.support import ROOT
from tests.support.processes import Processes, child_env

POLL_SECONDS = 0.05  # how often a user's script (and this bench) asks for the job's status


class Console:
    """gunicorn (2 sync workers, as the Dockerfile) + `flask --app wsgi worker`, with an admin's API token."""

    def __init__(self, folder: Path, s3: S3Server, targets: dict[str, dict], redis_url: str, passkey: str):
        import redis

        self.namespace = f"pgperf-{uuid.uuid4().hex[:10]}"
        self.redis = redis.Redis.from_url(redis_url)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for name, table in targets.items():
            lines += ["", f"[targets.{name}]", *(f"{key} = {json.dumps(value)}" for key, value in table.items())]
        (folder / "targets.toml").write_text("\n".join(lines).lstrip() + "\n")
        self.env = child_env({
            "PYTHONPATH": str(ROOT), "APP_ENV": "perf", "SECRET_KEY": uuid.uuid4().hex,
            "TARGETS_FILE": str(folder / "targets.toml"), "REDIS_URL": redis_url, "REDIS_NAMESPACE": self.namespace,
            "INSTANCE_PATH": str(folder / "instance"), "S3_ENDPOINT_URL": s3.url, **s3.credentials,
            "AWS_REGION": common.REGION, "JOB_TIMEOUT_SECONDS": "3600", "BACKUP_MIN_INTERVAL_SECONDS": "0",
            # the recent-backup rule still runs; a wide window keeps a long run from being refused
            "REQUIRE_2FA": "none", "PERF_RESTORE_PASSKEY": passkey,
            "PG_BIN_DIRS": os.environ.get("PG_BIN_DIRS", ""),
        })  # fmt: skip
        self.instance = folder / "instance"
        where = subprocess.run([sys.executable, "-c", "import app; print(app.__file__)"], cwd=ROOT, env=self.env,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        if not where.startswith(str(ROOT)):
            raise RuntimeError(f"the console would run the code in {where}, not this checkout's")
        self.processes = Processes(folder)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        import requests

        flask = self.processes.flask
        flask(self.env, "db", "upgrade")  # as at boot: the worker refuses a store not at this release's revision
        flask(self.env, "users", "create", "perf", "--role", "admin", "--password-stdin", stdin=uuid.uuid4().hex)
        token = flask(self.env, "tokens", "create", "perf").strip().splitlines()[-1]
        self.processes.worker(self.env)
        self.base = self.processes.web(self.env, "--timeout", "300")
        self.host, self.port = "127.0.0.1", urlsplit(self.base).port
        self.processes.wait_registered(self.redis, self.namespace)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        for _ in range(4):  # each gunicorn worker loads the app's first-request pieces
            self.session.get(self.base + "/api/targets", timeout=60).raise_for_status()

    @property
    def pids(self) -> tuple[int, int]:
        """(gunicorn's, the worker's)."""
        return self.processes.named["web"].pid, self.processes.named["worker"].pid

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
            raise RuntimeError(f"{path}: the job failed: {status.get('error')}\n{self.processes.tail('worker')}")
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
        self.processes.stop_all()
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

