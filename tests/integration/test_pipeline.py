"""Relay and worker against the real RabbitMQ and Redis (DynamoDB by moto in this process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aio_pika
import pytest
import redis
from rq import Queue

from taskcore.clock import iso
from taskcore.config import Config
from taskcore.event import EventKind
from taskcore.message import REASON_HEADER, Submitted
from taskcore.status import Status
from taskcore.store import TaskStore
from tests.conftest import drain
from worker_container import services
from worker_container.canceller import Canceller
from worker_container.execution import TaskWorker
from worker_container.relay import Relay, RelayService

from .helpers import default_queues, logged_events, make_task

pytestmark = pytest.mark.integration


@pytest.fixture
async def relay(
    svc: services.Services, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> AsyncIterator[None]:
    """The relay consuming this test's queue for the length of the test."""
    stop = asyncio.Event()
    running = asyncio.create_task(RelayService(config, Relay(svc), Canceller(svc)).run(stop))
    yield
    stop.set()
    await asyncio.wait_for(running, 10)


async def publish(
    channel: aio_pika.abc.AbstractChannel,
    config: Config,
    body: bytes,
    message_id: str,
    routing_key: str = "task.submitted.demo.sleep",
) -> None:
    exchange = await channel.get_exchange(config.names.exchange)
    await exchange.publish(aio_pika.Message(body, message_id=message_id), routing_key=routing_key)


async def until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def run_jobs(svc: services.Services) -> None:
    """Drain the RQ queues in this process (so moto's in-process mock serves the job)."""
    TaskWorker(default_queues(svc), svc).work(burst=True)


async def submit(
    channel: aio_pika.abc.AbstractChannel,
    config: Config,
    store: TaskStore,
    task_type: str = "demo.sleep",
    payload: dict[str, Any] | None = None,
) -> str:
    task = make_task(task_type, payload)
    store.create(task)
    await publish(
        channel,
        config,
        Submitted.of(task).encode(),
        task.task_id,
        f"task.submitted.{task_type}",
    )
    return task.task_id


def rq_queue_length(svc: services.Services) -> int:
    return sum(len(q) for q in default_queues(svc))


async def test_relay_queues_the_task_emits_the_event_and_acks(
    relay: None,
    amqp: aio_pika.abc.AbstractChannel,
    config: Config,
    store: TaskStore,
    svc: services.Services,
    redis_client: redis.Redis,
) -> None:
    task_id = await submit(amqp, config, store)

    await until(lambda: rq_queue_length(svc) == 1)
    task = store.get(task_id)
    assert task is not None
    # ``queued`` is an event, not a write: the record waits as ``pending`` for its worker.
    assert task.status is Status.PENDING
    (event,) = logged_events(redis_client, config.names, task_id)
    assert (event.seq, event.status, event.kind) == (1, Status.QUEUED, EventKind.STATUS)
    assert event.hops is not None
    assert event.hops["accepted"] == task.created_at
    assert event.hops["queued"] is not None
    assert svc.queue_of(task).job_ids == [task_id]
    queue = await amqp.get_queue(config.names.tasks_queue)
    await until(lambda: queue.declaration_result.message_count == 0)


def test_a_message_delivered_twice_queues_the_task_once(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task = make_task()
    store.create(task)
    body = Submitted.of(task).encode()
    relay = Relay(svc)

    assert relay.relay(body).dead_reason is None
    assert relay.relay(body).dead_reason is None

    assert rq_queue_length(svc) == 1
    assert len(logged_events(redis_client, config.names, task.task_id)) == 1


def test_a_delayed_task_is_queued_now_and_scheduled_to_start_at_its_run_at(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    run_at = time.time() + 120
    task = make_task(run_at=iso(run_at))
    store.create(task)

    Relay(svc).relay(Submitted.of(task).encode())

    assert rq_queue_length(svc) == 0  # not runnable yet
    registry = svc.queue_of(task).scheduled_job_registry
    assert abs(registry.get_scheduled_time(task.task_id).timestamp() - run_at) < 1.5
    (event,) = logged_events(redis_client, config.names, task.task_id)
    assert (event.status, event.run_at) == (Status.QUEUED, iso(run_at))


def test_a_message_that_disagrees_with_its_record_is_dead_lettered_and_the_record_left_alone(
    svc: services.Services, store: TaskStore, config: Config
) -> None:
    task = make_task()
    store.create(task)

    outcome = Relay(svc).relay(Submitted(task.task_id, "demo.noop", task.trace_id).encode())

    assert outcome.dead_reason is not None
    assert "the record 'demo.sleep'" in outcome.dead_reason
    assert store.get(task.task_id) == task
    assert rq_queue_length(svc) == 0


def test_a_redelivery_after_a_crash_before_the_enqueue_still_enqueues(
    svc: services.Services, store: TaskStore, config: Config
) -> None:
    # The relay marked the task queued, then died before enqueueing: the redelivery finishes the job.
    task = make_task(status=Status.QUEUED)
    store.create(task)

    Relay(svc).relay(Submitted.of(task).encode())

    assert svc.queue_of(task).job_ids == [task.task_id]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x00not json", "unparseable"),
        (b'{"v": 1, "task_id": "", "type": "demo.sleep", "trace_id": "t"}', "unparseable"),
        (
            Submitted("9f0c3a1e-0000-4000-8000-00000000dead", "demo.sleep", "t").encode(),
            "no record",
        ),
    ],
)
async def test_what_cannot_be_relayed_is_dead_lettered_with_its_reason(
    relay: None,
    amqp: aio_pika.abc.AbstractChannel,
    config: Config,
    svc: services.Services,
    body: bytes,
    reason: str,
) -> None:
    await publish(amqp, config, body, "poison")

    dead = await drain(await amqp.get_queue(config.names.dead_queue))
    assert len(dead) == 1
    assert dead[0].body == body
    assert str(dead[0].headers[REASON_HEADER]).startswith(reason)
    assert rq_queue_length(svc) == 0


