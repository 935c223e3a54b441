"""What a handler is given: its task's payload, and a way to report progress."""

from __future__ import annotations

import logging
from typing import Any

from taskcore.errors import ConditionLost
from taskcore.event import Event
from taskcore.task import Progress, Task

from .services import Services

log = logging.getLogger(__name__)


class TaskCancelled(Exception):
    """Raised by :meth:`TaskContext.raise_if_cancelled`: the owner asked the task to stop."""


class TaskContext:
    """The running attempt of one task, as its handler sees it."""

    def __init__(self, task: Task, services: Services) -> None:
        self._task = task
        self._services = services

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

    def progress(self, percent: float, message: str = "") -> None:
        """Record progress (0-100) and tell the task's watchers.

        Progress never goes backwards within an attempt: a lower percentage than the last one is
        kept at the last one. If the task was moved on by someone else (cancelled, or taken over
        by a later attempt) the report is dropped and logged.
        """
        percent = min(100.0, max(float(percent), self._task.progress.percent))
        try:
            self._task = self._services.store.report_progress(
                self._task, Progress(percent, message[:500])
            )
        except ConditionLost:
            log.warning("task %s: progress report dropped, the task moved on", self.task_id)
            return
        self._services.events.append(Event.progress_of(self._task))

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
