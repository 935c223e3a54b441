"""Chaos: faults injected into a running stack, each scenario counting lost, doubled, undelivered.

Every scenario runs real processes against the real RabbitMQ and Redis, and must end with all
three counts at zero. ``pytest -s tests/e2e/test_chaos.py`` prints the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import boto3
import pytest
import redis
from rq import Worker

from infra.broker import DELIVERY_LIMIT
from taskcast.local.stack import Stack
from taskcore.message import Submitted
from taskcore.names import Names
from taskcore.tasktype import DEFAULT_QUEUE, Priority
from tests.conftest import drain

from .chaos import Chaos, Watched, chaos_stack, report

pytestmark = pytest.mark.e2e

# demo.flaky with no failures: a task of 3 attempts that succeeds when it is let run.
WORK = ("demo.flaky", {"failures": 0, "seconds": 3})


@pytest.fixture
def stack_env() -> dict[str, str]:
    """What a scenario adds to the stack's environment (parametrize to change it)."""
    return {}


@pytest.fixture
def stack(
    env: dict[str, str],
    redis_client: redis.Redis,
    amqp: aio_pika.abc.AbstractChannel,
    tmp_path: Path,
    stack_env: dict[str, str],
) -> Iterator[tuple[Stack, Path]]:
    with chaos_stack(tmp_path, extra_env=stack_env) as running:
        yield running


@pytest.fixture
async def chaos(stack: tuple[Stack, Path], tmp_path: Path) -> Any:
    harness = Chaos(stack[0], tmp_path / "ledger")
    yield harness
    harness.close()


def log_of(stack: tuple[Stack, Path]) -> str:
    return stack[1].read_text()


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The command name is in parentheses and may hold spaces: parse after it.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def part_of(stack: Stack, pid: int) -> str | None:
    """The name of the part whose process group ``pid`` is in (RQ forks schedulers, and horses
    for isolated types)."""
    parts = {pid: name for name, pid in stack.pids().items()}
    with contextlib.suppress(ProcessLookupError):
        return parts.get(os.getpgid(pid))
    return None


def scheduler_worker(stack: Stack, redis_client: redis.Redis) -> str | None:
    """The worker part whose RQ scheduler holds the lock of the ``normal`` queue, if any."""
    lock = f"rq:scheduler-lock:{stack.config.names.rq_queue(Priority.NORMAL, DEFAULT_QUEUE)}"
    name = redis_client.get(lock)
    pid = None if name is None else redis_client.hget(f"rq:scheduler:{name.decode()}", "pid")
    return None if pid is None else part_of(stack, int(pid))


def busy_worker(stack: Stack, redis_client: redis.Redis, only: str | None = None) -> str | None:
    """The name of a worker part (``only``, if given) that is running a task now."""
    for worker in Worker.all(connection=redis_client):
        job_id = worker.get_current_job_id()
        # The handler is running: its heartbeat is set from its start to its end.
        if job_id is None or not redis_client.exists(stack.config.names.heartbeat(job_id)):
            continue
        # RQ records the pid of the worker or of its work horse; both are in the part's group.
        name = part_of(stack, worker.pid)
        if name is not None and name.startswith("worker") and only in (None, name):
            return name
    return None


async def test_sigkill_of_a_worker_mid_task_loses_and_repeats_nothing(
    chaos: Chaos, stack: tuple[Stack, Path], redis_client: redis.Redis
) -> None:
    async def fault() -> None:
        # The worker whose RQ scheduler runs everyone's retries, so that is lost too.
        await chaos.wait_for(
            lambda: scheduler_worker(chaos.stack, redis_client) is not None, what="a scheduler"
        )
        scheduler = scheduler_worker(chaos.stack, redis_client)
        await chaos.wait_for(
            lambda: busy_worker(chaos.stack, redis_client, only=scheduler) is not None,
            what="the scheduler's worker to be busy",
        )
        name = busy_worker(chaos.stack, redis_client, only=scheduler)
        assert name is not None
        # What losing its machine does to a worker: every process it started dies with it (its
        # RQ scheduler; a work horse, which RQ puts in a session of its own, for an isolated
        # type).
        for child in children(chaos.stack.pids()[name]):
            os.kill(child, signal.SIGKILL)
        chaos.stack.kill(name, signal.SIGKILL)
        await asyncio.sleep(1)
        chaos.stack.restart(name)

    counts = await chaos.run(chaos.submit_many(24, *WORK, spacing_s=0.05), fault())

    report("SIGKILL a worker", counts)
    log = log_of(stack)
    assert "worker of attempt 1 gone" in log  # the fault did strand a task
    assert "no scheduler ran it; enqueued" in log  # and stopped the scheduler