async def test_a_dead_letter_that_nothing_would_take_is_kept_until_the_dead_queue_is_back(
    relay: None,
    amqp: aio_pika.abc.AbstractChannel,
    config: Config,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = config.names
    dead_queue = await amqp.get_queue(names.dead_queue)
    await dead_queue.unbind(names.dead_exchange, "#")  # the dead-letter exchange routes nowhere
    await publish(amqp, config, b"\x00not json", "poison")
    # The relay tries, is refused by the broker, and puts the message back: twice, to be sure.
    await until(lambda: caplog.text.count("routes to no queue") >= 2)

    await dead_queue.bind(names.dead_exchange, "#")
    dead = await drain(dead_queue)
    assert [m.message_id for m in dead] == ["poison"]
    assert str(dead[0].headers[REASON_HEADER]).startswith("unparseable")


async def test_a_task_of_a_type_no_worker_serves_waits_and_is_not_dead_lettered_yet(
    relay: None,
    amqp: aio_pika.abc.AbstractChannel,
    config: Config,
    store: TaskStore,
    svc: services.Services,
) -> None:
    task = make_task()
    store.create(replace(task, type="retired.type"))
    await publish(
        amqp, config, Submitted(task.task_id, "retired.type", task.trace_id).encode(), task.task_id
    )

    await until(lambda: getattr(store.get(task.task_id), "status", None) is Status.QUEUED)
    waiting = store.get(task.task_id)
    assert waiting is not None
    assert waiting.waiting is not None
    assert "'retired.type'" in waiting.waiting
    assert await drain(await amqp.get_queue(config.names.dead_queue), timeout_s=0.5) == []
    assert rq_queue_length(svc) == 0


async def test_a_task_runs_and_its_log_tells_every_step_in_order(
    relay: None,
    amqp: aio_pika.abc.AbstractChannel,
    config: Config,
    store: TaskStore,
    svc: services.Services,
    redis_client: redis.Redis,
) -> None:
    task_id = await submit(
        amqp, config, store, payload={"seconds": 0.2, "steps": 4, "fail_rate": 0}
    )
    await until(lambda: rq_queue_length(svc) == 1)

    run_jobs(svc)

    task = store.get(task_id)
    assert task is not None
    assert task.status is Status.SUCCEEDED
    assert task.result == {"slept_s": 0.2}
    assert task.attempt == 1
    assert task.progress.percent == 100
    events = logged_events(redis_client, config.names, task_id)
    assert [e.seq for e in events] == list(range(1, 8))
    assert len({e.epoch for e in events}) == 1
    assert [e.status for e in events] == [Status.QUEUED, Status.RUNNING] + [Status.RUNNING] * 4 + [
        Status.SUCCEEDED
    ]
    assert [e.progress.percent for e in events if e.kind is EventKind.PROGRESS] == [25, 50, 75, 100]
    assert events[-1].result == {"slept_s": 0.2}


async def test_a_failing_handler_fails_the_task_with_its_error(
    relay: None,
    amqp: aio_pika.abc.AbstractChannel,
    config: Config,
    store: TaskStore,
    svc: services.Services,
    redis_client: redis.Redis,
) -> None:
    task_id = await submit(amqp, config, store, payload={"seconds": 0, "steps": 1, "fail_rate": 1})
    await until(lambda: rq_queue_length(svc) == 1)

    run_jobs(svc)

    task = store.get(task_id)
    assert task is not None
    assert task.status is Status.FAILED
    assert task.error is not None
    assert task.error.type == "simulated"
    last = logged_events(redis_client, config.names, task_id)[-1]
    assert last.status is Status.FAILED
    assert last.error == task.error


def test_a_duplicate_job_of_a_finished_task_runs_nothing_and_brings_the_log_up_to_date(
    svc: services.Services, store: TaskStore, config: Config, redis_client: redis.Redis
) -> None:
    task = make_task("demo.noop", status=Status.SUCCEEDED, attempt=1)
    store.create(task)  # and no log: Redis lost it
    Queue(config.names.rq_queue(task.priority), connection=svc.redis).enqueue(
        "worker_container.job.run_task", task.task_id, task.type
    )

    run_jobs(svc)
    run_jobs(svc)  # nothing left to run: the job ran once

    assert store.get(task.task_id) == task
    # The job found the record ended: the log, lost, now tells watchers so.
    (event,) = logged_events(redis_client, config.names, task.task_id)
    assert (event.status, event.attempt) == (Status.SUCCEEDED, 1)


def test_an_attempt_that_runs_over_its_timeout_fails_as_timeout(
    svc: services.Services, store: TaskStore, config: Config
) -> None:
    task = make_task(payload={"seconds": 5, "steps": 1, "fail_rate": 0}, status=Status.QUEUED)
    store.create(task)
    svc.queue_of(task).enqueue(
        "worker_container.job.run_task", task.task_id, task.type, job_timeout=1
    )

    run_jobs(svc)

    failed = store.get(task.task_id)
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.type == "timeout"
