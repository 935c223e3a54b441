"""One client connection: its subscriptions, and the gap-free stream of each watched task.

Watching a task, in this order, so that no event is missed or doubled between replay and live:

1. listen to the task's channel (confirmed by Redis) and buffer what arrives;
2. read the log (epoch and events) from Redis;
3. read the record (the snapshot) from DynamoDB. Workers write the record before they append the
   event, so the snapshot is never older than the log just read;
4. send the snapshot with the cursor that the following events continue from: the client's own
   cursor if it is still in this log (a resume), else the log's last ``seq``;
5. send the logged events after that cursor, then live ones, dropping any ``seq`` already sent and
   filling any gap from the log, until the terminal event; then ``end``.

A watch that hears nothing for ``Limits.idle_check_s`` re-reads the log, so a lost pub/sub message
delays an event but never loses it; every ``Limits.record_check_s`` it also reads the record, so the
final status arrives even if its event never reached the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from taskcore import token
from taskcore.errors import TokenError
from taskcore.event import Cursor, Event
from taskcore.store import TaskStore
from taskcore.task import Task

from . import protocol
from .eventlog import EventLogReader
from .hub import Hub
from .protocol import ProtocolError, Subscribe, Unsubscribe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one connection may do, and how long a watch waits before it checks for itself."""

    max_subscriptions: int = 100
    """Tasks watched at once on one connection."""
    subscribes_per_window: int = 50
    """Subscribe requests allowed per ``window_s``; more, and the connection is closed."""
    window_s: float = 10.0
    idle_check_s: float = 15.0
    """A watch that hears nothing this long re-reads the task's log (Redis: cheap)."""
    record_check_s: float = 60.0
    """...and at most this often the record (DynamoDB: a read per watch, so rarer)."""
    ping_interval_s: float = 20.0
    """Every connection is pinged this often (websockets' keepalive)..."""
    ping_timeout_s: float = 20.0
    """...and closed if its pong does not come back in this time: a dead client is let go."""
    terminal_grace_s: float = 2.0
    """How long a terminal record waits for its event before ``end`` is sent from the record."""


TOO_SLOW = 1013
"""Close code for a client that stopped reading: "try again later", from its cursor."""


