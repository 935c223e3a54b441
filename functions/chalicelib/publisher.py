"""Publishing accepted tasks to RabbitMQ with publisher confirms, from synchronous handlers.

Lambda handlers (and ``chalice local``'s threads) are synchronous; aio-pika is not. The publisher
runs one event loop on a daemon thread and keeps one robust connection on it, reused across warm
invocations. A publish returns only after the broker confirmed it (and routed it: it is
``mandatory``), or raises :class:`PublishError`.

Under ``chalice local`` many request threads publish at once, on the one channel: each waits for
its own confirm, and the loop has them all in flight together (the broker confirms them as they
come, several in one frame), so a publish costs a round trip, not a place in a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError

from taskcore import trace
from taskcore.errors import TaskcastError
from taskcore.message import TRACEPARENT_HEADER, CancelRequested, Envelope, Submitted
from taskcore.names import Names

log = logging.getLogger(__name__)
T = TypeVar("T")


class PublishError(TaskcastError):
    """The broker did not confirm the message: unreachable, refused or unroutable."""


class Publisher:
    def __init__(self, url: str, names: Names, timeout_s: float = 5.0) -> None:
        self._url = url
        self._names = names
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="amqp-publisher", daemon=True
        )
        self._thread.start()
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    def submitted(self, message: Submitted) -> None:
        """Publish an accepted task and wait for the broker's confirm."""
        self._publish_confirmed(message.envelope())

    def cancel(self, message: CancelRequested) -> None:
        """Publish a cancel request and wait for the broker's confirm."""
        self._publish_confirmed(message.envelope())

    def run(self, operation: Callable[[AbstractConnection], Awaitable[T]], timeout_s: float) -> T:
        """Run ``operation`` on the publisher's connection (the dead-letter routes use it).

        :class:`PublishError` if the broker cannot be reached or the operation fails.
        """

        async def on_connection() -> T:
            connection, _ = await self._exchange_ready()
            return await operation(connection)

        future = asyncio.run_coroutine_threadsafe(on_connection(), self._loop)
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            future.cancel()
            raise PublishError("the broker did not answer in time") from None
        except Exception as exc:
            raise PublishError(f"the broker operation failed: {exc!r}") from exc

    def _publish_confirmed(self, envelope: Envelope) -> None:
        publishing = self._publish(envelope)
        future = asyncio.run_coroutine_threadsafe(publishing, self._loop)
        try:
            future.result(timeout=2 * self._timeout_s + 1)  # room for one reconnect
        except FutureTimeout:
            future.cancel()
            raise PublishError("the broker did not confirm in time") from None
        except PublishError:
            raise
        except Exception as exc:
            raise PublishError(f"publishing failed: {exc!r}") from exc

    async def _publish(self, envelope: Envelope) -> None:
        connection, exchange = await self._exchange_ready()
        try:
            await self._publish_on(exchange, envelope)
        except DeliveryError as exc:
            # The broker answered (returned the message: no queue for it, or refused it): the
            # connection works, and the publishes in flight on it with this one go on.
            raise PublishError(f"the broker did not take the message: {exc!r}") from exc
        except Exception as exc:
            # A Lambda instance is frozen between invocations and its connection may have died
            # meanwhile (missed heartbeats): try once more on a fresh one. Publishing twice is
            # harmless, as the relay treats a task's messages idempotently.
            log.warning(
                "task %s: publish failed (%r); reconnecting once [trace %s]",
                envelope.message_id,
                exc,
                trace.trace_id_of(envelope.headers.get(TRACEPARENT_HEADER)),
            )
            await self._reset(connection)
            _, exchange = await self._exchange_ready()
            await self._publish_on(exchange, envelope)

    async def _reset(self, failed: AbstractRobustConnection) -> None:
        """Drop ``failed``, the connection a publish failed on, unless it is gone already.

        Publishes in flight together fail together: the first drops the connection and makes
        a new one; a later one must not drop that new one, which the others are using.
        """
        async with self._lock:
            if self._connection is not failed:
                return
            self._connection, self._exchange = None, None
        with contextlib.suppress(Exception):
            await failed.close()

    async def _publish_on(self, exchange: AbstractExchange, envelope: Envelope) -> None:
        await exchange.publish(
            aio_pika.Message(envelope.body, **envelope.properties),
            routing_key=envelope.routing_key,
            mandatory=True,
            timeout=self._timeout_s,
        )

    async def _exchange_ready(self) -> tuple[AbstractRobustConnection, AbstractExchange]:
        """The connection and the exchange to publish to, connecting first if there is none."""
        async with self._lock:
            if self._connection is None or self._exchange is None:
                connection = await aio_pika.connect_robust(self._url, timeout=self._timeout_s)
                try:
                    channel = await connection.channel(on_return_raises=True)
                    exchange = await channel.get_exchange(self._names.exchange, ensure=True)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await connection.close()
                    raise
                self._connection, self._exchange = connection, exchange
            return self._connection, self._exchange

    def close(self) -> None:
        async def _close() -> None:
            if self._connection is not None:
                await self._connection.close()

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=self._timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self._timeout_s)
        self._loop.close()
