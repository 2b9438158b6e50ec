"""What `/` and `/healthz` cost with 5,000 objects and 1,000 pins in the bucket, before and after a change.

    .venv/bin/python -m bench.pages_bench [--before main] [--repeat 9] [--stores seaweedfs,moto]
                                          [--out bench/results/pages.md]

The bucket, on a real S3 server (SeaweedFS's `weed mini`, started as the tests start it, see
tests/s3_servers.py; optionally `moto_server` too), holds 2,000 backups (1,000 of this console's
environment, 1,000 of another), a manifest beside each and a pin beside every second one:
5,000 objects, 1,000 of them pins. Each tree (`--before`, exported with `git archive` into a
temporary folder, and this checkout) is served by gunicorn with 2 sync workers (as the
Dockerfile runs it; `--timeout 300` so that a slow page is measured, not killed), from its own
code, on a fresh Redis namespace and console store. Measured with real HTTP from this process:

- `/` signed in (an admin), `/healthz` anonymous and signed in, `/api/setting/backups` with a
  token: `--repeat` requests each, one after another (median, min–max, bytes);
- `/` signed in, each request after waiting out the listing cache (`BACKUP_LIST_CACHE_SECONDS`
  + 0.5 s): what the first visitor after a quiet moment pays;
- `/` signed in while 10 threads call anonymous `/healthz` without pause.

Everything runs on 127.0.0.1; the bucket, database, Redis keys and folders are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import io
import json
import re
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench import common
from bench.common import log
from tests.support import ROOT
from tests.support.processes import child_env, free_port, stop_group, wait_until_answering

PASSWORD = "pages bench password"
APP_NAME, OURS, THEIRS = "pharmatracker", "staging", "production"
CACHE_SECONDS = 5  # the default BACKUP_LIST_CACHE_SECONDS
PARALLEL_HEALTHZ = 10
BUSY: list[float] = []  # the machine's load before each measurement


# --------------------------------------------------------------------------- the bucket


def fill_bucket(client, bucket: str, backups: int = 2000) -> dict[str, int]:
    """`backups` dumps (half ours, half another environment's), a manifest each, a pin on every second one."""
    from app.domain.naming import backup_filename

    zone, now = ZoneInfo("Asia/Kolkata"), datetime.now(UTC)
    objects: list[tuple[str, bytes]] = []
    for i in range(backups):
        env = OURS if i % 2 == 0 else THEIRS
        at = now - timedelta(hours=i // 2 + 1, seconds=i % 2)
        name = backup_filename(APP_NAME, env, at, zone)
        size = 50_000_000 + (i * 7919) % 1_000_000
        manifest = {"filename": name, "size": size, "environment": env, "started_at": at.isoformat(),
                    "finished_at": (at + timedelta(seconds=40)).isoformat()}  # fmt: skip
        objects.append((name, b"x" * 16))
        objects.append((name + ".json", json.dumps(manifest).encode()))
        if (i // 2) % 2 == 0:
            pin = {"note": f"kept for audit {i}", "pinned_by": "bench", "pinned_at": at.isoformat()}
            objects.append((name + ".pin", json.dumps(pin).encode()))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda o: client.put_object(Bucket=bucket, Key=o[0], Body=o[1]), objects))
    pins = sum(1 for name, _ in objects if name.endswith(".pin"))
    return {"objects": len(objects), "pins": pins, "backups": backups}


@contextlib.contextmanager
def s3_server(kind: str):
    """(endpoint URL, access key, secret key) of a running SeaweedFS or moto_server (bench/common.py starts them)."""
    with common.s3_server(kind) as server:
        yield server.url, server.access_key, server.secret_key


# --------------------------------------------------------------------------- a console on one tree


def export_tree(ref: str, folder: Path) -> str:
    """`git archive ref` unpacked into `folder`; the commit's short id."""
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return commit


class Console:
    """gunicorn (2 sync workers) serving the code in `tree`, with an admin and a token."""

    def __init__(self, tree: Path, work: Path, s3: tuple[str, str, str], bucket: str):
        self.namespace = f"pgconsole-pages-{uuid.uuid4().hex[:8]}"
        self.dbname = f"pgconsole_pages_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        url, access, secret = s3
        self.env = child_env({
            "PYTHONPATH": str(tree),  # this tree's `app`, not the checkout the venv points at
            "APP_ENV": OURS, "APP_NAME": APP_NAME, "SECRET_KEY": uuid.uuid4().hex,
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{self.dbname}",
            "REDIS_URL": common.DEFAULT_REDIS_URL, "REDIS_NAMESPACE": self.namespace,
            "INSTANCE_PATH": str(work / "instance"), "BACKUP_STORAGE_URL": f"s3://{bucket}",
            "S3_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": common.REGION, "S3_ADDRESSING_STYLE": "path",
            "REQUIRE_2FA": "none",  # else the admin is sent to two-factor enrolment instead of the list
        })  # fmt: skip
        self.tree, self.work = tree, work
        with common.pg_connect() as admin:
            admin.execute(f'CREATE DATABASE "{self.dbname}"')
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        where = subprocess.run([sys.executable, "-c", "import app; print(app.__file__)"], cwd=tree, env=self.env,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        if not where.startswith(str(tree)):
            raise RuntimeError(f"{tree} would run the code in {where}")
        if any((tree / "app" / where / "migrations").is_dir() for where in ("", "store")):  # Alembic: the store
            subprocess.run([*flask, "db", "upgrade"], cwd=tree, env=self.env, check=True, capture_output=True)
        subprocess.run([*flask, "users", "create", "admin", "--role", "admin", "--password-stdin"], cwd=tree,
                       env=self.env, input=PASSWORD, text=True, check=True, capture_output=True)  # fmt: skip
        self.token = subprocess.run([*flask, "tokens", "create", "admin"], cwd=tree, env=self.env, text=True,
                                    check=True, capture_output=True).stdout.strip().splitlines()[-1]  # fmt: skip
        self.log = open(work / "gunicorn.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--timeout", "300", "wsgi:app"],
            cwd=tree, env=self.env, stdout=self.log, stderr=self.log, start_new_session=True,
        )  # fmt: skip
        wait_until_answering(self.base + "/login", self.proc, timeout=60)

    def signed_in(self) -> urllib.request.OpenerDirector:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(self.base + "/login", timeout=30).read().decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrf_token": token}).encode()
        opener.open(self.base + "/login", data=form, timeout=600).read()  # then `/`, which may be slow
        return opener

    def stop(self) -> None:
        stop_group(self.proc)
        self.log.close()
        common.drop_database(self.dbname)
        import redis

        client = redis.Redis.from_url(common.DEFAULT_REDIS_URL)
        for key in [*client.scan_iter(f"{self.namespace}:*"), *client.scan_iter(f"rq:*{self.namespace}*")]:
            client.delete(key)


def timed(opener, url: str, headers: dict[str, str] | None = None) -> tuple[int, float, int]:
    """(status, seconds, body bytes) of one GET."""
    request = urllib.request.Request(url, headers=headers or {})
    started = time.perf_counter()
    try:
        with opener.open(request, timeout=600) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    return status, time.perf_counter() - started, len(body)


def summary(samples: list[tuple[int, float, int]]) -> dict:
    seconds = [s[1] for s in samples]
    return {
        "n": len(samples),
        "statuses": sorted({s[0] for s in samples}),
        "median_ms": statistics.median(seconds) * 1000,
        "min_ms": min(seconds) * 1000,
        "max_ms": max(seconds) * 1000,
        "bytes": statistics.median(s[2] for s in samples),
    }


def measure(console: Console, repeat: int, cold: int) -> dict[str, dict]:
    person = console.signed_in()
    anonymous = urllib.request.build_opener()
    bearer = {"Authorization": f"Bearer {console.token}"}
    base = console.base
    for _ in range(2):  # each of the two workers loads its templates, clients, ...
        page = person.open(base + "/", timeout=600).read().decode()
        if 'class="backups"' not in page:
            raise RuntimeError("`/` did not show the backups list to the signed-in admin")
    results: dict[str, dict] = {}
    cases = [
        ("`/` signed in (admin)", person, "/", None),
        ("`/healthz` anonymous", anonymous, "/healthz", None),
        ("`/healthz` signed in", person, "/healthz", None),
        ("`/api/setting/backups` (token)", anonymous, "/api/setting/backups", bearer),
    ]
    for label, opener, path, headers in cases:
        BUSY.append(common.wait_until_idle(0.5, 30, label)[0])
        results[label] = summary([timed(opener, base + path, headers) for _ in range(repeat)])
        log(f"  {label}: {results[label]['median_ms']:.0f} ms median")
    samples = []
    for _ in range(cold):
        time.sleep(CACHE_SECONDS + 0.5)
        samples.append(timed(person, base + "/"))
    results[f"`/` signed in, after {CACHE_SECONDS + 0.5} s quiet"] = summary(samples)
    stop = threading.Event()

    def hammer() -> None:
        opener = urllib.request.build_opener()
        while not stop.is_set():
            timed(opener, base + "/healthz")

    threads = [threading.Thread(target=hammer) for _ in range(PARALLEL_HEALTHZ)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        results[f"`/` signed in, while {PARALLEL_HEALTHZ} threads call anonymous `/healthz`"] = summary(
            [timed(person, base + "/") for _ in range(max(3, repeat // 2))]
        )
    finally:
        stop.set()
        for t in threads:
            t.join()
    return results


# --------------------------------------------------------------------------- report


def report(runs: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"# `/` and `/healthz` with 5,000 objects and 1,000 pins ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`python -m bench.pages_bench --before {args.before} --repeat {args.repeat} --stores {args.stores}`. "
        f"Machine: {common.machine_summary()}.",
        "",
        "gunicorn with 2 sync workers (as the Dockerfile), `--timeout 300`; the bucket holds backups (half of them "
        "this console's environment), a manifest each and a pin on every second one; requests one after another "
        "from one client on 127.0.0.1. Milliseconds: median and (min–max); bytes: the median body. The highest "
        "load seen on the 2 cores before a measurement (other people's test runs share them): "
        f"{max(BUSY, default=0):.0%}.",
        "",
    ]
    for run in runs:
        lines += [f"## {run['store']} ({run['bucket']['objects']} objects, {run['bucket']['pins']} pins)", ""]
        trees = list(run["results"])
        lines.append("| request | " + " | ".join(f"{t} ms" for t in trees) + " | " +
                     " | ".join(f"{t} bytes" for t in trees) + " |")  # fmt: skip
        lines.append("|---|" + "---:|" * (2 * len(trees)))
        for label in run["results"][trees[0]]:
            cells = []
            for tree in trees:
                s = run["results"][tree][label]
                bad = "" if s["statuses"] == [200] else f" (status {s['statuses']})"
                cells.append(f"{s['median_ms']:.0f} ({s['min_ms']:.0f}–{s['max_ms']:.0f}), n={s['n']}{bad}")
            sizes = [f"{run['results'][t][label]['bytes']:,.0f}" for t in trees]
            lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(sizes) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    common.LOG["prefix"] = "pages"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git ref of the code to compare with (default main)")
    parser.add_argument("--repeat", type=int, default=9, help="requests per measurement (default 9)")
    parser.add_argument("--cold", type=int, default=3, help="requests after the cache expired (default 3)")
    parser.add_argument("--backups", type=int, default=2000, help="backups in the bucket (default 2000: 5,000 objects)")
    parser.add_argument("--stores", default="seaweedfs", help="seaweedfs, moto or both (comma-separated)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "pages.md"))
    args = parser.parse_args()
    work = common.make_workdir("pgconsole-pages-", "before", "after")
    before_commit = export_tree(args.before, work / "before")
    after = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "app"], cwd=ROOT, capture_output=True, text=True).stdout
    named = args.before if before_commit.startswith(args.before) else f"{args.before} {before_commit}"
    trees = {f"before ({named})": work / "before",
             f"after ({after}{' + changes' if dirty.strip() else ''})": ROOT}  # fmt: skip
    runs = []
    try:
        for store in args.stores.split(","):
            with s3_server(store) as s3:
                bucket = f"pages-{uuid.uuid4().hex[:8]}"
                client = common.s3_client(s3[0], {"AWS_ACCESS_KEY_ID": s3[1], "AWS_SECRET_ACCESS_KEY": s3[2]})
                client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": common.REGION})
                log(f"{store}: filling {bucket}")
                filled = fill_bucket(client, bucket, args.backups)
                results = {}
                for label, tree in trees.items():
                    log(f"{store}: {label}")
                    folder = work / f"{store}-{uuid.uuid4().hex[:6]}"
                    folder.mkdir()
                    console = Console(tree, folder, s3, bucket)
                    try:
                        results[label] = measure(console, args.repeat, args.cold)
                    finally:
                        console.stop()
                runs.append({"store": store, "bucket": filled, "results": results})
                common.write_report(report(runs, args), args.out)  # each store's figures as soon as they exist
                pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for page in pages:
                    for item in page.get("Contents", []):
                        client.delete_object(Bucket=bucket, Key=item["Key"])
                client.delete_bucket(Bucket=bucket)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
