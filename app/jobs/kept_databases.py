"""The databases restores set aside and keep for RESTORE_KEEP_PREVIOUS, so that "Swap back" can put one
back in seconds; the scheduler's sweep has each dropped once its time is up.

One Redis hash per target: the set-aside database's name → when it goes, the safety backup holding
the same data (what the admin confirms a swap back on) and the restore that set it aside. Taking an
entry out (HDEL) is the claim: a swap back and the sweep (of any number of schedulers) never both
get one. Only a database whose checked safety backup is in the store is ever entered here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from redis import Redis

from app.config import Settings
from app.jobs.queue import drop_previous_database_later


@dataclass(frozen=True)
class KeptDatabase:
    database: str  # the set-aside database, closed to connections
    until: float  # Unix time after which the sweep drops it
    safety_backup: str  # the checked backup of the same data: what a swap back is confirmed on
    job_id: str | None = None  # the restore that set it aside

    @property
    def until_at(self) -> datetime:
        return datetime.fromtimestamp(self.until, UTC)


def _key(settings: Settings) -> str:
    return f"{settings.key_prefix}:kept-databases"


def keep(settings: Settings, redis: Redis, kept: KeptDatabase) -> None:
    """Enter `kept` (again): a swap back offers it, and the sweep drops it after `kept.until`."""
    redis.hset(_key(settings), kept.database, json.dumps(asdict(kept)))


def all_kept(settings: Settings, redis: Redis) -> list[KeptDatabase]:
    """Every database kept for the target; an entry that is not ours (Redis is writable) is left out."""
    kept = []
    for name, value in redis.hgetall(_key(settings)).items():
        try:
            fields = json.loads(value)
            entry = KeptDatabase(str(fields["database"]), float(fields["until"]), str(fields["safety_backup"]),
                                 fields.get("job_id") and str(fields["job_id"]))  # fmt: skip
        except (ValueError, TypeError, KeyError):
            continue
        if entry.database == name.decode(errors="replace"):
            kept.append(entry)
    return kept


def kept_with(settings: Settings, redis: Redis, safety_backup: str) -> KeptDatabase | None:
    """The database kept with this safety backup (the same data), if it is still kept."""
    return next((k for k in all_kept(settings, redis) if k.safety_backup == safety_backup), None)


def claim(settings: Settings, redis: Redis, kept: KeptDatabase) -> bool:
    """Take `kept` out for a swap back or a drop; False when another took it first."""
    return bool(redis.hdel(_key(settings), kept.database))


def drop_when_due(settings: Settings, redis: Redis, now: datetime | None = None) -> list[str]:
    """Have a worker drop each kept database whose time is up (the scheduler runs this every loop)."""
    moment = (now or datetime.now(UTC)).timestamp()
    dropped = []
    for kept in all_kept(settings, redis):
        if kept.until <= moment and claim(settings, redis, kept):
            drop_previous_database_later(settings, redis, kept.database)
            dropped.append(kept.database)
    return dropped


def no_longer_kept(safety_backup: str) -> str:
    """Why a swap back on `safety_backup` cannot be, in words."""
    return (f"the database set aside with {safety_backup} is no longer kept (its RESTORE_KEEP_PREVIOUS time ended, "
            "or it was swapped back already); restore the file instead; nothing was changed")  # fmt: skip
