from hypothesis import given
from hypothesis import strategies as st

from taskcore.clock import iso
from taskcore.status import Status
from taskcore.task import Progress, Task, TaskError
from taskcore.tasktype import Priority
from taskcore.trace import Trace

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    status=st.sampled_from(list(Status)),
    priority=st.sampled_from(list(Priority)),
    attempt=st.integers(0, 10),
    percent=st.floats(0, 100),
    payload=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    result=json_values,
    error=st.none() | st.builds(TaskError, st.text(max_size=10), st.text(max_size=30)),
    started=st.none() | st.just("2026-11-23T10:00:01.000Z"),
    traceparent=st.none() | st.builds(lambda: Trace.new().format()),
)
def test_task_survives_its_dynamodb_item_form(
    status: Status,
    priority: Priority,
    attempt: int,
    percent: float,
    payload: dict[str, object],
    result: object,
    error: TaskError | None,
    started: str | None,
    traceparent: str | None,
) -> None:
    task = Task(
        task_id="id",
        owner="alice",
        type="demo.sleep",
        payload=payload,
        status=status,
        priority=priority,
        max_attempts=3,
        timeout_s=60,
        created_at="2026-11-23T10:00:00.000Z",
        updated_at="2026-11-23T10:00:00.000Z",
        expires_at=1_900_000_000,
        trace_id="trace",
        attempt=attempt,
        progress=Progress(percent, "m"),
        result=result,
        error=error,
        started_at=started,
        traceparent=traceparent,
    )
    assert Task.from_item(task.to_item()) == task


def test_public_form_hides_the_owner_and_shows_result_only_on_success() -> None:
    task = _pending(status=Status.RUNNING, result={"partial": True})
    public = task.to_public()
    assert "owner" not in public
    assert "result" not in public
    assert task.with_status(Status.SUCCEEDED).to_public()["result"] == {"partial": True}


def test_timestamps_sort_in_time_order() -> None:
    stamps = [iso(t) for t in (1.0, 1.001, 9.5, 10.0, 100.25, 1_800_000_000.999)]
    assert stamps == sorted(stamps)
    assert iso(0.5) == "1970-01-01T00:00:00.500Z"


def _pending(**changes: object) -> Task:
    fields: dict[str, object] = dict(
        task_id="id",
        owner="alice",
        type="demo.noop",
        payload={},
        status=Status.PENDING,
        priority=Priority.NORMAL,
        max_attempts=1,
        timeout_s=30,
        created_at="c",
        updated_at="u",
        expires_at=1,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )
    return Task(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_record_written_before_traceparent_was_kept_still_loads_without_one() -> None:
    old = _pending().to_item()
    assert "traceparent" not in old

    task = Task.from_item(old)

    assert task.traceparent is None
    assert "traceparent" not in task.to_public()


def test_the_traceparent_is_kept_and_shown_to_clients() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    task = _pending(traceparent=traceparent)

    assert task.to_item()["traceparent"] == {"S": traceparent}
    assert task.to_public()["traceparent"] == traceparent
