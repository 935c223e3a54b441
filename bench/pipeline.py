"""taskcast measured end to end: HTTP submit, relay, RQ worker, websocket watcher.

Besides latency and throughput: the CPU each part spent per task, and the DynamoDB calls each
part made per task and per progress report, as the bench's emulator (:mod:`bench.emulator`)
counted them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis import Redis
from websockets.asyncio.client import connect

from taskcast.local.stack import Stack
from worker_container.registry import ServedTypes

from . import cpu
from .baseline import Measured
from .emulator import Calls, Emulator

LIVE = ("running", "succeeded", "failed")
NOOP = {"type": "demo.noop"}
EMULATOR = "emulator"
"""The emulator's name among the parts, in the CPU figures."""
SWEEPER = "sweeper"
SETTLE_S = 0.5
"""How long after the last watcher's ``end`` the calls are read: a part may write after it."""


@dataclass
class Watched:
    running_at: float | None = None
    ended_at: float | None = None
    events: int = 0


@dataclass
class Result:
    measured: Measured
    cpu_ms_per_task: dict[str, float]
    """By part: ``edge``, ``relay``, ``worker-1``, ..., ``sweeper``, ``realtime``, ``emulator``."""
    calls: Calls
    """Every DynamoDB call during the throughput run, by operation and part."""
    tasks: int
    """The tasks of the throughput run."""


async def _watch(watch: dict[str, Any], task_id: str, result: Watched) -> None:
    async with connect(watch["url"]) as ws:
        await ws.send(
            json.dumps(
                {"op": "subscribe", "task_id": task_id, "token": watch["token"], "cursor": None}
            )
        )
        async for raw in ws:
            message = json.loads(raw)
            status = (message.get("task") or message.get("event") or {}).get("status")
            if result.running_at is None and status in LIVE:
                result.running_at = time.time()
            if message["op"] == "event":
                result.events += 1
            if message["op"] in ("end", "error"):
                result.ended_at = time.time()
                return


async def _submit_and_watch(
    http: httpx.AsyncClient, body: dict[str, Any] = NOOP
) -> tuple[float, Watched]:
    response = await http.post("/tasks", json=body)
    returned = time.time()
    response.raise_for_status()
    answer = response.json()
    watched = Watched()
    await _watch(answer["watch"], answer["task"]["task_id"], watched)
    return returned, watched


async def _run_all(
    http: httpx.AsyncClient, body: dict[str, Any], count: int, concurrency: int
) -> list[Watched]:
    """``count`` tasks of ``body``, at most ``concurrency`` at a time, each watched to its end."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Watched:
        async with gate:
            return (await _submit_and_watch(http, body))[1]

    results = await asyncio.gather(*(one() for _ in range(count)))
    undelivered = sum(r.ended_at is None for r in results)
    if undelivered:
        raise RuntimeError(f"{undelivered} watchers never received the end of their task")
    return results


def _client(stack: Stack, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.edge_url, headers={"X-Api-Key": api_key}, timeout=60)


async def _measure(
    stack: Stack, emulator: Emulator, api_key: str, samples: int, batch: int, concurrency: int
) -> tuple[Measured, Calls]:
    async with _client(stack, api_key) as http:
        await _submit_and_watch(http)  # warm the edge's clients: a cold start is not steady state
        latencies = []
        for _ in range(samples):
            returned, watched = await _submit_and_watch(http)
            assert watched.running_at is not None
            latencies.append(watched.running_at - returned)
        before = await asyncio.to_thread(emulator.calls)
        began = time.perf_counter()
        await _run_all(http, NOOP, batch, concurrency)
        elapsed = time.perf_counter() - began
        await asyncio.sleep(SETTLE_S)
        after = await asyncio.to_thread(emulator.calls)
    return Measured(latencies, batch / elapsed), after - before


def parts(stack: Stack, emulator: Emulator) -> dict[str, int]:
    """The process id of each part, the emulator's among them."""
    return {**stack.pids(), EMULATOR: emulator.pid}


def measure(
    stack: Stack,
    emulator: Emulator,
    api_key: str,
    samples: int,
    batch: int,
    concurrency: int,
) -> Result:
    """The figures; the CPU per task over every task, the calls over the throughput run's."""
    pids = parts(stack, emulator)
    before = cpu.snapshot(pids)
    measured, calls = asyncio.run(_measure(stack, emulator, api_key, samples, batch, concurrency))
    after = cpu.snapshot(pids)
    tasks = samples + batch + 1
    cpu_per_task = {name: 1000 * (after[name] - before[name]) / tasks for name in pids}
    return Result(measured, cpu_per_task, calls, batch)


def calls_per_progress_tick(
    stack: Stack, emulator: Emulator, api_key: str, tasks: int, ticks: int, concurrency: int
) -> float:
    """The DynamoDB calls one progress report costs, all parts but the sweeper together.

    ``tasks`` runs of ``demo.sleep`` reporting progress once, then as many reporting it
    ``1 + ticks`` times (no sleep, no failure): the difference in calls, per extra report. The
    sweeper's calls are left out: they come with the time that passes, not with the tasks.
    """

    async def run(steps: int) -> Calls:
        body = {"type": "demo.sleep", "payload": {"seconds": 0, "steps": steps, "fail_rate": 0}}
        async with _client(stack, api_key) as http:
            before = await asyncio.to_thread(emulator.calls)
            await _run_all(http, body, tasks, concurrency)
            await asyncio.sleep(SETTLE_S)
            return (await asyncio.to_thread(emulator.calls)) - before

    once = asyncio.run(run(1)).without(SWEEPER)
    more = asyncio.run(run(1 + ticks)).without(SWEEPER)
    return (more.total - once.total) / (tasks * ticks)


def name_callers(stack: Stack, task_types: list[str], timeout_s: float = 60) -> None:
    """Restart every part with an access key id of its own, its name, so that the emulator
    counts each part's calls apart; return once the edge, the realtime service and a worker
    for each of ``task_types`` are ready again.

    The stack's own API (:meth:`Stack.kill`, :meth:`Stack.restart` with a changed
    environment) and moto's indifference to credentials: no part is changed for the bench.
    """
    names = list(stack.pids())
    for name in names:
        stack.kill(name, signal.SIGTERM)
    for name in names:
        stack.restart(name, {"AWS_ACCESS_KEY_ID": name})
    redis = Redis.from_url(stack.config.redis)
    served = ServedTypes(redis, stack.config.names, cache_s=0)
    probes = [f"{stack.edge_url}/health", f"{stack.realtime_url.replace('ws', 'http', 1)}/healthz"]
    deadline = time.monotonic() + timeout_s
    try:
        while not (all(_answers(url) for url in probes) and all(map(served, task_types))):
            stack.check_children()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stack was not ready again {timeout_s:.0f} s after restart")
            time.sleep(0.2)
    finally:
        redis.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
