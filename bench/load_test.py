"""Load: 50 people browsing the backup list and job pages for a minute while 5 backups run.

Starts gunicorn with its default worker count and one RQ worker as real processes, on a
throw-away target database and Redis namespace, with backups to a local folder. Each
simulated person signs in once, then loops over the list page and the current job's page.
Backups are started one after another through the API until 5 have finished.

    .venv/bin/python -m bench.load_test [--users 50] [--seconds 60] [--backups 5] [--out bench/results/load.md]

Prints a table (requests, errors, list-page median and 95th percentile latency, failed jobs)
and writes it to --out. Every request goes to 127.0.0.1 only; loops are bounded in time.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import statistics
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

from tests.support import ROOT, databases
from tests.support.databases import PG
from tests.support.processes import Processes

PASSWORD = "load test password"
REDIS_URL = "redis://127.0.0.1:6379/0"


def make_database(name: str) -> None:
    with psycopg.connect(**PG, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(**{**PG, "dbname": name}, autocommit=True) as conn:
        conn.execute("CREATE TABLE items AS SELECT g AS id, md5(g::text) || md5((g*7)::text) AS v, now() AS at "
                     "FROM generate_series(1, 300000) g")  # fmt: skip


def drop_database(name: str) -> None:
    with psycopg.connect(**PG, autocommit=True) as admin:
        databases.drop_database(admin, name)


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


def start_console(work: Path, dbname: str, namespace: str) -> tuple[Processes, str, str]:
    """gunicorn (its default single worker) and one RQ worker on the throw-away database; (processes, base, token)."""
    env = {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{dbname}",
        "REDIS_NAMESPACE": namespace,
        "INSTANCE_PATH": str(work / "instance"),
        "BACKUP_STORAGE_URL": (work / "backups").as_uri(),
        "SECRET_KEY": uuid.uuid4().hex,
        "APP_ENV": "load",
        "MAX_BACKUP_FILES": "3",
    }
    procs = Processes(work)
    procs.flask(env, "db", "upgrade")
    for name, role in (("viewer", "viewer"), ("operator", "operator")):
        procs.flask(env, "users", "create", name, "--role", role, "--password-stdin", stdin=PASSWORD)
    token = procs.flask(env, "tokens", "create", "operator").strip()
    base = procs.web(env, workers=1)
    procs.worker(env)
    return procs, base, token


def api_json(api, url: str, token: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    return json.loads(api.open(request, timeout=30).read())


def run_backups(base: str, token: str, backups: int, current_job: dict, results: list, stop: threading.Event) -> None:
    """Backups through the API one after another until `backups` have ended (or `stop` is set)."""
    api = urllib.request.build_opener()
    while len(results) < backups and not stop.is_set():
        try:
            job_id = api_json(api, base + "/api/setting/backup", token, "POST")["job_id"]
        except urllib.error.HTTPError:
            time.sleep(0.5)  # 409 while the previous one finishes its bookkeeping
            continue
        current_job["id"] = job_id
        while not stop.is_set():
            status = api_json(api, base + f"/api/jobs/{job_id}", token)
            if status["status"] in ("finished", "failed"):
                results.append(status)
                break
            time.sleep(0.5)


def browse_all(base: str, users: int, seconds: int, current_job: dict) -> list[tuple[str, int, float]]:
    """`users` people looping over the list and the current job's page for `seconds`; (page, status, seconds)."""
    samples: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def browse(person: Person, deadline: float) -> None:
        while time.monotonic() < deadline:
            for path in ("/", f"/jobs/{current_job['id']}" if current_job["id"] else "/"):
                status, elapsed = person.get(path)
                with lock:
                    samples.append(("list" if path == "/" else "job", status, elapsed))

    people = [Person(base, "viewer") for _ in range(users)]
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=browse, args=(p, deadline)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples


def summary(users: int, elapsed: float, samples: list[tuple[str, int, float]], jobs: list[dict]) -> dict:
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
        "backups_finished": sum(1 for j in jobs if j["status"] == "finished"),
        "backups_failed": sum(1 for j in jobs if j["status"] != "finished"),
    }


def run(users: int, seconds: int, backups: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="pgconsole-load-"))
    dbname = f"pgconsole_load_{uuid.uuid4().hex[:8]}"
    namespace = f"pgconsole-load-{uuid.uuid4().hex[:8]}"
    make_database(dbname)
    procs = None
    try:
        procs, base, token = start_console(work, dbname, namespace)
        current_job: dict = {"id": None}
        jobs: list[dict] = []
        stop = threading.Event()
        backup_thread = threading.Thread(target=run_backups, args=(base, token, backups, current_job, jobs, stop))
        started = time.monotonic()
        backup_thread.start()
        samples = browse_all(base, users, seconds, current_job)
        backup_thread.join(timeout=600)
        stop.set()
        return summary(users, time.monotonic() - started, samples, jobs)
    finally:
        if procs is not None:
            procs.stop_all()
        drop_database(dbname)
        client = redis_lib.Redis.from_url(REDIS_URL)
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
