"""A fixed-window counter of failures in Redis, shared by sign-in and the restore passkey."""

from __future__ import annotations

import hashlib

from redis import Redis

# Count this attempt and say whether it may go ahead, in one step: a check followed by a separate
# increment let 80 parallel sign-ins all pass a check made before any of them failed.
_TAKE = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return math.max(redis.call('TTL', KEYS[1]), 1)
end
return 0
"""
# Give an attempt back (it succeeded), never below zero and never on a window that has ended.
_GIVE_BACK = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


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

    def take(self, *parts: str) -> int:
        """Atomically count an attempt as a failure before it is checked: 0 if it may go ahead, else
        seconds to wait (and nothing counted). At most `limit` attempts are ever checked per window,
        however many arrive at once; `give_back` uncounts one that succeeded."""
        return int(self.redis.eval(_TAKE, 1, self._key(*parts), self.limit, self.window))

    def give_back(self, *parts: str) -> None:
        self.redis.eval(_GIVE_BACK, 1, self._key(*parts))

    def failed(self, *parts: str) -> None:
        key = self._key(*parts)
        with self.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
            pipe.execute()

    def reset(self, *parts: str) -> None:
        self.redis.delete(self._key(*parts))
