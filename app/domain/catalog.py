"""What is in the bucket: every backup of every environment, newest first, with its sidecars.

Beside each `X.dump` the store may hold small sidecar objects, so that everything the team
knows about a backup travels with it and survives the console:

- `X.dump.json` — the manifest (sha256, size, versions, who asked);
- `X.dump.pin` — a pin and its note: retention never deletes a pinned backup;
- `X.dump.verified.json` — the last successful restore test, signed like a manifest (its time
  is the object's time).

Anyone who can write to the store can add any of these, so a sidecar's presence in a listing is a
hint, never a proof: `Backup.verified_at` says only that a report is listed. Whether it proves the
backup restorable (signed with our key, naming this file and its trusted sha256) is
`provenance.proves`, asked by `ConsoleBackups.newest_proven` for the few backups it reads.

An encrypted backup `X.dump.age` has the same sidecars under its own name (`X.dump.age.json`, …).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from app.adapters.storage import Storage, StorageError, StoredObject, check_name
from app.domain.naming import (
    BACKUP_SUFFIXES,
    Owner,
    is_backup_name,
    is_encrypted_name,
    manifest_name,
    parse_backup_name,
)


@dataclass(frozen=True)
class Backup:
    filename: str
    size: int
    last_modified: datetime
    created_at: datetime  # from the name when it reads, else the store's time
    app_name: str | None
    environment: str | None  # None for names of another form (e.g. hand-made files)
    has_manifest: bool
    pinned: bool = False
    pinned_at: datetime | None = None  # when the pin (and its note) was last written: the note's version
    # When a restore-test report was last written beside it: the listing's marker, read from the
    # report object's time and NOT checked (anyone who can write to the store can plant one). The
    # list page and /api/setting/backups show it as a cheap hint; what claims proof (the overview,
    # /api/targets, metrics) asks ConsoleBackups, which checks the signed report.
    verified_at: datetime | None = None

    @property
    def is_backup_file(self) -> bool:
        """A `.dump` or `.dump.age`: something the console can verify, pin and restore."""
        return is_backup_name(self.filename)

    @property
    def encrypted(self) -> bool:
        """An age file (`.dump.age`): restoring it needs one of the recipients' keys."""
        return is_encrypted_name(self.filename)

    def to_json(self) -> dict:
        return {
            "filename": self.filename,
            "lastModified": self.last_modified.isoformat(),
            "createdAt": self.created_at.isoformat(),
            "size": self.size,
            "environment": self.environment,
            "appName": self.app_name,
            "hasManifest": self.has_manifest,
            "pinned": self.pinned,
            "verifiedAt": self.verified_at.isoformat() if self.verified_at else None,
            "encrypted": self.encrypted,
        }


PIN_SUFFIX = ".pin"
VERIFIED_SUFFIX = ".verified.json"
SIDECAR_SUFFIXES = (VERIFIED_SUFFIX, ".json", PIN_SUFFIX)  # longest first


def sidecar_of(name: str) -> tuple[str, str] | None:
    """(dump name, suffix) when `name` is a sidecar of a dump, else None."""
    for suffix in SIDECAR_SUFFIXES:
        if name.endswith(tuple(backup + suffix for backup in BACKUP_SUFFIXES)):
            return name[: -len(suffix)], suffix
    return None


def list_backups(storage: Storage, zone: ZoneInfo, objects: list[StoredObject] | None = None) -> list[Backup]:
    """Every file in the store except sidecars, newest first; unreadable names still listed.

    `objects` is a listing of the store made a moment ago (a cache's); without it the store is listed.
    """
    objects = storage.list_objects() if objects is None else objects
    sidecars: dict[str, dict[str, datetime]] = {}
    for obj in objects:
        found = sidecar_of(obj.name)
        if found:
            sidecars.setdefault(found[0], {})[found[1]] = obj.last_modified
    backups = []
    for obj in objects:
        if sidecar_of(obj.name):
            continue
        parsed = parse_backup_name(obj.name)
        created = (parsed and parsed.created_at(zone)) or obj.last_modified
        mine = sidecars.get(obj.name, {})
        backups.append(
            Backup(
                filename=obj.name,
                size=obj.size,
                last_modified=obj.last_modified,
                created_at=created,
                app_name=parsed.app_name if parsed else None,
                environment=parsed.environment if parsed else None,
                has_manifest=".json" in mine,
                pinned=PIN_SUFFIX in mine,
                pinned_at=mine.get(PIN_SUFFIX),
                verified_at=mine.get(VERIFIED_SUFFIX),
            )
        )
    backups.sort(key=lambda b: (b.created_at, b.last_modified, b.filename), reverse=True)
    return backups


