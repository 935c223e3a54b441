"""How a worker runs its jobs: in its own process, forking a work horse only where asked to.

RQ's :class:`rq.Worker` forks a work horse for every job, which costs more CPU than a no-op task
does all told (docs/decisions.md has the figures), and its :class:`rq.SimpleWorker`, which does
not fork, gives up what the fork was for. :class:`TaskWorker` runs a job in its own main thread
and keeps each guarantee by other means:

- **Timeouts.** RQ's own: ``SIGALRM`` raises ``JobTimeoutException`` in the function at its
  ``job_timeout``, and the attempt fails with ``timeout``. If the function is still running
  :data:`KILL_GRACE_S` later (it swallowed the exception, or is stuck in C code that does not
  return to the interpreter) the process exits, as RQ's forking worker kills its horse; the
  supervisor starts it again and the sweeper recovers the task (``lost``).
- **Stopping a running job** (``rq.command.send_stop_job_command``, the canceller's forced
  stop): the worker's command thread raises :class:`JobStopped` in the main thread, through
  :data:`STOP_SIGNAL`, which also interrupts a sleep or a blocking read. The worker serves its
  next job afterwards. If the function has not returned :data:`KILL_GRACE_S` later, the process
  exits, as above.
- **Crashes.** A function that crashes the interpreter (a segfault, ``os._exit``, the kernel's
  OOM killer) takes the worker with it, and nothing else: a worker runs one job at a time and
  holds no others. The supervisor (``taskcast up``, the container's restart policy) starts it
  again, and the sweeper retries the task when its heartbeat stops (``lost``).
- **Heartbeats.** The task's own :class:`~worker_container.heartbeat.Heartbeat` is a thread, as
  in a work horse. RQ's worker, execution and job heartbeats, which a forking worker's parent
  renews while its horse runs, are renewed by a thread here, on the same period, so RQ sees the
  same keys with the same lifetimes.

The hard deadline is :func:`faulthandler.dump_traceback_later`: its watchdog is a C thread
that needs no GIL, so it fires even when the function holds the GIL in C code, and it leaves
the tracebacks of every thread on stderr, which says where the function was stuck.

A task type declared ``@task(..., isolated=True)``, or every type if the worker is started
with ``--isolate-all``, still gets a work horse per job (RQ's own path): a crash or a leak
then ends with its job, and a stop kills the horse at once.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Collection
from types import FrameType
from typing import Any, Literal

from rq import Worker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import BaseTimeoutException, JobTimeoutException, UnixSignalDeathPenalty
from rq.worker import WorkerStatus

from .job import TaskJob
from .services import Services

log = logging.getLogger(__name__)

STOP_SIGNAL = signal.SIGUSR1
"""What tells the main thread to stop its job (RQ itself uses ``SIGALRM`` for timeouts)."""
KILL_GRACE_S = 10.0
"""How long a job asked to stop, or over its timeout, has to return before its process exits."""
RUN_TASK = "worker_container.job.run_task"
"""The function of every taskcast job; its second argument is the task type."""


class JobStopped(BaseException):
    """Raised in the function of a job that was asked to stop (RQ's stop-job command).

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that task code which catches
    ``Exception`` to carry on does not swallow it; the attempt ends there, and whoever stopped
    it (the canceller) writes how.
    """


class _Running:
    """The job whose function runs in this process's main thread, as the other threads see it.

    The main thread enters and leaves (through :class:`StoppablePenalty`); the command thread
    asks to stop; the heartbeat thread renews RQ's heartbeats meanwhile. The signal handler runs
    in the main thread and may interrupt it anywhere, even holding the lock, so it never takes
    the lock: it reads two attributes, each written whole.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.job_id: str | None = None
        """The job whose function is running now, ``None`` between functions."""
        self.stopping: str | None = None
        """The job asked to stop; the signal handler raises only if it is still running."""
        self._deadline = 0.0
        self.job: Job | None = None
        self.execution: Execution | None = None

    def enter(self, job_id: str | None, timeout_s: float) -> None:
        with self._lock:
            self.job_id = job_id
            self.stopping = None
            if timeout_s > 0:
                self._arm(timeout_s + KILL_GRACE_S)

    def leave(self) -> None:
        self.job_id = None  # first: from here on the signal handler raises nothing
        with self._lock:
            if self._deadline:
                faulthandler.cancel_dump_traceback_later()
                self._deadline = 0.0

    def stop(self, job_id: str) -> bool:
        """Ask the main thread to stop ``job_id``'s function; ``False`` if it is not running."""
        with self._lock:
            if self.job_id is None or self.job_id != job_id:
                return False
            self.stopping = job_id
            if not self._deadline or self._deadline - time.monotonic() > KILL_GRACE_S:
                self._arm(KILL_GRACE_S)
        signal.pthread_kill(threading.main_thread().ident or 0, STOP_SIGNAL)
        return True

    def renew(self, worker: Worker) -> None:
        """Renew RQ's heartbeats of the running job, as a forking worker's parent does."""
        with self._lock:
            if self.job_id is None or self.job is None or self.execution is None:
                return
            worker.maintain_heartbeats(self.job, self.execution)

    def _arm(self, after_s: float) -> None:
        # One watchdog per process, replaced by each call: the job's deadline, or a sooner one.
        faulthandler.dump_traceback_later(after_s, exit=True)
        self._deadline = time.monotonic() + after_s

    def raise_if_stopping(self, signum: int, frame: FrameType | None) -> None:
        """The :data:`STOP_SIGNAL` handler (main thread)."""
        if self.stopping is not None and self.stopping == self.job_id:
            raise JobStopped(f"job {self.stopping} was stopped")

    def forget(self) -> None:
        """In a forked work horse: start afresh, for a thread of the parent's may have held the
        lock at the fork, and no other thread of the parent's lives on here to release it."""
        self._lock = threading.Lock()
        self.job_id = self.stopping = None
        self._deadline = 0.0
        self.job = self.execution = None


_running = _Running()
"""This process's: one worker runs in a process, one job at a time."""
os.register_at_fork(after_in_child=_running.forget)


class StoppablePenalty(UnixSignalDeathPenalty):
    """RQ's timeout around a job's function, which also marks the function as running.

    While it is, the job can be stopped, its RQ heartbeats are renewed, and the process exits if
    the function outlives its timeout by :data:`KILL_GRACE_S`. A stop or an alarm may be raised
    while the penalty is being set up or cancelled, too; each is then undone all the same, for
    a deadline left armed would end the process during a later job.
    """

    def __init__(
        self, timeout: Any, exception: type[BaseException] = JobTimeoutException, **kwargs: Any
    ) -> None:
        super().__init__(timeout, exception, **kwargs)  # type: ignore[no-untyped-call]
        self._job_id: str | None = kwargs.get("job_id")

    def __enter__(self) -> None:
        try:
            self.setup_death_penalty()
        except BaseException:
            self.cancel_death_penalty()
            raise

    def __exit__(self, *exc_info: object) -> Literal[False]:
        try:
            self.cancel_death_penalty()
        except (BaseTimeoutException, JobStopped):
            # The function has ended: an alarm or a stop now has nothing left to end, but it
            # cut the cancelling short, so cancel again (twice is as once).
            self.cancel_death_penalty()
        return False

    def setup_death_penalty(self) -> None:
        # An earlier job in this process may have blocked or taken over the signals that stop
        # a job (a work horse started afresh each time): every job starts stoppable.
        signal.signal(STOP_SIGNAL, _running.raise_if_stopping)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {STOP_SIGNAL, signal.SIGALRM})
        super().setup_death_penalty()  # type: ignore[no-untyped-call]
        _running.enter(self._job_id, float(self._timeout or 0))

    def cancel_death_penalty(self) -> None:
        _running.leave()
        super().cancel_death_penalty()  # type: ignore[no-untyped-call]


