"""The dead queue on the real RabbitMQ: listing it does not use messages up; the old one migrates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from chalicelib import deadletters

from infra import broker
from infra.provision import provision_broker
from taskcore.config import Config
from taskcore.names import Names
from tests.conftest import RABBITMQ_URL, drain

LISTINGS = 25
"""More than RabbitMQ 4's default delivery limit (20) would let a message be listed."""


@pytest.fixture
async def connection() -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        yield connection


async def bury(channel: AbstractChannel, names: Names, n: int) -> list[str]:
    """``n`` messages dead-lettered as the relay does; their ids, oldest first."""
    dead = await channel.get_exchange(names.dead_exchange)
    ids = [f"m{i:02d}" for i in range(n)]
    for message_id in ids:
        await dead.publish(
            aio_pika.Message(
                b'{"task_id": "%s"}' % message_id.encode(),
                message_id=message_id,
                headers={"x-taskcast-reason": f"reason of {message_id}"},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=f"task.submitted.demo.{message_id}",
        )
    return ids


async def test_dead_letters_listed_25_times_are_all_kept_in_order(
    config: Config, amqp: AbstractChannel, connection: AbstractConnection
) -> None:
    ids = await bury(amqp, config.names, 8)

    for _ in range(LISTINGS):
        listed = await deadletters.list_dead(connection, config.names)
        assert [m.message_id for m in listed] == ids

    assert [m.routing_key for m in listed] == [f"task.submitted.demo.{i}" for i in ids]
    assert [m.reason for m in listed] == [f"reason of {i}" for i in ids]


async def test_listing_spends_a_delivery_so_a_dead_queue_with_a_limit_of_20_loses_messages(
    namespace: str, connection: AbstractConnection
) -> None:
    """The control of the test above: each listing counts a delivery, so the same listings lose
    every message of a dead queue with RabbitMQ 4's default limit, 20 (what the dead queue had,
    declared without a limit). This broker (3.x) has no default, so it is set explicitly."""
    names = Names(namespace)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        names.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(
        names.dead_queue, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 20}
    )
    try:
        await queue.bind(exchange, routing_key="#")
        ids = await bury(channel, names, 3)
        counts = [len(await deadletters.list_dead(connection, names)) for _ in range(LISTINGS)]
        assert counts[:20] == [len(ids)] * 20
        assert counts[-1] == 0
    finally:
        await channel.queue_delete(names.dead_queue)
        await channel.exchange_delete(names.dead_exchange)


async def ready(channel: AbstractChannel, queue: str, count: int) -> None:
    """Wait until ``queue`` has ``count`` messages ready: a nack is not confirmed."""
    deadline = asyncio.get_running_loop().time() + 5
    while (
        await channel.declare_queue(queue, passive=True)
    ).declaration_result.message_count != count:
        assert asyncio.get_running_loop().time() < deadline, f"{queue} never had {count} ready"
        await asyncio.sleep(0.05)


async def declare_legacy_dead_queue(channel: AbstractChannel, names: Names) -> None:
    """``<ns>.dead`` as provisioning declared it before: a quorum queue without a limit."""
    dead_exchange = await channel.declare_exchange(
        names.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    old = await channel.declare_queue(
        names.legacy_dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await old.bind(dead_exchange, routing_key="#")


@pytest.fixture
async def legacy(config: Config, connection: AbstractConnection) -> AsyncIterator[AbstractChannel]:
    """A channel on which ``<ns>.dead`` exists as before; all of it, old and new, deleted after."""
    names = config.names
    channel = await connection.channel()
    await declare_legacy_dead_queue(channel, names)
    yield channel
    channel = await connection.channel()  # the test may have closed the first
    await channel.queue_delete(names.legacy_dead_queue)
    await channel.exchange_delete(f"{names.dead_queue}.migration")
    await broker.delete_topology(channel, names)


async def test_the_old_dead_queue_is_migrated_without_losing_or_reordering_a_message(
    config: Config, connection: AbstractConnection, legacy: AbstractChannel
) -> None:
    names = config.names
    channel = legacy
    ids = await bury(channel, names, 12)

    # Redeclaring the old name with the new arguments is what fails; the new name does not.
    await broker.declare_topology(channel, names)
    assert await broker.migrate_dead_queue(connection, names) == len(ids)

    listed = await deadletters.list_dead(connection, names)
    assert [m.message_id for m in listed] == ids
    assert [m.routing_key for m in listed] == [f"task.submitted.demo.{i}" for i in ids]
    assert [m.reason for m in listed] == [f"reason of {i}" for i in ids]

    # The old queue is unbound: what is dead-lettered now lands in the new queue only.
    [late] = await bury(channel, names, 1)
    assert [m.message_id for m in await deadletters.list_dead(connection, names)] == [
        *ids,
        late,
    ]
    old = await channel.declare_queue(names.legacy_dead_queue, passive=True)
    assert old.declaration_result.message_count == 0  # kept, empty, for one more run

    assert await broker.migrate_dead_queue(connection, names) == 0  # and now deleted
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await (await connection.channel()).declare_queue(names.legacy_dead_queue, passive=True)
    assert await broker.migrate_dead_queue(connection, names) == 0  # nothing left to do

    # The migrated messages are whole: a replay republishes them as they were.
    tasks = await channel.get_queue(names.tasks_queue)
    await tasks.purge()
    done = await deadletters.replay(connection, names, None, lambda _: None)
    assert done.replayed == [*ids, late]
    republished = await drain(tasks)
    assert [m.message_id for m in republished] == [*ids, late]
    assert [m.routing_key for m in republished] == [
        f"task.submitted.demo.{i}" for i in [*ids, late]
    ]


async def test_dead_letters_held_by_an_old_listing_are_moved_by_the_next_provisioning(
    config: Config, connection: AbstractConnection, legacy: AbstractChannel
) -> None:
    names = config.names
    channel = legacy
    ids = await bury(channel, names, 3)
    await broker.declare_topology(channel, names)
    # An edge of the previous version is listing the old queue as the migration runs.
    lister = await connection.channel()
    old = await lister.get_queue(names.legacy_dead_queue)
    held = await old.get(no_ack=False)
    assert await broker.migrate_dead_queue(connection, names) == len(ids) - 1
    await held.nack(requeue=True)
    await ready(channel, names.legacy_dead_queue, 1)  # back, before the next provisioning

    assert await broker.migrate_dead_queue(connection, names) == 1
    assert await broker.migrate_dead_queue(connection, names) == 0
    listed = [m.message_id for m in await deadletters.list_dead(connection, names)]
    assert sorted(listed) == ids


async def test_provisioning_migrates_the_old_dead_queue(
    config: Config, connection: AbstractConnection, legacy: AbstractChannel
) -> None:
    names = config.names
    channel = legacy
    ids = await bury(channel, names, 3)

    await provision_broker(config)  # what `python -m infra` and `taskcast up` run
    await provision_broker(config)

    listed = await deadletters.list_dead(connection, names)
    assert [m.message_id for m in listed] == ids
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await (await connection.channel()).declare_queue(names.legacy_dead_queue, passive=True)
