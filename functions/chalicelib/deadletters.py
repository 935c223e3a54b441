"""The dead-letter queue, for operators: list, replay and purge what the pipeline gave up on.

Three things end up there. Messages the relay could not use (unparseable, no record, another
type than the record's), dead-lettered with the reason in ``x-taskcast-reason``; the messages of
tasks that waited their queue timeout for a worker serving their type (``no_worker``, failed by
the sweeper); and messages the broker
gave up on after the tasks queue's delivery limit (``x-first-death-reason: delivery_limit``),
which is what happens to a message whose relaying fails every time.

Replaying republishes a message to the tasks exchange with its original routing key, with
confirms, and only then removes it from the dead queue. The relay treats it like any other
delivery, so replay is safe to repeat: a task that is no longer ``pending`` is not queued again.

This talks to RabbitMQ directly (``TASKCAST_RABBITMQ_URL``, ``TASKCAST_NAMESPACE``): it is for
whoever runs the stack, not for API clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from taskcore.message import REASON_HEADER
from taskcore.names import Names

_DEATH_HEADERS = (
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
)
_DROPPED_ON_REPLAY = frozenset({REASON_HEADER, "x-delivery-count", *_DEATH_HEADERS})


@dataclass(frozen=True)
class DeadMessage:
    message_id: str | None
    routing_key: str
    reason: str
    body: bytes

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadMessage:
        headers: dict[str, Any] = dict(message.headers or {})
        reason = headers.get(REASON_HEADER) or headers.get("x-first-death-reason") or "unknown"
        return cls(message.message_id, message.routing_key or "", str(reason), message.body)


@asynccontextmanager
async def _dead_messages(
    url: str, names: Names
) -> AsyncIterator[tuple[AbstractChannel, list[AbstractIncomingMessage]]]:
    """Every message on the dead queue, taken but not acked; what is not acked goes back."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()  # publisher confirms on
        queue = await channel.get_queue(names.dead_queue, ensure=True)
        messages = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            messages.append(message)
        try:
            yield channel, messages
        finally:
            for message in messages:
                if not message.processed:
                    await message.nack(requeue=True)


async def list_dead(url: str, names: Names) -> list[DeadMessage]:
    """The dead messages, oldest first; the queue is left as it was."""
    async with _dead_messages(url, names) as (_, messages):
        return [DeadMessage.of(m) for m in messages]


async def replay(
    url: str,
    names: Names,
    message_ids: Collection[str] | None,
    resubmit: Callable[[DeadMessage], Awaitable[bool]] | None = None,
) -> list[str]:
    """Publish the dead messages with these ids (all if ``None``) to the tasks exchange again.

    Each is removed from the dead queue only once the broker confirmed its republication, or
    once ``resubmit`` says it submitted the message's task again itself: a message whose task
    has already failed (a task that waited too long for a worker, say) would only be ignored by
    the relay. Returns the ids replayed either way.
    """
    replayed = []
    async with _dead_messages(url, names) as (channel, messages):
        exchange = await channel.get_exchange(names.exchange, ensure=True)
        for message in messages:
            if message_ids is not None and message.message_id not in message_ids:
                continue
            if resubmit is not None and await resubmit(DeadMessage.of(message)):
                await message.ack()
                replayed.append(message.message_id or "")
                continue
            headers = {
                k: v for k, v in (message.headers or {}).items() if k not in _DROPPED_ON_REPLAY
            }
            await exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    message_id=message.message_id,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=message.routing_key or "",
                mandatory=True,
            )
            await message.ack()
            replayed.append(message.message_id or "")
    return replayed


async def purge(url: str, names: Names) -> int:
    """Drop every dead message; returns how many there were."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(names.dead_queue, ensure=True)
        result = await queue.purge()
        return int(result.message_count or 0)
