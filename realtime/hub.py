"""One Redis pub/sub connection per instance, subscribed only to the channels its clients watch.

The first watcher of a task subscribes its channel, the last one to leave unsubscribes it, so an
instance listens to exactly the tasks its own clients watch and holds nothing after they go.
A listener gets each live event on its own bounded queue; :meth:`Hub.listen` returns only once
Redis has confirmed the subscription, so anything published after that is sure to arrive.

The hub never waits for a listener. One whose queue is full (its client stopped reading) is told
once, through its ``on_overflow``, and gets nothing more: memory stays bounded and every other
listener is served at the same pace as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from taskcore import eventlog
from taskcore.errors import EventDecodeError
from taskcore.event import Event
from taskcore.names import Names

log = logging.getLogger(__name__)

MAX_BUFFERED_EVENTS = 1000
"""Live events held for one watch before its client is judged too slow."""

SUBSCRIBE_TIMEOUT_S = 30.0
"""How long Redis may take to confirm a subscription: a safety net, generous for a busy instance."""


class Resync:
    """Offered to a channel's listeners when its subscription was renewed after a dropped
    connection: events published meanwhile were lost to pub/sub, so read the log now."""


RESYNC = Resync()


class Listener:
    """One watch's share of a channel: a bounded queue and what to do when it overflows."""

    def __init__(self, on_overflow: Callable[[], None], max_buffered: int) -> None:
        self.queue: asyncio.Queue[Event | Resync] = asyncio.Queue(max_buffered)
        self._on_overflow = on_overflow
        self.overflowed = False

    def offer(self, event: Event | Resync) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._on_overflow()


class Hub:
    def __init__(
        self, redis: aioredis.Redis, names: Names, max_buffered: int = MAX_BUFFERED_EVENTS
    ) -> None:
        self._names = names
        self._max_buffered = max_buffered
        self._pubsub = redis.pubsub()
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        self._active = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def subscriptions(self) -> int:
        """How many channels this instance is subscribed to."""
        return len(self._listeners)

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="hub-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    @contextlib.asynccontextmanager
    async def listen(
        self, task_id: str, on_overflow: Callable[[], None]
    ) -> AsyncIterator[asyncio.Queue[Event | Resync]]:
        """Live events of ``task_id`` on a bounded queue, for as long as the context is open."""
        channel = self._names.event_channel(task_id)
        listener = Listener(on_overflow, self._max_buffered)
        async with self._lock:
            first = channel not in self._listeners
            self._listeners[channel].add(listener)
            if first:
                self._confirmed[channel] = asyncio.Event()
                await self._pubsub.subscribe(channel)
                self._active.set()
            confirmed = self._confirmed[channel]
        try:
            await asyncio.wait_for(confirmed.wait(), timeout=SUBSCRIBE_TIMEOUT_S)
            yield listener.queue
        finally:
            async with self._lock:
                listeners = self._listeners.get(channel)
                if listeners is not None:
                    listeners.discard(listener)
                    if not listeners:
                        del self._listeners[channel]
                        del self._confirmed[channel]
                        await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:
            if not self._pubsub.subscribed:
                self._active.clear()
                await self._active.wait()
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except RedisError:
                log.warning("pub/sub read failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            if message is None:
                continue
            channel = message["channel"].decode()
            if message["type"] == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is None:
                    continue
                if confirmed.is_set():
                    # redis-py subscribes again after a reconnect: tell the watches at once.
                    for listener in self._listeners.get(channel, ()):
                        listener.offer(RESYNC)
                confirmed.set()
            elif message["type"] == "message":
                try:
                    event = eventlog.decode_message(message["data"])
                except EventDecodeError:
                    log.exception("unreadable event on %s; dropped", channel)
                    continue
                for listener in self._listeners.get(channel, ()):
                    listener.offer(event)
