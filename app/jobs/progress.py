"""Progress lives in the job's meta, written by the job and read by pages and the API."""

from __future__ import annotations

import time
from typing import Any

from rq.job import Job

SAVE_EVERY_SECONDS = 0.5


class Progress:
    def __init__(self, job: Job | None):
        self.job = job
        self._last_save = 0.0
        self.meta: dict[str, Any] = job.meta if job else {}
        self.meta.setdefault("progress", {"phase": "queued", "bytes_done": 0, "bytes_total": None})

    def phase(self, name: str, bytes_total: int | None = None, bytes_done: int = 0) -> None:
        self.meta["progress"] = {"phase": name, "bytes_done": bytes_done, "bytes_total": bytes_total}
        self.save(force=True)

    def advance(self, bytes_done: int) -> None:
        self.meta["progress"]["bytes_done"] = bytes_done
        self.save()

    def items(self, done: int, total: int) -> None:
        """Progress counted in archive entries rather than bytes (pg_restore)."""
        self.meta["progress"].update(items_done=done, items_total=total)
        self.save()

    def remember(self, **values: Any) -> None:
        """Facts the failure callback needs to clean up (upload id, scratch database)."""
        self.meta.update(values)
        self.save(force=True)

    def save(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.job is not None and (force or now - self._last_save >= SAVE_EVERY_SECONDS):
            self.job.save_meta()
            self._last_save = now


def percent(progress: dict, finished: bool) -> int | None:
    """Whole percent done; never 100 before the job has really finished."""
    if finished:
        return 100
    done, total = progress.get("bytes_done", 0), progress.get("bytes_total")
    if progress.get("items_total"):
        done, total = progress.get("items_done", 0), progress["items_total"]
    if not total:
        return None
    return min(99, int(100 * done / total))
