"""Two realtime instances behind a balancer: a watcher moved between them mid-task misses nothing."""

from __future__ import annotations

import asyncio
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator

import httpx
import pytest

from taskcast import Client
from taskcast.client import Watch
from taskcast.local.stack import Stack

from .balancer import Balancer
from .conftest import free_port

pytestmark = pytest.mark.e2e


async def _healthy(port: int, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"realtime on {port} did not start")
            await asyncio.sleep(0.1)


@pytest.fixture
async def doomed_instance(shared_stack: Stack) -> AsyncIterator[tuple[Process, int]]:
    """A second realtime instance, started for the test and killed by it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "realtime",
        "--port",
        str(port),
        env=shared_stack.env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _healthy(port)
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_watcher_moved_to_another_instance_mid_task_misses_and_repeats_nothing(
    shared_stack: Stack, doomed_instance: tuple[Process, int], sig: signal.Signals
) -> None:
    process, doomed_port = doomed_instance
    balancer = Balancer([doomed_port, shared_stack.ports.realtime])
    balanced_url = f"ws://127.0.0.1:{await balancer.start()}"
    client = Client(shared_stack.edge_url, "dev-key")
    try:
        sub = client.submit("demo.sleep", {"seconds": 3, "steps": 30, "fail_rate": 0})
        watch = Watch(balanced_url, sub.watch.token, sub.watch.expires_at)
        updates = []
        async for update in client.watch(sub.task_id, watch):
            updates.append(update)
            if sum(u.op == "event" for u in updates) == 5 and process.returncode is None:
                process.send_signal(sig)  # the instance serving this watcher goes away
    finally:
        client.close()
        await balancer.close()

    snapshots = [u for u in updates if u.op == "snapshot"]
    assert len(snapshots) >= 2, "the watcher never moved"
    assert snapshots[1].data["resumed"] is True
    seqs = [u.seq for u in updates if u.op == "event"]
    first = snapshots[0].data["cursor"]["seq"] + 1
    assert seqs == list(range(first, first + len(seqs))), seqs  # no gap, no duplicate
    assert updates[-1].op == "end"
    assert updates[-1].status == "succeeded"
    assert client_status(shared_stack, sub.task_id) == "succeeded"


def client_status(stack: Stack, task_id: str) -> str:
    with Client(stack.edge_url, "dev-key") as client:
        return str(client.get(task_id)["status"])
