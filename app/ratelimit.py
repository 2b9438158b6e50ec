"""A fixed-window counter of failures in Redis, shared by sign-in and the restore passkey."""

from __future__ import annotations

import hashlib

from redis import Redis


class FailureLimit:
    def __init__(self, redis: Redis, namespace: str, name: str, limit: int, window_seconds: int):
        self.redis = redis
        self.prefix = f"{namespace}:ratelimit:{name}:"
        self.limit = limit
        self.window = window_seconds

    def _key(self, *parts: str) -> str:
        # Hash who/where so the key space holds no user-supplied text.
        return self.prefix + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

    def count(self, *parts: str) -> int:
        """Failures in the current window."""
        return int(self.redis.get(self._key(*parts)) or 0)

    def remaining(self, *parts: str) -> int:
        """Failures still allowed in the current window."""
        return max(0, self.limit - self.count(*parts))

    def blocked_for(self, *parts: str) -> int:
        """Seconds until another attempt is allowed, or 0 when it is allowed now."""
        if self.count(*parts) < self.limit:
            return 0
        return max(int(self.redis.ttl(self._key(*parts))), 1)

    def failed(self, *parts: str) -> None:
        key = self._key(*parts)
        with self.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
            pipe.execute()

    def reset(self, *parts: str) -> None:
        self.redis.delete(self._key(*parts))
