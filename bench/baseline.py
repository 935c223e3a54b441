"""The bare-RQ baseline: the same no-op job enqueued and drained directly, same worker count."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from rq import Queue

from .jobs import noop_stamp

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Measured:
    latencies_s: list[float]
    throughput: float


def measure(redis_url: str, workers: int, samples: int, batch: int) -> Measured:
    redis = Redis.from_url(redis_url)
    queue = Queue("bench-baseline", connection=redis)
    starts = "bench:baseline:starts"
    redis.delete(starts)
    argv = [
        sys.executable,
        "-m",
        "rq.cli",
        "worker",
        "--url",
        redis_url,
        "--path",
        str(ROOT),
        "--quiet",
        queue.name,
    ]
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        _wait_workers(redis, queue, workers)
        latencies = []
        for _ in range(samples):
            enqueued = time.time()
            job = queue.enqueue(noop_stamp, starts)
            started = _wait_stamp(redis, starts, job.id)
            latencies.append(started - enqueued)
        redis.delete(starts)
        began = time.perf_counter()
        jobs = [queue.enqueue(noop_stamp, starts) for _ in range(batch)]
        while redis.hlen(starts) < len(jobs) or any(
            j.get_status(refresh=True) != "finished" for j in jobs[-workers:]
        ):
            time.sleep(0.005)
        elapsed = time.perf_counter() - began
        return Measured(latencies, batch / elapsed)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        queue.empty()  # type: ignore[no-untyped-call]
        redis.delete(starts)
        redis.close()


def _wait_workers(redis: Redis, queue: Queue, workers: int, timeout_s: float = 30) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout_s
    while len(Worker.all(queue=queue)) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError("bare RQ workers did not start")
        time.sleep(0.1)


def _wait_stamp(redis: Redis, key: str, job_id: str, timeout_s: float = 30) -> float:
    deadline = time.monotonic() + timeout_s
    while (value := redis.hget(key, job_id)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} never started")
        time.sleep(0.001)
    return float(value)
