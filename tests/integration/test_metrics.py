"""The worker side's Prometheus metrics, scraped over HTTP from the parts as they run.

The task counters move where the task lifecycle calls :mod:`worker_container.metrics`; these
tests call that API as the lifecycle does, in this process and in a real worker's work horse.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import aio_pika
import pytest
import redis
from prometheus_client import REGISTRY
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.worker import WorkerStatus

from taskcast.local.stack import entry
from taskcore.config import Config
from taskcore.message import Submitted
from taskcore.store import TaskStore
from taskcore.tasktype import Priority
from tests.scrape import Scrape, scrape, scrape_until
from worker_container import metrics
from worker_container.execution import TaskWorker
from worker_container.lease import Lease
from worker_container.relay import Relay
from worker_container.services import Services

from .helpers import default_queues, make_task

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASK_FAMILIES = {f"taskcast_tasks_{what}": "counter" for what in metrics.Counted} | {
    "taskcast_task_runtime_seconds": "histogram",
    "taskcast_queue_wait_seconds": "histogram",
}
PARTS = {
    "relay": "worker_container.relay:main",
    "worker": "worker_container.worker:main",
    "sweeper": "worker_container.sweeper:main",
    "realtime": "realtime.server:main",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served() -> Iterator[int]:
    """This process's metrics, served on a port of their own for the test."""
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    yield port
    server.shutdown()
    server.server_close()


