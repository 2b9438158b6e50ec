"""PostgreSQL client tools and admin SQL on the target server.

pg_dump and pg_restore always run as argument lists with the connection (password included)
in the child's environment, never on its command line.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class TargetDatabase:
    """The one database this console backs up and restores. Never chosen by a request."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str

    def libpq_env(self) -> dict[str, str]:
        """Connection settings for a pg_dump/pg_restore child: the password stays off argv."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def conninfo(self, dbname: str | None = None) -> dict[str, str | int]:
        """Keyword arguments for psycopg.connect()."""
        kwargs: dict[str, str | int] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname or self.dbname,
            "connect_timeout": 5,
        }
        if self.password:
            kwargs["password"] = self.password
        return kwargs


class PgToolError(Exception):
    """A client tool is missing, too old, or failed; the message names what and why."""


# What the server's refusals are, for callers that decide what to do with them (they import no driver).
DatabaseError = psycopg.Error
InsufficientPrivilege = psycopg.errors.InsufficientPrivilege


@dataclass(frozen=True)
class ClientTool:
    name: str  # pg_dump, pg_restore
    path: str
    major: int
    version: str


def server_version(target: TargetDatabase) -> tuple[int, str]:
    """(major, full version string) of the target's server."""
    with psycopg.connect(**target.conninfo()) as conn:
        number = int(conn.execute("SHOW server_version_num").fetchone()[0])
        full = conn.execute("SHOW server_version").fetchone()[0]
    return number // 10000, full


@lru_cache(maxsize=16)
def installed_clients(name: str, bin_dirs: tuple[str, ...] = ()) -> tuple[ClientTool, ...]:
    """Every installed copy of a client tool, oldest major first.

    Searched in order: `bin_dirs` (PG_BIN_DIRS), /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin,
    PATH. All found copies are candidates; of two with the same major, the earlier place wins.
    """
    found = [os.path.join(folder, name) for folder in bin_dirs]
    found += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    found += sorted(glob.glob(f"/usr/pgsql-*/bin/{name}"))
    on_path = shutil.which(name)
    if on_path:
        found.append(os.path.realpath(on_path))
    tools: dict[str, tuple[int, ClientTool]] = {}  # by real path: a folder named twice counts once
    for order, path in enumerate(found):
        real = os.path.realpath(path)
        if real in tools or not os.access(path, os.X_OK):
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r"(\d+)(?:\.(\d+))?", out)
        if match:
            version = out.strip().split(")")[-1].strip() or out.strip()
            tools[real] = (order, ClientTool(name, path, int(match.group(1)), version))
    return tuple(tool for _, tool in sorted(tools.values(), key=lambda item: (item[1].major, item[0])))


def pick_client(name: str, server_major: int, bin_dirs: tuple[str, ...] = ()) -> ClientTool:
    """The oldest installed client whose major version is at least the server's.

    The oldest fitting one, because a newer pg_dump writes archives that older pg_restore
    versions cannot read; the file should stay restorable by as many clients as possible.
    """
    tools = installed_clients(name, tuple(bin_dirs))
    for tool in tools:
        if tool.major >= server_major:
            return tool
    have = ", ".join(f"{t.major} ({t.path})" for t in tools) or "none"
    raise PgToolError(
        f"{name} is older than the server: the server runs PostgreSQL {server_major}, the installed "
        f"{name} versions are {have}; install postgresql-client-{server_major} or newer on the worker "
        "(or name its folder in PG_BIN_DIRS)"
    )


# `auto` prefers the first of these that the chosen pg_dump build has. zstd level 1, not 3: on
# the 500 MB benchmark database level 3 took 2.3 × as long for 0.2 % less (bench/results/compression.md).
AUTO_COMPRESSION = (("zstd", "1"), ("lz4", ""), ("gzip", "1"))
_PROBE_DSN = "host=/nonexistent-pgconsole-probe"  # a socket folder that never exists: fails at once


