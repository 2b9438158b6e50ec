"""Shared pieces of the benchmarks: the bench databases, /proc readings, machine load, reports.

The benchmarks run as modules from the checkout (`.venv/bin/python -m bench.<name>`), so `bench`
and `tests` import; the real-server helpers come from tests/support. The top level is stdlib only
(and tests.support.processes, which is too): the benchmarks' sampler children use it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.support.processes import children_of, descendants, free_port, stop_group, wait_until_answering

MiB = 1024 * 1024
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SCHEMA_VERSION = "1"  # bump when the generated data changes, so old bench databases are rebuilt
POLL_SECONDS = 0.1
REGION = "ap-south-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}

LOG = {"prefix": "bench"}  # each script sets its own prefix


def log(message: str) -> None:
    """One progress line on stderr: `[<prefix> HH:MM:SS] message`."""
    print(f"[{LOG['prefix']} {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the bench database


def use_server(host: str, port: int) -> None:
    """Point pg_connect, and so every database helper here, at another server (e.g. a wheel's PostgreSQL)."""
    global PG_HOST, PG_PORT
    PG_HOST, PG_PORT = host, port


def pg_connect(dbname: str = "postgres"):
    """An autocommit psycopg connection to the local server."""
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True, connect_timeout=5)


def random_b64(n_uuids: int) -> str:
    """SQL for poorly compressible text: base64 of 16·n random bytes (core PostgreSQL 13+ only)."""
    raw = " || ".join(["uuid_send(gen_random_uuid())"] * n_uuids)
    return f"translate(encode({raw}, 'base64'), E'\\n', '')"


CREATE_SCHEMA = """
CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE customers (
    id integer PRIMARY KEY,
    ref uuid NOT NULL,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    country char(2) NOT NULL,
    balance numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL,
    profile jsonb NOT NULL
);
CREATE TABLE events (
    id bigint NOT NULL,
    customer_id integer NOT NULL,
    kind text NOT NULL,
    amount numeric(12, 2),
    score double precision,
    happened_at timestamptz NOT NULL,
    ref uuid NOT NULL,
    payload jsonb NOT NULL,
    note text NOT NULL
);
"""

INSERT_CUSTOMERS = f"""
INSERT INTO customers
SELECT g,
       gen_random_uuid(),
       initcap(substr(md5(random()::text), 1, 8)) || ' ' || initcap(substr(md5(random()::text), 1, 10)),
       'u' || g || '.' || substr(md5(random()::text), 1, 12) || '@example.com',
       (ARRAY['IN', 'US', 'DE', 'GB', 'FR', 'BR', 'JP', 'SG'])[1 + floor(random() * 8)::int],
       round((random() * 100000)::numeric, 2),
       timestamptz '2020-01-01' + random() * interval '1800 days',
       jsonb_build_object(
           'bio', {random_b64(4)},
           'phone', '+91' || lpad(floor(random() * 1e10)::bigint::text, 10, '0'),
           'token', md5(random()::text),
           'prefs', jsonb_build_object('newsletter', random() < 0.5, 'theme',
                                       (ARRAY['dark', 'light', 'auto'])[1 + floor(random() * 3)::int]))
FROM generate_series(1, %(n)s) g
"""

INSERT_EVENTS = f"""
INSERT INTO events
SELECT g,
       1 + floor(random() * %(customers)s)::int,
       (ARRAY['view', 'click', 'purchase', 'refund', 'login', 'logout', 'signup', 'cancel'])
           [1 + floor(random() * 8)::int],
       round((random() * 5000)::numeric, 2),
       random() * 100,
       timestamptz '2023-01-01' + random() * interval '730 days',
       gen_random_uuid(),
       jsonb_build_object(
           'ip', concat_ws('.', floor(random() * 256)::int, floor(random() * 256)::int,
                           floor(random() * 256)::int, floor(random() * 256)::int),
           'agent', 'Mozilla/5.0 (' || substr(md5(random()::text), 1, 16) || ')',
           'session', gen_random_uuid(),
           'sku', upper(substr(md5(random()::text), 1, 10)),
           'items', floor(random() * 20)::int,
           'price', round((random() * 500)::numeric, 2)),
       {random_b64(6)}
FROM generate_series(%(lo)s, %(hi)s) g
"""

