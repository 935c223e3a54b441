"""``taskcast up`` as a user runs it: a part killed is restarted, and the stack keeps working."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aio_pika
import httpx
import pytest
import redis

from taskcast import Client
from taskcast.local import stack
from tests.conftest import free_ports_in_a_row
from tests.scrape import scrape, scrape_until

from .conftest import free_port

pytestmark = pytest.mark.e2e

PARTS = {"relay": stack.entry("worker_container.relay:main")[1:], "realtime": ["-m", "realtime"]}
"""How to tell the parts this test kills among ``taskcast up``'s children: how their arguments
start (``worker_container.worker`` is a worker, not the relay)."""


def children(parent: int) -> dict[str, int]:
    """The pids of the parts in ``PARTS`` that ``parent`` started, by name."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode().rstrip("\0").split("\0")
        except OSError:
            continue  # it exited meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
            continue
        for name, args in PARTS.items():
            if argv[1 : 1 + len(args)] == args:
                found[name] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Up:
    """``taskcast up`` in a subprocess, its output in a file."""

    def __init__(
        self, process: subprocess.Popen[bytes], log: Path, edge: str, realtime: int, metrics: int
    ):
        self.process = process
        self.log = log
        self.edge_url = edge
        self.realtime_port = realtime
        self.metrics_port = metrics
        """The first of the parts' metrics ports (``--metrics-port``)."""

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, what: Callable[[str], object], timeout_s: float = 60) -> object:
        """Wait until ``what(output)`` is true; return it."""
        deadline = time.monotonic() + timeout_s
        while not (found := what(self.output())):
            assert self.process.poll() is None, f"taskcast up exited:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out; output:\n{self.output()[-3000:]}"
            time.sleep(0.2)
        return found


@pytest.fixture
def up(
    env: dict[str, str],
    redis_client: redis.Redis,
    amqp: aio_pika.abc.AbstractChannel,
    tmp_path: Path,
) -> Iterator[Up]:
    edge, realtime, moto, console = (free_port() for _ in range(4))
    metrics = free_ports_in_a_row(4)  # relay, sweeper, realtime and the one worker
    log = tmp_path / "up.log"
    command = Path(sys.executable).with_name("taskcast")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(command),
                "up",
                "--tasks",
                "taskcast_demo.tasks",
                "--workers",
                "1",
                *("--edge-port", str(edge), "--realtime-port", str(realtime)),
                *("--moto-port", str(moto), "--console-port", str(console)),
                *("--metrics-port", str(metrics)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = Up(process, log, f"http://127.0.0.1:{edge}", realtime, metrics)
    seen: set[int] = set()
    try:
        running.wait_for(lambda out: "taskcast is up" in out, timeout_s=120)
        yield running
    finally:
        seen.update(children(process.pid).values())
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in seen:  # a part the stop missed would outlive the test
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def restarted(up: Up, name: str, count: int) -> int:
    """Wait for ``name``'s restart number ``count`` to be announced and done; its new pid."""
    up.wait_for(lambda out: f"{name} exited with code -9; restarting in" in out)
    found = up.wait_for(
        lambda out: (
            len(starts := re.findall(rf"{name} started again \(pid (\d+)\)", out)) >= count
            and starts[count - 1]
        )
    )
    return int(str(found))


async def watch_to_end(up: Up) -> list[str]:
    with Client(up.edge_url, "alice-key") as client:
        sub = client.submit("demo.sleep", {"seconds": 1, "steps": 2, "fail_rate": 0})
        return [u.status async for u in client.watch(sub.task_id, sub.watch)]


def test_a_killed_relay_and_realtime_are_restarted_and_a_new_task_runs_and_is_watched(
    up: Up,
) -> None:
    before = children(up.process.pid)
    assert set(before) == {"relay", "realtime"}, before

    for name in ("relay", "realtime"):
        os.kill(before[name], signal.SIGKILL)
    relay = restarted(up, "relay", 1)
    realtime = restarted(up, "realtime", 1)

    out = up.output()
    assert "relay exited with code -9; restarting in 1 s (restart 1)" in out
    assert "realtime exited with code -9; restarting in 1 s (restart 1)" in out
    assert relay != before["relay"]
    assert realtime != before["realtime"]
    assert alive(relay)
    assert alive(realtime)
    assert children(up.process.pid) == {"relay": relay, "realtime": realtime}
    deadline = time.monotonic() + 30
    while True:  # answering again
        try:
            health = httpx.get(f"http://127.0.0.1:{up.realtime_port}/healthz", timeout=1)
            if health.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "realtime did not answer again"
        time.sleep(0.2)

    # Killed again within a minute of its restart: the backoff doubles.
    os.kill(relay, signal.SIGKILL)
    up.wait_for(lambda out: "relay exited with code -9; restarting in 2 s (restart 2)" in out)
    relay = restarted(up, "relay", 2)

    statuses = asyncio.run(asyncio.wait_for(watch_to_end(up), 60))
    assert statuses[-1] == "succeeded", statuses
    assert "running" in statuses

    # Killed as the stack is stopped: it is not started again.
    os.kill(relay, signal.SIGKILL)
    up.wait_for(lambda out: "relay exited with code -9; restarting in 4 s (restart 3)" in out)
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(30) == 0
    out = up.output()
    assert out.count("relay started again") == 2
    assert "stopping..." in out
    assert not [pid for pid in (relay, realtime) if alive(pid)]
    assert "Traceback" not in out


def test_up_prints_where_each_part_serves_its_metrics_and_each_serves_its_own(up: Up) -> None:
    printed = re.search(r"metrics at http://127\.0\.0\.1:<port>/metrics: (.+)", up.output())
    assert printed is not None, up.output()
    ports = {part: int(port) for part, port in re.findall(r"([\w-]+) (\d+)", printed[1])}
    first = up.metrics_port
    assert ports == {
        "relay": first,
        "sweeper": first + 1,
        "realtime": first + 2,
        "worker-1": first + 3,
    }

    statuses = asyncio.run(asyncio.wait_for(watch_to_end(up), 60))
    assert statuses[-1] == "succeeded", statuses

    # The watch's live events reached it through realtime, which counted each one's lag.
    realtime = scrape(ports["realtime"])
    lag = realtime.value("taskcast_ws_delivery_lag_seconds_count")
    assert lag is not None
    assert lag >= 1
    assert realtime.value("taskcast_ws_connections") is not None
    # The sweeper holds its lease alone here: it reports RQ's queues and the one idle worker.
    swept = scrape_until(
        ports["sweeper"],
        lambda s: s.value("taskcast_workers", state="idle") == 1,
        what="the sweeper's RQ figures",
    )
    assert swept.value("taskcast_queue_length", queue="default") == 0
    for part in ("relay", "worker-1", "sweeper"):
        found = scrape(ports[part])
        assert found.types.get("taskcast_tasks_succeeded") == "counter", part
        assert found.types.get("taskcast_task_runtime_seconds") == "histogram", part
        assert "taskcast_ws_connections" not in found.types, part
