"""What a task's function is given: its task's payload, progress, its own events, cancel checks.

This is the worker's implementation of :class:`taskcore.definition.TaskContext`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from taskcore.task import Progress, Task

from .services import Services

log = logging.getLogger(__name__)

EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_EMIT_BYTES = 16 * 1024
"""The largest custom event's data, as compact JSON: bigger results belong in the result."""
EMIT_RATE = 50.0
"""Custom events a second an attempt may sustain; faster emitters are slowed down to it."""
EMIT_BURST = 100
"""Custom events an attempt may emit at once before the rate applies."""


class EmitError(ValueError):
    """A custom event that cannot be sent: its name or size is out of bounds."""


class TaskCancelled(Exception):
    """Raised by :meth:`TaskContext.raise_if_cancelled`: the owner asked the task to stop."""


class TaskContext:
    """The running attempt of one task, as its handler sees it."""

    def __init__(self, task: Task, services: Services) -> None:
        self._task = task
        self._services = services
        self._allowance = float(EMIT_BURST)
        self._allowance_at = time.monotonic()

    @property
    def task(self) -> Task:
        """The record as this attempt last wrote it."""
        return self._task

    @property
    def task_id(self) -> str:
        return self._task.task_id

    @property
    def payload(self) -> dict[str, Any]:
        return self._task.payload

    @property
    def attempt(self) -> int:
        return self._task.attempt

    @property
    def max_attempts(self) -> int:
        return self._task.max_attempts

    @property
    def trace_id(self) -> str:
        return self._task.trace_id

    @property
    def traceparent(self) -> str | None:
        return self._task.traceparent

    def emit(self, name: str, data: Any = None) -> None:
        """Push an event of the task's own to its watchers, in order with its other events.

        ``name`` is 1-64 letters, digits or ``_.:-``; ``data`` any JSON value of at most
        16 KiB. An attempt may emit 100 events at once and 50 a second after that: a faster
        emitter is made to wait (nothing is dropped). :class:`EmitError` if out of bounds.
        Custom events go to the event log only, never to the task table.
        """
        if not isinstance(name, str) or not EVENT_NAME.match(name):
            raise EmitError(f"event name {name!r} must be 1-64 letters, digits or _.:-")
        try:
            size = len(json.dumps(data, separators=(",", ":"), allow_nan=False).encode())
        except (TypeError, ValueError) as exc:
            raise EmitError(f"event {name!r}: data is not JSON: {exc}") from None
        if size > MAX_EMIT_BYTES:
            raise EmitError(f"event {name!r}: data is {size} bytes; the limit is {MAX_EMIT_BYTES}")
        self._throttle()
        self._services.lifecycle.emit(self._task, name, data)

    def _throttle(self) -> None:
        """A token bucket: sleep until the next event is within the rate."""
        now = time.monotonic()
        self._allowance = min(
            float(EMIT_BURST), self._allowance + (now - self._allowance_at) * EMIT_RATE
        )
        self._allowance_at = now
        if self._allowance < 1.0:
            time.sleep((1.0 - self._allowance) / EMIT_RATE)
            self._allowance_at = time.monotonic()
            self._allowance = 1.0
        self._allowance -= 1.0

    def progress(self, percent: float, message: str = "") -> None:
        """Record progress (0-100) and tell the task's watchers.

        Progress never goes backwards within an attempt: a lower percentage than the last one is
        kept at the last one. It goes to the task's event log at once and to its record at most
        every few seconds (see :mod:`.lifecycle`). If the task was moved on by someone else
        (cancelled, or taken over by a later attempt) the report is dropped and logged.
        """
        percent = min(100.0, max(float(percent), self._task.progress.percent))
        self._task = self._services.lifecycle.progress(self._task, Progress(percent, message[:500]))

    @property
    def cancel_requested(self) -> bool:
        """Whether the task's owner has asked it to stop (one Redis read)."""
        flag = self._services.config.names.cancel_flag(self.task_id)
        return bool(self._services.redis.exists(flag))

    def raise_if_cancelled(self) -> None:
        """Stop here if cancellation was requested: call it between steps that are safe to end at.

        A handler that never calls it is stopped by force after the grace period instead.
        """
        if self.cancel_requested:
            raise TaskCancelled(f"task {self.task_id} was cancelled")
