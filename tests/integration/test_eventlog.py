"""The worker's event-log script against the real Redis, read back with taskcore's codec."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import redis

from taskcore import eventlog
from taskcore.config import Config
from taskcore.event import Event, EventKind
from taskcore.status import Status
from taskcore.task import Progress, Task
from worker_container.eventlog import EventLog

from .helpers import make_task

pytestmark = pytest.mark.integration


RECORD = replace(make_task("demo.noop", status=Status.RUNNING, attempt=1), task_id="task-1")
"""The record the events below are of: running its first attempt."""


def _event(status: Status = Status.RUNNING) -> Event:
    return Event("task-1", EventKind.PROGRESS, status, 1, Progress(50.0, "half"), "now")


def test_the_script_keeps_the_stamp_in_fields_of_its_own_and_publishes_it_with_the_event(
    redis_client: redis.Redis, config: Config
) -> None:
    names = config.names
    pubsub = redis_client.pubsub()
    pubsub.subscribe(names.event_channel("task-1"))
    assert pubsub.get_message(timeout=5) is not None  # the subscription's confirmation
    log = EventLog(redis_client, names, 60)

    first = log.append(_event(), RECORD)
    second = log.append(_event(), RECORD)

    assert first is not None
    assert second is not None
    assert (first.seq, second.seq) == (1, 2)
    assert first.epoch == second.epoch != ""
    entries = redis_client.xrange(names.event_stream("task-1"))
    assert [entry_id for entry_id, _ in entries] == [b"1-0", b"2-0"]
    _, fields = entries[0]
    assert fields[eventlog.SEQ_FIELD.encode()] == b"1"
    assert fields[eventlog.EPOCH_FIELD.encode()] == first.epoch.encode()
    # The event itself as the writer encoded it: the script added nothing to the JSON.
    assert fields[eventlog.EVENT_FIELD.encode()] == eventlog.encode(_event()).encode()
    assert [eventlog.decode_entry(f) for _, f in entries] == [first, second]
    published = []
    deadline = time.monotonic() + 5
    while len(published) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
        if message is not None and message["type"] == "message":
            published.append(message["data"])
    pubsub.close()
    assert published[0] == f"{first.epoch}:1:".encode() + eventlog.encode(_event()).encode()
    assert [eventlog.decode_message(m) for m in published] == [first, second]
    meta = redis_client.hgetall(names.event_meta("task-1"))
    assert meta[eventlog.EPOCH_FIELD.encode()] == first.epoch.encode()
    assert meta[eventlog.SEQ_FIELD.encode()] == b"2"


def test_nothing_is_appended_after_the_final_event(
    redis_client: redis.Redis, config: Config
) -> None:
    log = EventLog(redis_client, config.names, 60)
    final = Event("task-1", EventKind.STATUS, Status.SUCCEEDED, 1, Progress(100.0), "now")

    assert log.append(final, replace(RECORD, status=Status.SUCCEEDED)) is not None
    assert log.append(_event(), RECORD) is None

    (entry,) = redis_client.xrange(config.names.event_stream("task-1"))
    assert json.loads(entry[1][eventlog.EVENT_FIELD.encode()])["status"] == "succeeded"


def test_the_log_keeps_the_record_of_its_last_event_beside_it(
    redis_client: redis.Redis, config: Config
) -> None:
    log = EventLog(redis_client, config.names, 60)
    halfway = replace(RECORD, progress=Progress(50.0, "half"))

    assert log.append(_event(), halfway) is not None

    kept = redis_client.hget(config.names.event_meta("task-1"), eventlog.RECORD_FIELD)
    assert kept is not None
    assert eventlog.decode_record(kept) == halfway


def test_a_status_that_would_step_the_task_back_is_refused(
    redis_client: redis.Redis, config: Config
) -> None:
    log = EventLog(redis_client, config.names, 60)
    queued = replace(RECORD, status=Status.QUEUED, attempt=0)
    retrying = replace(RECORD, status=Status.RETRYING)
    second = replace(RECORD, attempt=2)

    def status(record: Task) -> Event | None:
        return log.append(Event.status_of(record), record)

    assert status(queued) is not None
    assert status(RECORD) is not None
    assert status(queued) is None  # a duplicate message's late "queued"
    assert status(RECORD) is None  # the same again
    assert status(retrying) is not None
    assert status(second) is not None  # retrying at 1 comes before running at 2
    assert status(retrying) is None
    kept = redis_client.hget(config.names.event_meta("task-1"), eventlog.RECORD_FIELD)
    assert kept is not None
    assert eventlog.decode_record(kept) == second


def test_progress_of_an_attempt_given_up_on_is_refused(
    redis_client: redis.Redis, config: Config
) -> None:
    log = EventLog(redis_client, config.names, 60)
    second = replace(RECORD, attempt=2)
    assert log.append(Event.status_of(second), second) is not None

    assert log.append(Event.progress_of(RECORD), RECORD) is None  # attempt 1's worker, late
    assert log.append(Event.progress_of(second), second) is not None


def test_a_log_redis_lost_takes_the_next_event_as_the_start_of_a_new_epoch(
    redis_client: redis.Redis, config: Config
) -> None:
    log = EventLog(redis_client, config.names, 60)
    first = log.append(Event.status_of(RECORD), RECORD)
    redis_client.delete(config.names.event_meta("task-1"), config.names.event_stream("task-1"))

    again = log.append(Event.progress_of(RECORD), RECORD)

    assert first is not None
    assert again is not None
    assert (again.seq, again.epoch != first.epoch) == (1, True)
