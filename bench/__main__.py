"""``make bench``: taskcast measured against baselines in the same run, printed as tables.

1. The pipeline: latency from ``POST /tasks`` returning to the watcher holding ``running``
   (p50, p99) and throughput of no-op tasks each watched to its end, next to bare RQ's
   enqueue-to-start latency and drain rate with the same number of workers; then the CPU each
   part of the stack spent per task. Then the edge under load: 1,000 ``POST /tasks``, 50 at once
   (as ``hey -n 1000 -c 50``): requests per second, p50, p99, how many were accepted.
2. Fan-out: 1,000, 5,000 and 10,000 watchers on one realtime process, events published through
   Redis at a fixed rate: delivery latency p50/p99, delivered events per second and server memory
   per connection, next to a bare ``websockets`` server sending the same rate to as many
   connections.

These machines are noisy: compare the ratios, not the absolute figures.

``--json`` prints one JSON object on stdout and nothing else (the tables go to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from taskcast.local.stack import Ports, Stack

from . import baseline, pipeline, submit
from .fanout import run as fanout
from .stats import percentile

REDIS_URL = os.environ.get("TASKCAST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
"""The Redis the bench uses (``--redis-url``): database 12 of the local server, unless set."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(samples: list[float], p: float) -> float:
    return 1000 * percentile(samples, p)


def bench_pipeline(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
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
        print(
            f"pipeline: submit load, {args.submit_requests} at concurrency {args.submit_concurrency} ...",
            flush=True,
        )
        load, cpu_per_submit = submit.run(
            stack, "bench-key", args.submit_requests, args.submit_concurrency
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
    print(submit.table(load, cpu_per_submit))
    print(
        "\nsubmit load: each of the clients sends its next POST /tasks on its kept-alive connection\n"
        "as soon as the last is answered; 202 = recorded (DynamoDB on moto) and published (with\n"
        "confirms). The relay and workers take the tasks meanwhile, on the same cores.\n"
    )
    return {"submit_load": load.to_json()}


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


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[IO[str]]:
    """Send what this process and its children write to stdout to stderr instead; yield the
    real stdout, for the one JSON object."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    try:
        with os.fdopen(os.dup(real), "w") as out:
            yield out
    finally:
        sys.stdout.flush()
        os.dup2(real, 1)
        os.close(real)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["pipeline", "fanout"], help="run one benchmark")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (the tables: stderr)"
    )
    parser.add_argument(
        "--redis-url",
        default=REDIS_URL,
        help="the Redis to use (default: $TASKCAST_BENCH_REDIS_URL, else %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--samples", type=int, default=50, help="latency samples, one task at a time"
    )
    parser.add_argument("--batch", type=int, default=200, help="tasks in the throughput run")
    parser.add_argument(
        "--concurrency", type=int, default=20, help="clients submitting and watching at once"
    )
    parser.add_argument(
        "--submit-requests", type=int, default=1000, help="POST /tasks in the submit load"
    )
    parser.add_argument(
        "--submit-concurrency", type=int, default=50, help="clients of the submit load"
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
        "TASKCAST_REDIS_URL": args.redis_url,
        "TASKCAST_API_KEYS": "bench-key=bench",
        "TASKCAST_WATCH_SECRET": os.environ.get("TASKCAST_WATCH_SECRET", uuid.uuid4().hex),
        "TASKCAST_LOG_LEVEL": "WARNING",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    figures: dict[str, Any] = {}
    with _stdout_to_stderr() if args.json else contextlib.nullcontext(sys.stdout) as out:
        if args.only in (None, "pipeline"):
            figures.update(bench_pipeline(args, env))
        if args.only in (None, "fanout"):
            bench_fanout(args, env)
        if args.json:
            json.dump(figures, out)
            out.write("\n")


if __name__ == "__main__":
    main()
