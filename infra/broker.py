"""The RabbitMQ topology of DESIGN.md.

Exchange ``<ns>`` (topic) routes ``task.submitted.#`` to the quorum queue ``<ns>.tasks``. A
message delivered more than ``DELIVERY_LIMIT`` times, or rejected, is dead-lettered (at least
once) through ``<ns>.dlx`` into ``<ns>.dead``, so a poison message cannot loop forever.
"""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractChannel
from pamqp.common import FieldTable

from taskcore.names import Names

log = logging.getLogger(__name__)

DELIVERY_LIMIT = 5


def tasks_queue_arguments(names: Names) -> FieldTable:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": names.dead_exchange,
        # At-least-once dead-lettering needs the publisher side to refuse rather than drop
        # when the queue is full, hence reject-publish.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_topology(channel: AbstractChannel, names: Names) -> None:
    """Declare exchanges, queues and bindings; redeclaring the same topology is a no-op."""
    exchange = await channel.declare_exchange(
        names.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        names.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_queue(
        names.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(dead_exchange, routing_key="#")
    tasks = await channel.declare_queue(
        names.tasks_queue, durable=True, arguments=tasks_queue_arguments(names)
    )
    await tasks.bind(exchange, routing_key=Names.SUBMITTED_PATTERN)
    control = await channel.declare_queue(
        names.control_queue, durable=True, arguments=tasks_queue_arguments(names)
    )
    await control.bind(exchange, routing_key=Names.CONTROL_PATTERN)
    log.info(
        "broker topology declared: %s -> %s (dead: %s)",
        names.exchange,
        names.tasks_queue,
        names.dead_queue,
    )


async def delete_topology(channel: AbstractChannel, names: Names) -> None:
    """Remove everything :func:`declare_topology` made (for tests and teardown)."""
    for queue in (names.tasks_queue, names.control_queue, names.dead_queue):
        await channel.queue_delete(queue)
    for exchange in (names.exchange, names.dead_exchange):
        await channel.exchange_delete(exchange)
