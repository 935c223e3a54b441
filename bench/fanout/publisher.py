"""Appends progress events to the benchmark's tasks at a fixed rate, as workers would."""

from __future__ import annotations

import argparse
import time

from redis import Redis

from taskcore.clock import now_iso
from taskcore.config import Config
from taskcore.event import Event, EventKind
from taskcore.status import Status
from taskcore.task import Progress
from worker_container.eventlog import EventLog

from .server import bench_task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    config = Config.from_env(need=["redis"])
    log = EventLog(Redis.from_url(config.redis), config.names, 3600)
    tasks = [bench_task(i) for i in range(args.count)]
    started = time.perf_counter()
    for sent in range(int(args.rate * args.seconds)):
        delay = started + sent / args.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        # The publish time travels in the message, so the watcher can tell the latency.
        progress = Progress(sent % 100, repr(time.time()))
        task = tasks[sent % args.count]
        log.append(
            Event(task.task_id, EventKind.PROGRESS, Status.RUNNING, 1, progress, now_iso()), task
        )


if __name__ == "__main__":
    main()