def sidecar_names(filename: str) -> list[str]:
    return [filename + suffix for suffix in SIDECAR_SUFFIXES]


MAX_SIDECAR_BYTES = 64 * 1024  # a manifest is under 2 KiB, a pin note under a page of text
MAX_SIDECAR_DEPTH = 32  # a manifest nests 3 deep; json.loads recurses once per level
_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone a string holds no quote: one linear pass
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")


def read_json(storage: Storage, name: str) -> dict | None:
    """A sidecar's JSON object, or None when it is missing, too large, nested too deep or not an object.

    Anyone who can write to the store writes sidecars, so nothing here may raise: a page that
    shows a thousand backups must not fail because of one file.
    """
    try:
        data = storage.get_bytes(name, max_bytes=MAX_SIDECAR_BYTES)
    except StorageError:
        return None
    if json_depth(data) > MAX_SIDECAR_DEPTH:
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8); RecursionError cannot happen past the check
        return None
    return value if isinstance(value, dict) else None


def json_depth(data: bytes) -> int:
    """How deep the brackets in `data` nest, outside strings; linear in its length and never recursive."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", _ESCAPE.sub(b"", data)))
    return max(accumulate(1 if c in b"[{" else -1 for c in brackets), default=0)


def write_json(storage: Storage, name: str, value: dict) -> None:
    storage.put_bytes(name, json.dumps(value, indent=2, sort_keys=True).encode())


def pin(storage: Storage, filename: str, note: str, by: str, at: datetime) -> None:
    write_json(storage, filename + PIN_SUFFIX, {"note": note, "pinned_by": by, "pinned_at": at.isoformat()})


def unpin(storage: Storage, filename: str) -> None:
    storage.delete(filename + PIN_SUFFIX)


def read_pin(storage: Storage, filename: str) -> dict | None:
    return read_json(storage, filename + PIN_SUFFIX)


def record_verification(storage: Storage, filename: str, report: dict) -> None:
    """Write a restore test's report; `report` is signed (provenance.sign) or it proves nothing."""
    write_json(storage, filename + VERIFIED_SUFFIX, report)


def read_verification(storage: Storage, filename: str) -> dict | None:
    """The restore-test report beside `filename`, unchecked (see provenance.proves); None when unreadable."""
    return read_json(storage, filename + VERIFIED_SUFFIX)


def may_be_backup(filename: str) -> bool:
    """A safe name of a dump (not a sidecar): the only names a backup is looked up by."""
    try:
        check_name(filename)
    except StorageError:
        return False
    return is_backup_name(filename)


def find_backup(backups: list[Backup], filename: str) -> Backup | None:
    """The listed backup with this exact name, or None (also for unsafe names and sidecars)."""
    if not may_be_backup(filename):
        return None
    return next((b for b in backups if b.filename == filename), None)


def read_manifest(storage: Storage, filename: str) -> dict | None:
    return read_json(storage, manifest_name(filename))


def write_manifest(storage: Storage, filename: str, manifest: dict) -> None:
    write_json(storage, manifest_name(filename), manifest)


def recent_backup(
    backups: list[Backup], owner: Owner, within: timedelta, now: datetime, *, trusted: Callable[[Backup], bool]
) -> Backup | None:
    """The newest trusted backup of this console's environment taken within `within` of now.

    'Taken' is the dump's start (its name): pg_dump's snapshot is of that moment. Only a backup
    with a signed manifest counts (`trusted`, asked only of the few in the window): a file that
    anyone with write access to the bucket planted is no safety net.
    """
    for backup in backups:
        if owner.owns(backup) and now - within <= backup.created_at <= now + timedelta(minutes=1) and trusted(backup):
            return backup
    return None
