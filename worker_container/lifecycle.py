"""The one place a task's state changes: its durable record, its current form in Redis, its
event and its counters, always together.

Every other module says what happened (the relay: "it is in its queue"; the job: "attempt 2
raised"; the sweeper: "its worker is gone"; the canceller: "its owner wants it stopped") and
:class:`Lifecycle` does the writes, in one order:

1. the durable record in DynamoDB, by a conditional write fenced on the status and attempt the
   caller last saw (:mod:`taskcore.store`), when the change needs one;
2. the event, appended to the task's log together with the record's new form
   (:mod:`.eventlog`), which is what watchers get as their snapshot;
3. the counters (:mod:`.metrics`).

What needs a durable write is budgeted, so that a task costs three DynamoDB calls however many
events it has: the edge's create (``pending``), the start of each attempt (``running``) and its
end. ``queued`` is an event only; progress is an event, written to the record at most every
:data:`CHECKPOINT_S` per attempt; custom events are never written. A lost Redis can so set a
task's progress back to its last checkpoint, never its status: every status lives in the record.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from taskcore.clock import iso, now_iso, parse_iso
from taskcore.errors import ConditionLost
from taskcore.event import Event
from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Progress, Task

from . import metrics
from .decision import Decision
from .eventlog import EventLog
from .metrics import Counted

log = logging.getLogger(__name__)

RUNNABLE = frozenset({Status.PENDING, Status.QUEUED, Status.RETRYING})
"""Where an attempt starts from. ``pending``: the relay announced ``queued`` without writing it."""
CHECKPOINT_S = 5.0
"""The least time between two durable writes of one attempt's progress."""
_ENDINGS = {
    Status.SUCCEEDED: Counted.SUCCEEDED,
    Status.FAILED: Counted.FAILED,
    Status.RETRYING: Counted.RETRIED,
    Status.CANCELLED: Counted.CANCELLED,
}


