"""``make bench``: taskcast end to end against a bare-RQ baseline, measured in the same run.

Prints one table: latency from ``POST /tasks`` returning to the watcher holding ``running``
(p50, p99), and throughput of no-op tasks each watched to its end, next to bare RQ's
enqueue-to-start latency and drain rate with the same number of workers, and the ratios.
These machines are noisy: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from pathlib import Path

from taskcast.stack import Ports, Stack

from . import baseline, pipeline
from .stats import percentile

REDIS_DB = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--samples", type=int, default=50, help="latency samples, one task at a time"
    )
    parser.add_argument("--batch", type=int, default=200, help="tasks in the throughput run")
    parser.add_argument(
        "--concurrency", type=int, default=20, help="clients submitting and watching at once"
    )
    args = parser.parse_args()

    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    env = {
        **os.environ,
        "TASKCAST_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
        "TASKCAST_REDIS_URL": redis_url,
        "TASKCAST_API_KEYS": "bench-key=bench",
        "TASKCAST_LOG_LEVEL": "WARNING",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    print(
        f"bench: {args.workers} workers, {args.samples} latency samples, {args.batch} tasks at concurrency {args.concurrency}"
    )

    print("bench: bare RQ ...", flush=True)
    bare = baseline.measure(redis_url, args.workers, args.samples, args.batch)

    print("bench: taskcast (stack starting) ...", flush=True)
    log_path = Path(".taskcast/bench.log")
    log_path.parent.mkdir(exist_ok=True)
    with (
        log_path.open("w") as log,
        Stack(
            env,
            ports=Ports(_free_port(), _free_port(), _free_port()),
            workers=args.workers,
            output=log,
        ) as stack,
    ):
        ours, cpu_per_task = pipeline.measure(
            stack, "bench-key", args.samples, args.batch, args.concurrency
        )

    rows = [
        (
            "submit -> running p50 (ms)",
            1000 * percentile(ours.latencies_s, 50),
            1000 * percentile(bare.latencies_s, 50),
        ),
        (
            "submit -> running p99 (ms)",
            1000 * percentile(ours.latencies_s, 99),
            1000 * percentile(bare.latencies_s, 99),
        ),
        ("throughput (tasks/s)", ours.throughput, bare.throughput),
    ]
    print()
    print(f"| {'metric':<28} | {'taskcast':>10} | {'bare RQ':>10} | {'taskcast / RQ':>13} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 15}|")
    for name, mine, theirs in rows:
        print(f"| {name:<28} | {mine:>10.1f} | {theirs:>10.1f} | {mine / theirs:>13.2f} |")
    print(f"\n| {'CPU per task, by part':<28} | {'ms':>10} |")
    print(f"|{'-' * 30}|{'-' * 12}|")
    for part, ms in sorted(cpu_per_task.items(), key=lambda item: -item[1]):
        print(f"| {part:<28} | {ms:>10.1f} |")
    print(f"| {'total':<28} | {sum(cpu_per_task.values()):>10.1f} |")
    print(
        "\nbare RQ latency is enqueue -> job start; taskcast's is POST returned -> watcher has `running`"
    )
    print("(HTTP edge, DynamoDB on moto, RabbitMQ with confirms, relay, RQ, Redis log, websocket).")
    print(f"stack log: {log_path}")


if __name__ == "__main__":
    main()
