"""``make bench``: taskcast measured against baselines in the same run, printed as tables.

1. The pipeline: latency from ``POST /tasks`` returning to the watcher holding ``running``
   (p50, p99) and throughput of no-op tasks each watched to its end, next to bare RQ's
   enqueue-to-start latency and drain rate with the same number of workers; then the CPU each
   part of the stack spent per task.
2. Fan-out: 1,000, 5,000 and 10,000 watchers on one realtime process, events published through
   Redis at a fixed rate: delivery latency p50/p99, delivered events per second and server memory
   per connection, next to a bare ``websockets`` server sending the same rate to as many
   connections.

These machines are noisy: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

from taskcast.local.stack import Ports, Stack

from . import baseline, pipeline
from .fanout import run as fanout
from .stats import percentile

REDIS_DB = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(samples: list[float], p: float) -> float:
    return 1000 * percentile(samples, p)


def bench_pipeline(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    print(
        f"pipeline: {args.workers} workers, {args.samples} latency samples, {args.batch} tasks at concurrency {args.concurrency}"
    )
    print("pipeline: bare RQ ...", flush=True)
    bare = baseline.measure(env["TASKCAST_REDIS_URL"], args.workers, args.samples, args.batch)
    print("pipeline: taskcast (stack starting) ...", flush=True)
    log_path = Path(".taskcast/bench.log")
    log_path.parent.mkdir(exist_ok=True)
    ports = Ports(_free_port(), _free_port(), _free_port())
    with (
        log_path.open("w") as log,
        Stack(
            env, ports=ports, workers=args.workers, tasks="taskcast_demo.tasks", output=log
        ) as stack,
    ):
        ours, cpu_per_task = pipeline.measure(
            stack, "bench-key", args.samples, args.batch, args.concurrency
        )

    rows = [
        ("submit -> running p50 (ms)", _ms(ours.latencies_s, 50), _ms(bare.latencies_s, 50)),
        ("submit -> running p99 (ms)", _ms(ours.latencies_s, 99), _ms(bare.latencies_s, 99)),
        ("throughput (tasks/s)", ours.throughput, bare.throughput),
    ]
    print(f"\n| {'metric':<28} | {'taskcast':>10} | {'bare RQ':>10} | {'taskcast / RQ':>13} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 15}|")
    for name, mine, theirs in rows:
        print(f"| {name:<28} | {mine:>10.1f} | {theirs:>10.1f} | {mine / theirs:>13.2f} |")
    print(f"\n| {'CPU per task, by part':<28} | {'ms':>10} |")
    print(f"|{'-' * 30}|{'-' * 12}|")
    for part, ms in sorted(cpu_per_task.items(), key=lambda item: -item[1]):
        print(f"| {part:<28} | {ms:>10.1f} |")
    print(f"| {'total':<28} | {sum(cpu_per_task.values()):>10.1f} |")
    print(
        "\nbare RQ latency is enqueue -> job start; taskcast's is POST returned -> watcher has `running`\n"
        "(HTTP edge, DynamoDB on moto, RabbitMQ with confirms, relay, RQ, Redis log, websocket).\n"
        f"stack log: {log_path}\n"
    )


def bench_fanout(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    sizes = [int(n) for n in args.fanout_sizes.split(",")]
    print(
        f"fan-out: {args.rate:.0f} events/s for {args.seconds:.0f} s, one task per watcher, at {sizes} watchers"
    )
    rows = []
    for count in sizes:
        print(f"fan-out: {count} watchers ...", flush=True)
        bare = fanout.measure("bare", count, args.rate, args.seconds, env)
        ours = fanout.measure("taskcast", count, args.rate, args.seconds, env)
        rows.append((count, ours, bare))
    header = (
        "watchers",
        "p50 ms",
        "p99 ms",
        "events/s",
        "KB/conn",
        "bare p50",
        "bare p99",
        "bare ev/s",
        "bare KB",
        "p99 ratio",
    )
    print("\n| " + " | ".join(f"{h:>9}" for h in header) + " |")
    print("|" + "|".join("-" * 11 for _ in header) + "|")
    for count, ours, bare in rows:
        cells = (
            count,
            _ms(ours.latencies_s, 50),
            _ms(ours.latencies_s, 99),
            ours.delivered_per_s,
            ours.rss_per_connection_kb,
            _ms(bare.latencies_s, 50),
            _ms(bare.latencies_s, 99),
            bare.delivered_per_s,
            bare.rss_per_connection_kb,
            _ms(ours.latencies_s, 99) / _ms(bare.latencies_s, 99),
        )
        print(
            "| "
            + " | ".join(f"{c:>9.1f}" if isinstance(c, float) else f"{c:>9}" for c in cells)
            + " |"
        )
    print(
        "\ntaskcast: worker-side append (Lua) -> Redis pub/sub -> realtime hub -> watcher's websocket;\n"
        "bare: websockets' broadcast() to the one connection a message is for. KB/conn: server RSS.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["pipeline", "fanout"], help="run one benchmark")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--samples", type=int, default=50, help="latency samples, one task at a time"
    )
    parser.add_argument("--batch", type=int, default=200, help="tasks in the throughput run")
    parser.add_argument(
        "--concurrency", type=int, default=20, help="clients submitting and watching at once"
    )
    parser.add_argument(
        "--fanout-sizes", default="1000,5000,10000", help="watcher counts, comma-separated"
    )
    parser.add_argument(
        "--rate", type=float, default=1000, help="fan-out events per second, in all"
    )
    parser.add_argument("--seconds", type=float, default=5, help="fan-out publishing time")
    args = parser.parse_args()

    env = {
        **os.environ,
        "TASKCAST_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
        # TASKCAST_BENCH_REDIS_URL: a Redis of your own, away from anyone else's database 12.
        "TASKCAST_REDIS_URL": os.environ.get(
            "TASKCAST_BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}"
        ),
        "TASKCAST_API_KEYS": "bench-key=bench",
        "TASKCAST_WATCH_SECRET": os.environ.get("TASKCAST_WATCH_SECRET", uuid.uuid4().hex),
        "TASKCAST_LOG_LEVEL": "WARNING",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    if args.only in (None, "pipeline"):
        bench_pipeline(args, env)
    if args.only in (None, "fanout"):
        bench_fanout(args, env)


if __name__ == "__main__":
    main()
