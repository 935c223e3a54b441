"""Prometheus metrics of the worker side: the task counters and histograms, the RQ figures.

The names are those operators know from celery-exporter and rq-exporter, prefixed
``taskcast_`` (prometheus_client adds ``_total`` to a counter's name):

- ``taskcast_tasks_<what>_total{type}``, ``<what>`` one of :class:`Counted`;
- ``taskcast_task_runtime_seconds{type}`` and ``taskcast_queue_wait_seconds{type}``, histograms;
- ``taskcast_queue_length{queue}`` and ``taskcast_workers{state}``, read from RQ at each scrape
  (:class:`RQFigures`).

The task lifecycle is the one place that moves the task counters, through :func:`count`,
:func:`observe_runtime` and :func:`observe_queue_wait`, in whichever process a fact happens:
the relay, a worker or the sweeper. Each fact is counted once, by one process, so Prometheus'
``sum`` over the instances is the whole count.

A forking RQ worker runs each job in a work horse that exits after it, and what the horse
counted in its own memory would go with it. :func:`collect_from_forks` gives the worker a pipe
that its forked children write their facts to, one line each, and a thread that applies them to
the worker's own metrics; a process that does not fork applies them directly. Why not
prometheus_client's multiprocess mode: docs/decisions.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import threading
from collections.abc import Iterable, Iterator
from enum import StrEnum
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Histogram, Metric, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.worker import WorkerStatus

from taskcore.names import Names

from .lease import Lease

log = logging.getLogger(__name__)


class Counted(StrEnum):
    """What the task counters count: each is ``taskcast_tasks_<value>_total{type}``."""

    SUBMITTED = "submitted"
    STARTED = "started"
    """An attempt started (a task retried twice starts three times)."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """For good: no attempt left, or a failure its code declared final."""
    RETRIED = "retried"
    """An attempt failed and the task will be tried again."""
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"
    """The task's message went to the dead-letter queue."""


_HELP = {
    Counted.SUBMITTED: "Tasks submitted, by task type",
    Counted.STARTED: "Attempts started, by task type",
    Counted.SUCCEEDED: "Tasks that succeeded, by task type",
    Counted.FAILED: "Tasks that failed for good, by task type",
    Counted.RETRIED: "Attempts that failed and will be tried again, by task type",
    Counted.CANCELLED: "Tasks cancelled, by task type",
    Counted.DEAD_LETTERED: "Task messages sent to the dead-letter queue, by task type",
}
TASKS = {what: Counter(f"taskcast_tasks_{what}", _HELP[what], ["type"]) for what in Counted}

# Tasks run for seconds to hours; their starts are meant to take milliseconds, and may wait
# for hours for a worker (a queue timeout is an hour by default).
RUNTIME_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800)
WAIT_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    *(30, 60, 300, 900, 1800, 3600, 7200, 14400),
)
RUNTIME = Histogram(
    "taskcast_task_runtime_seconds",
    "How long attempts ran, from their start to their end, by task type",
    ["type"],
    buckets=RUNTIME_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "taskcast_queue_wait_seconds",
    "How long tasks waited to start, from when they were due to when an attempt started, "
    "by task type",
    ["type"],
    buckets=WAIT_BUCKETS,
)

_RUNTIME = "runtime"
_QUEUE_WAIT = "queue_wait"


def count(what: Counted, task_type: str) -> None:
    """Count one ``what`` of a task of ``task_type``: ``taskcast_tasks_<what>_total{type}``."""
    _record(what.value, task_type, 1.0)


def observe_runtime(task_type: str, seconds: float) -> None:
    """An attempt of a task of ``task_type`` ran ``seconds``, from its start to its end."""
    _record(_RUNTIME, task_type, max(seconds, 0.0))


def observe_queue_wait(task_type: str, seconds: float) -> None:
    """A task of ``task_type`` waited ``seconds`` to start, from when it was due."""
    # Clocks of different hosts disagree a little: a start "before" it was due waited 0 s.
    _record(_QUEUE_WAIT, task_type, max(seconds, 0.0))


def _apply(fact: str, task_type: str, value: float) -> None:
    if fact == _RUNTIME:
        RUNTIME.labels(task_type).observe(value)
    elif fact == _QUEUE_WAIT:
        QUEUE_WAIT.labels(task_type).observe(value)
    else:
        TASKS[Counted(fact)].labels(task_type).inc(value)


def _record(fact: str, task_type: str, value: float) -> None:
    forwarder = _forwarder
    if forwarder is not None and os.getpid() != forwarder.owner:
        forwarder.send(fact, task_type, value)  # in a work horse: to the worker's metrics
    else:
        _apply(fact, task_type, value)


