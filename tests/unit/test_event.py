import json

import pytest

from taskcore.errors import EventDecodeError
from taskcore.event import Cursor, Event, EventKind
from taskcore.status import Status
from taskcore.task import Progress, Task, TaskError
from taskcore.tasktype import Priority


def _task(**changes: object) -> Task:
    base: dict[str, object] = dict(
        task_id="9f0c3a1e-0000-4000-8000-000000000001",
        owner="alice",
        type="demo.sleep",
        payload={"seconds": 1},
        status=Status.RUNNING,
        priority=Priority.NORMAL,
        max_attempts=1,
        timeout_s=60,
        created_at="2026-11-23T10:00:00.000Z",
        updated_at="2026-11-23T10:00:00.000Z",
        expires_at=1,
        trace_id="t",
        attempt=1,
        progress=Progress(40.0, "step 2"),
    )
    base.update(changes)
    return Task(**base)  # type: ignore[arg-type]


def test_event_round_trips_through_json() -> None:
    event = Event.status_of(_task(status=Status.FAILED, error=TaskError("HandlerError", "boom")))
    stamped = Event(**{**{f: getattr(event, f) for f in Event.__slots__}, "seq": 3, "epoch": "e1"})
    assert Event.from_json(json.loads(json.dumps(stamped.to_json()))) == stamped


def test_success_event_carries_the_result_and_others_do_not() -> None:
    assert Event.status_of(_task(status=Status.SUCCEEDED, result={"n": 1})).to_json()["result"] == {
        "n": 1
    }
    assert "result" not in Event.status_of(_task(result={"n": 1})).to_json()


def test_progress_event_has_progress_kind() -> None:
    event = Event.progress_of(_task())
    assert event.kind is EventKind.PROGRESS
    assert event.progress == Progress(40.0, "step 2")


@pytest.mark.parametrize("raw", ["not json", "[]", '{"v": 2}', '{"v": 1, "task_id": "x"}'])
def test_decode_refuses_what_is_not_a_v1_event(raw: str) -> None:
    with pytest.raises(EventDecodeError):
        Event.from_json(json.loads(raw) if raw.startswith(("{", "[")) else raw)


def test_cursor_parses_and_refuses() -> None:
    assert Cursor.from_json({"epoch": "e", "seq": 4}) == Cursor("e", 4)
    assert Cursor.from_json({"epoch": None, "seq": 0}) == Cursor(None, 0)
    for bad in (
        {"epoch": "e", "seq": -1},
        {"epoch": 1, "seq": 1},
        {"epoch": "e", "seq": True},
        "e:4",
    ):
        with pytest.raises(EventDecodeError):
            Cursor.from_json(bad)


def test_every_event_of_a_task_carries_its_traceparent_and_none_without_one() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    task = _task(traceparent=traceparent)

    for event in (
        Event.status_of(task),
        Event.progress_of(task),
        Event.custom_of(task, "thing", {"n": 1}),
    ):
        assert event.to_json()["trace"] == traceparent
        assert Event.from_json(event.to_json()).trace == traceparent
    assert "trace" not in Event.status_of(_task()).to_json()


def test_an_event_whose_trace_is_not_a_string_is_refused() -> None:
    data = Event.status_of(_task()).to_json()

    with pytest.raises(EventDecodeError, match="trace"):
        Event.from_json({**data, "trace": 42})
