"""The event-log wire format: how a task's events are kept in its Redis stream and sent live.

The keys are :class:`~taskcore.names.Names`' (``event_meta``, ``event_stream``,
``event_channel``); the event is :class:`~taskcore.event.Event`. The writer
(``worker_container.eventlog``) appends with one Lua script that stamps each event with the
task's next ``seq`` and the log's ``epoch``. The script builds no JSON: it is given the event
encoded without them (:func:`encode`) and the field names below, and keeps them apart:

- meta hash: the log's ``epoch`` and its last ``seq`` (and ``ended`` once a final event is in);
  and the task's current form: its record as of the last event (``record``, :func:`encode_record`)
  with that record's ``attempt`` and status ``stage`` (:data:`taskcore.status.STAGES`), by which
  the script refuses an event that would step the task back;
- stream entry: id ``<seq>-0``, fields ``seq``, ``epoch`` and ``e`` (the unstamped event JSON);
- channel message: ``<epoch>:<seq>:<unstamped event JSON>`` (an epoch never holds a colon).

The readers (``realtime.eventlog`` for replay, ``realtime.hub`` for live events) decode with
:func:`decode_entry` and :func:`decode_message`. Both still read the format before this one
(an ``e`` field, or a message, holding the stamped event's JSON), so a log written by a worker
of the previous version replays after an upgrade.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import EventDecodeError
from .event import Event
from .task import Task

SEQ_FIELD = "seq"
EPOCH_FIELD = "epoch"
EVENT_FIELD = "e"
RECORD_FIELD = "record"
ATTEMPT_FIELD = "attempt"
STAGE_FIELD = "stage"
SEPARATOR = ":"
"""Between the epoch, the seq and the event in a channel message."""
LIVE_TTL_S = 7 * 86400
"""How long the log of an unfinished task lives without a new event: longer than any task runs
or waits in a queue."""
STARTED_TTL_S = 3600
"""How long a log that a watcher started (an epoch at seq 0, before the task's first event)
waits for that event. A task watched after its log expired (finished long ago) leaves only this
behind, for this long. Should it expire before the first event, that event begins another
epoch, and the watchers get a reset: never a gap."""


def new_epoch() -> str:
    """A fresh epoch, for a log that starts (or starts again, after Redis lost it)."""
    return uuid.uuid4().hex[:16]


def entry_id(seq: int) -> str:
    """The stream id of the entry with ``seq``: ids and seqs are one, so replay is a range read."""
    return f"{seq}-0"


def encode(event: Event) -> str:
    """The event as the writer's script is given it: its JSON without ``seq`` and ``epoch``."""
    data = event.to_json()
    del data["seq"], data["epoch"]
    return json.dumps(data, separators=(",", ":"))


def encode_record(task: Task) -> str:
    """The task's current form as the meta hash keeps it: its DynamoDB item, as JSON, so that
    the one item codec (:meth:`Task.to_item`) serves both stores."""
    return json.dumps(task.to_item(), separators=(",", ":"))


def decode_record(data: str | bytes) -> Task:
    """The task of :func:`encode_record`'s form; :class:`EventDecodeError` if it is not one."""
    item = _json(data)
    try:
        return Task.from_item(item)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EventDecodeError(f"malformed record: {exc!r}") from None


def encode_message(epoch: str, seq: int, body: str) -> str:
    """A channel message, as the writer's script joins it (for tests and tools; the script is
    the writer)."""
    return f"{epoch}{SEPARATOR}{seq}{SEPARATOR}{body}"


def decode_entry(fields: Mapping[Any, Any]) -> Event:
    """The event of a stream entry's fields (as redis-py gives them: bytes or str keys)."""
    values = {_text(key): value for key, value in fields.items()}
    if EVENT_FIELD not in values:
        raise EventDecodeError(f"a log entry needs an {EVENT_FIELD!r} field")
    body = values[EVENT_FIELD]
    if SEQ_FIELD not in values and EPOCH_FIELD not in values:
        return _legacy(body)  # written by a worker before the fields existed
    return _stamped(body, values.get(EPOCH_FIELD), values.get(SEQ_FIELD))


def decode_message(data: str | bytes) -> Event:
    """The event of a message on a task's channel."""
    text = _text(data)
    if text.startswith("{"):
        return _legacy(text)  # published by a worker before this format
    epoch, _, rest = text.partition(SEPARATOR)
    seq, separator, body = rest.partition(SEPARATOR)
    if not separator:
        raise EventDecodeError("a channel message is <epoch>:<seq>:<event>")
    return _stamped(body, epoch, seq)


def _stamped(body: Any, epoch: Any, seq: Any) -> Event:
    epoch_text, seq_text = _text(epoch), _text(seq)
    if not epoch_text or SEPARATOR in epoch_text:
        raise EventDecodeError(f"epoch {epoch_text!r} is not an epoch")
    if not (seq_text.isascii() and seq_text.isdigit()):
        raise EventDecodeError(f"seq {seq_text!r} is not a whole number")
    data = _json(body)
    if not isinstance(data, dict):
        raise EventDecodeError("an event must be a JSON object")
    return Event.from_json({**data, "seq": int(seq_text), "epoch": epoch_text})


def _legacy(body: Any) -> Event:
    return Event.from_json(_json(body))


def _json(body: Any) -> Any:
    try:
        return json.loads(_text(body))
    except (ValueError, RecursionError) as exc:
        raise EventDecodeError(f"an event must be JSON: {exc}") from None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise EventDecodeError(f"not UTF-8: {exc}") from None
    if value is None:
        return ""
    return str(value)
