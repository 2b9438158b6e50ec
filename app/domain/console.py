"""This console's backups: its target database, whose names it writes, and the store they live in.

One value answers "which backups are ours", "the newest of ours" and "the newest proven
restorable", so no caller filters the bucket by hand. It is also where a second target will
plug in: each target gets its own `ConsoleBackups`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from app.domain.catalog import Backup, find_backup, list_backups
from app.domain.naming import Owner
from app.domain.provenance import dated_in_future
from app.domain.storage import Storage
from app.settings import Settings, TargetDatabase


def target_name(settings: Settings) -> str:
    """The name of this console's one target, as alerts and metrics label it: named after APP_ENV,
    as the several-targets design names the target built from today's variables."""
    return settings.app_env


@dataclass(frozen=True)
class ConsoleBackups:
    target: TargetDatabase
    owner: Owner
    zone: ZoneInfo
    storage: Storage

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage) -> ConsoleBackups:
        return cls(settings.target, Owner(settings.app_name, settings.app_env), settings.zone, storage)

    def listing(self) -> list[Backup]:
        """Everything in the store (ours and others'), newest first."""
        return list_backups(self.storage, self.zone)

    def find(self, filename: str, listed: list[Backup] | None = None) -> Backup | None:
        """The listed backup with this exact name, ours or not; None for unknown or unsafe names."""
        return find_backup(self.listing() if listed is None else listed, filename)

    def is_ours(self, backup: Backup) -> bool:
        return self.owner.owns(backup)

    def ours(self, listed: list[Backup] | None = None) -> list[Backup]:
        """Our backups, newest first (by the name's date), from `listed` or a fresh listing."""
        return [b for b in (self.listing() if listed is None else listed) if self.owner.owns(b)]

    def newest(self, listed: list[Backup] | None = None, now: datetime | None = None) -> Backup | None:
        """Our newest backup, not counting names dated in the future (anyone can write such a name)."""
        now = now or datetime.now(UTC)
        return next((b for b in self.ours(listed) if not dated_in_future(b, now)), None)

    def newest_proven(self, listed: list[Backup] | None = None) -> Backup | None:
        """Our newest backup that a restore test has proven restorable."""
        return next((b for b in self.ours(listed) if b.verified_at is not None), None)