@lru_cache(maxsize=16)
def supported_compression(dump_path: str, major: int) -> tuple[str, ...]:
    """The compression methods this pg_dump build has, best first (probed once per path).

    pg_dump 16+ checks --compress before it connects: an unsupported method fails with "this
    build does not support compression with …" (or "invalid compression"); a supported one gets
    as far as the connection, which fails at once on a socket folder that does not exist.
    Before 16, pg_dump only has gzip levels (--compress=N).
    """
    if major < 16:
        return ("gzip",)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "PGCONNECT_TIMEOUT": "2"}
    supported = []
    for method, _ in AUTO_COMPRESSION:
        try:
            probe = subprocess.run(
                [dump_path, f"--compress={method}:1", "--dbname", _PROBE_DSN],
                capture_output=True, text=True, env=env, timeout=30,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgToolError(f"{dump_path} cannot be run to check its compression: {exc}") from exc
        stderr = probe.stderr.lower()
        if "does not support compression" not in stderr and "invalid compression" not in stderr:
            supported.append(method)
    return tuple(supported)


@dataclass(frozen=True)
class Compression:
    method: str  # what the manifest records: "zstd:3", "gzip:1", "lz4", "none"
    args: list[str]  # pg_dump's arguments


def compression_for(setting: str, dump: ClientTool) -> Compression:
    """pg_dump arguments for BACKUP_COMPRESSION, checked against what this build really has.

    Raises PgToolError, naming the tool's path and what it supports, for a method it lacks.
    """
    method, _, level = setting.partition(":")
    if method == "none":
        return Compression("none", ["--compress=0"])
    supported = supported_compression(dump.path, dump.major)
    if method == "auto":
        method, level = next(((m, lv) for m, lv in AUTO_COMPRESSION if m in supported), ("none", ""))
        if method == "none":  # a build with no compression at all still makes a plain archive
            return Compression("none", ["--compress=0"])
    elif method not in supported:
        raise PgToolError(
            f"BACKUP_COMPRESSION={setting}: {dump.path} (pg_dump {dump.major}) has no {method}; "
            f"this build supports {', '.join([*supported, 'none'])}"
        )
    if method == "gzip":
        level = level or "6"
        return Compression(f"gzip:{level}", [f"--compress={level}" if dump.major < 16 else f"--compress=gzip:{level}"])
    spec = f"{method}:{level}" if level else method
    return Compression(spec, [f"--compress={spec}"])


# What a pg_dump/pg_restore child inherits from the worker: how to find programs and how to
# read text and time. Nothing else: the worker's environment holds the passkey, the Flask
# secret and the AWS keys, which a client tool (or its core dump) never needs.
_INHERITED = ("PATH", "LANG", "TZ", "TMPDIR", "HOME")
# Connection settings an operator may set for libpq beyond the target: TLS (every PGSSL*), a
# password file, Kerberos/GSS and authentication rules. Not PGSERVICE: a service entry would
# override PGHOST/PGUSER, and the tools must reach the target the console names.
_LIBPQ_EXTRA = ("PGPASSFILE", "PGSYSCONFDIR", "PGKRBSRVNAME", "PGGSSENCMODE", "PGGSSLIB", "PGCHANNELBINDING",
                "PGREQUIREAUTH", "PGREQUIREPEER", "PGTARGETSESSIONATTRS")  # fmt: skip


def _inherited(name: str) -> bool:
    return name in _INHERITED or name in _LIBPQ_EXTRA or name.startswith(("LC_", "PGSSL"))


def child_env(target: TargetDatabase, dbname: str | None = None, application_name: str = "") -> dict[str, str]:
    """A minimal environment for a client tool: locale, PATH, TZ and the libpq settings, with the password."""
    env = {k: v for k, v in os.environ.items() if _inherited(k)}
    env.update(target.libpq_env())
    env["PGDATABASE"] = dbname or target.dbname
    env["PGCONNECT_TIMEOUT"] = "10"
    if application_name:
        env["PGAPPNAME"] = application_name
    return env


def terminate_sessions(target: TargetDatabase, application_name: str) -> None:
    """End server sessions a killed client left behind (a backend waiting on a lock lingers)."""
    with admin_connect(target) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        )


def ping(target: TargetDatabase) -> None:
    with psycopg.connect(**target.conninfo()) as conn:
        conn.execute("SELECT 1")


def admin_connect(target: TargetDatabase) -> psycopg.Connection:
    """An autocommit connection to the server's maintenance database, for CREATE/DROP/RENAME."""
    return psycopg.connect(**target.conninfo("postgres"), autocommit=True)


def is_superuser(conn: psycopg.Connection) -> bool:
    """Whether the connection's role is a superuser."""
    return bool(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0])


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_database(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def rename_database(conn: psycopg.Connection, name: str, new_name: str) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(new_name)))


def allow_connections(conn: psycopg.Connection, name: str, allowed: bool) -> None:
    conn.execute(
        sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(name), sql.SQL("true" if allowed else "false")
        )
    )


class StderrTail(threading.Thread):
    """Drain a child's stderr in the background (so it never blocks), keeping what matters.

    Keeps the last few lines, and separately the lines that report an error, so that a
    verbose pg_restore's own error survives its progress chatter.
    """

    def __init__(self, pipe, keep: int = 8, on_line=None):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.last: deque[str] = deque(maxlen=keep)
        self.errors: deque[str] = deque(maxlen=keep)
        self.on_line = on_line
        self.start()

    def run(self) -> None:
        for raw in iter(self.pipe.readline, b""):
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            self.last.append(line)
            if "error" in line.lower() or "fatal" in line.lower():
                self.errors.append(line)
            if self.on_line:
                self.on_line(line)
        self.pipe.close()

    @property
    def lines(self) -> list[str]:
        return list(self.errors or self.last)
