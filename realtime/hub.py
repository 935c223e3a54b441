"""One Redis pub/sub connection per instance, subscribed only to the channels its clients watch.

The first watcher of a task subscribes its channel, the last one to leave unsubscribes it, so an
instance listens to exactly the tasks its own clients watch and holds nothing after they go.
:meth:`Hub.add` returns only once Redis has confirmed the subscription, so anything published
after that is sure to arrive.

The hub hands each live event to every listener of its channel by calling the listener's
``offer`` at once, from the task that reads pub/sub: no queue and no task per listener, so a
watch that waits for events costs no more than its place in a set. ``offer`` must not block
(a watch sends without waiting, and closes a client that falls too far behind: see
:mod:`realtime.session`), so every listener is served at the same pace whatever the others do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from taskcore import eventlog
from taskcore.errors import EventDecodeError
from taskcore.event import Event
from taskcore.names import Names

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 30.0
"""How long Redis may take to confirm a subscription: a safety net, generous for a busy instance."""


class Resync:
    """Offered to a channel's listeners when its subscription was renewed after a dropped
    connection: events published meanwhile were lost to pub/sub, so read the log now."""


RESYNC = Resync()


class Listener(Protocol):
    """What the hub hands a channel's live events to."""

    def offer(self, item: Event | Resync) -> None:
        """Take one live event (or a resync); called from the hub's reader, so it must not block."""


class Hub:
    def __init__(self, redis: aioredis.Redis, names: Names) -> None:
        self._names = names
        self._pubsub = redis.pubsub()
        self._listeners: dict[str, set[Listener]] = {}
        """Each subscribed channel's listeners; an emptied set waits for :meth:`_prune`."""
        self._unconfirmed: dict[str, asyncio.Future[None]] = {}
        """Channels subscribed whose confirmation has not come back from Redis yet."""
        self._emptied: set[str] = set()
        self._lock = asyncio.Lock()
        """Held while (un)subscribing, so that the two are sent to Redis in the order decided."""
        self._active = asyncio.Event()
        self._prune_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def subscriptions(self) -> int:
        """How many channels this instance is subscribed to."""
        return len(self._listeners)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read(), name="hub-reader"),
            asyncio.create_task(self._prune(), name="hub-pruner"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def add(self, task_id: str, listener: Listener) -> None:
        """Offer ``task_id``'s live events to ``listener`` from now on, until :meth:`remove`.

        Returns once Redis has confirmed that the channel is subscribed.
        """
        channel = self._names.event_channel(task_id)
        async with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None:
                listeners = self._listeners[channel] = {listener}
                self._unconfirmed[channel] = asyncio.get_running_loop().create_future()
                await self._pubsub.subscribe(channel)
                self._active.set()
            else:
                listeners.add(listener)
            waiter = self._unconfirmed.get(channel)
        if waiter is not None:
            # Shielded: the listener that gives up waiting does not cancel it for the others.
            await asyncio.wait_for(asyncio.shield(waiter), timeout=SUBSCRIBE_TIMEOUT_S)

    def remove(self, task_id: str, listener: Listener) -> None:
        """Offer nothing more to ``listener``, from now on; a channel left without listeners is
        unsubscribed a moment later (unless a listener comes back to it meanwhile)."""
        channel = self._names.event_channel(task_id)
        listeners = self._listeners.get(channel)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        if not listeners:
            self._emptied.add(channel)
            self._prune_wanted.set()

    async def _prune(self) -> None:
        """Unsubscribe the channels whose last listener left, several in one command."""
        while True:
            await self._prune_wanted.wait()
            self._prune_wanted.clear()
            async with self._lock:
                channels = [c for c in self._emptied if not self._listeners.get(c, True)]
                self._emptied.clear()
                for channel in channels:
                    del self._listeners[channel]
                    self._unconfirmed.pop(channel, None)
                if channels:
                    try:
                        await self._pubsub.unsubscribe(*channels)
                    except RedisError:
                        # The connection is down: redis-py subscribes again only to the
                        # channels it still knows, and these are no longer among them.
                        log.warning("pub/sub unsubscribe failed", exc_info=True)

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
                waiter = self._unconfirmed.pop(channel, None)
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(None)
                elif channel in self._listeners:
                    # redis-py subscribes again after a reconnect: tell the watches at once.
                    self._offer(channel, RESYNC)
            elif message["type"] == "message":
                try:
                    event = eventlog.decode_message(message["data"])
                except EventDecodeError:
                    log.exception("unreadable event on %s; dropped", channel)
                    continue
                self._offer(channel, event)

    def _offer(self, channel: str, item: Event | Resync) -> None:
        # A copy: a listener may leave (its watch ended) while it takes the item.
        for listener in tuple(self._listeners.get(channel, ())):
            try:
                listener.offer(item)
            except Exception:
                # One watch's failure is its own: every other listener still gets the event.
                log.exception("a listener of %s failed to take a live event", channel)