class Lifecycle:
    """Moves tasks through their lifecycle; one per process, shared by its threads."""

    def __init__(
        self,
        store: TaskStore,
        events: EventLog,
        *,
        checkpoint_s: float = CHECKPOINT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._events = events
        self._checkpoint_s = checkpoint_s
        self._clock = clock
        self._written_at: dict[tuple[str, int], float] = {}
        """When each running attempt's record was last written (for progress checkpoints)."""
        self._written: dict[tuple[str, int], Progress] = {}
        """The progress each running attempt's record holds, when its events told more."""

    def queued(self, task: Task) -> Task:
        """Announce that ``task`` (as its message carries it) is in its RQ queue.

        An event, not a durable write: the record stays ``pending`` until an attempt starts,
        and the sweeper tells a task that reached RQ from one whose message was lost by its
        RQ job. A duplicate (a redelivered message, a task that has moved on) is refused by the
        log, which never steps a task back.
        """
        moved = task.with_status(Status.QUEUED, queued_at=now_iso())
        if self._announce(moved) is not None:
            metrics.count(Counted.SUBMITTED, task.type)
        return moved

    def park(self, task_id: str, task_type: str, reason: str) -> Task:
        """Record that the task waits for a worker serving its type (``pending -> queued`` with
        the reason, so its owner can read why); :class:`ConditionLost` if it is not pending,
        or is of another type."""
        moved = self._store.claim(
            task_id, frozenset({Status.PENDING}), Status.QUEUED, task_type=task_type, waiting=reason
        )
        if self._announce(moved) is not None:
            metrics.count(Counted.SUBMITTED, task_type)
        return moved

    def start(self, task_id: str, task_type: str, queued_at: str | None = None) -> Task:
        """Start the task's next attempt: ``pending | queued | retrying -> running``, in one
        conditional write that reads nothing first.

        :class:`ConditionLost` if the record is elsewhere, of another type, or its owner asked
        for it to be cancelled: the caller then reads it (:meth:`settle_refused`).
        """
        task = self._store.claim(
            task_id,
            RUNNABLE,
            Status.RUNNING,
            start_attempt=True,
            task_type=task_type,
            queued_at=queued_at,
        )
        self._written_at[(task_id, task.attempt)] = self._clock()
        self._announce(task)
        metrics.count(Counted.STARTED, task.type)
        if task.queued_at is not None and task.started_at is not None:
            metrics.observe_queue_wait(
                task.type, parse_iso(task.started_at) - parse_iso(task.queued_at)
            )
        return task

    def progress(self, task: Task, progress: Progress) -> Task:
        """Report the running attempt's progress to its watchers; write it to the record only
        if the last write of this attempt is :data:`CHECKPOINT_S` old.

        Returns the task as it now is; a report the record refuses (the task moved on) is
        dropped and the task returned unchanged.
        """
        moved = replace(task, progress=progress, updated_at=now_iso())
        key = (task.task_id, task.attempt)
        now = self._clock()
        if now - self._written_at.get(key, now) >= self._checkpoint_s:
            # The store writes what differs from the record: compare with what it holds.
            as_written = replace(task, progress=self._written.get(key, task.progress))
            try:
                moved = self._store.report_progress(as_written, progress)
            except ConditionLost:
                log.warning("task %s: progress report dropped, the task moved on", task.task_id)
                self._written_at[key] = math.inf  # no more calls for an attempt given up on
                return task
            self._written_at[key] = now
            self._written.pop(key, None)
        else:
            self._written.setdefault(key, task.progress)
        if self._events.append(Event.progress_of(moved), moved) is None:
            return task
        return moved

    def emit(self, task: Task, name: str, data: Any) -> None:
        """Push a custom event of the running attempt to its watchers (never to the record)."""
        self._events.append(Event.custom_of(task, name, data), task)

    def settle(self, task: Task, decision: Decision) -> Task | None:
        """Write what :func:`.decision.decide` decided for ``task`` (as the caller last saw
        it); the task as written, or ``None`` if it had moved on meanwhile."""
        changes: dict[str, Any] = {}
        if decision.status is Status.RETRYING:
            assert decision.delay_s is not None, "a retry without a delay"
            changes["retry_at"] = iso(time.time() + decision.delay_s)
        else:
            changes["finished_at"] = now_iso()
            changes["waiting"] = None
        if decision.error is not None:
            changes["error"] = decision.error
        if decision.status is Status.SUCCEEDED:
            changes["result"] = decision.result
        if decision.progress is not None:
            changes["progress"] = decision.progress
        return self.transition(task, decision.status, **changes)

    def transition(self, task: Task, target: Status, **changes: Any) -> Task | None:
        """Move ``task`` (as the caller last saw it) to ``target`` with ``changes``, then
        announce it; ``None`` if the record had moved on (nothing is written then)."""
        key = (task.task_id, task.attempt)
        as_written = task
        if key in self._written:
            # Progress that went only to the log goes to the record with this write.
            as_written = replace(task, progress=self._written[key])
            changes.setdefault("progress", task.progress)
        try:
            moved = self._store.transition(as_written, target, **changes)
        except ConditionLost:
            log.info(
                "task %s: not moved to %s, it is no longer %s", task.task_id, target, task.status
            )
            self.forget(task)
            return None
        if target is not Status.RUNNING:
            self.forget(task)
        self._announce(moved)
        self._count(task, moved)
        return moved

    @staticmethod
    def _count(before: Task, after: Task) -> None:
        """Count how an attempt or a task ended, and how long the attempt ran."""
        counted = _ENDINGS.get(after.status)
        if counted is not None:
            metrics.count(counted, after.type)
        if before.status is Status.RUNNING and before.started_at is not None:
            metrics.observe_runtime(
                after.type, parse_iso(after.updated_at) - parse_iso(before.started_at)
            )

    def forget(self, task: Task) -> None:
        """Drop what is kept of ``task``'s attempt, however it ended (a forced stop skips
        :meth:`settle`)."""
        key = (task.task_id, task.attempt)
        self._written_at.pop(key, None)
        self._written.pop(key, None)

    def dead_lettered(self, task: Task) -> None:
        """Count ``task``'s message as dead-lettered (its record says why it failed)."""
        metrics.count(Counted.DEAD_LETTERED, task.type)

    def reannounce(self, task: Task) -> None:
        """Put the record's state (read by the caller) in the log if the log is behind it.

        For whoever finds the record has moved past what a duplicate message or job expected:
        if Redis lost the log meanwhile, or a stale writer's event got in, the log and the
        current form the watchers see catch up with the record; if not, the log refuses it.
        """
        self._announce(task)

    def _announce(self, task: Task) -> Event | None:
        return self._events.append(Event.status_of(task), task)
