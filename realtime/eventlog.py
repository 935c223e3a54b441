"""Reading a task's event log (written by ``worker_container.eventlog``) for replay.

The format is :mod:`taskcore.eventlog`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from taskcore import eventlog
from taskcore.errors import EventDecodeError
from taskcore.event import Event
from taskcore.names import Names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogState:
    """The log's epoch (``None`` before its first event) and its events after some ``seq``."""

    epoch: str | None
    events: list[Event]


class EventLogReader:
    def __init__(self, redis: Redis, names: Names) -> None:
        self._redis = redis
        self._names = names

    async def read(self, task_id: str, after: int = 0) -> LogState:
        """The epoch and the events with ``seq > after``, read in one transaction."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self._names.event_meta(task_id), eventlog.EPOCH_FIELD)
            pipe.xrange(
                self._names.event_stream(task_id), min=eventlog.entry_id(after + 1), max="+"
            )
            epoch, entries = await pipe.execute()
        events = []
        for entry_id, fields in entries:
            try:
                events.append(eventlog.decode_entry(fields))
            except EventDecodeError:
                log.exception("task %s: unreadable event %s in the log; skipped", task_id, entry_id)
        return LogState(None if epoch is None else epoch.decode(), events)