CREATE_INDEXES = """
ALTER TABLE events ADD PRIMARY KEY (id);
CREATE INDEX events_customer_id_idx ON events (customer_id);
CREATE INDEX events_happened_at_idx ON events (happened_at);
ALTER TABLE events ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
"""


def database_size(dbname: str) -> int:
    """pg_database_size of `dbname`, bytes."""
    with pg_connect(dbname) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def database_exists(name: str) -> bool:
    """Whether the server has a database called `name`."""
    with pg_connect() as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_database(name: str) -> None:
    """DROP DATABASE IF EXISTS … WITH (FORCE)."""
    from tests.support import databases

    with pg_connect() as admin:
        databases.drop_database(admin, name)


def copy_database(name: str, template: str = "template0") -> None:
    """CREATE DATABASE name TEMPLATE template (retried while the template is in use)."""
    from tests.support import databases

    with pg_connect() as admin:
        databases.copy_database(admin, name, template)


def bench_marker(dbname: str) -> dict[str, str]:
    """The `bench_meta` rows of a bench database ({} when there are none)."""
    import psycopg

    try:
        with pg_connect(dbname) as conn:
            return dict(conn.execute("SELECT key, value FROM bench_meta").fetchall())
    except psycopg.Error:
        return {}


def is_complete(name: str, size_mb: int) -> bool:
    """Whether the marker says `name` was built by this schema at `size_mb`, and it is that big."""
    marker = bench_marker(name)
    return (
        marker.get("schema") == SCHEMA_VERSION
        and marker.get("size_mb") == str(size_mb)
        and database_size(name) >= size_mb * MiB
    )


def ensure_database(size_mb: int) -> str:
    """`pgconsole_bench_<size>`, reused when its marker says it is complete and big enough; else (re)built."""
    from psycopg import sql

    name = f"pgconsole_bench_{size_mb}"
    if database_exists(name):
        if is_complete(name, size_mb):
            log(f"reusing {name} ({database_size(name) / MiB:.0f} MiB, built {bench_marker(name).get('built_at')})")
            return name
        log(f"{name} exists but is incomplete or stale: rebuilding it")
        drop_database(name)
    with pg_connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    build_database(name, size_mb)
    return name


def build_database(name: str, size_mb: int) -> None:
    """Fill the empty database `name` to at least `size_mb` MiB; the bench_meta marker is written last."""
    target = size_mb * MiB
    customers = max(2000, size_mb * 100)
    started = time.monotonic()
    log(f"building {name}: at least {size_mb} MiB on disk")
    with pg_connect(name) as conn:
        conn.execute(CREATE_SCHEMA)
        conn.execute(INSERT_CUSTOMERS, {"n": customers})
        size_of = "SELECT pg_database_size(current_database())"
        next_id, batch = 1, 100_000
        # Heap first (fast, no index maintenance), then the indexes, then top up to the target.
        while int(conn.execute(size_of).fetchone()[0]) < 0.80 * target:
            conn.execute(INSERT_EVENTS, {"customers": customers, "lo": next_id, "hi": next_id + batch - 1})
            next_id += batch
            log(f"  {next_id - 1:,} events, {int(conn.execute(size_of).fetchone()[0]) / MiB:.0f} MiB")
        conn.execute(CREATE_INDEXES)
        batch = 25_000
        while int(conn.execute(size_of).fetchone()[0]) < target:
            conn.execute(INSERT_EVENTS, {"customers": customers, "lo": next_id, "hi": next_id + batch - 1})
            next_id += batch
        log(f"  {next_id - 1:,} events with indexes, vacuuming")
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute(
            "INSERT INTO bench_meta VALUES ('schema', %s), ('size_mb', %s), ('events', %s), ('customers', %s), "
            "('built_at', %s)",
            (SCHEMA_VERSION, str(size_mb), str(next_id - 1), str(customers), datetime.now(UTC).isoformat()),
        )
        size = int(conn.execute(size_of).fetchone()[0])
    log(f"built {name}: {size / MiB:.0f} MiB in {time.monotonic() - started:.0f} s")


# --------------------------------------------------------------------------- /proc


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    return [root, *descendants(root)]


def pss_kib(pid: int) -> int:
    """Proportional set size of a process, KiB, from /proc/<pid>/smaps_rollup (0 when gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def comm_of(pid: int) -> str:
    """A process's command name ("" when gone)."""
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- machine load


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def machine_busy(seconds: float = 1.0) -> float:
    """The machine's busy fraction over the next `seconds`."""
    b0, t0 = cpu_times()
    time.sleep(seconds)
    b1, t1 = cpu_times()
    return (b1 - b0) / max(t1 - t0, 1)


