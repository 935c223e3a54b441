"""The README's HTTP, CLI and Python examples, run as written against a running stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
import redis

from taskcast.stack import Ports, Stack

from .test_stack import free_port

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"


def examples(language: str) -> list[str]:
    """The README's fenced blocks in ``language`` that talk to the documented stack."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.DOTALL)
    return [b for b in blocks if DOCUMENTED_URL in b or b.startswith("taskcast ")]


@pytest.fixture(scope="module")
def readme_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Module-scoped, so it builds its own isolation rather than using the per-test fixtures.
    from tests.conftest import RABBITMQ_URL, REDIS_URL, WATCH_SECRET

    namespace = f"readme{os.getpid()}"
    env = {
        **os.environ,
        "TASKCAST_NAMESPACE": namespace,
        "TASKCAST_RABBITMQ_URL": RABBITMQ_URL,
        "TASKCAST_REDIS_URL": REDIS_URL,
        "TASKCAST_WATCH_SECRET": WATCH_SECRET,
        "TASKCAST_API_KEYS": "dev-key=dev",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    log_path = tmp_path_factory.mktemp("readme") / "stack.log"
    with (
        log_path.open("w") as log,
        Stack(env, ports=Ports(free_port(), free_port(), free_port()), output=log) as stack,
    ):
        yield stack
    redis.Redis.from_url(REDIS_URL).flushdb()

    async def drop_topology() -> None:
        from infra.broker import delete_topology

        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            await delete_topology(await connection.channel(), stack.config.names)

    import asyncio

    asyncio.run(drop_topology())


def run(argv: list[str], stack: Stack) -> str:
    env = {
        **os.environ,
        "TASKCAST_URL": stack.edge_url,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_readme_has_the_examples_this_test_runs() -> None:
    assert len(examples("sh")) == 2
    assert len(examples("python")) == 2


@pytest.mark.parametrize("index", [0, 1])
def test_the_shell_examples_work_as_written(readme_stack: Stack, index: int) -> None:
    block = examples("sh")[index].replace(DOCUMENTED_URL, readme_stack.edge_url)
    output = run(["bash", "-euo", "pipefail", "-c", block], readme_stack)
    assert '"task_id"' in output or "succeeded" in output, output


@pytest.mark.parametrize("index", [0, 1])
def test_the_python_examples_work_as_written(readme_stack: Stack, index: int) -> None:
    source = examples("python")[index].replace(DOCUMENTED_URL, readme_stack.edge_url)
    output = run([sys.executable, "-c", source], readme_stack)
    lines = output.splitlines()
    assert any(line.startswith("end succeeded") for line in lines), output
