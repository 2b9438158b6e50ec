"""Backup file names, and reading them back.

`{APP_NAME}-{APP_ENV}-on-YYYY-MM-DD-at-HH-MM-SS-AM|PM-IST.dump`, on a 12-hour clock in the
display time zone, whose abbreviation replaces `IST` when another zone is configured. An
encrypted backup is the same name plus `.age` (an age file holding that archive); both kinds
are one series for listing, retention, pins, verify and the size trend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

DUMP_SUFFIX = ".dump"
MANIFEST_SUFFIX = ".dump.json"
AGE_SUFFIX = ".age"  # an age file (https://age-encryption.org) holding the archive
ENCRYPTED_SUFFIX = DUMP_SUFFIX + AGE_SUFFIX
BACKUP_SUFFIXES = (DUMP_SUFFIX, ENCRYPTED_SUFFIX)

_NAME = re.compile(
    r"^(?P<app>.+)-(?P<env>[A-Za-z0-9_]+)-on-(?P<date>\d{4}-\d{2}-\d{2})"
    r"-at-(?P<time>\d{2}-\d{2}-\d{2})-(?P<ampm>AM|PM)-(?P<tz>[A-Za-z0-9+\-]{1,10})\.dump(?:\.age)?\Z",
    re.ASCII,
)
# Abbreviations the original names (IST) and common zones use, so a name made under another setting still reads.
_KNOWN_ABBREVIATIONS = {"IST": "Asia/Kolkata", "UTC": "UTC", "GMT": "GMT"}


def backup_filename(app_name: str, environment: str, at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    abbreviation = local.strftime("%Z") or "UTC"
    return f"{app_name}-{environment}-on-{local:%Y-%m-%d}-at-{local:%I-%M-%S-%p}-{abbreviation}{DUMP_SUFFIX}"


@dataclass(frozen=True)
class Owner:
    """Whose backups a name says they are: one app in one environment. A bucket may hold others'."""

    app_name: str
    environment: str

    def owns(self, backup: _Named) -> bool:
        """A `.dump` or `.dump.age` of this app and environment; everything else in the bucket is someone else's."""
        return (
            backup.app_name == self.app_name
            and backup.environment == self.environment
            and is_backup_name(backup.filename)
        )

    def filename_at(self, at: datetime, zone: ZoneInfo, *, encrypted: bool = False) -> str:
        name = backup_filename(self.app_name, self.environment, at, zone)
        return encrypted_name(name) if encrypted else name

    def __str__(self) -> str:
        return f"{self.app_name}/{self.environment}"


class _Named(Protocol):
    filename: str
    app_name: str | None
    environment: str | None


@dataclass(frozen=True)
class BackupName:
    app_name: str
    environment: str
    local_time: datetime  # naive, as written in the name
    zone_abbreviation: str

    def created_at(self, zone: ZoneInfo) -> datetime | None:
        """The moment the name records, in UTC; None when its zone cannot be told."""
        for candidate in (zone, ZoneInfo(_KNOWN_ABBREVIATIONS.get(self.zone_abbreviation, "UTC"))):
            for fold in (0, 1):  # the repeated hour when clocks go back: the abbreviation tells which
                aware = self.local_time.replace(tzinfo=candidate, fold=fold)
                try:
                    if aware.strftime("%Z") == self.zone_abbreviation:
                        return aware.astimezone(UTC)
                except (OverflowError, ValueError):  # a year-1 name in a zone with an odd offset
                    return None
        return None


def parse_backup_name(filename: str) -> BackupName | None:
    """Read app, environment and time back from a name; None for names of another form."""
    match = _NAME.match(filename)
    if not match:
        return None
    try:
        local = datetime.strptime(f"{match['date']} {match['time']} {match['ampm']}", "%Y-%m-%d %I-%M-%S %p")
    except ValueError:
        return None
    return BackupName(match["app"], match["env"], local, match["tz"])


def is_backup_name(filename: str) -> bool:
    """A backup file (plain or encrypted), as opposed to a sidecar or anything else."""
    return filename.endswith(BACKUP_SUFFIXES)


def is_encrypted_name(filename: str) -> bool:
    return filename.endswith(ENCRYPTED_SUFFIX)


def encrypted_name(filename: str) -> str:
    """`X.dump` → `X.dump.age`: the name of the same backup encrypted with age."""
    return filename + AGE_SUFFIX


def both_forms(filename: str) -> tuple[str, str]:
    """The plain and the encrypted name of the backup taken at the moment this name records."""
    plain = filename.removesuffix(AGE_SUFFIX)
    return plain, encrypted_name(plain)


def manifest_name(filename: str) -> str:
    return filename + ".json"
