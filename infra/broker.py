"""The RabbitMQ topology of DESIGN.md.

Exchange ``<ns>`` (topic) routes ``task.submitted.#`` to the quorum queue ``<ns>.tasks``. A
message delivered more than ``DELIVERY_LIMIT`` times, or rejected, is dead-lettered (at least
once) through ``<ns>.dlx`` into ``<ns>.dlq``, so a poison message cannot loop forever.

The dead queue ``<ns>.dlq`` is a quorum queue with an explicit delivery limit too large to reach:
listing dead letters takes each and puts it back, which a quorum queue counts as a delivery, and
RabbitMQ 4 otherwise drops a message after 20 (its default limit). Deployments provisioned
before have their dead letters in ``<ns>.dead``, declared without the limit (a queue's arguments
cannot change); :func:`migrate_dead_queue` moves them over and deletes it.
"""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelNotFoundEntity
from pamqp.common import FieldTable

from taskcore.names import Names

log = logging.getLogger(__name__)

DELIVERY_LIMIT = 5
DEAD_DELIVERY_LIMIT = 2**31 - 1
"""The dead queue's: listing once a second would take 68 years to reach it. Not ``-1``, which
RabbitMQ 4 reads as "no limit" but RabbitMQ 3 as "drop the message when it comes back"."""


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


def dead_queue_arguments() -> FieldTable:
    return {"x-queue-type": "quorum", "x-delivery-limit": DEAD_DELIVERY_LIMIT}


async def declare_topology(channel: AbstractChannel, names: Names) -> None:
    """Declare exchanges, queues and bindings; redeclaring the same topology is a no-op."""
    exchange = await channel.declare_exchange(
        names.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead_exchange = await channel.declare_exchange(
        names.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_queue(
        names.dead_queue, durable=True, arguments=dead_queue_arguments()
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


def _migration_exchange(names: Names) -> str:
    return f"{names.dead_queue}.migration"


async def migrate_dead_queue(connection: AbstractConnection, names: Names) -> int:
    """Move the dead letters of ``<ns>.dead`` into ``<ns>.dlq``, oldest first; returns how many.

    Call it after :func:`declare_topology`, which bound the new queue to ``<ns>.dlx``: the old
    queue is unbound only then, so a message dead-lettered meanwhile is never unroutable (one
    dead-lettered in the instant both were bound is in both; replaying it twice is harmless).
    Each message keeps its body, properties, headers and routing key (replay needs it: it goes
    through an exchange of its own, bound to the new queue only), and is acked on the old queue
    once the broker confirmed the copy.

    The old queue is deleted by a later run that finds it empty, never by the run that unbinds
    it: an edge of the previous version may be listing it right then, holding messages it will
    put back, and a quorum queue cannot be deleted "if empty". The migration's exchange, left
    in place until then, marks that the old queue was unbound. So each provisioning moves what
    came back, and the first to find the old queue empty and unbound deletes both.
    """
    async with connection.channel() as channel:
        try:
            old = await channel.declare_queue(names.legacy_dead_queue, passive=True)
        except ChannelNotFoundEntity:
            return 0  # a deployment made after the change, or migrated already
        waiting = old.declaration_result.message_count or 0
    async with connection.channel() as channel:
        try:
            await channel.get_exchange(_migration_exchange(names), ensure=True)
            unbound = True
        except ChannelNotFoundEntity:
            unbound = False
    if unbound and waiting == 0:
        async with connection.channel() as channel:
            await channel.queue_delete(names.legacy_dead_queue)
            await channel.exchange_delete(_migration_exchange(names))
        log.info("deleted %s, empty: the dead queue is %s", old.name, names.dead_queue)
        return 0
    log.info("moving %d dead letters from %s to %s", waiting, old.name, names.dead_queue)
    moved = 0
    async with connection.channel(on_return_raises=True) as channel:
        via = await channel.declare_exchange(
            _migration_exchange(names), aio_pika.ExchangeType.TOPIC, durable=True
        )
        await (await channel.get_queue(names.dead_queue)).bind(via, routing_key="#")
        old = await channel.get_queue(names.legacy_dead_queue)
        await old.unbind(names.dead_exchange, routing_key="#")
        while message := await old.get(no_ack=False, fail=False):
            # Confirmed and routed (mandatory, on_return_raises) before the original goes.
            await via.publish(_copy(message), routing_key=message.routing_key or "", mandatory=True)
            await message.ack()
            moved += 1
    log.info(
        "moved %d dead letters to %s; the next provisioning deletes %s if it stays empty",
        moved,
        names.dead_queue,
        names.legacy_dead_queue,
    )
    return moved


_NOT_COPIED = frozenset({"x-delivery-count"})
"""The old queue's count of deliveries; the new queue keeps its own."""


def _copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """A persistent copy of ``message`` with all it carries (not ``user_id``, which the broker
    checks against the connection's user, nor ``expiration``: dead letters do not expire)."""
    return aio_pika.Message(
        message.body,
        headers={k: v for k, v in (message.headers or {}).items() if k not in _NOT_COPIED},
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


async def delete_topology(channel: AbstractChannel, names: Names) -> None:
    """Remove everything :func:`declare_topology` made (for tests and teardown)."""
    for queue in (names.tasks_queue, names.control_queue, names.dead_queue):
        await channel.queue_delete(queue)
    for exchange in (names.exchange, names.dead_exchange):
        await channel.exchange_delete(exchange)
