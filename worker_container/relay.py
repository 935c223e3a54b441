"""The relay: moves accepted tasks from RabbitMQ into RQ, exactly once per task.

For each message: announce the task ``queued`` (an event, from the record the message carries:
no DynamoDB call), make sure the RQ job exists (``unique`` enqueue, job id = task id), then ack.
The event comes before the enqueue so that it always precedes the worker's ``running`` one in
the task's log. Every step tolerates having been done before, so a message redelivered after a
crash at any point finishes the work without doing any of it twice: the log refuses a second
``queued``, the enqueue a second job, and the worker's conditional start a second attempt of a
task that has moved on (a cancelled one, say: the worker then reads the record and ends it).

A task whose type no live worker serves is marked ``queued`` in its record with the reason and
parked for the sweeper instead of enqueued (see :mod:`.registry`): it waits for a worker, it is
not lost. A message without the record (from an earlier version) is relayed from the record
read from DynamoDB. What cannot be parsed, or names no record or another type than its
record, is published to the dead-letter exchange with the reason in its headers, then acked:
never requeued into a hot loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from aio_pika.exceptions import DeliveryError

from taskcore import logs, trace
from taskcore.config import Config, add_metrics_arguments, serve_metrics
from taskcore.errors import ConditionLost, ValidationError
from taskcore.message import TRACEPARENT_HEADER, CancelRequested, Envelope, Submitted
from taskcore.status import Status
from taskcore.task import Task

from . import failpoint, metrics
from .canceller import Canceller
from .job import dispatch
from .registry import ServedTypes, waiting_reason
from .services import Services

log = logging.getLogger(__name__)

Handle = Callable[[AbstractIncomingMessage], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """What to do with a message: ack it, or dead-letter it for ``reason``."""

    dead_reason: str | None = None


ACK = Outcome()


class Relay:
    """The broker-independent part: what one message means for its task."""

    def __init__(self, svc: Services, served: ServedTypes | None = None) -> None:
        self._svc = svc
        self._canceller = Canceller(svc)
        self._served = served or ServedTypes(svc.redis, svc.config.names)

    def relay(self, body: bytes, headers: Mapping[str, Any] | None = None) -> Outcome:
        try:
            message = Submitted.decode(body, headers)
        except ValidationError as exc:
            return Outcome(f"unparseable: {exc}")
        with logs.traced(message.trace_id):
            return self._relay(message)

    def _relay(self, message: Submitted) -> Outcome:
        record = message.record
        if record is not None and record.status is Status.PENDING:
            if self._served(message.type):
                self._dispatch(self._svc.lifecycle.queued(record))
                return ACK
            try:
                self._dispatch(self._park(message))
                return ACK
            except ConditionLost:
                pass  # not pending any more, or no record: read it to find out
        return self._relay_read(message)

    def _park(self, message: Submitted) -> Task:
        """Record that no live worker serves the task's type, and why (see :mod:`.registry`)."""
        return self._svc.lifecycle.park(message.task_id, message.type, waiting_reason(message.type))

    def _relay_read(self, message: Submitted) -> Outcome:
        """Relay from the record as DynamoDB has it: for a message that carries none, or a
        task that is not where the message's copy says."""
        task = self._svc.store.get(message.task_id)
        if task is None:
            return Outcome(f"no record for task {message.task_id}")
        if task.type != message.type:
            # Not a message the edge wrote: leave the record to the message that is.
            return Outcome(f"message names type {message.type!r}, the record {task.type!r}")
        if self._canceller.cancel_if_requested(task):
            log.info("task %s: cancelled before it was queued", task.task_id)
        elif task.status is Status.PENDING:
            self._dispatch(
                self._svc.lifecycle.queued(task) if self._served(task.type) else self._park(message)
            )
        elif task.status is Status.QUEUED:
            self._dispatch(task)
        else:
            log.info(
                "task %s is %s already; acking the duplicate message", task.task_id, task.status
            )
        return ACK

    def _dispatch(self, task: Task) -> None:
        if dispatch(self._svc, task, self._served):
            log.info(
                "task %s (%s) queued on %s", task.task_id, task.type, self._svc.queue_of(task).name
            )
        else:
            log.info("task %s: RQ job exists already, or it waits for a worker", task.task_id)


