"""Stopping a job that makes no progress (JOB_TIMEOUT_SECONDS is a limit on silence, not on length),
or that someone asked to stop (app/jobs/stopping.py).

A job that keeps reporting progress (each write of its `JobRecord`) runs until it is done, or until
JOB_MAX_SECONDS, RQ's own timeout; one that reports nothing for JOB_TIMEOUT_SECONDS is stopped as RQ
stops a timed-out job, and its database lock is renewed for as long as it progresses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from app.jobs.locks import LOCK_GRACE_SECONDS, DatabaseLock
from app.jobs.stopping import Stopped, StopRequest

TOOL_SESSIONS = "pgconsole-"  # PGAPPNAME of every pg_dump / pg_restore a job starts (app/domain)
# A server session waiting on one of these is not working for the job: it waits on someone
# else's lock (a stuck job) or on the job's own side (whose progress, if any, is counted there).
_NOT_WORKING = ("Lock", "BufferPin", "Client", "Extension", "Timeout")
STOP_LOOK_SECONDS = 0.5  # how often the watch looks for a stop request: the Stop button answers within a second


class NoProgressTimeout(JobTimeoutException):
    """The job reported no progress for JOB_TIMEOUT_SECONDS (a JobTimeoutException: RQ and the
    failure callback treat it as the timeout it replaces)."""

    def __init__(self, seconds: int):
        super().__init__(f"made no progress for {seconds} s")
        self.seconds = seconds


class ProgressWatch:
    """Stops the job running in this process after `limit` seconds without progress.

    RQ arms SIGALRM for the job's whole timeout (JOB_MAX_SECONDS) and raises JobTimeoutException
    from its handler. `start` (in the job's main thread) takes that alarm over: it fires when the
    no-progress deadline may have passed and re-arms while progress keeps coming, or hands over
    to RQ's handler at the ceiling. Any thread may report progress (the download and pg_restore's
    stderr reader do): that only stamps a time, so no thread but the main one touches signals,
    and the watch ends by itself when RQ cancels its alarm (alarm(0), SIG_DFL) at the job's end.

    A step that is busy but silent (pg_restore loading one huge table, CREATE INDEX) is seen by
    `working`, asked from a thread of the watch whenever the job has been quiet for a while.

    The same thread asks `stop_requested` twice a second; once someone has asked, it fires the alarm at
    once, and the handler raises `Stopped` in the main thread, if `may_stop()` says so there and then (a
    restore whose swap has begun is never stopped). It raises it once: what follows is the job's clean-up.
    """

    def __init__(self, limit: int, *, on_progress: Callable[[], None] = lambda: None,
                 working: Callable[[], bool] = lambda: False, renew_every: float = 5.0,
                 stop_requested: Callable[[], str | None] = lambda: None,
                 may_stop: Callable[[], bool] = lambda: False):  # fmt: skip
        self.limit = limit
        self.last = time.monotonic()
        self._on_progress, self._working, self._renew_every = on_progress, working, renew_every
        self._stop_requested, self._may_stop = stop_requested, may_stop
        self._stop_by: str | None = None
        self._stopped = False
        self._renewed = 0.0
        self._handler = self._fire  # one bound method, so the installed handler can be recognised
        self._rq_handler: Callable | None = None
        self._ceiling = 0.0

    def start(self) -> bool:
        """Take over the job's alarm; False (and nothing done) outside a job RQ is timing in this thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        current = signal.getsignal(signal.SIGALRM)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        if not callable(current) or left <= 0:
            return False
        self._rq_handler, self._ceiling = current, time.monotonic() + left
        signal.signal(signal.SIGALRM, self._handler)
        self._arm(min(self.limit, left))
        self.progressed()
        threading.Thread(target=self._look_for_work, name="progress-watch", daemon=True).start()
        return True

    def active(self) -> bool:
        return signal.getsignal(signal.SIGALRM) is self._handler

    def progressed(self) -> None:
        """The job is alive: push the deadline back; renew what it holds (the lock) now and then."""
        now = self.last = time.monotonic()
        if now - self._renewed >= self._renew_every:
            self._renewed = now
            self._on_progress()

    def _arm(self, seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))

    def _fire(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if now >= self._ceiling - 0.01:
            self._rq_handler(signum, frame)  # type: ignore[misc] - JOB_MAX_SECONDS: RQ's own timeout
        if self._stop_by is not None and not self._stopped and self._may_stop():
            self._stopped = True
            raise Stopped(self._stop_by)
        idle = now - self.last
        if idle >= self.limit:
            raise NoProgressTimeout(self.limit)
        self._arm(min(self.limit - idle, self._ceiling - now))

    def _look_for_work(self) -> None:
        every = max(1.0, min(30.0, self.limit / 3))
        looked = time.monotonic()
        while self.active():
            time.sleep(STOP_LOOK_SECONDS)
            if self._stop_by is None and not self._stopped and self.active():
                self._look_for_stop()
            if time.monotonic() - looked < every:
                continue
            looked = time.monotonic()
            if looked - self.last >= every and self.active() and self._is_working():
                self.progressed()

    def _look_for_stop(self) -> None:
        try:
            by = self._stop_requested()
        except Exception:  # noqa: BLE001 - Redis away for a moment: ask again next time
            return
        if by is not None and self.active():
            self._stop_by = by
            self._arm(0.01)  # the handler decides, in the main thread, whether the job may stop now

    def _is_working(self) -> bool:
        try:
            return self._working()
        except Exception:  # noqa: BLE001 - a look that fails is no sign of work, and the watch goes on
            return False


class ToolActivity:
    """Whether the pg_dump / pg_restore processes this process started are working, when they are silent.

    Working means: one of them (or a parallel pg_restore's worker) used CPU since the last look, or
    one of their server sessions is running a statement without waiting on a lock or on them. A
    pg_dump queued behind another session's lock does neither, and is stopped.
    """

    def __init__(self, conninfo: dict[str, Any]):
        self.conninfo = conninfo
        self._cpu: dict[int, int] = {}

    def working(self) -> bool:
        tools = _tool_processes(os.getpid())
        cpu = {pid: ticks for pid, (ticks, _) in tools.items()}
        busy = any(ticks > self._cpu.get(pid, ticks) for pid, ticks in cpu.items())
        self._cpu = cpu
        sessions = sorted({name for _, name in tools.values()})
        return busy or (bool(sessions) and self._sessions_busy(sessions))

    def _sessions_busy(self, sessions: list[str]) -> bool:
        import psycopg

        try:
            with psycopg.connect(**self.conninfo, application_name="pgconsole-watch", autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = ANY(%s) AND state = 'active' "
                    "AND coalesce(wait_event_type, '') <> ALL(%s)",
                    (sessions, list(_NOT_WORKING)),
                ).fetchone()
        except psycopg.Error:
            return False  # no answer is no sign of work
        return bool(row and row[0])


def _tool_processes(root: int) -> dict[int, tuple[int, str]]:
    """{pid: (CPU ticks, PGAPPNAME)} of the descendants of `root` that are a job's pg tools (Linux /proc)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            after = stat.read_text().rsplit(")", 1)[1].split()  # the name, in brackets, may hold spaces
            pid = int(stat.parent.name)
            parents[pid], ticks[pid] = int(after[1]), int(after[11]) + int(after[12])  # ppid, utime + stime
    below, found = {root}, {}
    for _ in range(4):  # children, and a parallel pg_restore's workers below them
        below = {pid for pid, parent in parents.items() if parent in below}
        for pid in below:
            with contextlib.suppress(OSError):
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                name = next((v[10:].decode(errors="replace") for v in env if v.startswith(b"PGAPPNAME=")), "")
                if name.startswith(TOOL_SESSIONS):
                    found[pid] = (ticks[pid], name)
    return found


def watch_job(job: Job, may_stop: Callable[[], bool] = lambda: False) -> ProgressWatch | None:
    """Start the no-progress watch for `job`, running in this process under RQ's alarm, with the
    settings of the target it acts on; None outside a worker's job (or outside a console job).
    `may_stop`: whether the job may be stopped now, if someone asks (app/jobs/stopping.py)."""
    from app import services  # the web side imports this module too; settings are the job's own

    try:
        settings = services.settings()
    except RuntimeError:  # no app context: not a console job
        return None
    lock = DatabaseLock(job.connection, settings.redis_namespace, settings.lock_name)
    ttl = settings.job_timeout_seconds + LOCK_GRACE_SECONDS

    def renew_lock() -> None:
        with contextlib.suppress(RedisError):  # Redis away for a moment: the next progress renews it
            lock.extend(job.id, ttl)

    limit = settings.job_timeout_seconds
    # Renewed a few times per window (at most every 30 s): a progressing job's lock never nears expiry.
    watch = ProgressWatch(limit, on_progress=renew_lock, working=ToolActivity(settings.target.conninfo()).working,
                          renew_every=max(1.0, min(30.0, limit / 4)),
                          stop_requested=StopRequest(job.connection, settings.redis_namespace, job.id).who,
                          may_stop=may_stop)  # fmt: skip
    return watch if watch.start() else None
