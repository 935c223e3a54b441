"""Fixtures shared by every test: isolated names, the real brokers, moto for AWS.

Each test gets its own namespace, so its exchange, queues, tables and Redis keys are its own;
Redis tests use database ``TEST_REDIS_DB`` and flush it afterwards. RabbitMQ and Redis must be
running (``make services`` starts them); a test that needs one that is down fails and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import boto3
import pytest
import redis
from moto import mock_aws

from infra import broker, dynamodb
from taskcore.config import Config
from taskcore.definition import catalogue

pytest_plugins = ["tests.images"]

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
"""The Redis server the tests use; point it elsewhere to run two test sessions side by side."""
TEST_REDIS_DB = 13
REDIS_URL = f"{REDIS_SERVER}/{TEST_REDIS_DB}"
WATCH_SECRET = "test-secret-that-is-long-enough"
DEMO_TASKS = "taskcast_demo.tasks,taskcast_images.tasks"
"""The task modules every test's environment names: taskcast's own examples."""
API_KEYS = "alice-key=alice,bob-key=bob"


def free_ports_in_a_row(count: int) -> int:
    """The first of ``count`` consecutive ports of this machine that are free now: for the
    metrics of ``taskcast up``'s parts, one port each from the first."""
    while True:
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            start = int(first.getsockname()[1])
            try:
                for port in range(start + 1, start + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except (OSError, OverflowError):
                continue  # one of them is taken, or past 65535: try another start
            return start


def _require(host: str, port: int, what: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        pytest.fail(f"{what} is not running on {host}:{port}: start it with `make services`")


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so no test can ever reach a real AWS account."""
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def demo_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalogue of the demo tasks, exported as ``taskcast tasks export`` would."""
    path = tmp_path_factory.mktemp("catalogue") / "catalogue.json"
    path.write_text(catalogue(DEMO_TASKS.split(",")).dumps())
    return path


@pytest.fixture
def env(namespace: str, demo_catalogue: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a taskcast process in this test's namespace, also set on this process."""
    values = {
        "TASKCAST_TASKS": DEMO_TASKS,
        "TASKCAST_CATALOGUE": str(demo_catalogue),
        "TASKCAST_NAMESPACE": namespace,
        "TASKCAST_RABBITMQ_URL": RABBITMQ_URL,
        "TASKCAST_REDIS_URL": REDIS_URL,
        "TASKCAST_WATCH_SECRET": WATCH_SECRET,
        "TASKCAST_API_KEYS": API_KEYS,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def config(env: dict[str, str]) -> Config:
    return Config.from_env(env, need=("rabbitmq", "redis", "watch_secret", "api_keys"))


@pytest.fixture
def aws(config: Config) -> Iterator[Any]:
    """moto in this process, with the task and idempotency tables made; yields a DynamoDB client."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=config.region)
        dynamodb.ensure_tables(client, config.names.tasks_table, config.names.idempotency_table)
        yield client


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    pool = client.connection_pool.connection_kwargs
    _require(pool["host"], pool["port"], "Redis")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
async def amqp(config: Config) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel to the real RabbitMQ with this test's topology declared, deleted afterwards."""
    _require("127.0.0.1", 5672, "RabbitMQ")
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await broker.declare_topology(channel, config.names)
        yield channel
    # On a connection of its own: the test may have restarted the broker under the first.
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        await broker.delete_topology(await connection.channel(), config.names)


async def drain(
    queue: aio_pika.abc.AbstractQueue, timeout_s: float = 5.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message on ``queue`` (acked), waiting up to ``timeout_s`` for the first."""
    messages = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            messages.append(message)
            continue
        if messages or asyncio.get_running_loop().time() > deadline:
            return messages
        await asyncio.sleep(0.05)
