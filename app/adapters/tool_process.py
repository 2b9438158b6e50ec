"""Ending a client tool (pg_dump, pg_restore) that is still running: asked first, then made to."""

from __future__ import annotations

import subprocess

TERM_GRACE_SECONDS = 5.0  # after SIGTERM, how long a tool has to exit before SIGKILL


def end_tool(proc: subprocess.Popen, grace: float = TERM_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL if it is still running after `grace` seconds; returns once it has exited.

    pg_dump and pg_restore close their server sessions on SIGTERM (a parallel pg_restore its workers' too);
    SIGKILL is for one that does not answer. Whatever is left on the server, the caller ends by its name."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
