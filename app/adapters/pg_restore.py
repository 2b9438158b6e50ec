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
from app.adapters.tool_process import end_tool

# pg_restore --verbose says one of these for each entry it handles: what the progress bar counts.
_ENTRY_LINES = ("pg_restore: creating", "pg_restore: processing", "pg_restore: finished item")


class ArchiveError(Exception):
    """The archive's table of contents cannot be read."""


def table_of_contents(pg_restore: str, archive: Path, env: dict[str, str]) -> str:
    """`pg_restore --create --list --verbose`: one line per entry, the database's own entries included, each
    followed by a comment naming the entries it depends on (what a partial restore follows)."""
    return _run([pg_restore, "--create", "--list", "--verbose", str(archive)], env)


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


# Writes the archive's bytes, in order, through the function it is given (pg_restore reads them on stdin).
Feed = Callable[[Callable[[bytes], None]], None]


class _Stopped(Exception):
    """pg_restore stopped reading its stdin and failed: its own error says why."""


def restore_archive(target: TargetDatabase, pg_restore: str, archive: Path | Feed, dbname: str, *, folder: Path,
                    options: list[str], jobs: int, use_list: list[str] | None = None,
                    on_entry: Callable[[int], None] = lambda done: None,
                    on_line: Callable[[str], None] = lambda line: None) -> tuple[int, list[str]]:  # fmt: skip
    """Run pg_restore into `dbname` with `options`, restricted to `use_list` (lines of a `--list`, a leading
    ";" skips one) when given, written into `folder`; `on_entry` gets the number of entries handled so far,
    `on_line` each line of its --verbose log.
    `archive`: a file, or a `Feed` that streams it into pg_restore's stdin (one job: pg_restore cannot seek
    there, so entries are restored in the archive's order). Returns its exit code and its last error lines.
    A failure of ours (or a stop) ends it (SIGTERM, then SIGKILL) and its server sessions."""
    with tempfile.NamedTemporaryFile("w", suffix=".list", dir=folder) as chosen:
        if use_list is not None:
            chosen.write("".join(line + "\n" for line in use_list))
            chosen.flush()
            options = [*options, f"--use-list={chosen.name}"]
        source = [str(archive)] if isinstance(archive, Path) else []  # none: stdin
        argv = [pg_restore, "--exit-on-error", *options, "--verbose", f"--jobs={jobs}", "--dbname", dbname, *source]
        return _run_counting(target, argv, dbname, on_entry, None if isinstance(archive, Path) else archive, on_line)


def _run_counting(target: TargetDatabase, argv: list[str], dbname: str, on_entry: Callable[[int], None],
                  feed: Feed | None, on_line: Callable[[str], None]) -> tuple[int, list[str]]:  # fmt: skip
    done = 0

    def count(line: str) -> None:
        nonlocal done
        on_line(line)
        if line.startswith(_ENTRY_LINES):
            done += 1
            on_entry(done)

    session = f"pgconsole-restore-{uuid.uuid4().hex[:12]}"
    env = postgres.child_env(target, dbname=dbname, application_name=session)
    stdin = subprocess.PIPE if feed is not None else None
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    errors = postgres.StderrTail(proc.stderr, on_line=count)
    try:
        if feed is not None:
            _feed(proc, feed)
        code = proc.wait()
    except _Stopped:
        code = proc.wait()
    except BaseException:
        end_tool(proc)
        with contextlib.suppress(Exception):
            postgres.terminate_sessions(target, session)
        raise
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # a pipe pg_restore closed (BrokenPipeError is one)
                proc.stdin.close()
    errors.join(timeout=5)
    return code, errors.lines


def _feed(proc: subprocess.Popen, feed: Feed) -> None:
    """Run `feed` into pg_restore's stdin. Once pg_restore has stopped reading, a pg_restore that succeeded
    lets the feed go on (to read the rest for its checksum) and writes nothing more; one that failed stops it."""
    reading = True

    def write(block: bytes) -> None:
        nonlocal reading
        if not reading:
            return
        try:
            proc.stdin.write(block)
        except BrokenPipeError:
            reading = False
            if proc.wait() != 0:
                raise _Stopped from None

    feed(write)
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()  # end of file: pg_restore finishes
