"""The decision after an attempt ends or is lost: a pure function, tested without servers."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from taskcore import backoff
from taskcore.clock import now_iso
from taskcore.status import TRANSITIONS, Status
from taskcore.task import Progress, Task, TaskError
from taskcore.tasktype import Priority
from worker_container.decision import AttemptEnd, Ending, decide


def running(attempt: int = 1, max_attempts: int = 3, **changes: object) -> Task:
    now = now_iso()
    task = Task(
        task_id="00000000-0000-4000-8000-000000000000",
        owner="dev",
        type="demo.sleep",
        payload={},
        status=Status.RUNNING,
        priority=Priority.NORMAL,
        max_attempts=max_attempts,
        timeout_s=60,
        created_at=now,
        updated_at=now,
        expires_at=0,
        trace_id="0" * 32,
        attempt=attempt,
        retry_base_s=2,
        retry_cap_s=60,
    )
    return replace(task, **changes)  # type: ignore[arg-type]


def test_a_success_is_final_with_its_result_and_full_progress() -> None:
    decision = decide(running(), AttemptEnd(Ending.SUCCEEDED, result={"n": 1}))
    assert (decision.status, decision.result) == (Status.SUCCEEDED, {"n": 1})
    assert decision.progress == Progress(100.0, "done")


def test_a_success_stands_even_if_a_cancel_came_too_late() -> None:
    task = running(cancel_requested_at=now_iso())
    end = AttemptEnd(Ending.SUCCEEDED, cancel_requested=True)
    assert decide(task, end).status is Status.SUCCEEDED


def test_a_failed_attempt_with_attempts_left_is_retried_after_the_types_backoff() -> None:
    end = AttemptEnd.failed("ValueError", "boom")
    decision = decide(running(attempt=2), end, random.Random(7))
    assert decision.status is Status.RETRYING
    assert decision.error == TaskError("ValueError", "boom")
    assert decision.delay_s == backoff.delay(2, 2, 60, random.Random(7))


def test_the_last_attempts_failure_is_final() -> None:
    decision = decide(running(attempt=3), AttemptEnd.failed("ValueError", "boom"))
    assert (decision.status, decision.delay_s) == (Status.FAILED, None)
    assert decision.dead_letter is None


def test_a_failure_the_task_declared_final_is_not_retried() -> None:
    end = AttemptEnd.failed("bad_input", "no", retryable=False)
    assert decide(running(attempt=1), end).status is Status.FAILED


def test_a_timeout_is_a_retryable_failure_named_timeout() -> None:
    decision = decide(running(attempt=1), AttemptEnd(Ending.TIMED_OUT))
    assert decision.status is Status.RETRYING
    assert decision.error is not None
    assert decision.error.type == "timeout"


def test_a_lost_worker_is_retried_then_failed_as_lost() -> None:
    retried = decide(running(attempt=1), AttemptEnd(Ending.LOST))
    failed = decide(running(attempt=3), AttemptEnd(Ending.LOST))
    assert retried.status is Status.RETRYING
    assert failed.status is Status.FAILED
    assert retried.error is not None
    assert retried.error.type == "lost"
    assert failed.error is not None
    assert failed.error.type == "lost"


def test_a_requested_cancel_turns_any_unsuccessful_end_into_cancelled() -> None:
    for ending in (Ending.FAILED, Ending.TIMED_OUT, Ending.LOST, Ending.CANCELLED):
        by_flag = decide(running(), AttemptEnd(ending, cancel_requested=True))
        by_record = decide(running(cancel_requested_at=now_iso()), AttemptEnd(ending))
        assert by_flag.status is by_record.status is Status.CANCELLED, ending


def test_a_task_no_worker_served_in_time_fails_and_is_dead_lettered() -> None:
    queued = running(attempt=0, status=Status.QUEUED)
    decision = decide(queued, AttemptEnd(Ending.UNSERVED))
    assert decision.status is Status.FAILED
    assert decision.error is not None
    assert decision.error.type == "no_worker"
    assert decision.dead_letter is not None
    assert decision.dead_letter.startswith("no_worker")


def test_a_long_error_message_is_cut() -> None:
    end = AttemptEnd.failed("E", "x" * 10_000)
    assert end.error is not None
    assert len(end.error.message) == 2000


@given(
    attempt=st.integers(1, 10),
    max_attempts=st.integers(1, 10),
    ending=st.sampled_from(list(Ending)),
    retryable=st.booleans(),
    cancel=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_every_decision_is_a_transition_the_lifecycle_allows_with_what_it_needs(
    attempt: int, max_attempts: int, ending: Ending, retryable: bool, cancel: bool, seed: int
) -> None:
    task = running(attempt=min(attempt, max_attempts), max_attempts=max_attempts)
    end = AttemptEnd(ending, retryable=retryable, cancel_requested=cancel)
    decision = decide(task, end, random.Random(seed))
    assert decision.status in TRANSITIONS[Status.RUNNING]
    if decision.status is Status.RETRYING:
        assert task.attempt < task.max_attempts
        assert retryable
        assert decision.delay_s is not None
        assert 1 <= decision.delay_s <= 90  # the cap, 60, times 1.5
    else:
        assert decision.delay_s is None
    if decision.status is Status.FAILED:
        assert decision.error is not None
