"""Tasks run in their worker's own process: timeouts, forced stops and crashes, in a stack.

Each scenario runs the stack as processes against the real RabbitMQ and Redis, with the
stack's supervisor restarting a part that exits (as ``taskcast up`` does), and counts lost,
doubled and undelivered tasks with the chaos harness: all three must be zero. The task types
that misbehave are in :mod:`tests.e2e.faulty_tasks`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import redis

from taskcast.local.stack import Stack

from .chaos import Chaos, Watched, chaos_stack, report
from .faulty_tasks import CRASHES

pytestmark = pytest.mark.e2e

TASKS = "taskcast_demo.tasks,tests.e2e.faulty_tasks"


@pytest.fixture
def workers() -> int:
    """How many workers the stack runs (parametrize to change it)."""
    return 1


@pytest.fixture
def stack(
    env: dict[str, str],
    redis_client: redis.Redis,
    amqp: aio_pika.abc.AbstractChannel,
    tmp_path: Path,
    workers: int,
) -> Iterator[tuple[Stack, Path]]:
    with chaos_stack(tmp_path, workers=workers, extra_env={"TASKCAST_TASKS": TASKS}) as running:
        yield running


@contextlib.asynccontextmanager
async def supervised(stack: Stack) -> AsyncIterator[None]:
    """Restart the parts that exit, as ``taskcast up`` does, while the block runs."""

    async def supervise() -> None:
        while True:
            stack.supervise()
            await asyncio.sleep(0.2)

    supervisor = asyncio.create_task(supervise())
    try:
        yield
    finally:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor


@pytest.fixture
async def chaos(stack: tuple[Stack, Path], tmp_path: Path) -> AsyncIterator[Chaos]:
    harness = Chaos(stack[0], tmp_path / "ledger")
    async with supervised(stack[0]):
        yield harness
    harness.close()


def log_of(stack: tuple[Stack, Path]) -> str:
    return stack[1].read_text()


async def ended(chaos: Chaos, watched: Watched) -> None:
    await chaos.wait_for(lambda: any(u.op == "end" for u in watched.updates), what="the end")


async def running(chaos: Chaos, watched: Watched) -> None:
    await chaos.wait_for(
        lambda: any(u.status == "running" for u in watched.updates), what="running"
    )


def record(chaos: Chaos, watched: Watched) -> dict[str, Any]:
    return chaos.client.get(watched.submission.task_id)


async def test_a_task_over_its_timeout_fails_with_timeout_and_its_worker_runs_the_next(
    chaos: Chaos,
) -> None:
    worker = chaos.stack.pids()["worker-1"]

    async def load() -> None:
        over = await chaos.submit(
            "faulty.stubborn", {"seconds": 600, "resists": "nothing"}, timeout_s=1
        )
        await ended(chaos, over)
        await chaos.submit("demo.noop", {})

    counts = await chaos.run(load(), asyncio.sleep(0))

    report("a task over its timeout", counts)
    over, after = (record(chaos, w) for w in chaos.watched)
    assert (over["status"], over["error"]["type"]) == ("failed", "timeout")
    assert after["status"] == "succeeded"
    assert chaos.stack.pids()["worker-1"] == worker
    assert chaos.stack.restart_count("worker-1") == 0


async def test_a_cancelled_task_that_ignores_its_flag_is_stopped_and_its_worker_runs_the_next(
    chaos: Chaos, stack: tuple[Stack, Path]
) -> None:
    """It never looks at its flag and catches every ``Exception``: only the forced stop ends it.

    The one worker runs the next task only once the first has stopped, which left to itself it
    would not do within the harness's wait.
    """
    worker = chaos.stack.pids()["worker-1"]

    async def load() -> None:
        stubborn = await chaos.submit("faulty.stubborn", {"seconds": 600, "resists": "exceptions"})
        await running(chaos, stubborn)
        await asyncio.to_thread(chaos.client.cancel, stubborn.submission.task_id)
        await ended(chaos, stubborn)
        await chaos.submit("demo.noop", {})

    counts = await chaos.run(load(), asyncio.sleep(0))

    report("a cancelled task that ignores its flag", counts)
    assert [w.updates[-1].status for w in chaos.watched] == ["cancelled", "succeeded"]
    assert chaos.stack.pids()["worker-1"] == worker
    assert chaos.stack.restart_count("worker-1") == 0
    stubborn_id = chaos.watched[0].submission.task_id
    log = log_of(stack)
    assert f"job {stubborn_id}: stopping it" in log
    assert "JobStopped" in log


@pytest.mark.parametrize(
    ("resists", "timeout_s", "deadline"),
    [
        ("signals", 600, "Timeout (0:00:10)!"),  # the stop's hard deadline
        ("gil", 5, "Timeout (0:00:15)!"),  # the timeout's: 5 s and the grace
    ],
)
async def test_a_cancelled_task_stuck_outside_python_ends_with_its_worker_which_comes_back(
    chaos: Chaos, stack: tuple[Stack, Path], resists: str, timeout_s: int, deadline: str
) -> None:
    """``signals``: the stop cannot be raised in it, so its worker exits at the stop's hard
    deadline; ``gil``: not even the worker's command thread can run, so it outlives the cancel
    (which the record keeps) until its timeout's hard deadline. faulthandler says which, and
    where the task was, as the worker exits."""

    async def load() -> None:
        stuck = await chaos.submit(
            "faulty.stubborn", {"seconds": 600, "resists": resists}, timeout_s=timeout_s
        )
        await running(chaos, stuck)
        await asyncio.to_thread(chaos.client.cancel, stuck.submission.task_id)
        await ended(chaos, stuck)
        await chaos.wait_for(
            lambda: chaos.stack.restart_count("worker-1") == 1, what="the worker to exit"
        )
        await chaos.submit("demo.noop", {})

    counts = await chaos.run(load(), asyncio.sleep(0))

    report(f"a cancelled task stuck outside Python ({resists})", counts)
    assert [w.updates[-1].status for w in chaos.watched] == ["cancelled", "succeeded"]
    log = log_of(stack)
    assert deadline in log
    assert "in stubborn" in log  # the task's frame, in faulthandler's traceback
    assert "worker-1 exited with code 1" in log


@pytest.mark.parametrize("workers", [2])
async def test_tasks_that_crash_their_worker_are_retried_and_no_other_task_is_lost_or_doubled(
    chaos: Chaos, stack: tuple[Stack, Path]
) -> None:
    """Each of ``os._exit``, SIGKILL and a segfault takes a worker down on the first attempt."""

    async def load() -> None:
        for how in CRASHES:
            await chaos.submit_many(4, "demo.flaky", {"failures": 0, "seconds": 0.3})
            await chaos.submit("faulty.crash", {"how": how})
        await chaos.submit_many(4, "demo.flaky", {"failures": 0, "seconds": 0.3})

    counts = await chaos.run(load(), asyncio.sleep(0))

    report("tasks that crash their worker", counts)
    assert [w.updates[-1].status for w in chaos.watched] == ["succeeded"] * len(chaos.watched)
    crashed = [w for w in chaos.watched if w.submission.task["type"] == "faulty.crash"]
    for watched in crashed:
        assert "retrying" in [u.status for u in watched.updates]
        assert record(chaos, watched)["attempt"] == 2
    log = log_of(stack)
    assert log.count("worker of attempt 1 gone") == len(CRASHES)  # found by the sweeper
    assert chaos.stack.restart_count("worker-1") + chaos.stack.restart_count("worker-2") == len(
        CRASHES
    )


async def test_a_crash_of_an_isolated_task_ends_its_work_horse_and_spares_its_worker(
    chaos: Chaos, stack: tuple[Stack, Path]
) -> None:
    worker = chaos.stack.pids()["worker-1"]

    async def load() -> None:
        for how in CRASHES:
            await chaos.submit("faulty.crash_isolated", {"how": how})
        await chaos.submit("demo.noop", {})

    counts = await chaos.run(load(), asyncio.sleep(0))

    report("isolated tasks that crash", counts)
    assert [w.updates[-1].status for w in chaos.watched] == ["succeeded"] * 4
    assert "Work-horse terminated unexpectedly" in log_of(stack)
    assert chaos.stack.pids()["worker-1"] == worker
    assert chaos.stack.restart_count("worker-1") == 0
