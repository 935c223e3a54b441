"""``taskcast-worker``: an RQ worker that runs the user's tasks.

It imports the task modules named in ``TASKCAST_TASKS`` and serves the queues their types name
(or only those given with ``--queues``, so heavy tasks can have workers of their own), each
queue's three priorities, high first. While it lives it tells the relay which types it serves.
It runs each job in its own process, and forks a work horse only for the types declared
``isolated`` (every type with ``--isolate-all``): see :mod:`.execution`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from redis import Redis

from taskcore import logs
from taskcore.config import Config, add_metrics_arguments, serve_metrics
from taskcore.definition import TaskModuleError
from taskcore.errors import ConfigError
from taskcore.tasktype import QUEUE_NAME

from . import metrics
from .execution import TaskWorker
from .registry import Advertiser
from .services import Services

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 60


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: RQ's)")
    parser.add_argument(
        "--queues",
        help="comma-separated queues to serve (default: every queue of the loaded task types)",
    )
    add_metrics_arguments(parser)
    parser.add_argument(
        "--isolate-all",
        action="store_true",
        help="fork a process for every job, not only for the task types declared isolated",
    )
    args = parser.parse_args(argv)
    wanted = [q.strip() for q in (args.queues or "").split(",") if q.strip()]
    for queue in wanted:
        if not QUEUE_NAME.match(queue):
            parser.error(f"--queues: {queue!r} is not a queue name")
    logs.setup()
    try:
        # Build the clients and import the tasks once, before the first job: jobs run in this
        # process, and a work horse forked for an isolated type inherits them.
        svc = Services.build(Config.from_env(need=["redis"]), load_tasks=True)
    except (ConfigError, TaskModuleError) as exc:
        log.error("%s", exc)
        sys.exit(2)
    if not svc.definitions:
        log.error("no task modules: set TASKCAST_TASKS to the modules that declare your tasks")
        sys.exit(2)
    serve_metrics(parser, args, metrics.serve)
    declared = sorted({d.task_type.queue for d in svc.definitions.values()})
    queues = wanted or declared
    served = sorted(n for n, d in svc.definitions.items() if d.task_type.queue in queues)
    isolated = sorted(n for n in served if svc.definitions[n].isolated)
    rq_queues = svc.config.names.rq_queues(queues)
    worker = TaskWorker(
        rq_queues,
        svc,
        name=args.name,
        # Also how often a worker bids for the scheduler lock when its holder died (RQ's
        # default is 10 min); the sweeper covers the gap, this makes it shorter.
        maintenance_interval=MAINTENANCE_INTERVAL_S,
        isolated=isolated,
        isolate_all=args.isolate_all,
    )
    log.info(
        "worker %s serving %s: task types %s; a process per job for %s",
        worker.name,
        ", ".join(rq_queues),
        ", ".join(served) or "none (no loaded type names these queues)",
        "every type" if args.isolate_all else ", ".join(isolated) or "none",
    )
    # A client of its own: the advertiser's thread must never hold a lock of the pool that
    # a forked work horse inherits.
    advertiser = Advertiser(Redis.from_url(svc.config.redis), svc.config.names, served)
    advertiser.start()
    try:
        # A work horse forked for an isolated type counts into this process's metrics.
        with metrics.collect_from_forks():
            worker.work(
                burst=args.burst,
                with_scheduler=True,
                logging_level=logging.getLevelName(logging.getLogger().level),
            )
    finally:
        advertiser.stop()


if __name__ == "__main__":
    main()
