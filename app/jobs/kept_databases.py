"""The databases restores set aside and keep for RESTORE_KEEP_PREVIOUS, so that "Swap back" can put one
back in seconds; the scheduler's sweep has each dropped once its time is up.

Recorded in the console store (table `kept_databases`), never in Redis: whoever can write to Redis must
not choose which database a swap back puts in the live one's place, nor have a kept one dropped early.
One row per set-aside database: its target, when it goes, the safety backup holding the same data (what
the admin confirms a swap back on) and the restore that set it aside. A name is used only if a restore of
this target can have made it (`is_scratch_name`), as a second check.

`claim` is one UPDATE that sets `claimed_at` only where it is still empty: of a swap back and any number
of sweeps, in any processes, exactly one gets a row. A claimed row is deleted once acted on (the database
swapped back, or dropped): the audit log already says what became of it, and a row left behind would only
be a name nobody may use. Until then it marks a drop under way, which `drop_previous_database` requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis

from app.config import Settings
from app.domain.restore_database import is_scratch_name
from app.extensions import db
from app.jobs.queue import drop_previous_database_later
from app.store.models import KeptDatabaseRecord, utcnow


@dataclass(frozen=True)
class KeptDatabase:
    id: int
    database: str  # the set-aside database, closed to connections
    until_at: datetime  # (UTC) after which the sweep has it dropped
    safety_backup: str  # the checked backup of the same data: what a swap back is confirmed on
    job_id: str | None = None  # the restore that set it aside

    @classmethod
    def of(cls, row: KeptDatabaseRecord) -> KeptDatabase:
        return cls(row.id, row.database, row.kept_until.replace(tzinfo=UTC), row.safety_backup, row.job_id)


def keep(settings: Settings, database: str, until: datetime, safety_backup: str, job_id: str | None) -> KeptDatabase:
    """Record `database`, set aside by a restore of this target: a swap back offers it, and the sweep has it
    dropped after `until`."""
    if not is_scratch_name(settings.target.dbname, "previous", database):
        raise ValueError(f"{database!r} is not a database a restore of {settings.target.dbname} sets aside")
    row = KeptDatabaseRecord(target=settings.target_name, database=database, safety_backup=safety_backup,
                             job_id=job_id, kept_until=until.astimezone(UTC).replace(tzinfo=None))  # fmt: skip
    db.session.add(row)
    db.session.commit()
    return KeptDatabase.of(row)


def all_kept(settings: Settings) -> list[KeptDatabase]:
    """Every database this target keeps and nobody has claimed, oldest first."""
    rows = db.session.execute(
        db.select(KeptDatabaseRecord)
        .where(KeptDatabaseRecord.target == settings.target_name, KeptDatabaseRecord.claimed_at.is_(None))
        .order_by(KeptDatabaseRecord.id)
    ).scalars()
    return [KeptDatabase.of(row) for row in rows if is_scratch_name(settings.target.dbname, "previous", row.database)]


def kept_with(settings: Settings, safety_backup: str, now: datetime | None = None) -> KeptDatabase | None:
    """The database kept with this safety backup (the same data), if it is still kept and its time not up."""
    moment = now or datetime.now(UTC)
    return next((k for k in all_kept(settings) if k.safety_backup == safety_backup and k.until_at > moment), None)


def claim(kept: KeptDatabase) -> bool:
    """Take `kept` for a swap back or a drop; False when another took it first (in any process)."""
    won = db.session.execute(
        db.update(KeptDatabaseRecord)
        .where(KeptDatabaseRecord.id == kept.id, KeptDatabaseRecord.claimed_at.is_(None))
        .values(claimed_at=utcnow())
    ).rowcount
    db.session.commit()
    return won == 1


def release(kept: KeptDatabase) -> None:
    """A swap back that failed gives `kept` back: kept again, until its own time."""
    db.session.execute(db.update(KeptDatabaseRecord).where(KeptDatabaseRecord.id == kept.id).values(claimed_at=None))
    db.session.commit()


def forget(settings: Settings, database: str) -> None:
    """`database` was swapped back or dropped: its claimed row goes (an unclaimed one stays)."""
    db.session.execute(
        db.delete(KeptDatabaseRecord).where(KeptDatabaseRecord.target == settings.target_name,
                                            KeptDatabaseRecord.database == database,
                                            KeptDatabaseRecord.claimed_at.is_not(None))
    )  # fmt: skip
    db.session.commit()


def to_drop_now(settings: Settings, database: str, safety_backup: str, job_id: str | None) -> None:
    """Record `database` as claimed for a drop at once (RESTORE_KEEP_PREVIOUS is 0): its safety backup is checked."""
    claim(keep(settings, database, datetime.now(UTC), safety_backup, job_id))


def may_drop(settings: Settings, database: str) -> bool:
    """Whether the console store says `database` may go: a row of this target claimed for its drop (by the
    sweep, or at once). A drop job carries only a name, and anyone who can write to Redis can push one: a
    database kept for a swap back, or because its safety backup failed, has no such row."""
    return db.session.execute(
        db.select(KeptDatabaseRecord.id).where(KeptDatabaseRecord.target == settings.target_name,
                                               KeptDatabaseRecord.database == database,
                                               KeptDatabaseRecord.claimed_at.is_not(None))
    ).first() is not None  # fmt: skip


def drop_when_due(settings: Settings, redis: Redis, now: datetime | None = None) -> list[str]:
    """Have a worker drop each kept database whose time is up (the scheduler runs this every loop)."""
    moment = now or datetime.now(UTC)
    dropped = []
    for kept in all_kept(settings):
        if kept.until_at <= moment and claim(kept):
            try:
                drop_previous_database_later(settings, redis, kept.database)
            except Exception:
                release(kept)  # not enqueued: the next loop tries again
                raise
            dropped.append(kept.database)
    return dropped


def no_longer_kept(safety_backup: str) -> str:
    """Why a swap back on `safety_backup` cannot be, in words."""
    return (f"the database set aside with {safety_backup} is no longer kept (its RESTORE_KEEP_PREVIOUS time ended, "
            "or it was swapped back already); restore the file instead; nothing was changed")  # fmt: skip
