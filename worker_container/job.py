"""The RQ job that runs one attempt of one task: fenced start, handler, fenced end.

Its RQ job id is the task id. The job trusts nothing about why it was called: it reads the record
and runs only a task that is waiting to run. A duplicate job, or one left over from a task that
someone else already moved on, finds the record in another state and does nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from rq import get_current_job
from rq.timeouts import JobTimeoutException

from taskcore.catalogue import MAX_PAYLOAD_BYTES
from taskcore.clock import iso, now_iso
from taskcore.errors import ConditionLost
from taskcore.event import Event
from taskcore.status import Status
from taskcore.task import Progress, Task, TaskError

from . import services
from .context import TaskCancelled, TaskContext
from .handlers import HANDLERS, HandlerError

log = logging.getLogger(__name__)

RUNNABLE = frozenset({Status.QUEUED, Status.RETRYING})


def run_task(task_id: str) -> None:
    """Run the next attempt of ``task_id`` if the record says it is waiting for one."""
    svc = services.current()
    try:
        task = svc.store.claim(task_id, RUNNABLE, Status.RUNNING, start_attempt=True)
    except ConditionLost:
        current = svc.store.get(task_id)
        found = "no record" if current is None else f"it is {current.status}"
        log.warning(
            "task %s: not waiting to run (%s); a duplicate or stale job, dropped", task_id, found
        )
        return
    svc.events.append(Event.status_of(task))
    log.info(
        "task %s (%s) attempt %d started [trace %s]",
        task_id,
        task.type,
        task.attempt,
        task.trace_id,
    )

    ctx = TaskContext(task, svc)
    outcome: Status
    changes: dict[str, Any]
    try:
        result = HANDLERS[task.type](ctx)
        _check_result(result)
    except TaskCancelled:
        outcome, changes = Status.CANCELLED, {}
    except JobTimeoutException:
        outcome, changes = (
            Status.FAILED,
            _failure("timeout", f"attempt ran over {task.timeout_s} s"),
        )
    except HandlerError as exc:
        outcome, changes = Status.FAILED, _failure("HandlerError", str(exc))
    except Exception as exc:
        log.warning("task %s: handler raised", task_id, exc_info=True)
        outcome, changes = Status.FAILED, _failure(type(exc).__name__, str(exc))
    else:
        outcome = Status.SUCCEEDED
        changes = {"result": result, "progress": Progress(100.0, "done")}
    if outcome is Status.FAILED and ctx.cancel_requested:
        # Its owner asked it to stop: a failed attempt ends it as cancelled, not retried.
        outcome, changes = Status.CANCELLED, {}
    if outcome is Status.FAILED and _retry(ctx, changes["error"]):
        return
    _finish(ctx, outcome, changes)


class RetryScheduled(Exception):
    """Raised to RQ so that its Retry runs the job again; the task already says ``retrying``."""


def _retry(ctx: TaskContext, error: TaskError) -> bool:
    """Schedule the next attempt if one is left: ``running -> retrying``, event, and RQ's retry.

    Returns ``False`` when the failure is final (no attempt left) and ``True`` when someone else moved the task meanwhile (nothing left to write). Otherwise
    raises :class:`RetryScheduled`, which is how an RQ job asks for its Retry.
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
    size = len(json.dumps(result, separators=(",", ":")).encode())
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(f"result is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")


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
