"""Who made each listed backup, manually or on schedule, and how long it took: the list's row facts.

From this console store's job records (one query for the rows a page shows). A backup made
elsewhere (another environment's console, or before job records existed) falls back to its
manifest, but only one this process has already read: a page view never sends one S3
request per row (tests/web/test_pages_cost.py). What neither knows stays unknown.

A store two targets share lists both targets' backups on each one's page: who made a backup of a
target the caller may not see (role `none`) is theirs, so neither its job record nor its
manifest is used for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app import services
from app.domain.catalog import Backup
from app.domain.trends import manifest_seconds
from app.jobs import history
from app.operations import Actor, owning_target
from app.web.job_access import seen

SCHEDULER = Actor.scheduler().username


@dataclass(frozen=True)
class Made:
    by: str | None  # a username, or "scheduler"
    scheduled: bool
    seconds: float | None


def made_of(backups: list[Backup], manifest_of: Callable[[Backup], dict | None]) -> dict[str, Made]:
    """Filename → Made, for the backups whose maker the caller may know; `manifest_of` must not read the store."""
    visible = seen()
    runs = history.backups_made([b.filename for b in backups], visible)
    settings = services.console_settings()
    made = {}
    for backup in backups:
        if (run := runs.get(backup.filename)) is not None:
            made[backup.filename] = Made(run.requested_by, run.scheduled or run.requested_by == SCHEDULER, run.seconds)
        elif (owner := owning_target(settings, backup)) is not None and not visible.covers(owner):
            continue  # a hidden target's backup: its manifest names its maker too
        elif (manifest := manifest_of(backup)) and (by := manifest.get("requested_by")) and isinstance(by, str):
            made[backup.filename] = Made(by[:64], by == SCHEDULER, manifest_seconds(manifest))
    return made
