"""One Redis pub/sub connection per instance, subscribed only to the channels its clients watch.

The first watcher of a task subscribes its channel, the last one to leave unsubscribes it, so an
instance listens to exactly the tasks its own clients watch and holds nothing after they go.
A listener gets each live event on its own queue; :meth:`Hub.listen` returns only once Redis has
confirmed the subscription, so anything published after that is sure to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from taskcore.errors import EventDecodeError
from taskcore.event import Event
from taskcore.names import Names

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, redis: aioredis.Redis, names: Names) -> None:
        self._names = names
        self._pubsub = redis.pubsub()
        self._listeners: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
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
    async def listen(self, task_id: str) -> AsyncIterator[asyncio.Queue[Event]]:
        """Live events of ``task_id`` on a queue, for as long as the context is open."""
        channel = self._names.event_channel(task_id)
        queue: asyncio.Queue[Event] = asyncio.Queue()
        async with self._lock:
            first = channel not in self._listeners
            self._listeners[channel].add(queue)
            if first:
                self._confirmed[channel] = asyncio.Event()
                await self._pubsub.subscribe(channel)
                self._active.set()
            confirmed = self._confirmed[channel]
        try:
            await asyncio.wait_for(confirmed.wait(), timeout=10)
            yield queue
        finally:
            async with self._lock:
                listeners = self._listeners.get(channel)
                if listeners is not None:
                    listeners.discard(queue)
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
                if confirmed is not None:
                    confirmed.set()
            elif message["type"] == "message":
                try:
                    event = Event.decode(message["data"])
                except EventDecodeError:
                    log.exception("unreadable event on %s; dropped", channel)
                    continue
                for queue in self._listeners.get(channel, ()):
                    queue.put_nowait(event)
