"""A stack shared by the end-to-end tests that only need one running."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import aio_pika
import pytest
import redis

from taskcast.local.stack import Ports, Stack
from tests.conftest import RABBITMQ_URL, REDIS_SERVER, WATCH_SECRET

# Not the per-test database, which other tests flush while this stack is up.
SHARED_REDIS_URL = f"{REDIS_SERVER}/14"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="package")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the tests that only need a running one.

    It isolates itself as the per-test fixtures would: its own namespace and Redis database,
    both cleaned up afterwards.
    """
    namespace = f"shared{os.getpid()}"
    env = {
        **os.environ,
        "TASKCAST_NAMESPACE": namespace,
        "TASKCAST_RABBITMQ_URL": RABBITMQ_URL,
        "TASKCAST_REDIS_URL": SHARED_REDIS_URL,
        "TASKCAST_WATCH_SECRET": WATCH_SECRET,
        "TASKCAST_API_KEYS": "dev-key=dev",
        "TASKCAST_CANCEL_GRACE": "1",
        "TASKCAST_TASKS": "taskcast_demo.tasks",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    log_path = tmp_path_factory.mktemp("shared") / "stack.log"
    with (
        log_path.open("w") as log,
        Stack(env, ports=Ports(free_port(), free_port(), free_port()), output=log) as stack,
    ):
        yield stack
    redis.Redis.from_url(SHARED_REDIS_URL).flushdb()

    async def drop_topology() -> None:
        from infra.broker import delete_topology

        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            await delete_topology(await connection.channel(), stack.config.names)

    asyncio.run(drop_topology())
