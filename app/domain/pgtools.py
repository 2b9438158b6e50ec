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
from dataclasses import dataclass
from functools import lru_cache

import psycopg
from psycopg import sql

from app.settings import TargetDatabase


class PgToolError(Exception):
    """A client tool is missing, too old, or failed; the message names what and why."""


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


@lru_cache(maxsize=8)
def installed_clients(name: str) -> tuple[ClientTool, ...]:
    """Every installed copy of a client tool, oldest major first."""
    candidates = set(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    candidates.update(glob.glob(f"/usr/pgsql-*/bin/{name}"))
    on_path = shutil.which(name)
    if on_path:
        candidates.add(os.path.realpath(on_path))
    tools = {}
    for path in candidates:
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r"(\d+)(?:\.(\d+))?", out)
        if match:
            tools[path] = ClientTool(name, path, int(match.group(1)), out.strip().split(")")[-1].strip() or out)
    return tuple(sorted(tools.values(), key=lambda t: (t.major, t.path)))


def pick_client(name: str, server_major: int) -> ClientTool:
    """The oldest installed client whose major version is at least the server's.

    The oldest fitting one, because a newer pg_dump writes archives that older pg_restore
    versions cannot read; the file should stay restorable by as many clients as possible.
    """
    tools = installed_clients(name)
    for tool in tools:
        if tool.major >= server_major:
            return tool
    have = ", ".join(f"{t.major} ({t.path})" for t in tools) or "none"
    raise PgToolError(
        f"{name} is older than the server: the server runs PostgreSQL {server_major}, the installed "
        f"{name} versions are {have}; install postgresql-client-{server_major} or newer on the worker"
    )


def compression_args(setting: str, client_major: int) -> list[str]:
    """pg_dump arguments for BACKUP_COMPRESSION (see README for the measured default)."""
    method, _, level = setting.partition(":")
    if method == "auto":
        method, level = ("zstd", "3") if client_major >= 16 else ("gzip", "1")
    if method == "none":
        return ["--compress=0"]
    if method == "gzip":
        return [f"--compress={level or '6'}"] if client_major < 16 else [f"--compress=gzip:{level or '6'}"]
    if client_major < 16:
        raise PgToolError(f"BACKUP_COMPRESSION={setting} needs pg_dump 16 or newer (this one is {client_major})")
    return [f"--compress={method}:{level}" if level else f"--compress={method}"]


def child_env(target: TargetDatabase, dbname: str | None = None, application_name: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
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


def database_size(target: TargetDatabase) -> int:
    with psycopg.connect(**target.conninfo()) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


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