class TaskWorker(Worker):
    """An RQ worker that runs jobs in its own process; see the module's documentation.

    Given ``services`` (taskcast's workers always are), it runs taskcast's jobs
    (:class:`~.job.TaskJob`) and gives each the services, built once; without, any RQ job (the
    benchmarks and tests of the execution model itself). ``isolated`` names the task types
    that get a work horse per job (``isolate_all``: every job does, as with :class:`rq.Worker`).
    """

    death_penalty_class = StoppablePenalty

    def __init__(
        self,
        queues: Any,
        services: Services | None = None,
        *,
        isolated: Collection[str] = (),
        isolate_all: bool = False,
        **kwargs: Any,
    ) -> None:
        if services is not None:
            kwargs.setdefault("connection", services.redis)
            kwargs.setdefault("job_class", TaskJob)
        super().__init__(queues, **kwargs)
        self.services = services
        self._isolated = frozenset(isolated)
        self._isolate_all = isolate_all
        self._beats: threading.Thread | None = None
        self._beating = threading.Event()

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        signal.signal(STOP_SIGNAL, _running.raise_if_stopping)
        self._beats = threading.Thread(target=self._renew, name="rq-heartbeats", daemon=True)
        self._beats.start()

    def teardown(self) -> None:
        self._beating.set()
        super().teardown()  # type: ignore[no-untyped-call]

    def isolates(self, job: Job) -> bool:
        """Whether ``job`` gets a work horse of its own: its task type was declared isolated."""
        if self._isolate_all:
            return True
        if not self._isolated:
            return False
        try:
            if job.func_name != RUN_TASK:
                return False
            args = job.args
        except Exception:
            return False  # a job RQ cannot read: its own perform fails it, as any worker's
        return len(args) > 1 and args[1] in self._isolated

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._stopped_job_id = None  # a stop asked of an earlier job is not this one's
        if isinstance(job, TaskJob) and self.services is not None:
            job.services = self.services
        if self.isolates(job):
            super().execute_job(job, queue)  # RQ's: fork a work horse, watch it
            return
        execution = self.prepare_execution(job)
        _running.job, _running.execution = job, execution
        try:
            self.perform_job(job, queue, execution)
        finally:
            _running.job = _running.execution = None
            self.executions.pop(execution.id, None)
        self.set_state(WorkerStatus.IDLE)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill the work horse, if a job has one; else stop the job running in this process.

        RQ calls it for the stop-job command (from its command thread, after setting
        ``_stopped_job_id``), for a horse far over its timeout, and for a cold shutdown.
        """
        if self.horse_pid:
            super().kill_horse(sig)
            return
        job_id = self._stopped_job_id
        if job_id is not None and _running.stop(job_id):
            log.warning(
                "job %s: stopping it; this worker exits if it has not stopped in %g s",
                job_id,
                KILL_GRACE_S,
            )

    def _renew(self) -> None:
        while not self._beating.wait(self.job_monitoring_interval):
            try:
                _running.renew(self)
            except Exception:
                # Redis is away, say: keep trying, as the forking worker's monitor would.
                log.warning("RQ heartbeats not renewed", exc_info=True)
