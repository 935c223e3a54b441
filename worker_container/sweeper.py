"""The sweeper: finds tasks that a fault left stranded and puts them back on their way.

The task table is the source of truth; RabbitMQ and Redis only carry tasks. Each pass reads the
live tasks by status and repairs what the carriers lost:

- ``pending`` for longer than ``TASKCAST_SWEEP_AFTER`` with no RQ job: the edge wrote the record
  but its message never reached the relay (the broker refused, or the edge died in between), or
  Redis lost the job the relay made (the relay announces ``queued`` without writing the record,
  see :mod:`.lifecycle`). Published again.
- ``queued`` or ``retrying`` with no live RQ job: Redis lost it (a flush, a failover without
  persistence) or the job failed before it could claim the task. Enqueued again.
- ``queued`` or ``retrying`` with a scheduled job overdue by ``TASKCAST_SWEEP_AFTER``: no RQ
  scheduler is running. RQ's scheduler is one worker's, under a lock that outlives a SIGKILLed
  holder by a minute, and the other workers contend for it only every maintenance interval.
  Moved to its queue.
- ``running`` with no heartbeat for ``TASKCAST_HEARTBEAT_TTL``: its worker is gone (SIGKILL, lost
  host). Retried like a failed attempt, with error kind ``lost``, or ``failed`` if it has no
  attempt left, or ``cancelled`` if its owner had asked.
- parked, waiting for a worker that serves its type (:mod:`.registry`): enqueued once one
  does; at its deadline ``failed`` (``no_worker``) and its message dead-lettered with that reason.

Every repair is one of the pipeline's own idempotent steps (a duplicate message, a ``unique``
enqueue, a fenced transition), so a repair that races the normal path, or another sweeper,
does no harm. Still, a Redis lease elects one copy at a time to do the work, so any number of
copies can run for availability without repeating each other's reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

import aio_pika
from prometheus_client import Counter
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from taskcore import logs
from taskcore.clock import iso, parse_iso
from taskcore.config import Config, add_metrics_arguments, serve_metrics
from taskcore.message import Envelope, Submitted
from taskcore.status import Status
from taskcore.task import Task

from . import metrics, registry
from .decision import AttemptEnd, Ending, decide
from .job import dispatch
from .lease import Lease
from .lifecycle import RUNNABLE
from .registry import ServedTypes
from .reporter import Reporter
from .services import Services

log = logging.getLogger(__name__)

REPAIRS = Counter("taskcast_sweeper_repairs", "Tasks the sweeper repaired, by repair", ["repair"])
ALIVE_JOB = frozenset(
    {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
)
WAITING_JOB = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})


@dataclass
class Repairs:
    """What one pass repaired."""

    republished: int = 0
    """``pending`` tasks published again."""
    requeued: int = 0
    """``queued`` or ``retrying`` tasks whose RQ job was gone, enqueued again."""
    promoted: int = 0
    """Scheduled jobs long overdue (no RQ scheduler running), moved to their queue."""
    recovered: int = 0
    """``running`` tasks whose worker was gone, moved to ``retrying`` (or ``cancelled``, if
    their owner had asked)."""
    lost: int = 0
    """``running`` tasks whose worker was gone on their last attempt, ``failed`` (``lost``)."""
    unparked: int = 0
    """Tasks that waited for a worker serving their type, enqueued now that one does."""
    parked: int = 0
    """Tasks whose job waited in a queue no live worker serves any more, parked instead."""
    unserved: int = 0
    """Tasks that waited for such a worker until their deadline: ``failed``, dead-lettered."""

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


class Sweeper:
    """One pass of repairs at a time (synchronous; :class:`SweeperService` runs it in a thread).

    It remembers, between passes, since when each running attempt has been silent and when it
    last republished each pending task, so the repair of either waits a whole period.
    """

    def __init__(
        self,
        svc: Services,
        publish: Callable[[Submitted], None],
        dead_letter: Callable[[Submitted, str], None] | None = None,
    ) -> None:
        self._svc = svc
        self._publish = publish
        self._dead_letter = dead_letter
        self._served = ServedTypes(svc.redis, svc.config.names, cache_s=0)
        self._silent_since: dict[tuple[str, int], float] = {}
        self._published_at: dict[str, float] = {}

    def sweep(self) -> Repairs:
        repairs = Repairs()
        now = time.time()
        stale = now - self._svc.config.stale_after_s
        published_at = self._published_at
        self._published_at = {}
        for status in (Status.PENDING, Status.QUEUED, Status.RETRYING):
            for task in self._indexed(status):
                # Since when it has waited: a republished task's clock starts again.
                since = published_at.get(task.task_id, parse_iso(task.updated_at))
                if since > stale:
                    if task.task_id in published_at:
                        self._published_at[task.task_id] = since
                    continue
                with logs.traced(task.trace_id), self._each(task):
                    self._repair_waiting(task, stale, repairs)
        self._sweep_parked(now, repairs)
        silent_since = self._silent_since
        self._silent_since = {}
        for task in self._indexed(Status.RUNNING):
            if self._svc.redis.exists(self._svc.config.names.heartbeat(task.task_id)):
                continue
            attempt = (task.task_id, task.attempt)
            since = silent_since.get(attempt, time.monotonic())
            if time.monotonic() - since < self._svc.config.heartbeat_ttl_s:
                self._silent_since[attempt] = since
                continue
            with logs.traced(task.trace_id), self._each(task):
                self._recover(task, repairs)
        for name, count in repairs.items():
            if count:
                REPAIRS.labels(name).inc(count)
        return repairs

    def _indexed(self, status: Status) -> Iterator[Task]:
        """The tasks the index of unfinished tasks lists under ``status`` and whose record
        says so. A record an earlier version's writer moved on keeps its old key: it is
        skipped here, and its key mended."""
        for task in self._svc.store.iter_by_status(status):
            if task.status is status:
                yield task
                continue
            log.warning(
                "task %s: indexed as %s but %s; index key mended", task.task_id, status, task.status
            )
            with contextlib.suppress(Exception):
                self._svc.store.mend_open_status(task)

    @contextlib.contextmanager
    def _each(self, task: Task) -> Iterator[None]:
        """One task's repair: its failure is logged, and the pass goes on to the next."""
        try:
            yield
        except Exception:
            log.exception("task %s: repair failed; the next pass tries again", task.task_id)

    def _repair_waiting(self, task: Task, stale: float, repairs: Repairs) -> None:
        """Make sure a task waiting to run has a job that a live worker will run.

        A ``pending`` task without a job never reached the relay (its message was lost, or
        Redis lost the job the relay made: the record stays ``pending`` until an attempt
        starts), so it is published again; a ``queued`` or ``retrying`` one is enqueued again.
        """
        if registry.is_parked(self._svc.redis, self._svc.config.names, task.type, task.task_id):
            return
        job = self._job(task.task_id)
        if job is None or job.get_status(refresh=False) not in ALIVE_JOB:
            if task.status is Status.PENDING:
                # A dead job (it failed before it could start the task) would make the relay's
                # unique enqueue a no-op: drop it, so the republished message makes a new one.
                self._drop_job(task.task_id)
                self._republish(task, repairs)
            else:
                self._requeue(task, repairs)
        elif job.get_status(refresh=False) in WAITING_JOB and not self._served(task.type):
            # Enqueued while a worker served its type, which is gone now: wait parked,
            # so that its queue timeout applies, instead of in a queue nobody reads.
            self._drop_job(task.task_id)
            registry.park(self._svc.redis, self._svc.config.names, task)
            repairs.parked += 1
        elif job.get_status(refresh=False) is JobStatus.SCHEDULED:
            self._promote_if_overdue(task, job, stale, repairs)

    def _sweep_parked(self, now: float, repairs: Repairs) -> None:
        redis, names = self._svc.redis, self._svc.config.names
        for task_type, task_id, deadline in registry.parked(redis, names):
            served = self._served(task_type)
            if not served and deadline > now:
                continue  # still waiting: no need to read its record
            task = self._svc.store.get(task_id)
            if task is None or task.status not in RUNNABLE:
                registry.unpark(redis, names, task_type, task_id)  # cancelled meanwhile, say
                continue
            with logs.traced(task.trace_id):
                if served:
                    self._unpark(task, repairs)
                else:
                    self._expire_unserved(task, repairs)

    def _unpark(self, task: Task, repairs: Repairs) -> None:
        redis, names = self._svc.redis, self._svc.config.names
        registry.unpark(redis, names, task.type, task.task_id)
        job = self._job(task.task_id)
        if job is not None and job.get_status(refresh=False) in ALIVE_JOB:
            return  # the relay or a worker got to it meanwhile
        self._drop_job(task.task_id)  # one that a worker without the type left behind
        if dispatch(self._svc, task, self._served):
            repairs.unparked += 1
            log.warning("task %s: a worker serves %s now; enqueued", task.task_id, task.type)

    def _expire_unserved(self, task: Task, repairs: Repairs) -> None:
        decision = decide(task, AttemptEnd(Ending.UNSERVED))
        redis, names = self._svc.redis, self._svc.config.names
        if self._svc.lifecycle.settle(task, decision) is None:
            return  # it moved on meanwhile: the next pass looks again
        reason = decision.dead_letter or "no_worker"
        if self._dead_letter is not None:
            try:
                self._dead_letter(Submitted.of(task), reason)
            except Exception:
                log.warning("task %s: not dead-lettered", task.task_id, exc_info=True)
            else:
                self._svc.lifecycle.dead_lettered(task)
        registry.unpark(redis, names, task.type, task.task_id)
        repairs.unserved += 1
        log.error("task %s: %s; failed and dead-lettered", task.task_id, reason)

    def _republish(self, task: Task, repairs: Repairs) -> None:
        try:
            self._publish(Submitted.of(task))
        except Exception:
            log.warning("task %s: still pending and not republished", task.task_id, exc_info=True)
            return
        self._published_at[task.task_id] = time.time()
        repairs.republished += 1
        log.warning("task %s: pending since %s; published again", task.task_id, task.updated_at)

    def _job(self, task_id: str) -> Job | None:
        try:
            return Job.fetch(task_id, connection=self._svc.redis)
        except NoSuchJobError:
            return None

    def _promote_if_overdue(self, task: Task, job: Job, stale: float, repairs: Repairs) -> None:
        queue = self._svc.queue_of(task)
        scheduled = queue.scheduled_job_registry
        score = self._svc.redis.zscore(scheduled.key, job.id)
        if score is None or score > stale:
            return
        # ZREM decides: only whoever removes it from the registry (us, or a scheduler that woke
        # up meanwhile) enqueues it.
        if scheduled.remove(job):
            queue.enqueue_job(job)
            repairs.promoted += 1
            log.warning(
                "task %s: its job was due at %s and no scheduler ran it; enqueued",
                task.task_id,
                iso(score),
            )

    def _drop_job(self, task_id: str) -> None:
        """Delete what RQ holds of the task's job, so that a new one can take its id."""
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(task_id, connection=self._svc.redis).delete()

    def _requeue(self, task: Task, repairs: Repairs) -> None:
        self._drop_job(task.task_id)
        if dispatch(self._svc, task, self._served):
            repairs.requeued += 1
            log.warning(
                "task %s: %s but its RQ job was gone; enqueued again", task.task_id, task.status
            )

    def _recover(self, task: Task, repairs: Repairs) -> None:
        end = AttemptEnd(Ending.LOST, cancel_requested=task.cancel_requested_at is not None)
        decision = decide(task, end)
        moved = self._svc.lifecycle.settle(task, decision)
        if moved is None:
            return  # it moved on by itself after all: its worker was alive
        self._drop_job(task.task_id)
        if moved.status is Status.RETRYING:
            dispatch(self._svc, moved, self._served)  # parked if its type lost its workers
            repairs.recovered += 1
            log.warning(
                "task %s: worker of attempt %d gone; attempt %d in %d s",
                task.task_id,
                task.attempt,
                task.attempt + 1,
                decision.delay_s,
            )
        elif moved.status is Status.CANCELLED:
            repairs.recovered += 1
            log.warning(
                "task %s: worker gone while it was being cancelled; cancelled", task.task_id
            )
        else:
            repairs.lost += 1
            log.error(
                "task %s: worker of its last attempt (%d) gone; failed", task.task_id, task.attempt
            )


