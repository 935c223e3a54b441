"""The RQ job that runs one attempt of one task: fenced start, handler, fenced end.

Its RQ job id is the task id. The job trusts nothing about why it was called: it reads the record
and runs only a task that is waiting to run. A duplicate job, or one left over from a task that
someone else already moved on, finds the record in another state and does nothing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from taskcore import backoff, logs, trace
from taskcore.clock import iso, now_iso, parse_iso
from taskcore.definition import TaskDefinition, TaskFailed
from taskcore.errors import ConditionLost
from taskcore.status import Status
from taskcore.task import Task
from taskcore.tasktype import MAX_PAYLOAD_BYTES

from . import registry
from .canceller import Canceller
from .context import TaskCancelled, TaskContext
from .decision import AttemptEnd, Ending, decide
from .heartbeat import Heartbeat
from .lifecycle import RUNNABLE
from .registry import ServedTypes
from .services import Services

log = logging.getLogger(__name__)

RESULT_TTL_S = 3600
"""How long RQ keeps a finished job: the record, not RQ, is the source of truth for results."""


def start_time(task: Task) -> datetime | None:
    """When the task's next attempt is due, if that is later than now."""
    due = task.retry_at if task.status is Status.RETRYING else task.run_at
    if due is None or (due_s := parse_iso(due)) <= time.time():
        return None
    # RQ's scheduler keeps whole seconds, dropping the fraction: round up, never start early.
    return datetime.fromtimestamp(math.ceil(due_s), UTC)


class TaskJob(Job):
    """An RQ job whose function is given the worker's :class:`Services` first.

    RQ finds a job's function by its name, in whichever process runs it; the worker builds the
    services once (``worker.py``) and hands them to each job it runs (:attr:`services`), so no
    module reaches for a process-wide object.
    """

    services: Services | None = None

    def _execute(self) -> Any:
        if self.services is None:
            raise RuntimeError(f"job {self.id}: run by a worker that gave it no services")
        return self.func(self.services, *self.args, **self.kwargs)


def enqueue(svc: Services, task: Task, *, at: datetime | None = None) -> bool:
    """Make sure an RQ job will run the task's next attempt, now or ``at``; ``False`` if the
    task's job exists already.

    The job id is the task id and the enqueue is ``unique``, so however many callers (relay,
    redelivered message, sweeper) make sure at once, one job exists. Its ``Retry`` covers the
    attempts left after this one, with the delays the task's type gives those attempts. The
    task's ``traceparent`` goes along as an argument, so the job's log lines carry its trace
    from the first, before the record is read; and when it was queued, for its ``hops``.
    """
    retries = task.max_attempts - task.attempt - 1
    retry = None
    if retries > 0:
        delays = backoff.intervals(task.max_attempts - 1, task.retry_base_s, task.retry_cap_s)
        retry = Retry(max=retries, interval=delays[-retries:])
    queue = svc.queue_of(task)
    options: dict[str, Any] = {
        "args": (task.task_id, task.type),
        "kwargs": {"traceparent": task.traceparent, "queued_at": task.queued_at or now_iso()},
        "job_id": task.task_id,
        "unique": True,
        "job_timeout": task.timeout_s,
        "result_ttl": RESULT_TTL_S,
        "retry": retry,
        "description": f"{task.type} {task.task_id}",
    }
    try:
        if at is None:
            queue.enqueue(run_task, **options)
        else:
            queue.enqueue_at(at, run_task, **options)
    except DuplicateJobError:
        return False
    return True


def dispatch(svc: Services, task: Task, served: ServedTypes) -> bool:
    """Enqueue a ``queued`` or ``retrying`` task's next attempt if a live worker serves its
    type, else park it until one does (see :mod:`.registry`); ``False`` if it was parked or
    its job exists already."""
    if not served(task.type):
        registry.park(svc.redis, svc.config.names, task)
        return False
    return enqueue(svc, task, at=start_time(task))


def run_task(
    svc: Services,
    task_id: str,
    task_type: str,
    traceparent: str | None = None,
    queued_at: str | None = None,
) -> None:
    """Run the next attempt of ``task_id`` if the record says it is waiting for one.

    ``traceparent`` is the task's, from the record that enqueued the job (``None`` in a job
    enqueued before taskcast passed it on: the record's trace id then comes with the claim);
    ``queued_at`` is when the relay enqueued it, used if RQ's own ``enqueued_at`` is unknown.
    """
    job = get_current_job()
    if job is not None and job.enqueued_at is not None:
        # When RQ last put it in its queue: a delayed or retried attempt's too, once due.
        queued_at = iso(job.enqueued_at.timestamp())
    with logs.traced(trace.trace_id_of(traceparent)):
        _run_task(svc, task_id, task_type, queued_at)


