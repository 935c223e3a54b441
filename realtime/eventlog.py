"""Reading a task's event log (written by ``worker_container.eventlog``) for replay.

The format is :mod:`taskcore.eventlog`'s.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from taskcore import eventlog
from taskcore.errors import EventDecodeError
from taskcore.names import Names

from .watch import LogState

log = logging.getLogger(__name__)

# KEYS: the log's meta hash. ARGV: a new epoch, the TTL, the epoch's and the seq's field names.
_START = """
if redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[4], 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class EventLogReader:
    def __init__(self, redis: Redis, names: Names) -> None:
        self._redis = redis
        self._names = names
        self._start = redis.register_script(_START)

    async def start(self, task_id: str) -> LogState | None:
        """Give a log that has no epoch yet its epoch, at ``seq`` 0, and return it (empty); a
        log that has one meanwhile is left alone, and ``None`` returned: read it.

        A watcher that subscribes before a task's first event then gets a cursor that names
        the log its events will be appended to; if Redis loses the log before then, the next
        append begins another epoch and the cursor is known to be stale, instead of being
        taken for the start of whatever log exists by then.
        """
        epoch = eventlog.new_epoch()
        started = await self._start(
            keys=[self._names.event_meta(task_id)],
            args=[epoch, eventlog.STARTED_TTL_S, eventlog.EPOCH_FIELD, eventlog.SEQ_FIELD],
        )
        return LogState(epoch, []) if started else None

    async def read(self, task_id: str, after: int = 0) -> LogState:
        """The epoch, the events with ``seq > after`` and the task's current form, read in one
        transaction."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(
                self._names.event_meta(task_id), [eventlog.EPOCH_FIELD, eventlog.RECORD_FIELD]
            )
            pipe.xrange(
                self._names.event_stream(task_id), min=eventlog.entry_id(after + 1), max="+"
            )
            (epoch, encoded), entries = await pipe.execute()
        events = []
        for entry_id, fields in entries:
            try:
                events.append(eventlog.decode_entry(fields))
            except EventDecodeError:
                log.exception("task %s: unreadable event %s in the log; skipped", task_id, entry_id)
        record = None
        if encoded is not None:
            try:
                record = eventlog.decode_record(encoded)
            except EventDecodeError:
                log.exception("task %s: unreadable record in the log; read from the store", task_id)
        return LogState(None if epoch is None else epoch.decode(), events, record)
