"""W3C trace context end to end, in one process: edge, broker, relay, RQ, worker, event log.

The edge runs in chalice's test client, the relay and the worker in this process against the
real RabbitMQ and Redis, DynamoDB by moto.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aio_pika
import pytest
import redis
from chalice.test import Client
from rq.job import Job

from taskcore import trace
from taskcore.config import Config
from taskcore.message import TRACEPARENT_HEADER, Submitted
from taskcore.status import Status
from taskcore.store import TaskStore
from tests.conftest import drain
from tests.functional.edge import ALICE, body_of, submit
from tests.integration.helpers import default_queues, logged_events
from worker_container import services
from worker_container.execution import TaskWorker
from worker_container.registry import Advertiser
from worker_container.relay import Relay

pytestmark = pytest.mark.integration

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
"""The caller's trace context: the example of the W3C specification."""
CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
QUICK = {"type": "demo.sleep", "payload": {"seconds": 0, "fail_rate": 0, "steps": 2}}


@pytest.fixture
def svc(aws: Any, redis_client: redis.Redis, config: Config) -> services.Services:
    """The worker side's services in this namespace, its demo types advertised as served."""
    built = services.Services.build(config, load_tasks=True)
    Advertiser(built.redis, config.names, built.definitions).advertise()
    return built


async def test_the_caller_s_trace_reaches_message_job_record_every_event_and_the_worker_s_logs(
    edge: Client,
    svc: services.Services,
    amqp: aio_pika.abc.AbstractChannel,
    aws: Any,
    config: Config,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = submit(edge, QUICK, {**ALICE, "traceparent": CALLER})

    assert response.status_code == 202
    task = body_of(response)["task"]
    task_id, traceparent = task["task_id"], task["traceparent"]
    assert response.headers["traceparent"] == traceparent
    given = trace.parse(traceparent)
    assert given is not None
    # The caller's trace goes on, under a span of the task's own; sampled as the caller was.
    assert given.trace_id == CALLER_TRACE_ID
    assert given.parent_id != "00f067aa0ba902b7"
    assert given.sampled

    (message,) = await drain(await amqp.get_queue(config.names.tasks_queue))
    assert message.headers[TRACEPARENT_HEADER] == traceparent
    assert Submitted.decode(message.body, message.headers).trace_id == CALLER_TRACE_ID

    with caplog.at_level(logging.INFO):
        assert Relay(svc).relay(message.body, message.headers).dead_reason is None
        assert Job.fetch(task_id, connection=svc.redis).kwargs["traceparent"] == traceparent
        TaskWorker(default_queues(svc), svc).work(burst=True)

    record = TaskStore(aws, config.names.tasks_table).get(task_id)
    assert record is not None
    assert record.status is Status.SUCCEEDED
    assert (record.trace_id, record.traceparent) == (CALLER_TRACE_ID, traceparent)
    events = logged_events(redis_client, config.names, task_id)
    assert [e.status for e in events] == ["queued", "running", "running", "running", "succeeded"]
    assert {e.trace for e in events} == {traceparent}
    fetched = edge.http.get(f"/tasks/{task_id}", headers=ALICE)
    assert body_of(fetched)["task"]["traceparent"] == traceparent
    ours = [r for r in caplog.records if r.name.startswith("worker_container.")]
    assert {r.name for r in ours} >= {"worker_container.relay", "worker_container.job"}
    about_the_task = [r for r in ours if task_id in r.getMessage()]
    assert about_the_task == ours, "a worker-side line that is not about the task"
    assert {getattr(r, "trace_id", None) for r in ours} == {CALLER_TRACE_ID}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "nonsense",
    ],
)
async def test_without_a_valid_traceparent_a_task_starts_a_trace_of_its_own(
    edge: Client, amqp: aio_pika.abc.AbstractChannel, config: Config, header: str | None
) -> None:
    headers = ALICE if header is None else {**ALICE, "traceparent": header}

    response = submit(edge, QUICK, headers)

    assert response.status_code == 202
    task = json.loads(response.body)["task"]
    started = trace.parse(task["traceparent"])
    assert started is not None
    assert started.trace_id not in (CALLER_TRACE_ID, "0" * 32)
    assert not started.sampled
    (message,) = await drain(await amqp.get_queue(config.names.tasks_queue))
    assert message.headers[TRACEPARENT_HEADER] == task["traceparent"]
