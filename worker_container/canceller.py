"""Cancellation: what a cancel request does to a task, wherever it is in its life.

- ``pending``, ``queued``, ``retrying``: it becomes ``cancelled`` at once (through the
  lifecycle: a conditional write and its event) and its RQ job, if any, is deleted; a job that starts anyway finds the record
  cancelled and does nothing.
- ``running``: its cancel flag is raised, which a cooperative handler sees between steps and
  stops at. If the same attempt is still running after the grace period, RQ's stop-job command
  stops it (``JobStopped`` raised in the function, or its work horse killed for an isolated
  type; see :mod:`.execution`), and the task is marked ``cancelled`` here.
- ended: nothing; a cancel after the end is a no-op.

The edge records the request on the task (``cancel_requested_at``) before it publishes it, and
no attempt is claimed after that. A task whose submit message overtakes its cancel message is
therefore refused by the relay's claim and cancelled there, never started.

Every write is fenced like any other, so a cancel racing the task's own progress can neither
resurrect it nor end it twice.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from taskcore import logs
from taskcore.status import Status
from taskcore.task import Task

from .decision import AttemptEnd, Ending, decide
from .services import Services

log = logging.getLogger(__name__)

WAITING = frozenset({Status.PENDING, Status.QUEUED, Status.RETRYING})
FLAG_TTL_S = 86400


@dataclass(frozen=True)
class Pending:
    """A running attempt was asked to stop; check on it after the grace period."""

    attempt: int


class Canceller:
    def __init__(self, svc: Services) -> None:
        self._svc = svc

    def request(self, task_id: str) -> Pending | None:
        """Cancel ``task_id`` now if it is waiting; ask it to stop if it is running."""
        for _ in range(5):  # each lost race means the task moved on: look again
            task = self._svc.store.get(task_id)
            if task is None or task.status.is_terminal:
                return None
            with logs.traced(task.trace_id):
                if task.status is Status.RUNNING:
                    flag = self._svc.config.names.cancel_flag(task_id)
                    self._svc.redis.set(flag, task.attempt, ex=FLAG_TTL_S)
                    log.info("task %s: attempt %d asked to stop", task_id, task.attempt)
                    return Pending(task.attempt)
                if self._cancel(task):
                    self._delete_job(task_id)
                    return None
        log.warning("task %s: kept changing while being cancelled; giving up", task_id)
        return None

    def enforce(self, task_id: str, pending: Pending) -> None:
        """After the grace period: cancel the task wherever it got to, by force if it runs.

        Not only the attempt that was asked: it may have failed into a retry before it saw the
        flag, and the owner's request stands for whichever attempt comes next.
        """
        task = self._svc.store.get(task_id)
        if task is None or task.status.is_terminal:
            return  # it stopped by itself, or ended
        with logs.traced(task.trace_id):
            self._enforce(task, pending)

    def _enforce(self, task: Task, pending: Pending) -> None:
        task_id = task.task_id
        if task.status is Status.RUNNING:
            try:
                send_stop_job_command(self._svc.redis, task_id)
            except (InvalidJobOperation, NoSuchJobError):
                log.warning("task %s: no running job to stop; marking it cancelled", task_id)
            else:
                log.warning(
                    "task %s: attempt %d did not stop in time (asked at attempt %d); stopped",
                    task_id,
                    task.attempt,
                    pending.attempt,
                )
        if self._cancel(task):
            self._delete_job(task_id)

    def cancel_if_requested(self, task: Task) -> bool:
        """Cancel ``task`` now if its owner asked and it is still waiting to run.

        For whoever a claim just refused because of the request (the relay, a job): the task
        ends here even if the control message is late or lost. True if it is cancelled.
        """
        if task.cancel_requested_at is None or task.status not in WAITING:
            return False
        return self._cancel(task)

    def _cancel(self, task: Task) -> bool:
        if self._svc.lifecycle.settle(task, decide(task, AttemptEnd(Ending.CANCELLED))) is None:
            return False
        log.info("task %s cancelled (was %s)", task.task_id, task.status)
        return True

    def _delete_job(self, task_id: str) -> None:
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(task_id, connection=self._svc.redis).delete()
