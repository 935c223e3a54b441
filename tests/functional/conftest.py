"""The edge app in this process (moto for DynamoDB, the real RabbitMQ for publishing), or the
edge as its own process, served by ``chalice local`` as ``taskcast up`` runs it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import boto3
import pytest
from chalice.test import Client

from infra import broker, dynamodb
from taskcast.local.stack import FUNCTIONS_DIR
from taskcore.config import Config
from tests.conftest import API_KEYS, RABBITMQ_URL, WATCH_SECRET


@pytest.fixture
def edge(aws: Any, amqp: aio_pika.abc.AbstractChannel) -> Iterator[Client]:
    import app
    from chalicelib import services

    services.reset()
    with Client(app.app) as client:
        yield client
    services.reset()


@dataclass(frozen=True)
class RunningEdge:
    host: str
    port: int
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args!r} exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing answered on port {port}: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def running_edge(
    demo_catalogue: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningEdge]:
    """``python -m taskcast.local.edge ... local`` on a free port, with the stack's moto server
    (``taskcast.local.emulator``) for DynamoDB and the real RabbitMQ, in a namespace of its own;
    both processes stopped afterwards.

    Its output is in ``log``, for tests to check what it logged.
    """
    namespace = f"t{uuid.uuid4().hex[:12]}"
    moto_port, edge_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "TASKCAST_NAMESPACE": namespace,
        "TASKCAST_CATALOGUE": str(demo_catalogue),
        "TASKCAST_RABBITMQ_URL": RABBITMQ_URL,
        "TASKCAST_WATCH_SECRET": WATCH_SECRET,
        "TASKCAST_API_KEYS": API_KEYS,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_PROFILE", None)
    config = Config.from_env(env)
    folder = tmp_path_factory.mktemp("edge")
    moto_log, edge_log = folder / "moto.log", folder / "edge.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with moto_log.open("wb") as out:
            moto = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "taskcast.local.emulator",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(moto_port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        processes.append(moto)
        _wait_port(moto_port, moto, moto_log)
        client = boto3.client(
            "dynamodb",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        dynamodb.ensure_tables(client, config.names.tasks_table, config.names.idempotency_table)
        asyncio.run(_topology(config, declare=True))
        with edge_log.open("wb") as out:
            edge = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "taskcast.local.edge",
                    "--project-dir",
                    str(FUNCTIONS_DIR),
                    "local",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(edge_port),
                    "--stage",
                    "local",
                    "--no-autoreload",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        processes.append(edge)
        _wait_port(edge_port, edge, edge_log)
        yield RunningEdge("127.0.0.1", edge_port, edge_log)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        asyncio.run(_topology(config, declare=False))


async def _topology(config: Config, *, declare: bool) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        if declare:
            await broker.declare_topology(channel, config.names)
        else:
            await broker.delete_topology(channel, config.names)
