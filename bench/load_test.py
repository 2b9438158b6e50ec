"""Load: 50 people browsing the backup list and job pages for a minute while 5 backups run.

Starts gunicorn with its default worker count and one RQ worker as real processes, on a
throw-away target database and Redis namespace, with backups to a local folder. Each
simulated person signs in once, then loops over the list page and the current job's page.
Backups are started one after another through the API until 5 have finished.

    .venv/bin/python bench/load_test.py [--users 50] [--seconds 60] [--backups 5] [--out bench/results/load.md]

Prints a table (requests, errors, list-page median and 95th percentile latency, failed jobs)
and writes it to --out. Every request goes to 127.0.0.1 only; loops are bounded in time.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis as redis_lib
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load test password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_database(name: str) -> None:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=name, autocommit=True) as conn:
        conn.execute("CREATE TABLE items AS SELECT g AS id, md5(g::text) || md5((g*7)::text) AS v, now() AS at "
                     "FROM generate_series(1, 300000) g")  # fmt: skip


def drop_database(name: str) -> None:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Person:
    """One browser: a cookie jar, signed in through the real form."""

    def __init__(self, base: str, username: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(base + "/login", timeout=30).read().decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": token}).encode()
        self.opener.open(base + "/login", data=form, timeout=30).read()

    def get(self, path: str) -> tuple[int, float]:
        start = time.perf_counter()
        try:
            with self.opener.open(self.base + path, timeout=30) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        return status, time.perf_counter() - start


def run(users: int, seconds: int, backups: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="pgconsole-load-"))
    dbname = f"pgconsole_load_{uuid.uuid4().hex[:8]}"
    namespace = f"pgconsole-load-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{dbname}",
        "REDIS_NAMESPACE": namespace,
        "INSTANCE_PATH": str(work / "instance"),
        "BACKUP_STORAGE_URL": (work / "backups").as_uri(),
        "SECRET_KEY": uuid.uuid4().hex,
        "APP_ENV": "load",
        "MAX_BACKUP_FILES": "3",
    }
    make_database(dbname)
    procs = []
    try:
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        for name, role in (("viewer", "viewer"), ("operator", "operator")):
            subprocess.run([*flask, "users", "create", name, "--role", role, "--password-stdin"], cwd=ROOT, env=env,
                           input=PASSWORD, text=True, check=True, capture_output=True)  # fmt: skip
        token = subprocess.run([*flask, "tokens", "create", "operator"], cwd=ROOT, env=env, text=True, check=True,
                               capture_output=True).stdout.strip()  # fmt: skip
        log = open(work / "processes.log", "ab")  # noqa: SIM115 - closed in finally
        procs.append(subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
                                      cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True))  # fmt: skip
        procs.append(subprocess.Popen([*flask, "worker"], cwd=ROOT, env=env, stdout=log, stderr=log,
                                      start_new_session=True))  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/login", timeout=2)
                break
            except OSError:
                time.sleep(0.2)

        current_job = {"id": None}
        job_results: list[dict] = []
        stop = threading.Event()

        def run_backups() -> None:
            api = urllib.request.build_opener()
            while len(job_results) < backups and not stop.is_set():
                request = urllib.request.Request(base + "/api/setting/backup", method="POST",
                                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                try:
                    job_id = json.loads(api.open(request, timeout=30).read())["job_id"]
                except urllib.error.HTTPError:
                    time.sleep(0.5)  # 409 while the previous one finishes its bookkeeping
                    continue
                current_job["id"] = job_id
                while not stop.is_set():
                    status = json.loads(
                        api.open(
                            urllib.request.Request(
                                base + f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}
                            ),
                            timeout=30,
                        ).read()
                    )
                    if status["status"] in ("finished", "failed"):
                        job_results.append(status)
                        break
                    time.sleep(0.5)

        samples: list[tuple[str, int, float]] = []
        lock = threading.Lock()

        def browse(person: Person, deadline: float) -> None:
            while time.monotonic() < deadline:
                for path in ("/", f"/jobs/{current_job['id']}" if current_job["id"] else "/"):
                    status, elapsed = person.get(path)
                    with lock:
                        samples.append(("list" if path == "/" else "job", status, elapsed))

        people = [Person(base, "viewer") for _ in range(users)]
        backup_thread = threading.Thread(target=run_backups)
        started = time.monotonic()
        backup_thread.start()
        deadline = started + seconds
        threads = [threading.Thread(target=browse, args=(p, deadline)) for p in people]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        backup_thread.join(timeout=600)
        stop.set()
        elapsed = time.monotonic() - started
        list_times = sorted(t for kind, status, t in samples if kind == "list" and status == 200)
        errors = [s for s in samples if s[1] != 200]
        return {
            "users": users,
            "seconds": round(elapsed, 1),
            "requests": len(samples),
            "errors": len(errors),
            "error_statuses": sorted({(s[0], s[1]) for s in errors}),
            "list_median_ms": round(statistics.median(list_times) * 1000, 1) if list_times else None,
            "list_p95_ms": round(list_times[int(0.95 * (len(list_times) - 1))] * 1000, 1) if list_times else None,
            "backups_finished": sum(1 for j in job_results if j["status"] == "finished"),
            "backups_failed": sum(1 for j in job_results if j["status"] != "finished"),
        }
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        drop_database(dbname)
        client = redis_lib.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in [*client.scan_iter(f"{namespace}*"), *client.scan_iter(f"rq:*{namespace}*")]:
            client.delete(key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--backups", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.md"))
    args = parser.parse_args()
    result = run(args.users, args.seconds, args.backups)
    table = "\n".join([
        f"# pgconsole load test ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores)",
        "",
        "gunicorn with its default workers (1 sync worker), one RQ worker, backups to a local folder.",
        "",
        "| people | seconds | requests | error responses | list median ms | list p95 ms "
        "| backups finished | backups failed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result['users']} | {result['seconds']} | {result['requests']} | {result['errors']} "
        f"| {result['list_median_ms']} | {result['list_p95_ms']} | {result['backups_finished']} "
        f"| {result['backups_failed']} |",
        "",
        f"Error statuses seen (page, status; 0 = no answer): {result['error_statuses'] or 'none'}.",
    ])  # fmt: skip
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table + "\n")
    return 0 if result["errors"] == 0 and result["backups_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
