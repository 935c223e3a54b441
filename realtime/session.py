"""One client connection: its subscriptions, and the I/O of each watch.

Each watch's ordering lives in :class:`realtime.watch.Watch`, a state machine without I/O; this
module does what it asks, in this order, so that nothing is missed between replay and live:

1. listen to the task's channel (confirmed by Redis), buffering what arrives;
2. read the log from Redis, starting it (giving it an epoch) if it has none yet, so that even
   the first snapshot's cursor names the log that its events will be in;
3. take the snapshot from the task's current form, which the log keeps beside its events (read
   with them, in one transaction, so the two agree). A task the relay has not announced yet
   has no current form in Redis: the watch waits up to ``Limits.first_event_wait_s`` for its
   first event, then reads the record from DynamoDB (as it does when Redis lost the log).
   Workers write the record before they append the event, so that snapshot is never older
   than the log just read;
4. feed the machine live events as they come, and the log whenever it asks (after a gap, or a
   new epoch), sending every frame it returns.

A watch that hears nothing for ``Limits.idle_check_s`` re-reads the log, so a lost pub/sub message
delays an event but never loses it; every ``Limits.record_check_s`` it also reads the record, so the
final status arrives even if its event never reached the log. When the hub's Redis connection
comes back after a drop, every watch re-reads its log at once.
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

from taskcore import logs, protocol, token
from taskcore.errors import TokenError
from taskcore.event import Cursor, Event
from taskcore.protocol import TOO_SLOW, ErrorCode, ProtocolError, Subscribe, Unsubscribe
from taskcore.store import TaskStore

from . import metrics
from .eventlog import EventLogReader
from .hub import Hub, Resync
from .watch import LogState, Need, Watch

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
    first_event_wait_s: float = 1.0
    """How long a snapshot of a task that Redis holds nothing of waits for the task's first
    event (the relay's ``queued``) before it reads the record from DynamoDB."""


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
                message = protocol.parse_client(raw)
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
            raise ProtocolError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS, f"at most {limit} tasks per connection"
            )
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
                ErrorCode.RATE_LIMITED,
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
        try:
            await watch.run(request.cursor)
        except ProtocolError as exc:
            await self._refuse(exc)
        except (ConnectionClosed, asyncio.CancelledError):
            pass
        except Exception:
            with logs.traced(watch.trace_id):
                log.exception("task %s: watch failed", request.task_id)
            await self._refuse(
                ProtocolError(
                    ErrorCode.UNAVAILABLE,
                    "this instance cannot serve the task now; reconnect",
                    request.task_id,
                )
            )


class _TaskWatch:
    """The I/O of one watch: reads, live events and timers, for a :class:`Watch` to order."""

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
        self._next_record_check = 0.0
        self.trace_id: str | None = None
        """The task's trace, once its record has been read: for the watch's log lines."""

    async def run(self, cursor: Cursor | None) -> None:
        machine = Watch(self._task_id, self._owner, cursor)
        grace_ends: float | None = None
        loop = asyncio.get_running_loop()
        async with self._hub.listen(self._task_id, self._on_overflow) as live:
            while not machine.ended:
                delivered: Event | None = None
                if machine.need is Need.SNAPSHOT:
                    grace_ends = None  # a reset starts over: a new end gets a grace of its own
                    state = await self._read_started()
                    if state.record is None:
                        state = await self._wait_first_event(machine, live, state)
                    record = state.record
                    if record is None:
                        # Redis lost the log, or the task has not reached the relay yet.
                        record = await asyncio.to_thread(self._store.get, self._task_id)
                        self._schedule_record_check()  # the snapshot has just read it
                    if record is not None and record.owner == self._owner:
                        self.trace_id = record.trace_id
                    machine.receive_snapshot(state, record)
                elif machine.need is Need.LOG:
                    machine.receive_log(await self._reader.read(self._task_id, machine.sent))
                else:
                    if not machine.ending:
                        grace_ends = None
                    elif grace_ends is None:
                        grace_ends = loop.time() + self._limits.terminal_grace_s
                    delivered = await self._wait_live(machine, live, grace_ends)
                for frame in machine.data_to_send():
                    await self._send(frame)
                if delivered is not None:
                    metrics.delivered(delivered)

    async def _wait_live(
        self, machine: Watch, live: asyncio.Queue[Event | Resync], grace_ends: float | None
    ) -> Event | None:
        """Feed the machine the next live event, or the log after a quiet spell or a resync.

        Returns the live event if the machine passed it on to the client (for its lag).
        """
        loop = asyncio.get_running_loop()
        timeout = self._idle_timeout() if grace_ends is None else grace_ends - loop.time()
        try:
            item = await asyncio.wait_for(live.get(), timeout=max(timeout, 0))
        except TimeoutError:
            await self._when_quiet(machine)
            return None
        if isinstance(item, Resync):
            machine.receive_log(await self._reader.read(self._task_id, machine.sent))
            return None
        before = machine.sent
        machine.receive_live(item)
        return item if before < item.seq <= machine.sent else None

    async def _wait_first_event(
        self, machine: Watch, live: asyncio.Queue[Event | Resync], state: LogState
    ) -> LogState:
        """Wait a little for the first event of a task Redis holds nothing of, then read the log
        again; what came live meanwhile waits in the machine for the snapshot."""
        try:
            item = await asyncio.wait_for(live.get(), self._limits.first_event_wait_s)
        except TimeoutError:
            return state
        if isinstance(item, Event):
            machine.receive_live(item)
        return await self._reader.read(self._task_id)

    async def _read_started(self) -> LogState:
        """The whole log, started if it does not exist yet (see the module's step 2)."""
        state = await self._reader.read(self._task_id)
        if state.epoch is not None:
            return state
        # Started here, it is empty; started by a worker's append meanwhile, it is read again.
        return await self._reader.start(self._task_id) or await self._reader.read(self._task_id)

    async def _when_quiet(self, machine: Watch) -> None:
        """Nothing came live: end a finished task's grace, or catch up from the log and record."""
        if machine.ending:
            machine.grace_expired()
            return
        machine.receive_log(await self._reader.read(self._task_id, machine.sent))
        if machine.need is not Need.LIVE:
            return
        if asyncio.get_running_loop().time() < self._next_record_check:
            return
        self._schedule_record_check()
        machine.receive_record(await asyncio.to_thread(self._store.get, self._task_id))

    def _schedule_record_check(self) -> None:
        jitter = random.uniform(0.75, 1.25)
        self._next_record_check = (
            asyncio.get_running_loop().time() + self._limits.record_check_s * jitter
        )

    def _idle_timeout(self) -> float:
        # Jittered, so that watches started together do not all check at once.
        return self._limits.idle_check_s * random.uniform(0.75, 1.25)