@pytest.fixture
def task_type() -> str:
    """A type no other test counts, so its figures start from nothing."""
    return f"test.t{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def running(
    part: str, log: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """One of taskcast's parts as its entry point runs it, stopped (SIGTERM) after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            entry(PARTS[part], *args),
            cwd=ROOT,  # the worker's work horses import this package's test jobs
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def metrics_options(port: int) -> tuple[str, ...]:
    return ("--metrics-port", str(port), "--metrics-host", "127.0.0.1")


def test_each_task_counter_is_exposed_as_its_total_and_moves_by_one_per_fact(
    served: int, task_type: str
) -> None:
    before = scrape(served)
    assert {name: before.types.get(name) for name in TASK_FAMILIES} == TASK_FAMILIES
    for what in metrics.Counted:
        assert before.value(f"taskcast_tasks_{what}_total", type=task_type) is None

    for what in metrics.Counted:
        metrics.count(what, task_type)
    metrics.count(metrics.Counted.STARTED, task_type)  # a second attempt

    after = scrape(served)
    counted = {
        what.value: after.value(f"taskcast_tasks_{what}_total", type=task_type)
        for what in metrics.Counted
    }
    assert counted == {
        "submitted": 1.0,
        "started": 2.0,
        "succeeded": 1.0,
        "failed": 1.0,
        "retried": 1.0,
        "cancelled": 1.0,
        "dead_lettered": 1.0,
    }


def test_runtime_and_queue_wait_are_histograms_of_seconds_by_type(
    served: int, task_type: str
) -> None:
    metrics.observe_runtime(task_type, 42.0)
    metrics.observe_runtime(task_type, 2 * 3600.0)
    metrics.observe_queue_wait(task_type, 0.02)
    metrics.observe_queue_wait(task_type, -0.5)  # another host's clock ahead: waited 0 s

    found = scrape(served)
    runtime = "taskcast_task_runtime_seconds"
    assert found.value(f"{runtime}_count", type=task_type) == 2
    assert found.value(f"{runtime}_sum", type=task_type) == 42.0 + 7200.0
    assert found.value(f"{runtime}_bucket", type=task_type, le="30.0") == 0
    assert found.value(f"{runtime}_bucket", type=task_type, le="60.0") == 1
    assert found.value(f"{runtime}_bucket", type=task_type, le="7200.0") == 2
    wait = "taskcast_queue_wait_seconds"
    assert found.value(f"{wait}_count", type=task_type) == 2
    assert found.value(f"{wait}_sum", type=task_type) == 0.02
    assert found.value(f"{wait}_bucket", type=task_type, le="0.005") == 1
    assert found.value(f"{wait}_bucket", type=task_type, le="0.025") == 2


def test_what_a_forked_work_horse_counts_is_served_by_its_worker_process(
    env: dict[str, str], redis_client: redis.Redis, config: Config, task_type: str, tmp_path: Path
) -> None:
    port = free_port()
    # A work horse per job, as for a task type declared isolated.
    options = (*metrics_options(port), "--isolate-all")
    with running("worker", tmp_path / "worker.log", *options) as worker:
        scrape_until(port, lambda _: True, what="the worker's metrics")
        queue = Queue(config.names.rq_queue(Priority.NORMAL), connection=redis_client)
        job = queue.enqueue(f"{__package__}.jobs.count_in_a_work_horse", task_type)

        found = scrape_until(
            port,
            lambda s: s.value("taskcast_task_runtime_seconds_count", type=task_type) == 1,
            what=f"the horse's counts; worker log:\n{(tmp_path / 'worker.log').read_text()}",
        )
        job = Job.fetch(job.id, connection=redis_client)
        assert job.get_status() is JobStatus.FINISHED
        horse = job.return_value()

    assert horse != worker.pid  # counted in a forked horse, served by the worker
    assert found.value("taskcast_tasks_started_total", type=task_type) == 1
    assert found.value("taskcast_tasks_succeeded_total", type=task_type) == 1
    assert found.value("taskcast_task_runtime_seconds_sum", type=task_type) == 1.5


def test_an_orphaned_work_horse_does_not_keep_its_workers_metrics_port() -> None:
    """A worker that dies while its horse runs on (SIGKILL) must be able to start again."""
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    read, write = os.pipe()
    horse = os.fork()
    if horse == 0:  # the horse: runs on until told, holding what it inherited
        os.read(read, 1)
        os._exit(0)
    try:
        server.shutdown()
        server.server_close()
        # The port is free for the worker's next start, though the horse lives.
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))
            again.listen()
        assert os.waitpid(horse, os.WNOHANG) == (0, 0)  # still running
    finally:
        os.write(write, b"x")
        os.waitpid(horse, 0)
        os.close(read)
        os.close(write)


async def test_the_relay_and_the_sweeper_serve_their_metrics_and_only_the_sweeper_rqs_figures(
    env: dict[str, str],
    redis_client: redis.Redis,
    config: Config,
    amqp: aio_pika.abc.AbstractChannel,
    tmp_path: Path,
) -> None:
    names = config.names
    normal = Queue(names.rq_queue(Priority.NORMAL), connection=redis_client)
    normal.enqueue("builtins.print", job_id="job-1")
    normal.enqueue("builtins.print", job_id="job-2")
    Queue(names.rq_queue(Priority.HIGH, "gpu"), connection=redis_client).enqueue("builtins.print")
    worker = Worker([normal], connection=redis_client, name=f"w-{names.namespace}")
    worker.register_birth()
    worker.set_state(WorkerStatus.IDLE)
    relay_port, sweeper_port = free_port(), free_port()
    # No AWS here: the sweeper's passes fail at once (and are logged), but it takes the lease.
    no_aws = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    try:
        with (
            running("relay", tmp_path / "relay.log", *metrics_options(relay_port)),
            running(
                "sweeper", tmp_path / "sweeper.log", *metrics_options(sweeper_port), env=no_aws
            ),
        ):
            swept = scrape_until(
                sweeper_port,
                lambda s: s.value("taskcast_workers", state="idle") is not None,
                what="the sweeper's RQ figures",
            )
            relayed = scrape_until(relay_port, lambda _: True, what="the relay's metrics")
    finally:
        worker.register_death()

    for found in (swept, relayed):
        assert {name: found.types.get(name) for name in TASK_FAMILIES} == TASK_FAMILIES
    assert swept.value("taskcast_queue_length", queue="default") == 2
    assert swept.value("taskcast_queue_length", queue="gpu") == 1
    assert {s: swept.value("taskcast_workers", state=s) for s in WorkerStatus} == {
        WorkerStatus.STARTED: 0,
        WorkerStatus.SUSPENDED: 0,
        WorkerStatus.BUSY: 0,
        WorkerStatus.IDLE: 1,
    }
    assert not any(
        name.startswith(("taskcast_queue", "taskcast_workers")) for name in relayed.names()
    )


def rq_figures(found: Scrape) -> set[str]:
    return {n for n in found.names() if n in ("taskcast_queue_length", "taskcast_workers")}


def test_only_the_holder_of_the_lease_it_follows_reports_rqs_figures(
    served: int, redis_client: redis.Redis, config: Config
) -> None:
    names = config.names
    high = Queue(names.rq_queue(Priority.HIGH), connection=redis_client)
    low = Queue(names.rq_queue(Priority.LOW), connection=redis_client)
    for queue in (high, high, low):
        queue.enqueue("builtins.print")
    Queue("elsewhere.default.high", connection=redis_client).enqueue("builtins.print")
    ours = Worker([high, low], connection=redis_client, name="w-ours")
    theirs = Worker(["elsewhere.default.high"], connection=redis_client, name="w-theirs")
    for worker, state in ((ours, WorkerStatus.BUSY), (theirs, WorkerStatus.IDLE)):
        worker.register_birth()
        worker.set_state(state)
    holder = Lease(redis_client, names.sweeper_lease, ttl_s=60)
    other = Lease(redis_client, names.sweeper_lease, ttl_s=60)
    assert holder.hold()
    assert not other.hold()
    try:
        metrics.RQ_FIGURES.follow(redis_client, names, other)
        assert rq_figures(scrape(served)) == set()  # another copy reports them
        metrics.RQ_FIGURES.follow(redis_client, names, holder)
        found = scrape(served)
        metrics.RQ_FIGURES.forget()
        assert rq_figures(scrape(served)) == set()
    finally:
        metrics.RQ_FIGURES.forget()
        ours.register_death()
        theirs.register_death()

    # The three priorities of the namespace's one queue together; not another namespace's.
    assert rq_figures(found) == {"taskcast_queue_length", "taskcast_workers"}
    assert [k for k in found.samples if k[0] == "taskcast_queue_length"] == [
        ("taskcast_queue_length", frozenset({("queue", "default")}))
    ]
    assert found.value("taskcast_queue_length", queue="default") == 3
    assert found.value("taskcast_workers", state="busy") == 1
    assert found.value("taskcast_workers", state="idle") == 0


@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_metrics_port_that_cannot_be_listened_on_stops_the_part_naming_the_option(
    part: str, env: dict[str, str], redis_client: redis.Redis
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            entry(PARTS[part], *metrics_options(port)),
            cwd=ROOT,
            env=os.environ,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_lifecycle_counts_each_fact_of_a_task_once(svc: Services, store: TaskStore) -> None:
    def value(name: str, task_type: str) -> float:
        return REGISTRY.get_sample_value(name, {"type": task_type}) or 0.0

    names = (
        "taskcast_tasks_submitted_total",
        "taskcast_tasks_started_total",
        "taskcast_tasks_retried_total",
        "taskcast_tasks_failed_total",
        "taskcast_queue_wait_seconds_count",
        "taskcast_task_runtime_seconds_count",
    )
    before = {name: value(name, "demo.sleep") for name in names}
    task = make_task("demo.sleep", {"seconds": 0, "steps": 1, "fail_rate": 1}, max_attempts=2)
    store.create(task)
    Relay(svc).relay(Submitted.of(task).encode())
    Relay(svc).relay(Submitted.of(task).encode())  # a duplicate message: not counted again
    TaskWorker(default_queues(svc), svc).work(burst=True)  # fails, for good (TaskFailed)

    moved = {name: value(name, "demo.sleep") - before[name] for name in names}
    assert moved == {
        "taskcast_tasks_submitted_total": 1,
        "taskcast_tasks_started_total": 1,
        "taskcast_tasks_retried_total": 0,
        "taskcast_tasks_failed_total": 1,
        "taskcast_queue_wait_seconds_count": 1,
        "taskcast_task_runtime_seconds_count": 1,
    }
