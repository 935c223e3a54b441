"""One client's watch of one task, as a state machine without I/O.

Like the protocol objects of ``websockets``, a :class:`Watch` reads nothing and sends nothing:
the session feeds it what it read (the task's log and record) and what arrived live, sends the
frames :meth:`Watch.data_to_send` hands back, and does next what :attr:`Watch.need` asks. All
the ordering lives here, so it is tested without sockets, Redis or a clock
(``tests/unit/test_watch.py``).

What the client gets, whatever order reads and live events come in: a snapshot, then every
event of the task's log after the snapshot's cursor, each once, in ``seq`` order, then ``end``.
When that cannot be kept (the log was lost and began a new epoch, or was trimmed past the
cursor), the watch starts over with a fresh snapshot that says ``resumed: false``: a reset,
never a silent gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from taskcore import protocol
from taskcore.event import Cursor, Event
from taskcore.protocol import ErrorCode, ProtocolError
from taskcore.task import Task


@dataclass(frozen=True)
class LogState:
    """A read of a task's log: its epoch (``None`` if the log does not exist), the events read,
    in ``seq`` order, and the task's current form as of the log's last event, if Redis has it
    (read in the same transaction: the record and the log agree)."""

    epoch: str | None
    events: list[Event]
    record: Task | None = None


class Need(Enum):
    """What the session must do next for a watch."""

    SNAPSHOT = "snapshot"
    """Read the whole log (started: see ``EventLogReader.start``) and the record, then
    :meth:`Watch.receive_snapshot`."""
    LOG = "log"
    """Read the log after :attr:`Watch.sent`, then :meth:`Watch.receive_log`."""
    LIVE = "live"
    """Wait for live events (:meth:`Watch.receive_live`). If none come for a while, read the
    log after :attr:`Watch.sent` (:meth:`Watch.receive_log`) and now and then the record
    (:meth:`Watch.receive_record`); while :attr:`Watch.ending`, wait only the grace period,
    then :meth:`Watch.grace_expired`."""
    NOTHING = "nothing"
    """The watch has ended: its ``end`` is among the frames to send."""


class Watch:
    """The stream of one task to one client."""

    __slots__ = (
        "_early",
        "_final",
        "_frames",
        "_grace_over",
        "_pending",
        "_requested",
        "epoch",
        "need",
        "owner",
        "sent",
        "task_id",
    )

    def __init__(self, task_id: str, owner: str, cursor: Cursor | None) -> None:
        self.task_id = task_id
        self.owner = owner
        self.need = Need.SNAPSHOT
        self.epoch: str | None = None
        """The epoch of the log this watch follows; ``None`` until it has one."""
        self.sent = 0
        """The ``seq`` of the last event the client has (sent, or in its snapshot's cursor)."""
        self._requested = cursor
        self._early: list[Event] = []
        """Live events that arrived before the snapshot they follow."""
        self._pending: dict[int, Event] = {}
        """Live events after a gap, held until the log fills it."""
        self._final: Task | None = None
        self._grace_over = False
        self._frames: list[str] = []

    @property
    def ended(self) -> bool:
        return self.need is Need.NOTHING

    @property
    def ending(self) -> bool:
        """The record says the task has ended, and its terminal event has not come yet."""
        return self._final is not None and not self.ended

    def data_to_send(self) -> list[str]:
        """The frames to send, in order; each is returned once."""
        frames, self._frames = self._frames, []
        return frames

    def receive_snapshot(self, log: LogState, record: Task | None) -> None:
        """Start (or start over) from a read of the whole log, then of the record.

        The record must be read after the log: workers write the record before they append
        its event, so the snapshot is never older than the log read before it.
        """
        if record is None or record.owner != self.owner:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no task {self.task_id}", self.task_id)
        start, resumed = self._resume_point(log)
        self.epoch, self.sent = log.epoch, start
        self.need = Need.LIVE
        self._frames.append(protocol.snapshot(record, Cursor(log.epoch, start), resumed))
        for event in log.events:
            self._accept(event)
        early, self._early = self._early, []
        for event in early:
            # Sent before the log was read: one of another epoch is of a log lost since.
            if event.epoch == self.epoch:
                self._accept(event)
        if self.need in (Need.NOTHING, Need.SNAPSHOT) or not record.status.is_terminal:
            return
        last = log.events[-1] if log.events else None
        if last is not None and last.status.is_terminal:
            # Its terminal event is behind the cursor already: nothing more will come.
            self._end(protocol.end(last))
        else:
            self._final = record

    def _resume_point(self, log: LogState) -> tuple[int, bool]:
        """Where the client's cursor continues this log, or the log's end for a new client."""
        last = log.events[-1].seq if log.events else 0
        first = log.events[0].seq if log.events else last + 1
        cursor, self._requested = self._requested, None
        if cursor is not None:
            if cursor.epoch == log.epoch and first - 1 <= cursor.seq <= last:
                return cursor.seq, True
            if cursor.epoch is None and cursor.seq == 0 and first == 1:
                # A cursor handed out before the log existed (by a server that did not start
                # logs): the client has seen no event, and the log holds every one.
                return 0, True
        return last, False

    def receive_live(self, event: Event) -> None:
        """An event that arrived on the task's channel."""
        if self.need is Need.NOTHING:
            return
        if self.need is Need.SNAPSHOT:
            self._early.append(event)
            return
        if self.epoch is None:
            self.epoch = event.epoch  # the log began after the snapshot read it
        elif event.epoch != self.epoch:
            # Either the log was lost and began again (then the client's cursor means nothing
            # in it), or this is a late event of a log lost before ours began: the log says
            # which. The event itself is not needed either way.
            self.need = Need.LOG
            return
        self._accept(event)

    def receive_log(self, log: LogState) -> None:
        """A read of the log after :attr:`sent`: fills a gap, or catches up after a quiet spell."""
        if self.need in (Need.NOTHING, Need.SNAPSHOT):
            return
        if self.epoch is None:
            self.epoch = log.epoch
        elif log.epoch not in (None, self.epoch):
            self._reset()  # the log was lost and began again
            return
        for event in log.events:
            self._accept(event)
        if self.ended:
            return
        if self._pending:
            # A gap the log cannot fill: trimmed past the client's place, or lost.
            self._reset()
            return
        self.need = Need.LIVE
        if self._final is not None and self._grace_over:
            # Its terminal event is not coming (the log was lost): end from the record.
            self._end(protocol.end(self._final))

    def receive_record(self, record: Task | None) -> None:
        """A fresh read of the record, made now and then while the watch is quiet."""
        if self.need is not Need.LIVE or self._final is not None:
            return
        if record is not None and record.status.is_terminal:
            self._final = record

    def grace_expired(self) -> None:
        """The terminal event did not follow the terminal record in time: check the log last."""
        if self.ending:
            self._grace_over = True
            self.need = Need.LOG

    def _accept(self, event: Event) -> None:
        if event.seq <= self.sent or self.ended:
            return
        if event.seq > self.sent + 1:
            self._pending[event.seq] = event
            self.need = Need.LOG
            return
        self._emit(event)
        while not self.ended and (following := self._pending.pop(self.sent + 1, None)):
            self._emit(following)
        for seq in [seq for seq in self._pending if seq <= self.sent]:
            del self._pending[seq]

    def _emit(self, event: Event) -> None:
        self._frames.append(_event_frame(event))
        self.sent = event.seq
        if event.status.is_terminal:
            self._end(protocol.end(event))

    def _end(self, frame: str) -> None:
        self._frames.append(frame)
        self.need = Need.NOTHING
        self._pending.clear()
        self._early.clear()

    def _reset(self) -> None:
        """Start over with a fresh snapshot that tells the client so (``resumed: false``)."""
        self.need = Need.SNAPSHOT
        self._requested = None
        self._pending.clear()
        self._final = None
        self._grace_over = False


_last_frame: tuple[Event, str] | None = None


def _event_frame(event: Event) -> str:
    """``protocol.event(event)``, encoded once however many watches send it: the hub hands the
    same event object to every watch of its task, one after the other."""
    global _last_frame
    if _last_frame is None or _last_frame[0] is not event:
        _last_frame = (event, protocol.event(event))
    return _last_frame[1]
