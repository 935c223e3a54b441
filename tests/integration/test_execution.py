"""How :class:`TaskWorker` runs jobs, with plain RQ jobs, a worker process and the real Redis.

Jobs run in the worker's own process; what a forking worker's parent did is done otherwise:
timeouts, stops, the hard deadline past both, RQ's heartbeats. The same guarantees with whole
tasks and the stack's supervisor are in ``tests/e2e/test_execution.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus

from tests.conftest import REDIS_URL
from worker_container.execution import RUN_TASK, TaskWorker

from . import rq_jobs

pytestmark = pytest.mark.integration

SERVE = (
    "import sys; from redis import Redis; from worker_container.execution import TaskWorker; "
    "url, queue, interval, mode = sys.argv[1:]; "
    "TaskWorker([queue], connection=Redis.from_url(url), job_monitoring_interval=int(interval), "
    "isolate_all=mode == 'isolate-all').work(logging_level='INFO')"
)


class WorkerProcess:
    """A :class:`TaskWorker` serving one queue, in a process of its own; its output in a file."""

    def __init__(self, queue: Queue, log: Path, interval: int, mode: str) -> None:
        self.queue = queue
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, REDIS_URL, queue.name, str(interval), mode],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(lambda: len(Worker.all(queue=queue)) == 1, "the worker to start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def status_of(job: Job) -> JobStatus | None:
    return job.get_status(refresh=True)


@pytest.fixture
def queue(redis_client: redis.Redis) -> Queue:
    return Queue(f"exec-{uuid.uuid4().hex[:8]}", connection=redis_client)


@pytest.fixture
def start_worker(queue: Queue, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(interval: int = 30, mode: str = "") -> WorkerProcess:
        worker = WorkerProcess(queue, tmp_path / f"worker{len(started)}.log", interval, mode)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def running(redis_client: redis.Redis, job: Job) -> Callable[[], bool]:
    """Whether ``job``'s function has started (it says so itself)."""
    return lambda: bool(redis_client.exists(rq_jobs.started_key(job.id)))


