"""Task events: the versioned JSON that carries every state change and progress tick.

An event's ``seq`` and ``epoch`` are stamped by the event log when it is appended, not by the
writer: ``seq`` rises by one per task with every event, and ``epoch`` names the log it belongs
to, so a client whose cursor comes from a lost log can tell and ask for a fresh snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from .clock import now_iso
from .errors import EventDecodeError
from .status import Status
from .task import Progress, Task, TaskError

EVENT_VERSION = 1


class EventKind(StrEnum):
    STATUS = "status"
    PROGRESS = "progress"
    CUSTOM = "custom"
    """An event the task's own code emitted (``ctx.emit(name, data)``)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a task's event log: the last ``seq`` seen in log ``epoch``.

    ``epoch`` is ``None`` before the task's log exists (no event yet).
    """

    epoch: str | None
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seq": self.seq}

    @classmethod
    def from_json(cls, data: Any) -> Cursor:
        """Parse a client's cursor, refusing anything that is not ``{"epoch", "seq"}``."""
        if not isinstance(data, dict):
            raise EventDecodeError("cursor must be an object with epoch and seq")
        epoch, seq = data.get("epoch"), data.get("seq")
        if epoch is not None and not isinstance(epoch, str):
            raise EventDecodeError("cursor.epoch must be a string or null")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise EventDecodeError("cursor.seq must be a non-negative integer")
        return cls(epoch, seq)


@dataclass(frozen=True, slots=True)
class Event:
    """One change to a task, as watchers receive it."""

    task_id: str
    kind: EventKind
    status: Status
    attempt: int
    progress: Progress
    ts: str
    result: Any = None
    error: TaskError | None = None
    retry_at: str | None = None
    run_at: str | None = None
    waiting: str | None = None
    name: str | None = None
    """A custom event's name."""
    data: Any = None
    """A custom event's data: any JSON value."""
    seq: int = 0
    epoch: str = ""
    trace: str | None = None
    """The task's ``traceparent``, if its record has one."""
    hops: dict[str, str | None] | None = None
    """When the task was accepted, queued and started (:meth:`Task.hops`)."""

    @classmethod
    def status_of(cls, task: Task) -> Event:
        """The status event that announces ``task`` as it now is."""
        return cls(
            task_id=task.task_id,
            kind=EventKind.STATUS,
            status=task.status,
            attempt=task.attempt,
            progress=task.progress,
            ts=now_iso(),
            result=task.result if task.status is Status.SUCCEEDED else None,
            error=task.error,
            retry_at=task.retry_at,
            # Only while it waits: once started, when it was due to start is history.
            run_at=task.run_at if task.status in (Status.PENDING, Status.QUEUED) else None,
            waiting=task.waiting if task.status is Status.QUEUED else None,
            trace=task.traceparent,
            hops=task.hops(),
        )

    @classmethod
    def progress_of(cls, task: Task) -> Event:
        """The progress event for ``task``'s current progress."""
        return replace(cls.status_of(task), kind=EventKind.PROGRESS)

    @classmethod
    def custom_of(cls, task: Task, name: str, data: Any) -> Event:
        """A custom event of ``task``'s code, stamped with the task's current state."""
        return replace(cls.status_of(task), kind=EventKind.CUSTOM, name=name, data=data)

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.epoch, self.seq)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "v": EVENT_VERSION,
            "task_id": self.task_id,
            "seq": self.seq,
            "epoch": self.epoch,
            "kind": str(self.kind),
            "status": str(self.status),
            "attempt": self.attempt,
            "progress": self.progress.to_json(),
            "ts": self.ts,
        }
        if self.result is not None:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error.to_json()
        if self.retry_at is not None:
            data["retry_at"] = self.retry_at
        if self.run_at is not None:
            data["run_at"] = self.run_at
        if self.waiting is not None:
            data["waiting"] = self.waiting
        if self.kind is EventKind.CUSTOM:
            data["name"] = self.name
            data["data"] = self.data
        if self.trace is not None:
            data["trace"] = self.trace
        if self.hops is not None:
            data["hops"] = self.hops
        return data

    @classmethod
    def from_json(cls, data: Any) -> Event:
        if not isinstance(data, dict):
            raise EventDecodeError("an event must be a JSON object")
        if data.get("v") != EVENT_VERSION:
            raise EventDecodeError(f"unsupported event version {data.get('v')!r}")
        trace = data.get("trace")
        if trace is not None and not isinstance(trace, str):
            raise EventDecodeError("an event's trace must be a string")
        hops = data.get("hops")
        if hops is not None and not (
            isinstance(hops, dict) and all(isinstance(v, str | None) for v in hops.values())
        ):
            raise EventDecodeError("an event's hops must map names to times")
        try:
            return cls(
                task_id=str(data["task_id"]),
                kind=EventKind(data["kind"]),
                status=Status(data["status"]),
                attempt=int(data["attempt"]),
                progress=Progress.from_json(data.get("progress")),
                ts=str(data["ts"]),
                result=data.get("result"),
                error=TaskError.from_json(data.get("error")),
                retry_at=data.get("retry_at"),
                run_at=data.get("run_at"),
                waiting=data.get("waiting"),
                name=data.get("name"),
                data=data.get("data"),
                seq=int(data["seq"]),
                epoch=str(data["epoch"]),
                trace=trace,
                hops=hops,
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise EventDecodeError(f"malformed event: {exc!r}") from exc
