"""Cancellation at every status, against the real Redis and RQ (DynamoDB by moto in-process)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from rq.job import Job

from taskcore.config import Config
from taskcore.errors import ConditionLost
from taskcore.message import Submitted
from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Task
from worker_container import services
from worker_container.canceller import Canceller, Pending
from worker_container.execution import TaskWorker
from worker_container.job import run_task
from worker_container.relay import Relay

from .helpers import default_queues, logged_events, make_task

pytestmark = pytest.mark.integration


def created(store: TaskStore, *path: Status, **payload: Any) -> Task:
    """A task moved along ``path`` from pending, as the relay and a worker would have."""
    task = make_task(payload=payload or None)
    store.create(task)
    for status in path:
        task = store.transition(task, status, attempt=task.attempt + (status is Status.RUNNING))
    return task


@pytest.mark.parametrize(
    "path",
    [(), (Status.QUEUED,), (Status.QUEUED, Status.RUNNING, Status.RETRYING)],
    ids=["pending", "queued", "retrying"],
)
def test_a_waiting_task_is_cancelled_at_once_with_its_event(
    svc: services.Services,
    store: TaskStore,
    config: Config,
    redis_client: redis.Redis,
    path: tuple[Status, ...],
) -> None:
    task = created(store, *path)

    assert Canceller(svc).request(task.task_id) is None

    cancelled = store.get(task.task_id)
    assert cancelled is not None
    assert cancelled.status is Status.CANCELLED
    (event,) = logged_events(redis_client, config.names, task.task_id)
    assert event.status is Status.CANCELLED


def test_a_cancelled_queued_task_loses_its_job_and_a_late_job_does_nothing(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task = make_task()
    store.create(task)
    Relay(svc).relay(Submitted.of(task).encode())
    assert Job.exists(task.task_id, connection=svc.redis)

    Canceller(svc).request(task.task_id)
    assert not Job.exists(task.task_id, connection=svc.redis)
    run_task(
        svc, task.task_id, task.type
    )  # a job that was already taken runs anyway: it must not start the task

    final = store.get(task.task_id)
    assert final is not None
    assert final.status is Status.CANCELLED
    assert [e.status for e in logged_events(redis_client, config.names, task.task_id)] == [
        Status.QUEUED,
        Status.CANCELLED,
    ]


def test_a_task_whose_cancel_was_recorded_is_cancelled_by_its_job_never_started(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    """The submit message overtook the cancel message: the record's request decides. The relay
    reads no record, so it queues the task; the job's start is refused and it cancels."""
    task = make_task()
    store.create(task)
    store.request_cancel(task.task_id)

    Relay(svc).relay(Submitted.of(task).encode())
    TaskWorker(default_queues(svc), svc).work(burst=True)

    final = store.get(task.task_id)
    assert final is not None
    assert (final.status, final.attempt) == (Status.CANCELLED, 0)
    assert [e.status for e in logged_events(redis_client, config.names, task.task_id)] == [
        Status.QUEUED,
        Status.CANCELLED,
    ]


def test_a_message_without_its_record_is_relayed_from_the_store_and_a_cancel_there_stops_it(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    """A message of an earlier version carries no record: the relay reads it, and cancels."""
    task = make_task()
    store.create(task)
    store.request_cancel(task.task_id)

    Relay(svc).relay(Submitted(task.task_id, task.type, task.trace_id).encode())

    final = store.get(task.task_id)
    assert final is not None
    assert final.status is Status.CANCELLED
    assert not Job.exists(task.task_id, connection=svc.redis)
    assert [e.status for e in logged_events(redis_client, config.names, task.task_id)] == [
        Status.CANCELLED
    ]


@pytest.mark.parametrize(
    "path", [(Status.QUEUED,), (Status.QUEUED, Status.RUNNING, Status.RETRYING)]
)
def test_a_job_whose_task_has_a_cancel_recorded_cancels_it_and_never_starts_it(
    svc: services.Services, store: TaskStore, path: tuple[Status, ...]
) -> None:
    task = created(store, *path)
    store.request_cancel(task.task_id)

    run_task(svc, task.task_id, task.type)

    final = store.get(task.task_id)
    assert final is not None
    assert (final.status, final.attempt) == (Status.CANCELLED, task.attempt)


def test_a_cancel_cannot_be_recorded_on_an_ended_task(store: TaskStore) -> None:
    task = created(store, Status.QUEUED, Status.RUNNING, Status.SUCCEEDED)
    with pytest.raises(ConditionLost):
        store.request_cancel(task.task_id)


def test_a_submit_that_arrives_after_the_cancel_is_acked_and_never_runs(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task = make_task()
    store.create(task)
    Canceller(svc).request(task.task_id)

    assert Relay(svc).relay(Submitted.of(task).encode()).dead_reason is None
    TaskWorker(default_queues(svc), svc).work(burst=True)  # the job the relay made
    final = store.get(task.task_id)
    assert final is not None
    assert (final.status, final.attempt) == (Status.CANCELLED, 0)
    # The log refused the late ``queued``: the task never steps back from its end.
    assert [e.status for e in logged_events(redis_client, config.names, task.task_id)] == [
        Status.CANCELLED
    ]


def test_cancelling_an_ended_task_is_a_no_op(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task = created(store, Status.QUEUED, Status.RUNNING, Status.SUCCEEDED)

    assert Canceller(svc).request(task.task_id) is None

    assert store.get(task.task_id) == task
    assert logged_events(redis_client, config.names, task.task_id) == []


def test_a_running_cooperative_handler_stops_at_its_next_step(
    svc: services.Services, store: TaskStore, config: Config
) -> None:
    task = created(store, Status.QUEUED, seconds=30, steps=100, fail_rate=0)
    running = threading.Thread(target=run_task, args=(svc, task.task_id, task.type))
    running.start()
    try:
        while (
            current := store.get(task.task_id)
        ) is not None and current.status is not Status.RUNNING:
            running.join(0.02)
        pending = Canceller(svc).request(task.task_id)
        assert pending == Pending(attempt=1)
        running.join(10)
        assert not running.is_alive(), "the handler did not stop"
    finally:
        svc.redis.set(config.names.cancel_flag(task.task_id), 1)  # never leave the thread behind
        running.join(30)
    final = store.get(task.task_id)
    assert final is not None
    assert final.status is Status.CANCELLED
    assert final.progress.percent < 100

    Canceller(svc).enforce(task.task_id, pending)  # after the grace period: nothing left to do
    assert store.get(task.task_id) == final


def test_a_cancel_is_not_lost_when_the_running_attempt_fails_into_a_retry(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task = created(store, Status.QUEUED, Status.RUNNING)
    pending = Canceller(svc).request(task.task_id)
    assert pending == Pending(attempt=1)
    # Before it saw the flag, the attempt failed and a retry was scheduled.
    store.transition(store.get(task.task_id), Status.RETRYING)  # type: ignore[arg-type]

    Canceller(svc).enforce(task.task_id, pending)  # after the grace period

    final = store.get(task.task_id)
    assert final is not None
    assert final.status is Status.CANCELLED
    assert logged_events(redis_client, config.names, task.task_id)[-1].status is Status.CANCELLED
