"""What a job records about itself in RQ's `job.meta`: one typed record, written and read only here.

The job writes its phase and progress for the pages and the API, and the facts its failure
callback needs to clean up after it (an upload to abort, a scratch database to drop, a
set-aside database to put back). Everything else reads them through `JobState`, never as
bare `job.meta[...]` keys.

Every write of progress is also the job's sign of life for its no-progress watch (app/jobs/watch.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rq.job import Job

from app.jobs.watch import watch_job

JOB_KINDS = ("backup", "restore", "verify")
SAVE_EVERY_SECONDS = 0.5  # progress is throttled; phases and cleanup facts are saved at once


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
    # What the failure callback cleans up (see app.domain.cleanup).
    upload_id: str | None = None
    upload_filename: str | None = None  # the upload's name when it is not `filename` (a restore's safety backup)
    published: bool = False  # the backup's manifest is written: the backup is complete
    temp_folder: str | None = None
    scratch_database: str | None = None
    set_aside_database: str | None = None
    replaced_database: str | None = None  # after the swap: the previous database, until its safety backup is made

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
        self.watch = watch_job(job) if job is not None else None

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
