"""The dead-letter queue, for operators: list, replay and purge what the pipeline gave up on.

Three things end up there. Messages the relay could not use (unparseable, no record, another
type than the record's), dead-lettered with the reason in ``x-taskcast-reason``; the messages of
tasks that waited their queue timeout for a worker serving their type (``no_worker``, failed by
the sweeper); and messages the broker gave up on after the tasks queue's delivery limit
(``x-first-death-reason: delivery_limit``), which is what happens to a message whose relaying
fails every time.

Replaying republishes a message to the tasks exchange with its original routing key, with
confirms, and only then removes it from the dead queue. The relay treats it like any other
delivery, so replay is safe to repeat: a task that is no longer ``pending`` is not queued again.
A message whose task has already failed would only be ignored by the relay, so ``resubmit``
submits that task again as a new one instead. A message that cannot be replayed (its task's type
has left the catalogue, say) stays on the dead queue and is reported, and the rest go on.

The edge runs these on its publisher's connection, for the operator routes (``/ops/...``).
Reading a message from a queue (``basic.get``) and putting it back (``nack`` with requeue) is
the only way to read without consuming; a quorum queue counts it as a delivery, which is why the
dead queue's delivery limit is out of reach (``infra/broker.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from taskcore.errors import ValidationError
from taskcore.message import PERSISTENT, REASON_HEADER, Envelope, Submitted
from taskcore.names import Names

log = logging.getLogger(__name__)

MAX_LISTED = 500
"""A listing shows the oldest this many; the rest stay on the queue, unread."""

_DEATH_HEADERS = (
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
)
_DROPPED_ON_REPLAY = frozenset({REASON_HEADER, "x-delivery-count", *_DEATH_HEADERS})


@dataclass
class Replayed:
    """What a replay did: the message ids replayed, the new task of each task resubmitted (by
    the failed task's id), and why each message left on the dead queue was not replayed."""

    replayed: list[str] = field(default_factory=list)
    resubmitted: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadMessage:
    message_id: str | None
    routing_key: str
    reason: str
    task_id: str | None
    type: str | None

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadMessage:
        headers: dict[str, Any] = dict(message.headers or {})
        reason = headers.get(REASON_HEADER) or headers.get("x-first-death-reason") or "unknown"
        try:
            submitted: Submitted | None = Submitted.decode(message.body)
        except ValidationError:
            submitted = None  # what the relay refused as unparseable is listed all the same
        return cls(
            message.message_id,
            message.routing_key or "",
            str(reason),
            None if submitted is None else submitted.task_id,
            None if submitted is None else submitted.type,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "routing_key": self.routing_key,
            "reason": self.reason,
            "task_id": self.task_id,
            "type": self.type,
        }


@asynccontextmanager
async def _dead_messages(
    connection: AbstractConnection, names: Names
) -> AsyncIterator[tuple[AbstractChannel, list[AbstractIncomingMessage]]]:
    """The oldest dead messages, taken but not acked; what is not acked goes back."""
    # Publisher confirms on, and an unroutable republish raises rather than being confirmed.
    async with connection.channel(on_return_raises=True) as channel:
        queue = await channel.get_queue(names.dead_queue, ensure=True)
        messages: list[AbstractIncomingMessage] = []
        while len(messages) < MAX_LISTED and (message := await queue.get(no_ack=False, fail=False)):
            messages.append(message)
        try:
            yield channel, messages
        finally:
            for message in messages:
                if not message.processed:
                    await message.nack(requeue=True)


async def list_dead(connection: AbstractConnection, names: Names) -> list[DeadMessage]:
    """The dead messages, oldest first, each taken and put back.

    The dead queue counts each listing as a delivery of each message it shows; its delivery
    limit (``infra.broker.DEAD_DELIVERY_LIMIT``) is set out of reach, so listing loses none.
    """
    async with _dead_messages(connection, names) as (_, messages):
        return [DeadMessage.of(m) for m in messages]


async def replay(
    connection: AbstractConnection,
    names: Names,
    message_ids: Collection[str] | None,
    resubmit: Callable[[DeadMessage], str | None],
) -> Replayed:
    """Publish the dead messages with these ids (all if ``None``) to the tasks exchange again.

    Each is removed from the dead queue only once the broker confirmed its republication, or
    once ``resubmit`` submitted the message's task again itself and returned the new task's id.
    A message ``resubmit`` raises for is left on the queue and reported in ``skipped``.
    """
    done = Replayed()
    async with _dead_messages(connection, names) as (channel, messages):
        exchange = await channel.get_exchange(names.exchange, ensure=True)
        for message in messages:
            if message_ids is not None and message.message_id not in message_ids:
                continue
            dead = DeadMessage.of(message)
            message_id = message.message_id or ""
            try:
                # On a thread: resubmitting publishes through the loop this coroutine runs on.
                new_task_id = await asyncio.to_thread(resubmit, dead)
            except Exception as exc:
                log.warning("dead message %s not replayed", message_id, exc_info=True)
                done.skipped[message_id] = str(exc) or type(exc).__name__
                continue
            if new_task_id is not None:
                await message.ack()
                done.replayed.append(message_id)
                done.resubmitted[dead.task_id or message_id] = new_task_id
                continue
            headers = {
                k: v for k, v in (message.headers or {}).items() if k not in _DROPPED_ON_REPLAY
            }
            again = replace(Envelope.received(message), headers=headers, delivery_mode=PERSISTENT)
            await exchange.publish(
                aio_pika.Message(again.body, **again.properties),
                routing_key=again.routing_key,
                mandatory=True,
            )
            await message.ack()
            done.replayed.append(message_id)
    return done


async def purge(connection: AbstractConnection, names: Names) -> int:
    """Drop every dead message; returns how many there were."""
    async with connection.channel() as channel:
        queue = await channel.get_queue(names.dead_queue, ensure=True)
        result = await queue.purge()
        return int(result.message_count or 0)
