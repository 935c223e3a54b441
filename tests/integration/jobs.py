"""RQ jobs that the tests enqueue for a real worker process to run in its work horse."""

from __future__ import annotations

import os

from worker_container import metrics


def count_in_a_work_horse(task_type: str) -> int:
    """Count a start, a success and a runtime of ``task_type``, as a task's lifecycle would;
    return the pid that counted them (the work horse's, for a forking worker)."""
    metrics.count(metrics.Counted.STARTED, task_type)
    metrics.count(metrics.Counted.SUCCEEDED, task_type)
    metrics.observe_runtime(task_type, 1.5)
    return os.getpid()