def _run_task(svc: Services, task_id: str, task_type: str, queued_at: str | None) -> None:
    definition = svc.definitions.get(task_type)
    if definition is None:
        # Another worker of this queue said it serves the type; this one was started without
        # its module. Leave the task waiting, untouched, for the sweeper to send it on.
        log.error(
            "task %s: this worker cannot run type %r (its task modules: %s); left waiting",
            task_id,
            task_type,
            ", ".join(svc.config.task_modules) or "none",
        )
        task = svc.store.get(task_id)
        if task is not None and task.status in RUNNABLE:
            registry.park(svc.redis, svc.config.names, task)
        return
    try:
        task = svc.lifecycle.start(task_id, task_type, queued_at)
    except ConditionLost:
        _refused(svc, task_id)
        return
    # From the claim to the attempt's last write, its heartbeat tells the sweeper it is alive.
    heartbeat = Heartbeat(
        svc.redis, svc.config.names.heartbeat(task_id), task.attempt, svc.config.heartbeat_ttl_s
    )
    with heartbeat, logs.traced(task.trace_id):
        log.info("task %s (%s) attempt %d started", task_id, task.type, task.attempt)
        try:
            _attempt(svc, definition, TaskContext(task, svc))
        finally:
            svc.lifecycle.forget(task)


def _refused(svc: Services, task_id: str) -> None:
    """The record refused the start: cancel it if its owner asked, else drop the job."""
    current = svc.store.get(task_id)
    if current is not None and Canceller(svc).cancel_if_requested(current):
        log.info("task %s: cancelled before attempt %d could start", task_id, current.attempt + 1)
        return
    found = "no record" if current is None else f"it is {current.status}"
    log.warning(
        "task %s: not waiting to run (%s); a duplicate or stale job, dropped", task_id, found
    )
    if current is not None:
        # If Redis lost the log, or a duplicate message announced the task again, the log
        # and its watchers catch up with the record.
        svc.lifecycle.reannounce(current)


def _attempt(svc: Services, definition: TaskDefinition, ctx: TaskContext) -> None:
    """Run the task's function, then write what :func:`.decision.decide` makes of its end."""
    end = _run(definition, ctx)
    if end.ending is not Ending.SUCCEEDED and ctx.cancel_requested:
        # Its owner asked it to stop: a failed attempt ends it as cancelled, not retried.
        end = replace(end, cancel_requested=True)
    task = ctx.task
    decision = decide(task, end)
    if decision.status is Status.RETRYING:
        job = get_current_job()
        if job is None or not job.retries_left:
            # Not run by RQ with a Retry (a test, a job of an older version): the sweeper
            # finds the task retrying without a job and enqueues its next attempt.
            log.warning("task %s: no RQ retry left for attempt %d", task.task_id, task.attempt + 1)
        else:
            # RQ's Retry schedules the job again after the delay the decision chose.
            job.retry_intervals = [decision.delay_s or 0]
    moved = svc.lifecycle.settle(task, decision)
    if moved is None:
        log.warning(
            "task %s: attempt %d ended (%s) but the task moved on; not recorded",
            task.task_id,
            task.attempt,
            end.ending,
        )
        return
    log.info("task %s attempt %d: %s", task.task_id, task.attempt, moved.status)
    if moved.status is Status.RETRYING:
        assert moved.error is not None
        log.info(
            "task %s: attempt %d in %d s", task.task_id, task.attempt + 1, decision.delay_s or 0
        )
        raise RetryScheduled(
            f"attempt {task.attempt} of {task.max_attempts} failed: "
            f"{moved.error.type}: {moved.error.message}"
        )


def _run(definition: TaskDefinition, ctx: TaskContext) -> AttemptEnd:
    """Run the task's function and say how the attempt ended."""
    try:
        result = definition.run(ctx)
        _check_result(result)
    except TaskCancelled:
        return AttemptEnd(Ending.CANCELLED)
    except JobTimeoutException:
        return AttemptEnd(Ending.TIMED_OUT)
    except TaskFailed as exc:
        return AttemptEnd.failed(exc.code, exc.message, retryable=exc.retry)
    except Exception as exc:
        log.warning("task %s: its function raised", ctx.task_id, exc_info=True)
        return AttemptEnd.failed(type(exc).__name__, str(exc))
    return AttemptEnd(Ending.SUCCEEDED, result=result)


class RetryScheduled(Exception):
    """Raised to RQ so that its Retry runs the job again; the task already says ``retrying``."""


def _check_result(result: Any) -> None:
    """Fail, without retry, a result that is not JSON or is too large: it would be again."""
    try:
        size = len(json.dumps(result, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise TaskFailed(f"the result is not JSON: {exc}", code="invalid_result") from None
    if size > MAX_PAYLOAD_BYTES:
        raise TaskFailed(
            f"the result is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}", code="invalid_result"
        )