class _Forwarder:
    """A pipe from the forked children of the process that made it (an RQ worker's work
    horses) to that process, and the thread there that applies each line to its metrics."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self._read, self._write = os.pipe()
        # A horse never waits on metrics: should the pipe ever be full, the fact is dropped.
        os.set_blocking(self._write, False)
        self._thread = threading.Thread(
            target=self._receive, name="metrics-from-forks", daemon=True
        )
        self._thread.start()

    def send(self, fact: str, task_type: str, value: float) -> None:
        line = json.dumps([fact, task_type, value]).encode() + b"\n"
        # Up to PIPE_BUF bytes, a write is whole or nothing, so lines from two horses never mix.
        if len(line) > select.PIPE_BUF:
            log.warning("metric %s of type %.100r dropped: too long for the pipe", fact, task_type)
            return
        try:
            os.write(self._write, line)
        except OSError as exc:  # full (its reader is stuck) or gone (the worker died)
            log.warning("metric %s of type %r dropped: %s", fact, task_type, exc)

    def close(self) -> None:
        """Stop taking facts here; the thread ends once every child has closed the pipe too."""
        os.close(self._write)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _receive(self) -> None:
        with open(self._read, "rb") as lines:
            for line in lines:
                try:
                    fact, task_type, value = json.loads(line)
                    _apply(str(fact), str(task_type), float(value))
                except (ValueError, TypeError):
                    log.warning("unreadable metric from a forked child: %.200r", line)


_forwarder: _Forwarder | None = None


@contextlib.contextmanager
def collect_from_forks() -> Iterator[None]:
    """While the context is open, what this process's forked children count (an RQ worker's
    work horses) goes to this process's metrics, where it is served, instead of dying with them.

    Children must be forked inside the context. Facts counted in this process itself, or by a
    worker that runs its jobs without forking, are applied directly as ever.
    """
    global _forwarder
    forwarder = _forwarder = _Forwarder()
    try:
        yield
    finally:
        _forwarder = None
        forwarder.close()


def serve(host: str, port: int) -> WSGIServer:
    """Serve this process's metrics at ``http://host:port/metrics``, from a thread of its own."""
    server, _ = start_http_server(port, host)
    # A forked child (a work horse) inherits the listening socket: closed there, so that the
    # port is free once this process exits, even while an orphaned horse finishes its job.
    os.register_at_fork(after_in_child=server.socket.close)
    return server


class RQFigures(Collector):
    """``taskcast_queue_length{queue}`` and ``taskcast_workers{state}``, read from RQ at each
    scrape of the process that :meth:`follow`\\ s a lease.

    These are figures of the whole namespace, not of a process: if every copy of a part
    reported them, a sum over instances would count them once per copy. The sweeper, whose
    copies elect one holder of its lease, follows it: only the holder reports them, the other
    copies and every other process report none. A scrape reads Redis in a few round trips
    plus one per worker, never anything per task.
    """

    def __init__(self) -> None:
        self._source: tuple[Redis, Names, Lease] | None = None

    def follow(self, redis: Redis, names: Names, lease: Lease) -> None:
        """Report the figures of ``names``' RQ queues and workers whenever ``lease`` is held."""
        self._source = (redis, names, lease)

    def forget(self) -> None:
        """Report nothing from now on."""
        self._source = None

    def describe(self) -> Iterable[Metric]:
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        source = self._source
        if source is None:
            return []
        redis, names, lease = source
        try:
            if not lease.held():
                return []  # another copy reports them
            lengths, states = read_rq(redis, names)
        except RedisError:
            log.warning("metrics: RQ's queues and workers could not be read", exc_info=True)
            return []
        queue_length, workers = _families()
        for queue, length in sorted(lengths.items()):
            queue_length.add_metric([queue], length)
        for state, number in sorted(states.items()):
            workers.add_metric([state], number)
        return [queue_length, workers]


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "taskcast_queue_length",
            "Jobs ready to run, waiting in the RQ queues of each taskcast queue (its three "
            "priorities together)",
            labels=["queue"],
        ),
        GaugeMetricFamily(
            "taskcast_workers", "RQ workers of this namespace, by state", labels=["state"]
        ),
    )


def read_rq(redis: Redis, names: Names) -> tuple[dict[str, int], dict[str, int]]:
    """The jobs waiting in each queue (``<ns>.<queue>.<priority>`` summed by ``<queue>``) and
    the workers in each state, of the namespace's RQ queues and the workers that serve them."""
    ours = f"{names.namespace}."
    states = {str(state.value): 0 for state in WorkerStatus}
    rq_queues: set[str] = set()
    for worker in Worker.all(connection=redis):
        served = [q for q in worker.queue_names() if q.startswith(ours)]
        if served:
            rq_queues.update(served)
            state = worker.get_state()
            state = str(getattr(state, "value", state))  # an enum member, or the stored string
            states[state] = states.get(state, 0) + 1
    # The queues jobs were put on, and those workers listen on before any job came.
    rq_queues.update(q.name for q in Queue.all(connection=redis) if q.name.startswith(ours))
    ordered = sorted(rq_queues)
    pipe = redis.pipeline(transaction=False)
    for name in ordered:
        pipe.llen(Queue(name, connection=redis).key)
    lengths: dict[str, int] = {}
    for name, length in zip(ordered, pipe.execute(), strict=True):
        queue = name.removeprefix(ours).rpartition(".")[0]
        if queue:  # not <ns>.<queue>.<priority>: not one of ours after all
            lengths[queue] = lengths.get(queue, 0) + int(length)
    return lengths, states


RQ_FIGURES = RQFigures()
REGISTRY.register(RQ_FIGURES)
