"""The operations overview measured from the real Redis and RabbitMQ, as the sweeper reports it."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import redis
from rq import Queue, Worker

from taskcore.config import Config
from taskcore.message import Submitted
from taskcore.overview import OverviewStore
from taskcore.tasktype import Priority
from tests.conftest import RABBITMQ_URL
from worker_container.reporter import Reporter, measure


def test_the_overview_counts_the_namespaces_queues_and_workers_only(
    redis_client: redis.Redis, config: Config
) -> None:
    names = config.names
    high = Queue(names.rq_queue(Priority.HIGH), connection=redis_client)
    high.enqueue("builtins.print", job_id="job-1")
    high.enqueue("builtins.print", job_id="job-2")
    other = Queue("elsewhere.default.high", connection=redis_client)  # another namespace's
    other.enqueue("builtins.print")
    worker = Worker([high], connection=redis_client, name="w-ours")
    worker.register_birth()
    stranger = Worker([other], connection=redis_client, name="w-theirs")
    stranger.register_birth()
    try:
        overview = measure(redis_client, names, {"tasks": 1, "dead": 0}, 0.0)
    finally:
        worker.register_death()
        stranger.register_death()

    assert [(q.name, q.queued) for q in overview.queues] == [(names.rq_queue(Priority.HIGH), 2)]
    assert [(w.name, w.queues) for w in overview.workers] == [
        ("w-ours", (names.rq_queue(Priority.HIGH),))
    ]
    assert overview.updated_at == "1970-01-01T00:00:00.000Z"
    assert overview.broker == {"tasks": 1, "dead": 0}


async def test_a_report_stores_the_brokers_depths_where_the_edge_reads_them(
    aws: Any, redis_client: redis.Redis, config: Config, amqp: aio_pika.abc.AbstractChannel
) -> None:
    exchange = await amqp.get_exchange(config.names.exchange)
    for n in range(3):
        await exchange.publish(
            aio_pika.Message(Submitted(f"t{n}", "demo.noop", "trace").encode()),
            routing_key="task.submitted.demo.noop",
        )
    store = OverviewStore(aws, config.names.tasks_table)
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    async with connection:
        reporter = Reporter(redis_client, store, config.names)
        deadline = asyncio.get_running_loop().time() + 5
        # Published messages take a moment to be counted by a passive declare.
        while (overview := await _reported(reporter, connection, store)).broker["tasks"] != 3:
            assert asyncio.get_running_loop().time() < deadline, overview
            await asyncio.sleep(0.1)

    assert overview.broker == {"tasks": 3, "dead": 0}


async def _reported(reporter: Reporter, connection: Any, store: OverviewStore) -> Any:
    await reporter.report(connection)
    return store.get()
