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
from datetime import UTC, datetime
from typing import Any

from rq import Retry, get_current_job
from rq.exceptions import DuplicateJobError
from rq.timeouts import JobTimeoutException

from taskcore import backoff, logs, trace
from taskcore.clock import iso, now_iso, parse_iso
from taskcore.definition import TaskDefinition, TaskFailed
from taskcore.errors import ConditionLost
from taskcore.event import Event
from taskcore.status import Status
from taskcore.task import Progress, Task, TaskError
from taskcore.tasktype import MAX_PAYLOAD_BYTES

from . import registry, services
from .canceller import Canceller
from .context import TaskCancelled, TaskContext
from .heartbeat import Heartbeat
from .registry import ServedTypes
from .services import Services

log = logging.getLogger(__name__)

RUNNABLE = frozenset({Status.QUEUED, Status.RETRYING})
RESULT_TTL_S = 3600
"""How long RQ keeps a finished job: the record, not RQ, is the source of truth for results."""


def start_time(task: Task) -> datetime | None:
    """When the task's next attempt is due, if that is later than now."""
    due = task.retry_at if task.status is Status.RETRYING else task.run_at
    if due is None or (due_s := parse_iso(due)) <= time.time():
        return None
    # RQ's scheduler keeps whole seconds, dropping the fraction: round up, never start early.
    return datetime.fromtimestamp(math.ceil(due_s), UTC)


def enqueue(svc: Services, task: Task, *, at: datetime | None = None) -> bool:
    """Make sure an RQ job will run the task's next attempt, now or ``at``; ``False`` if the
    task's job exists already.

    The job id is the task id and the enqueue is ``unique``, so however many callers (relay,
    redelivered message, sweeper) make sure at once, one job exists. Its ``Retry`` covers the
    attempts left after this one, with the delays the task's type gives those attempts. The
    task's ``traceparent`` goes along as an argument, so the job's log lines carry its trace
    from the first, before the record is read.
    """
    retries = task.max_attempts - task.attempt - 1
    retry = None
    if retries > 0:
        delays = backoff.intervals(task.max_attempts - 1, task.retry_base_s, task.retry_cap_s)
        retry = Retry(max=retries, interval=delays[-retries:])
    queue = svc.queue_of(task)
    options: dict[str, Any] = {
        "args": (task.task_id, task.type),
        "kwargs": {"traceparent": task.traceparent},
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


def run_task(task_id: str, task_type: str, traceparent: str | None = None) -> None:
    """Run the next attempt of ``task_id`` if the record says it is waiting for one.

    ``traceparent`` is the task's, from the record that enqueued the job (``None`` in a job
    enqueued before taskcast passed it on: the record's trace id then comes with the claim).
    """
    with logs.traced(trace.trace_id_of(traceparent)):
        _run_task(task_id, task_type)


def _run_task(task_id: str, task_type: str) -> None:
    svc = services.current()
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
        task = svc.store.claim(task_id, RUNNABLE, Status.RUNNING, start_attempt=True)
    except ConditionLost:
        current = svc.store.get(task_id)
        if current is not None and Canceller(svc).cancel_if_requested(current):
            log.info(
                "task %s: cancelled before attempt %d could start", task_id, current.attempt + 1
            )
            return
        found = "no record" if current is None else f"it is {current.status}"
        log.warning(
            "task %s: not waiting to run (%s); a duplicate or stale job, dropped", task_id, found
        )
        return
    # From the claim to the attempt's last write, its heartbeat tells the sweeper it is alive.
    heartbeat = Heartbeat(
        svc.redis, svc.config.names.heartbeat(task_id), task.attempt, svc.config.heartbeat_ttl_s
    )
    with heartbeat, logs.traced(task.trace_id):
        svc.events.append(Event.status_of(task))
        log.info("task %s (%s) attempt %d started", task_id, task.type, task.attempt)
        _attempt(definition, TaskContext(task, svc))


def _attempt(definition: TaskDefinition, ctx: TaskContext) -> None:
    """Run the task's function, then write how the attempt ended: retry, or a final status."""
    task = ctx.task
    outcome: Status
    changes: dict[str, Any]
    retryable = True
    try:
        result = definition.run(ctx)
        _check_result(result)
    except TaskCancelled:
        outcome, changes = Status.CANCELLED, {}
    except JobTimeoutException:
        outcome, changes = (
            Status.FAILED,
            _failure("timeout", f"attempt ran over {task.timeout_s} s"),
        )
    except TaskFailed as exc:
        outcome, changes = Status.FAILED, _failure(exc.code, exc.message)
        retryable = exc.retry
    except Exception as exc:
        log.warning("task %s: its function raised", task.task_id, exc_info=True)
        outcome, changes = Status.FAILED, _failure(type(exc).__name__, str(exc))
    else:
        outcome = Status.SUCCEEDED
        changes = {"result": result, "progress": Progress(100.0, "done")}
    if outcome is Status.FAILED and ctx.cancel_requested:
        # Its owner asked it to stop: a failed attempt ends it as cancelled, not retried.
        outcome, changes = Status.CANCELLED, {}
    if outcome is Status.FAILED and retryable and _retry(ctx, changes["error"]):
        return
    _finish(ctx, outcome, changes)


class RetryScheduled(Exception):
    """Raised to RQ so that its Retry runs the job again; the task already says ``retrying``."""


def _retry(ctx: TaskContext, error: TaskError) -> bool:
    """Schedule the next attempt if one is left: ``running -> retrying``, event, and RQ's retry.

    Returns ``False`` when the failure is final (no attempt left) and ``True`` when someone else
    moved the task meanwhile (nothing left to write). Otherwise raises :class:`RetryScheduled`,
    which is how an RQ job asks for its Retry.
    """
    job = get_current_job()
    if ctx.attempt >= ctx.task.max_attempts or job is None or not job.retries_left:
        return False
    delay_s = job.get_retry_interval()
    retry_at = iso(time.time() + delay_s)
    try:
        task = services.current().store.transition(
            ctx.task, Status.RETRYING, error=error, retry_at=retry_at
        )
    except ConditionLost:
        log.warning("task %s: attempt %d failed but the task moved on", ctx.task_id, ctx.attempt)
        return True  # someone else decided (a cancel): nothing to retry, nothing to finish
    services.current().events.append(Event.status_of(task))
    log.info(
        "task %s attempt %d failed (%s); attempt %d in %d s",
        ctx.task_id,
        ctx.attempt,
        error.type,
        ctx.attempt + 1,
        delay_s,
    )
    raise RetryScheduled(
        f"attempt {ctx.attempt} of {task.max_attempts} failed: {error.type}: {error.message}"
    )


def _failure(kind: str, message: str) -> dict[str, Any]:
    return {"error": TaskError(kind, message[:2000])}


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


def _finish(ctx: TaskContext, outcome: Status, changes: dict[str, Any]) -> Task | None:
    svc = services.current()
    try:
        task = svc.store.transition(ctx.task, outcome, finished_at=now_iso(), **changes)
    except ConditionLost:
        log.warning(
            "task %s: attempt %d ended %s but the task moved on; result dropped",
            ctx.task_id,
            ctx.attempt,
            outcome,
        )
        return None
    svc.events.append(Event.status_of(task))
    log.info("task %s attempt %d %s", ctx.task_id, task.attempt, outcome)
    return task
