"""What a task costs the durable store: counted DynamoDB calls on the path of a real task.

The edge's create is one call; the relay and the worker add one conditional write when an
attempt starts and one when it ends, whatever progress the task reports in between (progress is
written to the record at most every ``CHECKPOINT_S``), and nothing reads the record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from taskcore.config import Config
from taskcore.message import Submitted
from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Progress
from worker_container.execution import TaskWorker
from worker_container.lifecycle import Lifecycle
from worker_container.relay import Relay
from worker_container.services import Services

from .helpers import default_queues, logged_events, make_task

pytestmark = pytest.mark.integration


@pytest.fixture
def calls(svc: Services) -> Iterator[Counter[str]]:
    """The DynamoDB operations the worker side's client makes, counted by name."""
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    events = svc.store._client.meta.events  # the one client the relay and workers use
    events.register("before-call.dynamodb.*", count)
    yield counted
    events.unregister("before-call.dynamodb.*", count)


def _run(svc: Services, store: TaskStore, payload: dict[str, Any]) -> str:
    task = make_task("demo.sleep", payload)
    store.create(task)  # the edge's one call
    assert Relay(svc).relay(Submitted.of(task).encode()).dead_reason is None
    TaskWorker(default_queues(svc), svc).work(burst=True)
    return task.task_id


def test_a_task_costs_two_writes_after_its_create_and_no_read(
    svc: Services, store: TaskStore, calls: Counter[str]
) -> None:
    task_id = _run(svc, store, {"seconds": 0, "steps": 1, "fail_rate": 0})

    final = store.get(task_id)
    assert final is not None
    assert final.status is Status.SUCCEEDED
    assert calls == Counter({"UpdateItem": 2})  # start, end


def test_progress_ticks_cost_no_store_call_within_the_checkpoint_interval(
    svc: Services, store: TaskStore, calls: Counter[str], config: Config, redis_client: redis.Redis
) -> None:
    task_id = _run(svc, store, {"seconds": 0, "steps": 50, "fail_rate": 0})

    progress = [
        e for e in logged_events(redis_client, config.names, task_id) if e.kind == "progress"
    ]
    assert len(progress) == 50  # every tick reached the watchers
    assert calls == Counter({"UpdateItem": 2})


def test_the_end_writes_the_progress_that_only_went_to_the_log(
    svc: Services, store: TaskStore, calls: Counter[str]
) -> None:
    task_id = _run(svc, store, {"seconds": 0, "steps": 4, "fail_rate": 1})

    final = store.get(task_id)
    assert final is not None
    assert final.status is Status.FAILED  # its simulated failure is final (TaskFailed)
    assert final.progress == Progress(100.0, "step 4 of 4")
    assert calls == Counter({"UpdateItem": 2})


def test_progress_is_checkpointed_to_the_record_once_the_interval_has_passed(
    svc: Services, store: TaskStore
) -> None:
    now = [0.0]
    lifecycle = Lifecycle(store, svc.events, checkpoint_s=5, clock=lambda: now[0])
    task = make_task("demo.sleep")
    store.create(task)
    running = lifecycle.start(task.task_id, task.type)

    running = lifecycle.progress(running, Progress(10.0, "early"))
    record = store.get(task.task_id)
    assert record is not None
    assert record.progress.percent == 0.0  # not yet: within the interval
    now[0] = 5.0
    running = lifecycle.progress(running, Progress(20.0, "later"))
    record = store.get(task.task_id)
    assert record is not None
    assert record.progress == Progress(20.0, "later")
    now[0] = 6.0
    running = lifecycle.progress(running, Progress(30.0, "again"))
    record = store.get(task.task_id)
    assert record is not None
    assert record.progress.percent == 20.0


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (Progress(10.0, "working"), Progress(20.0, "working")),
        (Progress(50.0, "a"), Progress(50.0, "b")),
    ],
    ids=["same-message", "same-percent"],
)
def test_a_checkpoint_writes_the_whole_progress_whatever_the_log_had_of_it(
    svc: Services,
    store: TaskStore,
    config: Config,
    redis_client: redis.Redis,
    first: Progress,
    then: Progress,
) -> None:
    now = [0.0]
    lifecycle = Lifecycle(store, svc.events, checkpoint_s=5, clock=lambda: now[0])
    task = make_task("demo.sleep")
    store.create(task)
    running = lifecycle.start(task.task_id, task.type)
    running = lifecycle.progress(running, first)  # the log only
    now[0] = 5.0
    running = lifecycle.progress(running, then)  # the log and, checkpointed, the record

    record = store.get(task.task_id)
    assert record is not None
    assert record.progress == then
    logged = [e.progress for e in logged_events(redis_client, config.names, task.task_id)]
    assert logged[-2:] == [first, then]
