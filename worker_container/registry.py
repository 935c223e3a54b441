"""Which task types the running workers can run, and the tasks that wait for one that can.

Every live worker sets ``<ns>:served:<type>`` for each type it can run on the queues it serves,
with a short expiry, and renews it from a thread (:class:`Advertiser`). Before it enqueues a
task, the relay asks whether anyone serves its type (:class:`ServedTypes`). If nobody does (no
worker was started with the module that declares it, or none for its queue) the task is not
enqueued where no one would take it: it stays ``queued``, says why in its record, and is
*parked* in ``<ns>:unserved``, a sorted set scored by the time it may wait until (its type's
``queue_timeout_s`` after it was due to start). The sweeper enqueues a parked task as soon as a
worker serves its type, and dead-letters it at its deadline. Each member is ``<type> <task id>``,
so that a sweep passes over tasks still unserved and not yet due without reading their records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import NamedTuple

from redis import Redis

from taskcore.clock import iso, parse_iso
from taskcore.names import Names
from taskcore.status import Status
from taskcore.task import Task

log = logging.getLogger(__name__)

SERVED_TTL_S = 30
"""How long a worker's word that it serves a type lasts: it is gone this long after it died."""
RENEW_S = 10


class Advertiser:
    """Keeps saying, while this worker lives, which task types it serves."""

    def __init__(self, redis: Redis, names: Names, task_types: Iterable[str]) -> None:
        self._redis = redis
        self._keys = [names.served(t) for t in sorted(task_types)]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="advertiser", daemon=True)

    def start(self) -> None:
        self.advertise()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def advertise(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key in self._keys:
            pipe.set(key, 1, ex=SERVED_TTL_S)
        pipe.execute()

    def _renew(self) -> None:
        while not self._stopped.wait(RENEW_S):
            try:
                self.advertise()
            except Exception:
                # Keep trying: a Redis outage must not make this worker look gone for good.
                log.warning("could not renew the task types this worker serves", exc_info=True)


class ServedTypes:
    """Whether a live worker serves a task type; a yes is remembered for ``cache_s``.

    A no is never remembered, so a worker that has just started is found at once; a yes is,
    so the hot path costs one Redis read per type every few seconds, not one per task.
    """

    def __init__(self, redis: Redis, names: Names, cache_s: float = 5.0) -> None:
        self._redis = redis
        self._names = names
        self._cache_s = cache_s
        self._seen: dict[str, float] = {}

    def __call__(self, task_type: str) -> bool:
        now = time.monotonic()
        if now - self._seen.get(task_type, -self._cache_s) < self._cache_s:
            return True
        if self._redis.exists(self._names.served(task_type)):
            self._seen[task_type] = now
            return True
        self._seen.pop(task_type, None)
        return False


def waiting_reason(task_type: str) -> str:
    """What a parked task's record and event say, for its owner."""
    return (
        f"no running worker serves task type {task_type!r}: "
        "the task waits for one until its queue_timeout_s"
    )


def deadline(task: Task) -> float:
    """Until when a task may wait for a worker: its queue timeout after its next attempt was due
    (its retry, its delayed start, or its submission)."""
    due = task.created_at
    if task.status is Status.RETRYING and task.retry_at is not None:
        due = task.retry_at
    elif task.run_at is not None:
        due = task.run_at
    return parse_iso(due) + task.queue_timeout_s


class Parked(NamedTuple):
    task_type: str
    task_id: str
    deadline: float


def _member(task_type: str, task_id: str) -> str:
    return f"{task_type} {task_id}"  # a type name has no space (taskcore.tasktype.TYPE_NAME)


def park(redis: Redis, names: Names, task: Task) -> None:
    """Leave ``task`` to the sweeper until a worker serves its type (idempotent)."""
    redis.zadd(names.unserved, {_member(task.type, task.task_id): deadline(task)})
    log.warning(
        "task %s: %s (queue %r, until %s)",
        task.task_id,
        waiting_reason(task.type),
        task.queue,
        iso(deadline(task)),
    )


def parked(redis: Redis, names: Names) -> list[Parked]:
    """Every parked task, earliest deadline first."""
    entries: list[tuple[bytes, float]] = redis.zrange(names.unserved, 0, -1, withscores=True)  # type: ignore[assignment]
    found = []
    for member, score in entries:
        task_type, _, task_id = member.decode().partition(" ")
        found.append(Parked(task_type, task_id, float(score)))
    return found


def unpark(redis: Redis, names: Names, task_type: str, task_id: str) -> None:
    redis.zrem(names.unserved, _member(task_type, task_id))


def is_parked(redis: Redis, names: Names, task_type: str, task_id: str) -> bool:
    return redis.zscore(names.unserved, _member(task_type, task_id)) is not None