class Session:
    def __init__(
        self,
        websocket: ServerConnection,
        hub: Hub,
        store: TaskStore,
        reader: EventLogReader,
        secret: bytes,
        limits: Limits,
    ) -> None:
        self._ws = websocket
        self._hub = hub
        self._store = store
        self._reader = reader
        self._secret = secret
        self._limits = limits
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        """Watches cancelled but not yet finished (leaving their channels)."""
        self._recent_subscribes: deque[float] = deque()
        self._closing: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            async for raw in self._ws:
                message = protocol.parse(raw)
                if isinstance(message, Unsubscribe):
                    self._stop_watch(message.task_id)
                else:
                    self._start_watch(message)
        except ProtocolError as exc:
            await self._refuse(exc)
        except ConnectionClosed:
            pass
        finally:
            for task_id in list(self._watches):
                self._stop_watch(task_id)
            # Let cancelled watches leave their channels before the connection is forgotten.
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def _start_watch(self, request: Subscribe) -> None:
        self._count_subscribe()
        try:
            claims = token.verify(self._secret, request.token, request.task_id)
        except TokenError as exc:
            raise ProtocolError(exc.code, str(exc), request.task_id) from None
        if request.task_id in self._watches:
            return  # already watching: the first subscribe's stream carries on
        if len(self._watches) >= self._limits.max_subscriptions:
            limit = self._limits.max_subscriptions
            raise ProtocolError("too_many_subscriptions", f"at most {limit} tasks per connection")
        watch = asyncio.create_task(
            self._watch(request, claims.owner), name=f"watch-{request.task_id}"
        )
        self._watches[request.task_id] = watch
        watch.add_done_callback(lambda done: self._forget(request.task_id, done))

    def _forget(self, task_id: str, done: asyncio.Task[None]) -> None:
        # Only this watch: after an unsubscribe, a new subscribe may watch the task again.
        if self._watches.get(task_id) is done:
            del self._watches[task_id]
        self._stopping.discard(done)

    def _count_subscribe(self) -> None:
        """Close a connection that floods subscribe requests (a token-guessing client, a bug)."""
        now = asyncio.get_running_loop().time()
        recent = self._recent_subscribes
        recent.append(now)
        while recent and recent[0] <= now - self._limits.window_s:
            recent.popleft()
        if len(recent) > self._limits.subscribes_per_window:
            raise ProtocolError(
                "rate_limited",
                f"more than {self._limits.subscribes_per_window} subscribes in {self._limits.window_s:.0f} s",
            )

    def _too_slow(self) -> None:
        """A watch's buffer overflowed: close, so the client resumes from its cursor."""
        if self._closing is None:
            log.warning(
                "client %s is not reading; closing with %d", self._ws.remote_address, TOO_SLOW
            )
            self._closing = asyncio.create_task(
                self._ws.close(TOO_SLOW, "too slow: reconnect and resume from your cursor")
            )

    def _stop_watch(self, task_id: str) -> None:
        """Stop watching at once: a subscribe that follows starts a new watch of the task."""
        watch = self._watches.pop(task_id, None)
        if watch is not None and not watch.done():
            watch.cancel()
            self._stopping.add(watch)

    async def _refuse(self, exc: ProtocolError) -> None:
        log.info("refusing client %s: %s (%s)", self._ws.remote_address, exc.code, exc.message)
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(protocol.error(exc))
            await self._ws.close(exc.close_code, exc.code)

    async def _watch(self, request: Subscribe, owner: str) -> None:
        try:
            watch = _TaskWatch(
                request.task_id,
                owner,
                self._hub,
                self._reader,
                self._store,
                self._ws.send,
                self._limits,
                self._too_slow,
            )
            await watch.run(request.cursor)
        except ProtocolError as exc:
            await self._refuse(exc)
        except (ConnectionClosed, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("task %s: watch failed", request.task_id)
            await self._refuse(
                ProtocolError(
                    "unavailable",
                    "this instance cannot serve the task now; reconnect",
                    request.task_id,
                )
            )


class _TaskWatch:
    """The stream of one task to one client."""

    def __init__(
        self,
        task_id: str,
        owner: str,
        hub: Hub,
        reader: EventLogReader,
        store: TaskStore,
        send: Callable[[str], Awaitable[None]],
        limits: Limits,
        on_overflow: Callable[[], None],
    ) -> None:
        self._task_id = task_id
        self._owner = owner
        self._hub = hub
        self._reader = reader
        self._store = store
        self._send = send
        self._limits = limits
        self._on_overflow = on_overflow
        self._epoch: str | None = None
        self._sent = 0
        self._next_record_check = 0.0

    async def run(self, cursor: Cursor | None) -> None:
        async with self._hub.listen(self._task_id, self._on_overflow) as live:
            if await self._start(cursor, live):
                return
            while True:
                try:
                    event = await asyncio.wait_for(live.get(), timeout=self._idle_timeout())
                except TimeoutError:
                    if await self._check_idle():
                        return
                    continue
                if event.epoch != self._epoch and self._epoch is not None:
                    # The log was lost and restarted: the old cursor means nothing now.
                    if await self._start(None, live):
                        return
                    continue
                if await self._deliver(event):
                    return

    def _schedule_record_check(self) -> None:
        jitter = random.uniform(0.75, 1.25)
        self._next_record_check = (
            asyncio.get_running_loop().time() + self._limits.record_check_s * jitter
        )

    def _idle_timeout(self) -> float:
        # Jittered, so that watches started together do not all check at once.
        return self._limits.idle_check_s * random.uniform(0.75, 1.25)

    async def _start(self, cursor: Cursor | None, live: asyncio.Queue[Event]) -> bool:
        """Send the snapshot and the logged events after it; return whether the watch ended."""
        state = await self._reader.read(self._task_id)
        task = await asyncio.to_thread(self._store.get, self._task_id)
        self._schedule_record_check()  # the snapshot has just read it
        if task is None or task.owner != self._owner:
            raise ProtocolError("not_found", f"no task {self._task_id}", self._task_id)
        last = state.events[-1].seq if state.events else 0
        first = state.events[0].seq if state.events else 1
        resumed = (
            cursor is not None
            and cursor.epoch == state.epoch
            and state.epoch is not None
            and first - 1 <= cursor.seq <= last
        )
        start = cursor.seq if resumed and cursor is not None else last
        self._epoch = state.epoch
        self._sent = start
        await self._send(protocol.snapshot(task, Cursor(state.epoch, start), resumed))
        for event in state.events:
            if event.seq > start and await self._deliver(event):
                return True
        if task.status.is_terminal:
            if state.events and state.events[-1].status.is_terminal:
                # Its terminal event is already behind the cursor: nothing more will come.
                await self._send(protocol.end(state.events[-1]))
            else:
                await self._finish_terminal(task, live)
            return True
        return False

    async def _deliver(self, event: Event) -> bool:
        """Send ``event`` in order (filling any gap from the log); return whether it ended the task."""
        if self._epoch is None:
            self._epoch = event.epoch
        if event.seq <= self._sent:
            return False
        if event.seq > self._sent + 1:
            state = await self._reader.read(self._task_id, after=self._sent)
            for missed in state.events:
                if missed.seq >= event.seq:
                    break
                if await self._send_event(missed):
                    return True
        return await self._send_event(event)

    async def _send_event(self, event: Event) -> bool:
        await self._send(protocol.event(event))
        self._sent = event.seq
        if event.status.is_terminal:
            await self._send(protocol.end(event))
            return True
        return False

    async def _finish_terminal(self, task: Task, live: asyncio.Queue[Event]) -> None:
        """For a task that has ended: wait briefly for its terminal event, else end from the record."""
        deadline = asyncio.get_running_loop().time() + self._limits.terminal_grace_s
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                event = await asyncio.wait_for(live.get(), timeout=remaining)
            except TimeoutError:
                break
            if await self._deliver(event):
                return
        # Its terminal event is not coming (the log was lost): end from the record.
        await self._send(protocol.end(task))

    async def _check_idle(self) -> bool:
        """Catch up from the log after a quiet spell; now and then, end from the record."""
        state = await self._reader.read(self._task_id, after=self._sent)
        for event in state.events:
            if event.epoch == self._epoch and await self._deliver(event):
                return True
        if asyncio.get_running_loop().time() < self._next_record_check:
            return False
        self._schedule_record_check()
        task = await asyncio.to_thread(self._store.get, self._task_id)
        if task is not None and task.status.is_terminal:
            await self._send(protocol.end(task))
            return True
        return False
