"""One backup or restore at a time per target database: a Redis key with an expiry.

It is keyed on the database (`Settings.lock_name`: host, port and name), not on the target, so
two targets that point at one database share it.
"""

from __future__ import annotations

from redis import Redis

# The lock outlives its job's last sign of life by this much, then frees itself (a worker that
# died without its failure callback running never blocks the database for long).
LOCK_GRACE_SECONDS = 120

# Delete the key only if it still names this job, so a late finisher never frees another's lock.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""

# Renew the key's expiry only if it still names this job: a job whose lock expired (or was freed)
# must not take it back from whoever holds it now.
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end
"""


class DatabaseLock:
    def __init__(self, redis: Redis, namespace: str, database: str):
        self.redis = redis
        self.key = f"{namespace}:lock:database:{database}"

    def acquire(self, job_id: str, ttl_seconds: int) -> bool:
        return bool(self.redis.set(self.key, job_id, nx=True, ex=ttl_seconds))

    def holder(self) -> str | None:
        value = self.redis.get(self.key)
        return value.decode() if value else None

    def release(self, job_id: str) -> bool:
        return bool(self.redis.eval(_RELEASE, 1, self.key, job_id))

    def extend(self, job_id: str, ttl_seconds: int) -> bool:
        """Make the lock expire `ttl_seconds` from now, if `job_id` still holds it (a running job's heartbeat)."""
        return bool(self.redis.eval(_EXTEND, 1, self.key, job_id, int(ttl_seconds)))