async def test_flushing_redis_mid_run_is_repaired_from_the_task_table(
    chaos: Chaos, stack: tuple[Stack, Path], redis_client: redis.Redis
) -> None:
    """FLUSHDB of the stack's database: what FLUSHALL does to it, without wiping other tests'.

    Queued jobs, scheduled retries, event logs, heartbeats, locks: all gone at once, with tasks
    running, queued and waiting to retry.
    """
    tasks = 30

    async def load() -> None:
        await chaos.submit_many(tasks // 2, "demo.flaky", {"failures": 0, "seconds": 1})
        await chaos.submit_many(tasks // 2, "demo.flaky", {"failures": 1, "seconds": 1})

    async def fault() -> None:
        await chaos.wait_for(lambda: len(chaos.watched) == tasks, what="every task accepted")
        await chaos.wait_for(
            lambda: busy_worker(chaos.stack, redis_client) is not None, what="a busy worker"
        )
        redis_client.flushdb()

    counts = await chaos.run(load(), fault())

    report("Redis flushed (FLUSHDB of the stack's database)", counts)
    # Enqueued again at once, or, if the sweep came before the workers said again which types
    # they serve (that word was flushed too), parked and then enqueued.
    passes = re.findall(r"sweep repaired: (.*)", log_of(stack))
    requeued = sum(
        int(n) for line in passes for n in re.findall(r"(?:requeued|unparked) (\d+)", line)
    )
    print(f"  the sweeper enqueued {requeued} tasks again")
    assert requeued >= 5


@pytest.mark.parametrize("stack_env", [{"TASKCAST_FAILPOINT": "relay.before_ack:4"}])
async def test_sigkill_of_the_relay_between_enqueue_and_ack_runs_nothing_twice(
    chaos: Chaos, stack: tuple[Stack, Path]
) -> None:
    """The failpoint kills the relay after its 4th job is enqueued, before that message's ack."""

    async def fault() -> None:
        await chaos.wait_for(
            lambda: chaos.stack.returncode("relay") is not None, what="the relay to be killed"
        )
        chaos.stack.restart("relay", {"TASKCAST_FAILPOINT": ""})

    counts = await chaos.run(
        chaos.submit_many(20, "demo.flaky", {"failures": 0, "seconds": 0.3}), fault()
    )

    report("SIGKILL the relay between enqueue and ack", counts)
    log = log_of(stack)
    assert "failpoint relay.before_ack: killing process" in log
    assert "RQ job exists already" in log or "acking the duplicate" in log  # redelivered


async def test_sigterm_to_the_relay_mid_stream_finishes_or_hands_back_its_messages(
    chaos: Chaos,
) -> None:
    async def fault() -> None:
        await chaos.wait_for(lambda: len(chaos.watched) >= 10, what="tasks in flight")
        code = await asyncio.to_thread(chaos.stack.kill, "relay", signal.SIGTERM)
        assert code == 0  # it stopped consuming, finished what it held, and exited cleanly
        await asyncio.sleep(1)  # submissions go on meanwhile
        chaos.stack.restart("relay")

    counts = await chaos.run(chaos.submit_many(30, "demo.noop", {}, spacing_s=0.05), fault())

    report("SIGTERM the relay", counts)


async def test_a_rabbitmq_restart_with_hundreds_of_tasks_in_flight_loses_nothing(
    chaos: Chaos, stack: tuple[Stack, Path]
) -> None:
    """Tasks accepted while the broker is down wait ``pending`` until the sweeper publishes them."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not on this machine: the test cannot restart the broker")
    tasks = 200

    async def fault() -> None:
        await chaos.wait_for(lambda: len(chaos.watched) >= tasks // 4, what="tasks in flight")
        stop = await asyncio.to_thread(rabbitmqctl, "stop_app")
        if stop.returncode != 0:
            pytest.skip(f"cannot control the broker here: {stop.stderr.strip()[:200]}")
        try:
            await asyncio.sleep(3)  # submissions go on meanwhile
        finally:
            started = await asyncio.to_thread(rabbitmqctl, "start_app")
            assert started.returncode == 0, started.stderr
            await asyncio.to_thread(rabbitmqctl, "await_startup")

    counts = await chaos.run(chaos.submit_many(tasks, "demo.noop", {}), fault(), timeout_s=180)

    report("restart RabbitMQ", counts)


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=120, check=False
    )


async def test_a_poison_message_is_delivered_at_most_the_limit_then_dead_lettered(
    chaos: Chaos, stack: tuple[Stack, Path], amqp: aio_pika.abc.AbstractChannel
) -> None:
    """A message whose record the relay cannot read fails on every delivery; others flow past."""
    config = chaos.stack.config
    dynamodb = boto3.client("dynamodb", endpoint_url=chaos.stack.env["AWS_ENDPOINT_URL"])
    poison_id = str(uuid.uuid4())
    # A record without most of its fields: reading it fails, whoever tries.
    dynamodb.put_item(
        TableName=config.names.tasks_table,
        Item={
            "task_id": {"S": poison_id},
            "type": {"S": "demo.noop"},
            "status": {"S": "pending"},
        },
    )
    exchange = await amqp.get_exchange(config.names.exchange)

    async def load() -> None:
        await exchange.publish(
            aio_pika.Message(
                Submitted(poison_id, "demo.noop", "poison").encode(), message_id=poison_id
            ),
            routing_key=Names.submitted_key("demo.noop"),
        )
        await chaos.submit_many(10, "demo.noop", {}, spacing_s=0.3)

    counts = await chaos.run(load(), asyncio.sleep(0))

    report("poison message", counts)
    (dead,) = await drain(await amqp.get_queue(config.names.dead_queue), timeout_s=30)
    assert dead.message_id == poison_id
    assert (dead.headers or {}).get("x-first-death-reason") == "delivery_limit"
    deliveries = log_of(stack).count(f"task {poison_id}: relay failed; requeueing")
    print(f"  the poison message was delivered {deliveries} times")
    assert 1 <= deliveries <= DELIVERY_LIMIT + 1


async def test_fifty_concurrent_submits_with_one_idempotency_key_make_one_task(
    chaos: Chaos, stack: tuple[Stack, Path]
) -> None:
    async def load() -> None:
        await asyncio.gather(
            *(
                chaos.submit("demo.flaky", {"failures": 0, "seconds": 0.2}, idempotency_key="k1")
                for _ in range(50)
            )
        )

    counts = await chaos.run(load(), asyncio.sleep(0))

    report("50 concurrent submits, one Idempotency-Key", counts)
    task_ids = {w.submission.task_id for w in chaos.watched}
    assert len(task_ids) == 1
    assert len(chaos.client.list(limit=100).tasks) == 1
    (task_id,) = task_ids
    log = log_of(stack)
    # Created and published once, by one request; the other 49 answered with it.
    assert log.count(f"task {task_id} (demo.flaky) accepted for alice") == 1
    assert log.count(f"task {task_id}: idempotent replay of key 'k1'") == 49
    assert log.count(f"task {task_id} (demo.flaky) queued on") == 1
    assert chaos.ledger.read_text().split() == [task_id, "1"]


async def test_cancel_at_every_state_ends_cancelled_without_running_and_after_the_end_is_a_noop(
    chaos: Chaos,
) -> None:
    stack = chaos.stack
    ended: dict[str, str] = {}

    async def until(watched: Watched, status: str) -> None:
        await chaos.wait_for(
            lambda: any(u.status == status for u in watched.updates), what=f"status {status}"
        )

    async def cancel(watched: Watched) -> None:
        await asyncio.to_thread(chaos.client.cancel, watched.submission.task_id)

    async def load() -> None:
        done = await chaos.submit("demo.noop", {})
        await until(done, "succeeded")
        record = await asyncio.to_thread(chaos.client.cancel, done.submission.task_id)
        ended["after the end"] = record["status"]

        retrying = await chaos.submit("demo.flaky", {"failures": 2, "seconds": 2})
        await until(retrying, "retrying")
        await cancel(retrying)

        stack.send_signal("relay", signal.SIGSTOP)  # nothing moves past pending
        try:
            pending = await chaos.submit("demo.sleep", {"seconds": 1, "fail_rate": 0})
            await cancel(pending)
        finally:
            stack.send_signal("relay", signal.SIGCONT)

        blockers = [
            await chaos.submit("demo.sleep", {"seconds": 30, "steps": 30, "fail_rate": 0})
            for _ in range(3)  # one per worker
        ]
        for blocker in blockers:
            await until(blocker, "running")
        queued = await chaos.submit("demo.sleep", {"seconds": 1, "fail_rate": 0})
        await until(queued, "queued")
        await cancel(queued)
        await until(queued, "cancelled")
        for blocker in blockers:
            await cancel(blocker)

    counts = await chaos.run(load(), asyncio.sleep(0))

    report("cancel at every state", counts)
    assert ended == {"after the end": "succeeded"}
    finals = [w.updates[-1].status for w in chaos.watched]
    assert finals == ["succeeded"] + ["cancelled"] * 6
    # Cancelled before it ran: never running.
    for watched in (chaos.watched[2], chaos.watched[6]):
        assert "running" not in [u.status for u in watched.updates]
    assert chaos.ledger.read_text().split()[0] == chaos.watched[0].submission.task_id
    assert len(chaos.ledger.read_text().splitlines()) == 1


async def test_sigterm_to_a_busy_worker_lets_its_task_finish_first(
    chaos: Chaos, redis_client: redis.Redis
) -> None:
    async def fault() -> None:
        await chaos.wait_for(
            lambda: busy_worker(chaos.stack, redis_client) is not None, what="a busy worker"
        )
        name = busy_worker(chaos.stack, redis_client)
        assert name is not None
        code = await asyncio.to_thread(chaos.stack.kill, name, signal.SIGTERM)
        assert code == 0  # RQ's warm shutdown: it waited for its job, then exited cleanly
        chaos.stack.restart(name)

    counts = await chaos.run(
        chaos.submit_many(6, "demo.sleep", {"seconds": 2, "fail_rate": 0}), fault()
    )

    report("SIGTERM a worker", counts)
    assert [w.updates[-1].status for w in chaos.watched] == ["succeeded"] * 6
    # No attempt was cut short: each task ran once.
    records = [chaos.client.get(w.submission.task_id) for w in chaos.watched]
    assert [r["attempt"] for r in records] == [1] * 6
