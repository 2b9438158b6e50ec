"""What is in the bucket: every backup of every environment, newest first, with its manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from app.domain.naming import DUMP_SUFFIX, MANIFEST_SUFFIX, manifest_name, parse_backup_name
from app.domain.storage import Storage, StorageError, check_name


@dataclass(frozen=True)
class Backup:
    filename: str
    size: int
    last_modified: datetime
    created_at: datetime  # from the name when it reads, else the store's time
    app_name: str | None
    environment: str | None  # None for names of another form (e.g. hand-made files)
    has_manifest: bool

    def to_json(self) -> dict:
        return {
            "filename": self.filename,
            "lastModified": self.last_modified.isoformat(),
            "createdAt": self.created_at.isoformat(),
            "size": self.size,
            "environment": self.environment,
            "appName": self.app_name,
            "hasManifest": self.has_manifest,
        }


def list_backups(storage: Storage, zone: ZoneInfo) -> list[Backup]:
    """Every file in the store except manifests, newest first; unreadable names still listed."""
    objects = storage.list_objects()
    manifests = {o.name[: -len(".json")] for o in objects if o.name.endswith(MANIFEST_SUFFIX)}
    backups = []
    for obj in objects:
        if obj.name.endswith(MANIFEST_SUFFIX):
            continue
        parsed = parse_backup_name(obj.name)
        created = (parsed and parsed.created_at(zone)) or obj.last_modified
        backups.append(
            Backup(
                filename=obj.name,
                size=obj.size,
                last_modified=obj.last_modified,
                created_at=created,
                app_name=parsed.app_name if parsed else None,
                environment=parsed.environment if parsed else None,
                has_manifest=obj.name in manifests,
            )
        )
    backups.sort(key=lambda b: (b.created_at, b.last_modified, b.filename), reverse=True)
    return backups


def find_backup(storage: Storage, zone: ZoneInfo, filename: str) -> Backup | None:
    """The listed backup with this exact name, or None (also for unsafe names)."""
    try:
        check_name(filename)
    except StorageError:
        return None
    if not filename.endswith(DUMP_SUFFIX):
        return None
    return next((b for b in list_backups(storage, zone) if b.filename == filename), None)


def read_manifest(storage: Storage, filename: str) -> dict | None:
    try:
        return json.loads(storage.get_bytes(manifest_name(filename)))
    except (StorageError, ValueError):
        return None


def write_manifest(storage: Storage, filename: str, manifest: dict) -> None:
    storage.put_bytes(manifest_name(filename), json.dumps(manifest, indent=2, sort_keys=True).encode())


def recent_backup(
    backups: list[Backup], app_name: str, environment: str, within: timedelta, now: datetime
) -> Backup | None:
    """The newest completed backup of this console's environment taken within `within` of now.

    'Taken' is the dump's start (its name): pg_dump's snapshot is of that moment.
    """
    for backup in backups:
        if (
            backup.environment == environment
            and backup.app_name == app_name
            and backup.filename.endswith(DUMP_SUFFIX)
            and now - within <= backup.created_at <= now + timedelta(minutes=1)
        ):
            return backup
    return None
