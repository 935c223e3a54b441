"""Plain RQ jobs for the tests of :class:`worker_container.execution.TaskWorker`.

Each marks its start with a key named for its job, so a test can act once the function runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from rq import get_current_job

STOP_SIGNALS = {signal.SIGALRM, signal.SIGUSR1}


def _started() -> None:
    job = get_current_job()
    assert job is not None
    job.connection.set(started_key(job.id), os.getpid())


def started_key(job_id: str) -> str:
    return f"test:started:{job_id}"


def pid() -> int:
    """The process the job ran in."""
    _started()
    return os.getpid()


def sleep(seconds: float) -> int:
    _started()
    time.sleep(seconds)
    return os.getpid()


def stubborn_sleep(seconds: float) -> None:
    """Sleeps ``seconds`` whatever ``Exception`` is raised in it (a timeout, say)."""
    _started()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(Exception):
            time.sleep(min(left, 0.1))


def blocked_sleep(seconds: float) -> None:
    """Sleeps ``seconds`` with the signals that stop a job blocked: C code that never returns."""
    _started()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    time.sleep(seconds)


def crash() -> None:
    _started()
    os._exit(3)
