"""A Redis lease: at most one holder at a time, given up by expiry if the holder dies."""

from __future__ import annotations

import uuid

from redis import Redis

# Renew if we hold it, take it if nobody does: one round trip, no window between the two.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, redis: Redis, key: str, ttl_s: float) -> None:
        self._redis = redis
        self._key = key
        self._ttl_ms = int(ttl_s * 1000)
        self._token = uuid.uuid4().hex
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    def hold(self) -> bool:
        """Take the lease or extend ours; ``False`` while someone else holds it."""
        return bool(self._acquire(keys=[self._key], args=[self._token, self._ttl_ms]))

    def held(self) -> bool:
        """Whether we hold the lease now (one read: for what only the holder reports)."""
        holder = self._redis.get(self._key)
        if isinstance(holder, bytes):
            holder = holder.decode()
        return holder == self._token

    def release(self) -> None:
        """Give the lease up now if we hold it, so another copy need not wait for expiry."""
        self._release(keys=[self._key], args=[self._token])
