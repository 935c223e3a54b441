"""The sweeper's repairs, against the real Redis, RQ and RabbitMQ (DynamoDB by moto in-process)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
import redis
from prometheus_client import REGISTRY
from rq.job import Job, JobStatus

from taskcore.clock import iso
from taskcore.config import Config
from taskcore.message import SUBMITTED_TYPE, Submitted
from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Task
from taskcore.trace import Trace
from tests.conftest import drain
from worker_container.execution import TaskWorker
from worker_container.job import run_task
from worker_container.lease import Lease
from worker_container.registry import Advertiser
from worker_container.relay import Relay
from worker_container.services import Services
from worker_container.sweeper import Sweeper, SweeperService

from .helpers import default_queues, logged_events, make_task

pytestmark = pytest.mark.integration

LONG_AGO = iso(time.time() - 3600)


@pytest.fixture
def fast(config: Config) -> Config:
    """Thresholds short enough to test: stale after 60 s, silent workers lost after 1 s."""
    return dataclasses.replace(config, heartbeat_ttl_s=1, sweep_interval_s=1)


@pytest.fixture
def swept(aws: Any, redis_client: redis.Redis, fast: Config) -> Services:
    built = Services.build(fast, load_tasks=True)
    Advertiser(built.redis, fast.names, built.definitions).advertise()
    return built


@pytest.fixture
def published() -> list[Submitted]:
    return []


@pytest.fixture
def sweeper(swept: Services, published: list[Submitted]) -> Sweeper:
    return Sweeper(swept, published.append)


def stored(store: TaskStore, **changes: Any) -> Task:
    task = make_task(**{"updated_at": LONG_AGO, **changes})
    store.create(task)
    return task


def test_a_pending_task_left_behind_is_published_again_once_per_period(
    sweeper: Sweeper, store: TaskStore, published: list[Submitted]
) -> None:
    old = stored(store)
    stored(store, updated_at=iso(time.time()))  # just accepted: the relay has it in hand
    counted = ("taskcast_sweeper_repairs_total", {"repair": "republished"})
    before = REGISTRY.get_sample_value(*counted) or 0

    assert sweeper.sweep().republished == 1
    assert sweeper.sweep().republished == 0  # not again until another period has passed

    assert published == [Submitted(old.task_id, old.type, old.trace_id)]
    assert REGISTRY.get_sample_value(*counted) == before + 1  # in its metrics too


def test_a_queued_task_whose_job_redis_lost_is_enqueued_again_and_runs_once(
    sweeper: Sweeper, store: TaskStore, swept: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = stored(store, status=Status.QUEUED, payload={"seconds": 0, "steps": 1, "fail_rate": 0})

    assert sweeper.sweep().requeued == 1
    assert sweeper.sweep().requeued == 0  # its job exists now

    assert Job.fetch(task.task_id, connection=swept.redis).get_status() is JobStatus.QUEUED
    run_task(swept, task.task_id, task.type)
    final = store.get(task.task_id)
    assert final is not None
    assert (final.status, final.attempt) == (Status.SUCCEEDED, 1)


def test_a_queued_task_whose_job_failed_before_claiming_it_is_enqueued_again(
    sweeper: Sweeper, store: TaskStore, swept: Services
) -> None:
    task = stored(store, status=Status.QUEUED)
    job = swept.queue_of(task).enqueue(run_task, task.task_id, task.type, job_id=task.task_id)
    job.set_status(JobStatus.FAILED)  # e.g. DynamoDB was down when the job tried to claim

    assert sweeper.sweep().requeued == 1
    assert Job.fetch(task.task_id, connection=swept.redis).get_status() is JobStatus.QUEUED


def test_a_retrying_task_whose_scheduled_job_was_lost_is_scheduled_for_its_retry_time(
    sweeper: Sweeper, store: TaskStore, swept: Services
) -> None:
    retry_at = time.time() + 300
    task = stored(store, status=Status.RETRYING, attempt=1, retry_at=iso(retry_at))

    assert sweeper.sweep().requeued == 1

    job = Job.fetch(task.task_id, connection=swept.redis)
    assert job.get_status() is JobStatus.SCHEDULED
    registry = swept.queue_of(task).scheduled_job_registry
    assert abs(registry.get_scheduled_time(task.task_id).timestamp() - retry_at) < 1.5


def test_a_scheduled_retry_long_overdue_is_moved_to_its_queue_when_no_scheduler_runs(
    sweeper: Sweeper, store: TaskStore, swept: Services
) -> None:
    """The worker whose RQ scheduler held the lock was SIGKILLed: nobody enqueues due jobs."""
    task = stored(store, status=Status.RETRYING, attempt=1, retry_at=LONG_AGO)
    queue = swept.queue_of(task)
    long_ago = datetime.fromtimestamp(time.time() - 3600, UTC)
    queue.enqueue_at(long_ago, run_task, task.task_id, task.type, job_id=task.task_id)
    due_soon = stored(store, status=Status.RETRYING, attempt=1, retry_at=iso(time.time() + 60))
    queue.enqueue_at(
        datetime.fromtimestamp(time.time() + 60, UTC),
        run_task,
        due_soon.task_id,
        due_soon.type,
        job_id=due_soon.task_id,
    )

    assert sweeper.sweep().promoted == 1

    assert queue.job_ids == [task.task_id]
    assert Job.fetch(task.task_id, connection=swept.redis).get_status() is JobStatus.QUEUED
    assert queue.scheduled_job_registry.get_job_ids() == [due_soon.task_id]


def test_a_running_task_whose_worker_is_gone_is_retried_after_a_whole_silent_period(
    sweeper: Sweeper,
    store: TaskStore,
    swept: Services,
    fast: Config,
    redis_client: redis.Redis,
) -> None:
    task = stored(store, type="demo.flaky", status=Status.RUNNING, attempt=1, max_attempts=3)

    assert sweeper.sweep().recovered == 0  # silent, but not yet for a whole heartbeat TTL
    time.sleep(fast.heartbeat_ttl_s + 0.1)
    assert sweeper.sweep().recovered == 1

    moved = store.get(task.task_id)
    assert moved is not None
    assert moved.status is Status.RETRYING
    assert moved.error is not None
    assert moved.error.type == "lost"
    assert moved.retry_at is not None
    (event,) = logged_events(redis_client, fast.names, task.task_id)
    assert (event.status, event.retry_at) == (Status.RETRYING, moved.retry_at)
    job = Job.fetch(task.task_id, connection=swept.redis)
    assert job.get_status() is JobStatus.SCHEDULED
    assert job.retries_left == 1  # attempt 2 is scheduled; one more may follow it


def test_a_running_task_whose_worker_is_gone_on_its_last_attempt_fails_as_lost(
    sweeper: Sweeper, store: TaskStore, fast: Config
) -> None:
    task = stored(store, status=Status.RUNNING, attempt=1, max_attempts=1)

    sweeper.sweep()
    time.sleep(fast.heartbeat_ttl_s + 0.1)
    assert sweeper.sweep().lost == 1

    failed = store.get(task.task_id)
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.type == "lost"


def test_a_running_task_with_a_heartbeat_is_left_alone_however_long_it_runs(
    sweeper: Sweeper, store: TaskStore, swept: Services, fast: Config
) -> None:
    task = stored(store, status=Status.RUNNING, attempt=1)
    swept.redis.set(fast.names.heartbeat(task.task_id), 1, ex=60)

    sweeper.sweep()
    time.sleep(fast.heartbeat_ttl_s + 0.1)
    repairs = sweeper.sweep()

    assert (repairs.recovered, repairs.lost) == (0, 0)
    still = store.get(task.task_id)
    assert still is not None
    assert still.status is Status.RUNNING


def test_a_heartbeat_that_comes_back_within_its_ttl_saves_the_attempt(
    sweeper: Sweeper, store: TaskStore, swept: Services, fast: Config
) -> None:
    """What a live worker does after Redis lost its keys: it sets its heartbeat again."""
    task = stored(store, status=Status.RUNNING, attempt=1)

    sweeper.sweep()  # silent: the clock starts
    swept.redis.set(fast.names.heartbeat(task.task_id), 1, ex=60)
    time.sleep(fast.heartbeat_ttl_s + 0.1)

    assert sweeper.sweep().recovered == 0


def test_one_lease_holder_at_a_time_and_a_released_lease_is_free_at_once(
    redis_client: redis.Redis,
) -> None:
    first, second = Lease(redis_client, "t:lease", 10), Lease(redis_client, "t:lease", 10)

    assert first.hold()
    assert first.hold()  # renewing
    assert not second.hold()
    first.release()
    assert second.hold()
    assert not first.hold()


async def test_the_service_publishes_a_stranded_task_to_the_broker(
    swept: Services, store: TaskStore, fast: Config, amqp: aio_pika.abc.AbstractChannel
) -> None:
    traceparent = Trace.new().format()
    task = stored(store, traceparent=traceparent)
    stop = asyncio.Event()
    service = asyncio.create_task(SweeperService(fast, swept).run(stop))
    try:
        messages = await drain(await amqp.get_queue(fast.names.tasks_queue), timeout_s=10)
    finally:
        stop.set()
        await asyncio.wait_for(service, 10)

    assert [Submitted.decode(m.body, m.headers) for m in messages] == [
        Submitted(task.task_id, task.type, task.trace_id, traceparent)
    ]
    assert messages[0].message_id == task.task_id
    assert messages[0].type == SUBMITTED_TYPE
    assert messages[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT


def test_a_pending_task_whose_job_failed_before_it_could_start_is_run_by_a_new_job(
    sweeper: Sweeper,
    store: TaskStore,
    swept: Services,
    published: list[Submitted],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record stays ``pending`` until an attempt starts; the dead job must not block the
    republished message's enqueue (RQ keeps a failed job's hash, and the enqueue is unique)."""
    task = stored(store, task_type="demo.noop")
    assert Relay(swept).relay(Submitted.of(task).encode()).dead_reason is None
    start = swept.lifecycle.start

    def throttled(*args: Any, **kwargs: Any) -> Task:
        monkeypatch.setattr(swept.lifecycle, "start", start)  # only the first start fails
        raise RuntimeError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(swept.lifecycle, "start", throttled)
    TaskWorker(default_queues(swept), swept).work(burst=True)
    assert Job.fetch(task.task_id, connection=swept.redis).get_status() is JobStatus.FAILED

    assert sweeper.sweep().republished == 1
    (message,) = published
    assert Relay(swept).relay(message.encode()).dead_reason is None
    TaskWorker(default_queues(swept), swept).work(burst=True)

    final = store.get(task.task_id)
    assert final is not None
    assert (final.status, final.attempt) == (Status.SUCCEEDED, 1)


def test_a_record_an_older_writer_ended_is_skipped_its_key_mended_and_the_pass_goes_on(
    sweeper: Sweeper, store: TaskStore, swept: Services, published: list[Submitted], aws: Any
) -> None:
    stranded = stored(store)  # a pending task the same pass must still republish
    ended = make_task(status=Status.RUNNING, attempt=1, updated_at=LONG_AGO)
    item = ended.to_item()
    item["status"] = {"S": "cancelled"}  # as a writer before the index left it: key untouched
    aws.put_item(TableName=swept.config.names.tasks_table, Item=item)

    repairs = sweeper.sweep()

    assert repairs.republished == 1
    assert [m.task_id for m in published] == [stranded.task_id]
    assert list(store.iter_by_status(Status.RUNNING)) == []  # mended: out of the index
