"""``taskcast dlq``: list, replay and purge dead letters of a running stack."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import boto3
import pytest

from taskcast import Client
from taskcast.local.stack import Stack
from taskcore.message import Submitted
from taskcore.names import Names
from taskcore.store import TaskStore
from tests.conftest import RABBITMQ_URL
from tests.integration.helpers import make_task

from .test_cli import taskcast

pytestmark = pytest.mark.e2e


async def bury(stack: Stack, body: bytes, message_id: str, reason: str) -> None:
    """Put a message on the dead queue as the relay would have."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_exchange(stack.config.names.dead_exchange)
        await dead.publish(
            aio_pika.Message(body, message_id=message_id, headers={"x-taskcast-reason": reason}),
            routing_key=Names.submitted_key("demo.noop"),
        )


async def test_dead_messages_are_listed_replayed_once_and_purged(shared_stack: Stack) -> None:
    assert taskcast(shared_stack, "dlq", "purge").returncode == 0
    # A task accepted while DynamoDB refused its relaying: its record pending, its message dead.
    store = TaskStore(
        boto3.client("dynamodb", endpoint_url=shared_stack.env["AWS_ENDPOINT_URL"]),
        shared_stack.config.names.tasks_table,
    )
    task = make_task("demo.noop", owner="dev")
    store.create(task)
    message = Submitted.of(task).encode()
    for _ in range(2):  # dead-lettered twice: replaying both must still run it once
        await bury(shared_stack, message, task.task_id, "relay failed 6 times")
    await bury(shared_stack, b"not json", "garbage", "unparseable: body is not JSON")

    for _ in range(2):  # listing leaves the queue as it was
        listed = taskcast(shared_stack, "dlq", "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.count(task.task_id) == 2
        assert "garbage" in listed.stdout
        assert "unparseable" in listed.stdout

    replayed = taskcast(shared_stack, "dlq", "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 3 dead messages" in replayed.stdout

    with Client(shared_stack.edge_url, "dev-key") as client:
        deadline = time.monotonic() + 30
        while (record := client.get(task.task_id))["status"] != "succeeded":
            assert time.monotonic() < deadline, record
            await asyncio.sleep(0.2)
    assert record["attempt"] == 1
    # The garbage is dead again (the relay cannot read it); the task's copies are not.
    deadline = time.monotonic() + 10
    while "garbage" not in (listed := taskcast(shared_stack, "dlq", "list")).stdout:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert task.task_id not in listed.stdout
    purged = taskcast(shared_stack, "dlq", "purge")
    assert purged.stdout.strip() == "purged 1 dead messages"


def test_a_failed_task_replayed_twice_is_submitted_again_once(shared_stack: Stack) -> None:
    with Client(shared_stack.edge_url, "dev-key") as client:
        failed = client.submit(
            "demo.flaky", {"failures": 5, "seconds": 0}, max_attempts=1, timeout_s=30
        )
        deadline = time.monotonic() + 60
        while client.get(failed.task_id)["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.2)

    first = taskcast(shared_stack, "dlq", "replay", failed.task_id)
    again = taskcast(shared_stack, "dlq", "replay", failed.task_id)

    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    new_id = first.stdout.split()[-1]
    assert new_id != failed.task_id
    assert uuid.UUID(new_id)
    with Client(shared_stack.edge_url, "dev-key") as client:
        replayed = client.get(new_id)
    assert (replayed["max_attempts"], replayed["timeout_s"]) == (1, 30)  # the options it ran with


def test_replaying_what_is_neither_dead_nor_failed_is_refused(shared_stack: Stack) -> None:
    with Client(shared_stack.edge_url, "dev-key") as client:
        task_id = client.submit("demo.noop").task_id
    refused = taskcast(shared_stack, "dlq", "replay", task_id)
    assert refused.returncode == 2
    assert "neither a dead message nor a failed task" in refused.stderr


def test_a_dead_message_of_a_failed_task_is_replayed_as_a_new_task(shared_stack: Stack) -> None:
    # What the sweeper leaves when a task waited its whole queue timeout for a worker: the task
    # failed, its message dead. Republishing the message would do nothing; replay resubmits.
    with Client(shared_stack.edge_url, "dev-key") as client:
        failed = client.submit("demo.sleep", {"seconds": 0, "steps": 1, "fail_rate": 1})
        deadline = time.monotonic() + 60
        while client.get(failed.task_id)["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    body = Submitted(failed.task_id, "demo.sleep", "trace").encode()
    asyncio.run(bury(shared_stack, body, failed.task_id, "no_worker: nobody served it"))

    replayed = taskcast(shared_stack, "dlq", "replay", failed.task_id)

    assert replayed.returncode == 0, replayed.stderr
    assert f"{failed.task_id}: submitted again as " in replayed.stdout
    listed = taskcast(shared_stack, "dlq", "list")
    assert failed.task_id not in listed.stdout
