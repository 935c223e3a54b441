"""One client connection: its subscriptions, and the I/O of each watch.

Each watch's ordering lives in :class:`realtime.watch.Watch`, a state machine without I/O; this
module does what it asks, in this order, so that nothing is missed between replay and live:

1. listen to the task's channel (confirmed by Redis), holding what arrives;
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

A watch runs a task only while it does I/O (the steps above, a log read, an idle check); live
events that come meanwhile are held, and fed to the machine after it, in order. A watch that
waits for events is an object in the hub's listeners and one timer: the hub hands it each event
and it sends the frames at once, without a task; and the connection's own task (the one
websockets runs it in) reads the client's messages and pings it. So 10,000 watchers fit in
16 KiB each (docs/decisions.md). Live frames are written without waiting while the client
keeps up; past the socket's write limit they queue on the connection, and a connection that
falls ``max_buffered`` frames behind (or a watch that holds as many live events while it
reads) is closed with 1013: the client resumes from its cursor. What a watch's own reads
produce (a replay of the log may be long) waits for the client instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection, broadcast
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

MAX_BUFFERED = 1000
"""Frames a connection may have waiting to be written, and live events a watch may hold while it
reads, before its client is judged too slow and closed with 1013."""

WRITE_LIMIT = 2**15
"""The bytes a connection's socket may buffer before frames wait on the connection instead
(websockets' ``write_limit``)."""


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
    """Every connection is pinged this often (as websockets' keepalive does, from the
    connection's own task)..."""
    ping_timeout_s: float = 20.0
    """...and closed if its pong does not come back in this time: a dead client is let go."""
    terminal_grace_s: float = 2.0
    """How long a terminal record waits for its event before ``end`` is sent from the record."""
    first_event_wait_s: float = 1.0
    """How long a snapshot of a task that Redis holds nothing of waits for the task's first
    event (the relay's ``queued``) before it reads the record from DynamoDB."""


class Session:
    """One connection: reads the client's messages, starts and stops its watches, and writes
    the frames they send, in order."""

    __slots__ = (
        "_backlog",
        "_closing",
        "_flushing",
        "_pinged_at",
        "_pong",
        "_secret",
        "_subscribes",
        "_wake_at",
        "_watches",
        "_ws",
        "hub",
        "limits",
        "max_buffered",
        "reader",
        "store",
    )

    def __init__(
        self,
        websocket: ServerConnection,
        hub: Hub,
        store: TaskStore,
        reader: EventLogReader,
        secret: bytes,
        limits: Limits,
        max_buffered: int = MAX_BUFFERED,
    ) -> None:
        self._ws = websocket
        self.hub = hub
        self.store = store
        self.reader = reader
        self._secret = secret
        self.limits = limits
        self.max_buffered = max_buffered
        self._watches: dict[str, _TaskWatch] = {}
        self._subscribes: list[float] = []
        """When the subscribes of the last ``Limits.window_s`` came."""
        self._backlog: deque[str] | None = None
        """Frames waiting for the client to read what its socket holds; ``None`` while it keeps up."""
        self._flushing: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._pong: asyncio.Future[float] | None = None
        """The keepalive ping's pong, once a ping has been sent."""
        self._pinged_at = 0.0
        self._wake_at = asyncio.get_running_loop().time() + limits.ping_interval_s
        """When to ping next, or to check that the pong came."""

    async def run(self) -> None:
        try:
            while True:
                message = protocol.parse_client(await self._receive())
                if isinstance(message, Unsubscribe):
                    self._stop_watch(message.task_id)
                else:
                    self._start_watch(message)
        except ProtocolError as exc:
            self.refuse(exc)
        except ConnectionClosed:
            pass
        finally:
            stopping = [watch.stop() for watch in self._watches.values()]
            self._watches.clear()
            # Let cancelled reads finish before the connection is forgotten.
            await asyncio.gather(*filter(None, stopping), return_exceptions=True)
            if self._closing is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._closing

    async def _receive(self) -> str | bytes:
        """The client's next message; meanwhile, websockets' keepalive, in this very task: a
        ping every ``Limits.ping_interval_s``, and a client whose pong is ``ping_timeout_s``
        late is let go."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(self._wake_at):
                    return await self._ws.recv()  # safe to cancel: no message is lost
            except TimeoutError:
                pass
            now = loop.time()
            limits = self.limits
            if self._pong is not None and not self._pong.done():
                if now < self._pinged_at + limits.ping_timeout_s:
                    self._wake_at = self._pinged_at + limits.ping_timeout_s
                    continue
                log.info("client %s did not answer a ping; closing", self._ws.remote_address)
                self._ws.transport.abort()  # gone, or as good as: no close handshake to wait for
                self._wake_at = now + limits.ping_timeout_s
                continue  # recv() raises ConnectionClosed as soon as the loop has seen it close
            if self._pong is not None and now < self._pinged_at + limits.ping_interval_s:
                self._wake_at = self._pinged_at + limits.ping_interval_s
                continue
            # ping() hands back a future already: ensure_future only says so to the type checker.
            self._pong = asyncio.ensure_future(await self._ws.ping())
            self._pinged_at = now
            self._wake_at = now + min(limits.ping_interval_s, limits.ping_timeout_s)

    def _start_watch(self, request: Subscribe) -> None:
        self._count_subscribe()
        try:
            claims = token.verify(self._secret, request.token, request.task_id)
        except TokenError as exc:
            raise ProtocolError(exc.code, str(exc), request.task_id) from None
        if request.task_id in self._watches:
            return  # already watching: the first subscribe's stream carries on
        if len(self._watches) >= self.limits.max_subscriptions:
            limit = self.limits.max_subscriptions
            raise ProtocolError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS, f"at most {limit} tasks per connection"
            )
        watch = _TaskWatch(self, request.task_id, claims.owner, request.cursor)
        self._watches[request.task_id] = watch
        watch.start()

    def _stop_watch(self, task_id: str) -> None:
        """Stop watching at once: a subscribe that follows starts a new watch of the task."""
        watch = self._watches.pop(task_id, None)
        if watch is not None:
            watch.stop()

    def forget(self, watch: _TaskWatch) -> None:
        """``watch`` has ended (or failed): the client may subscribe to its task again."""
        # Only this watch: after an unsubscribe, a new subscribe may watch the task again.
        if self._watches.get(watch.task_id) is watch:
            del self._watches[watch.task_id]

    def _count_subscribe(self) -> None:
        """Close a connection that floods subscribe requests (a token-guessing client, a bug)."""
        now = asyncio.get_running_loop().time()
        recent = self._subscribes
        recent.append(now)
        while recent[0] <= now - self.limits.window_s:
            del recent[0]
        if len(recent) > self.limits.subscribes_per_window:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"more than {self.limits.subscribes_per_window} subscribes in {self.limits.window_s:.0f} s",
            )

    def send(self, frame: str) -> None:
        """Write ``frame`` now if the client keeps up, else queue it behind the others."""
        if self._closing is not None:
            return  # the client resumes from its cursor: nothing more is worth sending
        if self._backlog is None:
            if self._ws.transport.get_write_buffer_size() <= WRITE_LIMIT:
                broadcast((self._ws,), frame)  # websockets' write that does not wait
                return
            self._backlog = deque()
            self._flushing = asyncio.create_task(self._flush(self._backlog))
        if len(self._backlog) >= self.max_buffered:
            self.too_slow()
            return
        self._backlog.append(frame)

    async def send_waiting(self, frame: str) -> None:
        """Write ``frame`` after the queued ones, waiting for the client to read rather than
        queueing: for what a watch's own reads produced (a replay of the log may be long)."""
        if self._flushing is not None and not self._flushing.done():
            await asyncio.wait({self._flushing})  # not cancelled with this watch's reads
        if self._closing is None:
            await self._ws.send(frame)

    async def _flush(self, backlog: deque[str]) -> None:
        """Write the queued frames as fast as the client reads them, then write directly again."""
        with contextlib.suppress(ConnectionClosed):
            while backlog:
                await self._ws.send(backlog.popleft())  # waits while the socket's buffer is full
        self._backlog = None

    def too_slow(self) -> None:
        """The client fell too far behind: close now, so that it resumes from its cursor."""
        if self._closing is None:
            log.warning(
                "client %s is not reading; closing with %d", self._ws.remote_address, TOO_SLOW
            )
            if self._backlog is not None:
                self._backlog.clear()  # what it has not read yet, it will read from the log
            self._closing = asyncio.create_task(
                self._ws.close(TOO_SLOW, "too slow: reconnect and resume from your cursor")
            )

    def refuse(self, exc: ProtocolError) -> None:
        """Send the error after the frames already sent, then close with its code."""
        if self._closing is None:
            log.info("refusing client %s: %s (%s)", self._ws.remote_address, exc.code, exc.message)
            self.send(protocol.error(exc))
            self._closing = asyncio.create_task(self._close_after_backlog(exc))

    async def _close_after_backlog(self, exc: ProtocolError) -> None:
        if self._flushing is not None:
            await self._flushing
        await self._ws.close(exc.close_code, exc.code)


class _TaskWatch:
    """The I/O of one watch: reads, live events and timers, for a :class:`Watch` to order."""

    __slots__ = (
        "_busy",
        "_grace_ends",
        "_heard",
        "_held",
        "_idle_s",
        "_machine",
        "_next_record_check",
        "_session",
        "_stopped",
        "_timer",
        "_waiter",
        "task_id",
        "trace_id",
    )

    def __init__(self, session: Session, task_id: str, owner: str, cursor: Cursor | None) -> None:
        self._session = session
        self.task_id = task_id
        self._machine = Watch(task_id, owner, cursor)
        self._busy: asyncio.Task[None] | None = None
        """The I/O under way; live events are held meanwhile."""
        self._held: deque[Event | Resync] | None = None
        self._waiter: asyncio.Future[None] | None = None
        """Set when something is held: for the snapshot that waits for a task's first event."""
        self._timer: asyncio.TimerHandle | None = None
        # Jittered, so that watches started together do not all check at once.
        self._idle_s = session.limits.idle_check_s * random.uniform(0.75, 1.25)
        self._heard = 0.0
        """When the last live event came (the loop's clock)."""
        self._grace_ends: float | None = None
        self._next_record_check = 0.0
        self._stopped = False
        self.trace_id: str | None = None
        """The task's trace, once its record has been read: for the watch's log lines."""

    def start(self) -> None:
        self._do(self._listen)

    def stop(self) -> asyncio.Task[None] | None:
        """Stop at once: leave the channel, cancel the I/O under way (returned, to be awaited)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._session.hub.remove(self.task_id, self)
        busy, self._busy = self._busy, None
        if busy is not None:
            busy.cancel()
        return busy

    def offer(self, item: Event | Resync) -> None:
        """A live event (or a resync) from the hub: fed to the machine now, or held while it
        waits for I/O."""
        if self._stopped:
            return
        if self._busy is not None:
            held = self._held
            if held is None:
                held = self._held = deque()
            if len(held) >= self._session.max_buffered:
                self._session.too_slow()
                return
            held.append(item)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            return
        if isinstance(item, Resync):
            self._do(self._read_log)
            return
        passed_on = self._receive_live(item)
        for frame in self._machine.data_to_send():
            self._session.send(frame)
        if passed_on:
            metrics.delivered(item)
        if self._machine.ended:
            self._end()
        elif self._machine.need is not Need.LIVE:
            self._do(None)  # a gap, or another epoch: the machine asks for the log

    def _receive_live(self, event: Event) -> bool:
        """Feed the machine a live event; says whether it passed it on (for its lag)."""
        self._heard = asyncio.get_running_loop().time()
        machine = self._machine
        before = machine.sent
        machine.receive_live(event)
        return before < event.seq <= machine.sent

    def _end(self) -> None:
        """The machine has sent ``end``: the watch is over."""
        self.stop()
        self._session.forget(self)

    def _do(self, step: Callable[[], Awaitable[None]] | None) -> None:
        """Run ``step``, then whatever else the machine asks for, in a task of its own."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._busy = asyncio.create_task(self._io(step), name=f"watch-{self.task_id}")

    async def _io(self, step: Callable[[], Awaitable[None]] | None) -> None:
        try:
            if step is not None:
                await step()
            await self._catch_up()
        except ProtocolError as exc:
            self._fail(exc)
            return
        except ConnectionClosed:
            return  # the session ends, and stops its watches
        except Exception:
            with logs.traced(self.trace_id):
                log.exception("task %s: watch failed", self.task_id)
            self._fail(
                ProtocolError(
                    ErrorCode.UNAVAILABLE,
                    "this instance cannot serve the task now; reconnect",
                    self.task_id,
                )
            )
            return
        self._busy = None
        if self._machine.ended:
            self._end()
        else:
            self._arm()

    def _fail(self, exc: ProtocolError) -> None:
        self._busy = None  # this very task: not to be cancelled by stop()
        self._end()
        self._session.refuse(exc)

    async def _catch_up(self) -> None:
        """Send what the machine has to send, do the reads it asks for, and feed it what was
        held meanwhile, in order, until it waits for live events again (or has ended)."""
        machine = self._machine
        while True:
            for frame in machine.data_to_send():
                await self._session.send_waiting(frame)
            if machine.ended:
                break
            if machine.need is Need.SNAPSHOT:
                await self._snapshot()
            elif machine.need is Need.LOG:
                await self._read_log()
            elif self._held:
                item = self._held.popleft()
                if isinstance(item, Resync):
                    await self._read_log()
                elif self._receive_live(item):
                    for frame in machine.data_to_send():
                        await self._session.send_waiting(frame)
                    metrics.delivered(item)
            else:
                break
        self._held = None  # empty, or no longer wanted: not kept while the watch waits live

    async def _listen(self) -> None:
        await self._session.hub.add(self.task_id, self)

    async def _read_log(self) -> None:
        machine = self._machine
        machine.receive_log(await self._session.reader.read(self.task_id, machine.sent))

    async def _snapshot(self) -> None:
        self._grace_ends = None  # a reset starts over: a new end gets a grace of its own
        state = await self._read_started()
        if state.record is None:
            state = await self._wait_first_event(state)
        record = state.record
        if record is None:
            # Redis lost the log, or the task has not reached the relay yet.
            record = await asyncio.to_thread(self._session.store.get, self.task_id)
            self._schedule_record_check()  # the snapshot has just read it
        if record is not None and record.owner == self._machine.owner:
            self.trace_id = record.trace_id
        self._machine.receive_snapshot(state, record)

    async def _wait_first_event(self, state: LogState) -> LogState:
        """Wait a little for the first event of a task Redis holds nothing of, then read the log
        again; what came live meanwhile waits in the machine for the snapshot."""
        if not self._held:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, self._session.limits.first_event_wait_s)
            except TimeoutError:
                return state
            finally:
                self._waiter = None
        assert self._held
        item = self._held.popleft()
        if isinstance(item, Event):
            self._machine.receive_live(item)
        return await self._session.reader.read(self.task_id)

    async def _read_started(self) -> LogState:
        """The whole log, started if it does not exist yet (see the module's step 2)."""
        reader = self._session.reader
        state = await reader.read(self.task_id)
        if state.epoch is not None:
            return state
        # Started here, it is empty; started by a worker's append meanwhile, it is read again.
        return await reader.start(self.task_id) or await reader.read(self.task_id)

    def _arm(self) -> None:
        """Wake up when the watch has heard nothing for a while, or its grace is over."""
        loop = asyncio.get_running_loop()
        if self._machine.ending:
            if self._grace_ends is None:
                self._grace_ends = loop.time() + self._session.limits.terminal_grace_s
            when = self._grace_ends
        else:
            self._grace_ends = None
            when = loop.time() + self._idle_s
        self._timer = loop.call_at(when, self._wake)

    def _wake(self) -> None:
        self._timer = None
        if self._stopped or self._busy is not None:
            return
        loop = asyncio.get_running_loop()
        if not self._machine.ending and loop.time() < self._heard + self._idle_s:
            # Events came since the timer was set: quiet for less than idle_check_s so far.
            self._timer = loop.call_at(self._heard + self._idle_s, self._wake)
            return
        self._do(self._when_quiet)

    async def _when_quiet(self) -> None:
        """Nothing came live: end a finished task's grace, or catch up from the log and record."""
        machine = self._machine
        if machine.ending:
            machine.grace_expired()
            return
        await self._read_log()
        if machine.need is not Need.LIVE:
            return
        if asyncio.get_running_loop().time() < self._next_record_check:
            return
        self._schedule_record_check()
        machine.receive_record(await asyncio.to_thread(self._session.store.get, self.task_id))

    def _schedule_record_check(self) -> None:
        jitter = random.uniform(0.75, 1.25)
        self._next_record_check = (
            asyncio.get_running_loop().time() + self._session.limits.record_check_s * jitter
        )
