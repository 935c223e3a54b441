"""The task counters and histograms, moved only by :mod:`.lifecycle`.

Named as operators know them from celery-exporter and rq-exporter. prometheus_client adds the
``_total`` of a counter's name itself.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from taskcore.clock import parse_iso
from taskcore.status import Status
from taskcore.task import Task

_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

SUBMITTED = Counter("taskcast_tasks_submitted", "Tasks put in their queue by the relay", ["type"])
STARTED = Counter("taskcast_tasks_started", "Attempts started", ["type"])
SUCCEEDED = Counter("taskcast_tasks_succeeded", "Tasks that succeeded", ["type"])
FAILED = Counter("taskcast_tasks_failed", "Tasks that failed for good", ["type"])
RETRIED = Counter("taskcast_tasks_retried", "Attempts that failed and will be retried", ["type"])
CANCELLED = Counter("taskcast_tasks_cancelled", "Tasks cancelled by their owner", ["type"])
DEAD_LETTERED = Counter(
    "taskcast_tasks_dead_lettered", "Tasks whose message went to the dead-letter queue", ["type"]
)
RUNTIME = Histogram(
    "taskcast_task_runtime_seconds", "How long attempts ran", ["type"], buckets=_BUCKETS_S
)
QUEUE_WAIT = Histogram(
    "taskcast_queue_wait_seconds",
    "How long attempts waited in their queue before a worker started them",
    ["type"],
    buckets=_BUCKETS_S,
)

_ENDED = {
    Status.SUCCEEDED: SUCCEEDED,
    Status.FAILED: FAILED,
    Status.RETRYING: RETRIED,
    Status.CANCELLED: CANCELLED,
}


def submitted(task_type: str) -> None:
    SUBMITTED.labels(task_type).inc()


def started(task: Task) -> None:
    """An attempt of ``task`` (as just claimed) started: count it and its wait in the queue."""
    STARTED.labels(task.type).inc()
    if task.queued_at is not None and task.started_at is not None:
        QUEUE_WAIT.labels(task.type).observe(
            max(0.0, parse_iso(task.started_at) - parse_iso(task.queued_at))
        )


def moved(before: Task, after: Task) -> None:
    """``before`` became ``after``: count how it ended, and how long its attempt ran."""
    counter = _ENDED.get(after.status)
    if counter is not None:
        counter.labels(after.type).inc()
    if before.status is Status.RUNNING and before.started_at is not None:
        RUNTIME.labels(after.type).observe(
            max(0.0, parse_iso(after.updated_at) - parse_iso(before.started_at))
        )


def dead_lettered(task_type: str) -> None:
    DEAD_LETTERED.labels(task_type).inc()
