"""Measures the operations overview every few seconds and stores it where the edge reads it.

It runs in the sweeper process, which already holds Redis, RabbitMQ and DynamoDB clients. Every
copy reports (there is no lease): each writes the same figures, and the last write wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from redis import Redis
from rq import Queue, Worker
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from taskcore.clock import iso
from taskcore.names import Names
from taskcore.overview import REPORT_INTERVAL_S, Overview, OverviewStore, QueueDepth, WorkerState

log = logging.getLogger(__name__)


def measure(redis: Redis, names: Names, broker: dict[str, int | None], now: float) -> Overview:
    """The namespace's RQ queues and workers as they are now, with the broker's depths."""
    ours = f"{names.namespace}."
    workers = []
    served: set[str] = set()
    for worker in Worker.all(connection=redis):
        queue_names = tuple(q for q in worker.queue_names() if q.startswith(ours))
        if queue_names:
            served.update(queue_names)
            # RQ job ids are task ids (job.py), so the job a worker runs names its task.
            state = worker.get_state()
            workers.append(
                WorkerState(
                    worker.name,
                    str(getattr(state, "value", state)),  # an enum member, or the stored string
                    queue_names,
                    worker.get_current_job_id(),
                )
            )
    # The queues jobs were put on, and those workers listen on before any job came.
    names_seen = served | {q.name for q in Queue.all(connection=redis) if q.name.startswith(ours)}
    queues = []
    for name in sorted(names_seen):
        queue = Queue(name, connection=redis)
        queues.append(
            QueueDepth(
                name=name,
                queued=queue.count,
                started=StartedJobRegistry(queue=queue).count,
                scheduled=ScheduledJobRegistry(queue=queue).count,  # type: ignore[no-untyped-call]
            )
        )
    return Overview(
        updated_at=iso(now),
        queues=tuple(queues),
        workers=tuple(sorted(workers, key=lambda w: w.name)),
        broker=broker,
    )


async def broker_depths(channel: AbstractChannel, names: Names) -> dict[str, int | None]:
    """Messages ready on the tasks queue (not yet relayed) and on the dead queue."""
    depths: dict[str, int | None] = {}
    for kind, name in (("tasks", names.tasks_queue), ("dead", names.dead_queue)):
        queue = await channel.declare_queue(name, passive=True)
        depths[kind] = queue.declaration_result.message_count
    return depths


class Reporter:
    """Writes the overview every :data:`REPORT_INTERVAL_S` seconds until ``stop`` is set."""

    def __init__(self, redis: Redis, store: OverviewStore, names: Names) -> None:
        self._redis = redis
        self._store = store
        self._names = names

    async def run(self, connection: AbstractRobustConnection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.report(connection)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_INTERVAL_S)

    async def report(self, connection: AbstractRobustConnection) -> None:
        """Measure and store once; a backend that does not answer is logged, not raised."""
        broker: dict[str, int | None] = {"tasks": None, "dead": None}
        try:
            async with connection.channel() as channel:
                broker = await broker_depths(channel, self._names)
        except Exception:
            log.warning("overview: the broker's queue depths are unknown", exc_info=True)
        try:
            overview = await asyncio.to_thread(
                measure, self._redis, self._names, broker, time.time()
            )
            await asyncio.to_thread(self._store.put, overview)
        except Exception:
            log.warning("overview not reported; trying again next interval", exc_info=True)