class SweeperService:
    """Sweeps every ``TASKCAST_SWEEP_INTERVAL`` seconds while it holds the lease."""

    def __init__(self, config: Config, svc: Services) -> None:
        self._config = config
        self._svc = svc

    async def run(self, stop: asyncio.Event) -> None:
        names = self._config.names
        interval = self._config.sweep_interval_s
        connection = await aio_pika.connect_robust(self._config.rabbitmq)
        async with connection:
            channel = await connection.channel(on_return_raises=True)  # with confirms
            exchange = await channel.get_exchange(names.exchange, ensure=True)

            dead_exchange = await channel.get_exchange(names.dead_exchange, ensure=True)
            loop = asyncio.get_running_loop()

            def send(to: aio_pika.abc.AbstractExchange, envelope: Envelope) -> None:
                sent = to.publish(
                    aio_pika.Message(envelope.body, **envelope.properties),
                    routing_key=envelope.routing_key,
                    mandatory=True,
                    timeout=10,
                )
                asyncio.run_coroutine_threadsafe(sent, loop).result(timeout=15)

            def publish(message: Submitted) -> None:
                send(exchange, message.envelope())

            def dead_letter(message: Submitted, reason: str) -> None:
                send(dead_exchange, message.envelope().dead(reason))

            sweeper = Sweeper(self._svc, publish, dead_letter)
            reporter = Reporter(self._svc.redis, self._svc.overview, names)
            reporting = asyncio.create_task(reporter.run(connection, stop))
            # Three missed passes before another copy takes over.
            lease = Lease(self._svc.redis, names.sweeper_lease, ttl_s=3 * interval)
            log.info("sweeper ready: every %d s, when it holds the lease", interval)
            # RQ's queue lengths and workers are the namespace's: only the holder reports them.
            metrics.RQ_FIGURES.follow(self._svc.redis, names, lease)
            while not stop.is_set():
                await self._pass(lease, sweeper)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
            metrics.RQ_FIGURES.forget()
            await reporting
            with contextlib.suppress(Exception):
                await asyncio.to_thread(lease.release)
        log.info("sweeper stopped")

    async def _pass(self, lease: Lease, sweeper: Sweeper) -> None:
        try:
            if not await asyncio.to_thread(lease.hold):
                return
            started = time.monotonic()
            repairs = await asyncio.to_thread(sweeper.sweep)
        except Exception:
            log.exception("sweep failed; trying again next interval")
            return
        summary = ", ".join(f"{name} {count}" for name, count in repairs.items())
        took = time.monotonic() - started
        if any(count for _, count in repairs.items()):
            log.warning("sweep repaired: %s (%.1f s)", summary, took)
        else:
            log.debug("sweep found nothing to repair (%.1f s)", took)


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await SweeperService(config, Services.build(config)).run(stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="taskcast's sweeper (run as many as you like)")
    add_metrics_arguments(parser)
    args = parser.parse_args(argv)
    logs.setup()
    config = Config.from_env(need=("rabbitmq", "redis"))
    serve_metrics(parser, args, metrics.serve)
    asyncio.run(_serve(config))


if __name__ == "__main__":
    main()
