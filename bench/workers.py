"""``python -m bench.workers``: what running one job costs, per worker design, in one run.

The same no-op jobs, drained by the same number of workers from the same Redis, with each way of
running a job: RQ's ``Worker`` (a work horse forked per job), ``SimpleWorker`` (no fork),
``SpawnWorker`` (a new interpreter per job), and taskcast's :class:`TaskWorker` in its two modes
(in its own process; a work horse per job, for isolated types). For each: jobs a second, and CPU
milliseconds per job of the worker processes and of every child they reaped (work horses). Then
what one ``fork()`` costs a process with and without the worker's imports loaded (boto3, the
task modules, ...), and what starting a worker costs (what a crash costs in time, when a job
runs in its worker's own process).

The jobs are RQ's and nothing else (no DynamoDB, no event log): the pipeline benchmark
(``python -m bench --only pipeline``) measures whole tasks. These machines are noisy: compare
the designs within one run, not the figures across runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from rq import Queue, SimpleWorker, SpawnWorker, Worker
from rq.worker import BaseWorker

from . import cpu
from .jobs import noop

ROOT = Path(__file__).resolve().parent.parent
TASK_MODULES = "taskcast_demo.tasks,taskcast_images.tasks"
WARMUP_JOBS = 50


@dataclass(frozen=True)
class Design:
    name: str
    preload: bool
    """Whether the worker process loads what a taskcast worker does before it works."""
    make: Callable[[Queue, Redis], BaseWorker]
    jobs_divisor: int = 1
    """Run ``jobs // jobs_divisor`` jobs: a new interpreter per job is too slow for them all."""


def _isolated_task_worker(queue: Queue, redis: Redis) -> BaseWorker:
    from worker_container.execution import TaskWorker

    return TaskWorker([queue], connection=redis, isolate_all=True)


def _task_worker(queue: Queue, redis: Redis) -> BaseWorker:
    from worker_container.execution import TaskWorker

    return TaskWorker([queue], connection=redis)


DESIGNS = {
    d.name: d
    for d in (
        Design("rq Worker (fork per job)", False, lambda q, r: Worker([q], connection=r)),
        Design("rq Worker, taskcast imports", True, lambda q, r: Worker([q], connection=r)),
        Design("rq SimpleWorker (no fork)", False, lambda q, r: SimpleWorker([q], connection=r)),
        Design(
            "rq SpawnWorker (exec per job)",
            False,
            lambda q, r: SpawnWorker([q], connection=r),
            jobs_divisor=20,
        ),
        Design("TaskWorker, isolated (fork)", True, _isolated_task_worker),
        Design("TaskWorker (in process)", True, _task_worker),
    )
}


def _env(redis_url: str) -> dict[str, str]:
    """What the worker processes need to load a taskcast worker's services (no AWS calls)."""
    return {
        **os.environ,
        "TASKCAST_REDIS_URL": redis_url,
        "TASKCAST_TASKS": TASK_MODULES,
        "TASKCAST_NAMESPACE": "bench",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT),
    }


_PRELOADED: list[object] = []
"""What :func:`_preload` built, held for the life of the process as a worker holds it."""


def _preload() -> None:
    """Import and build what a taskcast worker holds before it forks: its clients, its tasks."""
    from taskcore.config import Config
    from worker_container.services import Services

    _PRELOADED.append(Services.build(Config.from_env(need=["redis"]), load_tasks=True))


def serve(design: Design, redis_url: str, queue_name: str) -> None:
    """The worker process of one design (``--serve``)."""
    if design.preload:
        _preload()
    redis = Redis.from_url(redis_url)
    worker = design.make(Queue(queue_name, connection=redis), redis)
    worker.work(logging_level="WARNING")


@dataclass
class Drained:
    jobs: int
    seconds: float
    cpu_s: float
    rss_kb: int

    @property
    def per_s(self) -> float:
        return self.jobs / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.jobs


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _enqueue(queue: Queue, count: int) -> None:
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many([Queue.prepare_data(noop) for _ in range(count)], pipeline=pipe)
        pipe.execute()


