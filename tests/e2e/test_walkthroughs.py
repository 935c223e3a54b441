"""The README's walkthroughs ("Your first task", "The image task"), followed step by step as a
newcomer would, in a folder outside the repository.

Each step is a fenced block after a ``<!-- step:KIND -->`` marker: ``shell`` runs in bash,
``file PATH`` is written to PATH, ``background`` starts a process that runs until the end,
``up`` starts the stack in the background, ``python`` runs. The commands are run as written;
only the ports, the namespace and the Redis database are the test's own, so that it shares
nothing with other tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
import redis

from taskcore.names import Names
from tests.conftest import RABBITMQ_URL, REDIS_SERVER, free_ports_in_a_row
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"
REDIS_URL = f"{REDIS_SERVER}/11"
STEP = re.compile(r"<!-- step:(\w+)(?: (\S+))? -->\n```\w+\n(.*?)```", re.DOTALL)
IMAGES_PORT = "8001"
"""The port the image walkthrough serves its pictures on."""


@dataclass(frozen=True)
class Step:
    kind: str
    argument: str | None
    text: str


def walkthrough(heading: str) -> list[Step]:
    text = README.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [Step(kind, argument, body) for kind, argument, body in STEP.findall(section)]


def test_the_walkthroughs_have_the_steps_these_tests_follow() -> None:
    assert [s.kind for s in walkthrough("Your first task")] == [
        "shell",
        "file",
        "up",
        "shell",
        "shell",
        "shell",
        "python",
    ]
    assert [s.kind for s in walkthrough("The image task")] == [
        "shell",
        "background",
        "up",
        "shell",
        "shell",
        "shell",
    ]


class Newcomer:
    """Runs the tutorial's steps in a folder of its own, with its own stack."""

    def __init__(self, home: Path) -> None:
        self.cwd = home
        self.edge_port, self.realtime_port, self.moto_port = free_port(), free_port(), free_port()
        self.console_port = free_port()
        self.metrics_port = free_ports_in_a_row(5)  # taskcast up's default: two workers
        self.namespace = f"tut{uuid.uuid4().hex[:8]}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TASKCAST_", "AWS_"))},
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "TASKCAST_NAMESPACE": self.namespace,
            "TASKCAST_REDIS_URL": REDIS_URL,
            "TASKCAST_RABBITMQ_URL": RABBITMQ_URL,
            "TASKCAST_URL": f"http://127.0.0.1:{self.edge_port}",
            "COLUMNS": "160",  # a terminal as wide as a newcomer's, so no table wraps
        }
        self.images_port = free_port()
        self.background: list[subprocess.Popen[str]] = []
        self.stack: subprocess.Popen[str] | None = None
        self._pump = threading.Thread()
        self.stack_output: list[str] = []

    def localised(self, text: str) -> str:
        return text.replace(DOCUMENTED_URL, f"http://127.0.0.1:{self.edge_port}").replace(
            IMAGES_PORT, str(self.images_port)
        )

    def start(self, text: str) -> None:
        """A process the walkthrough leaves running in another terminal."""
        self.background.append(
            subprocess.Popen(
                ["bash", "-c", self.localised(text)],
                cwd=self.cwd,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        # The walkthrough's one background process serves pictures: wait until it answers.
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.images_port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"nothing answers on {self.images_port}"
                time.sleep(0.05)

    def shell(self, text: str) -> str:
        return self._run(["bash", "-euo", "pipefail", "-c", self.localised(text)])

    def python(self, text: str) -> str:
        return self._run([sys.executable, "-c", self.localised(text)])

    def _run(self, argv: list[str]) -> str:
        done = subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{argv[-1]}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def up(self, text: str, timeout_s: float = 120) -> None:
        ports = (
            f" --edge-port {self.edge_port} --realtime-port {self.realtime_port}"
            f" --moto-port {self.moto_port} --console-port {self.console_port}"
            f" --metrics-port {self.metrics_port}"
        )
        command = self.localised(text).strip() + ports
        self.stack = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        up = threading.Event()

        def pump() -> None:
            assert self.stack is not None
            assert self.stack.stdout is not None
            for line in self.stack.stdout:
                self.stack_output.append(line)
                if "taskcast is up" in line:
                    up.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + timeout_s
        while not up.wait(0.2):
            if self.stack.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the stack did not come up:\n" + "".join(self.stack_output))

    def down(self) -> None:
        if self.stack is not None and self.stack.poll() is None:
            os.killpg(self.stack.pid, signal.SIGINT)
            try:
                self.stack.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.stack.pid, signal.SIGKILL)
                self.stack.wait()
        if self.stack is not None and self.stack.stdout is not None:
            self._pump.join(timeout=5)
            self.stack.stdout.close()
        for process in self.background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[Newcomer]:
    person = Newcomer(tmp_path)
    try:
        yield person
    finally:
        person.down()
        redis.Redis.from_url(REDIS_URL).flushdb()

        async def drop_topology() -> None:
            from infra.broker import delete_topology

            connection = await aio_pika.connect(RABBITMQ_URL)
            async with connection:
                await delete_topology(await connection.channel(), Names(person.namespace))

        asyncio.run(drop_topology())


def test_a_newcomer_runs_their_own_task_following_the_tutorial(newcomer: Newcomer) -> None:
    assert not str(newcomer.cwd).startswith(str(README.parent))
    make_package, write_task, start, submit, refused, cli, sdk = walkthrough("Your first task")

    newcomer.shell(make_package.text)
    newcomer.cwd = newcomer.cwd / "hello-taskcast"
    assert write_task.argument is not None
    (newcomer.cwd / write_task.argument).write_text(write_task.text)
    newcomer.up(start.text)

    accepted = json.loads(newcomer.shell(submit.text))
    assert (accepted["task"]["type"], accepted["task"]["payload"]) == (
        "myapp.greet",
        {"name": "Ada", "steps": 3},
    )
    error = json.loads(newcomer.shell(refused.text))["error"]
    assert (error["code"], error["field"], error["rule"]) == ("invalid", "payload.steps", "maximum")

    watched = newcomer.shell(cli.text)
    assert "succeeded" in watched, watched
    assert "Hello, Grace!" in watched, watched
    assert 'log: {"line": "step 4: still greeting Grace"}' in watched, watched

    lines = newcomer.python(sdk.text).splitlines()
    logs = [line for line in lines if line.startswith("log: ")]
    assert logs == [f"log: step {n}: still greeting Lin" for n in (1, 2, 3)], lines
    assert any(line.startswith("end succeeded") for line in lines), lines
    assert lines[-1] == "{'greeting': 'Hello, Lin!'}", lines


def test_a_newcomer_filters_an_image_following_the_image_walkthrough(newcomer: Newcomer) -> None:
    pictures, serve, start, watched_cli, shortcut, download = walkthrough("The image task")

    newcomer.shell(pictures.text)
    newcomer.start(serve.text)
    newcomer.up(start.text)

    watched = newcomer.shell(watched_cli.text)
    assert "image.filter" in watched, watched
    assert "succeeded" in watched, watched
    assert '"stage": "upload"' in watched, watched  # its own events, live

    accepted = json.loads(newcomer.shell(shortcut.text))["task"]
    assert (accepted["type"], accepted["payload"]["filter"]) == ("image.filter", "thumbnail")

    opened = newcomer.shell(download.text).strip()
    assert opened == "JPEG (480, 320)", opened
