"""pg_restore: an archive's table of contents, the SQL of chosen entries, and restoring it into a database.

What the listing and the SQL mean is read in app/domain/archive.py; this module only runs the tool.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from app.adapters import postgres
from app.adapters.postgres import TargetDatabase

# pg_restore --verbose says one of these for each entry it handles: what the progress bar counts.
_ENTRY_LINES = ("pg_restore: creating", "pg_restore: processing", "pg_restore: finished item")


class ArchiveError(Exception):
    """The archive's table of contents cannot be read."""


def table_of_contents(pg_restore: str, archive: Path, env: dict[str, str]) -> str:
    """`pg_restore --create --list`: one line per entry, the database's own entries included."""
    return _run([pg_restore, "--create", "--list", str(archive)], env)


def sql_of(pg_restore: str, archive: Path, env: dict[str, str], lines: list[str], *, create: bool = True) -> str:
    """The SQL pg_restore prints for the entries listed as `lines` (none: ""); `create`: with --create, which
    the database's own entries need (and which prints CREATE DATABASE whatever the entries)."""
    if not lines:
        return ""
    with tempfile.NamedTemporaryFile("w", suffix=".list") as listed:
        listed.write("\n".join(lines) + "\n")
        listed.flush()
        flags = ["--create"] if create else []
        return _run([pg_restore, *flags, "--use-list", listed.name, "--file", "-", str(archive)], env)


def _run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise ArchiveError(f"the archive cannot be read: {done.stderr.strip() or 'pg_restore failed'}")
    return done.stdout


def restore_archive(target: TargetDatabase, pg_restore: str, archive: Path, dbname: str, *, options: list[str],
                    jobs: int, use_list: list[str] | None = None,
                    on_entry: Callable[[int], None] = lambda done: None) -> tuple[int, list[str]]:  # fmt: skip
    """Run pg_restore into `dbname` with `options`, restricted to `use_list` (lines of a `--list`, a leading
    ";" skips one) when given; `on_entry` gets the number of entries handled so far. Returns its exit code
    and its last error lines. A failure of ours kills it and ends its server sessions."""
    with tempfile.NamedTemporaryFile("w", suffix=".list", dir=archive.parent) as chosen:
        if use_list is not None:
            chosen.write("".join(line + "\n" for line in use_list))
            chosen.flush()
            options = [*options, f"--use-list={chosen.name}"]
        argv = [pg_restore, "--exit-on-error", *options, "--verbose", f"--jobs={jobs}", "--dbname", dbname,
                str(archive)]  # fmt: skip
        return _run_counting(target, argv, dbname, on_entry)


def _run_counting(target: TargetDatabase, argv: list[str], dbname: str,
                  on_entry: Callable[[int], None]) -> tuple[int, list[str]]:  # fmt: skip
    done = 0

    def count(line: str) -> None:
        nonlocal done
        if line.startswith(_ENTRY_LINES):
            done += 1
            on_entry(done)

    session = f"pgconsole-restore-{uuid.uuid4().hex[:12]}"
    env = postgres.child_env(target, dbname=dbname, application_name=session)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    errors = postgres.StderrTail(proc.stderr, on_line=count)
    try:
        code = proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(Exception):
            postgres.terminate_sessions(target, session)
        raise
    errors.join(timeout=5)
    return code, errors.lines