def drain(design: Design, redis_url: str, workers: int, jobs: int) -> Drained:
    """Start ``workers`` processes of ``design``, warm them up, then time ``jobs`` no-op jobs."""
    redis = Redis.from_url(redis_url)
    queue = Queue(f"bench-workers-{uuid.uuid4().hex[:8]}", connection=redis)
    argv = [sys.executable, "-m", "bench.workers", "--serve", design.name, "--queue", queue.name]
    procs = [
        subprocess.Popen(
            [*argv, "--redis", redis_url], cwd=ROOT, env=_env(redis_url), stdin=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    finished = queue.finished_job_registry
    try:
        _wait(lambda: len(Worker.all(queue=queue)) == workers, 60, "the workers to start")
        _enqueue(queue, WARMUP_JOBS)
        _wait(lambda: finished.count == WARMUP_JOBS, 120, "the warm-up jobs")
        before = sum(cpu.cpu_seconds(p.pid) for p in procs)
        began = time.perf_counter()
        _enqueue(queue, jobs)
        _wait(lambda: finished.count == WARMUP_JOBS + jobs, 600, "the jobs")
        elapsed = time.perf_counter() - began
        spent = sum(cpu.cpu_seconds(p.pid) for p in procs) - before
        rss = max(_rss_kb(p.pid) for p in procs)
        return Drained(jobs, elapsed, spent, rss)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        for key in redis.scan_iter(f"*{queue.name}*"):
            redis.delete(key)
        redis.close()


def fork_probe(count: int) -> tuple[float, float, int]:
    """Fork ``count`` children that exit at once: wall and CPU ms per fork, and this RSS (KiB)."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = sum(
        (a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime)
        for a, b in zip(after, before, strict=True)
    )
    return 1000 * wall / count, 1000 * spent / count, _rss_kb(os.getpid())


def _probe_in_child(redis_url: str, preload: bool, count: int) -> str:
    flag = ["--preload"] if preload else []
    return subprocess.run(
        [sys.executable, "-m", "bench.workers", "--fork-probe", str(count), *flag],
        cwd=ROOT,
        env=_env(redis_url),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def start_cost(redis_url: str) -> tuple[float, float]:
    """Seconds from exec to a taskcast worker registered with RQ, and the CPU seconds it took."""
    redis = Redis.from_url(redis_url)
    name = f"bench-start-{uuid.uuid4().hex[:8]}"
    env = {**_env(redis_url), "TASKCAST_LOG_LEVEL": "WARNING"}
    code = "import sys; from worker_container.worker import main; sys.exit(main())"
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--name", name], cwd=ROOT, env=env, stdin=subprocess.DEVNULL
    )
    try:
        _wait(lambda: redis.exists(f"rq:worker:{name}") == 1, 60, "the worker to start")
        elapsed = time.perf_counter() - began
        spent = cpu.cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        redis.close()
    return elapsed, spent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("TASKCAST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        help="the Redis database to use (default: $TASKCAST_BENCH_REDIS_URL or db 12 on 6379)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs per design")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the medians are shown")
    parser.add_argument("--forks", type=int, default=500, help="forks in the fork probe")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--fork-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--preload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(DESIGNS[args.serve], args.redis, args.queue)
        return
    if args.fork_probe:
        if args.preload:
            _preload()
        wall_ms, cpu_ms, rss = fork_probe(args.fork_probe)
        print(f"{wall_ms:.2f} {cpu_ms:.2f} {rss}")
        return

    print(
        f"workers: {args.workers} workers per design, {args.jobs} no-op jobs, "
        f"{args.rounds} rounds, Redis {args.redis}"
    )
    runs: dict[str, list[Drained]] = {name: [] for name in DESIGNS}
    designs = list(DESIGNS.values())
    for n in range(args.rounds):
        # Each round in another order, so that a noisy neighbour does not always hit one design.
        for design in designs[n % len(designs) :] + designs[: n % len(designs)]:
            print(f"workers: round {n + 1}: {design.name} ...", flush=True)
            jobs = args.jobs // design.jobs_divisor
            runs[design.name].append(drain(design, args.redis, args.workers, jobs))
    print(
        f"\n| {'design':<32} | {'jobs':>5} | {'jobs/s':>7} | {'CPU ms/job':>10} "
        f"| {'spread':>11} | {'RSS MiB':>7} |"
    )
    print(f"|{'-' * 34}|{'-' * 7}|{'-' * 9}|{'-' * 12}|{'-' * 13}|{'-' * 9}|")
    for name, drained in runs.items():
        spread = sorted(d.cpu_ms for d in drained)
        print(
            f"| {name:<32} | {drained[0].jobs:>5} "
            f"| {statistics.median(d.per_s for d in drained):>7.0f} "
            f"| {statistics.median(spread):>10.2f} | {spread[0]:>5.2f}-{spread[-1]:<5.2f} "
            f"| {max(d.rss_kb for d in drained) / 1024:>7.0f} |"
        )
    print(
        f"\n| {'one fork() + exit + wait':<32} | {'wall ms':>7} | {'CPU ms':>7} | {'RSS MiB':>7} |"
    )
    print(f"|{'-' * 34}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for label, preload in (("bare interpreter + rq", False), ("taskcast worker's imports", True)):
        probe_wall, probe_cpu, probe_rss = _probe_in_child(args.redis, preload, args.forks).split()
        print(
            f"| {label:<32} | {float(probe_wall):>7.2f} | {float(probe_cpu):>7.2f} "
            f"| {int(probe_rss) / 1024:>7.0f} |"
        )
    elapsed, spent = start_cost(args.redis)
    print(
        f"\nstarting a taskcast worker (exec to registered): {elapsed:.2f} s, {spent:.2f} CPU s\n"
        "CPU per job: the worker processes and the work horses they reaped; not Redis's.\n"
    )


if __name__ == "__main__":
    main()
