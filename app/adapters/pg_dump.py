"""pg_dump, running: its archive on a pipe, read so that pg_dump barely notices the reader."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from app.adapters import postgres
from app.adapters.postgres import TargetDatabase
from app.adapters.tool_process import end_tool

READ_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# When a read finds the pipe nearly empty, wait this long before the next one (see read_output).
GATHER_PAUSE = 0.005


class RunningDump:
    """pg_dump, running: started by `stream_backup`, or before the plan is made so that its
    catalog reads (tens of ms) overlap the planning. `stop` ends it and its server session.

    It runs with --verbose: `on_line` gets each line of its log as it comes (the job page shows the last ones)."""

    def __init__(self, dump: postgres.ClientTool, compression: list[str], target: TargetDatabase,
                 on_line: Callable[[str], None] | None = None):  # fmt: skip
        self.target = target
        self.started = datetime.now(UTC)
        self.clock = time.monotonic()
        self.session = f"pgconsole-backup-{uuid.uuid4().hex[:12]}"
        self.proc = subprocess.Popen(
            [dump.path, "--format=custom", "--no-password", "--verbose", *compression],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=postgres.child_env(target, application_name=self.session),
            bufsize=0,
        )
        self.errors = postgres.StderrTail(self.proc.stderr, on_line=on_line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            end_tool(self.proc)
            with contextlib.suppress(Exception):
                postgres.terminate_sessions(self.target, self.session)
        if self.proc.stdout:
            self.proc.stdout.close()


def read_output(fd: int) -> Iterator[memoryview]:
    """pg_dump's output in blocks of up to 1 MiB, read so that pg_dump barely notices us.

    pg_dump writes 4 KiB at a time. A reader that waits in read() is woken for every one of
    those writes, and on two cores the wake-ups cost pg_dump about 2.5 % (bench/README.md).
    So the pipe is widened to 1 MiB and, when a read finds it nearly empty, the reader pauses
    5 ms to let output gather. pg_dump does not wait for us: 1 MiB holds more than 5 ms of its
    output below 200 MB/s, and above that the reads come back full and nobody pauses.

    Every block is read into the same buffer, so a block is only valid until the next one is
    asked for (every consumer hashes and copies it before that): no allocation per read, which
    over a long dump fragmented the worker's heap (its peak memory grew with the database).
    """
    try:
        pipe_size = fcntl.fcntl(fd, F_SETPIPE_SZ, READ_SIZE)
    except OSError:  # not Linux, or the limit is lower: plain blocking reads
        pipe_size = 0
    gather = pipe_size >= READ_SIZE
    buffer = bytearray(READ_SIZE)
    view = memoryview(buffer)
    while got := os.readv(fd, [buffer]):
        yield view[:got]
        if gather and got < READ_SIZE // 4:
            time.sleep(GATHER_PAUSE)
