"""Who made each listed backup, manually or on schedule, and how long it took: the list's row facts.

From this console store's job records (one query for the rows a page shows). A backup made
elsewhere (another environment's console, or before job records existed) falls back to its
manifest, but only one this process has already read: a page view never sends one S3
request per row (tests/test_pages_cost.py). What neither knows stays unknown.

A store two targets share lists both targets' backups on each one's page: who made a backup of a
target the caller may not see (role `none`) is theirs, so neither its job record nor its
manifest is used for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock

from app import services
from app.adapters.storage import Storage
from app.domain.catalog import Backup, read_manifest
from app.domain.trends import manifest_seconds
from app.jobs import history
from app.operations import Actor, owning_target
from app.web.jobs.access import seen

SCHEDULER = Actor.scheduler().username
MANIFESTS_KEPT = 512


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


class ManifestCache:
    """Manifests never change once written (a new upload has a new modification time), so each is
    read from the store once per process; `peek` answers only from what was read already."""

    def __init__(self, size: int = MANIFESTS_KEPT) -> None:
        self.size, self.kept, self.lock = size, OrderedDict(), Lock()

    @staticmethod
    def key(storage: Storage, backup: Backup) -> tuple:
        return id(storage), backup.filename, backup.last_modified

    def get(self, storage: Storage, backup: Backup) -> dict | None:
        if not backup.has_manifest:
            return None
        key = self.key(storage, backup)
        with self.lock:
            if key in self.kept:
                self.kept.move_to_end(key)
                return self.kept[key]
        manifest = read_manifest(storage, backup.filename)
        with self.lock:
            self.kept[key] = manifest
            while len(self.kept) > self.size:
                self.kept.popitem(last=False)
        return manifest

    def peek(self, storage: Storage, backup: Backup) -> dict | None:
        with self.lock:
            return self.kept.get(self.key(storage, backup))


manifests = ManifestCache()
