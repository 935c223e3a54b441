"""The user's tasks on the worker side: custom events, typed failures, per-call options, and
tasks whose type no running worker serves, against the real Redis."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
import redis
from rq.job import Job

from taskcore.config import Config
from taskcore.event import Event, EventKind
from taskcore.message import Submitted
from taskcore.status import Status
from taskcore.store import TaskStore
from worker_container import registry
from worker_container.context import EMIT_BURST, EMIT_RATE, EmitError, TaskContext
from worker_container.execution import TaskWorker
from worker_container.job import enqueue
from worker_container.relay import Relay
from worker_container.services import Services
from worker_container.sweeper import Sweeper

from .helpers import default_queues, logged_events, make_task

pytestmark = pytest.mark.integration


def relayed(svc: Services, store: TaskStore, task_type: str, **changes: Any) -> str:
    """A task accepted as the edge would, then relayed."""
    payload = changes.pop("payload", None)
    task = make_task(task_type, payload, **changes)
    store.create(task)
    outcome = Relay(svc).relay(Submitted.of(task).encode())
    assert outcome.dead_reason is None
    return task.task_id


def run_jobs(svc: Services) -> None:
    TaskWorker(default_queues(svc), svc).work(burst=True)


def test_an_async_task_streams_its_own_events_in_order_between_running_and_the_end(
    svc: Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task_id = relayed(svc, store, "demo.stream", payload={"text": "one two three", "interval_s": 0})

    run_jobs(svc)

    events = logged_events(redis_client, config.names, task_id)
    custom = [e for e in events if e.kind is EventKind.CUSTOM]
    assert [(e.name, e.data) for e in custom] == [
        ("token", {"text": "one", "index": 0}),
        ("token", {"text": "two", "index": 1}),
        ("token", {"text": "three", "index": 2}),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[1].status is Status.RUNNING
    assert events[-1].status is Status.SUCCEEDED
    assert all(e.status is Status.RUNNING for e in custom)
    record = store.get(task_id)
    assert record is not None
    assert record.result == {"words": 3}


def test_a_task_failed_without_retry_ends_at_once_though_attempts_are_left(
    svc: Services, store: TaskStore
) -> None:
    task_id = relayed(
        svc, store, "demo.sleep", payload={"seconds": 0, "steps": 1, "fail_rate": 1}, max_attempts=3
    )

    run_jobs(svc)

    record = store.get(task_id)
    assert record is not None
    assert (record.status, record.attempt) == (Status.FAILED, 1)
    assert record.error is not None
    assert record.error.type == "simulated"


def test_the_attempts_a_call_asks_for_are_the_ones_rq_retries(
    svc: Services, store: TaskStore
) -> None:
    # demo.flaky declares 3 attempts: RQ may retry twice; this call asks for 5: four times.
    default = relayed(svc, store, "demo.flaky")
    asked = relayed(svc, store, "demo.flaky", max_attempts=5)

    assert Job.fetch(default, connection=svc.redis).retries_left == 2
    assert Job.fetch(asked, connection=svc.redis).retries_left == 4


def test_a_task_no_worker_serves_waits_queued_saying_why_and_is_enqueued_when_one_comes(
    svc: Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    redis_client.delete(config.names.served("demo.noop"))

    task_id = relayed(svc, store, "demo.noop")

    record = store.get(task_id)
    assert record is not None
    assert record.status is Status.QUEUED
    assert record.waiting is not None
    assert "'demo.noop'" in record.waiting
    assert record.to_public()["waiting"] == record.waiting
    assert logged_events(redis_client, config.names, task_id)[-1].waiting == record.waiting
    assert sum(len(q) for q in default_queues(svc)) == 0
    assert registry.is_parked(redis_client, config.names, "demo.noop", task_id)

    sweeper = Sweeper(svc, lambda message: None)
    assert sweeper.sweep().unparked == 0  # still nobody serves it: it keeps waiting

    registry.Advertiser(redis_client, config.names, ["demo.noop"]).advertise()
    assert sweeper.sweep().unparked == 1
    run_jobs(svc)

    done = store.get(task_id)
    assert done is not None
    assert done.status is Status.SUCCEEDED
    assert done.waiting is None
    assert not registry.is_parked(redis_client, config.names, "demo.noop", task_id)


def test_a_task_no_worker_serves_is_failed_and_dead_lettered_at_its_queue_timeout(
    svc: Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    redis_client.delete(config.names.served("demo.noop"))
    long_ago = time.time() - 7200
    task_id = relayed(
        svc,
        store,
        "demo.noop",
        queue_timeout_s=3600,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(long_ago)),
    )
    dead: list[tuple[Submitted, str]] = []

    repairs = Sweeper(svc, lambda message: None, lambda m, reason: dead.append((m, reason))).sweep()

    assert repairs.unserved == 1
    record = store.get(task_id)
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error is not None
    assert record.error.type == "no_worker"
    assert [(m.task_id, reason.split(":")[0]) for m, reason in dead] == [(task_id, "no_worker")]
    assert not registry.is_parked(redis_client, config.names, "demo.noop", task_id)
    assert logged_events(redis_client, config.names, task_id)[-1].status is Status.FAILED


def test_a_job_that_reaches_a_worker_without_its_type_leaves_the_task_waiting(
    svc: Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task_id = relayed(svc, store, "demo.noop")
    without = dict(svc.definitions)
    del without["demo.noop"]
    object.__setattr__(svc, "definitions", without)  # a worker started without the module

    run_jobs(svc)

    record = store.get(task_id)
    assert record is not None
    assert record.status is Status.PENDING  # queued (an event), never started
    assert record.attempt == 0
    assert registry.is_parked(redis_client, config.names, "demo.noop", task_id)


def test_emit_refuses_bad_names_and_oversized_data_and_throttles_a_flood(
    svc: Services,
    store: TaskStore,
    config: Config,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = make_task("demo.stream", status=Status.RUNNING, attempt=1)
    store.create(task)
    # A clock that moves only when the context sleeps, so the count of waits is exact.
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr("worker_container.context.time.monotonic", lambda: now[0])
    monkeypatch.setattr("worker_container.context.time.sleep", sleep)
    ctx = TaskContext(task, svc)
    with pytest.raises(EmitError, match="name"):
        ctx.emit("has space", 1)
    with pytest.raises(EmitError, match="limit"):
        ctx.emit("big", "x" * 20_000)
    with pytest.raises(EmitError, match="not JSON"):
        ctx.emit("odd", {1, 2})

    for n in range(EMIT_BURST + 5):
        ctx.emit("n", n)

    # The burst went at once; each event past it waited its turn at the sustained rate.
    assert slept == pytest.approx([1 / EMIT_RATE] * 5)
    logged = [e.data for e in logged_events(redis_client, config.names, task.task_id)]
    assert logged == list(range(EMIT_BURST + 5))  # and nothing was dropped


@pytest.mark.parametrize("result", [{"x": "a" * 70_000}, {1, 2}, float("nan")])
def test_a_result_that_is_too_large_or_not_json_fails_the_task_without_retry(result: Any) -> None:
    from taskcore.definition import TaskFailed
    from worker_container.job import _check_result

    with pytest.raises(TaskFailed) as failed:
        _check_result(result)
    assert (failed.value.code, failed.value.retry) == ("invalid_result", False)


def test_a_task_left_in_a_queue_whose_workers_are_gone_is_parked_so_its_timeout_applies(
    svc: Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    stale = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3600))
    task = make_task("demo.noop", status=Status.QUEUED, updated_at=stale)
    store.create(task)
    assert enqueue(svc, task)  # while a worker served its type
    task_id = task.task_id
    redis_client.delete(config.names.served("demo.noop"))  # its last worker went away

    repairs = Sweeper(svc, lambda message: None).sweep()

    assert repairs.parked == 1
    assert registry.is_parked(redis_client, config.names, "demo.noop", task_id)
    assert sum(len(q) for q in default_queues(svc)) == 0


def test_nothing_is_appended_to_a_log_after_the_tasks_end(
    svc: Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task = make_task("demo.noop", status=Status.SUCCEEDED, attempt=1)
    ended = svc.events.append(Event.status_of(task), task)
    assert ended is not None

    running = replace(task, status=Status.RUNNING)
    late = svc.events.append(Event.progress_of(running), running)
    late_custom = svc.events.append(Event.custom_of(running, "log", "too late"), running)

    assert (late, late_custom) == (None, None)
    assert logged_events(redis_client, config.names, task.task_id) == [ended]
