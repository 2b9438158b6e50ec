"""Backup manifests, each read from the store once per process: the backups list and the restore page share them."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from app.adapters.storage import Storage
from app.domain.catalog import Backup, read_manifest

MANIFESTS_KEPT = 512


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
