"""Jobs for the bare-RQ baseline: as little as a job can do, plus a timestamp to measure by."""

from __future__ import annotations

import time

from rq import get_current_job


def noop_stamp(key: str) -> None:
    """Record when this job started, then finish."""
    job = get_current_job()
    assert job is not None
    job.connection.hset(key, job.id, repr(time.time()))


def noop() -> None:
    """Do nothing: what the job costs is all the worker's."""
