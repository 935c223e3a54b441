"""The heartbeat of a running attempt: a Redis key that lives only while its worker does.

A thread of the process running the attempt (its worker, or the work horse of an isolated type)
sets ``names.heartbeat(task_id)`` to the attempt number, with a TTL, and sets it again every
third of that TTL; the key is removed when the attempt ends. If the
worker is SIGKILLed, loses its host or hangs, the key expires, and the sweeper, seeing a
``running`` task with no heartbeat for a whole TTL, recovers it. The key is set, not extended,
each time, so a live attempt's heartbeat comes back within a third of the TTL even after Redis
lost every key.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, redis: Redis, key: str, attempt: int, ttl_s: int) -> None:
        self._redis = redis
        self._key = key
        self._attempt = attempt
        self._ttl_s = ttl_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._set()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        try:
            self._redis.delete(self._key)
        except RedisError:
            log.warning("heartbeat %s: not removed; it expires by itself", self._key, exc_info=True)

    def _beat(self) -> None:
        while not self._stopped.wait(self._ttl_s / 3):
            try:
                self._set()
            except Exception:
                # Redis is down, say: keep trying, for a thread that dies would let the sweeper
                # take a live attempt for a dead one. (If Redis stays down the key expires, and
                # the sweeper, which needs Redis too, acts only if we are still silent after.)
                log.warning("heartbeat %s: not refreshed", self._key, exc_info=True)

    def _set(self) -> None:
        self._redis.set(self._key, self._attempt, ex=self._ttl_s)
