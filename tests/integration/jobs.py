"""RQ jobs that the tests enqueue for a real worker process to run in its work horse."""

from __future__ import annotations

import os

from worker_container import metrics
from worker_container.services import Services


def count_in_a_work_horse(services: Services, task_type: str) -> int:
    """Count a start, a success and a runtime of ``task_type``, as a task's lifecycle would;
    return the pid that counted them (the work horse's, for a forking worker). A taskcast
    worker gives every job its services first (``worker_container.job.TaskJob``)."""
    metrics.count(metrics.Counted.STARTED, task_type)
    metrics.count(metrics.Counted.SUCCEEDED, task_type)
    metrics.observe_runtime(task_type, 1.5)
    return os.getpid()
