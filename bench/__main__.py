"""``make bench``: taskcast measured against baselines in the same run, printed as tables.

1. The pipeline: latency from ``POST /tasks`` returning to the watcher holding ``running``
   (p50, p99) and throughput of no-op tasks each watched to its end, next to bare RQ's
   enqueue-to-start latency and drain rate with the same number of workers; then the CPU each
   part of the stack spent per task, and the DynamoDB calls each part made per task (by
   operation) and per progress report; then the edge under load: 1,000 ``POST /tasks``, 50 at
   once (as ``hey -n 1000 -c 50``): requests per second, p50, p99, how many were accepted. Then
   the sweeper (``--only sweeper`` alone): its pass and the status listing over 1,000 and
   100,000 finished tasks.
2. Fan-out: 1,000, 5,000 and 10,000 watchers on one realtime process, events published through
   Redis at a fixed rate: delivery latency p50/p99, delivered events per second and server memory
   per connection, next to a bare ``websockets`` server sending the same rate to as many
   connections.

These machines are noisy: compare the ratios, not the absolute figures.

``--json`` prints one JSON object on stdout and nothing else (the progress lines and tables go
to stderr); README.md lists its keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import aio_pika

from infra.broker import delete_topology
from taskcast.local.stack import Ports, Stack
from taskcore.config import Config

from . import baseline, pipeline, submit, sweeper
from .emulator import Emulator
from .fanout import report as fanout_report
from .fanout import run as fanout
from .stats import percentile

REDIS_URL = os.environ.get("TASKCAST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
"""The Redis the bench uses (``--redis-url``): database 12 of the local server, unless set."""
TICK_TYPES = ["demo.noop", "demo.sleep"]
"""The task types the pipeline runs: the stack is ready once a worker serves them."""

JSON = dict[str, Any]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(samples: list[float], p: float) -> float:
    return 1000 * percentile(samples, p)


def _kind(part: str) -> str:
    """The kind of process a part is: ``worker-2`` is a ``worker``."""
    return part.split("-")[0]


def _by_kind(per_part: Mapping[str, float]) -> dict[str, float]:
    kinds: dict[str, float] = {}
    for part, value in per_part.items():
        kinds[_kind(part)] = kinds.get(_kind(part), 0.0) + value
    return kinds


def bench_pipeline(args: argparse.Namespace, env: Mapping[str, str]) -> JSON:
    """Throughput, latency, CPU and DynamoDB calls: the tables, and the figures as JSON."""
    print(
        f"pipeline: {args.workers} workers, {args.samples} latency samples, {args.batch} tasks at concurrency {args.concurrency}"
    )
    print("pipeline: bare RQ ...", flush=True)
    bare = baseline.measure(env["TASKCAST_REDIS_URL"], args.workers, args.samples, args.batch)
    print("pipeline: taskcast (stack starting) ...", flush=True)
    log_path = Path(".taskcast/bench.log")
    log_path.parent.mkdir(exist_ok=True)
    ports = Ports(_free_port(), _free_port(), _free_port())
    with log_path.open("w") as log, Emulator() as emulator:
        stack = Stack(
            {**env, "AWS_ENDPOINT_URL": emulator.url},
            ports=ports,
            workers=args.workers,
            tasks="taskcast_demo.tasks",
            output=log,
        )
        try:
            with stack:
                print("pipeline: each part restarted with its own AWS key id ...", flush=True)
                pipeline.name_callers(stack, TICK_TYPES)
                ours = pipeline.measure(
                    stack, emulator, "bench-key", args.samples, args.batch, args.concurrency
                )
                print(
                    f"pipeline: DynamoDB calls per progress report ({args.tick_tasks} tasks, +{args.ticks} reports each) ...",
                    flush=True,
                )
                per_tick = pipeline.calls_per_progress_tick(
                    stack, emulator, "bench-key", args.tick_tasks, args.ticks, args.concurrency
                )
                print(
                    f"pipeline: submit load, {args.submit_requests} at concurrency {args.submit_concurrency} ...",
                    flush=True,
                )
                load, cpu_per_submit = submit.run(
                    stack, "bench-key", args.submit_requests, args.submit_concurrency
                )
        finally:
            _drop_topology(stack.config)

    cpu = _by_kind(ours.cpu_ms_per_task)
    per_task = ours.calls.total / ours.tasks
    by_operation = {op: n / ours.tasks for op, n in sorted(ours.calls.by_operation().items())}
    by_part: dict[str, Counter[str]] = {}
    for caller, operations in ours.calls.by_caller().items():
        by_part.setdefault(_kind(caller), Counter()).update(operations)

    rows = [
        (
            "submit -> running p50 (ms)",
            _ms(ours.measured.latencies_s, 50),
            _ms(bare.latencies_s, 50),
        ),
        (
            "submit -> running p99 (ms)",
            _ms(ours.measured.latencies_s, 99),
            _ms(bare.latencies_s, 99),
        ),
        ("throughput (tasks/s)", ours.measured.throughput, bare.throughput),
    ]
    print(f"\n| {'metric':<28} | {'taskcast':>10} | {'bare RQ':>10} | {'taskcast / RQ':>13} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 15}|")
    for name, mine, theirs in rows:
        print(f"| {name:<28} | {mine:>10.1f} | {theirs:>10.1f} | {mine / theirs:>13.2f} |")
    print(f"\n| {'CPU per task, by part':<28} | {'ms':>10} |")
    print(f"|{'-' * 30}|{'-' * 12}|")
    for part, ms in sorted(cpu.items(), key=lambda item: -item[1]):
        label = f"{part} (x{args.workers}, together)" if part == "worker" else part
        print(f"| {label:<28} | {ms:>10.1f} |")
    print(f"| {'total':<28} | {sum(cpu.values()):>10.1f} |")
    _print_calls(by_part, ours.tasks, per_tick)
    print(
        "\nbare RQ latency is enqueue -> job start; taskcast's is POST returned -> watcher has `running`\n"
        "(HTTP edge, DynamoDB on moto, RabbitMQ with confirms, relay, RQ, Redis log, websocket).\n"
        "DynamoDB calls: every call of every part during the throughput run, per task; the\n"
        "sweeper's and its overview reporter's come with time, not with tasks.\n"
        f"stack log: {log_path}\n"
    )
    print(submit.table(load, cpu_per_submit))
    print(
        "\nsubmit load: each of the clients sends its next POST /tasks on its kept-alive connection\n"
        "as soon as the last is answered; 202 = recorded (DynamoDB on moto) and published (with\n"
        "confirms). The relay and workers take the tasks meanwhile, on the same cores.\n"
    )
    return {
        "submit_load": load.to_json(),
        "taskcast": _figures(ours.measured),
        "bare_rq": _figures(bare),
        "cpu_ms_per_task": cpu,
        "dynamodb_calls_per_task": per_task,
        "dynamodb_calls_by_operation": by_operation,
        "dynamodb_calls_by_part": {
            part: {op: n / ours.tasks for op, n in sorted(ops.items())}
            for part, ops in sorted(by_part.items())
        },
        "dynamodb_calls_per_progress_tick": per_tick,
    }


def _figures(measured: baseline.Measured) -> JSON:
    return {
        "throughput": measured.throughput,
        "p50_ms": _ms(measured.latencies_s, 50),
        "p99_ms": _ms(measured.latencies_s, 99),
    }


def _print_calls(by_part: Mapping[str, Counter[str]], tasks: int, per_tick: float) -> None:
    """The DynamoDB calls per task: a row per operation, a column per kind of part."""
    parts = sorted(by_part)
    operations = sorted({op for ops in by_part.values() for op in ops})
    header = ("DynamoDB calls per task", *parts, "total")
    widths = [28, *(max(9, len(p)) for p in parts), 9]
    print(
        "\n| "
        + " | ".join(
            f"{h:<{w}}" if i == 0 else f"{h:>{w}}"
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
        + " |"
    )
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for op in [*operations, "total"]:
        cells = [sum(by_part[p].values()) if op == "total" else by_part[p][op] for p in parts]
        values = [c / tasks for c in cells]
        print(
            f"| {op:<28} | "
            + " | ".join(f"{v:>{w}.2f}" for v, w in zip(values, widths[1:-1], strict=True))
            + f" | {sum(values):>9.2f} |"
        )
    print(
        f"| {'per progress report':<28} | "
        + " | ".join(" " * w for w in widths[1:-1])
        + f" | {per_tick:>9.2f} |"
    )


def bench_sweeper(args: argparse.Namespace, env: Mapping[str, str]) -> JSON:
    """The sweeper's pass and the status listing at each table size: the table, and JSON."""
    sizes = _sizes(args.sweeper_sizes)
    print(
        f"sweeper: a pass and a status listing over {', '.join(f'{n:,}' for n in sizes)} finished tasks"
        f" (+{sweeper.UNFINISHED_COUNT} unfinished), median of {args.sweeper_passes} ...",
        flush=True,
    )
    with Emulator() as emulator:
        figures = sweeper.measure(
            {**env, "AWS_ENDPOINT_URL": emulator.url},
            sizes,
            passes=args.sweeper_passes,
            budget_s=args.sweeper_budget,
        )
    header = (
        "finished",
        "fill s",
        "pass ms",
        "read",
        "calls",
        "list ms",
        "read",
        "calls",
        "moto q ms",
    )
    print("\n| " + " | ".join(f"{h:>9}" for h in header) + " |")
    print("|" + "|".join("-" * 11 for _ in header) + "|")
    for f in figures:
        cells = (
            f.size,
            f.fill_s,
            f.sweep_ms,
            f.sweep_items_read,
            f.sweep_calls,
            f.status_list_ms,
            f.status_list_items_read,
            f.status_list_calls,
            f.emulator_query_ms,
        )
        print("| " + " | ".join(_cell(c) for c in cells) + " |")
    ratio = _ratio(figures[-1].sweep_ms, figures[0].sweep_ms)
    print(
        f"\npass at {figures[-1].size:,} / pass at {figures[0].size:,}: {_cell(ratio).strip()}\n"
        "read: items DynamoDB reads (ScannedCount), what a query costs there; calls: its requests.\n"
        "list: list_by_owner(owner, status=running), GET /tasks?status=running; over budget: -\n"
        f"(after {args.sweeper_budget:.0f} s, its reads and calls so far). moto q: a Query that matches\n"
        "nothing: moto goes through the whole table for every Query, DynamoDB does not.\n"
    )
    by_size = {str(f.size): f for f in figures}
    return {
        "sweeper_pass_ms": {n: f.sweep_ms for n, f in by_size.items()},
        "sweeper_pass_ratio": ratio,
        "status_list_ms": {n: f.status_list_ms for n, f in by_size.items()},
        "sweeper": {n: dataclasses.asdict(f) for n, f in by_size.items()},
    }