def wait_until_idle(threshold: float, max_wait: float, label: str = "") -> tuple[float, float]:
    """Wait (at most `max_wait` s) until the machine is under `threshold` busy.

    Returns the last load seen and the seconds waited after the first one-second look.
    """
    deadline = time.monotonic() + max_wait
    busy = machine_busy()
    started = time.monotonic()
    before = f"before {label}: " if label else ""
    while busy > threshold and time.monotonic() < deadline:
        log(f"  {before}the machine is {busy:.0%} busy with other work; waiting")
        busy = machine_busy(2.0)
    return busy, time.monotonic() - started


def cpu_model() -> str:
    """The CPU's model name."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    """The machine's RAM, GiB."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def machine_summary() -> str:
    """CPU model, RAM, Python and kernel, for a report's machine line."""
    return (
        f"{cpu_model()}, {mem_total_gib():.1f} GiB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


# --------------------------------------------------------------------------- Redis


def purge_namespace(client, namespace: str) -> None:
    """The app's own clean-up of a throw-away namespace (imported late: the sampler children never need app)."""
    from app.jobs.queue import purge_namespace as purge

    purge(client, namespace)


# --------------------------------------------------------------------------- S3 servers


@dataclass(frozen=True)
class S3Server:
    """A running S3 server: how to reach it, and its process (for its CPU)."""

    name: str  # seaweedfs or moto
    url: str
    access_key: str
    secret_key: str
    pid: int
    version: str

    @property
    def credentials(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


@contextlib.contextmanager
def s3_server(kind: str) -> Iterator[S3Server]:
    """SeaweedFS (`weed mini`, started exactly as the tests start it) or moto's server, each its own process."""
    if kind == "seaweedfs":
        from tests.support.s3_servers import seaweedfs

        before = set(children_of(os.getpid()))
        with seaweedfs() as endpoint:
            pid = next(p for p in children_of(os.getpid()) if p not in before and comm_of(p) == "weed")
            weed = str(Path(sys.executable).parent / "weed")
            version = subprocess.run([weed, "version"], capture_output=True, text=True, timeout=30).stdout
            yield S3Server(kind, endpoint.url, endpoint.access_key, endpoint.secret_key, pid,
                           "SeaweedFS " + (version.splitlines() or ["?"])[0].strip())  # fmt: skip
        return
    if kind != "moto":
        raise ValueError(f"unknown S3 server {kind!r} (seaweedfs or moto)")
    port = free_port()
    # moto_server (its threaded werkzeug server) in its own process, objects kept in memory
    env = {**os.environ, "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(8 * 1024 * MiB)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, proc, timeout=60)
        yield S3Server(kind, url, "bench", "bench", proc.pid, f"moto {moto_version()} (moto_server)")
    finally:
        stop_group(proc, timeout=30)


# --------------------------------------------------------------------------- S3 buckets, scratch folders


def make_workdir(prefix: str, *subdirs: str) -> Path:
    """A fresh folder under /tmp with `subdirs` and `spill/`; this process's temp files go to spill/."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    for name in (*subdirs, "spill"):
        (workdir / name).mkdir()
    tempfile.tempdir = str(workdir / "spill")
    return workdir


def moto_version() -> str:
    """The installed moto's version."""
    from importlib.metadata import version

    return version("moto")


def s3_client(endpoint: str, credentials: Mapping[str, str] = CREDENTIALS):
    """A boto3 S3 client for `endpoint` in REGION."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


def empty_bucket(endpoint: str, bucket: str, credentials: Mapping[str, str] = CREDENTIALS) -> None:
    """Delete every object of `bucket` and abort its unfinished multipart uploads."""
    client = s3_client(endpoint, credentials)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def remove_bucket(endpoint: str, bucket: str, credentials: Mapping[str, str] = CREDENTIALS) -> None:
    """Empty `bucket`, then delete it."""
    empty_bucket(endpoint, bucket, credentials)
    s3_client(endpoint, credentials).delete_bucket(Bucket=bucket)


# --------------------------------------------------------------------------- report


def write_report(text: str, out: str | Path) -> None:
    """Write the report to `out` (parents made), print it, and say where it went."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    log(f"report written to {path}")
