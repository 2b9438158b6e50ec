"""This console's backups: its target database, whose names it writes, and the store they live in.

One value answers "which backups are ours", "the newest of ours" and "the newest proven
restorable", so no caller filters the bucket by hand. It is also where a second target will
plug in: each target gets its own `ConsoleBackups`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from app.adapters.postgres import TargetDatabase
from app.adapters.storage import Storage, StoredObject
from app.domain.catalog import Backup, find_backup, list_backups, may_be_backup, read_verification
from app.domain.naming import Owner
from app.domain.provenance import Provenance, dated_in_future, provenance_in, proves


class ListingCache(Protocol):
    """A listing of the store made a moment ago, shared by whoever reads it (kept outside the domain)."""

    def objects(self, storage: Storage, fresh: bool = False) -> list[StoredObject]:
        """The shared listing; `fresh` lists the store now and shares that."""
        ...


@dataclass(frozen=True)
class ConsoleBackups:
    target: TargetDatabase
    owner: Owner
    zone: ZoneInfo
    storage: Storage
    cache: ListingCache | None = None  # None: every listing asks the store (what jobs need)
    signing_key: bytes = field(default=b"", repr=False)  # BACKUP_SIGNING_KEY: which manifests are ours

    def listing(self, fresh: bool = False) -> list[Backup]:
        """Everything in the store (ours and others'), newest first; from the cache when there is one."""
        objects = self.cache.objects(self.storage, fresh) if self.cache else None
        return list_backups(self.storage, self.zone, objects)

    def find(self, filename: str, listed: list[Backup] | None = None) -> Backup | None:
        """The listed backup with this exact name, ours or not; None for unknown or unsafe names."""
        return find_backup(listed, filename) if listed is not None else self.find_listed(filename)[0]

    def find_listed(self, filename: str) -> tuple[Backup | None, list[Backup]]:
        """The backup with this name and the listing it was found in. A name missing from a cached
        listing is looked up afresh: the cache saves work, it never says "no such backup"."""
        listed = self.listing()
        found = find_backup(listed, filename)
        if found is None and self.cache is not None and may_be_backup(filename):
            listed = self.listing(fresh=True)
            found = find_backup(listed, filename)
        return found, listed

    def is_ours(self, backup: Backup) -> bool:
        return self.owner.owns(backup)

    def ours(self, listed: list[Backup] | None = None) -> list[Backup]:
        """Our backups, newest first (by the name's date), from `listed` or a fresh listing."""
        return [b for b in (self.listing() if listed is None else listed) if self.owner.owns(b)]

    def provenance(self, backup: Backup) -> Provenance:
        """Whether `backup` has a manifest signed with our key that describes it (one read of the store)."""
        return provenance_in(self.storage, backup, self.signing_key)

    def is_trusted(self, backup: Backup) -> bool:
        return self.provenance(backup).trusted

    def trusted_ours(self, listed: list[Backup] | None = None, now: datetime | None = None) -> Iterator[Backup]:
        """Our trusted backups, newest first, lazily (a manifest is read only when the caller gets that far).

        Names dated in the future and files without a signed manifest are skipped: anyone who can
        write to the store can add them, and they must not pass for our newest backup.
        """
        now = now or datetime.now(UTC)
        return (b for b in self.ours(listed) if not dated_in_future(b, now) and b.has_manifest and self.is_trusted(b))

    def newest(self, listed: list[Backup] | None = None, now: datetime | None = None) -> Backup | None:
        """Our newest trusted backup (see `trusted_ours`)."""
        return next(self.trusted_ours(listed, now), None)

    def proven(self, backup: Backup) -> bool:
        """Whether a restore test proved `backup` restorable: its report is signed with our key and names this
        file and the sha256 of its trusted manifest. Two reads of the store (manifest, report), and none
        for a backup whose listing shows no report.
        """
        if backup.verified_at is None or not backup.has_manifest:
            return False
        origin = self.provenance(backup)
        return origin.trusted and proves(read_verification(self.storage, backup.filename), backup, origin,
                                         self.signing_key)  # fmt: skip

    def newest_proven(self, listed: list[Backup] | None = None, now: datetime | None = None) -> Backup | None:
        """Our newest trusted backup that a restore test has proven restorable (see `proven`).

        The listing's report marker (`Backup.verified_at`) only picks the candidates: newest first, each
        one's manifest and report are read until one holds, so a page that shows this reads a report or
        two, not every report in the store. A planted or copied `.verified.json` is passed over.

        Decided for the cost of pages: the backups list's per-row mark and /api/setting/backups'
        `verifiedAt` stay the listing's marker (`Backup.verified_at`, no read at all) and are a hint
        that a report is listed, not a proof; checking each row would cost two GETs per verified row
        on every view. Whatever claims proof (overview, /api/targets, `targets list`, metrics) asks here.
        """
        now = now or datetime.now(UTC)
        return next((b for b in self.ours(listed) if not dated_in_future(b, now) and self.proven(b)), None)
