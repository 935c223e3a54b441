"""The edge's publisher (``chalicelib.publisher``) with many request threads at once, as
``chalice local`` runs it, against the real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import aio_pika
import pytest
from chalicelib.publisher import Publisher, PublishError

from taskcore.config import Config
from taskcore.message import Submitted
from tests.conftest import RABBITMQ_URL, drain

THREADS = 20


@pytest.fixture
def publisher(config: Config, amqp: aio_pika.abc.AbstractChannel) -> Iterator[Publisher]:
    made = Publisher(RABBITMQ_URL, config.names)
    yield made
    made.close()


def _submitted() -> Submitted:
    return Submitted(str(uuid.uuid4()), "demo.noop", uuid.uuid4().hex, None)


def _from_threads(publisher: Publisher, messages: list[Submitted]) -> list[BaseException | None]:
    """Publish each message from a thread of its own, all at once; what each publish raised."""

    def publish(message: Submitted) -> BaseException | None:
        try:
            publisher.submitted(message)
        except PublishError as exc:
            return exc
        return None

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(publish, messages))


async def test_publishes_from_many_threads_at_once_are_each_confirmed_and_delivered(
    publisher: Publisher, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    messages = [_submitted() for _ in range(5 * THREADS)]

    raised = await asyncio.to_thread(_from_threads, publisher, messages)

    assert raised == [None] * len(messages)
    delivered = await drain(await amqp.get_queue(config.names.tasks_queue))
    assert sorted(Submitted.decode(m.body).task_id for m in delivered) == sorted(
        m.task_id for m in messages
    )


async def test_a_message_no_queue_takes_is_refused_to_each_publisher_and_the_connection_kept(
    publisher: Publisher, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    publisher.submitted(_submitted())  # connected
    connection = publisher._connection
    await amqp.queue_delete(config.names.tasks_queue)  # a submission routes nowhere now

    raised = await asyncio.to_thread(
        _from_threads, publisher, [_submitted() for _ in range(THREADS)]
    )

    assert all(isinstance(exc, PublishError) for exc in raised), raised
    assert all("did not take the message" in str(exc) for exc in raised), raised
    # The broker answered each: the connection they shared was not dropped for it.
    assert publisher._connection is connection


async def test_a_dead_connection_is_replaced_once_for_every_publish_in_flight_on_it(
    publisher: Publisher, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    publisher.submitted(_submitted())
    dead = publisher._connection
    assert dead is not None
    asyncio.run_coroutine_threadsafe(dead.close(), publisher._loop).result(5)
    messages = [_submitted() for _ in range(THREADS)]

    raised = await asyncio.to_thread(_from_threads, publisher, messages)

    assert raised == [None] * len(messages)
    replacement = publisher._connection
    assert replacement is not None
    assert replacement is not dead
    # One that failed on the dead connection late still leaves the replacement alone.
    asyncio.run_coroutine_threadsafe(publisher._reset(dead), publisher._loop).result(5)
    assert publisher._connection is replacement
    assert not replacement.is_closed
    publisher.submitted(_submitted())
    assert len(await drain(await amqp.get_queue(config.names.tasks_queue))) == THREADS + 2
