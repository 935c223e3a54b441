"""What happens to a task after an attempt ends or is found lost: one pure function.

The job (an attempt that returned, raised or timed out) and the sweeper (an attempt whose worker
went silent, a task no worker served in time) both ask :func:`decide`, so a task is retried,
failed, cancelled or dead-lettered by the same rules wherever its attempt ended. It reads no
clock and no server: given the task as its record holds it and how the attempt ended, it says
what to write; :mod:`.lifecycle` writes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from taskcore import backoff
from taskcore.status import Status
from taskcore.task import Progress, Task, TaskError

MAX_ERROR_CHARS = 2000
"""An error message is cut to this, so a handler's giant exception text cannot bloat the record."""


class Ending(StrEnum):
    """How an attempt ended, as whoever saw it end tells it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Its function raised (or returned a result that cannot be kept)."""
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    """It stopped because its owner asked (it saw the flag, or was stopped by force)."""
    LOST = "lost"
    """Its worker went silent: no heartbeat for the heartbeat TTL."""
    UNSERVED = "unserved"
    """No running worker served its type before its queue timeout."""


@dataclass(frozen=True)
class AttemptEnd:
    """One attempt's end, as the job or the sweeper saw it."""

    ending: Ending
    error: TaskError | None = None
    result: Any = None
    retryable: bool = True
    """``False`` for a failure the task's code declared final (``TaskFailed(retry=False)``)."""
    cancel_requested: bool = False
    """Its owner asked it to stop (the worker's flag; the record's request counts too)."""

    @classmethod
    def failed(cls, kind: str, message: str, **options: Any) -> AttemptEnd:
        return cls(Ending.FAILED, error=TaskError(kind, message[:MAX_ERROR_CHARS]), **options)


@dataclass(frozen=True)
class Decision:
    """What to write for the task: its next status and what goes with it."""

    status: Status
    error: TaskError | None = None
    result: Any = None
    progress: Progress | None = None
    """Progress to record with the change (a success is 100 %); ``None`` keeps it."""
    delay_s: int | None = None
    """Seconds until the next attempt, for ``retrying``."""
    dead_letter: str | None = None
    """Why the task's message goes to the dead-letter queue, if it does."""

    @property
    def is_final(self) -> bool:
        return self.status.is_terminal


def decide(task: Task, end: AttemptEnd, rng: random.Random | None = None) -> Decision:
    """The next status of ``task`` (as its record holds it, ``attempt`` being the attempt that
    ended) after ``end``.

    - a success is final, whatever else happened;
    - a task whose owner asked it to stop ends ``cancelled``, however its attempt ended;
    - one no worker served in time ``failed`` and dead-lettered (``no_worker``);
    - a failure, a timeout or a lost worker is retried after the type's backoff while attempts
      are left and the failure is retryable, else ``failed``.

    ``rng`` draws the backoff's jitter (a seeded one makes it repeatable).
    """
    if end.ending is Ending.SUCCEEDED:
        return Decision(Status.SUCCEEDED, result=end.result, progress=Progress(100.0, "done"))
    if end.ending is Ending.CANCELLED or end.cancel_requested or task.cancel_requested_at:
        return Decision(Status.CANCELLED)
    if end.ending is Ending.UNSERVED:
        error = end.error or TaskError(
            "no_worker",
            f"no running worker served task type {task.type!r} within {task.queue_timeout_s} s",
        )
        return Decision(
            Status.FAILED,
            error=error,
            dead_letter=f"no_worker: no running worker served task type {task.type!r} in time",
        )
    error = end.error or _default_error(task, end.ending)
    if end.retryable and task.attempt < task.max_attempts:
        delay = backoff.delay(task.attempt, task.retry_base_s, task.retry_cap_s, rng)
        return Decision(Status.RETRYING, error=error, delay_s=delay)
    return Decision(Status.FAILED, error=error)


def _default_error(task: Task, ending: Ending) -> TaskError:
    if ending is Ending.TIMED_OUT:
        return TaskError("timeout", f"attempt ran over {task.timeout_s} s")
    if ending is Ending.LOST:
        return TaskError(
            "lost", f"the worker running attempt {task.attempt} stopped (no heartbeat)"
        )
    return TaskError("failed", f"attempt {task.attempt} failed")
