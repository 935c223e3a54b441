"""The task record: the source of truth for a task's state, and its DynamoDB item form."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from .clock import now_iso
from .status import Status
from .tasktype import Priority, TaskType

OPEN_STATUS_ATTRIBUTE = "open_status"
"""The record's status while it is not finished, absent once it is: the sparse index's key."""
Item = dict[str, dict[str, Any]]
"""A DynamoDB item in the low-level client's typed form, e.g. ``{"status": {"S": "queued"}}``."""


def new_task_id() -> str:
    """A fresh task id: a random UUID, so ids reveal nothing and never collide in practice."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the current attempt has got: a percentage and a line for humans."""

    percent: float = 0.0
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"percent": self.percent, "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> Progress:
        if not isinstance(data, dict):
            return cls()
        return cls(float(data.get("percent", 0.0)), str(data.get("message", "")))


@dataclass(frozen=True, slots=True)
class TaskError:
    """Why a task failed: the kind of error and a message for humans."""

    type: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> TaskError | None:
        if not isinstance(data, dict):
            return None
        return cls(str(data.get("type", "")), str(data.get("message", "")))


@dataclass(frozen=True, slots=True)
class Task:
    """One task as its record holds it.

    ``attempt`` counts the attempts that have started: 0 while pending or queued, 1 during the
    first run. Together with ``status`` it fences every write (see :mod:`taskcore.store`).
    """

    task_id: str
    owner: str
    type: str
    payload: dict[str, Any]
    status: Status
    priority: Priority
    max_attempts: int
    timeout_s: int
    created_at: str
    updated_at: str
    expires_at: int
    trace_id: str
    attempt: int = 0
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: TaskError | None = None
    started_at: str | None = None
    finished_at: str | None = None
    retry_at: str | None = None
    """When a ``retrying`` task's next attempt is due."""
    run_at: str | None = None
    """When a task submitted with ``delay_seconds`` is to start; ``None`` means at once."""
    cancel_requested_at: str | None = None
    """When its owner asked for it to be cancelled: from then on no attempt may start."""
    queue: str = TaskType.queue
    """The queue of its type: which workers may run it."""
    retry_base_s: int = TaskType.retry_base_s
    retry_cap_s: int = TaskType.retry_cap_s
    queue_timeout_s: int = TaskType.queue_timeout_s
    """How long it may wait for a worker that knows its type before it is dead-lettered."""
    waiting: str | None = None
    """Why a ``queued`` task is not running yet (no worker knows its type), for its owner."""
    queued_at: str | None = None
    """When its current attempt was put in its RQ queue (written with the attempt's start)."""
    traceparent: str | None = None
    """Its W3C trace context (:mod:`taskcore.trace`), whose trace-id is ``trace_id``: the
    caller's trace, or a new one, with a span id of the task's own. ``None`` in a record
    written before taskcast kept it."""

    def with_status(self, status: Status, **changes: Any) -> Task:
        """A copy in ``status`` with ``changes`` applied and ``updated_at`` set to now."""
        return replace(self, status=status, updated_at=now_iso(), **changes)

    def hops(self) -> dict[str, str | None]:
        """When it passed each hop of the pipeline: accepted by the edge, put in its queue,
        started by a worker. Queue wait is ``started - queued``; run time ends at the end."""
        return {"accepted": self.created_at, "queued": self.queued_at, "started": self.started_at}

    def to_public(self) -> dict[str, Any]:
        """The task as clients see it, over HTTP and in websocket snapshots."""
        data: dict[str, Any] = {
            "task_id": self.task_id,
            "type": self.type,
            "status": str(self.status),
            "priority": str(self.priority),
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "timeout_s": self.timeout_s,
            "queue": self.queue,
            "payload": self.payload,
            "progress": self.progress.to_json(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if self.status is Status.SUCCEEDED:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error.to_json()
        if self.retry_at is not None:
            data["retry_at"] = self.retry_at
        if self.run_at is not None:
            data["run_at"] = self.run_at
        if self.cancel_requested_at is not None:
            data["cancel_requested_at"] = self.cancel_requested_at
        if self.waiting is not None:
            data["waiting"] = self.waiting
        if self.traceparent is not None:
            data["traceparent"] = self.traceparent
        if self.queued_at is not None:
            data["queued_at"] = self.queued_at
        return data

    def to_item(self) -> Item:
        """The DynamoDB item. Payload and result are JSON strings: opaque to DynamoDB, exact."""
        item: Item = {
            "task_id": {"S": self.task_id},
            "owner": {"S": self.owner},
            "type": {"S": self.type},
            "payload": {"S": json.dumps(self.payload, separators=(",", ":"))},
            "status": {"S": str(self.status)},
            "priority": {"S": str(self.priority)},
            "max_attempts": {"N": str(self.max_attempts)},
            "timeout_s": {"N": str(self.timeout_s)},
            "created_at": {"S": self.created_at},
            "updated_at": {"S": self.updated_at},
            "expires_at": {"N": str(self.expires_at)},
            "trace_id": {"S": self.trace_id},
            "attempt": {"N": str(self.attempt)},
            "progress_percent": {"N": repr(float(self.progress.percent))},
            "progress_message": {"S": self.progress.message},
            "queue": {"S": self.queue},
            "retry_base_s": {"N": str(self.retry_base_s)},
            "retry_cap_s": {"N": str(self.retry_cap_s)},
            "queue_timeout_s": {"N": str(self.queue_timeout_s)},
        }
        if self.result is not None:
            item["result"] = {"S": json.dumps(self.result, separators=(",", ":"))}
        if self.error is not None:
            item["error"] = {"S": json.dumps(self.error.to_json(), separators=(",", ":"))}
        if self.started_at is not None:
            item["started_at"] = {"S": self.started_at}
        if self.finished_at is not None:
            item["finished_at"] = {"S": self.finished_at}
        if self.retry_at is not None:
            item["retry_at"] = {"S": self.retry_at}
        if self.run_at is not None:
            item["run_at"] = {"S": self.run_at}
        if self.cancel_requested_at is not None:
            item["cancel_requested_at"] = {"S": self.cancel_requested_at}
        if self.waiting is not None:
            item["waiting"] = {"S": self.waiting}
        if self.traceparent is not None:
            item["traceparent"] = {"S": self.traceparent}
        if self.queued_at is not None:
            item["queued_at"] = {"S": self.queued_at}
        if not self.status.is_terminal:
            # The key of the index of unfinished tasks: dropped when the task ends, so that the
            # index (and every pass over it) does not grow with history.
            item[OPEN_STATUS_ATTRIBUTE] = {"S": str(self.status)}
        return item

    @classmethod
    def from_item(cls, item: Item) -> Task:
        """Read a task back from its DynamoDB item."""

        def s(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else str(value["S"])

        def n(name: str, default: float | None = None) -> float:
            if default is not None and name not in item:
                return default  # a record written before the attribute existed
            return float(item[name]["N"])

        result = s("result")
        error = s("error")
        return cls(
            task_id=str(s("task_id")),
            owner=str(s("owner")),
            type=str(s("type")),
            payload=json.loads(s("payload") or "{}"),
            status=Status(str(s("status"))),
            priority=Priority(str(s("priority"))),
            max_attempts=int(n("max_attempts")),
            timeout_s=int(n("timeout_s")),
            created_at=str(s("created_at")),
            updated_at=str(s("updated_at")),
            expires_at=int(n("expires_at")),
            trace_id=str(s("trace_id")),
            attempt=int(n("attempt")),
            progress=Progress(n("progress_percent"), s("progress_message") or ""),
            result=None if result is None else json.loads(result),
            error=None if error is None else TaskError.from_json(json.loads(error)),
            started_at=s("started_at"),
            finished_at=s("finished_at"),
            retry_at=s("retry_at"),
            run_at=s("run_at"),
            cancel_requested_at=s("cancel_requested_at"),
            queue=s("queue") or TaskType.queue,
            retry_base_s=int(n("retry_base_s", TaskType.retry_base_s)),
            retry_cap_s=int(n("retry_cap_s", TaskType.retry_cap_s)),
            queue_timeout_s=int(n("queue_timeout_s", TaskType.queue_timeout_s)),
            waiting=s("waiting"),
            traceparent=s("traceparent"),
            queued_at=s("queued_at"),
        )