def _sizes(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    return None if mine is None or not theirs else mine / theirs


def _cell(value: float | int | None) -> str:
    if value is None:
        return f"{'-':>9}"
    return f"{value:>9.1f}" if isinstance(value, float) else f"{value:>9}"


def _drop_topology(config: Config) -> None:
    """Delete the exchanges and queues of the bench's namespace: nothing is left in RabbitMQ."""

    async def drop() -> None:
        connection = await aio_pika.connect(config.rabbitmq)
        async with connection:
            await delete_topology(await connection.channel(), config.names)

    try:
        asyncio.run(drop())
    except Exception as exc:  # leftovers are no reason to lose the figures, or the real error
        print(f"bench: the topology of {config.namespace} was not deleted: {exc}", file=sys.stderr)


def bench_fanout(args: argparse.Namespace, env: Mapping[str, str]) -> JSON:
    sizes = _sizes(args.fanout_sizes)
    print(
        f"fan-out: {args.rate:.0f} events/s for {args.seconds:.0f} s, one task per watcher, at {sizes} watchers"
    )
    runs = []
    for count in sizes:
        print(f"fan-out: {count} watchers ...", flush=True)
        bare = fanout.measure("bare", count, args.rate, args.seconds, env)
        ours = fanout.measure("taskcast", count, args.rate, args.seconds, env)
        runs.append(fanout_report.Run(count, ours, bare))
    print("\n" + fanout_report.table(runs) + "\n")
    return {"fanout": fanout_report.to_json(runs, args.rate, args.seconds)}


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[IO[str]]:
    """Send whatever this process and its children write to stdout to stderr instead; yield
    the real stdout, for the one JSON object."""
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", choices=["pipeline", "sweeper", "fanout"], help="run one benchmark"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout (the tables go to stderr)",
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
        "--ticks", type=int, default=10, help="extra progress reports per task, for their calls"
    )
    parser.add_argument(
        "--tick-tasks", type=int, default=20, help="tasks in each progress-report run"
    )
    parser.add_argument(
        "--sweeper-sizes",
        default="1000,100000",
        help="finished tasks in the table, comma-separated",
    )
    parser.add_argument(
        "--sweeper-passes", type=int, default=3, help="timed runs at each size (median)"
    )
    parser.add_argument(
        "--sweeper-budget",
        type=float,
        default=sweeper.BUDGET_S,
        help="seconds one timed run may take before it is given up",
    )
    parser.add_argument(
        "--fanout-sizes", default="1000,5000,10000", help="watcher counts, comma-separated"
    )
    parser.add_argument(
        "--rate", type=float, default=2000, help="fan-out events per second, in all"
    )
    parser.add_argument("--seconds", type=float, default=5, help="fan-out publishing time")
    args = parser.parse_args(argv)

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
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(_stdout_to_stderr()) if args.json else sys.stdout
        results: JSON = {}
        if args.only in (None, "pipeline"):
            results |= bench_pipeline(args, env)
        if args.only in (None, "pipeline", "sweeper"):
            results |= bench_sweeper(args, env)
        if args.only in (None, "fanout"):
            results |= bench_fanout(args, env)
        if args.json:
            results["settings"] = {
                name: getattr(args, name)
                for name in (
                    "only",
                    "workers",
                    "samples",
                    "batch",
                    "concurrency",
                    "ticks",
                    "tick_tasks",
                    "sweeper_sizes",
                    "sweeper_passes",
                    "fanout_sizes",
                    "rate",
                    "seconds",
                )
            }
            json.dump(results, out, indent=2)
            out.write("\n")
            out.flush()


if __name__ == "__main__":
    main()
