"""What a job records about itself in RQ's `job.meta`: one typed record, written and read only here.

The job writes its phase and progress for the pages and the API, and the facts its failure
callback needs to clean up after it (an upload to abort, a scratch database to drop, a
set-aside database to put back). Everything else reads them through `JobState`, never as
bare `job.meta[...]` keys.

Every write of progress is also the job's sign of life for its no-progress watch (app/jobs/watch.py),
which also stops the job when someone asks (app/jobs/stopping.py), while `JobRecord.may_stop` allows.

The tool's log (`log`: the last lines pg_dump or pg_restore wrote to stderr) is kept bounded and
scrubbed of anything that looks like a secret: the page shows it to operators and admins.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rq.job import Job

from app.jobs.stopping import may_stop
from app.jobs.watch import watch_job

JOB_KINDS = ("backup", "restore", "verify")
SAVE_EVERY_SECONDS = 0.5  # progress is throttled; phases and cleanup facts are saved at once
LOG_LINES = 50  # the tool's last lines kept in the job's meta ...
LOG_LINE_CHARS = 300  # ... each cut to this length
# pg_dump never logs a password, but a connection string in a message might: `password=...` and a
# URL's user:password@ are taken out before a line is kept.
_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def scrub_log_line(line: str) -> str:
    """One line of a tool's log as it may be shown: no password, no URL user info, at most LOG_LINE_CHARS."""
    line = _USERINFO.sub(r"\1", line)
    line = _PASSWORD.sub(r"\1[hidden]", line)
    return line if len(line) <= LOG_LINE_CHARS else line[: LOG_LINE_CHARS - 1] + "…"


@dataclass
class Progress:
    phase: str = "queued"
    bytes_done: int = 0
    bytes_total: int | None = None
    items_done: int | None = None  # pg_restore counts archive entries, not bytes
    items_total: int | None = None

    def percent(self, finished: bool) -> int | None:
        """Whole percent done; never 100 before the job has really finished."""
        if finished:
            return 100
        done, total = self.bytes_done, self.bytes_total
        if self.items_total:
            done, total = self.items_done or 0, self.items_total
        if not total:
            return None
        return min(99, int(100 * done / total))

    def to_json(self, finished: bool) -> dict:
        shown = {k: v for k, v in asdict(self).items() if v is not None or not k.startswith("items_")}
        return {**shown, "percent": self.percent(finished)}


@dataclass
class JobState:
    kind: str = "job"  # backup, restore or verify
    requested_by: str = "?"
    target: str | None = None  # the target's name (None: a job from before targets, on the default one)
    filename: str | None = None
    scheduled: bool = False
    progress: Progress = field(default_factory=Progress)
    warning: str | None = None
    error: str | None = None
    log: list[str] = field(default_factory=list)  # the tool's last lines, scrubbed (`JobRecord.log_line`)
    stopped_by: str | None = None  # who asked the console to stop it (from the audit log), once it stopped
    # What the failure callback cleans up (see app.domain.cleanup).
    upload_id: str | None = None
    upload_filename: str | None = None  # the upload's name when it is not `filename` (a restore's safety backup)
    published: bool = False  # the backup's manifest is written: the backup is complete
    temp_folder: str | None = None
    scratch_database: str | None = None
    set_aside_database: str | None = None
    replaced_database: str | None = None  # after the swap: the previous database, until its safety backup is made
    new_database: str | None = None  # a restore into a new database: its name (the job page's steps differ)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> JobState:
        """The state in `meta`; fields it lacks (or a meta that is not ours at all) keep their defaults."""
        known = {f.name for f in fields(cls)} - {"progress"}
        meta = meta if isinstance(meta, dict) else {}
        progress = meta.get("progress") if isinstance(meta.get("progress"), dict) else {}
        return cls(
            **{k: v for k, v in meta.items() if k in known},
            progress=Progress(**{k: v for k, v in progress.items() if k in Progress.__dataclass_fields__}),
        )

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)


class JobRecord:
    """The running job's state, saved to Redis as it changes (progress at most every 0.5 s).

    Made in a worker's job, it also starts the job's `ProgressWatch`: each write below is progress."""

    def __init__(self, job: Job | None, **initial: Any):
        self.job = job
        self.state = JobState.from_meta({**initial, **(job.meta if job else {})})
        self._last_save = 0.0
        self._flush_pending = False
        self._final = False  # past the point where stopping would undo nothing (see `no_more_stops`)
        self.watch = watch_job(job, self.may_stop) if job is not None else None

    def may_stop(self) -> bool:
        """Whether the job may stop now: by its phase, and never once a swap has begun or the result is written."""
        state = self.state
        return (not self._final and state.set_aside_database is None and state.replaced_database is None
                and may_stop(state.kind, state.progress.phase))  # fmt: skip

    def no_more_stops(self) -> None:
        """From here on the job writes its result: a stop request is no longer honoured."""
        self._final = True

    def log_line(self, line: str) -> None:
        """One line of the tool's log (any thread): kept, scrubbed, with the LOG_LINES before it."""
        self.state.log = [*self.state.log[-(LOG_LINES - 1) :], scrub_log_line(line)]
        if self.job is not None:
            self.job.meta["log"] = self.state.log  # kept in memory at once: a failure's clean-up saves the meta
        self.save()
        self._save_soon()

    def phase(self, name: str, bytes_total: int | None = None, bytes_done: int = 0) -> None:
        self.state.progress = Progress(name, bytes_done, bytes_total)
        self.save(force=True)

    def advance(self, bytes_done: int, bytes_total: int | None = None) -> None:
        self.state.progress.bytes_done = bytes_done
        if bytes_total is not None:
            self.state.progress.bytes_total = bytes_total
        self.save()

    def items(self, done: int, total: int) -> None:
        self.state.progress.items_done, self.state.progress.items_total = done, total
        self.save()

    def warn(self, text: str) -> None:
        """Add `text` to what the job page shows as the job's warning (several may apply to one job)."""
        self.remember(warning="; ".join(w for w in (self.state.warning, text) if w))

    def remember(self, **facts: Any) -> None:
        """Set fields of the state (e.g. upload_id=..., scratch_database=None) and save at once."""
        for name, value in facts.items():
            if name not in JobState.__dataclass_fields__:
                raise AttributeError(f"JobState has no field {name!r}")
            setattr(self.state, name, value)
        self.save(force=True)

    def save(self, force: bool = False) -> None:
        if self.watch is not None:
            self.watch.progressed()
        now = time.monotonic()
        if self.job is not None and (force or now - self._last_save >= SAVE_EVERY_SECONDS):
            self.job.meta.update(self.state.to_meta())
            self.job.save_meta()
            self._last_save = now

    def _save_soon(self) -> None:
        """Save within SAVE_EVERY_SECONDS even if nothing else happens: a tool that writes a few lines and then
        works in silence (or is stopped) still has them on the page, and in the meta its clean-up rewrites."""
        if self.job is None or self._flush_pending:
            return
        self._flush_pending = True

        def flush() -> None:
            self._flush_pending = False
            with contextlib.suppress(Exception):  # Redis away for a moment: the next line or phase saves it
                self.save()

        timer = threading.Timer(SAVE_EVERY_SECONDS, flush)
        timer.daemon = True
        timer.start()
