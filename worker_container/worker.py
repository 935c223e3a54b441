"""``python -m worker_container.worker``: an RQ worker serving the priority queues in order."""

from __future__ import annotations

import argparse
import logging

from rq import Worker

from taskcore import logs

from . import services

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 60


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: RQ's)")
    args = parser.parse_args(argv)
    logs.setup()
    # Build the clients before RQ forks a work horse per job, so each job inherits them.
    svc = services.current()
    worker = Worker(
        svc.config.names.rq_queues,
        connection=svc.redis,
        name=args.name,
        # Also how often a worker bids for the scheduler lock when its holder died (RQ's
        # default is 10 min); the sweeper covers the gap, this makes it shorter.
        maintenance_interval=MAINTENANCE_INTERVAL_S,
    )
    log.info("worker %s serving %s", worker.name, ", ".join(svc.config.names.rq_queues))
    worker.work(
        burst=args.burst,
        with_scheduler=True,
        logging_level=logging.getLevelName(logging.getLogger().level),
    )


if __name__ == "__main__":
    main()