class RelayService:
    """The AMQP side: consume tasks and control messages with a bounded prefetch.

    :class:`Relay` and :class:`Canceller` run off the event loop, in threads.
    """

    def __init__(
        self, config: Config, relay: Relay, canceller: Canceller, prefetch: int = 16
    ) -> None:
        self._config = config
        self._relay = relay
        self._canceller = canceller
        self._prefetch = prefetch
        self._dead: AbstractExchange | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        names = self._config.names
        connection = await aio_pika.connect_robust(self._config.rabbitmq)
        async with connection:
            channel = await connection.channel(on_return_raises=True)
            await channel.set_qos(prefetch_count=self._prefetch)
            self._dead = await channel.get_exchange(names.dead_exchange, ensure=True)
            consumers = []
            for name, handle in (
                (names.tasks_queue, self._handle),
                (names.control_queue, self._handle_control),
            ):
                queue = await channel.get_queue(name, ensure=True)
                consumers.append((queue, await queue.consume(self._tracked(handle))))
            log.info(
                "relay consuming %s and %s (prefetch %d)",
                names.tasks_queue,
                names.control_queue,
                self._prefetch,
            )
            await stop.wait()
            # Stop taking new messages, then let those in hand finish: nothing is dropped, and
            # whatever is unacked when the connection closes goes back to the queue.
            for queue, tag in consumers:
                await queue.cancel(tag)
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=30)
        log.info("relay stopped")

    def _tracked(self, handle: Handle) -> Handle:
        """``handle``, counted as in flight while it runs, so shutdown can wait for it."""

        async def tracked(message: AbstractIncomingMessage) -> None:
            current = asyncio.current_task()
            assert current is not None
            self._in_flight.add(current)
            try:
                await handle(message)
            finally:
                self._in_flight.discard(current)

        return tracked

    async def _handle_control(self, message: AbstractIncomingMessage) -> None:
        try:
            request = CancelRequested.decode(message.body, message.headers)
        except ValidationError as exc:
            if await self._dead_letter(message, f"unparseable: {exc}"):
                await message.ack()
            return
        try:
            pending = await asyncio.to_thread(self._canceller.request, request.task_id)
            if pending is not None:
                await asyncio.sleep(self._config.cancel_grace_s)
                await asyncio.to_thread(self._canceller.enforce, request.task_id, pending)
        except Exception:
            log.exception("task %s: cancel failed; requeueing", request.task_id)
            await asyncio.sleep(1)
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> bool:
        """Copy ``message`` to the dead-letter exchange; ``False`` if nothing took it.

        Published ``mandatory`` and confirmed, so a dead-letter exchange bound to no queue (a
        topology half provisioned, or torn down by hand) is an error, not a silent drop: the
        message is then put back, and dead-lettered once the exchange routes again.
        """
        assert self._dead is not None  # set before consuming starts
        dead = Envelope.received(message).dead(reason)
        try:
            await self._dead.publish(
                aio_pika.Message(dead.body, **dead.properties),
                routing_key=dead.routing_key,
                mandatory=True,
            )
        except DeliveryError:
            log.error(
                "message %s: the dead-letter exchange routes to no queue; requeueing it",
                message.message_id,
            )
            await asyncio.sleep(1)  # don't spin until the topology is repaired
            await message.nack(requeue=True)
            return False
        log.warning("message %s dead-lettered: %s", message.message_id, reason)
        return True

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        with logs.traced(trace.trace_id_of(headers.get(TRACEPARENT_HEADER))):
            await self._handle_traced(message)

    async def _handle_traced(self, message: AbstractIncomingMessage) -> None:
        try:
            outcome = await asyncio.to_thread(self._relay.relay, message.body, message.headers)
        except Exception:
            log.exception("task %s: relay failed; requeueing", message.message_id)
            await asyncio.sleep(1)  # don't spin on a backend that is down
            await message.nack(requeue=True)
            return
        if outcome.dead_reason is not None and not await self._dead_letter(
            message, outcome.dead_reason
        ):
            return
        failpoint.hit("relay.before_ack")
        await message.ack()


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    svc = Services.build(config)
    await RelayService(config, Relay(svc), Canceller(svc)).run(stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="taskcast's relay, from RabbitMQ into RQ")
    add_metrics_arguments(parser)
    args = parser.parse_args(argv)
    logs.setup()
    config = Config.from_env(need=("rabbitmq", "redis"))
    serve_metrics(parser, args, metrics.serve)
    asyncio.run(_serve(config))


if __name__ == "__main__":
    main()
