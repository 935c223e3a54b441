"""The per-task event log in Redis: a bounded stream for replay and a channel for live delivery.

:meth:`EventLog.append` stamps the event with the task's next ``seq`` and the log's ``epoch``,
adds it to the stream and publishes it, in one Lua script: watchers can never see an event on
the channel that replay would not also give them, or the other way round, or two events with
one ``seq``. If Redis lost the log, the next append starts a new epoch at ``seq`` 1, and
watchers holding a cursor of the old epoch know to take a fresh snapshot. Once a terminal event
is in the log nothing more is appended, so no late progress or custom event of a stopped
attempt can follow a task's end. What the stream and the channel hold is
:mod:`taskcore.eventlog`'s to define; the script only puts the pieces where it says."""

from __future__ import annotations

import logging
from dataclasses import replace

from redis import Redis

from taskcore import eventlog
from taskcore.event import Event, EventKind
from taskcore.names import Names
from taskcore.status import STAGES
from taskcore.task import Task

log = logging.getLogger(__name__)

MAX_EVENTS = 1000
"""Events kept per task; an approximate cap (Redis trims whole nodes)."""

# KEYS: the log's meta hash, its stream. ARGV: a new epoch, the unstamped event, the stream's
# cap, the channel, the TTL, '1' if the event ends the log, then the wire format's field names
# (seq, epoch, event: the meta hash keeps the first two under the same names) and separator,
# then the task's record as of this event, its attempt and stage, '1' for a status event, and
# the record's, attempt's and stage's field names.
# The script builds no JSON: taskcore.eventlog's readers put the stamp and the event together.
_APPEND = """
local meta = redis.call('HMGET', KEYS[1], 'ended', ARGV[15], ARGV[16])
if meta[1] then
  return false
end
local attempt, stage = tonumber(ARGV[12]), tonumber(ARGV[13])
if meta[2] then
  local at, st = tonumber(meta[2]), tonumber(meta[3])
  if ARGV[14] == '1' then
    if attempt < at or (attempt == at and stage <= st) then
      return false
    end
  elseif attempt < at or (attempt == at and stage < st) then
    return false
  end
end
local epoch = redis.call('HGET', KEYS[1], ARGV[8])
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], ARGV[8], epoch, ARGV[7], 0)
end
local seq = redis.call('HINCRBY', KEYS[1], ARGV[7], 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-0',
  ARGV[7], seq, ARGV[8], epoch, ARGV[9], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[17], ARGV[11], ARGV[15], attempt, ARGV[16], stage)
redis.call('PUBLISH', ARGV[4], epoch .. ARGV[10] .. seq .. ARGV[10] .. ARGV[2])
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'ended', 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {epoch, seq}
"""


class EventLog:
    def __init__(self, redis: Redis, names: Names, ended_ttl_s: int) -> None:
        self._names = names
        self._ended_ttl_s = ended_ttl_s
        self._append = redis.register_script(_APPEND)

    def append(self, event: Event, record: Task) -> Event | None:
        """Append ``event`` to its task's log, keep ``record`` as the task's current form
        beside it, and publish it; return it stamped, or ``None`` if it was refused.

        Refused: any event once the log has ended; a status event whose ``(attempt, stage)``
        (see :data:`~taskcore.status.STAGES`) is not past the current form's, so a duplicate or
        late writer can never step the task back; a progress or custom event behind the current
        form (of an attempt that was given up on). One ahead of it is taken: after Redis lost
        the log, a stale writer's event may have come first, and the running attempt's
        progress must not be shut out by it. A lost log takes whatever comes next, as the start
        of a new epoch.
        """
        status_event = event.kind is EventKind.STATUS
        ended = event.status.is_terminal and status_event
        ttl = self._ended_ttl_s if ended else eventlog.LIVE_TTL_S
        task_id = event.task_id
        stamped = self._append(
            keys=[self._names.event_meta(task_id), self._names.event_stream(task_id)],
            args=[
                eventlog.new_epoch(),
                eventlog.encode(event),
                MAX_EVENTS,
                self._names.event_channel(task_id),
                ttl,
                "1" if ended else "0",
                eventlog.SEQ_FIELD,
                eventlog.EPOCH_FIELD,
                eventlog.EVENT_FIELD,
                eventlog.SEPARATOR,
                eventlog.encode_record(record),
                record.attempt,
                STAGES[record.status],
                "1" if status_event else "0",
                eventlog.ATTEMPT_FIELD,
                eventlog.STAGE_FIELD,
                eventlog.RECORD_FIELD,
            ],
        )
        if stamped is None:
            log.info(
                "task %s: %s event (%s, attempt %d) refused: the log has ended or moved past it",
                task_id,
                event.kind,
                event.status,
                event.attempt,
            )
            return None
        epoch, seq = stamped
        stamped_epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        return replace(event, seq=int(seq), epoch=stamped_epoch)
