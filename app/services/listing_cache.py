"""The bucket listing, shared for a few seconds in Redis by every gunicorn worker, and pin notes.

Listing a bucket of 5,000 objects takes seconds, and every page and API call needs it. So the
listing (names, sizes and times only: nothing secret) is kept under this console's
`REDIS_NAMESPACE` for `BACKUP_LIST_CACHE_SECONDS`. Each write the console makes to the store
(a backup, retention, a pin, an unpin, a restore test's report, the clean-up after a failed
job) calls `listing_changed`, which bumps a generation number: a listing cached under an older
generation is never read again, even one that a slow reader stores after the write. Jobs do
not read this cache: retention and restore decide on a listing made just then. A name asked
for (download, pin, verify, restore) that the shared listing lacks is looked up afresh
(`ConsoleBackups.find_listed`), so a file put in the bucket by another tool is never refused
as unknown; it appears on the list when the shared listing expires.

A pin's note lives in its `X.dump.pin` sidecar, which only a GET can read. The note of a given
pin never changes (pinning again writes a new sidecar, with a new time), so each note is read
once and remembered in Redis by the pin's name and time; the list page asks only for the rows
it shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError

from app.adapters.storage import Storage, StoredObject
from app.config import Settings
from app.domain.catalog import Backup, read_pin

PIN_NOTE_SECONDS = 30 * 24 * 3600  # a remembered note outlives any page view; an unpinned one fades


class BucketListingCache:
    """`ListingCache` (see app/domain/console.py) in Redis; a Redis failure means listing the store."""

    def __init__(self, redis: Redis, namespace: str, seconds: int):
        self.redis, self.namespace, self.seconds = redis, namespace, seconds

    def objects(self, storage: Storage, fresh: bool = False) -> list[StoredObject]:
        """The shared listing, or (`fresh`, or none shared yet) the store's, which is then shared."""
        # The store's description (s3://bucket/prefix or a folder) is hashed into the key, so two
        # consoles that share a namespace but not a store never read each other's listing.
        store = hashlib.sha256(storage.description.encode()).hexdigest()[:16]
        try:
            key = f"{self.namespace}:listing:{store}:{int(self.redis.get(generation_key(self.namespace)) or 0)}"
            cached = None if fresh else self.redis.get(key)
        except RedisError:
            return storage.list_objects()
        if cached is not None:
            with contextlib.suppress(ValueError, TypeError, RecursionError):  # not what we wrote: list the store
                return [StoredObject(name, size, datetime.fromisoformat(at)) for name, size, at in json.loads(cached)]
        objects = storage.list_objects()
        encoded = json.dumps([[o.name, o.size, o.last_modified.isoformat()] for o in objects], separators=(",", ":"))
        with contextlib.suppress(RedisError):  # the listing is still right; the next reader lists again
            self.redis.set(key, encoded, ex=self.seconds)
        return objects


def generation_key(namespace: str) -> str:
    return f"{namespace}:listing:generation"


def listing_cache(settings: Settings, redis: Redis) -> BucketListingCache | None:
    """This console's shared listing, or None when BACKUP_LIST_CACHE_SECONDS is 0."""
    if settings.backup_list_cache_seconds <= 0:
        return None
    return BucketListingCache(redis, settings.redis_namespace, settings.backup_list_cache_seconds)


def listing_changed(settings: Settings, redis: Redis) -> None:
    """The console wrote to the store: the next page or API call lists it afresh."""
    redis.incr(generation_key(settings.redis_namespace))


def pin_notes(storage: Storage, redis: Redis, namespace: str, backups: list[Backup]) -> dict[str, str]:
    """The note of each pinned backup in `backups` (the rows a page shows); a GET only for a pin not seen before."""
    pinned = [b for b in backups if b.pinned and b.pinned_at is not None]
    keys = [f"{namespace}:pin-note:{_pin_version(b)}" for b in pinned]
    try:
        known = redis.mget(keys) if keys else []
    except RedisError:
        known = [None] * len(keys)
    notes = {}
    for backup, key, note in zip(pinned, keys, known, strict=True):
        if note is None:
            read = read_pin(storage, backup.filename) or {}
            note = read.get("note") if isinstance(read.get("note"), str) else ""
            with contextlib.suppress(RedisError):
                redis.set(key, note, ex=PIN_NOTE_SECONDS)
        notes[backup.filename] = note.decode() if isinstance(note, bytes) else note
    return notes


def forget_pin_note(redis: Redis, namespace: str, backup: Backup) -> None:
    """After an unpin: a new pin written within the same second must not show the old note."""
    redis.delete(f"{namespace}:pin-note:{_pin_version(backup)}")


def _pin_version(backup: Backup) -> str:
    """A key for this pin: its backup's name and the time its sidecar was written (hashed: names are long)."""
    stamp = backup.pinned_at.isoformat() if backup.pinned_at else ""
    return hashlib.sha256(f"{backup.filename}\0{stamp}".encode()).hexdigest()[:32]