def test_a_job_runs_in_the_workers_own_process(
    queue: Queue, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    job = queue.enqueue(rq_jobs.pid)

    wait_for(lambda: status_of(job) == JobStatus.FINISHED, "the job to finish")
    assert job.return_value() == worker.pid


def test_a_job_over_its_timeout_fails_with_rqs_timeout_and_the_worker_runs_the_next(
    queue: Queue, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    over = queue.enqueue(rq_jobs.sleep, 600, job_timeout=1)
    after = queue.enqueue(rq_jobs.pid)

    wait_for(lambda: status_of(after) == JobStatus.FINISHED, "the next job to finish")
    assert status_of(over) == JobStatus.FAILED
    result = over.latest_result()
    assert result is not None
    assert "JobTimeoutException" in (result.exc_string or "")
    assert after.return_value() == worker.pid


def test_a_stopped_job_ends_stopped_and_the_same_worker_runs_the_next(
    queue: Queue, start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    """The job swallows every ``Exception`` and never returns by itself within the test."""
    worker = start_worker()
    stubborn = queue.enqueue(rq_jobs.stubborn_sleep, 600, job_timeout=3600)
    wait_for(running(redis_client, stubborn), "the job to start")

    send_stop_job_command(redis_client, stubborn.id)

    wait_for(lambda: status_of(stubborn) == JobStatus.STOPPED, "the job to be stopped")
    after = queue.enqueue(rq_jobs.pid)
    wait_for(lambda: status_of(after) == JobStatus.FINISHED, "the next job to finish")
    assert after.return_value() == worker.pid
    assert worker.process.poll() is None
    assert "JobStopped" in worker.output()


def test_a_stopped_job_that_never_returns_to_python_ends_its_worker_process(
    queue: Queue, start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    """As a job stuck in C code: the stop cannot be raised in it, so the process exits."""
    worker = start_worker()
    stuck = queue.enqueue(rq_jobs.blocked_sleep, 600, job_timeout=3600)
    wait_for(running(redis_client, stuck), "the job to start")

    send_stop_job_command(redis_client, stuck.id)

    assert worker.process.wait(60) == 1
    # faulthandler's last word: where the function was.
    assert "Timeout (0:00:10)!" in worker.output()
    assert "blocked_sleep" in worker.output()


def test_a_job_that_swallows_its_timeout_ends_its_worker_process(
    queue: Queue, start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    worker = start_worker()
    stubborn = queue.enqueue(rq_jobs.stubborn_sleep, 600, job_timeout=1)
    wait_for(running(redis_client, stubborn), "the job to start")

    assert worker.process.wait(60) == 1
    assert "JobTimeoutException" not in worker.output()  # swallowed: nothing failed the job
    assert "stubborn_sleep" in worker.output()


def test_a_crash_in_a_job_ends_the_worker_process_and_only_that_job_is_unfinished(
    queue: Queue, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    crash = queue.enqueue(rq_jobs.crash)
    after = queue.enqueue(rq_jobs.pid)

    assert worker.process.wait(60) == 3
    assert status_of(crash) == JobStatus.STARTED  # for the sweeper to find by its heartbeat
    assert status_of(after) == JobStatus.QUEUED  # still there, for the next worker
    again = start_worker()
    wait_for(lambda: status_of(after) == JobStatus.FINISHED, "a new worker to run the next job")
    assert after.return_value() == again.pid


def test_rqs_heartbeats_are_renewed_while_a_job_runs_in_process(
    queue: Queue, start_worker: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    """What a forking worker's parent does every ``job_monitoring_interval`` while it waits."""
    start_worker(interval=1)
    job = queue.enqueue(rq_jobs.sleep, 5)
    wait_for(running(redis_client, job), "the job to start")
    worker_key = Worker.all(queue=queue)[0].key

    def last_heartbeats() -> tuple[datetime | None, datetime | None]:
        job.refresh()
        raw = redis_client.hget(worker_key, "last_heartbeat")
        return job.last_heartbeat, None if raw is None else datetime.fromisoformat(raw.decode())

    first = last_heartbeats()
    wait_for(
        lambda: (
            status_of(job) != JobStatus.STARTED
            or all(now != then for now, then in zip(last_heartbeats(), first, strict=True))
        ),
        "the heartbeats to be renewed",
    )
    assert status_of(job) == JobStatus.STARTED  # renewed while the job ran, not after
    # A forking worker's lifetime for them: the interval and a minute.
    assert 0 < redis_client.ttl(worker_key) <= 61


def test_an_isolated_job_runs_in_a_work_horse_whose_crash_spares_the_worker(
    queue: Queue, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(mode="isolate-all")
    horse = queue.enqueue(rq_jobs.pid)
    crash = queue.enqueue(rq_jobs.crash)
    after = queue.enqueue(rq_jobs.pid)

    wait_for(lambda: status_of(after) == JobStatus.FINISHED, "the last job to finish")
    assert horse.return_value() not in (None, worker.pid)
    assert status_of(crash) == JobStatus.FAILED
    assert worker.process.poll() is None


def test_a_worker_isolates_the_task_types_it_is_told_to_and_nothing_else(
    redis_client: redis.Redis,
) -> None:
    worker = TaskWorker(["q"], connection=redis_client, isolated={"faulty.crash"})

    def job(func: str, *args: object) -> Job:
        return Job.create(func, args=args, connection=redis_client)

    assert worker.isolates(job(RUN_TASK, "task-id", "faulty.crash"))
    assert not worker.isolates(job(RUN_TASK, "task-id", "demo.noop"))
    assert not worker.isolates(job("tests.integration.rq_jobs.pid"))
    assert TaskWorker(["q"], connection=redis_client, isolate_all=True).isolates(
        job("tests.integration.rq_jobs.pid")
    )
